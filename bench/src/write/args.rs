//! `bench write`'s arguments and the engine configuration they give.

use super::*;

#[derive(Debug, Clone, clap::Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub target: crate::StoreArgs,
    #[command(flatten)]
    pub service: crate::service::ServiceArgs,
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
    /// free, the fragment is worth one, engine.flush_bytes_per_upload, and
    /// the queued appends are in) or `interval` (at --flush-interval-ms)
    /// [default: adaptive; engine.flush_policy].
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
    /// PUTs the raw phases keep in flight [default: --uploads-in-flight
    /// times --logs, the engine's own parallelism]; 1 gives the latency of
    /// a lone PUT of the engine's fragment size, next to the acks.
    #[arg(long, value_name = "N")]
    pub raw_inflight: Option<usize>,
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
    pub(super) fn resolve(&mut self, loaded: &Loaded) {
        let engine = &loaded.settings.engine;
        self.flush_policy = engine.flush_policy;
        self.flush_interval_ms = engine.flush_interval_ms;
        self.fragment_bytes = engine.fragment_bytes_max;
        self.uploads_in_flight = engine.uploads_in_flight_max;
        self.shards = engine.shards;
    }

    pub(super) fn validate(&self) -> Result<(), BenchError> {
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
        if positive.contains(&0)
            || self.duration_s == 0
            || self.flush_interval_ms == 0
            || self.raw_inflight == Some(0)
        {
            return Err(BenchError::Invalid(
                "counts, sizes, --duration-s, --flush-interval-ms and --raw-inflight must be \
                 positive"
                    .into(),
            ));
        }
        if self.service.url.is_some()
            && (self.keep_mb.is_some() || self.profile || self.report.is_some())
        {
            return Err(BenchError::Invalid(
                "--keep-mb, --profile and --report measure the embedded engine; not with --target"
                    .into(),
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
    pub(super) fn config(&self, loaded: &Loaded) -> Config {
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
