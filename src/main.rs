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

fn main() -> ExitCode {
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
