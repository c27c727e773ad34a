//! The fragment cache (`fragment_cache_bytes`; off by default, on in
//! `woodpecker serve`): each shard keeps the whole objects it wrote or
//! fetched recently, least recently used out first, so readers of a log
//! at its tail are served from memory and readers of the same range share
//! one GET. Fragments are immutable once written (put-if-absent), so a
//! cached copy is never stale; a deleted object leaves the cache. Listings
//! are never cached: they decide what exists.
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
use woodpecker_engine::store::{ListPage, ObjectMeta, ObjectStore, StoreResult};

/// Objects larger than this share of the cache are not kept.
const OBJECT_SHARE_MAX: usize = 4;

pub(crate) struct CachedStore {
    inner: Rc<dyn ObjectStore>,
    budget: usize,
    stats: Arc<Stats>,
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

#[derive(Default)]
struct Fetch {
    result: RefCell<Option<StoreResult<Bytes>>>,
    done: Event,
}

impl CachedStore {
    /// `inner` itself when `budget` is 0, else `inner` behind a cache of
    /// `budget` bytes.
    pub(crate) fn wrap(
        inner: Rc<dyn ObjectStore>,
        budget: usize,
        stats: Arc<Stats>,
    ) -> Rc<dyn ObjectStore> {
        if budget == 0 {
            return inner;
        }
        Rc::new(CachedStore {
            inner,
            budget,
            stats,
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

    /// Keeps a copy of what was written: the upload's bytes live in the
    /// shard's fragment buffers, which must go back to the pool.
    fn keep_written(&self, key: &str, data: &Bytes) {
        if data.len() <= self.budget / OBJECT_SHARE_MAX {
            self.keep(key, Bytes::copy_from_slice(data));
        }
    }
}

#[async_trait(?Send)]
impl ObjectStore for CachedStore {
    fn close_idle(&self) {
        self.inner.close_idle();
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
        if let Some(bytes) = self.lookup(key) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(bytes);
        }
        let joined = self.state.borrow().fetching.get(key).cloned();
        if let Some(fetch) = joined {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            loop {
                let listener = fetch.done.listen();
                if let Some(result) = fetch.result.borrow().clone() {
                    return result;
                }
                listener.await;
            }
        }
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        let fetch = Rc::new(Fetch::default());
        self.state
            .borrow_mut()
            .fetching
            .insert(key.to_string(), fetch.clone());
        let result = self.inner.get(key).await;
        self.state.borrow_mut().fetching.remove(key);
        if let Ok(bytes) = &result {
            self.keep(key, bytes.clone());
        }
        *fetch.result.borrow_mut() = Some(result.clone());
        fetch.done.notify(usize::MAX);
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
