//! `woodpecker bench compare A.json B.json`: the differences between two
//! runs' JSON reports (any `bench` or `tune` report): settings that differ,
//! then every measured number side by side with its change, the headline
//! figures first, whether higher is better noted where it is known.

use crate::BenchError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The first run's report (`bench ... --json > A.json`).
    pub a: PathBuf,
    /// The second run's report.
    pub b: PathBuf,
    /// Show numbers that did not change too.
    #[arg(long)]
    pub all: bool,
}

/// Figures shown first, and whether more is better.
const HEADLINES: [(&str, bool); 10] = [
    ("throughput_mb_s", true),
    ("ratio_to_raw", true),
    ("entries_per_s", true),
    ("ack_latency_ms.p50", false),
    ("ack_latency_ms.p99", false),
    ("ack_latency_ms.p999", false),
    ("puts_per_s", false),
    ("avg_fragment_bytes", true),
    ("cpu_s_per_gb", false),
    ("raw_put_mb_s", true),
];

/// Keys that describe the run rather than measure it.
const SETTINGS: [&str; 16] = [
    "store",
    "logs",
    "entry_bytes",
    "appenders",
    "window",
    "batch",
    "ack_order",
    "rate",
    "shards",
    "flush_policy",
    "flush_interval_ms",
    "fragment_bytes_max",
    "uploads_in_flight_max",
    "keep_mb",
    "raw_object_bytes",
    "raw_inflight",
];

pub fn run(args: &CompareArgs) -> Result<String, BenchError> {
    let a = read(&args.a)?;
    let b = read(&args.b)?;
    Ok(compare(&a, &b, args.all))
}

fn read(path: &Path) -> Result<Value, BenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::Invalid(format!("reading {}: {e}", path.display())))?;
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        BenchError::Invalid(format!(
            "{} is not a JSON report (bench ... --json): {e}",
            path.display()
        ))
    })?;
    if !value.is_object() {
        return Err(BenchError::Invalid(format!(
            "{} is not a JSON object",
            path.display()
        )));
    }
    Ok(value)
}

/// Every leaf that is not in an array, by dotted path.
fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(inner, &path, out);
            }
        }
        Value::Array(_) => {}
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

pub fn compare(a: &Value, b: &Value, all: bool) -> String {
    let (mut left, mut right) = (BTreeMap::new(), BTreeMap::new());
    leaves(a, "", &mut left);
    leaves(b, "", &mut right);
    let mut out = String::new();

    let setting = |key: &str| SETTINGS.contains(&key) || !is_number(left.get(key));
    let differing: Vec<&String> = left
        .keys()
        .chain(right.keys().filter(|k| !left.contains_key(*k)))
        .filter(|k| setting(k) && left.get(*k) != right.get(*k))
        .collect();
    if differing.is_empty() {
        let _ = writeln!(out, "settings: the same");
    } else {
        let _ = writeln!(out, "settings that differ:");
        for key in differing {
            let _ = writeln!(
                out,
                "  {key:<28} {:>16} -> {}",
                shown(left.get(key)),
                shown(right.get(key))
            );
        }
    }

    let _ = writeln!(
        out,
        "\n  {:<28} {:>12} {:>12} {:>9}",
        "measured", "A", "B", "change"
    );
    let mut order: Vec<(&str, Option<bool>)> = HEADLINES
        .iter()
        .map(|(key, higher)| (*key, Some(*higher)))
        .collect();
    order.extend(
        left.keys()
            .filter(|k| !HEADLINES.iter().any(|(h, _)| h == k))
            .map(|k| (k.as_str(), None)),
    );
    for (key, higher_better) in order {
        if SETTINGS.contains(&key) {
            continue;
        }
        let (Some(x), Some(y)) = (number(left.get(key)), number(right.get(key))) else {
            continue;
        };
        if x == y && !all {
            continue;
        }
        let change = if x != 0.0 {
            format!("{:+.1}%", (y - x) / x.abs() * 100.0)
        } else {
            "n/a".to_string()
        };
        let verdict = match higher_better {
            Some(higher) if x != y => {
                if (y > x) == higher {
                    "  better"
                } else {
                    "  worse"
                }
            }
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {key:<28} {:>12} {:>12} {change:>9}{verdict}",
            figure(x),
            figure(y)
        );
    }
    out
}

fn is_number(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Number(_)))
}

fn number(value: Option<&Value>) -> Option<f64> {
    value?.as_f64()
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn figure(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_then_measurements_with_changes_and_verdicts() {
        let a = json!({
            "store": "s3", "window": 64, "flush_policy": "adaptive",
            "throughput_mb_s": 100.0, "ack_latency_ms": {"p50": 10.0, "p99": 20.0},
            "entries": 1000, "fragments": 7, "throughput_mb_s_rounds": [1.0, 2.0]
        });
        let b = json!({
            "store": "s3", "window": 8, "flush_policy": "interval",
            "throughput_mb_s": 50.0, "ack_latency_ms": {"p50": 5.0, "p99": 20.0},
            "entries": 1000, "fragments": 9
        });
        let text = compare(&a, &b, false);
        assert!(text.contains("window"), "{text}");
        assert!(text.contains("adaptive -> interval"), "{text}");
        assert!(
            !text.contains("  store"),
            "the same store is not a difference: {text}"
        );
        let line = |key: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(key))
                .unwrap_or_else(|| panic!("no {key} in {text}"))
                .to_string()
        };
        assert!(line("throughput_mb_s").contains("-50.0%"), "{text}");
        assert!(line("throughput_mb_s").ends_with("worse"), "{text}");
        assert!(line("ack_latency_ms.p50").ends_with("better"), "{text}");
        assert!(line("fragments").contains("+28.6%"), "{text}");
        assert!(!text.contains("ack_latency_ms.p99"), "unchanged: {text}");
        assert!(!text.contains("rounds"), "arrays are left out: {text}");
        assert!(compare(&a, &b, true).contains("ack_latency_ms.p99"));
        assert!(compare(&a, &a, false).contains("settings: the same"));
    }
}
