//! The `woodpecker` command: benchmarks, the HTTP service, the
//! configuration, and the admin commands (logs, fsck, inspect).

mod admin;
mod config;
mod logging;
mod serve;
mod start;

use clap::{Parser, Subcommand};
use logging::LogFormat;
use std::path::PathBuf;
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
    /// Configuration file (YAML: this project's keys or Woodpecker's
    /// woodpecker.yaml keys; docs/CONFIG.md). Flags override the
    /// WOODPECKER_* environment, which overrides the file.
    #[arg(long, global = true, env = woodpecker_tuning::ENV_CONFIG, value_name = "FILE")]
    config: Option<PathBuf>,
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
    /// Show the effective configuration, or check a file.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Manage logs and print their entries (directly against etcd and the
    /// object store).
    #[command(subcommand)]
    Log(admin::log::LogCommand),
    /// Check logs whole: every checksum, offsets dense, seals against the
    /// objects, fence markers, orphaned objects. Exits non-zero on a problem.
    Fsck(admin::FsckArgs),
    /// Decode one object: a fragment (header and entries) or a fence marker.
    Inspect(admin::InspectArgs),
    /// Probe the object store within a time budget and recommend settings
    /// (written as a configuration file).
    Tune(woodpecker_bench::tune::TuneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = logging::init(cli.log_level.as_deref(), cli.log_format) {
        eprintln!("woodpecker: {err}");
        return ExitCode::from(2);
    }
    let file = cli.config.as_deref();
    let result = match cli.command {
        Command::Bench(command) => config::load(file, &command.flags())
            .and_then(|loaded| woodpecker_bench::run(command, &loaded).map_err(|e| e.to_string())),
        Command::Serve(args) => {
            config::load(file, &args.flags()).and_then(|loaded| serve::run(&loaded))
        }
        Command::Config(command) => config::run(command, file),
        Command::Log(command) => {
            admin_client(file).and_then(|client| admin::log::run(&client, command))
        }
        Command::Fsck(args) => admin_client(file).and_then(|client| admin::fsck(&client, args)),
        Command::Tune(args) => {
            config::load(file, &args.flags()).and_then(|loaded| tune(args, &loaded))
        }
        Command::Inspect(args) => {
            admin_client(file).and_then(|client| admin::inspect(&client, args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("woodpecker: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The client admin commands run on: the configuration's store and etcd.
fn admin_client(file: Option<&std::path::Path>) -> Result<woodpecker_shards::Client, String> {
    config::load(file, &[]).and_then(|loaded| start::admin_client(&loaded.settings))
}

/// Runs `tune`, prints its report, and fails on a store fencing cannot
/// trust (after writing the file, so the measurements are not lost).
fn tune(
    args: woodpecker_bench::tune::TuneArgs,
    loaded: &woodpecker_tuning::Loaded,
) -> Result<(), String> {
    let json = args.json;
    let report = woodpecker_bench::tune::run(args, loaded).map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("reports serialize")
        );
    } else {
        woodpecker_bench::tune::print_report(&report);
    }
    match report.unsafe_store() {
        Some(warning) => Err(warning),
        None => Ok(()),
    }
}
