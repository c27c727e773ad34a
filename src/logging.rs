//! Structured logs on stderr for the `woodpecker` binary: the engine's
//! `tracing` events and libraries' `log` records (glommio reports executor
//! stalls that way) go through one subscriber, as text or JSON lines.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// The filter when neither `--log-level` nor `RUST_LOG` gives one: warnings
/// and errors only, so a benchmark's own output stays readable.
pub const DEFAULT_FILTER: &str = "warn";

/// Installs the process's subscriber. `level` (from `--log-level`) wins
/// over `RUST_LOG`, which wins over [`DEFAULT_FILTER`]; either may be a
/// level (`info`) or directives (`warn,woodpecker_shards=debug`).
pub fn init(level: Option<&str>, format: LogFormat) -> Result<(), String> {
    let (directives, source) = match level {
        Some(level) => (level.to_string(), "--log-level"),
        None => match std::env::var("RUST_LOG") {
            Ok(value) if !value.trim().is_empty() => (value, "RUST_LOG"),
            _ => (DEFAULT_FILTER.to_string(), "the default"),
        },
    };
    let filter = EnvFilter::try_new(&directives)
        .map_err(|e| format!("bad log filter {directives:?} from {source}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| format!("installing the log subscriber: {e}"))
}
