//! How far this client's readers are behind: each reader shares a
//! [`ReaderProgress`] with its task, and the metrics read the largest lag
//! when scraped. One relaxed store per entry taken, nothing else.

use crate::reader::TailSignal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Weak;

/// One reader's progress, in log offsets.
#[derive(Default)]
pub(crate) struct ReaderProgress {
    /// The next offset its caller will be given.
    pub delivered: AtomicU64,
    /// The end of what its task has fetched (known durable).
    pub fetched: AtomicU64,
    /// The log's writer in this client, if it has one when the reader
    /// opened: its durable end is known without listing.
    pub tail: Option<Weak<TailSignal>>,
    /// Set when the caller drops its reader (the task may still hold this
    /// a moment longer, until it sees the stop).
    pub dropped: AtomicBool,
}

impl ReaderProgress {
    /// Entries known durable that the caller has not taken yet.
    pub(crate) fn lag(&self) -> u64 {
        if self.dropped.load(Ordering::Relaxed) {
            return 0;
        }
        let durable = self
            .tail
            .as_ref()
            .and_then(Weak::upgrade)
            .map_or(0, |signal| signal.durable.load(Ordering::Acquire));
        let known = durable.max(self.fetched.load(Ordering::Relaxed));
        known.saturating_sub(self.delivered.load(Ordering::Relaxed))
    }
}
