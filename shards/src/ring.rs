//! The ingest ring: a bounded lock-free queue from any number of producer
//! threads to one consumer task on a shard.
//!
//! The queue is `crossbeam`'s `ArrayQueue` (lock-free, fixed capacity). The
//! consumer parks with an `AtomicWaker`; a push wakes it only if it is
//! parked (glommio forwards a wake from another thread to the shard through
//! its notifier).
//!
//! When the ring is full, `push` waits in a FIFO overflow line (behind a
//! mutex: the slow path only), and the consumer moves waiting requests into
//! the ring in arrival order as it makes room. While anyone waits, new
//! pushes join the line, so no request is overtaken by later ones. A waiter
//! whose future is dropped is skipped. The line holds only requests whose
//! callers are blocked on it; `try_push` never joins it.

use crossbeam_queue::ArrayQueue;
use futures::channel::oneshot;
use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

type Waiter<T> = (T, oneshot::Sender<Result<(), T>>);

pub struct Ring<T> {
    queue: ArrayQueue<T>,
    consumer: AtomicWaker,
    line: Mutex<VecDeque<Waiter<T>>>,
    /// Length of `line`, readable without the lock.
    waiting: AtomicUsize,
    closed: AtomicBool,
}

/// A place in a ring's line: resolves once the item is in the ring, or
/// gives the item back if the ring closed first.
pub struct Admission<T>(oneshot::Receiver<Result<(), T>>);

impl<T> Future for Admission<T> {
    type Output = Result<(), T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), T>> {
        Pin::new(&mut self.0).poll(cx).map(|answer| match answer {
            Ok(result) => result,
            Err(_) => unreachable!("the line answers every waiter before dropping it"),
        })
    }
}

/// Why a push did not happen; the item comes back.
#[derive(Debug)]
pub enum PushError<T> {
    Full(T),
    Closed(T),
}

impl<T> Ring<T> {
    pub fn new(capacity: usize) -> Ring<T> {
        Ring {
            queue: ArrayQueue::new(capacity),
            consumer: AtomicWaker::new(),
            line: Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Producers waiting for room.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Pushes if there is room and nobody is already waiting for room.
    pub fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        if self.is_closed() {
            return Err(PushError::Closed(item));
        }
        if self.waiting() > 0 {
            return Err(PushError::Full(item));
        }
        match self.queue.push(item) {
            Ok(()) => {
                self.consumer.wake();
                Ok(())
            }
            Err(item) => Err(PushError::Full(item)),
        }
    }

    /// Pushes, waiting in line while the ring is full; fails only if the
    /// ring is closed.
    pub async fn push(&self, item: T) -> Result<(), T> {
        match self.push_or_join(item)? {
            None => Ok(()),
            Some(admission) => admission.await,
        }
    }

    /// Pushes now if there is room, else joins the line now, so items keep
    /// the order of the calls; the returned [`Admission`] resolves once the
    /// item is in the ring (dropping it gives up the place). Fails only if
    /// the ring is closed.
    pub fn push_or_join(&self, item: T) -> Result<Option<Admission<T>>, T> {
        let item = match self.try_push(item) {
            Ok(()) => return Ok(None),
            Err(PushError::Closed(item)) => return Err(item),
            Err(PushError::Full(item)) => item,
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut line = self.line.lock().expect("ring line lock");
            if self.is_closed() {
                return Err(item);
            }
            line.push_back((item, tx));
            self.waiting.store(line.len(), Ordering::Release);
        }
        // The consumer may have made room before we joined the line.
        self.consumer.wake();
        Ok(Some(Admission(rx)))
    }

    /// Consumer side: takes one item, then lets waiters into the room made.
    pub fn pop(&self) -> Option<T> {
        let item = self.queue.pop();
        if self.waiting() > 0 {
            self.admit_waiters();
        }
        item
    }

    fn admit_waiters(&self) {
        let mut line = self.line.lock().expect("ring line lock");
        while let Some((item, tx)) = line.pop_front() {
            if tx.is_canceled() {
                continue;
            }
            match self.queue.push(item) {
                Ok(()) => {
                    let _ = tx.send(Ok(()));
                }
                Err(item) => {
                    line.push_front((item, tx));
                    break;
                }
            }
        }
        self.waiting.store(line.len(), Ordering::Release);
    }

    /// Consumer side: ready when an item or a waiter is there, or the ring
    /// is closed.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let ready = || !self.queue.is_empty() || self.waiting() > 0 || self.is_closed();
        if ready() {
            return Poll::Ready(());
        }
        self.consumer.register(cx.waker());
        if ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Refuses further pushes, gives waiting items back to their callers
    /// and wakes the consumer; items already queued stay poppable.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let waiters: Vec<Waiter<T>> = {
            let mut line = self.line.lock().expect("ring line lock");
            self.waiting.store(0, Ordering::Release);
            line.drain(..).collect()
        };
        for (item, tx) in waiters {
            let _ = tx.send(Err(item));
        }
        self.consumer.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn many_producers_one_consumer_nothing_lost() {
        let ring = Arc::new(Ring::new(8));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        futures::executor::block_on(ring.push(p * 1_000_000 + i)).unwrap();
                    }
                })
            })
            .collect();
        let mut last = [None::<u64>; 4];
        let mut seen = 0;
        while seen < 40_000 {
            match ring.pop() {
                Some(v) => {
                    let (p, i) = ((v / 1_000_000) as usize, v % 1_000_000);
                    assert!(last[p].is_none_or(|l| l < i), "per-producer order kept");
                    last[p] = Some(i);
                    seen += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert!(ring.pop().is_none());
    }

    #[test]
    fn later_pushes_queue_behind_waiters() {
        let ring = Arc::new(Ring::new(1));
        ring.try_push(0).unwrap();
        let waiter = {
            let ring = ring.clone();
            std::thread::spawn(move || futures::executor::block_on(ring.push(1)).unwrap())
        };
        while ring.waiting() == 0 {
            std::thread::yield_now();
        }
        assert_eq!(ring.pop(), Some(0));
        // The freed slot belongs to the waiter, not to a newcomer.
        assert!(matches!(ring.try_push(2), Err(PushError::Full(2))));
        waiter.join().unwrap();
        assert_eq!(ring.pop(), Some(1));
        ring.try_push(3).unwrap();
    }

    #[test]
    fn full_and_closed_are_reported() {
        let ring = Ring::new(2);
        ring.try_push(1).unwrap();
        ring.try_push(2).unwrap();
        assert!(matches!(ring.try_push(3), Err(PushError::Full(3))));
        ring.close();
        assert!(matches!(ring.try_push(4), Err(PushError::Closed(4))));
        assert_eq!(ring.pop(), Some(1));
        assert!(futures::executor::block_on(ring.push(5)).is_err());
    }
}
