//! The `woodpecker` command: benchmarks and the HTTP service; tune and log
//! admin as they arrive.

mod logging;
mod serve;

use clap::{Parser, Subcommand};
use logging::LogFormat;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "woodpecker",
    version,
    about = "A write-ahead log on object storage"
)]
struct Cli {
    /// Log filter on stderr: a level (error, warn, info, debug, trace) or
    /// RUST_LOG-style directives. Default: RUST_LOG, else warn.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure throughput and latency.
    #[command(subcommand)]
    Bench(woodpecker_bench::BenchCommand),
    /// Serve the HTTP API (v1) until SIGTERM.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = logging::init(cli.log_level.as_deref(), cli.log_format) {
        eprintln!("woodpecker: {err}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Bench(command) => woodpecker_bench::run(command).map_err(|e| e.to_string()),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("woodpecker: {err}");
            ExitCode::FAILURE
        }
    }
}
