//! `woodpecker tune`: probe the configured object store within a time
//! budget (what it promises, and PUT/GET throughput and latency across
//! object sizes and concurrency), then recommend the engine's settings for
//! a goal, explain them, and write them as a configuration file.

pub mod advise;
mod grid;
mod output;
mod probe;

use crate::raw::{bench_store, fastrand_u64};
use crate::BenchError;
use advise::{Goal, Model, Recommendation};
use grid::Grid;
use probe::{Conditional, Probes};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use woodpecker_tuning::{Flag, Loaded, StoreKind};

#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub target: crate::StoreArgs,
    /// Seconds the whole measurement may take, at most.
    #[arg(long, default_value_t = 60)]
    pub budget_s: u64,
    /// Object sizes to measure (units as in the configuration: 256KiB,
    /// 8MiB).
    #[arg(long, value_delimiter = ',', value_parser = parse_size,
          default_value = "256KiB,1MiB,4MiB,8MiB,16MiB,32MiB")]
    pub sizes: Vec<u64>,
    /// Requests in flight to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub inflight: Vec<usize>,
    #[arg(long, value_enum, default_value_t = Goal::Throughput)]
    pub goal: Goal,
    /// With --goal latency: the ack p99 to stay under, in milliseconds.
    #[arg(long)]
    pub p99_ms: Option<f64>,
    /// Where the recommended configuration is written.
    #[arg(long, default_value = "woodpecker-tuned.yaml")]
    pub output: PathBuf,
    /// Print everything measured as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_size(text: &str) -> Result<u64, String> {
    woodpecker_tuning::units::parse_bytes(text)
}

impl TuneArgs {
    pub fn flags(&self) -> Vec<Flag> {
        self.target.flags()
    }

    fn validate(&self) -> Result<(), BenchError> {
        let invalid = |msg: &str| Err(BenchError::Invalid(msg.into()));
        if self.budget_s == 0 {
            return invalid("--budget-s must be positive");
        }
        let fragment = woodpecker_shards::config::FRAGMENT_BYTES;
        if self.sizes.is_empty()
            || self
                .sizes
                .iter()
                .any(|&s| !fragment.contains(&(s as usize)))
        {
            return invalid("--sizes must be between 4KiB and 4GiB (a fragment's bounds)");
        }
        if self.inflight.is_empty() || self.inflight.contains(&0) {
            return invalid("--inflight values must be positive");
        }
        match (self.goal, self.p99_ms) {
            (Goal::Latency, None) => invalid("--goal latency needs --p99-ms"),
            (Goal::Latency, Some(ms)) if ms <= 0.0 => invalid("--p99-ms must be positive"),
            (Goal::Throughput, Some(_)) => invalid("--p99-ms goes with --goal latency"),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    pub store: String,
    pub budget_s: u64,
    pub seconds: f64,
    pub probes: Probes,
    pub grid: Grid,
    pub model: Model,
    pub recommendation: Recommendation,
    /// The configuration file written.
    pub output: PathBuf,
}

impl TuneReport {
    /// Fencing relies on put-if-absent: a store that does not enforce it
    /// must not be used, whatever its speed.
    pub fn unsafe_store(&self) -> Option<String> {
        (self.probes.conditional_put != Conditional::Enforced).then(|| {
            format!(
                "this store does not enforce put-if-absent (If-None-Match: *): {}. \
                 Fencing is UNSAFE on it: two writers of one log could both land \
                 fragments and acknowledged entries could be lost",
                self.probes.conditional_detail
            )
        })
    }
}

/// Measures, recommends and writes the configuration file.
pub fn run(args: TuneArgs, loaded: &Loaded) -> Result<TuneReport, BenchError> {
    args.validate()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.budget_s);
    let (factory, temp_dir) = bench_store(loaded)?;
    let sends_checksum =
        loaded.settings.store.kind != StoreKind::S3 || loaded.settings.store.s3.send_checksum;
    let core = woodpecker_shards::available_cores().first().copied();
    let (sizes, inflight) = (args.sizes.clone(), args.inflight.clone());
    let progress =
        crate::progress::Progress::start("tune", Duration::from_secs(args.budget_s), args.json);
    progress.phase("probing, then PUT and GET at each size and concurrency".into());
    let shard = woodpecker_shards::spawn_shard("tune", core, false, move || async move {
        let store = factory.open()?;
        let prefix = format!("woodpecker-tune/{:016x}", fastrand_u64());
        let probes = probe::run(&store, &format!("{prefix}/probe"), sends_checksum).await;
        let grid = grid::measure(&store, &prefix, &sizes, &inflight, deadline).await?;
        Ok::<_, BenchError>((factory.config().kind().to_string(), probes, grid))
    })
    .map_err(|e| BenchError::Failed(e.to_string()))?;
    let measured = shard
        .join()
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    progress.finish();
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (store, probes, grid) = measured?;
    let points: Vec<_> = grid.cells.iter().map(grid::Cell::point).collect();
    let model = advise::fit(&points).ok_or_else(|| {
        BenchError::Failed(format!(
            "no setting could be measured within --budget-s {}: {}",
            args.budget_s,
            grid.skipped
                .first()
                .map_or("nothing was planned", |s| s.reason.as_str())
        ))
    })?;
    let best_get = grid
        .cells
        .iter()
        .max_by(|a, b| a.get.mb_s.total_cmp(&b.get.mb_s))
        .map_or(1, |cell| cell.get_inflight);
    let recommendation = advise::recommend(&points, &model, args.goal, args.p99_ms, best_get)
        .map_err(BenchError::Invalid)?;
    let report = TuneReport {
        store,
        budget_s: args.budget_s,
        seconds: started.elapsed().as_secs_f64(),
        probes,
        grid,
        model,
        recommendation,
        output: args.output.clone(),
    };
    output::write_config(&report, loaded, &args.output)?;
    Ok(report)
}

pub use output::print_report;
