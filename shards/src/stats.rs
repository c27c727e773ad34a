//! Counters of one client's write path, updated by its shards with relaxed
//! atomics (per fragment, segment, request or fence, never per append) and
//! read as a snapshot; [`crate::metrics`] exports them to Prometheus.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Counters of one client, summed over its shards.
#[derive(Default)]
pub struct Stats {
    pub(crate) fragments_uploaded: AtomicU64,
    pub(crate) bytes_uploaded: AtomicU64,
    pub(crate) upload_retries: AtomicU64,
    pub(crate) upload_micros: AtomicU64,
    pub(crate) upload_micros_max: AtomicU64,
    pub(crate) segments_deleted: AtomicU64,
    pub(crate) appends: AtomicU64,
    pub(crate) appended_bytes: AtomicU64,
    pub(crate) acks: AtomicU64,
    pub(crate) segment_rolls: AtomicU64,
    pub(crate) segment_seals: AtomicU64,
    pub(crate) fences: AtomicU64,
    pub(crate) truncations: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    /// Each shard's buffer pool (shared handles), read when scraped.
    pub(crate) pools: Mutex<Vec<crate::buffer::BufferPool>>,
    /// Each open reader's progress and each open writer's ingest ring,
    /// read when scraped.
    pub(crate) readers: Live<crate::lag::ReaderProgress>,
    pub(crate) rings: Live<crate::ring::Ring<crate::driver::Request>>,
    pub(crate) histograms: Histograms,
    pub(crate) profiler: crate::profile::Profiler,
}

/// Objects that count while something else holds them (readers, writers'
/// rings): weak references, the dropped ones pruned whenever it is used.
pub(crate) struct Live<T>(Mutex<Vec<Weak<T>>>);

impl<T> Default for Live<T> {
    fn default() -> Self {
        Live(Mutex::new(Vec::new()))
    }
}

impl<T> Live<T> {
    pub(crate) fn add(&self, item: &Arc<T>) {
        let mut items = self.0.lock().expect("live lock");
        items.retain(|item| item.strong_count() > 0);
        items.push(Arc::downgrade(item));
    }

    /// The ones still held.
    pub(crate) fn live(&self) -> Vec<Arc<T>> {
        let mut items = self.0.lock().expect("live lock");
        items.retain(|item| item.strong_count() > 0);
        items.iter().filter_map(Weak::upgrade).collect()
    }
}

/// Latency seconds from 1 ms to 60 s.
const SECONDS_BUCKETS: [f64; 15] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// The histograms and labelled counters (Prometheus's own types, which
/// are atomics inside).
#[derive(Debug)]
pub(crate) struct Histograms {
    /// Successful uploads, start to durable, retries included.
    pub(crate) upload_seconds: Histogram,
    /// Each fragment's first entry to its acknowledgement: the longest
    /// wait of the fragment's entries.
    pub(crate) ack_seconds: Histogram,
    /// Object-store requests by `op`.
    pub(crate) store_seconds: HistogramVec,
    /// Failed object-store requests by `op` and `kind`.
    pub(crate) store_errors: IntCounterVec,
    /// Upload attempts retried, by `cause`.
    pub(crate) upload_retries: IntCounterVec,
}

impl Default for Histograms {
    fn default() -> Self {
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec()))
                .expect("valid histogram options")
        };
        Histograms {
            upload_seconds: histogram(
                "woodpecker_upload_duration_seconds",
                "Time from a fragment's upload start to durable, successful uploads (retries \
                 included)",
            ),
            ack_seconds: histogram(
                "woodpecker_fragment_ack_wait_seconds",
                "Time from a fragment's first entry to its acknowledgement (the longest wait of \
                 its entries)",
            ),
            store_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "woodpecker_store_request_duration_seconds",
                    "Object-store requests by operation, each attempt as the engine sees it",
                )
                .buckets(SECONDS_BUCKETS.to_vec()),
                &["op"],
            )
            .expect("valid histogram options"),
            store_errors: IntCounterVec::new(
                Opts::new(
                    "woodpecker_store_errors_total",
                    "Object-store requests that failed, by operation and kind",
                ),
                &["op", "kind"],
            )
            .expect("valid counter options"),
            upload_retries: IntCounterVec::new(
                Opts::new(
                    "woodpecker_upload_retries_total",
                    "Fragment upload attempts that failed and were retried, by cause",
                ),
                &["cause"],
            )
            .expect("valid counter options"),
        }
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
    /// Their payload bytes.
    pub appended_bytes: u64,
    /// Entries acknowledged durable.
    pub acks: u64,
    /// Segments started by a roll (not counting each writer's first).
    pub segment_rolls: u64,
    /// Segments sealed by their writer (not by recovery).
    pub segment_seals: u64,
    /// Writers that found themselves fenced by a newer one.
    pub fences: u64,
    /// Truncation points this client moved.
    pub truncations: u64,
    /// Reads the fragment cache answered (or joined to a GET in flight).
    pub cache_hits: u64,
    /// Whole-object reads the fragment cache passed on to the store.
    pub cache_misses: u64,
    /// Pooled fragment buffers in use now (open, closed or uploading
    /// fragments), all shards.
    pub buffers_in_use: u64,
    /// Requests waiting in the open writers' ingest rings now.
    pub ring_requests: u64,
    /// The largest lag of this client's live readers now: entries known
    /// durable (fetched, or acknowledged by this client's writer of the
    /// log) that the reader's caller has not taken yet.
    pub reader_lag_max: u64,
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
            appended_bytes: self.appended_bytes.load(Ordering::Relaxed),
            acks: self.acks.load(Ordering::Relaxed),
            segment_rolls: self.segment_rolls.load(Ordering::Relaxed),
            segment_seals: self.segment_seals.load(Ordering::Relaxed),
            fences: self.fences.load(Ordering::Relaxed),
            truncations: self.truncations.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            reader_lag_max: self
                .readers
                .live()
                .iter()
                .map(|r| r.lag())
                .max()
                .unwrap_or(0),
            ring_requests: self.rings.live().iter().map(|r| r.len() as u64).sum(),
            buffers_in_use: self
                .pools
                .lock()
                .expect("pools lock")
                .iter()
                .map(|pool| (pool.capacity() - pool.available()) as u64)
                .sum(),
        }
    }
}
