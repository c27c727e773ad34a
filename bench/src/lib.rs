//! The benchmark and latency-profiling tool behind `woodpecker bench`.
//!
//! Every figure comes from a run of this tool (never from a timed test);
//! ratios are taken within one run, against a baseline measured on the same
//! store in that run, because the machines it runs on are shared and noisy.

pub mod compare;
pub mod latency;
pub mod profile;
mod progress;
pub mod raw;
pub mod read;
pub mod report;
pub mod service;
pub mod tcp;
pub mod tune;
pub mod write;

use woodpecker_engine::store::StoreError;
use woodpecker_tuning::{Flag, Loaded};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid benchmark arguments: {0}")]
    Invalid(String),
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    #[error("benchmark failed: {0}")]
    Failed(String),
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Raw PUT and GET throughput of the object store (the baseline).
    Raw(raw::RawArgs),
    /// Engine write throughput and ack latency, with the raw PUT baseline.
    Write(Box<write::WriteArgs>),
    /// Catch-up read throughput against raw GETs, and tail latency.
    Read(read::ReadArgs),
    /// The differences between two runs' JSON reports.
    Compare(compare::CompareArgs),
}

/// Which object store a benchmark runs on; the rest of the store's
/// settings come from the configuration (`--config`, `WOODPECKER_*`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArgs {
    /// Object store: local, s3 (store.s3.* in the configuration, or
    /// WOODPECKER_S3_*), memory, or null (discards bytes) [default: local;
    /// store.kind].
    #[arg(long, value_name = "KIND")]
    pub store: Option<String>,
    /// Directory of the local store [default: a temporary directory, unless
    /// store.local_dir is configured].
    #[arg(long, value_name = "DIR")]
    pub local_dir: Option<String>,
}

impl StoreArgs {
    fn flags(&self) -> Vec<Flag> {
        Flag::given(&[
            ("store.kind", "store", &self.store),
            ("store.local_dir", "local-dir", &self.local_dir),
        ])
    }
}

impl BenchCommand {
    /// The configuration this command's flags override.
    pub fn flags(&self) -> Vec<Flag> {
        match self {
            BenchCommand::Raw(args) => args.target.flags(),
            BenchCommand::Write(args) => args.flags(),
            BenchCommand::Read(args) => args.target.flags(),
            BenchCommand::Compare(_) => Vec::new(),
        }
    }
}

/// Runs one benchmark with the loaded configuration and prints its report.
pub fn run(command: BenchCommand, loaded: &Loaded) -> Result<(), BenchError> {
    match command {
        BenchCommand::Raw(args) => {
            let json = args.json;
            emit(json, &raw::run(args, loaded)?, raw::print_table);
        }
        BenchCommand::Write(args) => {
            let json = args.json;
            emit(json, &write::run(*args, loaded)?, write::print_summary);
        }
        BenchCommand::Read(args) => {
            let json = args.json;
            emit(json, &read::run(args, loaded)?, read::print_summary);
        }
        BenchCommand::Compare(args) => print!("{}", compare::run(&args)?),
    }
    Ok(())
}

/// Prints a report as one JSON object, or as its readable summary.
fn emit<R: serde::Serialize>(json: bool, report: &R, summary: fn(&R)) {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).expect("reports serialize")
        );
    } else {
        summary(report);
    }
}

/// The mean, or `None` for no values.
pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Per-phase throughputs for a summary line: `a, b, c` (one decimal).
pub(crate) fn mb_s_list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CPU seconds (user + system) this process has used so far, all threads.
/// Differences of it give the client's CPU cost of a benchmark phase, which
/// on a shared machine says more than wall-clock time alone.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
