//! The metadata layer: log names, writer epochs (the fence), segment
//! records and truncation points. etcd in production ([`etcd::EtcdMeta`]),
//! in memory for the embedded default and unit tests ([`memory::MemoryMeta`]).
//!
//! It is touched to open a writer, create and seal segments and record a
//! truncation, never per append.

pub mod etcd;
pub mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub type LogId = u64;
pub type SegmentId = u64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The caller's epoch is not the log's current epoch: another writer
    /// took over (or won the race to).
    #[error("fenced: caller epoch {caller}, current epoch {current}")]
    Fenced { caller: u64, current: u64 },
    /// The record changed under the caller in a way that forbids the
    /// operation (e.g. sealing a segment that is already sealed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Retriable: the metadata service could not be reached in time.
    #[error("metadata service unavailable: {0}")]
    Unavailable(String),
    #[error("invalid metadata request: {0}")]
    Invalid(String),
    /// A stored record could not be decoded.
    #[error("corrupt metadata record: {0}")]
    Corrupt(String),
}

pub type MetaResult<T> = Result<T, MetaError>;

/// A log as recorded in metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogInfo {
    pub id: LogId,
    pub name: String,
    /// Current writer epoch; 0 until the first writer opens the log.
    pub epoch: u64,
    /// Entries below this offset are truncated.
    pub truncated_below: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentState {
    Open,
    Sealed,
}

/// One segment: entries `[first_offset, end_offset)` of a log, written by
/// one writer epoch. `end_offset` and the counts are final once sealed.
///
/// A segment sealed with no fragments holds no entries. Recovery seals a
/// segment that a dead writer created past a hole (its predecessor ended
/// short of the segment's `first_offset`) this way, *voided*, at the end
/// of the log before it, which is below its own `first_offset`: see
/// [`SegmentInfo::start_offset`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    pub id: SegmentId,
    /// Epoch of the writer that created the segment.
    pub epoch: u64,
    pub first_offset: u64,
    pub state: SegmentState,
    /// Exclusive end; meaningful once sealed.
    pub end_offset: u64,
    pub fragment_count: u64,
    pub bytes: u64,
}

impl SegmentInfo {
    pub fn new_open(id: SegmentId, epoch: u64, first_offset: u64) -> SegmentInfo {
        SegmentInfo {
            id,
            epoch,
            first_offset,
            state: SegmentState::Open,
            end_offset: first_offset,
            fragment_count: 0,
            bytes: 0,
        }
    }

    /// Sealed with no fragments: holds no entries (an empty or voided
    /// segment).
    pub fn is_empty_sealed(&self) -> bool {
        self.state == SegmentState::Sealed && self.fragment_count == 0
    }

    /// Where the segment begins in the log's offsets: `first_offset`, or for
    /// an empty sealed segment its end (a voided segment's `first_offset`
    /// was never reached). Every segment starts at the previous one's
    /// `end_offset`.
    pub fn start_offset(&self) -> u64 {
        if self.is_empty_sealed() {
            self.end_offset
        } else {
            self.first_offset
        }
    }
}

/// What a seal fixes: where the segment ends and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealInfo {
    pub end_offset: u64,
    pub fragment_count: u64,
    pub bytes: u64,
}

/// Metadata operations.
///
/// # Fencing contract
///
/// Implementations guarantee, for every log:
///
/// 1. **Epochs only grow, one step at a time.** `bump_epoch(log, e)`
///    succeeds only if the current epoch is `e`, and sets it to `e + 1`,
///    atomically. Of concurrent bumps from the same `e`, exactly one wins;
///    the others get [`MetaError::Fenced`].
/// 2. **Every segment mutation is fenced.** `create_segment` and
///    `seal_segment` carry the caller's epoch and take effect only if it
///    equals the log's current epoch at the moment of the write (checked in
///    the same atomic step); otherwise they fail with `Fenced` and change
///    nothing. A writer whose epoch was bumped can no longer create or seal.
/// 3. **A segment is created at most once.** `create_segment` fails with
///    `AlreadyExists` if the segment id is taken.
/// 4. **A seal is final.** `seal_segment` moves a segment from `Open` to
///    `Sealed` once; its end, fragment count and byte count never change
///    afterwards, and sealing again fails with `Conflict`. A seal ends at
///    or after the segment's `first_offset`, except a seal with no
///    fragments and no bytes (recovery voiding a segment created past a
///    hole), which may end below it.
/// 5. **Truncation only moves forward.** `truncate` never lowers a log's
///    truncation point.
/// 6. **Names are unique and ids stable.** `create_log` gives each name one
///    id that is never reused for another log.
/// 7. **Only truncated history is deleted.** `delete_segment` removes a
///    segment record only if it is sealed and ends at or below the log's
///    truncation point, checked in the same atomic step.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Creates a log; `AlreadyExists` if the name is taken.
    async fn create_log(&self, name: &str) -> MetaResult<LogInfo>;
    async fn get_log(&self, name: &str) -> MetaResult<LogInfo>;
    async fn list_logs(&self) -> MetaResult<Vec<LogInfo>>;
    /// Deletes a log's name and every record of it.
    async fn delete_log(&self, name: &str) -> MetaResult<()>;
    /// Compare-and-swap the epoch from `expected` to `expected + 1`; returns
    /// the new epoch (guarantee 1).
    async fn bump_epoch(&self, log: LogId, expected: u64) -> MetaResult<u64>;
    /// Records a new open segment (guarantees 2 and 3).
    async fn create_segment(&self, log: LogId, epoch: u64, segment: &SegmentInfo)
        -> MetaResult<()>;
    /// All segments of a log, by id.
    async fn list_segments(&self, log: LogId) -> MetaResult<Vec<SegmentInfo>>;
    /// Seals an open segment (guarantees 2 and 4); returns the sealed record.
    async fn seal_segment(
        &self,
        log: LogId,
        epoch: u64,
        segment: SegmentId,
        seal: SealInfo,
    ) -> MetaResult<SegmentInfo>;
    /// Raises the truncation point to `offset` (guarantee 5).
    async fn truncate(&self, log: LogId, offset: u64) -> MetaResult<()>;
    /// Deletes the record of a sealed segment wholly below the truncation
    /// point (guarantee 7); `Conflict` otherwise.
    async fn delete_segment(&self, log: LogId, segment: SegmentId) -> MetaResult<()>;
    /// A watch that fires whenever the log's segment records change
    /// (created, sealed, deleted), so readers need not poll metadata.
    async fn watch_segments(&self, log: LogId) -> MetaResult<SegmentWatch>;
    /// A watch of the log's writer epoch, starting from its current value,
    /// so a writer learns it was fenced without touching storage.
    async fn watch_epoch(&self, log: LogId) -> MetaResult<EpochWatch>;
}

/// Follows a log's writer epoch. The value seen is the newest known; a
/// bump that happens while nobody waits is kept.
pub struct EpochWatch {
    epoch: tokio::sync::watch::Receiver<u64>,
}

impl EpochWatch {
    /// The sending side, for implementations: `send_replace(epoch)` on a
    /// change; `current` is the epoch when the watch began.
    pub fn channel(current: u64) -> (tokio::sync::watch::Sender<u64>, EpochWatch) {
        let (tx, rx) = tokio::sync::watch::channel(current);
        (tx, EpochWatch { epoch: rx })
    }

    /// Waits until the epoch is above `epoch` and returns it; `Unavailable`
    /// if the watch broke for good.
    pub async fn above(&mut self, epoch: u64) -> MetaResult<u64> {
        self.epoch
            .wait_for(|current| *current > epoch)
            .await
            .map(|current| *current)
            .map_err(|_| MetaError::Unavailable("epoch watch ended".to_string()))
    }
}

/// Fires after segment records change. Changes that happen while nobody
/// waits are kept (coalesced into one), so a check-then-wait loop misses
/// nothing.
pub struct SegmentWatch {
    changes: tokio::sync::mpsc::Receiver<()>,
}

impl SegmentWatch {
    /// The sending side, for implementations: `try_send(())` on a change.
    pub fn channel() -> (tokio::sync::mpsc::Sender<()>, SegmentWatch) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        (tx, SegmentWatch { changes: rx })
    }

    /// Waits for the next change; `Unavailable` if the watch broke.
    pub async fn changed(&mut self) -> MetaResult<()> {
        self.changes
            .recv()
            .await
            .ok_or_else(|| MetaError::Unavailable("segment watch ended".to_string()))
    }
}

fn check_deletable(segment: &SegmentInfo, truncated_below: u64) -> MetaResult<()> {
    if segment.state != SegmentState::Sealed || segment.end_offset > truncated_below {
        return Err(MetaError::Conflict(format!(
            "segment {} is not sealed wholly below the truncation point {truncated_below}",
            segment.id
        )));
    }
    Ok(())
}

/// Checks a log name: 1 to 200 characters of ASCII letters, digits, `-_.`.
pub fn validate_log_name(name: &str) -> MetaResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(MetaError::Invalid(format!(
            "log name {name:?} must be 1-200 characters of [A-Za-z0-9._-]"
        )))
    }
}

fn check_seal(segment: &SegmentInfo, seal: &SealInfo) -> MetaResult<()> {
    if segment.state == SegmentState::Sealed {
        return Err(MetaError::Conflict(format!(
            "segment {} is already sealed",
            segment.id
        )));
    }
    if seal.fragment_count == 0 && seal.bytes != 0 {
        return Err(MetaError::Invalid(format!(
            "seal of segment {} has bytes but no fragments",
            segment.id
        )));
    }
    if seal.end_offset < segment.first_offset && seal.fragment_count != 0 {
        return Err(MetaError::Invalid(format!(
            "seal end {} is before segment start {}",
            seal.end_offset, segment.first_offset
        )));
    }
    Ok(())
}

fn sealed(segment: &SegmentInfo, seal: &SealInfo) -> SegmentInfo {
    SegmentInfo {
        state: SegmentState::Sealed,
        end_offset: seal.end_offset,
        fragment_count: seal.fragment_count,
        bytes: seal.bytes,
        ..segment.clone()
    }
}
