//! `campaign`: the fault campaign (see docs/CAMPAIGN.md). Runs writers,
//! readers and truncation against a private etcd and MinIO while it
//! injects faults from a seeded schedule, then checks each run's history.
//!
//!   campaign run --runs 20                 the small mode (scripts/test.sh)
//!   campaign run --runs 1000               the large mode
//!   campaign run --seed S --runs 1         replays the run of seed S
//!   campaign soak --secs 600               the soak (MinIO stalls a minute at a time)

mod check;
mod children;
mod entries;
mod run;
mod schedule;
mod settings;
mod soak;
mod worker;

use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "The fault campaign: faults against real etcd and MinIO, checked")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the campaign.
    Run {
        /// Runs; run i uses seed `seed + i`.
        #[arg(long, default_value_t = 20)]
        runs: u64,
        /// First seed (default: from the clock; printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Seconds of faults per run.
        #[arg(long, default_value_t = 5)]
        fault_secs: u64,
    },
    /// Soaks: appends at half load while MinIO stalls a minute at a time.
    Soak {
        #[arg(long, default_value_t = 600)]
        secs: u64,
        #[arg(long, default_value_t = 60)]
        stall_secs: u64,
        /// Seconds between stalls.
        #[arg(long, default_value_t = 60)]
        calm_secs: u64,
    },
    /// (child) Writes every log of a run.
    #[command(hide = true)]
    Writer {
        #[arg(long)]
        settings: String,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        window: usize,
        #[arg(long)]
        rate: u64,
    },
    /// (child) Tails every log of a run.
    #[command(hide = true)]
    Reader {
        #[arg(long)]
        settings: String,
    },
}

fn settings(json: &str) -> settings::Settings {
    serde_json::from_str(json).expect("--settings is the parent's JSON")
}

fn main() {
    match Cli::parse().command {
        Command::Writer {
            settings: s,
            id,
            window,
            rate,
        } => worker::writer(settings(&s), id, worker::Load { window, rate }),
        Command::Reader { settings: s } => worker::reader(settings(&s)),
        Command::Soak {
            secs,
            stall_secs,
            calm_secs,
        } => std::process::exit(soak::soak(
            1,
            Duration::from_secs(secs),
            Duration::from_secs(stall_secs),
            Duration::from_secs(calm_secs),
        )),
        Command::Run {
            runs,
            seed,
            fault_secs,
        } => {
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            });
            std::process::exit(campaign(seed, runs, Duration::from_secs(fault_secs)));
        }
    }
}

fn campaign(seed: u64, runs: u64, window: Duration) -> i32 {
    println!(
        "campaign: {runs} runs from seed {seed}, {} s of faults each",
        window.as_secs()
    );
    let started = Instant::now();
    let mut cluster = run::Cluster::start(seed);
    let mut faults: BTreeMap<schedule::Fault, usize> = BTreeMap::new();
    let (mut acks, mut entries, mut reads, mut unknown) = (0, 0, 0, 0);
    let mut failed = Vec::new();
    let mut rss_max = 0;
    for i in 0..runs {
        let report = run::run_once(&mut cluster, seed + i, window);
        for (fault, n) in &report.faults {
            *faults.entry(*fault).or_default() += n;
        }
        acks += report.checked.acks;
        entries += report.checked.entries;
        reads += report.checked.reads;
        unknown += report.unknown;
        rss_max = rss_max.max(report.rss_max_bytes);
        let kinds: Vec<String> = report
            .faults
            .iter()
            .map(|(f, n)| format!("{f:?}x{n}"))
            .collect();
        println!(
            "run {i} seed {}: {} acks, {} entries, {} reads checked; {} outcome unknown; RSS max {} MiB; faults {}; {} violations",
            report.seed,
            report.checked.acks,
            report.checked.entries,
            report.checked.reads,
            report.unknown,
            report.rss_max_bytes >> 20,
            kinds.join(" "),
            report.violations.len()
        );
        for violation in &report.violations {
            println!("  VIOLATION (seed {}): {violation}", report.seed);
        }
        if !report.violations.is_empty() {
            failed.push(report.seed);
        }
    }
    let kinds: Vec<String> = faults.iter().map(|(f, n)| format!("{f:?} {n}")).collect();
    println!(
        "campaign: {runs} runs in {:.0} s; faults: {}; checked {acks} acknowledged entries, {entries} stored entries, {reads} reads; {unknown} outcome unknown; RSS max {} MiB; {} runs with violations{}",
        started.elapsed().as_secs_f64(),
        kinds.join(", "),
        rss_max >> 20,
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" (seeds {failed:?}; replay one with --seed S --runs 1)")
        }
    );
    i32::from(!failed.is_empty())
}
