//! `bench write`: the engine's write throughput and ack latency, and, in
//! the same run, the raw PUT throughput of the same store with the same
//! object size (the engine's average fragment) and the same parallelism.
//!
//! The engine runs in `--rounds` phases (at full speed or at `--rate`),
//! each followed by a raw PUT phase at full speed with objects of the
//! engine's average fragment size so far and the same parallelism; the
//! baseline is the mean of the raw phases and their latencies together, so
//! a machine or store that drifts or stalls during the run favours neither
//! side.
//!
//! Appenders are plain threads, each with a tokio current-thread runtime
//! (the engine's futures are runtime-agnostic), each keeping up to
//! `window` appends in flight on one log, and taking their acks by
//! `--ack-order`: in offset order from a queue, or each append its own
//! future in a `FuturesUnordered`. With `--rate` they send open-loop at that
//! total rate, and latency counts from when each append was due (no
//! coordinated omission); otherwise from the call to its acknowledgement.

mod appender;
mod phases;
mod summary;

pub use appender::AckOrder;
pub use summary::print_summary;

use crate::latency::{self, LatencyMs};
use crate::raw::{self, Limits};
use crate::BenchError;
use appender::appender;
use bytes::Bytes;
use futures::future::Either;
use futures::ready;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use hdrhistogram::Histogram;
use phases::{merged_histogram, timed_raw_puts, Truncator};
use serde::Serialize;
use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::MetaStore;
use woodpecker_engine::store::StoreFactory;
use woodpecker_engine::ErrorKind;
use woodpecker_shards::{block_on, Ack, Client, Config, FlushPolicy, LogWriter};
use woodpecker_tuning::{Flag, Loaded};

/// How often the --keep-mb consumer truncates (and the auditor looks).
const TRUNCATE_INTERVAL: Duration = Duration::from_millis(100);
/// Time allowed for in-flight appends to finish after the run ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Longest raw baseline phase.
const RAW_PHASE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub target: crate::StoreArgs,
    /// Logs written at once.
    #[arg(long, default_value_t = 1)]
    pub logs: usize,
    /// Payload bytes per entry.
    #[arg(long, default_value_t = 1024)]
    pub entry_bytes: usize,
    /// Appender threads (spread over the logs).
    #[arg(long, default_value_t = 1)]
    pub appenders: usize,
    /// Appends in flight per appender, at most (bounds the in-flight bytes;
    /// throughput is at most window / ack latency).
    #[arg(long, default_value_t = 65536)]
    pub window: usize,
    /// How each appender takes its acks: `offset` (a queue, awaiting the
    /// oldest) or `any` (every append its own future, FuturesUnordered).
    #[arg(long, value_enum, default_value_t = AckOrder::Offset)]
    pub ack_order: AckOrder,
    /// Entries per append call (1: `try_append`; more: `try_append_batch`).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Total entries per second, open loop (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of appending (in all rounds together).
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Engine phases (at full speed, or at --rate), each followed by a raw
    /// PUT phase at full speed.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// When a fragment ships: `adaptive` (as soon as an upload slot is
    /// free) or `interval` (at --flush-interval-ms) [default: adaptive;
    /// engine.flush_policy].
    #[arg(long = "flush-policy", value_name = "POLICY")]
    pub flush_policy_flag: Option<String>,
    /// [default: 10ms; engine.flush_interval_ms]
    #[arg(long = "flush-interval-ms", value_name = "MS")]
    pub flush_interval_flag: Option<String>,
    /// [default: 8MiB; engine.fragment_bytes_max]
    #[arg(long = "fragment-bytes", value_name = "BYTES")]
    pub fragment_bytes_flag: Option<String>,
    /// [default: 8; engine.uploads_in_flight_max]
    #[arg(long = "uploads-in-flight", value_name = "N")]
    pub uploads_in_flight_flag: Option<String>,
    /// [default: 1; engine.shards]
    #[arg(long = "shards", value_name = "N")]
    pub shards_flag: Option<String>,
    /// The effective engine settings (configuration, then the flags above),
    /// set by `run`.
    #[arg(skip)]
    pub flush_policy: FlushPolicy,
    #[arg(skip)]
    pub flush_interval_ms: u64,
    #[arg(skip)]
    pub fragment_bytes: usize,
    #[arg(skip)]
    pub uploads_in_flight: usize,
    #[arg(skip)]
    pub shards: usize,
    /// Truncate each log as it is written, keeping about this many MB of
    /// payload below its durable end, the way a consumer of the WAL does;
    /// segments then roll every keep/2 MB and the auditor deletes those
    /// below the truncation point at once. Default: keep everything.
    #[arg(long)]
    pub keep_mb: Option<u64>,
    /// Skip the raw PUT baseline.
    #[arg(long)]
    pub no_raw: bool,
    /// Print the client's Prometheus metrics (text format) on stderr at the
    /// end, after the writers closed.
    #[arg(long)]
    pub metrics: bool,
    /// Split every append's ack latency into the write path's stages
    /// (engine.profile_stages) and print the breakdown next to the total.
    #[arg(long)]
    pub profile: bool,
    /// Write a self-contained HTML report (ack-latency CDF against the
    /// raw PUTs, throughput over the run, the stages, the settings) to
    /// FILE; implies --profile.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// MB = 10^6 bytes of payload.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    pub store: String,
    pub logs: usize,
    pub entry_bytes: usize,
    pub appenders: usize,
    pub window: usize,
    pub batch: usize,
    pub ack_order: AckOrder,
    pub rate: Option<f64>,
    pub shards: usize,
    pub flush_policy: FlushPolicy,
    pub flush_interval_ms: u64,
    pub fragment_bytes_max: usize,
    pub uploads_in_flight_max: usize,
    pub keep_mb: Option<u64>,
    /// Segments deleted below the truncation point (with --keep-mb).
    pub segments_deleted: u64,
    pub seconds: f64,
    pub entries: u64,
    pub errors: u64,
    pub throughput_mb_s: f64,
    /// Each engine round's throughput, in order.
    pub throughput_mb_s_rounds: Vec<f64>,
    pub entries_per_s: f64,
    pub ack_latency_ms: LatencyMs,
    pub fragments: u64,
    pub avg_fragment_bytes: u64,
    /// Fragment uploads (PUTs, or multipart uploads) per second over the
    /// engine phases: with `avg_fragment_bytes`, the request cost per GB.
    pub puts_per_s: f64,
    pub upload_retries: u64,
    /// Mean time of one fragment upload, start to durable.
    pub upload_latency_mean_ms: f64,
    /// The slowest fragment upload of the run (a store stall shows here,
    /// and in the ack latency of every entry behind it).
    pub upload_latency_max_ms: f64,
    /// Uploads in flight on average over the engine phases (at most
    /// uploads_in_flight_max per log).
    pub uploads_in_flight_mean: f64,
    pub raw_object_bytes: Option<usize>,
    pub raw_inflight: Option<usize>,
    pub raw_put_mb_s: Option<f64>,
    /// Each raw PUT phase in order (one after each engine round).
    pub raw_put_mb_s_phases: Vec<f64>,
    /// Latency of the PUTs of every raw phase together.
    pub raw_put_latency_ms: Option<LatencyMs>,
    /// Client CPU seconds (all threads: appenders, shards) per GB of
    /// payload during the engine phase.
    pub cpu_s_per_gb: f64,
    /// The same for the raw PUTs (mean of the phases).
    pub raw_put_cpu_s_per_gb: Option<f64>,
    pub ratio_to_raw: Option<f64>,
    /// With --profile: each stage's share of the ack latency.
    pub profile: Option<woodpecker_shards::StageProfile>,
}

impl WriteArgs {
    /// The flags given, as configuration overrides.
    pub fn flags(&self) -> Vec<Flag> {
        let mut flags = self.target.flags();
        flags.extend(Flag::given(&[
            (
                "engine.flush_policy",
                "flush-policy",
                &self.flush_policy_flag,
            ),
            (
                "engine.flush_interval_ms",
                "flush-interval-ms",
                &self.flush_interval_flag,
            ),
            (
                "engine.fragment_bytes_max",
                "fragment-bytes",
                &self.fragment_bytes_flag,
            ),
            (
                "engine.uploads_in_flight_max",
                "uploads-in-flight",
                &self.uploads_in_flight_flag,
            ),
            ("engine.shards", "shards", &self.shards_flag),
        ]));
        flags
    }

    /// Takes the engine settings this benchmark reports from the
    /// configuration (in which the flags are already layered).
    fn resolve(&mut self, loaded: &Loaded) {
        let engine = &loaded.settings.engine;
        self.flush_policy = engine.flush_policy;
        self.flush_interval_ms = engine.flush_interval_ms;
        self.fragment_bytes = engine.fragment_bytes_max;
        self.uploads_in_flight = engine.uploads_in_flight_max;
        self.shards = engine.shards;
    }

    fn validate(&self) -> Result<(), BenchError> {
        let positive = [
            self.logs,
            self.appenders,
            self.window,
            self.batch,
            self.fragment_bytes,
            self.uploads_in_flight,
            self.shards,
            self.rounds,
        ];
        if positive.contains(&0) || self.duration_s == 0 || self.flush_interval_ms == 0 {
            return Err(BenchError::Invalid(
                "counts, sizes, --duration-s and --flush-interval-ms must be positive".into(),
            ));
        }
        if self.keep_mb == Some(0) {
            return Err(BenchError::Invalid("--keep-mb must be positive".into()));
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(BenchError::Invalid(
                "--rate must be a positive number".into(),
            ));
        }
        Ok(())
    }

    /// The configured engine, with what a benchmark needs where the
    /// configuration leaves it at the default: buffers for every log's
    /// uploads, segments of many fragments, a key prefix of its own.
    fn config(&self, loaded: &Loaded) -> Config {
        let mut config = loaded.settings.engine.clone();
        if loaded.is_default("engine.shard_buffer_bytes_max") {
            let buffers = (self.uploads_in_flight + 2) * self.logs.div_ceil(self.shards) + 2;
            config.shard_buffer_bytes_max = buffers * self.fragment_bytes;
        }
        if loaded.is_default("engine.segment_bytes_max") {
            config.segment_bytes_max = (self.fragment_bytes as u64 * 128).max(1 << 30);
        }
        if loaded.is_default("engine.key_prefix") {
            config.key_prefix = format!("bench-write-{:016x}", raw::fastrand_u64());
        }
        if loaded.is_default("engine.stall_detection") {
            config.stall_detection = true;
        }
        if self.profile || self.report.is_some() {
            config.profile_stages = true;
        }
        if let Some(mb) = self.keep_mb {
            // Segments small enough to be deleted during the run, at once.
            config.segment_bytes_max = (mb * 1_000_000 / 2).max(self.fragment_bytes as u64);
            config.retention_ms = 0;
            config.audit_interval_ms = TRUNCATE_INTERVAL.as_millis() as u64;
        }
        config
    }
}

pub fn run(mut args: WriteArgs, loaded: &Loaded) -> Result<WriteReport, BenchError> {
    args.resolve(loaded);
    args.validate()?;
    let (factory, temp_dir) = raw::bench_store(loaded)?;
    let config = args.config(loaded);
    config.validate().map_err(BenchError::Invalid)?;
    let store = factory.config().kind();
    let raw_applies = !args.no_raw && !matches!(store, "memory" | "null");
    let raw_inflight = args.uploads_in_flight * args.logs;
    // The engine and raw PUTs alternate, so drift or a stall of a shared
    // machine or store favours neither side, for throughput and for latency
    // (--rate) alike; each raw phase PUTs objects of the engine's average
    // fragment size so far.
    let rounds = args.rounds;
    let round_duration = Duration::from_secs_f64(args.duration_s as f64 / rounds as f64);
    let raw_duration = RAW_PHASE_LIMIT.min(round_duration);
    let mut raw_phases: Vec<(raw::PhaseReport, f64)> = Vec::new();
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMeta::new());
    let client = Client::start(config.clone(), factory.clone(), meta)
        .map_err(|e| BenchError::Failed(format!("starting the client: {e}")))?;
    let writers = open_writers(&client, args.logs)?;

    let per_appender_rate = args.rate.map(|r| r / args.appenders as f64);
    let mut histogram = latency::histogram();
    let (mut entries, mut errors, mut first_error) = (0u64, 0u64, None);
    let (mut seconds, mut cpu_seconds) = (0.0, 0.0);
    let mut round_mb_s = Vec::new();
    let stats_started = client.stats();
    let truncator = args
        .keep_mb
        .map(|mb| Truncator::start(client.clone(), writers.clone(), mb, args.entry_bytes));
    let mut raw_object_bytes = args.fragment_bytes;
    let raw_total = if raw_applies {
        raw_duration * rounds as u32
    } else {
        Duration::ZERO
    };
    let progress = crate::progress::Progress::start(
        "bench write",
        Duration::from_secs(args.duration_s) + raw_total,
        args.json,
    );
    let sampler = args
        .report
        .is_some()
        .then(|| crate::report::Sampler::start(client.clone(), args.entry_bytes));
    for round in 1..=rounds {
        progress.phase(format!("engine round {round}/{rounds}"));
        let started = Instant::now();
        let cpu_started = crate::process_cpu_seconds();
        let deadline = started + round_duration;
        let threads: Vec<_> = (0..args.appenders)
            .map(|i| {
                let writer = writers[i % writers.len()].clone();
                let args = args.clone();
                std::thread::spawn(move || appender(writer, &args, deadline, per_appender_rate))
            })
            .collect();
        let mut round_entries = 0;
        for thread in threads {
            let result = thread
                .join()
                .map_err(|_| BenchError::Failed("an appender panicked".into()))?;
            histogram.add(&result.histogram).expect("same bounds");
            round_entries += result.entries;
            errors += result.errors;
            first_error = first_error.or(result.first_error);
        }
        let round_seconds = started.elapsed().as_secs_f64();
        cpu_seconds += crate::process_cpu_seconds() - cpu_started;
        seconds += round_seconds;
        entries += round_entries;
        round_mb_s.push(round_entries as f64 * args.entry_bytes as f64 / 1e6 / round_seconds);
        if first_error.is_some() {
            break;
        }
        if raw_applies {
            progress.phase(format!("raw PUTs {round}/{rounds}"));
            let stats = client.stats();
            if let Some(average) = stats.bytes_uploaded.checked_div(stats.fragments_uploaded) {
                raw_object_bytes = (average as usize).max(1);
            }
            raw_phases.push(timed_raw_puts(
                factory.clone(),
                raw_object_bytes,
                raw_inflight,
                raw_duration,
            )?);
        }
    }
    progress.finish();
    let throughput_samples = sampler.map(|s| s.stop()).unwrap_or_default();
    if let Some(truncator) = truncator {
        truncator.stop()?;
    }
    let stats = client.stats();
    for writer in writers {
        if let Ok(writer) = Arc::try_unwrap(writer) {
            let _ = block_on(writer.close());
        }
    }
    if args.metrics {
        eprint!("{}", client.metrics().render());
    }
    let profile = (args.profile || args.report.is_some()).then(|| client.stage_profile());
    for i in 0..args.logs {
        let _ = block_on(client.delete_log(&log_name(i)));
    }
    client.shutdown();
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Some(err) = first_error {
        return Err(BenchError::Failed(format!(
            "{errors} appends failed; first: {err}"
        )));
    }

    let avg_fragment_bytes = stats.bytes_uploaded / stats.fragments_uploaded.max(1);
    let upload_micros = stats.upload_micros - stats_started.upload_micros;
    let uploads = stats.fragments_uploaded - stats_started.fragments_uploaded;
    let payload_bytes = entries as f64 * args.entry_bytes as f64;
    let throughput_mb_s = payload_bytes / 1e6 / seconds;
    let raw_put_mb_s_phases: Vec<f64> = raw_phases.iter().map(|(r, _)| r.mb_s).collect();
    let raw_put_cpu: Vec<f64> = raw_phases.iter().map(|(_, cpu)| *cpu).collect();
    let raw_put_mb_s = crate::mean(&raw_put_mb_s_phases);
    let raw_put_cpu_s_per_gb = crate::mean(&raw_put_cpu);
    let raw_histogram = merged_histogram(raw_phases.iter().map(|(r, _)| &r.histogram));
    let report = WriteReport {
        store: store.to_string(),
        logs: args.logs,
        entry_bytes: args.entry_bytes,
        appenders: args.appenders,
        window: args.window,
        batch: args.batch,
        ack_order: args.ack_order,
        rate: args.rate,
        shards: args.shards,
        flush_policy: args.flush_policy,
        flush_interval_ms: args.flush_interval_ms,
        fragment_bytes_max: args.fragment_bytes,
        uploads_in_flight_max: args.uploads_in_flight,
        keep_mb: args.keep_mb,
        segments_deleted: stats.segments_deleted,
        seconds,
        entries,
        errors,
        throughput_mb_s,
        throughput_mb_s_rounds: round_mb_s,
        entries_per_s: entries as f64 / seconds,
        ack_latency_ms: LatencyMs::from_histogram(&histogram),
        fragments: stats.fragments_uploaded,
        avg_fragment_bytes,
        puts_per_s: uploads as f64 / seconds,
        upload_retries: stats.upload_retries,
        upload_latency_mean_ms: upload_micros as f64 / 1e3 / uploads.max(1) as f64,
        upload_latency_max_ms: stats.upload_micros_max as f64 / 1e3,
        uploads_in_flight_mean: upload_micros as f64 / 1e6 / seconds,
        raw_object_bytes: raw_applies.then_some(raw_object_bytes),
        raw_inflight: raw_applies.then_some(raw_inflight),
        raw_put_mb_s,
        raw_put_mb_s_phases,
        raw_put_latency_ms: raw_histogram.as_ref().map(LatencyMs::from_histogram),
        cpu_s_per_gb: cpu_seconds / (payload_bytes / 1e9).max(1e-9),
        raw_put_cpu_s_per_gb,
        ratio_to_raw: raw_put_mb_s.map(|r| throughput_mb_s / r),
        profile,
    };
    if let Some(path) = &args.report {
        let data = crate::report::ReportData {
            engine_latency: &histogram,
            raw_latency: raw_histogram.as_ref(),
            throughput: &throughput_samples,
        };
        crate::report::write(path, &report, &data)
            .map_err(|e| BenchError::Failed(format!("writing {}: {e}", path.display())))?;
    }
    Ok(report)
}

fn log_name(i: usize) -> String {
    format!("bench-{i}")
}

fn open_writers(client: &Client, logs: usize) -> Result<Vec<Arc<LogWriter>>, BenchError> {
    (0..logs)
        .map(|i| {
            let name = log_name(i);
            block_on(client.create_log(&name))
                .and_then(|_| block_on(client.open_writer(&name)))
                .map(Arc::new)
                .map_err(|e| BenchError::Failed(format!("opening {name}: {e}")))
        })
        .collect()
}
