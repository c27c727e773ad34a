//! Recovery of segments a writer left open (it died or was fenced): find
//! the segment's durable end from the objects themselves, block any later
//! fragment of the old writer, and seal the segment there.
//!
//! The durable run of a segment is its fragments 0, 1, ... up to the first
//! gap or fence marker. Only a fragment in that run can have been
//! acknowledged: the writer acknowledges fragment k only after 0..k are all
//! durable. The recovering writer puts a fence marker at the first index
//! past the run with put-if-absent; if the old writer lands a fragment
//! there first, the run grew and recovery starts over; once the marker is
//! in place no fragment of the old writer can ever join the run.

use crate::error::{Error, ErrorKind, Result};
use crate::format::fragment::DecodedFragment;
use crate::format::marker::{decode_fence_marker, encode_fence_marker, FENCE_MARKER_BYTES};
use crate::layout::{Layout, ListedFragment};
use crate::meta::{LogId, MetaStore, SealInfo, SegmentInfo};
use crate::store::{ObjectStore, StoreError};

/// Rounds of list-then-fence before giving up (each lost round means the
/// old writer landed another fragment meanwhile).
const RECOVERY_ROUNDS_MAX: usize = 32;

/// The valid, contiguous fragments at the start of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableRun {
    /// Fragments `0..count` are valid.
    pub count: u64,
    /// Exclusive end offset of the run.
    pub end_offset: u64,
    /// Bytes of fragments `0..count`.
    pub bytes: u64,
    /// A fence marker sits at index `count`.
    pub fenced: bool,
    /// The fragments of the run, in order.
    pub fragments: Vec<ListedFragment>,
}

fn corrupt(detail: String) -> Error {
    Error::new(ErrorKind::Corrupt, detail)
}

/// Lists a segment and finds its durable run. Reads only the last
/// fragment of the run (whole, every checksum checked) and any
/// marker-sized object.
pub async fn durable_run<S: ObjectStore + ?Sized>(
    store: &S,
    layout: &Layout,
    log: LogId,
    segment: &SegmentInfo,
) -> Result<DurableRun> {
    let listed = layout.list_fragments(store, log, segment.id).await?;
    let mut run = Vec::new();
    let mut fenced = false;
    for fragment in listed {
        if fragment.index != run.len() as u64 {
            break;
        }
        if fragment.size as usize == FENCE_MARKER_BYTES {
            let body = store.get(&fragment.key).await?;
            if decode_fence_marker(&body).is_none() {
                return Err(corrupt(format!(
                    "{}: neither fragment nor marker",
                    fragment.key
                )));
            }
            fenced = true;
            break;
        }
        run.push(fragment);
    }
    let bytes = run.iter().map(|f| f.size).sum();
    let end_offset = match run.last() {
        None => segment.first_offset,
        Some(last) => {
            let body = store.get(&last.key).await?;
            let decoded = DecodedFragment::decode(&body)
                .map_err(|e| corrupt(format!("{}: {e}", last.key)))?;
            let header = decoded.header;
            if header.log_id != log
                || header.segment_id != segment.id
                || header.fragment_index != last.index
                || header.first_offset < segment.first_offset
            {
                return Err(corrupt(format!(
                    "{}: header does not match its key",
                    last.key
                )));
            }
            header.first_offset + header.entry_count as u64
        }
    };
    Ok(DurableRun {
        count: run.len() as u64,
        end_offset,
        bytes,
        fenced,
        fragments: run,
    })
}

/// Seals an open segment of a dead or fenced writer at its durable end,
/// as the writer of epoch `epoch` (which must be the log's current epoch).
pub async fn recover_segment<S: ObjectStore + ?Sized>(
    store: &S,
    meta: &dyn MetaStore,
    layout: &Layout,
    log: LogId,
    epoch: u64,
    segment: &SegmentInfo,
) -> Result<SegmentInfo> {
    for _ in 0..RECOVERY_ROUNDS_MAX {
        let run = durable_run(store, layout, log, segment).await?;
        if !run.fenced {
            let key = layout.fragment_key(log, segment.id, run.count);
            match store.put_if_absent(&key, encode_fence_marker(epoch)).await {
                Ok(()) => {}
                // The old writer landed one more fragment (or an earlier
                // recovery its marker): look again.
                Err(StoreError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let seal = SealInfo {
            end_offset: run.end_offset,
            fragment_count: run.count,
            bytes: run.bytes,
        };
        return Ok(meta.seal_segment(log, epoch, segment.id, seal).await?);
    }
    Err(Error::new(
        ErrorKind::Unavailable,
        format!(
            "segment {} of log {log}: the old writer kept racing recovery",
            segment.id
        ),
    ))
}
