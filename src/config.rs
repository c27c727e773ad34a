//! `woodpecker config show|check`, and loading the configuration every
//! command runs with: `--config FILE` (or `WOODPECKER_CONFIG`), then
//! `WOODPECKER_*` variables, then the command's own flags.

use std::path::{Path, PathBuf};
use woodpecker_tuning::{Flag, Loaded};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file, environment and defaults
    /// layered) with the origin of each value; secrets are masked.
    Show,
    /// Validate a configuration file: exits non-zero naming every problem
    /// (unknown keys with their line, values that do not parse, settings
    /// out of range); prints the warnings for keys with no meaning here.
    Check {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
}

/// Loads the configuration for a command and logs its warnings.
pub fn load(file: Option<&Path>, flags: &[Flag]) -> Result<Loaded, String> {
    let loaded = woodpecker_tuning::load(file, flags).map_err(|e| e.to_string())?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded)
}

pub fn run(command: ConfigCommand, file: Option<&Path>) -> Result<(), String> {
    match command {
        ConfigCommand::Show => {
            let loaded = load(file, &[])?;
            print!("{}", loaded.show());
            loaded.settings.validate()
        }
        ConfigCommand::Check { file: checked } => {
            let path = checked.as_deref().or(file).ok_or(
                "config check: name a file (woodpecker config check FILE, or --config FILE)",
            )?;
            // With this environment, as the process would run (secrets
            // often come from the environment rather than the file).
            let loaded = woodpecker_tuning::load(Some(path), &[]).map_err(|e| e.to_string())?;
            for warning in &loaded.warnings {
                println!("warning: {warning}");
            }
            loaded
                .settings
                .validate()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{}: ok", path.display());
            Ok(())
        }
    }
}
