//! In-memory object store: a shared map, for unit tests and for measuring the
//! engine's own ceiling. Clones share the same objects, across threads.
//!
//! Like a real store it keeps a copy of what it is given (the caller's
//! bytes may be a pooled buffer). Large objects are copied on a separate
//! thread, the way a real store receives bytes on its own CPUs rather than
//! the client's: a store that keeps everything needs fresh memory at the
//! write rate, and the kernel's page allocation and zeroing (about 1.25 GB/s
//! per thread on the development VM) would otherwise be charged to the
//! writing shard. The buffers of deleted large objects are kept (up to
//! [`SPARE_BYTES_MAX`]) and reused for new ones, so a log truncated as it is
//! written runs on warm memory, as a long-lived server's allocator would.

use super::{
    check_range, part_etag, validate_key, ListPage, ObjectMeta, ObjectStore, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Bytes>,
    uploads: HashMap<String, Upload>,
    next_upload_id: u64,
}

struct Upload {
    key: String,
    parts: BTreeMap<u16, Bytes>,
}

#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    spares: Arc<Mutex<Spares>>,
}

/// Buffers of deleted large objects kept for reuse, at most this many bytes.
pub const SPARE_BYTES_MAX: usize = 512 << 20;
/// Large objects' buffers are allocated in multiples of this, so that
/// fragments of slightly different sizes can reuse each other's.
const SPARE_GRAIN_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Spares {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl Spares {
    /// A spare buffer that holds `len` bytes, or a new one.
    fn take(spares: &Mutex<Spares>, len: usize) -> Vec<u8> {
        let mut guard = spares.lock().expect("memory store spares lock poisoned");
        let found = guard.buffers.iter().position(|b| b.capacity() >= len);
        match found {
            Some(i) => {
                let buffer = guard.buffers.swap_remove(i);
                guard.bytes -= buffer.capacity();
                buffer
            }
            None => {
                drop(guard);
                Vec::with_capacity(len.next_multiple_of(SPARE_GRAIN_BYTES))
            }
        }
    }

    fn give_back(spares: &Mutex<Spares>, mut buffer: Vec<u8>) {
        let mut guard = spares.lock().expect("memory store spares lock poisoned");
        if guard.bytes + buffer.capacity() <= SPARE_BYTES_MAX {
            buffer.clear();
            guard.bytes += buffer.capacity();
            guard.buffers.push(buffer);
        }
    }
}

/// A large object's bytes; the buffer goes back to the spares when the
/// last `Bytes` of it is dropped.
struct Stored {
    buffer: Vec<u8>,
    spares: Arc<Mutex<Spares>>,
}

impl AsRef<[u8]> for Stored {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Stored {
    fn drop(&mut self) {
        Spares::give_back(&self.spares, std::mem::take(&mut self.buffer));
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("memory store lock poisoned")
    }

    /// Replaces the bytes of an existing object, bypassing every check: for
    /// corruption tests.
    pub fn overwrite_raw(&self, key: &str, data: Bytes) {
        self.state().objects.insert(key.to_string(), data);
    }

    /// A copy of `data` the store can keep.
    async fn stored_copy(&self, data: Bytes) -> Bytes {
        if data.len() <= COPY_INLINE_BYTES_MAX {
            return Bytes::copy_from_slice(&data);
        }
        let (reply, copied) = futures::channel::oneshot::channel();
        let job = CopyJob {
            data,
            spares: self.spares.clone(),
            reply,
        };
        let sent = copier()
            .lock()
            .expect("memory store copier lock poisoned")
            .send(job);
        match sent {
            Ok(()) => copied.await.expect("the copy thread never drops a job"),
            // The copy thread is gone (it cannot exit, but do not hang if it did).
            Err(std::sync::mpsc::SendError(job)) => copy_large(&job.data, job.spares),
        }
    }

    /// Bytes held for reuse by buffers of deleted objects.
    pub fn spare_bytes(&self) -> usize {
        self.spares
            .lock()
            .expect("memory store spares lock poisoned")
            .bytes
    }
}

/// Objects up to this size are copied by the caller.
const COPY_INLINE_BYTES_MAX: usize = 256 << 10;

struct CopyJob {
    data: Bytes,
    spares: Arc<Mutex<Spares>>,
    reply: futures::channel::oneshot::Sender<Bytes>,
}

fn copy_large(data: &[u8], spares: Arc<Mutex<Spares>>) -> Bytes {
    let mut buffer = Spares::take(&spares, data.len());
    buffer.extend_from_slice(data);
    Bytes::from_owner(Stored { buffer, spares })
}

/// The thread that copies large objects (one per process, started on first
/// use; it lives as long as the process).
fn copier() -> &'static Mutex<std::sync::mpsc::Sender<CopyJob>> {
    static COPIER: OnceLock<Mutex<std::sync::mpsc::Sender<CopyJob>>> = OnceLock::new();
    COPIER.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<CopyJob>();
        std::thread::Builder::new()
            .name("memory-store".into())
            .spawn(move || {
                for job in queue {
                    let _ = job.reply.send(copy_large(&job.data, job.spares));
                }
            })
            .expect("spawn the memory store's copy thread");
        Mutex::new(jobs)
    })
}

#[async_trait(?Send)]
impl ObjectStore for MemoryStore {
    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        validate_key(key)?;
        let data = self.stored_copy(data).await;
        self.state().objects.insert(key.to_string(), data);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()> {
        validate_key(key)?;
        if self.state().objects.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let data = self.stored_copy(data).await;
        let mut state = self.state();
        if state.objects.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        state.objects.insert(key.to_string(), data);
        Ok(())
    }

    async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        validate_key(key)?;
        let mut state = self.state();
        state.next_upload_id += 1;
        let id = format!("mem-upload-{}", state.next_upload_id);
        let upload = Upload {
            key: key.to_string(),
            parts: BTreeMap::new(),
        };
        state.uploads.insert(id.clone(), upload);
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        data: Bytes,
    ) -> StoreResult<String> {
        let mut state = self.state();
        let upload = state
            .uploads
            .get_mut(upload_id)
            .filter(|u| u.key == key)
            .ok_or_else(|| StoreError::NotFound(format!("upload {upload_id} of {key}")))?;
        let etag = part_etag(&data);
        upload
            .parts
            .insert(part_number, Bytes::copy_from_slice(&data));
        Ok(etag)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        if_absent: bool,
    ) -> StoreResult<()> {
        let mut state = self.state();
        if if_absent && state.objects.contains_key(key) {
            state.uploads.remove(upload_id);
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let upload = state
            .uploads
            .remove(upload_id)
            .filter(|u| u.key == key)
            .ok_or_else(|| StoreError::NotFound(format!("upload {upload_id} of {key}")))?;
        let mut object = BytesMut::new();
        for (i, etag) in etags.iter().enumerate() {
            let part = upload
                .parts
                .get(&((i + 1) as u16))
                .filter(|p| part_etag(p) == *etag)
                .ok_or_else(|| StoreError::Invalid(format!("part {} missing or changed", i + 1)))?;
            object.extend_from_slice(part);
        }
        state.objects.insert(key.to_string(), object.freeze());
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> StoreResult<()> {
        self.state().uploads.remove(upload_id);
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.state()
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
        let object = self.get(key).await?;
        check_range(key, &range, object.len() as u64)?;
        Ok(object.slice(range.start as usize..range.end as usize))
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let size = self.get(key).await?.len() as u64;
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
        })
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> StoreResult<ListPage> {
        let state = self.state();
        Ok(super::list_sorted(
            &state.objects,
            prefix,
            start_after,
            max_keys,
            |data: &Bytes| data.len() as u64,
        ))
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.state().objects.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn deleted_large_objects_lend_their_buffers_to_new_ones() {
        let store = MemoryStore::new();
        let first = pattern(COPY_INLINE_BYTES_MAX + 1, 1);
        block_on(store.put("a", first.clone())).unwrap();
        assert_eq!(block_on(store.get("a")).unwrap(), first);
        assert_eq!(store.spare_bytes(), 0);
        block_on(store.delete("a")).unwrap();
        assert_eq!(store.spare_bytes(), SPARE_GRAIN_BYTES);

        // The spare holds the new object exactly (no stale tail).
        let second = pattern(COPY_INLINE_BYTES_MAX + 100, 2);
        block_on(store.put_if_absent("b", second.clone())).unwrap();
        assert_eq!(store.spare_bytes(), 0);
        let read = block_on(store.get("b")).unwrap();
        assert_eq!(read, second);

        // A reader's bytes stay valid after the delete; the buffer is
        // reused only once they are dropped.
        block_on(store.delete("b")).unwrap();
        assert_eq!(store.spare_bytes(), 0);
        assert_eq!(read, second);
        drop(read);
        assert_eq!(store.spare_bytes(), SPARE_GRAIN_BYTES);

        // Too big for any spare: a new buffer; small objects never pool.
        block_on(store.put("c", pattern(SPARE_GRAIN_BYTES + 1, 3))).unwrap();
        block_on(store.put("d", pattern(10, 4))).unwrap();
        block_on(store.delete("d")).unwrap();
        assert_eq!(store.spare_bytes(), SPARE_GRAIN_BYTES);
    }
}
