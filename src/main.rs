//! The `woodpecker` command: benchmarks today; serve, tune and log admin as
//! they arrive.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "woodpecker",
    version,
    about = "A write-ahead log on object storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure throughput and latency.
    #[command(subcommand)]
    Bench(woodpecker_bench::BenchCommand),
}

/// Prints warnings and errors from libraries (glommio reports executor
/// stalls, with a backtrace, as `log` warnings) on stderr.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("woodpecker: {}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

fn main() -> ExitCode {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(command) => woodpecker_bench::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("woodpecker: {err}");
            ExitCode::FAILURE
        }
    }
}
