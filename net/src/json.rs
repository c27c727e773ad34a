//! The API's JSON bodies: entries for small appends and reads (the binary
//! framing of [`crate::framing`] is the efficient form), log records, and
//! append results.
//!
//! A JSON entry's payload is `payload` (UTF-8 text) or `payload_base64`
//! (any bytes); reads give text when the payload is valid UTF-8. Its
//! properties are an object of UTF-8 keys and values, in key order; an
//! entry whose properties are not representable so (bytes that are not
//! UTF-8, a repeated key) is refused as JSON: read it in the binary
//! framing.

use crate::error::{ApiError, Code};
use crate::framing::FramedEntry;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// An append's JSON body, and a read's JSON answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEntries {
    pub entries: Vec<JsonEntry>,
    /// In answers: where the next read starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

impl JsonEntry {
    pub fn into_framed(self, index: usize) -> Result<FramedEntry, ApiError> {
        let payload = match (self.payload, self.payload_base64) {
            (Some(text), None) => Bytes::from(text),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(Bytes::from)
                .map_err(|e| ApiError::malformed(format!("entry {index}: payload_base64: {e}")))?,
            _ => {
                return Err(ApiError::malformed(format!(
                    "entry {index}: give exactly one of payload and payload_base64"
                )))
            }
        };
        Ok(FramedEntry {
            offset: self.offset,
            payload,
            properties: self
                .properties
                .into_iter()
                .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
                .collect(),
        })
    }

    pub fn from_framed(entry: &FramedEntry) -> Result<JsonEntry, ApiError> {
        let (payload, payload_base64) = match std::str::from_utf8(&entry.payload) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&entry.payload)),
            ),
        };
        let mut properties = BTreeMap::new();
        for (key, value) in &entry.properties {
            let text = |b: &Bytes| std::str::from_utf8(b).map(str::to_string).ok();
            let (Some(key), Some(value)) = (text(key), text(value)) else {
                return Err(not_representable(entry.offset));
            };
            if properties.insert(key, value).is_some() {
                return Err(not_representable(entry.offset));
            }
        }
        Ok(JsonEntry {
            offset: entry.offset,
            payload,
            payload_base64,
            properties,
        })
    }
}

fn not_representable(offset: Option<u64>) -> ApiError {
    ApiError::new(
        Code::NotAcceptable,
        format!(
            "the properties of the entry at {} are not UTF-8 or repeat a key: read it in the binary framing",
            offset.unwrap_or_default()
        ),
    )
}

/// A log as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonLog {
    pub name: String,
    pub id: u64,
    /// The epoch of the log's latest writer (0: never opened).
    pub epoch: u64,
    pub truncated_below: u64,
}

impl From<&woodpecker_engine::meta::LogInfo> for JsonLog {
    fn from(log: &woodpecker_engine::meta::LogInfo) -> JsonLog {
        JsonLog {
            name: log.name.clone(),
            id: log.id,
            epoch: log.epoch,
            truncated_below: log.truncated_below,
        }
    }
}

/// A page of logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonLogPage {
    pub logs: Vec<JsonLog>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// A log's details.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonLogInfo {
    #[serde(flatten)]
    pub log: JsonLog,
    /// The exclusive end of the readable entries.
    pub end_offset: u64,
    pub segments: Vec<woodpecker_engine::meta::SegmentInfo>,
    /// The epoch of this server's writer of the log, if it holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_epoch: Option<u64>,
}

/// What an append answers: the offsets of the batch, all durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonAppended {
    pub first_offset: u64,
    pub last_offset: u64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonCreate {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonTruncate {
    pub offset: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonTail {
    pub end_offset: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonWriter {
    pub epoch: u64,
    pub durable_offset: u64,
}
