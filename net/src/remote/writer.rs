//! The remote writer: appends queue in call order; one task sends them in
//! batch requests, up to `requests_in_flight_max` at a time, everything
//! queued while they were in flight going out in the next (up to
//! `batch_bytes_max`). Each request names this writer's producer id and
//! its sequence number, so the retries of a request that failed retriably
//! (the server unreachable, 503) cannot write it twice, and the number of
//! the request before it while that one is unanswered (`follows`), so the
//! server places it after that one and the log keeps call order.

use super::{AppendTiming, Inner};
use crate::framing::{self, FramedEntry, MEDIA_TYPE};
use crate::json::JsonAppended;
use crate::timing::{ServerTiming, SERVER_TIMING};
use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use futures::stream::{FuturesOrdered, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use woodpecker_engine::meta::LogInfo;
use woodpecker_engine::{Error, ErrorKind, Result};
use woodpecker_shards::Properties;

/// Entries of one request at most (the server's default limit).
const BATCH_ENTRIES_MAX: usize = 65_536;

type Entries = Vec<(Bytes, Properties)>;

struct Queued {
    entries: Vec<FramedEntry>,
    /// Conditional: the offset its first entry must get (sent alone).
    expect: Option<u64>,
    bytes: usize,
    ack: oneshot::Sender<Result<Range<u64>>>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Queued>,
    /// Bytes of the appends queued and of those in flight.
    bytes: usize,
    closing: bool,
    /// Set when the writer stopped: every later append fails with it.
    failed: Option<Error>,
}

struct Shared {
    queue: Mutex<Queue>,
    more: tokio::sync::Notify,
    durable: AtomicU64,
}

/// The writer of one log through a server. Appends from any thread keep
/// call order; each [`RemoteAck`] resolves once its entries are durable.
pub struct RemoteWriter {
    shared: Arc<Shared>,
    log: LogInfo,
    epoch: u64,
    done: Mutex<Option<tokio::task::JoinHandle<()>>>,
    queue_bytes_max: usize,
}

impl RemoteWriter {
    pub(super) fn start(inner: Arc<Inner>, log: LogInfo, epoch: u64) -> RemoteWriter {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            more: tokio::sync::Notify::new(),
            durable: AtomicU64::new(0),
        });
        let queue_bytes_max = inner.config.writer_queue_bytes_max;
        let task = inner.spawn(send_loop(inner.clone(), shared.clone(), log.name.clone()));
        RemoteWriter {
            shared,
            log,
            epoch,
            done: Mutex::new(Some(task)),
            queue_bytes_max,
        }
    }

    pub fn log(&self) -> &LogInfo {
        &self.log
    }

    /// The fencing epoch the server's writer holds.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Every entry this writer appended below this offset is durable.
    pub fn durable_offset(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    pub fn append(&self, payload: impl Into<Bytes>) -> RemoteAck<u64> {
        self.append_with(payload, Properties::new())
    }

    pub fn append_with(&self, payload: impl Into<Bytes>, props: Properties) -> RemoteAck<u64> {
        let ack = self.append_batch_with(vec![(payload.into(), props)]);
        RemoteAck {
            rx: ack.rx,
            map: |range: Range<u64>| range.start,
        }
    }

    pub fn append_batch(&self, entries: Vec<Bytes>) -> RemoteAck<Range<u64>> {
        self.append_batch_with(
            entries
                .into_iter()
                .map(|p| (p, Properties::new()))
                .collect(),
        )
    }

    /// Appends entries with consecutive offsets. Fails at once with a
    /// retriable `Unavailable` if the writer holds `writer_queue_bytes_max`
    /// (queued or in flight).
    pub fn append_batch_with(&self, entries: Entries) -> RemoteAck<Range<u64>> {
        settled(self.enqueue(entries, None))
    }

    /// Conditional [`Self::append_batch_with`]: written only if its first
    /// entry gets offset `expected`; otherwise `ConditionFailed`
    /// (`Error::log_end` gives the end) and nothing is written. Sent as a
    /// request of its own.
    pub fn append_batch_expecting(&self, expected: u64, entries: Entries) -> RemoteAck<Range<u64>> {
        settled(self.enqueue(entries, Some(expected)))
    }

    /// [`Self::append`], refusing at once (`Unavailable` while the queue
    /// is full, or the writer's failure) instead of returning an ack that
    /// carries the refusal, as the embedded writer's `try_append` does.
    pub fn try_append(&self, payload: impl Into<Bytes>) -> Result<RemoteAck<u64>> {
        let ack = self.enqueue(vec![(payload.into(), Properties::new())], None)?;
        Ok(RemoteAck {
            rx: ack.rx,
            map: |range: Range<u64>| range.start,
        })
    }

    /// [`Self::append_batch`], refusing at once like [`Self::try_append`].
    pub fn try_append_batch(&self, entries: Vec<Bytes>) -> Result<RemoteAck<Range<u64>>> {
        let entries = entries
            .into_iter()
            .map(|p| (p, Properties::new()))
            .collect();
        self.enqueue(entries, None)
    }

    fn enqueue(&self, entries: Entries, expect: Option<u64>) -> Result<RemoteAck<Range<u64>>> {
        let (ack, rx) = oneshot::channel();
        let entries: Vec<FramedEntry> = entries
            .into_iter()
            .map(|(payload, properties)| FramedEntry {
                offset: None,
                payload,
                properties,
            })
            .collect();
        let bytes = entries.iter().map(framing::encoded_len).sum();
        {
            let mut queue = self.shared.queue.lock().expect("writer queue");
            if let Some(err) = &queue.failed {
                return Err(Error::new(
                    ErrorKind::WriterFailed,
                    format!("the writer stopped: {}", err.detail()),
                ));
            } else if queue.closing {
                return Err(Error::new(ErrorKind::Closed, "the writer is closed"));
            } else if entries.is_empty() {
                return Err(Error::new(ErrorKind::Invalid, "empty batch"));
            } else if !queue.items.is_empty() && queue.bytes + bytes > self.queue_bytes_max {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "the remote writer's queue is full; retry later",
                ));
            }
            queue.bytes += bytes;
            queue.items.push_back(Queued {
                entries,
                expect,
                bytes,
                ack,
            });
        }
        self.shared.more.notify_one();
        Ok(RemoteAck { rx, map: identity })
    }

    /// Sends what is queued, waits until it is durable, and stops. The
    /// server keeps its writer of the log for its other clients.
    pub async fn close(self) -> Result<()> {
        {
            let mut queue = self.shared.queue.lock().expect("writer queue");
            queue.closing = true;
        }
        self.shared.more.notify_one();
        let task = self.done.lock().expect("writer task").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let failed = self
            .shared
            .queue
            .lock()
            .expect("writer queue")
            .failed
            .clone();
        match failed {
            Some(err) if err.kind() != ErrorKind::Closed => Err(err),
            _ => Ok(()),
        }
    }
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        // Queued appends still go out; the task ends once they have.
        self.shared.queue.lock().expect("writer queue").closing = true;
        self.shared.more.notify_one();
    }
}

fn identity(range: Range<u64>) -> Range<u64> {
    range
}

/// An ack for an append: the queued one, or one that carries the refusal.
fn settled(queued: Result<RemoteAck<Range<u64>>>) -> RemoteAck<Range<u64>> {
    queued.unwrap_or_else(|err| {
        let (ack, rx) = oneshot::channel();
        let _ = ack.send(Err(err));
        RemoteAck { rx, map: identity }
    })
}

/// An append's acknowledgement: its offset (or a batch's range) once
/// durable. Dropping it does not cancel the append.
#[must_use = "an append is known to be durable only through its ack"]
pub struct RemoteAck<T> {
    rx: oneshot::Receiver<Result<Range<u64>>>,
    map: fn(Range<u64>) -> T,
}

impl<T> Future for RemoteAck<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        Pin::new(&mut this.rx).poll(cx).map(|answer| match answer {
            Ok(result) => result.map(this.map),
            Err(_) => Err(Error::new(ErrorKind::Closed, "the remote writer stopped")),
        })
    }
}

/// A producer id no other writer uses: process, time, and a counter.
fn producer_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "remote-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn send_loop(inner: Arc<Inner>, shared: Arc<Shared>, log: String) {
    let producer = producer_id();
    let depth = inner.config.requests_in_flight_max.max(1);
    let mut seq = 0u64;
    let mut in_flight = FuturesOrdered::new();
    loop {
        let notified = shared.more.notified();
        let taken = {
            let mut queue = shared.queue.lock().expect("writer queue");
            let stopping = queue.closing || queue.failed.is_some();
            if in_flight.is_empty() && queue.items.is_empty() && stopping {
                return;
            }
            let room = in_flight.len() < depth && queue.failed.is_none();
            (room && !queue.items.is_empty())
                .then(|| take_batch(&mut queue, inner.config.batch_bytes_max))
        };
        if let Some(batch) = taken {
            seq += 1;
            // The batch before is unanswered: the server places this one
            // after it, so the log keeps call order.
            let follows = (!in_flight.is_empty()).then(|| seq - 1);
            let (inner, shared, log, producer) =
                (inner.clone(), shared.clone(), log.clone(), producer.clone());
            in_flight.push_back(async move {
                let request = Request {
                    log: &log,
                    producer: &producer,
                    seq,
                    follows,
                };
                let result = send_batch(&inner, &shared, &request, &batch).await;
                (batch, result)
            });
            continue;
        }
        let answered = if in_flight.is_empty() {
            notified.await;
            None
        } else {
            tokio::select! {
                answered = in_flight.next() => answered,
                _ = notified => None,
            }
        };
        if let Some((batch, result)) = answered {
            settle(&shared, batch, result);
        }
    }
}

/// Answers a batch's appends; stops the writer if its failure means the
/// batches after it cannot follow it.
fn settle(shared: &Shared, batch: Vec<Queued>, result: Result<Range<u64>>) {
    shared.queue.lock().expect("writer queue").bytes -=
        batch.iter().map(|q| q.bytes).sum::<usize>();
    let mut next = result.as_ref().map(|range| range.start).unwrap_or(0);
    if let Ok(range) = &result {
        shared.durable.fetch_max(range.end, Ordering::AcqRel);
    }
    for queued in batch {
        let answer = match &result {
            Ok(_) => {
                let count = queued.entries.len() as u64;
                next += count;
                Ok(next - count..next)
            }
            Err(err) => Err(err.clone()),
        };
        let _ = queued.ack.send(answer);
    }
    if let Err(err) = result {
        let stops = err.needs_reopen()
            || matches!(
                err.kind(),
                ErrorKind::Unavailable | ErrorKind::OutcomeUnknown
            );
        if stops {
            fail_queued(shared, err);
        }
    }
}

/// Takes queued appends, in order, up to `bytes_max` (at least one).
fn take_batch(queue: &mut Queue, bytes_max: usize) -> Vec<Queued> {
    let mut batch = Vec::new();
    let (mut bytes, mut entries) = (0, 0);
    while let Some(front) = queue.items.front() {
        let fits = bytes + front.bytes <= bytes_max
            && entries + front.entries.len() <= BATCH_ENTRIES_MAX
            && front.expect.is_none();
        if !batch.is_empty() && !fits {
            break;
        }
        let alone = front.expect.is_some();
        let queued = queue.items.pop_front().expect("checked");
        bytes += queued.bytes;
        entries += queued.entries.len();
        batch.push(queued);
        if alone {
            break;
        }
    }
    batch
}

/// Stops the writer: what is still queued was never sent (requests in
/// flight give up retrying).
fn fail_queued(shared: &Shared, err: Error) {
    let queued: Vec<Queued> = {
        let mut queue = shared.queue.lock().expect("writer queue");
        if queue.failed.is_some() {
            return;
        }
        queue.failed = Some(err.clone());
        let queued: Vec<Queued> = queue.items.drain(..).collect();
        queue.bytes -= queued.iter().map(|q| q.bytes).sum::<usize>();
        queued
    };
    for queued in queued {
        let _ = queued.ack.send(Err(Error::new(
            ErrorKind::WriterFailed,
            format!("never sent: an earlier append failed: {}", err.detail()),
        )));
    }
}

/// What names one batch request.
struct Request<'a> {
    log: &'a str,
    producer: &'a str,
    seq: u64,
    /// The batch before it, if it was unanswered when this one was sent.
    follows: Option<u64>,
}

/// One batch request, retried with the same sequence number while the
/// failure is retriable, up to the retry deadline or until the writer
/// stops.
async fn send_batch(
    inner: &Inner,
    shared: &Shared,
    request: &Request<'_>,
    batch: &[Queued],
) -> Result<Range<u64>> {
    let Request {
        log,
        producer,
        seq,
        follows,
    } = *request;
    let mut body = BytesMut::with_capacity(batch.iter().map(|q| q.bytes).sum());
    for entry in batch.iter().flat_map(|q| &q.entries) {
        framing::encode_into(entry, &mut body);
    }
    let body = body.freeze();
    let mut url = inner.url(&["v1", "logs", log, "entries"]);
    url.query_pairs_mut()
        .append_pair("producer", producer)
        .append_pair("seq", &seq.to_string());
    if let Some(follows) = follows {
        url.query_pairs_mut()
            .append_pair("follows", &follows.to_string());
    }
    if let Some(expected) = batch.first().and_then(|q| q.expect) {
        url.query_pairs_mut()
            .append_pair("expect_offset", &expected.to_string());
    }
    let deadline = Instant::now() + inner.config.retry_deadline;
    let mut backoff = Duration::from_millis(20);
    loop {
        let request = inner
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, MEDIA_TYPE)
            .body(body.clone());
        let observer = inner.config.append_observer.as_ref();
        // The server's timing is read only for an observer.
        let server_timing = |headers: &reqwest::header::HeaderMap| {
            observer?;
            let value = headers.get(SERVER_TIMING)?.to_str().ok()?;
            ServerTiming::parse(value)
        };
        let sent = Instant::now();
        let error = match inner.send_reading(request, server_timing).await {
            Ok((answer, server)) => {
                if let Some(observe) = observer {
                    observe(&AppendTiming {
                        entries: batch.iter().map(|q| q.entries.len()).sum(),
                        bytes: body.len(),
                        round_trip: sent.elapsed(),
                        server,
                    });
                }
                let appended: JsonAppended = serde_json::from_slice(&answer).map_err(|e| {
                    Error::new(
                        ErrorKind::OutcomeUnknown,
                        format!("the server's answer: {e}"),
                    )
                })?;
                return Ok(appended.first_offset..appended.last_offset + 1);
            }
            Err(error) => error,
        };
        let retriable = matches!(
            error.kind(),
            ErrorKind::Unavailable | ErrorKind::WriterFailed | ErrorKind::Closed
        );
        if !retriable {
            return Err(error);
        }
        let stopped = shared.queue.lock().expect("writer queue").failed.clone();
        if let Some(stopped) = stopped {
            // A batch before this one failed: the server would hold this
            // one until it gives up waiting for it.
            return Err(Error::new(
                ErrorKind::OutcomeUnknown,
                format!(
                    "the writer stopped while this batch was in flight ({}): {}",
                    stopped.detail(),
                    error.detail()
                ),
            ));
        }
        if Instant::now() + backoff > deadline {
            // The last attempt may have reached the server.
            return Err(Error::new(
                ErrorKind::OutcomeUnknown,
                format!(
                    "no answer within the retry deadline of {:?}: {}",
                    inner.config.retry_deadline,
                    error.detail()
                ),
            ));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
