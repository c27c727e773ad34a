//! Reading one configuration file: its own keys (`engine.*`, `store.*`,
//! `meta.*`, `serve.*`) and Woodpecker's (`woodpecker.*`, `etcd.*`,
//! `minio.*`) side by side, each leaf with its line. Every problem is
//! collected, so one run names them all: an unknown key (with the nearest
//! known one), a value that does not parse, a setting given twice.

use crate::keys::{self, NativeKey, Raw};
use crate::units::BareDuration;
use crate::woodpecker::{self, Rule};
use crate::ConfigError;
use marked_yaml::Node;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One setting the file gives.
#[derive(Clone, Debug)]
pub struct FileValue {
    /// The setting (`engine.flush_interval_ms`).
    pub native: String,
    pub value: Value,
    /// The file's own key (a Woodpecker key, or `native` again).
    pub key: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct FileValues {
    pub values: Vec<FileValue>,
    pub warnings: Vec<String>,
}

struct Leaf {
    key: String,
    raw: Raw,
    line: usize,
}

/// Parses `text` (named `name` in messages) into settings.
pub fn parse(name: &str, text: &str, natives: &[NativeKey]) -> Result<FileValues, ConfigError> {
    let root = marked_yaml::parse_yaml(0, text)
        .map_err(|e| ConfigError::File(vec![format!("{name}: not YAML: {e}")]))?;
    let mut walk = Walk::new(name, natives);
    walk.mapping("", &root);
    let mut out = FileValues {
        warnings: std::mem::take(&mut walk.warnings),
        ..FileValues::default()
    };
    let mut problems = std::mem::take(&mut walk.problems);
    translate(name, natives, walk.leaves, &mut out, &mut problems);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError::File(problems))
    }
}

struct Walk<'a> {
    name: &'a str,
    natives: &'a [NativeKey],
    /// Every proper prefix of a known key: the file's sections.
    sections: BTreeSet<String>,
    known: Vec<String>,
    leaves: Vec<Leaf>,
    warnings: Vec<String>,
    problems: Vec<String>,
}

impl<'a> Walk<'a> {
    fn new(name: &'a str, natives: &'a [NativeKey]) -> Walk<'a> {
        let mut known: Vec<String> = natives.iter().map(|k| k.path.clone()).collect();
        known.extend(woodpecker::known_keys());
        let mut sections = BTreeSet::new();
        for key in &known {
            let mut end = 0;
            while let Some(dot) = key[end..].find('.') {
                end += dot;
                sections.insert(key[..end].to_string());
                end += 1;
            }
        }
        Walk {
            name,
            natives,
            sections,
            known,
            leaves: Vec::new(),
            warnings: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn is_leaf(&self, path: &str) -> bool {
        self.natives.iter().any(|k| k.path == path) || woodpecker::rule(path).is_some()
    }

    fn mapping(&mut self, prefix: &str, node: &Node) {
        let Node::Mapping(map) = node else {
            let line = line_of(node);
            let what = if prefix.is_empty() {
                "the file"
            } else {
                prefix
            };
            self.problems.push(format!(
                "{}:{line}: {what} must be a mapping of keys",
                self.name
            ));
            return;
        };
        for (key, value) in map.iter() {
            let path = if prefix.is_empty() {
                key.as_str().to_string()
            } else {
                format!("{prefix}.{}", key.as_str())
            };
            let line = key.span().start().map_or(0, |m| m.line());
            self.entry(path, line, value);
        }
    }

    fn entry(&mut self, path: String, line: usize, value: &Node) {
        let name = self.name;
        if let Some((_, why)) = woodpecker::IGNORED_SECTIONS
            .iter()
            .find(|(k, _)| *k == path)
        {
            self.warnings
                .push(format!("{name}:{line}: {path} is ignored: {why}"));
        } else if self.is_leaf(&path) {
            match raw_value(value) {
                Ok(Some(raw)) => self.leaves.push(Leaf {
                    key: path,
                    raw,
                    line,
                }),
                Ok(None) => {}
                Err(e) => self.problems.push(format!("{name}:{line}: {path}: {e}")),
            }
        } else if self.sections.contains(&path) {
            match value {
                Node::Mapping(_) => self.mapping(&path, value),
                Node::Scalar(s) if is_empty(s.as_str()) => {}
                _ => self.problems.push(format!(
                    "{name}:{line}: {path} is a section: expected keys under it"
                )),
            }
        } else {
            let hint = keys::nearest(&path, self.known.iter().map(String::as_str))
                .map(|k| format!("; did you mean {k}?"))
                .unwrap_or_default();
            self.problems
                .push(format!("{name}:{line}: unknown key {path}{hint}"));
        }
    }
}

fn line_of(node: &Node) -> usize {
    node.span().start().map_or(0, |m| m.line())
}

fn is_empty(text: &str) -> bool {
    matches!(text.trim(), "" | "~" | "null")
}

/// A leaf's value: a scalar, a list of scalars, or nothing (empty).
fn raw_value(node: &Node) -> Result<Option<Raw>, String> {
    match node {
        Node::Scalar(s) if is_empty(s.as_str()) => Ok(None),
        Node::Scalar(s) => Ok(Some(Raw::Scalar(s.as_str().to_string()))),
        Node::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Node::Scalar(s) => Ok(s.as_str().to_string()),
                _ => Err("a list of values must hold plain values".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|items| Some(Raw::List(items))),
        Node::Mapping(_) => Err("is a value, not a section".to_string()),
    }
}

/// Turns the leaves into settings, composing the keys Woodpecker splits
/// over several (the S3 endpoint, the etcd prefix).
fn translate(
    name: &str,
    natives: &[NativeKey],
    leaves: Vec<Leaf>,
    out: &mut FileValues,
    problems: &mut Vec<String>,
) {
    let kind_of = |native: &str| {
        natives
            .iter()
            .find(|k| k.path == native)
            .map(|k| k.kind)
            .expect("Woodpecker keys map to settings")
    };
    let mut set_by: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut set = |native: &str, value: Result<Value, String>, leaf: &Leaf| {
        let value = match value {
            Ok(value) => value,
            Err(e) => {
                problems.push(format!("{name}:{}: {}: {e}", leaf.line, leaf.key));
                return;
            }
        };
        if let Some((key, line)) = set_by.get(native) {
            problems.push(format!(
                "{name}:{}: {} sets {native} again (already set by {key} on line {line})",
                leaf.line, leaf.key
            ));
            return;
        }
        set_by.insert(native.to_string(), (leaf.key.clone(), leaf.line));
        out.values.push(FileValue {
            native: native.to_string(),
            value,
            key: leaf.key.clone(),
            line: leaf.line,
        });
    };
    let mut ignored = Vec::new();
    let mut endpoint: Vec<&Leaf> = Vec::new();
    let mut prefix: Vec<&Leaf> = Vec::new();
    for leaf in &leaves {
        match woodpecker::rule(&leaf.key) {
            None => set(
                &leaf.key,
                keys::convert(kind_of(&leaf.key), &leaf.raw, BareDuration::Millis),
                leaf,
            ),
            Some(Rule::Sets { native, bare }) => set(
                native,
                keys::convert(kind_of(native), &leaf.raw, bare),
                leaf,
            ),
            Some(Rule::Translates { native, translate }) => {
                let value = scalar(&leaf.raw).and_then(translate).and_then(|text| {
                    keys::convert(kind_of(native), &Raw::Scalar(text), BareDuration::Millis)
                });
                set(native, value, leaf)
            }
            Some(Rule::S3Endpoint) => endpoint.push(leaf),
            Some(Rule::EtcdPrefix) => prefix.push(leaf),
            Some(Rule::Ignored(why)) => ignored.push(format!(
                "{name}:{}: {} is ignored: {why}",
                leaf.line, leaf.key
            )),
        }
    }
    if let Some(first) = endpoint.first() {
        let value = woodpecker::s3_endpoint(
            part(&endpoint, "minio.address"),
            part(&endpoint, "minio.port"),
            part(&endpoint, "minio.useSSL"),
        );
        set("store.s3.endpoint", value.map(Value::from), first);
    }
    if let Some(first) = prefix.first() {
        let value = woodpecker::etcd_prefix(
            part(&prefix, "etcd.rootPath"),
            part(&prefix, "woodpecker.meta.prefix"),
        );
        set("meta.etcd.prefix", Ok(Value::from(value)), first);
    }
    out.warnings.extend(ignored);
}

/// The text of the leaf `key` among `parts`, if given.
fn part<'a>(parts: &[&'a Leaf], key: &str) -> Option<&'a str> {
    parts
        .iter()
        .find(|leaf| leaf.key == key)
        .and_then(|leaf| scalar(&leaf.raw).ok())
}

fn scalar(raw: &Raw) -> Result<&str, String> {
    match raw {
        Raw::Scalar(text) => Ok(text),
        Raw::List(_) => Err("is a list; this setting takes one value".to_string()),
    }
}
