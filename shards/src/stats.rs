//! Counters of one client's write path, updated by its shards with relaxed
//! atomics and read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one client, summed over its shards.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) fragments_uploaded: AtomicU64,
    pub(crate) bytes_uploaded: AtomicU64,
    pub(crate) upload_retries: AtomicU64,
    pub(crate) upload_micros: AtomicU64,
    pub(crate) upload_micros_max: AtomicU64,
    pub(crate) segments_deleted: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Fragments made durable.
    pub fragments_uploaded: u64,
    /// Bytes of those fragments.
    pub bytes_uploaded: u64,
    /// Upload attempts that failed and were retried.
    pub upload_retries: u64,
    /// Time spent by uploads that succeeded, from start to durable
    /// (microseconds, summed over uploads): divided by the fragments it is
    /// the mean upload latency, by wall time the mean uploads in flight.
    pub upload_micros: u64,
    /// The slowest of those uploads (microseconds).
    pub upload_micros_max: u64,
    /// Segments the retention auditor deleted (below truncation points).
    pub segments_deleted: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            fragments_uploaded: self.fragments_uploaded.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
            upload_retries: self.upload_retries.load(Ordering::Relaxed),
            upload_micros: self.upload_micros.load(Ordering::Relaxed),
            upload_micros_max: self.upload_micros_max.load(Ordering::Relaxed),
            segments_deleted: self.segments_deleted.load(Ordering::Relaxed),
        }
    }
}
