//! Counters of one client's write path, updated by its shards with relaxed
//! atomics (per fragment, segment or fence, never per append) and read as
//! a snapshot; [`crate::metrics`] exports them to Prometheus.

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
    pub(crate) appends: AtomicU64,
    pub(crate) acks: AtomicU64,
    pub(crate) segment_rolls: AtomicU64,
    pub(crate) segment_seals: AtomicU64,
    pub(crate) fences: AtomicU64,
    /// Upload latency in seconds, successful uploads.
    pub(crate) upload_seconds: UploadSeconds,
}

/// The upload-duration histogram (seconds), with its buckets.
#[derive(Debug)]
pub(crate) struct UploadSeconds(pub(crate) prometheus::Histogram);

impl Default for UploadSeconds {
    fn default() -> Self {
        let buckets = vec![
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
        ];
        let opts = prometheus::HistogramOpts::new(
            "woodpecker_upload_duration_seconds",
            "Time from a fragment's upload start to durable, successful uploads (retries included)",
        )
        .buckets(buckets);
        UploadSeconds(prometheus::Histogram::with_opts(opts).expect("valid histogram options"))
    }
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
    /// Entries written into fragments (appends accepted by a writer).
    pub appends: u64,
    /// Entries acknowledged durable.
    pub acks: u64,
    /// Segments started by a roll (not counting each writer's first).
    pub segment_rolls: u64,
    /// Segments sealed by their writer (not by recovery).
    pub segment_seals: u64,
    /// Writers that found themselves fenced by a newer one.
    pub fences: u64,
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
            appends: self.appends.load(Ordering::Relaxed),
            acks: self.acks.load(Ordering::Relaxed),
            segment_rolls: self.segment_rolls.load(Ordering::Relaxed),
            segment_seals: self.segment_seals.load(Ordering::Relaxed),
            fences: self.fences.load(Ordering::Relaxed),
        }
    }
}
