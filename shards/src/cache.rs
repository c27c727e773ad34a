//! The fragment cache (`fragment_cache_bytes`; off by default, on in
//! `woodpecker serve`): each shard keeps the whole objects it fetched
//! recently, and copies of the fragments it wrote to logs read on the
//! shard lately ([`ReadInterest`]), least recently used out first, so
//! readers of a log at its tail are served from memory and readers of the
//! same range share one GET. Fragments are immutable once written
//! (put-if-absent), so a cached copy is never stale; a deleted object
//! leaves the cache. Listings are never cached: they decide what exists.
//!
//! It sits outside the metered store, so the request metrics count the
//! requests that reach object storage, not the ones it answered.

use crate::stats::Stats;
use async_trait::async_trait;
use bytes::Bytes;
use event_listener::Event;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_engine::store::{ListPage, ObjectMeta, ObjectStore, StoreResult};

/// Objects larger than this share of the cache are not kept.
const OBJECT_SHARE_MAX: usize = 4;

/// How long after its last reader closed a log still counts as read.
pub(crate) const READ_INTEREST_LINGER: Duration = Duration::from_secs(60);

/// The logs read on one shard lately: a reader is open, or one closed
/// less than [`READ_INTEREST_LINGER`] ago. Only their written fragments
/// are worth a copy in the cache; a log nobody reads here (pure ingest)
/// would pay a copy of every byte for nothing, and at ingest rates its
/// copies would be evicted long before any later reader came.
#[derive(Default)]
pub(crate) struct ReadInterest {
    /// Log key prefix -> interest. Log prefixes never nest, so the one a
    /// key falls under is the greatest prefix not above it.
    logs: RefCell<BTreeMap<String, Interest>>,
}

struct Interest {
    readers: usize,
    /// When the last reader closed.
    closed: Instant,
}

impl Interest {
    /// A reader is open, or the last closed less than the linger ago.
    fn current(&self, now: Instant) -> bool {
        self.readers > 0 || now.saturating_duration_since(self.closed) < READ_INTEREST_LINGER
    }
}

impl ReadInterest {
    /// Counts a reader of the log under `log_prefix` in while the guard lives.
    pub(crate) fn reading(self: &Rc<Self>, log_prefix: String) -> Reading {
        let mut logs = self.logs.borrow_mut();
        let now = Instant::now();
        logs.retain(|_, interest| interest.current(now));
        logs.entry(log_prefix.clone())
            .or_insert(Interest {
                readers: 0,
                closed: now,
            })
            .readers += 1;
        Reading {
            interest: self.clone(),
            log_prefix,
        }
    }

    /// Whether `key` lies under a log read lately.
    fn wants(&self, key: &str) -> bool {
        use std::ops::Bound;
        let logs = self.logs.borrow();
        let mut below = logs.range::<str, _>((Bound::Unbounded, Bound::Included(key)));
        below.next_back().is_some_and(|(prefix, interest)| {
            key.starts_with(prefix.as_str()) && interest.current(Instant::now())
        })
    }
}

/// A reader's registration in [`ReadInterest`].
pub(crate) struct Reading {
    interest: Rc<ReadInterest>,
    log_prefix: String,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut logs = self.interest.logs.borrow_mut();
        if let Some(interest) = logs.get_mut(&self.log_prefix) {
            interest.readers -= 1;
            interest.closed = Instant::now();
        }
    }
}

pub(crate) struct CachedStore {
    inner: Rc<dyn ObjectStore>,
    budget: usize,
    stats: Arc<Stats>,
    reads: Rc<ReadInterest>,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    objects: HashMap<String, (Bytes, u64)>,
    /// Last use -> key, oldest first.
    order: BTreeMap<u64, String>,
    bytes: usize,
    clock: u64,
    /// GETs in flight: later readers of the key wait for the first.
    fetching: HashMap<String, Rc<Fetch>>,
}

/// A GET in flight that later readers of the key wait for.
#[derive(Default)]
struct Fetch {
    outcome: RefCell<Outcome>,
    done: Event,
}

#[derive(Default, Clone)]
enum Outcome {
    #[default]
    Pending,
    Done(StoreResult<Bytes>),
    /// The fetching caller was dropped mid-GET (a reader closed while it
    /// prefetched): its waiters fetch again themselves.
    Abandoned,
}

impl Fetch {
    /// The first caller's result, or `None` if it gave up.
    async fn wait(&self) -> Option<StoreResult<Bytes>> {
        loop {
            let listener = self.done.listen();
            match self.outcome.borrow().clone() {
                Outcome::Done(result) => return Some(result),
                Outcome::Abandoned => return None,
                Outcome::Pending => {}
            }
            listener.await;
        }
    }
}

/// The fetching caller's registration: it settles the fetch however the
/// caller ends, dropped mid-GET included, so no waiter waits forever.
struct Fetching<'a> {
    store: &'a CachedStore,
    key: &'a str,
    fetch: Rc<Fetch>,
}

impl Fetching<'_> {
    fn settle(&self, outcome: Outcome) {
        {
            let mut state = self.store.state.borrow_mut();
            if state
                .fetching
                .get(self.key)
                .is_some_and(|f| Rc::ptr_eq(f, &self.fetch))
            {
                state.fetching.remove(self.key);
            }
        }
        *self.fetch.outcome.borrow_mut() = outcome;
        self.fetch.done.notify(usize::MAX);
    }
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        if matches!(*self.fetch.outcome.borrow(), Outcome::Pending) {
            self.settle(Outcome::Abandoned);
        }
    }
}

impl CachedStore {
    /// `inner` itself when `budget` is 0, else `inner` behind a cache of
    /// `budget` bytes.
    pub(crate) fn wrap(
        inner: Rc<dyn ObjectStore>,
        budget: usize,
        stats: Arc<Stats>,
        reads: Rc<ReadInterest>,
    ) -> Rc<dyn ObjectStore> {
        if budget == 0 {
            return inner;
        }
        Rc::new(CachedStore {
            inner,
            budget,
            stats,
            reads,
            state: RefCell::default(),
        })
    }

    fn lookup(&self, key: &str) -> Option<Bytes> {
        let mut state = self.state.borrow_mut();
        state.clock += 1;
        let now = state.clock;
        let (bytes, used) = state.objects.get_mut(key)?;
        let (bytes, before) = (bytes.clone(), std::mem::replace(used, now));
        state.order.remove(&before);
        state.order.insert(now, key.to_string());
        Some(bytes)
    }

    fn keep(&self, key: &str, bytes: Bytes) {
        if bytes.len() > self.budget / OBJECT_SHARE_MAX {
            return;
        }
        let mut state = self.state.borrow_mut();
        state.clock += 1;
        let now = state.clock;
        if let Some((old, used)) = state.objects.remove(key) {
            state.order.remove(&used);
            state.bytes -= old.len();
        }
        while state.bytes + bytes.len() > self.budget {
            let Some((_, oldest)) = state.order.pop_first() else {
                break;
            };
            if let Some((evicted, _)) = state.objects.remove(&oldest) {
                state.bytes -= evicted.len();
            }
        }
        state.bytes += bytes.len();
        state.order.insert(now, key.to_string());
        state.objects.insert(key.to_string(), (bytes, now));
    }

    fn forget(&self, key: &str) {
        let mut state = self.state.borrow_mut();
        if let Some((old, used)) = state.objects.remove(key) {
            state.order.remove(&used);
            state.bytes -= old.len();
        }
    }

    /// Keeps a copy of what was written to a log read lately: the upload's
    /// bytes live in the shard's fragment buffers, which must go back to
    /// the pool.
    fn keep_written(&self, key: &str, data: &Bytes) {
        if data.len() <= self.budget / OBJECT_SHARE_MAX && self.reads.wants(key) {
            self.keep(key, Bytes::copy_from_slice(data));
        }
    }
}

#[async_trait(?Send)]
impl ObjectStore for CachedStore {
    fn close_idle(&self) {
        self.inner.close_idle();
    }

    fn cached(&self, key: &str) -> Option<Bytes> {
        self.state
            .borrow()
            .objects
            .get(key)
            .map(|(bytes, _)| bytes.clone())
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.forget(key);
        self.inner.put(key, data).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.inner.put_if_absent(key, data.clone()).await?;
        self.keep_written(key, &data);
        Ok(())
    }

    async fn put_if_absent_with_crc32c(
        &self,
        key: &str,
        data: Bytes,
        crc32c: u32,
    ) -> StoreResult<()> {
        self.inner
            .put_if_absent_with_crc32c(key, data.clone(), crc32c)
            .await?;
        self.keep_written(key, &data);
        Ok(())
    }

    async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        self.inner.create_multipart(key).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        data: Bytes,
    ) -> StoreResult<String> {
        self.inner
            .upload_part(key, upload_id, part_number, data)
            .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        if_absent: bool,
    ) -> StoreResult<()> {
        self.inner
            .complete_multipart(key, upload_id, etags, if_absent)
            .await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.inner.abort_multipart(key, upload_id).await
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        let fetch = loop {
            if let Some(bytes) = self.lookup(key) {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(bytes);
            }
            let joined = self.state.borrow().fetching.get(key).cloned();
            match joined {
                Some(fetch) => {
                    if let Some(result) = fetch.wait().await {
                        self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                        return result;
                    }
                }
                None => {
                    let fetch = Rc::new(Fetch::default());
                    self.state
                        .borrow_mut()
                        .fetching
                        .insert(key.to_string(), fetch.clone());
                    break fetch;
                }
            }
        };
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        let fetching = Fetching {
            store: self,
            key,
            fetch,
        };
        let result = self.inner.get(key).await;
        if let Ok(bytes) = &result {
            self.keep(key, bytes.clone());
        }
        fetching.settle(Outcome::Done(result.clone()));
        result
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
        if let Some(bytes) = self.lookup(key) {
            let len = bytes.len() as u64;
            if range.start <= range.end && range.end <= len {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(bytes.slice(range.start as usize..range.end as usize));
            }
        }
        self.inner.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        self.inner.head(key).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> StoreResult<ListPage> {
        self.inner.list_page(prefix, start_after, max_keys).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.forget(key);
        self.inner.delete(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use woodpecker_engine::store::fault::{FaultRule, FaultStore};
    use woodpecker_engine::store::memory::MemoryStore;
    use woodpecker_engine::store::Op;

    #[test]
    fn a_log_counts_as_read_while_and_after_a_reader_reads_it() {
        let reads = Rc::new(ReadInterest::default());
        let key = "wal/00000000000000000007/00000000000000000000/00000000000000000003.frag";
        assert!(!reads.wants(key), "nobody reads the log yet");
        let reading = reads.reading("wal/00000000000000000007/".into());
        assert!(reads.wants(key));
        for other in [
            "wal/00000000000000000006/00000000000000000000/00000000000000000003.frag",
            "wal/00000000000000000008/00000000000000000000/00000000000000000003.frag",
        ] {
            assert!(!reads.wants(other), "{other} is another log's");
        }
        drop(reading);
        assert!(reads.wants(key), "for a while after its last reader closed");
    }

    #[test]
    fn a_written_fragment_of_a_read_log_is_shared_not_copied_again() {
        glommio::LocalExecutor::default().run(async {
            let stats = Arc::new(Stats::default());
            let reads = Rc::new(ReadInterest::default());
            let cached = CachedStore::wrap(
                Rc::new(MemoryStore::new()),
                1 << 20,
                stats.clone(),
                reads.clone(),
            );
            let _reading = reads.reading("wal/00000000000000000001/".into());
            let read = "wal/00000000000000000001/00000000000000000000/00000000000000000000.frag";
            let unread = "wal/00000000000000000002/00000000000000000000/00000000000000000000.frag";
            for key in [read, unread] {
                cached
                    .put_if_absent(key, Bytes::from_static(b"fragment"))
                    .await
                    .unwrap();
            }
            assert_eq!(cached.cached(unread), None, "nobody reads that log");
            let shared = cached.cached(read).expect("kept for the log's reader");
            assert_eq!(shared, Bytes::from_static(b"fragment"));
            let got = cached.get(read).await.unwrap();
            assert_eq!(got.as_ptr(), shared.as_ptr(), "one copy, shared");
            assert_eq!(
                stats.cache_hits.load(Ordering::Relaxed),
                1,
                "cached() is no read"
            );
        });
    }

    #[test]
    fn a_get_dropped_mid_flight_holds_up_no_later_get() {
        glommio::LocalExecutor::default().run(async {
            let slow = FaultStore::new(MemoryStore::new(), 1);
            slow.put("k", Bytes::from_static(b"fragment"))
                .await
                .unwrap();
            slow.add_rule(FaultRule {
                ops: vec![Op::Get],
                latency: Duration::from_millis(100),
                ..FaultRule::default()
            });
            let cached = CachedStore::wrap(
                Rc::new(slow),
                1 << 20,
                Arc::new(Stats::default()),
                Rc::default(),
            );
            // A reader that closes while it prefetches drops its GET.
            let abandoned = glommio::timer::timeout(Duration::from_millis(10), async {
                Ok(cached.get("k").await)
            })
            .await;
            assert!(abandoned.is_err(), "the first GET was dropped mid-flight");
            let next = glommio::timer::timeout(Duration::from_secs(2), async {
                Ok(cached.get("k").await)
            })
            .await
            .expect("the next GET does not wait for the dropped one");
            assert_eq!(next.unwrap(), Bytes::from_static(b"fragment"));
            let again = cached.get("k").await.unwrap();
            assert_eq!(again, Bytes::from_static(b"fragment"), "now cached");
        });
    }
}
