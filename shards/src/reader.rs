//! Log readers: stream a log from any offset through its history and live
//! tail, every entry checked.
//!
//! A reader is a task on the log's shard. It follows the log's segments
//! (from metadata: a listing serves every sealed segment in it, and is
//! refreshed past them or on the segment watch), lists each segment's
//! fragments (listing, never probing), fetches them with GETs (ranged
//! when starting inside a fragment), `prefetch_fragments` at a time as
//! separate tasks (so fetches progress while earlier fragments are handed
//! over), and hands the caller one fragment at a time through a bounded
//! ring. The shard checks each whole fragment's header (to keep its
//! position); the caller's side checks everything else (every entry's
//! checksum, the index, the fragment checksum) before it returns any entry
//! of that fragment, so the cost of verification is paid by the reading
//! thread, not the shard. Ranged reads are checked on the shard. Payloads
//! are slices of the fetched object, not copies.
//!
//! What a reader returns never passes the end of a sealed segment (its
//! fragment count and end offset) nor the durable run of an open one (the
//! contiguous fragments up to the first gap or fence marker); recovery
//! seals an open segment at or past anything a reader saw there.
//!
//! At the end of the log the reader waits: woken by the writer in the same
//! client when entries become durable (no polling), otherwise polling the
//! object store from the last key it saw with a backoff growing from 5 ms
//! to 200 ms, and woken by the segment watch when segments roll or seal.

use crate::driver::ShardServices;
use crate::ring::Ring;
use bytes::Bytes;
use event_listener::Event;
use futures::stream::{self, StreamExt};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use woodpecker_engine::format::fragment::{
    decode_entry, DecodedFragment, EntryRef, FragmentHeader, FragmentTail, FRAGMENT_HEADER_BYTES,
};
use woodpecker_engine::format::marker::FENCE_MARKER_BYTES;
use woodpecker_engine::layout::ListedFragment;
use woodpecker_engine::meta::{LogInfo, SegmentId, SegmentInfo, SegmentState, SegmentWatch};
use woodpecker_engine::{Error, ErrorKind, Result};

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first retained entry.
    Earliest,
    /// The end of the log: only entries appended from now on.
    Latest,
    /// This offset; below the truncation point it is an `Invalid` error.
    Offset(u64),
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    pub offset: u64,
    pub payload: Bytes,
    pub properties: Vec<(Bytes, Bytes)>,
}

impl ReadEntry {
    /// The entry `entry`, whose payload and properties lie in `bytes`, as
    /// slices of `bytes` (no copies).
    fn slice_of(bytes: &Bytes, entry: EntryRef<'_>) -> ReadEntry {
        ReadEntry {
            offset: entry.offset,
            payload: bytes.slice_ref(entry.payload),
            properties: entry
                .properties
                .iter()
                .map(|(k, v)| (bytes.slice_ref(k), bytes.slice_ref(v)))
                .collect(),
        }
    }
}

/// How the writer in the same client tells readers that entries became
/// durable, and hands tail readers its last durable fragments (copies, at
/// most `RECENT_FRAGMENTS_MAX`, kept only while tail readers exist) so they
/// need not fetch them back from the object store.
#[derive(Default)]
pub(crate) struct TailSignal {
    pub durable: AtomicU64,
    pub advanced: Event,
    readers: AtomicUsize,
    recent: Mutex<VecDeque<RecentFragment>>,
}

#[derive(Clone)]
pub(crate) struct RecentFragment {
    pub segment: SegmentId,
    pub index: u64,
    pub key: String,
    pub bytes: Bytes,
}

const RECENT_FRAGMENTS_MAX: usize = 2;

impl TailSignal {
    /// Publishes a durable fragment (before `advance`), if anyone tails.
    pub(crate) fn publish(&self, fragment: impl FnOnce() -> RecentFragment) {
        if self.readers.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut recent = self.recent.lock().expect("tail lock");
        if recent.len() == RECENT_FRAGMENTS_MAX {
            recent.pop_front();
        }
        recent.push_back(fragment());
    }

    pub(crate) fn advance(&self, durable: u64) {
        self.durable.store(durable, Ordering::Release);
        self.advanced.notify(usize::MAX);
    }

    fn recent(&self, segment: SegmentId, index: u64) -> Option<RecentFragment> {
        let recent = self.recent.lock().expect("tail lock");
        recent
            .iter()
            .find(|f| f.segment == segment && f.index == index)
            .cloned()
    }
}

/// Counts a tail reader in while it lives.
pub(crate) struct TailInterest(pub Arc<TailSignal>);

impl TailInterest {
    pub(crate) fn new(signal: Arc<TailSignal>) -> TailInterest {
        signal.readers.fetch_add(1, Ordering::AcqRel);
        TailInterest(signal)
    }
}

impl Drop for TailInterest {
    fn drop(&mut self) {
        if self.0.readers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.recent.lock().expect("tail lock").clear();
        }
    }
}

pub(crate) type ReaderItem = Result<Delivery>;

/// What the reader task hands its caller.
pub(crate) enum Delivery {
    /// Entries already checked on the shard (ranged reads).
    Entries(Vec<ReadEntry>),
    /// A whole fragment whose header the shard checked; the caller's side
    /// checks all of it before returning any entry.
    Fragment(UncheckedFragment),
}

/// A fragment as fetched by the reader task.
enum Fetched {
    /// Entries of a ranged read, checked.
    Checked(Vec<ReadEntry>),
    /// A whole fragment object, unchecked.
    Whole(Bytes),
}

/// A fetched whole fragment and the entries of it the caller is owed. Its
/// header was checked against the key on the shard (the same bytes).
pub(crate) struct UncheckedFragment {
    key: String,
    bytes: Bytes,
    /// Entries `from..to` (log offsets) are returned.
    from: u64,
    to: u64,
}

impl UncheckedFragment {
    /// Checks the whole fragment (every checksum) and appends entries
    /// `from..to` to `ready`, or returns Corrupt (adding nothing).
    fn check_into(self, ready: &mut VecDeque<ReadEntry>) -> Result<()> {
        let bytes = &self.bytes;
        let decoded =
            DecodedFragment::decode(bytes).map_err(|e| corrupt(format!("{}: {e}", self.key)))?;
        let skip = (self.from - decoded.header.first_offset) as usize;
        let take = (self.to - self.from) as usize;
        ready.extend(
            decoded
                .entries()
                .skip(skip)
                .take(take)
                .map(|e| ReadEntry::slice_of(bytes, e)),
        );
        Ok(())
    }
}

/// Set when the caller drops its `LogReader`; wakes the reader task.
/// (The task must not wait on the ring's consumer side: that belongs to
/// the caller.)
#[derive(Default)]
pub(crate) struct Stop {
    stopped: AtomicBool,
    waker: futures::task::AtomicWaker,
}

impl Stop {
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn poll_stopped(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.is_stopped() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.is_stopped() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

const POLL_BACKOFF_MIN: Duration = Duration::from_millis(5);
const POLL_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// The caller's side of a reader. Dropping it stops the reader task.
pub struct LogReader {
    ring: Arc<Ring<ReaderItem>>,
    progress: Arc<crate::lag::ReaderProgress>,
    stop: Arc<Stop>,
    ready: VecDeque<ReadEntry>,
    failed: Option<Error>,
    log: LogInfo,
}

impl LogReader {
    pub(crate) fn new(
        ring: Arc<Ring<ReaderItem>>,
        progress: Arc<crate::lag::ReaderProgress>,
        stop: Arc<Stop>,
        log: LogInfo,
    ) -> LogReader {
        LogReader {
            ring,
            progress,
            stop,
            ready: VecDeque::new(),
            failed: None,
            log,
        }
    }

    pub fn log(&self) -> &LogInfo {
        &self.log
    }

    /// The next entry, waiting at the end of the log for a new one.
    pub async fn next(&mut self) -> Result<ReadEntry> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                self.taken(entry.offset);
                return Ok(entry);
            }
            self.fill().await?;
        }
    }

    /// Entries in order, at least one (waiting for it at the end of the
    /// log), and no more than `max_bytes` of payload beyond the first.
    pub async fn read_batch(&mut self, max_bytes: usize) -> Result<Vec<ReadEntry>> {
        if self.ready.is_empty() {
            self.fill().await?;
        }
        // At least one entry, then as many as fit in `max_bytes`.
        let mut bytes = 0;
        let count = self
            .ready
            .iter()
            .enumerate()
            .take_while(|(i, entry)| {
                bytes += entry.payload.len();
                *i == 0 || bytes <= max_bytes
            })
            .count();
        let batch: Vec<ReadEntry> = self.ready.drain(..count).collect();
        if let Some(last) = batch.last() {
            self.taken(last.offset);
        }
        Ok(batch)
    }

    /// Notes the caller has the entries up to `offset`.
    fn taken(&self, offset: u64) {
        self.progress.delivered.store(offset + 1, Ordering::Relaxed);
    }

    /// Blocking [`Self::next`].
    pub fn next_blocking(&mut self) -> Result<ReadEntry> {
        crate::block_on(self.next())
    }

    /// An entry if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Result<Option<ReadEntry>> {
        if self.ready.is_empty() {
            if let Some(item) = self.ring.pop() {
                self.accept(item)?;
            }
        }
        let entry = self.ready.pop_front();
        if let Some(entry) = &entry {
            self.taken(entry.offset);
        }
        Ok(entry)
    }

    async fn fill(&mut self) -> Result<()> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        loop {
            if let Some(item) = self.ring.pop() {
                return self.accept(item);
            }
            if self.ring.is_closed() && self.ring.is_empty() {
                let err = Error::new(ErrorKind::Closed, "the reader stopped");
                self.failed = Some(err.clone());
                return Err(err);
            }
            poll_fn(|cx| self.ring.poll_ready(cx)).await;
        }
    }

    fn accept(&mut self, item: ReaderItem) -> Result<()> {
        let checked = item.and_then(|delivery| match delivery {
            Delivery::Entries(entries) => {
                self.ready.extend(entries);
                Ok(())
            }
            Delivery::Fragment(fragment) => fragment.check_into(&mut self.ready),
        });
        match checked {
            Ok(()) => Ok(()),
            Err(err) => {
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("log", &self.log.name)
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        self.progress.dropped.store(true, Ordering::Relaxed);
        self.ring.close();
        self.stop.stop();
    }
}

/// The reader task's state on the shard.
pub(crate) struct ReaderTask {
    pub services: ShardServices,
    pub log: LogInfo,
    pub ring: Arc<Ring<ReaderItem>>,
    pub stop: Arc<Stop>,
    pub progress: Arc<crate::lag::ReaderProgress>,
    pub tail: Option<TailInterest>,
    pub watch: SegmentWatch,
    pub position: u64,
    pub prefetch_fragments: usize,
    /// Keeps this log's written fragments worth caching while it reads.
    pub _reading: crate::cache::Reading,
}

fn corrupt(detail: String) -> Error {
    Error::new(ErrorKind::Corrupt, detail)
}

impl ReaderTask {
    /// Runs until the caller drops the reader or an error is delivered.
    pub(crate) async fn run(mut self) {
        let outcome = match crate::catch_panic(self.follow()).await {
            Ok(outcome) => outcome,
            Err(panic) => {
                tracing::error!(log = self.log.id, panic, "reader task panicked");
                Err(Error::new(
                    ErrorKind::Closed,
                    format!("the reader stopped on an internal error: {panic}"),
                ))
            }
        };
        if let Err(err) = outcome {
            if !self.ring.is_closed() {
                let _ = self.ring.push(Err(err)).await;
            }
        }
    }

    async fn follow(&mut self) -> Result<()> {
        // The last listing. A sealed segment never changes, so while the
        // position lies in one it is read from here; the store is listed
        // again only past the last sealed segment known (catching up over
        // S segments costs O(S) records, not O(S^2)).
        let mut segments: Vec<SegmentInfo> = Vec::new();
        loop {
            if self.stop.is_stopped() {
                return Ok(());
            }
            let cached = holder(&segments, self.position)
                .filter(|&i| segments[i].state == SegmentState::Sealed);
            let current = match cached {
                Some(i) => Some(segments[i].clone()),
                None => {
                    segments = self.services.meta.list_segments(self.log.id).await?;
                    if segments
                        .first()
                        .is_some_and(|s| self.position < s.start_offset())
                    {
                        return Err(Error::new(
                            ErrorKind::Invalid,
                            format!(
                                "offset {} of log {} is truncated",
                                self.position, self.log.name
                            ),
                        ));
                    }
                    holder(&segments, self.position).map(|i| segments[i].clone())
                }
            };
            match current {
                Some(segment) => self.read_segment(&segment).await?,
                None => self.wait_for_change().await?,
            }
        }
    }

    /// Reads a segment from `position` to its end: all of it if sealed, its
    /// durable run (then waits for more) if open.
    async fn read_segment(&mut self, segment: &SegmentInfo) -> Result<()> {
        let layout = self.services.layout.clone();
        let store = self.services.store.clone();
        let mut known: Vec<ListedFragment> = layout
            .list_fragments(&*store, self.log.id, segment.id)
            .await?;
        let mut next_index = self.locate(segment, &known).await?;
        // Only a start inside a fragment needs ranged reads; every later
        // fragment begins exactly at `position`.
        let mut ranged_first = self.position > segment.first_offset;
        let mut backoff = POLL_BACKOFF_MIN;
        loop {
            if self.stop.is_stopped() {
                return Ok(());
            }
            glommio::yield_if_needed().await;
            let present = durable_count(&known);
            let (limit, end) = match segment.state {
                SegmentState::Sealed => (segment.fragment_count, Some(segment.end_offset)),
                SegmentState::Open => (present, None),
            };
            if present < limit {
                return Err(self.missing(segment, present).await);
            }
            if next_index < limit {
                let fetched = self
                    .fetch_run(segment, &known, next_index, limit, end, ranged_first)
                    .await?;
                ranged_first = false;
                next_index = fetched;
                backoff = POLL_BACKOFF_MIN;
                continue;
            }
            if let Some(end) = end {
                if self.position != end {
                    return Err(corrupt(format!(
                        "segment {} of log {} ends at {end} but its fragments end at {}",
                        segment.id, self.log.name, self.position
                    )));
                }
                return Ok(());
            }
            // At the durable end of an open segment: wait for more, then
            // list only what is new, or return to re-read the segment record.
            if known
                .last()
                .is_some_and(|f| f.size as usize == FENCE_MARKER_BYTES)
            {
                return self.wait_for_change().await;
            }
            let woke_by_change = self.wait_for_more(backoff).await?;
            if woke_by_change || self.stop.is_stopped() {
                return Ok(());
            }
            // The writer in this client may hand over the next fragment.
            let handed = self
                .tail
                .as_ref()
                .and_then(|interest| interest.0.recent(segment.id, next_index));
            if let Some(recent) = handed {
                // Fragments listed past a gap are listed again later.
                known.truncate(next_index as usize);
                let listed = ListedFragment {
                    index: recent.index,
                    key: recent.key.clone(),
                    size: recent.bytes.len() as u64,
                };
                self.deliver_whole(segment, &listed, recent.bytes.clone(), None)
                    .await?;
                known.push(listed);
                next_index += 1;
                backoff = POLL_BACKOFF_MIN;
                continue;
            }
            // List from the end of the contiguous run, not the last key
            // seen: uploads finish out of order, so a fragment may appear
            // after one with a higher index was listed.
            known.truncate(durable_count(&known) as usize);
            let after = known.last().map(|f| f.key.clone());
            let prefix = layout.segment_prefix(self.log.id, segment.id);
            let page = store
                .list_page(
                    &prefix,
                    after.as_deref(),
                    woodpecker_engine::store::LIST_PAGE_KEYS_MAX,
                )
                .await?;
            let before = known.len();
            for object in page.objects {
                if let Some(index) = layout.parse_fragment_key(self.log.id, segment.id, &object.key)
                {
                    known.push(ListedFragment {
                        index,
                        key: object.key,
                        size: object.size,
                    });
                }
            }
            if known.len() == before {
                backoff = (backoff * 2).min(POLL_BACKOFF_MAX);
            }
        }
    }

    /// The error for a sealed segment whose fragment `index` is not in the
    /// store: a clean "truncated" if retention deleted it under the reader,
    /// else corruption.
    async fn missing(&self, segment: &SegmentInfo, index: u64) -> Error {
        let truncated = match self.services.meta.get_log(&self.log.name).await {
            Ok(log) => log.truncated_below > self.position,
            Err(err) => return err.into(),
        };
        if truncated {
            return Error::new(
                ErrorKind::Invalid,
                format!(
                    "offset {} of log {} was truncated while it was read",
                    self.position, self.log.name
                ),
            );
        }
        corrupt(format!(
            "segment {} of log {} is sealed with {} fragments but fragment {index} is missing",
            segment.id, self.log.name, segment.fragment_count
        ))
    }

    /// The index of the fragment holding `position` (found by reading
    /// fragment headers, binary search), or 0 at the segment start.
    async fn locate(&self, segment: &SegmentInfo, known: &[ListedFragment]) -> Result<u64> {
        if self.position <= segment.first_offset {
            return Ok(0);
        }
        let run = durable_count(known) as usize;
        let (mut lo, mut hi) = (0usize, run);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let header = self.read_header(&known[mid]).await?;
            if header.first_offset + header.entry_count as u64 <= self.position {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo as u64)
    }

    async fn read_header(&self, fragment: &ListedFragment) -> Result<FragmentHeader> {
        let bytes = self
            .services
            .store
            .get_range(&fragment.key, 0..FRAGMENT_HEADER_BYTES as u64)
            .await?;
        FragmentHeader::decode(&bytes).map_err(|e| corrupt(format!("{}: {e}", fragment.key)))
    }

    /// Fetches fragments `from..limit` (prefetching in parallel), delivers
    /// their entries from `position` on (below `end` if given); returns the
    /// index after the last fragment delivered.
    async fn fetch_run(
        &mut self,
        segment: &SegmentInfo,
        known: &[ListedFragment],
        from: u64,
        limit: u64,
        end: Option<u64>,
        ranged_first: bool,
    ) -> Result<u64> {
        let store = self.services.store.clone();
        let first_position = self.position;
        // Each fetch is its own task, so it progresses while earlier
        // fragments are handed over; at most `prefetch_fragments` at once.
        let fetches = stream::iter(known[from as usize..limit as usize].iter().cloned())
            .map(|fragment| {
                let store = store.clone();
                let ranged = ranged_first && fragment.index == from;
                glommio::spawn_local(async move {
                    let fetched = if ranged {
                        fetch_from(&*store, &fragment, first_position)
                            .await
                            .map(Fetched::Checked)
                    } else {
                        store
                            .get(&fragment.key)
                            .await
                            .map_err(Error::from)
                            .map(Fetched::Whole)
                    };
                    (fragment, fetched)
                })
            })
            .buffered(self.prefetch_fragments.max(1));
        futures::pin_mut!(fetches);
        let mut index = from;
        while let Some((fragment, fetched)) = fetches.next().await {
            let delivered = match fetched? {
                Fetched::Checked(entries) => self.deliver(&fragment, entries, end).await?,
                Fetched::Whole(bytes) => self.deliver_whole(segment, &fragment, bytes, end).await?,
            };
            if !delivered {
                return Ok(limit); // the caller is gone
            }
            index = fragment.index + 1;
        }
        Ok(index)
    }

    /// Hands the checked entries from `position` on (below `end`) to the
    /// caller; false if the caller is gone.
    async fn deliver(
        &mut self,
        fragment: &ListedFragment,
        entries: Vec<ReadEntry>,
        end: Option<u64>,
    ) -> Result<bool> {
        let entries: Vec<ReadEntry> = entries
            .into_iter()
            .filter(|e| e.offset >= self.position && end.is_none_or(|end| e.offset < end))
            .collect();
        let Some(first) = entries.first() else {
            return Ok(true);
        };
        if first.offset != self.position {
            return Err(corrupt(format!(
                "{}: expected offset {} but found {}",
                fragment.key, self.position, first.offset
            )));
        }
        self.position = entries.last().expect("non-empty").offset + 1;
        let pushed = self.ring.push(Ok(Delivery::Entries(entries))).await.is_ok();
        self.progress
            .fetched
            .store(self.position, Ordering::Relaxed);
        Ok(pushed)
    }

    /// Hands a whole fragment's entries from `position` on (below `end`) to
    /// the caller, which checks the fragment; the shard checks only its
    /// header, which says which offsets it holds. False if the caller is
    /// gone.
    async fn deliver_whole(
        &mut self,
        segment: &SegmentInfo,
        fragment: &ListedFragment,
        bytes: Bytes,
        end: Option<u64>,
    ) -> Result<bool> {
        let header = FragmentHeader::decode(&bytes)
            .map_err(|e| corrupt(format!("{}: {e}", fragment.key)))?;
        if header.log_id != self.log.id
            || header.segment_id != segment.id
            || header.fragment_index != fragment.index
            || header.fragment_bytes() != bytes.len() as u64
        {
            return Err(corrupt(format!(
                "{}: header does not match its key",
                fragment.key
            )));
        }
        let first = header.first_offset.max(self.position);
        let stop = end.map_or(header.end_offset(), |end| end.min(header.end_offset()));
        if first >= stop {
            return Ok(true);
        }
        if first != self.position {
            return Err(corrupt(format!(
                "{}: expected offset {} but found {}",
                fragment.key, self.position, first
            )));
        }
        self.position = stop;
        let whole = UncheckedFragment {
            key: fragment.key.clone(),
            bytes,
            from: first,
            to: stop,
        };
        let pushed = self.ring.push(Ok(Delivery::Fragment(whole))).await.is_ok();
        self.progress
            .fetched
            .store(self.position, Ordering::Relaxed);
        Ok(pushed)
    }

    /// Waits for the writer's signal (or a poll interval), or a segment
    /// change; true if woken by a segment change.
    async fn wait_for_more(&mut self, backoff: Duration) -> Result<bool> {
        let position = self.position;
        let durable_wait: Pin<Box<dyn Future<Output = ()>>> = match &self.tail {
            Some(interest) => {
                let signal = interest.0.clone();
                Box::pin(async move {
                    loop {
                        let listener = signal.advanced.listen();
                        if signal.durable.load(Ordering::Acquire) > position {
                            return;
                        }
                        listener.await;
                    }
                })
            }
            None => Box::pin(glommio::timer::sleep(backoff)),
        };
        let stop = self.stop.clone();
        let closed = poll_fn(move |cx| stop.poll_stopped(cx));
        let change = self.watch.changed();
        futures::pin_mut!(change, closed);
        let mut durable_wait = durable_wait;
        let result = poll_fn(|cx| {
            if let Poll::Ready(changed) = change.as_mut().poll(cx) {
                return Poll::Ready(changed.map(|_| true));
            }
            if durable_wait.as_mut().poll(cx).is_ready() || closed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(false));
            }
            Poll::Pending
        })
        .await;
        result.map_err(Error::from)
    }

    async fn wait_for_change(&mut self) -> Result<()> {
        self.wait_for_more(POLL_BACKOFF_MAX).await.map(|_| ())
    }
}

/// The index of the segment holding `position`. Each segment starts where
/// the one before it ended: the newest one starting at or before
/// `position` holds it, unless it is sealed before it. An open segment is
/// read only once the one before it is sealed: until then its fragments
/// may lie past a hole that recovery will void (a writer that died
/// mid-roll).
fn holder(segments: &[SegmentInfo], position: u64) -> Option<usize> {
    segments
        .iter()
        .rposition(|s| s.start_offset() <= position)
        .filter(|&i| {
            let s = &segments[i];
            match s.state {
                SegmentState::Sealed => position < s.end_offset,
                SegmentState::Open => i == 0 || segments[i - 1].state == SegmentState::Sealed,
            }
        })
}

/// Fragments `0..n` are present and none is a fence marker.
fn durable_count(known: &[ListedFragment]) -> u64 {
    let mut count = 0;
    for fragment in known {
        if fragment.index != count || fragment.size as usize == FENCE_MARKER_BYTES {
            break;
        }
        count += 1;
    }
    count
}

/// Reads only the entries from `position` on, with ranged GETs: the header,
/// the index and footer, then the entry range.
async fn fetch_from(
    store: &dyn woodpecker_engine::store::ObjectStore,
    fragment: &ListedFragment,
    position: u64,
) -> Result<Vec<ReadEntry>> {
    let bad = |e: woodpecker_engine::format::FormatError| corrupt(format!("{}: {e}", fragment.key));
    let head = store
        .get_range(&fragment.key, 0..FRAGMENT_HEADER_BYTES as u64)
        .await?;
    let header = FragmentHeader::decode(&head).map_err(bad)?;
    if header.fragment_bytes() != fragment.size {
        return Err(corrupt(format!(
            "{}: size differs from its header",
            fragment.key
        )));
    }
    let tail_start = fragment.size - header.tail_bytes() as u64;
    let tail = store
        .get_range(&fragment.key, tail_start..fragment.size)
        .await?;
    let tail = FragmentTail::decode(&header, &tail).map_err(bad)?;
    let skip = position
        .saturating_sub(header.first_offset)
        .min(header.entry_count as u64) as usize;
    if skip == header.entry_count as usize {
        return Ok(Vec::new());
    }
    let start = FRAGMENT_HEADER_BYTES as u64 + tail.index[skip] as u64;
    let end = FRAGMENT_HEADER_BYTES as u64 + header.entries_bytes;
    let bytes = store.get_range(&fragment.key, start..end).await?;
    let mut entries = Vec::with_capacity(header.entry_count as usize - skip);
    let mut at = 0usize;
    for i in skip..header.entry_count as usize {
        let offset = header.first_offset + i as u64;
        let (entry, used) = decode_entry(&bytes[at..], offset).map_err(bad)?;
        entries.push(ReadEntry::slice_of(&bytes, entry));
        at += used;
    }
    if at != bytes.len() {
        return Err(corrupt(format!(
            "{}: entries do not fill their region",
            fragment.key
        )));
    }
    Ok(entries)
}
