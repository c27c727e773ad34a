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
//!
//! With `--target URL` the same appenders drive a `woodpecker serve`
//! process through the remote client: its rounds alternate with rounds of
//! the embedded engine on the store configured here (and the raw PUTs),
//! the report's figures are the service's (uploads from the server's
//! `/metrics`), and `embedded` and `service_to_embedded` compare the two.

mod appender;
mod args;
mod phases;
mod requests;
mod side;
mod summary;
mod writers;

pub use appender::AckOrder;
pub use args::WriteArgs;
pub use requests::RequestFigures;
pub use side::SideFigures;
pub use summary::print_summary;

use crate::latency::{self, LatencyMs};
use crate::raw::{self, Limits};
use crate::BenchError;
use appender::appender;
use bytes::Bytes;
use futures::ready;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use hdrhistogram::Histogram;
use phases::{merged_histogram, timed_raw_puts, Truncator};
use serde::Serialize;
use side::{log_name, Side};
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
use writers::{Acked, BenchWriter};

/// How often the --keep-mb consumer truncates (and the auditor looks).
const TRUNCATE_INTERVAL: Duration = Duration::from_millis(100);
/// Time allowed for in-flight appends to finish after the run ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Longest raw baseline phase.
const RAW_PHASE_LIMIT: Duration = Duration::from_secs(10);

/// MB = 10^6 bytes of payload.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    pub store: String,
    /// The server benchmarked (`--target`); the figures below are then
    /// the service's, and `embedded` the engine's in the same run.
    pub target: Option<String>,
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
    /// and in the ack latency of every entry behind it). With `target`, the
    /// upper bound of the server's histogram bucket that holds it.
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
    /// With --target: the server's CPU seconds per GB during the service
    /// phases (from its `process_cpu_seconds_total`); `cpu_s_per_gb` is
    /// then the client's alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_s_per_gb: Option<f64>,
    /// With --target: the service phases' append requests, their round
    /// trips and the server's part of them (its `Server-Timing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_requests: Option<RequestFigures>,
    /// The machine's TCP retransmissions, loss probes and zero-window
    /// adverts during the engine (or service) phases; see
    /// [`crate::tcp`]. None when no phase used the network (a local,
    /// memory or null store without a server).
    pub tcp: Option<crate::tcp::TcpCounters>,
    /// The same for the raw PUTs (mean of the phases).
    pub raw_put_cpu_s_per_gb: Option<f64>,
    pub ratio_to_raw: Option<f64>,
    /// With --target: the embedded engine's figures, from phases
    /// alternating with the service's on the same store.
    pub embedded: Option<SideFigures>,
    /// With --target: service throughput / embedded throughput.
    pub service_to_embedded: Option<f64>,
    /// With --profile: each stage's share of the ack latency.
    pub profile: Option<woodpecker_shards::StageProfile>,
}

pub fn run(mut args: WriteArgs, loaded: &Loaded) -> Result<WriteReport, BenchError> {
    args.resolve(loaded);
    args.validate()?;
    let requests = args
        .service
        .url
        .is_some()
        .then(requests::RequestTimings::new);
    let remote = args
        .service
        .client_observed(requests.as_ref().map(|r| r.observer()))?;
    let (factory, temp_dir) = raw::bench_store(loaded)?;
    let config = args.config(loaded);
    config.validate().map_err(BenchError::Invalid)?;
    let store = factory.config().kind();
    let raw_applies = !args.no_raw && !matches!(store, "memory" | "null");
    let raw_inflight = args
        .raw_inflight
        .unwrap_or(args.uploads_in_flight * args.logs);
    // The sides (with --target the server and the engine, taking turns to
    // go first) and raw PUTs alternate, so drift or a stall of a shared
    // machine or store favours none of them, for throughput and for
    // latency (--rate) alike; each raw phase PUTs objects of the first
    // side's average fragment size so far.
    let rounds = args.rounds;
    let round_duration = Duration::from_secs_f64(args.duration_s as f64 / rounds as f64);
    let raw_duration = RAW_PHASE_LIMIT.min(round_duration);
    let mut raw_phases: Vec<(raw::PhaseReport, f64)> = Vec::new();
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMeta::new());
    let client = Client::start(config.clone(), factory.clone(), meta)
        .map_err(|e| BenchError::Failed(format!("starting the client: {e}")))?;
    let mut sides = Vec::new();
    if let Some(remote) = &remote {
        sides.push(Side::remote(remote, args.logs)?);
    }
    sides.push(Side::embedded(&client, args.logs)?);

    let per_appender_rate = args.rate.map(|r| r / args.appenders as f64);
    let truncator = args.keep_mb.map(|mb| {
        let writers = sides[0]
            .writers
            .iter()
            .map(|w| match w {
                BenchWriter::Embedded(w) => w.clone(),
                BenchWriter::Remote(_) => unreachable!("validated: no --keep-mb with --target"),
            })
            .collect();
        Truncator::start(client.clone(), writers, mb, args.entry_bytes)
    });
    let mut raw_object_bytes = args.fragment_bytes;
    let raw_total = if raw_applies {
        raw_duration * rounds as u32
    } else {
        Duration::ZERO
    };
    let progress = crate::progress::Progress::start(
        "bench write",
        Duration::from_secs(args.duration_s) * sides.len() as u32 + raw_total,
        args.json,
    );
    let sampler = args
        .report
        .is_some()
        .then(|| crate::report::Sampler::start(client.clone(), args.entry_bytes));
    'rounds: for round in 1..=rounds {
        // The sides take turns going first (ABBA), so what a phase leaves
        // behind on the store (a raw phase's deletes) burdens neither.
        let order: Vec<usize> = match round % 2 {
            1 => (0..sides.len()).collect(),
            _ => (0..sides.len()).rev().collect(),
        };
        for i in order {
            let side = &mut sides[i];
            progress.phase(format!("{} round {round}/{rounds}", side.label));
            if !side.round(&args, round_duration, per_appender_rate)? {
                break 'rounds;
            }
        }
        if raw_applies {
            progress.phase(format!("raw PUTs {round}/{rounds}"));
            let stats = sides[0].stats()?;
            let started = &sides[0].stats_started;
            let bytes = stats.bytes_uploaded - started.bytes_uploaded;
            if let Some(average) =
                bytes.checked_div(stats.fragments_uploaded - started.fragments_uploaded)
            {
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
    let ends = sides
        .iter()
        .map(Side::stats)
        .collect::<Result<Vec<_>, _>>()?;
    let figures: Vec<SideFigures> = sides
        .iter()
        .zip(&ends)
        .map(|(side, end)| side.figures(args.entry_bytes, end))
        .collect();
    let stats = ends[0];
    let histogram = sides[0].histogram.clone();
    let seconds = sides[0].seconds;
    let first_error = sides.iter_mut().find_map(|s| s.first_error.take());
    let errors: u64 = sides.iter().map(|s| s.errors).sum();
    let stats_started = sides[0].stats_started;
    for side in sides {
        side.finish();
    }
    if args.metrics {
        eprint!("{}", client.metrics().render());
    }
    let profile = (args.profile || args.report.is_some()).then(|| client.stage_profile());
    client.shutdown();
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Some(err) = first_error {
        return Err(BenchError::Failed(format!(
            "{errors} appends failed; first: {err}"
        )));
    }

    let main = &figures[0];
    let upload_micros = stats.upload_micros - stats_started.upload_micros;
    let uploads = main.fragments;
    let raw_put_mb_s_phases: Vec<f64> = raw_phases.iter().map(|(r, _)| r.mb_s).collect();
    let raw_put_cpu: Vec<f64> = raw_phases.iter().map(|(_, cpu)| *cpu).collect();
    let raw_put_mb_s = crate::mean(&raw_put_mb_s_phases);
    let raw_put_cpu_s_per_gb = crate::mean(&raw_put_cpu);
    let raw_histogram = merged_histogram(raw_phases.iter().map(|(r, _)| &r.histogram));
    // TCP counters mean something only when the bytes cross sockets: to
    // an S3 store, or to the server.
    let over_network = store == "s3" || args.service.url.is_some();
    let embedded = figures.get(1).cloned();
    let report = WriteReport {
        store: store.to_string(),
        target: args.service.url.clone(),
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
        entries: main.entries,
        errors,
        throughput_mb_s: main.throughput_mb_s,
        throughput_mb_s_rounds: main.throughput_mb_s_rounds.clone(),
        entries_per_s: main.entries_per_s,
        ack_latency_ms: main.ack_latency_ms,
        fragments: uploads,
        avg_fragment_bytes: main.avg_fragment_bytes,
        puts_per_s: main.puts_per_s,
        upload_retries: stats.upload_retries - stats_started.upload_retries,
        upload_latency_mean_ms: upload_micros as f64 / 1e3 / uploads.max(1) as f64,
        upload_latency_max_ms: stats.upload_micros_max as f64 / 1e3,
        uploads_in_flight_mean: upload_micros as f64 / 1e6 / seconds.max(1e-9),
        raw_object_bytes: raw_applies.then_some(raw_object_bytes),
        raw_inflight: raw_applies.then_some(raw_inflight),
        raw_put_mb_s,
        raw_put_mb_s_phases,
        raw_put_latency_ms: raw_histogram.as_ref().map(LatencyMs::from_histogram),
        cpu_s_per_gb: main.cpu_s_per_gb,
        server_cpu_s_per_gb: main.server_cpu_s_per_gb,
        append_requests: requests.and_then(|r| r.figures()),
        tcp: main.tcp.filter(|_| over_network),
        raw_put_cpu_s_per_gb,
        ratio_to_raw: raw_put_mb_s.map(|r| main.throughput_mb_s / r),
        service_to_embedded: embedded
            .as_ref()
            .map(|e| main.throughput_mb_s / e.throughput_mb_s.max(1e-9)),
        embedded,
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
