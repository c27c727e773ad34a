//! One log's writer, running as a task on the log's shard.
//!
//! It pops append requests from the writer's ingest ring, copies each
//! payload once into the open fragment (a pooled aligned buffer), and closes
//! the fragment when the next entry does not fit, when it holds
//! `fragment_entries_max` entries, or `flush_interval_ms` after its first
//! entry. Closed fragments upload in parallel (at most
//! `uploads_in_flight_max`), each with put-if-absent, so no two writers can
//! ever both own a fragment key. Acknowledgements complete strictly in
//! offset order: fragment k is acknowledged only once fragments 0..=k are
//! durable. If a fragment fails for good, it and every later append fail,
//! in order, with the reason.
//!
//! Segments roll by size and age: the closing fragment is marked
//! last-of-segment, the next segment is created in metadata before any of
//! its fragments upload, and the old one is sealed once all its fragments
//! are durable.

use crate::buffer::{AlignedBuf, BufferPool};
use crate::config::{Config, FlushPolicy};
use crate::ring::Ring;
use crate::share::Share;
use crate::stats::Stats;
use crate::upload::upload_fragment;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use woodpecker_engine::format::fragment::{FormatError, FragmentEncoder, FragmentMeta};
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::{LogId, MetaStore, SealInfo, SegmentId, SegmentInfo};
use woodpecker_engine::store::ObjectStore;
use woodpecker_engine::{Error, ErrorKind, Result};

/// Properties of one entry: small key/value pairs.
pub type Properties = Vec<(Bytes, Bytes)>;

/// Requests popped per turn before the driver looks at completions and
/// timers again (keeps one busy writer from starving its own acks).
const INGEST_TURN_MAX: usize = 4096;
/// Emptied ack lists kept for reuse.
const SPARE_ACK_LISTS_MAX: usize = 64;
/// Backoff between attempts to watch the log's epoch.
const FENCE_WATCH_RETRY_MIN: Duration = Duration::from_millis(50);
const FENCE_WATCH_RETRY_MAX: Duration = Duration::from_secs(5);

pub(crate) enum Request {
    Append {
        payload: Bytes,
        props: Properties,
        ack: oneshot::Sender<Result<u64>>,
    },
    Batch {
        entries: Vec<(Bytes, Properties)>,
        ack: oneshot::Sender<Result<Range<u64>>>,
    },
    Close {
        ack: oneshot::Sender<Result<()>>,
    },
}

/// Who to tell when an entry (or the last entry of a batch) is durable.
enum Ack {
    One(oneshot::Sender<Result<u64>>, u64),
    Batch(oneshot::Sender<Result<Range<u64>>>, Range<u64>),
}

impl Ack {
    fn complete(self, outcome: &Result<()>) {
        match self {
            Ack::One(tx, offset) => {
                let _ = tx.send(outcome.clone().map(|_| offset));
            }
            Ack::Batch(tx, range) => {
                let _ = tx.send(outcome.clone().map(|_| range));
            }
        }
    }
}

/// A batch being copied in, possibly across several fragments.
struct BatchInProgress {
    entries: Vec<(Bytes, Properties)>,
    next: usize,
    first_offset: Option<u64>,
    ack: oneshot::Sender<Result<Range<u64>>>,
}

struct OpenFragment {
    encoder: FragmentEncoder<AlignedBuf>,
    acks: Vec<Ack>,
    opened_at: Instant,
}

/// A closed fragment, uploading or waiting for an upload slot.
struct Pending {
    seq: u64,
    key: String,
    segment_id: SegmentId,
    data: Option<Bytes>,
    end_offset: u64,
    /// Set on the last fragment of a rolled segment: seal it with this
    /// once the fragment is durable.
    seal: Option<SealInfo>,
    acks: Vec<Ack>,
    fragment_index: u64,
    /// CRC32C of the whole fragment, sent along as the object checksum.
    crc32c: u32,
    outcome: Option<Result<Bytes>>,
}

/// How far handling a request got.
enum Progress {
    Done,
    /// No buffer is free; the request (if any) waits in `stalled`, a batch
    /// waits in `batch`.
    NeedBuffer(Option<Request>),
}

struct SegmentCursor {
    id: SegmentId,
    next_fragment: u64,
    bytes: u64,
    opened_at: Instant,
}

/// Upload results, pushed by upload tasks, and the epoch watch's news,
/// drained by the driver.
#[derive(Default)]
struct Completions {
    /// Sequence number, outcome, and the fragment's bytes when it succeeded.
    done: RefCell<VecDeque<(u64, Result<Bytes>)>>,
    /// The log's epoch, once the watch saw it pass this writer's.
    fenced_by: Cell<Option<u64>>,
    waker: RefCell<Option<Waker>>,
}

impl Completions {
    fn push(&self, seq: u64, outcome: Result<Bytes>) {
        self.done.borrow_mut().push_back((seq, outcome));
        self.wake();
    }

    fn fence(&self, epoch: u64) {
        self.fenced_by.set(Some(epoch));
        self.wake();
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    fn is_ready(&self) -> bool {
        !self.done.borrow().is_empty() || self.fenced_by.get().is_some()
    }
}

/// Watches the log's epoch until it passes `epoch` (another writer opened
/// the log), then tells the driver, so a writer learns of its fence without
/// uploading. Re-establishes a broken watch with backoff; the driver drops
/// the task when it ends.
async fn watch_fence(meta: Arc<dyn MetaStore>, log: LogId, epoch: u64, news: Rc<Completions>) {
    let mut backoff = FENCE_WATCH_RETRY_MIN;
    loop {
        match meta.watch_epoch(log).await {
            Ok(mut watch) => match watch.above(epoch).await {
                Ok(current) => return news.fence(current),
                Err(err) => tracing::warn!(log, error = %err, "epoch watch ended; re-watching"),
            },
            Err(err) => tracing::warn!(log, error = %err, "cannot watch the epoch; retrying"),
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(FENCE_WATCH_RETRY_MAX);
    }
}

/// What the shard gives every log driver.
#[derive(Clone)]
pub(crate) struct ShardServices {
    pub config: Rc<Config>,
    pub store: Rc<dyn ObjectStore>,
    pub meta: Arc<dyn MetaStore>,
    pub layout: Layout,
    pub pool: BufferPool,
    pub drivers: Rc<Drivers>,
    pub stats: Arc<Stats>,
}

/// The log drivers running on one shard.
pub(crate) struct Drivers {
    gate: glommio::sync::Gate,
    rings: RefCell<Vec<Arc<Ring<Request>>>>,
}

impl Default for Drivers {
    fn default() -> Self {
        Drivers {
            gate: glommio::sync::Gate::new(),
            rings: RefCell::new(Vec::new()),
        }
    }
}

impl ShardServices {
    pub(crate) fn spawn_driver(&self, driver: LogDriver) -> Result<()> {
        let ring = driver.ring.clone();
        let log = driver.log;
        let guarded_ring = ring.clone();
        let guarded = async move {
            if let Err(panic) = crate::catch_panic(driver.run()).await {
                // An invariant broke: stop this writer (its pending appends
                // fail as "the writer stopped"), not the shard.
                tracing::error!(log, panic, "writer task panicked; the writer is stopped");
                guarded_ring.close();
                while guarded_ring.pop().is_some() {}
            }
        };
        self.drivers
            .gate
            .spawn(guarded)
            .map_err(|e| Error::new(ErrorKind::Closed, format!("shard is stopping: {e}")))?
            .detach();
        let mut rings = self.drivers.rings.borrow_mut();
        rings.retain(|r| !r.is_closed());
        rings.push(ring);
        Ok(())
    }

    /// Closes every writer of this shard and waits until they finished
    /// (flushed, sealed, or failed).
    pub(crate) async fn drivers_done(&self) {
        for ring in self.drivers.rings.borrow_mut().drain(..) {
            ring.close();
        }
        let _ = self.drivers.gate.close().await;
    }
}

pub(crate) struct LogDriver {
    log: LogId,
    epoch: u64,
    services: ShardServices,
    ring: Arc<Ring<Request>>,
    durable: Arc<crate::reader::TailSignal>,
    /// This writer's share of the shard's buffers.
    share: Share,
    segment: SegmentCursor,
    next_offset: u64,
    open: Option<OpenFragment>,
    /// The index scratch vector, reused by every fragment.
    index_scratch: Vec<u32>,
    /// A request that could not proceed for lack of a buffer.
    stalled: Option<Request>,
    batch: Option<BatchInProgress>,
    pipeline: VecDeque<Pending>,
    uploads_in_flight: usize,
    completions: Rc<Completions>,
    /// Emptied ack lists, reused by later fragments.
    spare_acks: Vec<Vec<Ack>>,
    next_seq: u64,
    /// The newest segment this writer sealed.
    last_sealed: Option<SegmentId>,
    /// Set when the writer stopped for good: the error of appends never
    /// sent, and of appends whose fragment was sent.
    failed: Option<Error>,
    failed_sent: Option<Error>,
    closing: Option<Option<oneshot::Sender<Result<()>>>>,
}

impl LogDriver {
    pub(crate) fn new(
        services: ShardServices,
        log: LogId,
        epoch: u64,
        segment: &SegmentInfo,
        ring: Arc<Ring<Request>>,
        durable: Arc<crate::reader::TailSignal>,
        share: Share,
    ) -> LogDriver {
        LogDriver {
            log,
            epoch,
            services,
            ring,
            durable,
            share,
            segment: SegmentCursor {
                id: segment.id,
                next_fragment: 0,
                bytes: 0,
                opened_at: Instant::now(),
            },
            next_offset: segment.first_offset,
            open: None,
            index_scratch: Vec::new(),
            stalled: None,
            batch: None,
            pipeline: VecDeque::new(),
            uploads_in_flight: 0,
            completions: Rc::new(Completions::default()),
            spare_acks: Vec::new(),
            next_seq: 0,
            last_sealed: None,
            failed: None,
            failed_sent: None,
            closing: None,
        }
    }

    fn config(&self) -> &Config {
        &self.services.config
    }

    /// Runs until the writer is closed (or dropped) and everything it
    /// accepted is durable or failed.
    pub(crate) async fn run(mut self) {
        let _fence_watch = glommio::spawn_local(watch_fence(
            self.services.meta.clone(),
            self.log,
            self.epoch,
            self.completions.clone(),
        ));
        loop {
            self.drain_completions().await;
            if self.closing.is_some() && self.pipeline.is_empty() && self.open.is_none() {
                self.finish_close().await;
                return;
            }
            if self.ring.is_closed() && self.ring.is_empty() && self.closing.is_none() {
                // The writer handle was dropped: close cleanly, no one to tell.
                self.begin_close(None).await;
                continue;
            }
            let progressed = self.ingest().await;
            self.flush_if_due().await;
            self.start_uploads();
            if progressed {
                // A busy writer must not starve the shard's other tasks
                // (uploads, readers, other logs): give way when glommio's
                // preemption timer says the turn is over.
                glommio::yield_if_needed().await;
            } else {
                self.wait_for_event().await;
            }
        }
    }

    /// Pops and handles requests until the ring is empty, a buffer is
    /// missing, or the turn is over. Returns whether anything happened.
    async fn ingest(&mut self) -> bool {
        let mut handled = 0;
        while handled < INGEST_TURN_MAX {
            if self.failed.is_some() || self.closing.is_some() {
                self.fail_queued();
                return handled > 0;
            }
            let progress = if self.batch.is_some() {
                self.continue_batch().await
            } else {
                let request = match self.stalled.take() {
                    Some(request) => request,
                    None => match self.ring.pop() {
                        Some(request) => request,
                        None => return handled > 0,
                    },
                };
                self.handle(request).await
            };
            match progress {
                Progress::Done => handled += 1,
                Progress::NeedBuffer(request) => {
                    self.stalled = request;
                    return handled > 0;
                }
            }
        }
        true
    }

    async fn handle(&mut self, request: Request) -> Progress {
        match request {
            Request::Append {
                payload,
                props,
                ack,
            } => {
                if !self.ensure_open() {
                    return Progress::NeedBuffer(Some(Request::Append {
                        payload,
                        props,
                        ack,
                    }));
                }
                match self.push_entry(&payload, &props).await {
                    Ok(Some(offset)) => {
                        let open = self.open.as_mut().expect("entry just pushed");
                        open.acks.push(Ack::One(ack, offset));
                        self.close_if_entries_full().await;
                    }
                    Ok(None) => {
                        return Progress::NeedBuffer(Some(Request::Append {
                            payload,
                            props,
                            ack,
                        }))
                    }
                    Err(err) => {
                        let _ = ack.send(Err(err));
                    }
                }
                Progress::Done
            }
            Request::Batch { entries, ack } => {
                if let Some(err) = self.check_batch(&entries) {
                    let _ = ack.send(Err(err));
                    return Progress::Done;
                }
                self.batch = Some(BatchInProgress {
                    entries,
                    next: 0,
                    first_offset: None,
                    ack,
                });
                self.continue_batch().await
            }
            Request::Close { ack } => {
                self.begin_close(Some(ack)).await;
                Progress::Done
            }
        }
    }

    fn check_batch(&self, entries: &[(Bytes, Properties)]) -> Option<Error> {
        if entries.is_empty() {
            return Some(Error::new(ErrorKind::Invalid, "empty batch"));
        }
        let max = self.config().entry_bytes_max();
        entries
            .iter()
            .find(|(payload, props)| entry_bytes(payload, props) > max)
            .map(|_| too_large(max))
    }

    /// Copies the rest of the current batch in.
    async fn continue_batch(&mut self) -> Progress {
        loop {
            let batch = self.batch.as_ref().expect("a batch is in progress");
            if batch.next == batch.entries.len() {
                let batch = self.batch.take().expect("checked");
                let first = batch.first_offset.expect("batches are not empty");
                let ack = Ack::Batch(batch.ack, first..self.next_offset);
                let open = self.open.as_mut().expect("holds the batch's last entry");
                open.acks.push(ack);
                self.close_if_entries_full().await;
                return Progress::Done;
            }
            if !self.ensure_open() {
                return Progress::NeedBuffer(None);
            }
            let (payload, props) = {
                let batch = self.batch.as_ref().expect("checked");
                batch.entries[batch.next].clone()
            };
            match self.push_entry(&payload, &props).await {
                Ok(Some(offset)) => {
                    let batch = self.batch.as_mut().expect("checked");
                    batch.first_offset.get_or_insert(offset);
                    batch.next += 1;
                    if batch.next < batch.entries.len() {
                        self.close_if_entries_full().await;
                    }
                }
                Ok(None) => return Progress::NeedBuffer(None),
                Err(err) => {
                    let batch = self.batch.take().expect("checked");
                    let _ = batch.ack.send(Err(err));
                    return Progress::Done;
                }
            }
        }
    }

    /// Opens a fragment if none is open; false if no buffer is free.
    fn ensure_open(&mut self) -> bool {
        if self.open.is_some() {
            return true;
        }
        let Some(buf) = self.share.try_take() else {
            return false;
        };
        let meta = FragmentMeta {
            log_id: self.log,
            segment_id: self.segment.id,
            fragment_index: self.segment.next_fragment,
            writer_epoch: self.epoch,
            first_offset: self.next_offset,
        };
        let index = std::mem::take(&mut self.index_scratch);
        self.open = Some(OpenFragment {
            encoder: FragmentEncoder::new(buf, index, meta),
            acks: self.spare_acks.pop().unwrap_or_default(),
            opened_at: Instant::now(),
        });
        true
    }

    /// Copies one entry into the open fragment, closing it first if the
    /// entry does not fit. `Ok(None)`: a new buffer is needed and none is free.
    async fn push_entry(&mut self, payload: &[u8], props: &Properties) -> Result<Option<u64>> {
        let max = self.config().entry_bytes_max();
        if entry_bytes(payload, props) > max {
            return Err(too_large(max));
        }
        let open = self.open.as_mut().expect("caller opened a fragment");
        match open.encoder.push(payload, props) {
            Ok(offset) => {
                self.next_offset = offset + 1;
                Ok(Some(offset))
            }
            Err(FormatError::Full) => {
                self.close_fragment().await;
                if !self.ensure_open() {
                    return Ok(None);
                }
                let open = self.open.as_mut().expect("just opened");
                let offset = open.encoder.push(payload, props).map_err(Error::from)?;
                self.next_offset = offset + 1;
                Ok(Some(offset))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn close_if_entries_full(&mut self) {
        let full = self
            .open
            .as_ref()
            .is_some_and(|f| f.encoder.entry_count() >= self.services.config.fragment_entries_max);
        if full {
            self.close_fragment().await;
        }
    }

    /// Closes the open fragment if its time has come: at once if an upload
    /// slot is free (adaptive policy; what gathered while every slot was
    /// busy ships together), else `flush_interval_ms` after its first
    /// entry.
    async fn flush_if_due(&mut self) {
        let Some(open) = self.open.as_ref().filter(|f| !f.encoder.is_empty()) else {
            return;
        };
        let interval = Duration::from_millis(self.config().flush_interval_ms);
        let due = match self.config().flush_policy {
            FlushPolicy::Adaptive => {
                self.upload_slot_free() || open.opened_at.elapsed() >= interval
            }
            FlushPolicy::Interval => open.opened_at.elapsed() >= interval,
        };
        if due {
            self.close_fragment().await;
        }
    }

    /// Whether a fragment closed now would start uploading at once (no
    /// closed fragment waits for a slot, and a slot is free).
    fn upload_slot_free(&self) -> bool {
        self.uploads_in_flight < self.config().uploads_in_flight_max
            && !self.pipeline.iter().any(|p| p.data.is_some())
    }

    /// Finishes the open fragment and queues it for upload; rolls the
    /// segment if it is now big or old enough (or the writer is closing).
    async fn close_fragment(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        if open.encoder.is_empty() {
            let (buf, index) = open.encoder.into_parts();
            self.index_scratch = index;
            self.share.give_back(buf);
            return;
        }
        let config = self.config();
        let projected = self.segment.bytes + open.encoder.encoded_len() as u64;
        let roll = projected >= config.segment_bytes_max
            || self.segment.opened_at.elapsed() >= Duration::from_millis(config.segment_age_max_ms);
        let last_of_segment = roll || self.closing.is_some();
        let len = open
            .encoder
            .finish(last_of_segment)
            .expect("a non-empty fragment finishes");
        let meta = *open.encoder.meta();
        let crc32c = open.encoder.object_crc32c();
        let (buf, index) = open.encoder.into_parts();
        self.index_scratch = index;
        let data = self.share.freeze(buf, len);
        debug_assert_eq!(meta.fragment_index, self.segment.next_fragment);
        self.segment.next_fragment += 1;
        self.segment.bytes += len as u64;
        let seal = last_of_segment.then_some(SealInfo {
            end_offset: self.next_offset,
            fragment_count: self.segment.next_fragment,
            bytes: self.segment.bytes,
        });
        let pending = Pending {
            seq: self.next_seq,
            key: self
                .services
                .layout
                .fragment_key(self.log, self.segment.id, meta.fragment_index),
            segment_id: self.segment.id,
            data: Some(data),
            end_offset: self.next_offset,
            seal,
            acks: open.acks,
            fragment_index: meta.fragment_index,
            crc32c,
            outcome: None,
        };
        self.next_seq += 1;
        self.pipeline.push_back(pending);
        if roll && self.closing.is_none() {
            self.roll_segment().await;
        }
    }

    /// Starts the next segment; its fragments may upload once it exists.
    async fn roll_segment(&mut self) {
        let closing = self.pipeline.back().and_then(|p| p.seal);
        assert_eq!(
            closing.map(|seal| seal.end_offset),
            Some(self.next_offset),
            "a segment starts where the one before it ends"
        );
        let next = SegmentInfo::new_open(self.segment.id + 1, self.epoch, self.next_offset);
        let created = crate::upload::create_segment(
            &*self.services.meta,
            &self.services.config,
            self.log,
            self.epoch,
            &next,
        )
        .await;
        match created {
            Ok(()) => {
                self.segment = SegmentCursor {
                    id: next.id,
                    next_fragment: 0,
                    bytes: 0,
                    opened_at: Instant::now(),
                };
            }
            Err(err) => self.fail(err),
        }
    }

    fn start_uploads(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let max = self.config().uploads_in_flight_max;
        for pending in self.pipeline.iter_mut() {
            if self.uploads_in_flight >= max {
                break;
            }
            let Some(data) = pending.data.take() else {
                continue;
            };
            self.uploads_in_flight += 1;
            let store = self.services.store.clone();
            let config = self.services.config.clone();
            let completions = self.completions.clone();
            let stats = self.services.stats.clone();
            let key = pending.key.clone();
            let seq = pending.seq;
            let crc32c = pending.crc32c;
            glommio::spawn_local(async move {
                let len = data.len() as u64;
                let started = std::time::Instant::now();
                let outcome =
                    upload_fragment(&*store, &config, &stats, &key, data.clone(), crc32c).await;
                if outcome.is_ok() {
                    stats.fragments_uploaded.fetch_add(1, Ordering::Relaxed);
                    stats.bytes_uploaded.fetch_add(len, Ordering::Relaxed);
                    let micros = started.elapsed().as_micros() as u64;
                    stats.upload_micros.fetch_add(micros, Ordering::Relaxed);
                    stats.upload_micros_max.fetch_max(micros, Ordering::Relaxed);
                }
                completions.push(seq, outcome.map(|()| data));
            })
            .detach();
        }
    }

    /// Applies upload results and acknowledges, in order, every fragment
    /// at the front of the pipeline that is durable.
    async fn drain_completions(&mut self) {
        if let Some(current) = self.completions.fenced_by.take() {
            self.fenced(current);
        }
        loop {
            let Some((seq, outcome)) = self.completions.done.borrow_mut().pop_front() else {
                break;
            };
            self.uploads_in_flight -= 1;
            if let Some(pending) = self.pipeline.iter_mut().find(|p| p.seq == seq) {
                pending.outcome = Some(outcome);
            }
        }
        // Refill the freed upload slots before acknowledging (thousands of
        // acks per fragment) and before the next ingest turn.
        self.start_uploads();
        while self.pipeline.front().is_some_and(|p| p.outcome.is_some()) {
            let pending = self.pipeline.pop_front().expect("checked");
            let outcome = pending.outcome.expect("checked");
            let data = match outcome {
                Ok(data) => data,
                Err(err) => {
                    for ack in pending.acks {
                        ack.complete(&Err(err.clone()));
                    }
                    self.fail(err);
                    continue;
                }
            };
            if let Some(err) = self.failed_sent.clone() {
                // Durable, but behind a failed fragment: never acknowledged,
                // yet visible after recovery if that fragment landed after all.
                for ack in pending.acks {
                    ack.complete(&Err(err.clone()));
                }
                continue;
            }
            assert!(
                pending.end_offset >= self.durable.durable.load(Ordering::Acquire),
                "acknowledgements go forward"
            );
            self.durable.publish(|| crate::reader::RecentFragment {
                segment: pending.segment_id,
                index: pending.fragment_index,
                key: pending.key.clone(),
                // A copy: the pooled buffer must go back to the pool.
                bytes: Bytes::copy_from_slice(&data),
            });
            drop(data);
            self.durable.advance(pending.end_offset);
            let mut acks = pending.acks;
            for ack in acks.drain(..) {
                ack.complete(&Ok(()));
            }
            if self.spare_acks.len() < SPARE_ACK_LISTS_MAX {
                self.spare_acks.push(acks);
            }
            if let Some(seal) = pending.seal.filter(|_| self.failed.is_none()) {
                self.seal(pending.segment_id, seal).await;
            }
        }
    }

    async fn seal(&mut self, segment: SegmentId, seal: SealInfo) {
        let result = crate::upload::seal_segment(
            &*self.services.meta,
            &self.services.config,
            self.log,
            self.epoch,
            segment,
            seal,
        )
        .await;
        match result {
            Ok(()) => self.last_sealed = Some(segment),
            Err(err) => self.fail(err),
        }
    }

    /// Stops the writer for good after `cause`: every pending and later
    /// append fails. Appends whose fragment upload had started may be
    /// durable (`OutcomeUnknown`, even when fenced: a seal or create that
    /// meets the new epoch says nothing of the fragments in flight); the
    /// rest were never sent (`WriterFailed`, or `Fenced` if another writer
    /// took over).
    fn fail(&mut self, cause: Error) {
        if self.failed.is_none() {
            tracing::warn!(log = self.log, error = %cause, "writer failed");
            self.failed = Some(stopped(&cause, false));
        }
        if self.failed_sent.is_none() {
            self.failed_sent = Some(stopped(&cause, true));
        }
        let err = self.failed.clone().expect("just set");
        let sent = self.failed_sent.clone().expect("set with failed");
        for pending in self.pipeline.drain(..) {
            let err = if pending.data.is_none() { &sent } else { &err };
            for ack in pending.acks {
                ack.complete(&Err(err.clone()));
            }
        }
        self.fail_unsent(&err);
    }

    /// Fails the open fragment, a batch being copied in and every queued
    /// request with `err`.
    fn fail_unsent(&mut self, err: &Error) {
        if let Some(open) = self.open.take() {
            for ack in open.acks {
                ack.complete(&Err(err.clone()));
            }
            let (buf, index) = open.encoder.into_parts();
            self.index_scratch = index;
            self.share.give_back(buf);
        }
        if let Some(batch) = self.batch.take() {
            let _ = batch.ack.send(Err(err.clone()));
        }
        self.fail_queued();
    }

    /// The epoch watch saw another writer take the log: nothing more is
    /// sent, and appends not yet sent fail `Fenced`. Uploads in flight
    /// finish and are acknowledged if they land: a fragment durable after
    /// every fragment before it is in the log whatever the new writer's
    /// recovery does (its fence marker takes the first missing index).
    fn fenced(&mut self, current: u64) {
        if self.failed.is_some() {
            return;
        }
        let err = Error::new(
            ErrorKind::Fenced,
            format!(
                "another writer took over the log (epoch {current}; this writer's is {})",
                self.epoch
            ),
        );
        tracing::warn!(log = self.log, epoch = self.epoch, current, "writer fenced");
        self.failed = Some(err.clone());
        let unsent = self
            .pipeline
            .iter()
            .position(|p| p.data.is_some())
            .unwrap_or(self.pipeline.len());
        for pending in self.pipeline.drain(unsent..) {
            for ack in pending.acks {
                ack.complete(&Err(err.clone()));
            }
        }
        self.fail_unsent(&err);
    }

    /// Fails every request still queued (after a failure or close).
    fn fail_queued(&mut self) {
        let err = self
            .failed
            .clone()
            .unwrap_or_else(|| Error::new(ErrorKind::Closed, "the writer is closed"));
        let stalled = self.stalled.take();
        for request in stalled
            .into_iter()
            .chain(std::iter::from_fn(|| self.ring.pop()))
        {
            match request {
                Request::Append { ack, .. } => {
                    let _ = ack.send(Err(err.clone()));
                }
                Request::Batch { ack, .. } => {
                    let _ = ack.send(Err(err.clone()));
                }
                Request::Close { ack } => {
                    let _ = ack.send(Err(err.clone()));
                }
            }
        }
    }

    async fn begin_close(&mut self, ack: Option<oneshot::Sender<Result<()>>>) {
        self.ring.close();
        self.closing = Some(ack);
        if self.failed.is_none() {
            self.close_fragment().await;
        }
    }

    async fn finish_close(&mut self) {
        let result = match self.failed.clone() {
            Some(err) => Err(err),
            None => {
                // Sealed already if its last fragment was the one closed
                // by `begin_close`; a segment rolled to just before has no
                // fragments yet and is sealed here, empty.
                if self.last_sealed != Some(self.segment.id) {
                    let seal = SealInfo {
                        end_offset: self.next_offset,
                        fragment_count: self.segment.next_fragment,
                        bytes: self.segment.bytes,
                    };
                    self.seal(self.segment.id, seal).await;
                }
                match self.failed.clone() {
                    Some(err) => Err(err),
                    None => Ok(()),
                }
            }
        };
        // Anything that raced into the ring before it closed.
        if self.failed.is_none() {
            self.failed = Some(Error::new(ErrorKind::Closed, "the writer is closed"));
        }
        self.fail_queued();
        if let Some(Some(ack)) = self.closing.take() {
            let _ = ack.send(result);
        }
    }

    /// Sleeps until a request, an upload result, a free buffer (if one is
    /// awaited) or the flush deadline.
    async fn wait_for_event(&mut self) {
        let interval = Duration::from_millis(self.config().flush_interval_ms);
        let deadline = self
            .open
            .as_ref()
            .filter(|f| !f.encoder.is_empty())
            .map(|f| (f.opened_at + interval).saturating_duration_since(Instant::now()));
        let mut timer = deadline.map(glommio::timer::Timer::new);
        let waiting_for_buffer = self.stalled.is_some() || self.batch.is_some();
        let mut buffer_listener = waiting_for_buffer.then(|| self.share.listen());
        let ring = self.ring.clone();
        let completions = self.completions.clone();
        let share = &self.share;
        // A closed ring wakes the driver until it has begun closing (the
        // writer may have gone away after this turn's check; remembering
        // "closed when the wait began" instead lost that wake-up and left
        // the driver, and its shard's shutdown, waiting forever).
        let close_handled = self.closing.is_some();
        poll_fn(|cx| {
            if let Some(timer) = timer.as_mut() {
                if Pin::new(timer).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            *completions.waker.borrow_mut() = Some(cx.waker().clone());
            if completions.is_ready() {
                return Poll::Ready(());
            }
            if let Some(listener) = buffer_listener.as_mut() {
                if share.may_take() || Pin::new(listener).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            } else if ring.is_closed() {
                if !close_handled {
                    return Poll::Ready(());
                }
            } else if ring.poll_ready(cx).is_ready() {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }
}

/// The error of an append on a writer stopped by `cause`: `OutcomeUnknown`
/// if the append's fragment was `sent` (its upload started: it may be in
/// the log whatever stopped the writer, a fence included, since the new
/// writer's recovery keeps every fragment that landed in order); else
/// `Fenced` if another writer took over, `WriterFailed` otherwise.
fn stopped(cause: &Error, sent: bool) -> Error {
    let kind = match (sent, cause.kind()) {
        (true, _) => ErrorKind::OutcomeUnknown,
        (false, ErrorKind::Fenced) => ErrorKind::Fenced,
        (false, _) => ErrorKind::WriterFailed,
    };
    if cause.kind() == kind {
        return cause.clone();
    }
    let detail = if sent {
        format!(
            "may be durable: its fragment was sent, then the writer stopped: {}",
            cause.detail()
        )
    } else {
        format!("not written: the writer stopped: {}", cause.detail())
    };
    Error::new(kind, detail)
}

fn entry_bytes(payload: &[u8], props: &Properties) -> usize {
    payload.len()
        + props
            .iter()
            .map(|(k, v)| 6 + k.len() + v.len())
            .sum::<usize>()
}

fn too_large(max: usize) -> Error {
    Error::new(
        ErrorKind::Invalid,
        format!("entry larger than {max} bytes (fragment_bytes_max less framing)"),
    )
}
