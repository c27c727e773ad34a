//! Fairness between the logs of a shard: each writer draws its fragment
//! buffers from the shard's pool through a [`Share`].
//!
//! A share holds at most `log_buffers_max` buffers (its cap), and the pool
//! keeps one free buffer for every other share that holds none (its
//! guaranteed buffer): a log whose store stalls fills at most its cap and
//! can never take the last buffer another log needs to make progress. So
//! a shard admits at most as many writers as it has buffers.

use crate::buffer::{AlignedBuf, BufferPool};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use woodpecker_engine::{Error, ErrorKind, Result};

/// The pool's view of its shares.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    /// Live shares.
    shares: usize,
    /// Live shares holding no buffer: one free buffer is kept for each.
    empty: usize,
}

/// How many buffers one share holds; shared with the buffers it lent out,
/// which may come back on any thread.
#[derive(Debug, Default)]
pub(crate) struct ShareCounter {
    /// (buffers held, the share is still alive)
    state: Mutex<(usize, bool)>,
}

impl ShareCounter {
    /// A buffer of this share came back.
    pub(crate) fn released(&self, pool: &BufferPool) {
        let mut state = self.state.lock().expect("share lock");
        assert!(state.0 > 0, "a share returned more buffers than it took");
        state.0 -= 1;
        if state.0 == 0 && state.1 {
            pool.accounts().empty += 1;
        }
    }
}

/// One writer's share of its shard's buffer pool.
pub(crate) struct Share {
    pool: BufferPool,
    counter: Arc<ShareCounter>,
    max: usize,
}

impl Share {
    /// A new share of at most `max` buffers; `Unavailable` if the shard
    /// already has a writer for each of its buffers.
    pub(crate) fn new(pool: &BufferPool, max: usize) -> Result<Share> {
        let mut accounts = pool.accounts();
        if accounts.shares >= pool.capacity() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the shard's {} fragment buffers each already serve a writer; close one, or raise \
                     shard_buffer_bytes_max or lower fragment_bytes_max",
                    pool.capacity()
                ),
            ));
        }
        accounts.shares += 1;
        accounts.empty += 1;
        drop(accounts);
        let counter = Arc::new(ShareCounter {
            state: Mutex::new((0, true)),
        });
        Ok(Share {
            pool: pool.clone(),
            counter,
            max: max.max(1),
        })
    }

    /// Whether [`Self::try_take`] would succeed now.
    pub(crate) fn may_take(&self) -> bool {
        let held = self.counter.state.lock().expect("share lock").0;
        if held >= self.max {
            return false;
        }
        let empty = self.pool.accounts().empty;
        // Keep one free buffer for each other share holding none.
        let reserved = if held == 0 { empty - 1 } else { empty };
        self.pool.available() > reserved
    }

    /// A buffer, if the cap and the other shares' guaranteed buffers allow.
    pub(crate) fn try_take(&self) -> Option<AlignedBuf> {
        if !self.may_take() {
            return None;
        }
        let buf = self.pool.try_take()?;
        let mut state = self.counter.state.lock().expect("share lock");
        if state.0 == 0 {
            self.pool.accounts().empty -= 1;
        }
        state.0 += 1;
        Some(buf)
    }

    /// Gives back a buffer taken with [`Self::try_take`].
    pub(crate) fn give_back(&self, buf: AlignedBuf) {
        self.counter.released(&self.pool);
        self.pool.give_back(buf);
    }

    /// The first `len` bytes of `buf` (taken from this share) as `Bytes`;
    /// the buffer returns to the share when they are dropped.
    pub(crate) fn freeze(&self, buf: AlignedBuf, len: usize) -> Bytes {
        self.pool.freeze_for(buf, len, Some(self.counter.clone()))
    }

    pub(crate) fn listen(&self) -> event_listener::EventListener {
        self.pool.listen()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut state = self.counter.state.lock().expect("share lock");
        state.1 = false;
        let mut accounts = self.pool.accounts();
        accounts.shares -= 1;
        if state.0 == 0 {
            accounts.empty -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_stops_at_its_cap_and_leaves_a_buffer_for_each_empty_share() {
        let pool = BufferPool::new(4, 4096);
        let greedy = Share::new(&pool, 8).unwrap();
        let idle = Share::new(&pool, 8).unwrap();
        let taken: Vec<_> = std::iter::from_fn(|| greedy.try_take()).collect();
        assert_eq!(taken.len(), 3, "one buffer stays free for the idle share");
        let kept = idle.try_take().expect("the guaranteed buffer");
        let more: Vec<_> = (0..2).map(|_| Share::new(&pool, 1).unwrap()).collect();
        let Err(refused) = Share::new(&pool, 1) else {
            panic!("a fifth writer admitted to a pool of four buffers")
        };
        assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
        drop(more);
        drop(greedy);
        for buf in taken {
            pool.give_back(buf); // the dropped share's buffers come back
        }
        let small = Share::new(&pool, 1).unwrap();
        let one = small.try_take().unwrap();
        assert!(small.try_take().is_none(), "capped at 1");
        let frozen = small.freeze(one, 10);
        drop(frozen);
        assert!(small.may_take());
        idle.give_back(kept);
        assert_eq!(pool.available(), 4);
    }
}
