//! Recovery of segments a writer left open (it died or was fenced): find
//! the segment's durable end from the objects themselves, block any later
//! fragment of the old writer, and seal the segment there.
//!
//! The durable run of a segment is its fragments 0, 1, ... up to the first
//! gap or fence marker. Only a fragment in that run can have been
//! acknowledged: the writer acknowledges fragment k only after 0..k are all
//! durable.
//!
//! The old writer may still be alive and uploading. Recovery lists the run
//! (0..n) and then puts fence markers at n, n+1, ... n+63 at once, each with
//! put-if-absent. Afterwards every index up to n+63 is taken, by a marker or
//! by an old fragment, so the indices below the first marker hold old
//! fragments and nothing can change them any more: the run ends at the
//! first marker, for good. The old writer's next upload meets a marker and
//! fails as fenced, so it never acknowledges past it. (If the old writer
//! took all 64 indices first, recovery places the next 64.) A single marker
//! at n would not do: a fast old writer can keep landing fragment n first.
//!
//! A writer rolls to segment S+1 while S's last fragments may still be
//! uploading, so a writer that dies then can leave S+1 (open, with durable
//! fragments) starting past the end of S's durable run. Nothing in S+1 was
//! acknowledged (acks follow offset order, across segments), so
//! [`recover_log`] voids it: seals it with no fragments at S's end. Every
//! segment then starts where the one before it ended
//! ([`SegmentInfo::start_offset`]).

use crate::error::{Error, ErrorKind, Result};
use crate::format::fragment::DecodedFragment;
use crate::format::marker::{decode_fence_marker, encode_fence_marker, FENCE_MARKER_BYTES};
use crate::layout::{Layout, ListedFragment};
use crate::meta::{LogId, MetaStore, SealInfo, SegmentId, SegmentInfo, SegmentState};
use crate::store::{ObjectStore, StoreError};

/// Fence markers placed at once, past the listed run.
const FENCE_MARKERS_PER_ROUND: u64 = 64;
/// Rounds of markers before giving up (a round is lost only if the old
/// writer took every one of its indices first).
const RECOVERY_ROUNDS_MAX: u64 = 16;

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
    let listed = durable_run(store, layout, log, segment).await?;
    if !listed.fenced {
        place_fence(store, layout, log, epoch, segment, listed.count).await?;
    }
    let run = durable_run(store, layout, log, segment).await?;
    if !run.fenced {
        return Err(corrupt(format!(
            "segment {} of log {log}: no fence marker after fencing",
            segment.id
        )));
    }
    let seal = SealInfo {
        end_offset: run.end_offset,
        fragment_count: run.count,
        bytes: run.bytes,
    };
    Ok(meta.seal_segment(log, epoch, segment.id, seal).await?)
}

/// Puts fence markers from index `from` on, a round at a time, until at
/// least one lands.
async fn place_fence<S: ObjectStore + ?Sized>(
    store: &S,
    layout: &Layout,
    log: LogId,
    epoch: u64,
    segment: &SegmentInfo,
    from: u64,
) -> Result<()> {
    let marker = encode_fence_marker(epoch);
    for round in 0..RECOVERY_ROUNDS_MAX {
        let first = from + round * FENCE_MARKERS_PER_ROUND;
        let puts = (first..first + FENCE_MARKERS_PER_ROUND).map(|index| {
            let key = layout.fragment_key(log, segment.id, index);
            let marker = marker.clone();
            async move { store.put_if_absent(&key, marker).await }
        });
        let mut placed = false;
        for result in futures::future::join_all(puts).await {
            match result {
                Ok(()) => placed = true,
                // Taken by an old fragment (or an earlier recovery's marker).
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if placed {
            return Ok(());
        }
    }
    Err(Error::new(
        ErrorKind::Unavailable,
        format!(
            "segment {} of log {log}: the old writer kept racing recovery",
            segment.id
        ),
    ))
}

/// Where a log continues once every open segment is recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredLog {
    /// Id of the next segment to create.
    pub next_segment: SegmentId,
    /// The log's end: the first offset of the next segment.
    pub next_offset: u64,
}

/// Recovers every segment of `log` still open, in order, as the writer of
/// `epoch`: seals each at its durable end, or voids it if it starts past
/// the end of the segment before it. Checks that every segment starts
/// where the previous one ended; `Corrupt` otherwise.
pub async fn recover_log<S: ObjectStore + ?Sized>(
    store: &S,
    meta: &dyn MetaStore,
    layout: &Layout,
    log: LogId,
    epoch: u64,
) -> Result<RecoveredLog> {
    let mut end: Option<u64> = None;
    let mut next_segment = 0;
    for segment in meta.list_segments(log).await? {
        next_segment = segment.id + 1;
        let expected = *end.get_or_insert(segment.start_offset());
        let segment = match segment.state {
            SegmentState::Open if segment.first_offset > expected => {
                // Created past a hole by a writer that died mid-roll.
                let void = SealInfo {
                    end_offset: expected,
                    fragment_count: 0,
                    bytes: 0,
                };
                meta.seal_segment(log, epoch, segment.id, void).await?
            }
            SegmentState::Open if segment.first_offset == expected => {
                recover_segment(store, meta, layout, log, epoch, &segment).await?
            }
            _ => segment,
        };
        if segment.start_offset() != expected || segment.end_offset < segment.start_offset() {
            return Err(corrupt(format!(
                "segment {} of log {log} covers {}..{} but the log reached {expected}",
                segment.id,
                segment.start_offset(),
                segment.end_offset
            )));
        }
        end = Some(segment.end_offset);
    }
    Ok(RecoveredLog {
        next_segment,
        next_offset: end.unwrap_or(0),
    })
}
