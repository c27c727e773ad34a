//! A whole-log scan: every visible entry, checked, in offset order. For
//! tests and tools; it holds the whole log in memory. Streaming readers are
//! built on the same rules:
//!
//! * a sealed segment holds fragments `0..fragment_count` and entries
//!   `first_offset..end_offset`, nothing else;
//! * an open segment shows its durable run (see [`crate::recovery`]);
//! * offsets are dense across segments (each starts at
//!   [`crate::meta::SegmentInfo::start_offset`], the previous one's end; a
//!   sealed segment without fragments holds nothing); a gap is corruption;
//! * a sealed segment wholly below the truncation point is skipped: its
//!   entries are not visible, and retention may have deleted some of its
//!   objects already (it deletes them before the record, so a crash in
//!   between leaves the record).

use crate::error::{Error, ErrorKind, Result};
use crate::format::fragment::DecodedFragment;
use crate::layout::Layout;
use crate::meta::{LogId, MetaStore, SegmentState};
use crate::recovery::durable_run;
use crate::store::ObjectStore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedEntry {
    pub offset: u64,
    pub payload: Vec<u8>,
    pub properties: Vec<(Vec<u8>, Vec<u8>)>,
}

fn corrupt(detail: String) -> Error {
    Error::new(ErrorKind::Corrupt, detail)
}

/// Scans log `log`, whose entries below `truncated_below` are truncated.
pub async fn scan_log<S: ObjectStore + ?Sized>(
    store: &S,
    meta: &dyn MetaStore,
    layout: &Layout,
    log: LogId,
    truncated_below: u64,
) -> Result<Vec<ScannedEntry>> {
    let mut entries = Vec::new();
    let mut expected: Option<u64> = None;
    for segment in meta.list_segments(log).await? {
        if segment.state == SegmentState::Sealed && segment.end_offset <= truncated_below {
            expected = Some(segment.end_offset);
            continue;
        }
        let run = durable_run(store, layout, log, &segment).await?;
        let (count, end) = match segment.state {
            SegmentState::Sealed => (segment.fragment_count, segment.end_offset),
            SegmentState::Open => (run.count, run.end_offset),
        };
        if run.count < count {
            return Err(corrupt(format!(
                "segment {} of log {log} is sealed with {count} fragments but {} are present",
                segment.id, run.count
            )));
        }
        let mut next = expected.unwrap_or(segment.start_offset());
        if next != segment.start_offset() {
            return Err(corrupt(format!(
                "segment {} starts at {} but the log reached {next}",
                segment.id,
                segment.start_offset()
            )));
        }
        for fragment in &run.fragments[..count as usize] {
            let body = store.get(&fragment.key).await?;
            let decoded = DecodedFragment::decode(&body)
                .map_err(|e| corrupt(format!("{}: {e}", fragment.key)))?;
            if decoded.header.first_offset != next || decoded.header.segment_id != segment.id {
                return Err(corrupt(format!("{}: out of place", fragment.key)));
            }
            for entry in decoded.entries().take_while(|e| e.offset < end) {
                entries.push(ScannedEntry {
                    offset: entry.offset,
                    payload: entry.payload.to_vec(),
                    properties: entry
                        .properties
                        .iter()
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .collect(),
                });
                next = entry.offset + 1;
            }
        }
        if next != end {
            return Err(corrupt(format!(
                "segment {} of log {log} ends at {end} but its entries end at {next}",
                segment.id
            )));
        }
        expected = Some(end);
    }
    Ok(entries)
}
