//! The embedded client: `Client` (logs: create, list, delete, open a
//! writer) and `LogWriter` (append, batches, close). Usable from any thread:
//! every future is `Send` and runtime-agnostic (await it on tokio, on
//! another executor, or block on it with [`block_on`]).
//!
//! A `Client` starts `config.shards` pinned glommio executors. Each log
//! belongs to shard `shard_of(log_id, shards)`, where its writer runs; the
//! writer's appends reach it through the writer's own lock-free ring.

use crate::buffer::BufferPool;
use crate::config::Config;
use crate::driver::{LogDriver, Properties, Request, ShardServices};
use crate::reader::{LogReader, ReaderTask, StartAt, Stop, TailInterest, TailSignal};
use crate::ring::{PushError, Ring};
use crate::stats::{Stats, StatsSnapshot};
use crate::{shard_of, spawn_shard, ShardHandle};
use bytes::Bytes;
use futures::future::LocalBoxFuture;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::{LogId, LogInfo, MetaError, MetaStore, SegmentInfo, SegmentState};
use woodpecker_engine::recovery::{durable_run, recover_log, RecoveredLog};
use woodpecker_engine::scan::{scan_log, ScannedEntry};
use woodpecker_engine::store::{list_all, StoreFactory};
use woodpecker_engine::{Error, ErrorKind, Result};

/// Control requests queued to one shard at most.
const CONTROL_RING_MAX: usize = 1024;

/// Runs a future to completion on the calling thread, for blocking callers.
/// Never call it on a shard thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

type ShardJob = Box<dyn FnOnce(ShardServices) -> LocalBoxFuture<'static, ()> + Send>;

enum Control {
    Run(ShardJob),
}

struct Inner {
    config: Config,
    meta: Arc<dyn MetaStore>,
    layout: Layout,
    controls: Vec<Arc<Ring<Control>>>,
    handles: Mutex<Vec<ShardHandle<()>>>,
    stats: Arc<Stats>,
    /// Durability signals of this client's writers, for its tail readers.
    tails: Mutex<HashMap<LogId, Weak<TailSignal>>>,
}

/// The embedded Woodpecker client. Cheap to clone; shut down by
/// [`Client::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Starts the shards. `store` opens the object store on each shard.
    pub fn start(config: Config, store: StoreFactory, meta: Arc<dyn MetaStore>) -> Result<Client> {
        config
            .validate()
            .map_err(|e| Error::new(ErrorKind::Invalid, format!("configuration: {e}")))?;
        let layout = Layout::new(&config.key_prefix)?;
        let cores = crate::available_cores();
        let stats = Arc::new(Stats::default());
        let mut controls = Vec::with_capacity(config.shards);
        let mut handles = Vec::with_capacity(config.shards);
        for shard in 0..config.shards {
            let control = Arc::new(Ring::new(CONTROL_RING_MAX));
            let core = match (config.pin_cores, cores.is_empty()) {
                (true, false) => Some(cores[shard % cores.len()]),
                _ => None,
            };
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let services_config = config.clone();
            let factory = store.clone();
            let meta = meta.clone();
            let layout = layout.clone();
            let ring = control.clone();
            let shard_stats = stats.clone();
            let shards_total = config.shards;
            let stalls = config.stall_detection;
            let cache_bytes = config.fragment_cache_bytes / config.shards;
            let handle = spawn_shard(
                &format!("woodpecker-shard-{shard}"),
                core,
                stalls,
                move || async move {
                    let opened = factory.open().map_err(Error::from);
                    let reads = Rc::new(crate::cache::ReadInterest::default());
                    let store = match opened {
                        Ok(store) => {
                            let store =
                                crate::metered::MeteredStore::wrap(store, shard_stats.clone());
                            let store = crate::cache::CachedStore::wrap(
                                store,
                                cache_bytes,
                                shard_stats.clone(),
                                reads.clone(),
                            );
                            let _ = ready_tx.send(Ok(()));
                            store
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    let services_config = Rc::new(services_config);
                    let pool = BufferPool::new(
                        services_config.buffers_per_shard(),
                        services_config.fragment_bytes_max,
                    );
                    shard_stats
                        .pools
                        .lock()
                        .expect("pools lock")
                        .push(pool.clone());
                    let services = ShardServices {
                        config: services_config,
                        store,
                        meta,
                        layout,
                        pool,
                        drivers: Default::default(),
                        stats: shard_stats,
                        reads,
                    };
                    let auditor =
                        crate::audit::spawn_auditor(services.clone(), shard, shards_total);
                    shard_main(services, ring, auditor).await;
                },
            )
            .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
            ready_rx
                .recv()
                .map_err(|_| Error::new(ErrorKind::Unavailable, "shard died while starting"))??;
            controls.push(control);
            handles.push(handle);
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                meta,
                layout,
                controls,
                handles: Mutex::new(handles),
                stats,
                tails: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The client's Prometheus metrics: register them in a registry
    /// (`registry.register(Box::new(client.metrics()))`) or render them.
    pub fn metrics(&self) -> crate::metrics::Metrics {
        crate::metrics::Metrics::new(self.inner.stats.clone())
    }

    /// Each stage's share of append latency so far (empty histograms
    /// unless `Config::profile_stages`).
    pub fn stage_profile(&self) -> crate::StageProfile {
        self.inner.stats.profiler.snapshot()
    }

    /// Upload counters since the client started.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    pub async fn create_log(&self, name: &str) -> Result<LogInfo> {
        Ok(self.inner.meta.create_log(name).await?)
    }

    pub async fn get_log(&self, name: &str) -> Result<LogInfo> {
        Ok(self.inner.meta.get_log(name).await?)
    }

    pub async fn list_logs(&self) -> Result<Vec<LogInfo>> {
        Ok(self.inner.meta.list_logs().await?)
    }

    /// Deletes a log: its metadata first (so nobody finds it), then its
    /// objects. A crash in between leaves unreferenced objects, not a
    /// broken log.
    pub async fn delete_log(&self, name: &str) -> Result<()> {
        let log = self.get_log(name).await?;
        self.inner.meta.delete_log(name).await?;
        let prefix = self.inner.layout.log_prefix(log.id);
        self.on_shard(log.id, move |services| async move {
            for object in list_all(&*services.store, &prefix).await? {
                services.store.delete(&object.key).await?;
            }
            Ok(())
        })
        .await
    }

    /// Opens the log's writer: fences every earlier writer (epoch bump in
    /// metadata), recovers and seals segments they left open, and starts a
    /// new segment. A writer opened elsewhere later fences this one.
    pub async fn open_writer(&self, name: &str) -> Result<LogWriter> {
        let log = self.get_log(name).await?;
        let ring_max = self.inner.config.ring_requests_max;
        let entry_bytes_max = self.inner.config.entry_bytes_max();
        let opened = self
            .on_shard(log.id, move |services| async move {
                open_on_shard(services, log, ring_max).await
            })
            .await?;
        let mut tails = self.inner.tails.lock().expect("tails lock");
        tails.retain(|_, signal| signal.strong_count() > 0);
        tails.insert(opened.log.id, Arc::downgrade(&opened.durable));
        drop(tails);
        self.inner.stats.rings.add(&opened.ring);
        Ok(LogWriter {
            ring: opened.ring,
            log: opened.log,
            epoch: opened.epoch,
            durable: opened.durable,
            entry_bytes_max,
            profile: self.inner.config.profile_stages,
        })
    }

    /// Opens a reader of the log at `start`. At the end of the log it waits
    /// for new entries: woken by this client's writer of the log if it has
    /// one, else polling the object store with a bounded backoff.
    pub async fn open_reader(&self, name: &str, start: StartAt) -> Result<LogReader> {
        let log = self.get_log(name).await?;
        let tail = self
            .inner
            .tails
            .lock()
            .expect("tails lock")
            .get(&log.id)
            .and_then(Weak::upgrade)
            .map(TailInterest::new);
        let prefetch = self.inner.config.reader_prefetch_fragments();
        let ring = Arc::new(Ring::new(prefetch.max(2)));
        let task_ring = ring.clone();
        let stop = Arc::new(Stop::default());
        let task_stop = stop.clone();
        let task_log = log.clone();
        let progress = Arc::new(crate::lag::ReaderProgress {
            tail: tail.as_ref().map(|interest| Arc::downgrade(&interest.0)),
            ..Default::default()
        });
        let task_progress = progress.clone();
        self.on_shard(log.id, move |services| async move {
            let reading = services
                .reads
                .reading(services.layout.log_prefix(task_log.id));
            let watch = services.meta.watch_segments(task_log.id).await?;
            let position = resolve_start(&services, &task_log.name, start).await?;
            task_progress.delivered.store(position, Ordering::Relaxed);
            task_progress.fetched.store(position, Ordering::Relaxed);
            let task = ReaderTask {
                progress: task_progress,
                services,
                log: task_log,
                ring: task_ring,
                stop: task_stop,
                tail,
                watch,
                position,
                prefetch_fragments: prefetch,
                _reading: reading,
            };
            glommio::spawn_local(task.run()).detach();
            Ok(())
        })
        .await?;
        self.inner.stats.readers.add(&progress);
        Ok(LogReader::new(ring, progress, stop, log))
    }

    /// Marks entries below `offset` as truncated: readers can no longer
    /// read them, and the auditor deletes segments wholly below the point
    /// after the retention period. `offset` may not pass the log's end
    /// (checked against this client's writer of the log if it has one, else
    /// from the objects).
    pub async fn truncate(&self, name: &str, offset: u64) -> Result<()> {
        let log = self.get_log(name).await?;
        if offset > self.local_durable(log.id).unwrap_or(0) {
            let end = self
                .on_shard(log.id, move |services| async move {
                    log_end(&services, log.id).await
                })
                .await?;
            if offset > end {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    format!("cannot truncate {name} at {offset}: the log ends at {end}"),
                ));
            }
        }
        self.inner.meta.truncate(log.id, offset).await?;
        self.inner.stats.truncations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Where this client's writer of `log` (if any) is durable up to.
    fn local_durable(&self, log: LogId) -> Option<u64> {
        let tails = self.inner.tails.lock().expect("tails lock");
        let signal = tails.get(&log)?.upgrade()?;
        Some(signal.durable.load(Ordering::Acquire))
    }

    /// Runs one auditor pass on every shard now, ignoring the retention
    /// period (for tools and tests); returns the segments deleted.
    pub async fn audit_now(&self) -> Result<usize> {
        let mut deleted = 0;
        for shard in 0..self.inner.controls.len() {
            let shards = self.inner.controls.len();
            deleted += self
                .on_shard_index(shard, move |services| async move {
                    crate::audit::audit_pass(&services, shard, shards, None).await
                })
                .await?;
        }
        Ok(deleted)
    }

    /// Every visible entry of a log, checked, in offset order, held in
    /// memory: for tools and tests ([`woodpecker_engine::scan`]).
    pub async fn scan(&self, name: &str) -> Result<Vec<ScannedEntry>> {
        let log = self.get_log(name).await?;
        self.on_shard(log.id, move |services| async move {
            let layout = services.layout.clone();
            scan_log(
                &*services.store,
                &*services.meta,
                &layout,
                log.id,
                log.truncated_below,
            )
            .await
        })
        .await
    }

    /// Whether the client can work: etcd answers a read and the object
    /// store a listing (from shard 0), each within `limit`.
    pub async fn check_ready(&self, limit: std::time::Duration) -> Result<()> {
        let meta = self.inner.meta.clone();
        let prefix = self.inner.layout.log_prefix(0);
        self.on_shard_index(0, move |services| async move {
            let unavailable = |what: &str| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("{what} did not answer within {limit:?}"),
                )
            };
            match glommio::timer::timeout(limit, async {
                Ok(meta.get_log("-readiness-probe-").await)
            })
            .await
            {
                Ok(Ok(_) | Err(MetaError::NotFound(_))) => {}
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => return Err(unavailable("etcd")),
            }
            match glommio::timer::timeout(limit, async {
                Ok(services.store.list_page(&prefix, None, 1).await)
            })
            .await
            {
                Ok(listed) => listed.map(|_| ()).map_err(Error::from),
                Err(_) => Err(unavailable("the object store")),
            }
        })
        .await
    }

    /// How many shards (executor threads) the client runs.
    pub fn shards(&self) -> usize {
        self.inner.controls.len()
    }

    /// A log's record, segments, and readable end: the durable end of this
    /// client's writer of it if it has one, else found from the objects.
    pub async fn log_status(&self, name: &str) -> Result<LogStatus> {
        let log = self.get_log(name).await?;
        let id = log.id;
        let local = self.local_durable(id);
        let (segments, end) = self
            .on_shard(id, move |services| async move {
                let segments = services.meta.list_segments(id).await?;
                let end = match local {
                    Some(end) => end,
                    None => log_end(&services, id).await?,
                };
                Ok((segments, end))
            })
            .await?;
        Ok(LogStatus {
            log,
            segments,
            end_offset: end,
        })
    }

    /// Runs `job` on shard `shard` (below [`Self::shards`]) and returns its
    /// result: how an embedding service puts its own tasks (a listener, a
    /// connection) on the shards' executors. The job may `spawn_local`.
    /// Shutdown waits for running jobs, so a long-running job must end when
    /// its owner tells it to.
    pub async fn run_on_shard<T, F, Fut>(&self, shard: usize, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        if shard >= self.shards() {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("shard {shard} does not exist ({} shards)", self.shards()),
            ));
        }
        self.on_shard_index(shard, move |_| async move { Ok(job().await) })
            .await
    }

    /// Runs `job` on the shard that owns `log` and returns its result.
    pub(crate) async fn on_shard<T, F, Fut>(&self, log: u64, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(ShardServices) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let shard = shard_of(log, self.inner.controls.len());
        self.on_shard_index(shard, job).await
    }

    pub(crate) async fn on_shard_index<T, F, Fut>(&self, shard: usize, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(ShardServices) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let (tx, rx) = oneshot::async_channel();
        let job: ShardJob = Box::new(move |services| {
            Box::pin(async move {
                let _ = tx.send(job(services).await);
            })
        });
        if self.inner.controls[shard]
            .push(Control::Run(job))
            .await
            .is_err()
        {
            return Err(closed("the client is shut down"));
        }
        rx.await
            .map_err(|_| Error::new(ErrorKind::Unavailable, "the shard dropped the request"))?
    }

    /// Stops the shards after their writers finish closing. Idempotent.
    pub fn shutdown(&self) {
        for control in &self.inner.controls {
            control.close();
        }
        let handles = std::mem::take(&mut *self.inner.handles.lock().expect("handles lock"));
        for handle in handles {
            if let Err(err) = handle.join() {
                tracing::error!(error = %err, "shard ended badly");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for control in &self.controls {
            control.close();
        }
        let handles = std::mem::take(self.handles.get_mut().expect("handles lock"));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

fn closed(detail: &str) -> Error {
    Error::new(ErrorKind::Closed, detail)
}

/// The shard's control loop: runs jobs until the client shuts down, then
/// waits for its log writers to finish closing.
async fn shard_main(
    services: ShardServices,
    control: Arc<Ring<Control>>,
    auditor: glommio::task::JoinHandle<()>,
) {
    let jobs = glommio::sync::Gate::new();
    loop {
        poll_fn(|cx| control.poll_ready(cx)).await;
        match control.pop() {
            Some(Control::Run(job)) => {
                let job = job(services.clone());
                let guarded = async move {
                    // The job's caller hears "the shard dropped the request".
                    if let Err(panic) = crate::catch_panic(job).await {
                        tracing::error!(panic, "shard job panicked");
                    }
                };
                if let Ok(task) = jobs.spawn(guarded) {
                    task.detach();
                }
            }
            None if control.is_closed() => break,
            None => {}
        }
    }
    let _ = jobs.close().await;
    services.drivers_done().await;
    // The executor stops with this function, and a task it never polls
    // again is never dropped: let go of what would keep sockets and the
    // metadata client alive. The auditor holds the services; the store's
    // idle connections hold their sockets, which close once their tasks
    // see them dropped, a turn of the reactor later.
    auditor.cancel();
    services.store.close_idle();
    drop(services);
    glommio::timer::sleep(SHUTDOWN_SETTLE).await;
}

/// How long a stopping shard lets its connection tasks end.
const SHUTDOWN_SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// What [`Client::log_status`] reports.
#[derive(Debug, Clone)]
pub struct LogStatus {
    pub log: LogInfo,
    /// In offset order.
    pub segments: Vec<SegmentInfo>,
    /// The exclusive end of the log's readable entries.
    pub end_offset: u64,
}

struct OpenedWriter {
    ring: Arc<Ring<Request>>,
    log: LogInfo,
    epoch: u64,
    durable: Arc<TailSignal>,
}

/// The exclusive end of the log's readable entries: the end of the last
/// sealed segment, or the durable run of an open one.
async fn log_end(services: &ShardServices, log: LogId) -> Result<u64> {
    let segments = services.meta.list_segments(log).await?;
    match segments.last() {
        None => Ok(0),
        Some(last) if last.state == SegmentState::Sealed => Ok(last.end_offset),
        Some(last) => {
            let run = durable_run(&*services.store, &services.layout, log, last).await?;
            Ok(run.end_offset)
        }
    }
}

/// Where a reader starting at `start` begins.
async fn resolve_start(services: &ShardServices, name: &str, start: StartAt) -> Result<u64> {
    let log = services.meta.get_log(name).await?;
    let first = services
        .meta
        .list_segments(log.id)
        .await?
        .first()
        .map_or(0, |s| s.start_offset());
    let first_retained = first.max(log.truncated_below);
    match start {
        StartAt::Earliest => Ok(first_retained),
        StartAt::Latest => log_end(services, log.id).await,
        StartAt::Offset(offset) if offset < first_retained => Err(Error::new(
            ErrorKind::Invalid,
            format!(
                "offset {offset} of {name} is truncated; the first retained entry is {first_retained}"
            ),
        )),
        StartAt::Offset(offset) => Ok(offset),
    }
}

async fn open_on_shard(
    services: ShardServices,
    log: LogInfo,
    ring_max: usize,
) -> Result<OpenedWriter> {
    // Refused before fencing anyone if the shard has no buffer to spare.
    let share = crate::share::Share::new(&services.pool, services.config.log_buffers_max)?;
    let meta = services.meta.clone();
    let current = meta.get_log(&log.name).await?;
    if current.id != log.id {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("log {} was replaced", log.name),
        ));
    }
    let epoch = match meta.bump_epoch(log.id, current.epoch).await {
        Ok(epoch) => epoch,
        Err(MetaError::Fenced { current, .. }) => {
            return Err(Error::new(
                ErrorKind::Fenced,
                format!(
                    "another writer of {} opened concurrently (epoch {current})",
                    log.name
                ),
            ))
        }
        Err(err) => return Err(err.into()),
    };
    let RecoveredLog {
        next_segment,
        next_offset,
    } = recover_log(&*services.store, &*meta, &services.layout, log.id, epoch).await?;
    let segment = SegmentInfo::new_open(next_segment, epoch, next_offset);
    meta.create_segment(log.id, epoch, &segment).await?;
    tracing::info!(
        log = %log.name,
        epoch,
        segment = next_segment,
        next_offset,
        "writer opened; earlier segments recovered and sealed"
    );
    let ring = Arc::new(Ring::new(ring_max));
    let durable = Arc::new(TailSignal::default());
    durable.durable.store(next_offset, Ordering::Release);
    let driver = LogDriver::new(
        services.clone(),
        log.id,
        epoch,
        &segment,
        ring.clone(),
        durable.clone(),
        share,
    );
    services.spawn_driver(driver)?;
    Ok(OpenedWriter {
        ring,
        log: LogInfo { epoch, ..current },
        epoch,
        durable,
    })
}

/// The single writer of one log. Appends may come from any number of
/// threads; each gets its offset when durable, in offset order.
/// Dropping the writer closes it (without waiting); prefer [`LogWriter::close`].
pub struct LogWriter {
    ring: Arc<Ring<Request>>,
    log: LogInfo,
    epoch: u64,
    durable: Arc<TailSignal>,
    entry_bytes_max: usize,
    /// Stamp each request with its queueing instant (`profile_stages`).
    profile: bool,
}

impl LogWriter {
    pub fn log(&self) -> &LogInfo {
        &self.log
    }

    /// The fencing epoch this writer holds.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Every entry below this offset is durable and acknowledged.
    pub fn durable_offset(&self) -> u64 {
        self.durable.durable.load(Ordering::Acquire)
    }

    /// Largest payload (properties included) one entry may carry.
    pub fn entry_bytes_max(&self) -> usize {
        self.entry_bytes_max
    }

    /// Appends one entry; the [`Ack`] resolves to its offset once it is
    /// durable. Offsets follow call order: the request enters the ring now
    /// if there is room, else the ring's FIFO line now, and the ring as room
    /// frees (the `Ack` need not be polled for that).
    pub fn append(&self, payload: impl Into<Bytes>) -> Ack<u64> {
        self.append_with(payload, Properties::new())
    }

    /// [`Self::append`] with properties.
    pub fn append_with(&self, payload: impl Into<Bytes>, props: Properties) -> Ack<u64> {
        let (ack, rx) = oneshot::async_channel();
        self.submit(append_request(payload.into(), props, ack), rx)
    }

    /// Appends without waiting for room: fails at once with a retriable
    /// `Unavailable` error if the ring is full (object storage is slow or
    /// the shard's buffers are all in use).
    pub fn try_append(&self, payload: impl Into<Bytes>) -> Result<Ack<u64>> {
        let (ack, rx) = oneshot::async_channel();
        self.try_submit(append_request(payload.into(), Properties::new(), ack), rx)
    }

    /// Appends entries as one request; the [`Ack`] resolves to their offset
    /// range once all are durable. Fails whole if any entry is too large.
    pub fn append_batch(&self, entries: Vec<Bytes>) -> Ack<Range<u64>> {
        let (ack, rx) = oneshot::async_channel();
        self.submit(batch_request(without_properties(entries), None, ack), rx)
    }

    /// [`Self::append_batch`] without waiting for room, like
    /// [`Self::try_append`].
    pub fn try_append_batch(&self, entries: Vec<Bytes>) -> Result<Ack<Range<u64>>> {
        let (ack, rx) = oneshot::async_channel();
        self.try_submit(batch_request(without_properties(entries), None, ack), rx)
    }

    /// [`Self::append_batch`] of entries with properties: their offsets
    /// are consecutive.
    pub fn append_batch_with(&self, entries: Vec<(Bytes, Properties)>) -> Ack<Range<u64>> {
        let (ack, rx) = oneshot::async_channel();
        self.submit(batch_request(entries, None, ack), rx)
    }

    /// Conditional [`Self::append_batch_with`]: written only if its first
    /// entry gets offset `expected`, that is, if every append before it
    /// ends at `expected`. Otherwise it fails with `ConditionFailed`
    /// ([`Error::log_end`] gives the actual end) and nothing is written.
    /// The check is made where offsets are assigned, so no other append
    /// can come between.
    pub fn append_batch_expecting(
        &self,
        expected: u64,
        entries: Vec<(Bytes, Properties)>,
    ) -> Ack<Range<u64>> {
        let (ack, rx) = oneshot::async_channel();
        self.submit(batch_request(entries, Some(expected), ack), rx)
    }

    /// [`Self::append_batch_with`] without waiting for room.
    pub fn try_append_batch_with(
        &self,
        entries: Vec<(Bytes, Properties)>,
    ) -> Result<Ack<Range<u64>>> {
        let (ack, rx) = oneshot::async_channel();
        self.try_submit(batch_request(entries, None, ack), rx)
    }

    /// Blocking [`Self::append`].
    pub fn append_blocking(&self, payload: impl Into<Bytes>) -> Result<u64> {
        block_on(self.append(payload))
    }

    /// Flushes what was appended, waits until it is durable, marks the last
    /// fragment, seals the segment, and stops the writer.
    pub async fn close(self) -> Result<()> {
        let (ack, rx) = oneshot::async_channel();
        self.ring
            .push(Request::Close { ack })
            .await
            .map_err(|_| closed("the writer is already closed"))?;
        rx.await.map_err(|_| closed("the writer stopped"))?
    }

    /// Puts the request in the ring now if there is room, else in the
    /// ring's line now: either way its place follows call order.
    fn submit<T: Send + 'static>(
        &self,
        mut request: Request,
        rx: oneshot::AsyncReceiver<Result<T>>,
    ) -> Ack<T> {
        if self.profile {
            request.stamp();
        }
        match self.ring.push_or_join(request) {
            Ok(None) => Ack::queued(rx),
            Ok(Some(admission)) => Ack {
                state: AckState::Waiting(Box::pin(async move {
                    admission
                        .await
                        .map_err(|_| closed("the writer is closed"))?;
                    Ack::queued(rx).await
                })),
            },
            Err(_) => Ack::queued(rx), // closed: the dropped request answers `Closed`
        }
    }

    fn try_submit<T>(
        &self,
        mut request: Request,
        rx: oneshot::AsyncReceiver<Result<T>>,
    ) -> Result<Ack<T>> {
        if self.profile {
            request.stamp();
        }
        match self.ring.try_push(request) {
            Ok(()) => Ok(Ack::queued(rx)),
            Err(PushError::Full(_)) => Err(Error::new(
                ErrorKind::Unavailable,
                "the writer's ingest ring is full; retry later",
            )),
            Err(PushError::Closed(_)) => Err(closed("the writer is closed")),
        }
    }
}

fn append_request(payload: Bytes, props: Properties, ack: oneshot::Sender<Result<u64>>) -> Request {
    Request::Append {
        payload,
        props,
        ack,
        queued_at: None,
    }
}

fn batch_request(
    entries: Vec<(Bytes, Properties)>,
    expect: Option<u64>,
    ack: oneshot::Sender<Result<Range<u64>>>,
) -> Request {
    Request::Batch {
        entries,
        expect,
        ack,
        queued_at: None,
    }
}

fn without_properties(payloads: Vec<Bytes>) -> Vec<(Bytes, Properties)> {
    payloads
        .into_iter()
        .map(|p| (p, Properties::new()))
        .collect()
}

/// The acknowledgement of an append: a future that resolves to the entry's
/// offset (or a batch's offset range) once it is durable, or to the error
/// that failed it. Acks of one writer resolve in offset order.
///
/// `Send` and `Unpin`, so it can be kept in any collection and awaited on
/// any executor. Dropping it does not cancel an append already in the ring;
/// an append still in the ring's line (the ring was full at the call) is
/// abandoned if its `Ack` is dropped before room frees.
#[must_use = "an append is known to be durable only through its Ack"]
pub struct Ack<T> {
    state: AckState<T>,
}

enum AckState<T> {
    /// In the ring: waiting for the shard's answer (the common case: one
    /// small allocation, shared with the shard).
    Queued(oneshot::AsyncReceiver<Result<T>>),
    /// The ring was full at the call.
    Waiting(Pin<Box<dyn Future<Output = Result<T>> + Send>>),
}

impl<T> Ack<T> {
    fn queued(rx: oneshot::AsyncReceiver<Result<T>>) -> Ack<T> {
        Ack {
            state: AckState::Queued(rx),
        }
    }
}

impl<T> Future for Ack<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match &mut self.get_mut().state {
            AckState::Queued(rx) => Pin::new(rx)
                .poll(cx)
                .map(|answer| answer.unwrap_or_else(|_| Err(closed("the writer stopped")))),
            AckState::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.ring.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let meta: Arc<dyn MetaStore> = Arc::new(woodpecker_engine::meta::memory::MemoryMeta::new());
        let client = Client::start(
            Config {
                shard_buffer_bytes_max: 2 << 20,
                fragment_bytes_max: 1 << 20,
                segment_bytes_max: 1 << 20,
                ..Config::default()
            },
            StoreFactory::new(woodpecker_engine::store::StoreConfig::Memory).unwrap(),
            meta,
        )
        .unwrap();
        block_on(client.create_log("l")).unwrap();
        let writer = block_on(client.open_writer("l")).unwrap();
        let append = writer.append(Bytes::from_static(b"x"));
        assert_send(&append);
        assert_eq!(block_on(append).unwrap(), 0);
        block_on(writer.close()).unwrap();
        client.shutdown();
    }
}
