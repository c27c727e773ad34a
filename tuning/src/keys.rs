//! The configuration's own keys: every leaf of [`Settings`], found by
//! serializing the defaults, so a field added to a settings struct is a key
//! at once. A key's kind (and so how its text is read) follows from its
//! name and default: `_ms` is a duration, a name with `bytes` a size.

use crate::settings::Settings;
use crate::units::{self, BareDuration};
use serde_json::Value;

/// How a key's text becomes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bytes: a whole number, or with a size unit (`8MiB`).
    Bytes,
    /// Milliseconds: a whole number, or with a duration unit (`2s`).
    Millis,
    /// A whole number without unit.
    Count,
    Bool,
    Text,
    /// A list of strings: a YAML sequence, or one comma-separated string.
    List,
}

/// A raw value from the file, the environment or a flag.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    Scalar(String),
    List(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct NativeKey {
    /// Dotted path in [`Settings`], e.g. `engine.flush_interval_ms`.
    pub path: String,
    pub kind: Kind,
}

impl NativeKey {
    /// `WOODPECKER_` and the path in capitals, dots as underscores:
    /// `WOODPECKER_ENGINE_FLUSH_INTERVAL_MS`.
    pub fn env_name(&self) -> String {
        format!("WOODPECKER_{}", self.path.replace('.', "_").to_uppercase())
    }
}

/// Short environment names kept from before the configuration file, for
/// the settings scripts and operators set most (`scripts/servers.sh` prints
/// them). The long name of the same key wins when both are set.
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("WOODPECKER_STORE", "store.kind"),
    ("WOODPECKER_LOCAL_DIR", "store.local_dir"),
    ("WOODPECKER_S3_ENDPOINT", "store.s3.endpoint"),
    ("WOODPECKER_S3_BUCKET", "store.s3.bucket"),
    ("WOODPECKER_S3_REGION", "store.s3.region"),
    ("WOODPECKER_S3_ACCESS_KEY", "store.s3.access_key"),
    ("WOODPECKER_S3_SECRET_KEY", "store.s3.secret_key"),
    ("WOODPECKER_S3_CA_CERT", "store.s3.ca_cert_path"),
    ("WOODPECKER_META", "meta.kind"),
    ("WOODPECKER_ETCD_ENDPOINTS", "meta.etcd.endpoints"),
    ("WOODPECKER_LISTEN", "serve.listen"),
    ("WOODPECKER_SHARDS", "engine.shards"),
];

/// Keys whose values are never printed or logged.
pub fn is_secret(path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    ["secret", "password", "token"]
        .iter()
        .any(|word| leaf.contains(word))
}

/// Every key of [`Settings`], in the structs' field order.
pub fn native_keys() -> Vec<NativeKey> {
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    let mut keys = Vec::new();
    for (path, value) in flatten(&defaults) {
        let leaf = path.rsplit('.').next().unwrap_or(&path);
        let kind = match value {
            Value::Bool(_) => Kind::Bool,
            Value::Array(_) => Kind::List,
            Value::Number(_) if leaf.ends_with("_ms") => Kind::Millis,
            Value::Number(_) if leaf.contains("bytes") => Kind::Bytes,
            Value::Number(_) => Kind::Count,
            _ => Kind::Text,
        };
        keys.push(NativeKey { path, kind });
    }
    keys
}

/// The leaves of a JSON object as (dotted path, value), in order.
pub fn flatten(value: &Value) -> Vec<(String, &Value)> {
    fn walk<'a>(prefix: &str, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
        match value {
            Value::Object(map) => {
                for (name, child) in map {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    walk(&path, child, out);
                }
            }
            leaf => out.push((prefix.to_string(), leaf)),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// Reads `raw` as a value of `kind`; a bare duration is in `bare`.
pub fn convert(kind: Kind, raw: &Raw, bare: BareDuration) -> Result<Value, String> {
    let text = match (kind, raw) {
        (Kind::List, Raw::List(items)) => return Ok(Value::from(items.clone())),
        (Kind::List, Raw::Scalar(text)) => {
            let items: Vec<String> = text
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            return Ok(Value::from(items));
        }
        (_, Raw::List(_)) => return Err("is a list; this setting takes one value".to_string()),
        (_, Raw::Scalar(text)) => text,
    };
    Ok(match kind {
        Kind::Bytes => Value::from(units::parse_bytes(text)?),
        Kind::Millis => Value::from(units::parse_millis(text, bare)?),
        Kind::Count => Value::from(units::parse_count(text)?),
        Kind::Bool => Value::from(units::parse_bool(text)?),
        Kind::Text | Kind::List => Value::from(text.clone()),
    })
}

/// The known key nearest to `key` (for "did you mean").
pub fn nearest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .min_by_key(|candidate| strsim::levenshtein(key, candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_settings_field_is_a_key_of_the_right_kind() {
        let keys = native_keys();
        let kind = |path: &str| keys.iter().find(|k| k.path == path).map(|k| k.kind);
        assert_eq!(kind("engine.flush_interval_ms"), Some(Kind::Millis));
        assert_eq!(kind("engine.fragment_bytes_max"), Some(Kind::Bytes));
        assert_eq!(kind("engine.shards"), Some(Kind::Count));
        assert_eq!(kind("engine.pin_cores"), Some(Kind::Bool));
        assert_eq!(kind("store.s3.ca_cert_path"), Some(Kind::Text));
        assert_eq!(kind("meta.etcd.endpoints"), Some(Kind::List));
        assert_eq!(kind("serve.listen"), Some(Kind::Text));
        for (_, path) in ENV_ALIASES {
            assert!(kind(path).is_some(), "alias of unknown key {path}");
        }
    }

    #[test]
    fn env_names_are_the_path_in_capitals() {
        let key = NativeKey {
            path: "engine.flush_interval_ms".into(),
            kind: Kind::Millis,
        };
        assert_eq!(key.env_name(), "WOODPECKER_ENGINE_FLUSH_INTERVAL_MS");
        assert!(is_secret("store.s3.secret_key"));
        assert!(!is_secret("store.s3.access_key"));
    }
}
