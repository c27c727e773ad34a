//! The effective configuration: defaults, then the file, then
//! `WOODPECKER_*` environment variables, then command-line flags, each
//! layer overriding the one before (merged by figment), with the origin of
//! every value kept for `woodpecker config show`.

use crate::file;
use crate::keys::{self, NativeKey, Raw, ENV_ALIASES};
use crate::settings::Settings;
use crate::units::BareDuration;
use crate::ConfigError;
use figment::providers::Serialized;
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable naming the configuration file (`--config`).
pub const ENV_CONFIG: &str = "WOODPECKER_CONFIG";

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File {
        path: PathBuf,
        line: usize,
        /// The file's key (a Woodpecker key where one was used).
        key: String,
    },
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File { path, line, key } => {
                write!(f, "file {}:{line} ({key})", path.display())
            }
            Origin::Env(name) => write!(f, "environment {name}"),
            Origin::Flag(name) => write!(f, "flag --{name}"),
        }
    }
}

/// A command-line flag given explicitly: its setting and its text.
#[derive(Clone, Debug)]
pub struct Flag {
    /// The setting (`engine.fragment_bytes_max`).
    pub key: &'static str,
    /// The flag's name without dashes (`fragment-bytes`).
    pub name: &'static str,
    pub value: String,
}

impl Flag {
    /// The flags of `given` (setting, flag name, value) that were given.
    pub fn given(given: &[(&'static str, &'static str, &Option<String>)]) -> Vec<Flag> {
        given
            .iter()
            .filter_map(|(key, name, value)| {
                value.as_ref().map(|value| Flag {
                    key,
                    name,
                    value: value.clone(),
                })
            })
            .collect()
    }
}

/// The effective settings, where each came from, and the warnings
/// (ignored keys and variables) to show the operator.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
    origins: BTreeMap<String, Origin>,
}

impl Loaded {
    pub fn origin(&self, key: &str) -> &Origin {
        self.origins.get(key).unwrap_or(&Origin::Default)
    }

    /// True when no layer set `key`.
    pub fn is_default(&self, key: &str) -> bool {
        !self.origins.contains_key(key)
    }

    /// Every setting, its value (secrets masked) and its origin, a line each.
    pub fn show(&self) -> String {
        let json = serde_json::to_value(&self.settings).expect("settings serialize");
        let rows: Vec<(String, String, String)> = keys::flatten(&json)
            .into_iter()
            .map(|(key, value)| {
                let text = render(&key, value);
                let origin = self.origin(&key).to_string();
                (key, text, origin)
            })
            .collect();
        let key_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let value_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).min(40);
        rows.iter()
            .map(|(key, value, origin)| {
                format!("{key:key_width$}  {value:value_width$}  # {origin}\n")
            })
            .collect()
    }
}

fn render(key: &str, value: &Value) -> String {
    match value {
        Value::String(s) if keys::is_secret(key) && !s.is_empty() => "********".to_string(),
        Value::Array(items) if keys::is_secret(key) && !items.is_empty() => {
            format!("******** ({} values)", items.len())
        }
        Value::String(s) => s.clone(),
        Value::Null => "(none)".to_string(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Loads the configuration from `file` (if any), this process's
/// environment and `flags`.
pub fn load(file: Option<&Path>, flags: &[Flag]) -> Result<Loaded, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with("WOODPECKER_"))
        .collect();
    load_with(file, &env, flags)
}

/// [`load`] with the environment given (for tests).
pub fn load_with(
    file: Option<&Path>,
    env: &[(String, String)],
    flags: &[Flag],
) -> Result<Loaded, ConfigError> {
    let natives = keys::native_keys();
    let mut warnings = Vec::new();
    let mut layers = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Invalid(format!("config file {}: {e}", path.display())))?;
        let values = file::parse(&path.display().to_string(), &text, &natives)?;
        warnings.extend(values.warnings);
        let values = values
            .values
            .into_iter()
            .map(|v| {
                let origin = Origin::File {
                    path: path.to_path_buf(),
                    line: v.line,
                    key: v.key,
                };
                (v.native, v.value, origin)
            })
            .collect();
        layers.push(Layer {
            name: format!("file {}", path.display()),
            values,
        });
    }
    layers.push(env_layer(&natives, env, &mut warnings)?);
    layers.push(flag_layer(&natives, flags)?);

    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    let mut origins = BTreeMap::new();
    for layer in &layers {
        figment = figment.merge(layer);
        for (key, _, origin) in &layer.values {
            origins.insert(key.clone(), origin.clone());
        }
    }
    let settings: Settings = figment.extract().map_err(|e| {
        let key = e.path.join(".");
        let origin = origins.get(&key).cloned().unwrap_or(Origin::Default);
        ConfigError::Invalid(format!("{key} (from {origin}): {}", e.kind))
    })?;
    Ok(Loaded {
        settings,
        warnings,
        origins,
    })
}

fn env_layer(
    natives: &[NativeKey],
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<Layer, ConfigError> {
    let long: Vec<(String, &NativeKey)> = natives.iter().map(|k| (k.env_name(), k)).collect();
    let find = |path: &str| natives.iter().find(|k| k.path == path);
    let mut values = Vec::new();
    let mut problems = Vec::new();
    let mut set = |name: &str, text: &str, key: &NativeKey| match keys::convert(
        key.kind,
        &Raw::Scalar(text.to_string()),
        BareDuration::Millis,
    ) {
        Ok(value) => values.push((key.path.clone(), value, Origin::Env(name.to_string()))),
        Err(e) => problems.push(format!("{name}: {e}")),
    };
    let mut sorted: Vec<&(String, String)> =
        env.iter().filter(|(_, v)| !v.trim().is_empty()).collect();
    sorted.sort();
    // Aliases first, so the long name of the same setting wins.
    for (name, text) in &sorted {
        if let Some((_, path)) = ENV_ALIASES.iter().find(|(alias, _)| alias == name) {
            set(name, text, find(path).expect("aliases name settings"));
        }
    }
    for (name, text) in &sorted {
        if let Some((_, key)) = long.iter().find(|(long, _)| long == name) {
            set(name, text, key);
        } else if !is_other_variable(name) && !ENV_ALIASES.iter().any(|(a, _)| a == name) {
            let names = long
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(ENV_ALIASES.iter().map(|(a, _)| *a));
            let hint = keys::nearest(name, names)
                .map(|n| format!("; did you mean {n}?"))
                .unwrap_or_default();
            warnings.push(format!(
                "environment variable {name} is not a setting{hint}"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::File(problems));
    }
    Ok(Layer {
        name: "environment".to_string(),
        values,
    })
}

/// `WOODPECKER_*` variables that are not settings: the file's name, the
/// servers' directory `scripts/servers.sh` prints, and the test suite's own.
fn is_other_variable(name: &str) -> bool {
    name == ENV_CONFIG || name == "WOODPECKER_SERVERS_DIR" || name.starts_with("WOODPECKER_TEST_")
}

fn flag_layer(natives: &[NativeKey], flags: &[Flag]) -> Result<Layer, ConfigError> {
    let mut values = Vec::new();
    for flag in flags {
        let key = natives
            .iter()
            .find(|k| k.path == flag.key)
            .unwrap_or_else(|| panic!("flag --{} names no setting {}", flag.name, flag.key));
        let value = keys::convert(
            key.kind,
            &Raw::Scalar(flag.value.clone()),
            BareDuration::Millis,
        )
        .map_err(|e| ConfigError::Invalid(format!("--{}: {e}", flag.name)))?;
        values.push((key.path.clone(), value, Origin::Flag(flag.name.to_string())));
    }
    Ok(Layer {
        name: "flags".to_string(),
        values,
    })
}

/// One layer's values as a figment provider.
struct Layer {
    name: String,
    values: Vec<(String, Value, Origin)>,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = serde_json::Map::new();
        for (path, value, _) in &self.values {
            insert(&mut root, path, value.clone());
        }
        let dict = figment::value::Value::serialize(&root)?
            .into_dict()
            .expect("a JSON object is a dict");
        Ok(Profile::Default.collect(dict))
    }
}

fn insert(root: &mut serde_json::Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            root.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let child = root
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Value::Object(map) = child {
                insert(map, rest, value);
            }
        }
    }
}
