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
use uploads::{watch_fence, Completions};
use woodpecker_engine::format::fragment::{FormatError, FragmentEncoder, FragmentMeta};
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::{LogId, MetaStore, SealInfo, SegmentId, SegmentInfo};
use woodpecker_engine::store::ObjectStore;
use woodpecker_engine::{Error, ErrorKind, Result};

mod ingest;
mod stop;
mod uploads;

pub use ingest::{entry_bytes, PROPERTY_OVERHEAD_BYTES};

/// Properties of one entry: small key/value pairs.
pub type Properties = Vec<(Bytes, Bytes)>;

/// Requests popped per turn before the driver looks at completions and
/// timers again (keeps one busy writer from starving its own acks).
const INGEST_TURN_MAX: usize = 4096;
/// Emptied ack lists kept for reuse.
const SPARE_ACK_LISTS_MAX: usize = 64;
/// How long the adaptive policy waits for appends expected back
/// (`Returns`): this fraction of the acknowledged fragment's ack latency.
const RETURNS_WAIT_DIVISOR: u32 = 8;
/// Backoff between attempts to watch the log's epoch.
const FENCE_WATCH_RETRY_MIN: Duration = Duration::from_millis(50);
const FENCE_WATCH_RETRY_MAX: Duration = Duration::from_secs(5);

pub(crate) enum Request {
    Append {
        payload: Bytes,
        props: Properties,
        ack: oneshot::Sender<Result<u64>>,
        /// When it was queued, with `profile_stages`.
        queued_at: Option<Instant>,
    },
    Batch {
        entries: Vec<(Bytes, Properties)>,
        /// Conditional: the offset the first entry must get (the log's end
        /// when the driver takes the batch), else nothing is written.
        expect: Option<u64>,
        ack: oneshot::Sender<Result<Range<u64>>>,
        queued_at: Option<Instant>,
    },
    Close {
        ack: oneshot::Sender<Result<()>>,
    },
}

impl Request {
    /// Notes the instant it is queued (for `profile_stages`).
    pub(crate) fn stamp(&mut self) {
        match self {
            Request::Append { queued_at, .. } | Request::Batch { queued_at, .. } => {
                *queued_at = Some(Instant::now());
            }
            Request::Close { .. } => {}
        }
    }
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
    queued_at: Option<Instant>,
}

struct OpenFragment {
    encoder: FragmentEncoder<AlignedBuf>,
    acks: Vec<Ack>,
    opened_at: Instant,
    /// Payload bytes of its entries.
    payload_bytes: u64,
    /// With `profile_stages`: each append's instants.
    stamps: Vec<crate::profile::Stamp>,
}

impl OpenFragment {
    /// With `profile_stages` (a request stamped when queued): notes that
    /// its `entries` are written now.
    fn stamp(&mut self, queued: Option<Instant>, entries: u64) {
        if let Some(queued) = queued {
            self.stamps.push(crate::profile::Stamp {
                queued,
                written: Instant::now(),
                entries,
            });
        }
    }
}

/// A closed fragment's instants, with `profile_stages`.
struct FragmentProfile {
    stamps: Vec<crate::profile::Stamp>,
    closed: Instant,
    started: Option<Instant>,
    durable: Option<Instant>,
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
    /// When its first entry arrived (for the ack-wait histogram).
    opened_at: Instant,
    profile: Option<Box<FragmentProfile>>,
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
    /// The logs read on this shard lately (the fragment cache keeps
    /// copies of their written fragments).
    pub reads: Rc<crate::cache::ReadInterest>,
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
    /// Appends expected back right after acknowledgements went out.
    returns: Option<Returns>,
}

/// Appends the driver expects back soon. A caller that keeps a fixed
/// number of appends in flight answers each acknowledgement with its next
/// append, one by one; shipping the first of them alone (nothing uploads,
/// a slot is free) would leave the rest a whole upload behind it. So for
/// a short while after acknowledgements the adaptive policy waits until as
/// many entries are open as were open plus acknowledged then, unless more
/// than half as many as were acknowledged are open already (a steady
/// stream arrived during the upload, not callers waiting on acks).
struct Returns {
    /// Entries the open fragment holds once they are all back.
    entries: usize,
    /// The wait's end: `RETURNS_WAIT_DIVISOR`th of the acknowledged
    /// fragment's ack latency after the acknowledgement.
    until: Instant,
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
            returns: None,
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
    /// slot is free, the fragment is worth one and no request waits to be
    /// copied in (adaptive policy; what gathered meanwhile, or queued
    /// while the driver was copying, ships together), else
    /// `flush_interval_ms` after its first entry.
    async fn flush_if_due(&mut self) {
        let Some(open) = self.open.as_ref().filter(|f| !f.encoder.is_empty()) else {
            return;
        };
        let interval = Duration::from_millis(self.config().flush_interval_ms);
        let due = match self.config().flush_policy {
            FlushPolicy::Adaptive => {
                (self.caught_up()
                    && self.upload_slot_free()
                    && self.worth_an_upload(open.encoder.encoded_len())
                    && self
                        .returns_wait_until(open.encoder.entry_count())
                        .is_none())
                    || open.opened_at.elapsed() >= interval
            }
            FlushPolicy::Interval => open.opened_at.elapsed() >= interval,
        };
        if due {
            self.close_fragment().await;
        }
    }

    /// Whether every request queued so far is in the open fragment: the
    /// ring is empty and no request or batch waits for a buffer.
    fn caught_up(&self) -> bool {
        self.ring.is_empty() && self.stalled.is_none() && self.batch.is_none()
    }

    /// Whether a fragment of `bytes` is worth an upload beside the ones
    /// running: `flush_bytes_per_upload` for each of them. PUTs in flight
    /// share the store's capacity, so beyond what the bandwidth needs one
    /// more only slows the others down (docs/ARCHITECTURE.md has figures).
    fn worth_an_upload(&self, bytes: usize) -> bool {
        let per_upload = self.config().flush_bytes_per_upload;
        self.uploads_in_flight.saturating_mul(per_upload) <= bytes
    }

    /// While nothing uploads, and fewer than the expected appends are back
    /// (`Returns`): the end of the wait for them.
    fn returns_wait_until(&self, open_entries: usize) -> Option<Instant> {
        let returns = self.returns.as_ref()?;
        (self.uploads_in_flight == 0
            && open_entries < returns.entries
            && Instant::now() < returns.until)
            .then_some(returns.until)
    }

    /// Notes that `acked` entries were acknowledged, `waited` after the
    /// first of their fragment arrived.
    fn expect_returns(&mut self, acked: usize, waited: Duration) {
        if self.config().flush_policy != FlushPolicy::Adaptive {
            return;
        }
        let open = self.open.as_ref().map_or(0, |f| f.encoder.entry_count());
        if self.returns.is_none() && open * 2 > acked {
            // More arrived during the upload than half of what it carried:
            // a steady stream, not callers answering acks; shipping it now
            // costs nothing.
            return;
        }
        let until = Instant::now() + waited / RETURNS_WAIT_DIVISOR;
        let returns = self.returns.get_or_insert(Returns {
            entries: open,
            until,
        });
        returns.entries += acked;
        returns.until = until;
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
        self.returns = None;
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
        self.services
            .stats
            .appends
            .fetch_add(self.next_offset - meta.first_offset, Ordering::Relaxed);
        self.services
            .stats
            .appended_bytes
            .fetch_add(open.payload_bytes, Ordering::Relaxed);
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
            opened_at: open.opened_at,
            profile: (!open.stamps.is_empty()).then(|| {
                Box::new(FragmentProfile {
                    stamps: open.stamps,
                    closed: Instant::now(),
                    started: None,
                    durable: None,
                })
            }),
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
                tracing::debug!(
                    log = self.log,
                    segment = next.id,
                    start_offset = self.next_offset,
                    "segment rolled"
                );
                self.services
                    .stats
                    .segment_rolls
                    .fetch_add(1, Ordering::Relaxed);
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

    /// Sleeps until a request, an upload result, a free buffer (if one is
    /// awaited) or the flush deadline.
    async fn wait_for_event(&mut self) {
        let interval = Duration::from_millis(self.config().flush_interval_ms);
        let deadline = self
            .open
            .as_ref()
            .filter(|f| !f.encoder.is_empty())
            .map(|f| (f.opened_at + interval).saturating_duration_since(Instant::now()));
        let returns = self
            .open
            .as_ref()
            .and_then(|f| self.returns_wait_until(f.encoder.entry_count()))
            .map(|until| until.saturating_duration_since(Instant::now()));
        let deadline = match (deadline, returns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
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
