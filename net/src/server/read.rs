//! Reads: the entries from an offset, bounded in entries and bytes, as the
//! binary framing or JSON.

use super::follow::{self, Form};
use super::handlers::{json, number, response, Body};
use super::Shared;
use crate::error::{ApiError, Code};
use crate::framing::{self, FramedEntry, MEDIA_TYPE};
use crate::json::{JsonEntries, JsonEntry};
use bytes::BytesMut;
use http::{header, HeaderValue, Response, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_shards::StartAt;

/// Entries of one answer when the request does not say.
const READ_ENTRIES_DEFAULT: usize = 1000;
/// Payload bytes of one answer when the request does not say.
const READ_BYTES_DEFAULT: usize = 1 << 20;
/// Longest wait for one entry known to be durable.
const ENTRY_WAIT_MAX: Duration = Duration::from_secs(30);
/// The header naming where the next read starts.
pub const NEXT_OFFSET_HEADER: &str = "woodpecker-next-offset";

pub(super) async fn read(
    shared: &Arc<Shared>,
    name: &str,
    query: &HashMap<String, String>,
    headers: &http::HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let config = &shared.config;
    let max_entries = number(query, "max_entries")?
        .map_or(READ_ENTRIES_DEFAULT, |n| n as usize)
        .min(config.read_entries_max);
    let max_bytes = number(query, "max_bytes")?
        .map_or(READ_BYTES_DEFAULT, |n| n as usize)
        .min(config.read_bytes_max);
    let wait = number(query, "wait_ms")?
        .map_or(Duration::ZERO, Duration::from_millis)
        .min(config.read_wait_max);
    if max_entries == 0 {
        return Err(ApiError::malformed("max_entries must be positive"));
    }
    let start = match query.get("from").map(String::as_str) {
        None => match last_event_id(headers)? {
            Some(id) => StartAt::Offset(id + 1),
            None => StartAt::Earliest,
        },
        Some("earliest") => StartAt::Earliest,
        Some("latest") => StartAt::Latest,
        Some(n) => StartAt::Offset(n.parse().map_err(|_| {
            ApiError::malformed(format!("from={n:?}: a number, earliest or latest"))
        })?),
    };
    let client = &shared.client;
    match query.get("follow").map(String::as_str) {
        None | Some("false") => {}
        Some("true") => {
            let form = if wants_sse(query, headers)? {
                Form::Sse
            } else {
                Form::Binary
            };
            let max_entries = number(query, "max_entries")?;
            let reader = client.open_reader(name, start).await?;
            return Ok(follow::respond(shared.clone(), reader, form, max_entries));
        }
        Some(other) => {
            return Err(ApiError::malformed(format!(
                "follow={other:?}: true or false"
            )))
        }
    }
    let as_json = wants_json(query, headers)?;
    let status = client.log_status(name).await?;
    let end = status.end_offset;
    let first_retained = status
        .segments
        .first()
        .map_or(0, |s| s.start_offset())
        .max(status.log.truncated_below);
    // Where the reader starts, so entries below `end` are known to exist.
    let mut next = match start {
        StartAt::Earliest => first_retained,
        StartAt::Latest => end,
        StartAt::Offset(offset) => offset,
    };
    let mut reader = client.open_reader(name, start).await?;
    let mut entries: Vec<FramedEntry> = Vec::new();
    let mut bytes = 0usize;
    loop {
        let known = next < end;
        let limit = match (known, entries.is_empty()) {
            (true, _) => ENTRY_WAIT_MAX,
            (false, true) if !wait.is_zero() => wait,
            (false, _) => break,
        };
        let entry = match glommio::timer::timeout(limit, async { Ok(reader.next().await) }).await {
            Ok(entry) => entry?,
            Err(_) if known => {
                return Err(ApiError::new(
                    Code::Unavailable,
                    format!("the entry at {next} of {name} could not be read within {limit:?}"),
                ))
            }
            Err(_) => break,
        };
        bytes += entry.payload.len();
        if !entries.is_empty() && bytes > max_bytes {
            break;
        }
        next = entry.offset + 1;
        entries.push(FramedEntry::from(entry));
        if entries.len() == max_entries {
            break;
        }
    }
    let mut answer = if as_json {
        let body = JsonEntries {
            entries: entries
                .iter()
                .map(JsonEntry::from_framed)
                .collect::<Result<_, _>>()?,
            next_offset: Some(next),
        };
        json(StatusCode::OK, &body)?
    } else {
        let mut out = BytesMut::with_capacity(entries.iter().map(framing::encoded_len).sum());
        for entry in &entries {
            framing::encode_into(entry, &mut out);
        }
        response(StatusCode::OK, MEDIA_TYPE, out.freeze())
    };
    answer
        .headers_mut()
        .insert(NEXT_OFFSET_HEADER, HeaderValue::from(next));
    Ok(answer)
}

/// Where an SSE client that reconnects left off (`Last-Event-ID`, the
/// offset of the last entry it received).
fn last_event_id(headers: &http::HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::malformed("Last-Event-ID is not an offset"))
        })
        .transpose()
}

/// Whether a follow read is Server-Sent Events: `format=sse`, or an
/// `Accept` naming `text/event-stream`; else the binary framing.
fn wants_sse(query: &HashMap<String, String>, headers: &http::HeaderMap) -> Result<bool, ApiError> {
    match query.get("format").map(String::as_str) {
        Some("sse") => Ok(true),
        Some("binary") => Ok(false),
        Some(other) => Err(ApiError::malformed(format!(
            "format={other:?}: a follow read is sse or binary"
        ))),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/event-stream"))),
    }
}

/// Whether the answer is JSON: `format=json`, or an `Accept` naming JSON
/// and not the framing.
fn wants_json(
    query: &HashMap<String, String>,
    headers: &http::HeaderMap,
) -> Result<bool, ApiError> {
    match query.get("format").map(String::as_str) {
        Some("json") => return Ok(true),
        Some("binary") => return Ok(false),
        Some(other) => {
            return Err(ApiError::malformed(format!(
                "format={other:?}: json or binary"
            )))
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(accept.contains("application/json") && !accept.contains(MEDIA_TYPE))
}
