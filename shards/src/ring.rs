//! The ingest ring: a bounded lock-free queue from any number of producer
//! threads to one consumer task on a shard.
//!
//! The queue is `crossbeam`'s `ArrayQueue` (lock-free, fixed capacity). The
//! consumer parks with an `AtomicWaker`; a push wakes it only if it is
//! parked (glommio forwards a wake from another thread to the shard through
//! its notifier). Producers that find the ring full wait on an event that
//! the consumer notifies when it makes room; that slow path is the only
//! place with a lock, inside `event-listener`.

use crossbeam_queue::ArrayQueue;
use event_listener::Event;
use futures::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

pub struct Ring<T> {
    queue: ArrayQueue<T>,
    consumer: AtomicWaker,
    space: Event,
    closed: AtomicBool,
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
            space: Event::new(),
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

    pub fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        if self.is_closed() {
            return Err(PushError::Closed(item));
        }
        match self.queue.push(item) {
            Ok(()) => {
                self.consumer.wake();
                Ok(())
            }
            Err(item) => Err(PushError::Full(item)),
        }
    }

    /// Pushes, waiting while the ring is full; fails only if it is closed.
    pub async fn push(&self, mut item: T) -> Result<(), T> {
        loop {
            match self.try_push(item) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(item)) => return Err(item),
                Err(PushError::Full(back)) => item = back,
            }
            let listener = self.space.listen();
            match self.try_push(item) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(item)) => return Err(item),
                Err(PushError::Full(back)) => item = back,
            }
            listener.await;
        }
    }

    /// Consumer side: takes one item.
    pub fn pop(&self) -> Option<T> {
        let item = self.queue.pop();
        if item.is_some() {
            self.space.notify(1);
        }
        item
    }

    /// Consumer side: ready when an item is waiting or the ring is closed.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.queue.is_empty() || self.is_closed() {
            return Poll::Ready(());
        }
        self.consumer.register(cx.waker());
        if !self.queue.is_empty() || self.is_closed() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Refuses further pushes and wakes everyone; queued items stay poppable.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.consumer.wake();
        self.space.notify(usize::MAX);
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
