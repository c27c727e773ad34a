//! Idempotent appends: a producer names each batch with its id and a
//! sequence number, and a batch sent again (a retry after a lost reply)
//! answers the offsets the first one got instead of being written twice.
//!
//! The window is bounded and lives in the server's memory: per log, the
//! last [`BATCHES_PER_PRODUCER`] sequence numbers of each of the
//! [`PRODUCERS_PER_LOG`] producers that appended most recently. A retry
//! that arrives while the first attempt is still in flight waits for it.
//! A batch that failed definitely (nothing written) leaves the window, so
//! its retry is written; one whose outcome is unknown stays unknown, and
//! its retries answer `outcome_unknown` (read the log to find out).
//!
//! A producer may keep several batches in flight and still have them
//! written in sequence order: a batch sent with `follows` (the sequence
//! number of the batch before it, still unanswered when it was sent) is
//! placed in the writer's line only once that batch is, or has failed in a
//! way its producer will not retry (nothing written), or has left the
//! window. It waits at most [`FOLLOW_WAIT`] for it, then fails retriably
//! (nothing written).

use crate::error::{ApiError, Code};
use event_listener::Event;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sequence numbers remembered per producer.
pub const BATCHES_PER_PRODUCER: usize = 256;
/// Producers remembered per log (the least recently active is forgotten).
pub const PRODUCERS_PER_LOG: usize = 4096;
/// How long a batch waits for the batch it follows to reach the server.
pub const FOLLOW_WAIT: Duration = Duration::from_secs(10);

/// The windows of every log this server appends to.
#[derive(Default)]
pub(crate) struct Dedup {
    logs: Mutex<HashMap<String, Producers>>,
    /// Notified whenever a batch is placed or finishes: batches that
    /// follow another look again.
    moved: Event,
}

#[derive(Default)]
struct Producers {
    by_id: HashMap<String, Producer>,
    /// Counts `begin` calls, to find the least recently active producer.
    clock: u64,
}

struct Producer {
    last_active: u64,
    batches: BTreeMap<u64, Outcome>,
}

#[derive(Clone)]
enum Outcome {
    InFlight(Arc<Pending>),
    Written(Range<u64>),
    Unknown,
    /// Failed definitely (nothing written): sent again, it is appended.
    /// A batch following it waits for its retry if the failure was
    /// retriable, and goes on if it was not (the producer will not send
    /// it again).
    Failed {
        retriable: bool,
    },
}

#[derive(Default)]
pub(crate) struct Pending {
    result: Mutex<Option<Result<Range<u64>, ApiError>>>,
    done: Event,
    /// Its place in the writer's line is taken: a batch following it may
    /// take the next.
    placed: AtomicBool,
}

impl Pending {
    /// The first attempt's answer, once it has one.
    pub async fn wait(&self) -> Result<Range<u64>, ApiError> {
        loop {
            if let Some(result) = self.result.lock().expect("pending lock").clone() {
                return result;
            }
            let listener = self.done.listen();
            if let Some(result) = self.result.lock().expect("pending lock").clone() {
                return result;
            }
            listener.await;
        }
    }
}

/// What to do with a batch of a producer.
pub(crate) enum Begin {
    /// New: append it, then [`Dedup::finish`].
    Append(Arc<Pending>),
    /// Sent before: the first attempt's answer, or a wait for it.
    Again(Arc<Pending>),
    /// Written before at these offsets.
    Written(Range<u64>),
    /// Sent before, and its outcome is unknown.
    Unknown,
    /// Older than everything the window remembers of its producer.
    TooOld { oldest: u64 },
}

impl Dedup {
    pub fn begin(&self, log: &str, producer: &str, seq: u64) -> Begin {
        let mut logs = self.logs.lock().expect("dedup lock");
        let producers = logs.entry(log.to_string()).or_default();
        producers.clock += 1;
        let now = producers.clock;
        if !producers.by_id.contains_key(producer) && producers.by_id.len() >= PRODUCERS_PER_LOG {
            let idle = producers
                .by_id
                .iter()
                .min_by_key(|(_, p)| p.last_active)
                .map(|(id, _)| id.clone())
                .expect("the window is full");
            producers.by_id.remove(&idle);
        }
        let entry = producers
            .by_id
            .entry(producer.to_string())
            .or_insert_with(|| Producer {
                last_active: now,
                batches: BTreeMap::new(),
            });
        entry.last_active = now;
        match entry.batches.get(&seq) {
            Some(Outcome::InFlight(pending)) => return Begin::Again(pending.clone()),
            Some(Outcome::Written(range)) => return Begin::Written(range.clone()),
            Some(Outcome::Unknown) => return Begin::Unknown,
            Some(Outcome::Failed { .. }) | None => {}
        }
        let oldest = entry.batches.keys().next().copied();
        if entry.batches.len() >= BATCHES_PER_PRODUCER {
            let oldest = oldest.expect("the window is full");
            if seq < oldest {
                return Begin::TooOld { oldest };
            }
            entry.batches.remove(&oldest);
        }
        let pending = Arc::new(Pending::default());
        entry
            .batches
            .insert(seq, Outcome::InFlight(pending.clone()));
        Begin::Append(pending)
    }

    /// Records the first attempt's answer and wakes its retries.
    pub fn finish(
        &self,
        log: &str,
        producer: &str,
        seq: u64,
        pending: &Pending,
        result: &Result<Range<u64>, ApiError>,
    ) {
        let outcome = match result {
            Ok(range) => Outcome::Written(range.clone()),
            Err(err) if err.code == Code::OutcomeUnknown => Outcome::Unknown,
            Err(err) => Outcome::Failed {
                retriable: err.code.retriable(),
            },
        };
        {
            let mut logs = self.logs.lock().expect("dedup lock");
            let batches = logs
                .get_mut(log)
                .and_then(|producers| producers.by_id.get_mut(producer))
                .map(|p| &mut p.batches);
            if let Some(batches) = batches {
                let ours = matches!(batches.get(&seq),
                    Some(Outcome::InFlight(p)) if std::ptr::eq(Arc::as_ptr(p), pending));
                if ours {
                    batches.insert(seq, outcome);
                }
            }
        }
        *pending.result.lock().expect("pending lock") = Some(result.clone());
        pending.done.notify(usize::MAX);
        self.moved.notify(usize::MAX);
    }

    /// The batch's place in the writer's line is taken.
    pub fn placed(&self, pending: &Pending) {
        pending.placed.store(true, Ordering::Release);
        self.moved.notify(usize::MAX);
    }

    /// Waits until batch `follows` of the producer is placed, finished or
    /// forgotten; a retriable error after [`FOLLOW_WAIT`]. Runs on a shard
    /// (its timer is the shard executor's).
    pub async fn wait_for(&self, log: &str, producer: &str, follows: u64) -> Result<(), ApiError> {
        // Most batches find the one before placed already: the timer (on
        // the shard, so no other thread is woken) is made only to wait.
        let mut deadline = None;
        loop {
            let listener = self.moved.listen();
            if self.has_moved(log, producer, follows) {
                return Ok(());
            }
            let deadline = deadline.get_or_insert_with(|| glommio::timer::Timer::new(FOLLOW_WAIT));
            let woken = futures::future::select(listener, deadline).await;
            if let futures::future::Either::Right(_) = woken {
                return Err(ApiError::new(
                    Code::Unavailable,
                    format!(
                        "batch {follows} of producer {producer:?}, which this batch follows, \
                         did not reach the server within {FOLLOW_WAIT:?}; nothing was written"
                    ),
                ));
            }
        }
    }

    fn has_moved(&self, log: &str, producer: &str, seq: u64) -> bool {
        let logs = self.logs.lock().expect("dedup lock");
        let Some(batches) = logs
            .get(log)
            .and_then(|producers| producers.by_id.get(producer))
            .map(|p| &p.batches)
        else {
            return false;
        };
        match batches.get(&seq) {
            Some(Outcome::InFlight(pending)) => pending.placed.load(Ordering::Acquire),
            Some(Outcome::Failed { retriable }) => !retriable,
            Some(Outcome::Written(_) | Outcome::Unknown) => true,
            // Forgotten: older than the window remembers.
            None => batches.len() >= BATCHES_PER_PRODUCER && batches.keys().next() > Some(&seq),
        }
    }

    /// Forgets a deleted log's window.
    pub fn forget(&self, log: &str) {
        self.logs.lock().expect("dedup lock").remove(log);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(dedup: &Dedup, producer: &str, seq: u64, result: Result<Range<u64>, ApiError>) {
        match dedup.begin("l", producer, seq) {
            Begin::Append(pending) => dedup.finish("l", producer, seq, &pending, &result),
            _ => panic!("{producer}/{seq} should be new"),
        }
    }

    #[test]
    fn a_written_batch_answers_its_offsets_again() {
        let dedup = Dedup::default();
        append(&dedup, "p", 1, Ok(0..3));
        assert!(matches!(dedup.begin("l", "p", 1), Begin::Written(r) if r == (0..3)));
        assert!(matches!(dedup.begin("l", "q", 1), Begin::Append(_)));
        assert!(matches!(dedup.begin("m", "p", 1), Begin::Append(_)));
    }

    #[test]
    fn a_definite_failure_leaves_the_window_and_an_unknown_one_stays() {
        let dedup = Dedup::default();
        append(
            &dedup,
            "p",
            1,
            Err(ApiError::new(Code::Unavailable, "store down")),
        );
        assert!(matches!(dedup.begin("l", "p", 1), Begin::Append(_)));
        append(
            &dedup,
            "p",
            2,
            Err(ApiError::new(Code::OutcomeUnknown, "reply lost")),
        );
        assert!(matches!(dedup.begin("l", "p", 2), Begin::Unknown));
    }

    #[test]
    fn a_retry_in_flight_gets_the_first_answer() {
        let dedup = Dedup::default();
        let Begin::Append(first) = dedup.begin("l", "p", 7) else {
            panic!("new")
        };
        let Begin::Again(again) = dedup.begin("l", "p", 7) else {
            panic!("in flight")
        };
        dedup.finish("l", "p", 7, &first, &Ok(5..6));
        assert_eq!(futures::executor::block_on(again.wait()), Ok(5..6));
    }

    /// Runs `future` on an executor of this thread's own, as handlers
    /// run on a shard (the wait's timer is the executor's).
    fn on_shard<T>(future: impl std::future::Future<Output = T>) -> T {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("an executor")
            .run(future)
    }

    fn wait_for(dedup: &Dedup, producer: &str, follows: u64) -> bool {
        let wait = dedup.wait_for("l", producer, follows);
        on_shard(async {
            futures::pin_mut!(wait);
            let soon = glommio::timer::Timer::new(Duration::from_millis(50));
            matches!(
                futures::future::select(wait, soon).await,
                futures::future::Either::Left((Ok(()), _))
            )
        })
    }

    #[test]
    fn a_following_batch_waits_until_the_one_before_is_placed() {
        let dedup = Dedup::default();
        assert!(!wait_for(&dedup, "p", 1), "batch 1 has not arrived");
        let Begin::Append(first) = dedup.begin("l", "p", 1) else {
            panic!("new")
        };
        assert!(!wait_for(&dedup, "p", 1), "batch 1 is not placed yet");
        let waiter = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| on_shard(dedup.wait_for("l", "p", 1)).is_ok());
            std::thread::sleep(Duration::from_millis(20));
            dedup.placed(&first);
            waiter.join().unwrap()
        });
        assert!(waiter, "woken when batch 1 took its place");
        assert!(wait_for(&dedup, "p", 1));
        assert!(!wait_for(&dedup, "q", 1), "another producer's batch 1");
    }

    #[test]
    fn a_following_batch_waits_for_a_retry_but_not_for_a_batch_given_up() {
        let dedup = Dedup::default();
        append(
            &dedup,
            "p",
            1,
            Err(ApiError::new(Code::Unavailable, "down")),
        );
        assert!(!wait_for(&dedup, "p", 1), "batch 1 will be sent again");
        append(&dedup, "p", 1, Err(ApiError::malformed("bad")));
        assert!(wait_for(&dedup, "p", 1), "batch 1 will not be sent again");
        append(&dedup, "p", 2, Ok(0..1));
        assert!(wait_for(&dedup, "p", 2));
        append(
            &dedup,
            "p",
            3,
            Err(ApiError::new(Code::OutcomeUnknown, "?")),
        );
        assert!(wait_for(&dedup, "p", 3));
    }

    #[test]
    fn a_batch_older_than_the_window_has_moved() {
        let dedup = Dedup::default();
        for seq in 10..10 + BATCHES_PER_PRODUCER as u64 {
            append(&dedup, "p", seq, Ok(seq..seq + 1));
        }
        assert!(wait_for(&dedup, "p", 3));
        assert!(!wait_for(&dedup, "p", 10 + BATCHES_PER_PRODUCER as u64));
    }

    #[test]
    fn the_window_is_bounded() {
        let dedup = Dedup::default();
        for seq in 0..BATCHES_PER_PRODUCER as u64 + 10 {
            append(&dedup, "p", seq, Ok(seq..seq + 1));
        }
        assert!(matches!(
            dedup.begin("l", "p", 3),
            Begin::TooOld { oldest: 10 }
        ));
        assert!(matches!(dedup.begin("l", "p", 10), Begin::Written(_)));
        for producer in 0..PRODUCERS_PER_LOG - 1 {
            append(&dedup, &format!("q{producer}"), 0, Ok(0..1));
        }
        assert!(matches!(dedup.begin("l", "p", 10), Begin::Written(_)));
        append(&dedup, "last", 0, Ok(0..1));
        let logs = dedup.logs.lock().unwrap();
        assert_eq!(logs["l"].by_id.len(), PRODUCERS_PER_LOG);
        assert!(
            logs["l"].by_id.contains_key("p"),
            "p was active more recently than q0"
        );
        assert!(!logs["l"].by_id.contains_key("q0"));
    }
}
