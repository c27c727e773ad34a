//! The appenders: threads keeping up to `window` appends in flight on one
//! log each, taking acks in offset order or as they come.

use super::*;

pub(super) struct AppenderResult {
    pub(super) histogram: Histogram<u64>,
    pub(super) entries: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

impl AppenderResult {
    /// One append (of `batch` entries) finished after `latency`.
    fn record(&mut self, outcome: woodpecker_engine::Result<u64>, latency: Duration, batch: usize) {
        match outcome {
            Ok(count) => {
                latency::record_n(&mut self.histogram, latency, count);
                self.entries += count;
            }
            Err(err) => {
                self.errors += batch as u64;
                self.first_error.get_or_insert(err.to_string());
            }
        }
    }
}

/// How an appender takes its acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckOrder {
    /// In offset order from a queue, awaiting only the oldest (the WAL
    /// pattern: the engine acknowledges in offset order anyway).
    Offset,
    /// Each append its own future in a `FuturesUnordered`, each woken on
    /// its own (the pattern of one task per request).
    Any,
}

/// An append's outcome (entries acknowledged) and when it was sent.
type Done = (woodpecker_engine::Result<u64>, Instant);

/// One append (or batch) sent, and when it was due.
struct Sent {
    ack: Acked,
    at: Instant,
}

impl Future for Sent {
    type Output = Done;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let at = self.at;
        let outcome = ready!(Pin::new(&mut self.ack).poll(cx));
        Poll::Ready((outcome, at))
    }
}

/// Appends in flight, by [`AckOrder`].
trait InFlight {
    fn len(&self) -> usize;
    fn push(&mut self, sent: Sent);
    /// An ack that is there already, without waiting.
    fn ready(&mut self) -> Option<Done>;
    /// Waits for the next ack (none if nothing is in flight).
    fn next(&mut self) -> impl Future<Output = Option<Done>>;
}

impl InFlight for VecDeque<Sent> {
    fn len(&self) -> usize {
        VecDeque::len(self)
    }

    fn push(&mut self, sent: Sent) {
        self.push_back(sent);
    }

    fn ready(&mut self) -> Option<Done> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match Pin::new(self.front_mut()?).poll(&mut cx) {
            Poll::Ready(done) => {
                self.pop_front();
                Some(done)
            }
            Poll::Pending => None,
        }
    }

    async fn next(&mut self) -> Option<Done> {
        let done = std::future::poll_fn(|cx| match self.front_mut() {
            Some(front) => Pin::new(front).poll(cx).map(Some),
            None => Poll::Ready(None),
        })
        .await;
        self.pop_front();
        done
    }
}

impl InFlight for FuturesUnordered<Sent> {
    fn len(&self) -> usize {
        FuturesUnordered::len(self)
    }

    fn push(&mut self, sent: Sent) {
        FuturesUnordered::push(self, sent);
    }

    fn ready(&mut self) -> Option<Done> {
        StreamExt::next(self).now_or_never().flatten()
    }

    async fn next(&mut self) -> Option<Done> {
        StreamExt::next(self).await
    }
}

pub(super) fn appender(
    writer: BenchWriter,
    args: &WriteArgs,
    deadline: Instant,
    rate: Option<f64>,
) -> AppenderResult {
    // Timers only with a rate: the time driver reads the clock at every
    // park, which a closed-loop appender does once per completion wave.
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if rate.is_some() {
        builder.enable_time();
    }
    let runtime = builder.build().expect("tokio runtime");
    match args.ack_order {
        AckOrder::Offset => {
            runtime.block_on(append_loop(&writer, args, deadline, rate, VecDeque::new()))
        }
        AckOrder::Any => runtime.block_on(append_loop(
            &writer,
            args,
            deadline,
            rate,
            FuturesUnordered::new(),
        )),
    }
}

async fn append_loop(
    writer: &BenchWriter,
    args: &WriteArgs,
    deadline: Instant,
    rate: Option<f64>,
    mut in_flight: impl InFlight,
) -> AppenderResult {
    // One payload for every append, with no reference count: a shared
    // `Bytes` would make the appender and the shard contend on one counter
    // for every entry, which a real application's distinct payloads do not.
    let payload = Bytes::from_static(Box::leak(raw::pattern(args.entry_bytes).into_boxed_slice()));
    let batch = args.batch;
    let interval = rate.map(|r| Duration::from_secs_f64(batch as f64 / r));
    let mut result = AppenderResult {
        histogram: latency::histogram(),
        entries: 0,
        errors: 0,
        first_error: None,
    };
    let mut next_send = Instant::now();
    let drain_deadline = deadline + DRAIN_LIMIT;
    let mut failed = false;
    loop {
        // One clock read per turn, which sends at most one append and
        // takes at most one ack already there: the send is stamped with it
        // and the ack observed at it (a turn takes well under a
        // microsecond). Alternating one and one measured cheapest; turns of
        // 8 or 256 cost 15-35% more CPU per append.
        let now = Instant::now();
        let mut progressed = false;
        // The ring was full: wait for an ack rather than retry at once.
        let mut ring_full = false;
        let open = !failed && now < deadline && in_flight.len() < args.window;
        if open && interval.is_none_or(|_| now >= next_send) {
            // Open loop: latency counts from when the append was due, so a
            // late send is not hidden (no coordinated omission).
            let at = if interval.is_some() { next_send } else { now };
            // `try_` so that every append in flight is in the ring (an
            // `append` that found it full would enter only when polled,
            // and the offset-order queue polls only its oldest); a remote
            // writer's queue refuses alike.
            match writer.try_send(&payload, batch) {
                Ok(ack) => {
                    in_flight.push(Sent { ack, at });
                    if let Some(interval) = interval {
                        next_send += interval;
                    }
                    progressed = true;
                }
                Err(err) if err.kind() == ErrorKind::Unavailable => ring_full = true,
                Err(err) => {
                    result.record(Err(err), Duration::ZERO, batch);
                    failed = true;
                }
            }
        }
        if let Some((outcome, at)) = in_flight.ready() {
            result.record(outcome, now.saturating_duration_since(at), batch);
            progressed = true;
        }
        if progressed {
            continue;
        }
        if in_flight.len() == 0 {
            if failed || now >= deadline {
                break;
            }
            if ring_full {
                // Another appender's requests fill the shared ring.
                std::thread::sleep(Duration::from_micros(100));
            } else if interval.is_some() {
                tokio::time::sleep_until(next_send.into()).await;
            }
            continue;
        }
        if now >= drain_deadline {
            result.errors += in_flight.len() as u64 * batch as u64;
            result
                .first_error
                .get_or_insert("appends still pending after the drain limit".into());
            break;
        }
        let completed = if open && interval.is_some() && !ring_full {
            tokio::select! {
                done = in_flight.next() => done,
                _ = tokio::time::sleep_until(next_send.into()) => None,
            }
        } else {
            in_flight.next().await
        };
        if let Some((outcome, at)) = completed {
            result.record(outcome, at.elapsed(), batch);
        }
    }
    result
}
