//! Aligned, pooled fragment buffers.
//!
//! Each shard owns a fixed number of buffers (`shard_buffer_bytes_max /
//! fragment_bytes_max`), allocated once at 4 KiB alignment. Entries are
//! copied into a buffer once; the finished fragment is handed to the object
//! store as `Bytes` that own the buffer (no second copy), and the buffer
//! returns to its pool when the store drops those bytes, on whatever thread.

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use event_listener::Event;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::Arc;

const BUFFER_ALIGN: usize = 4096;

/// A heap buffer aligned to 4 KiB, for O_DIRECT and cache-friendly copies.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `AlignedBuf` uniquely owns its allocation, like a `Box<[u8]>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access is read-only through `&self`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        assert!(len > 0, "buffers are not empty");
        let layout = Layout::from_size_align(len, BUFFER_ALIGN).expect("valid buffer layout");
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialized (zeroed, then written) bytes we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsMut<[u8]> for AlignedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.len, BUFFER_ALIGN).expect("valid buffer layout");
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

struct PoolShared {
    free: ArrayQueue<AlignedBuf>,
    /// Notified whenever a buffer comes back; every waiter re-checks.
    returned: Event,
    /// Logs' shares of the pool (see [`crate::share`]).
    shares: std::sync::Mutex<crate::share::Accounts>,
}

/// A fixed set of fragment buffers. Cloning shares the pool.
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<PoolShared>,
    buffer_bytes: usize,
}

impl BufferPool {
    pub fn new(buffers: usize, buffer_bytes: usize) -> BufferPool {
        assert!(buffers > 0);
        let free = ArrayQueue::new(buffers);
        for _ in 0..buffers {
            let _ = free.push(AlignedBuf::new(buffer_bytes));
        }
        BufferPool {
            shared: Arc::new(PoolShared {
                free,
                returned: Event::new(),
                shares: Default::default(),
            }),
            buffer_bytes,
        }
    }

    /// Every buffer of the pool, in use or not.
    pub fn capacity(&self) -> usize {
        self.shared.free.capacity()
    }

    pub(crate) fn accounts(&self) -> std::sync::MutexGuard<'_, crate::share::Accounts> {
        self.shared.shares.lock().expect("pool accounts lock")
    }

    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// Buffers not in use right now.
    pub fn available(&self) -> usize {
        self.shared.free.len()
    }

    pub fn try_take(&self) -> Option<AlignedBuf> {
        self.shared.free.pop()
    }

    /// Waits for a free buffer; any number of tasks may wait.
    pub async fn take(&self) -> AlignedBuf {
        loop {
            if let Some(buf) = self.shared.free.pop() {
                return buf;
            }
            let listener = self.shared.returned.listen();
            if let Some(buf) = self.shared.free.pop() {
                return buf;
            }
            listener.await;
        }
    }

    /// A future that completes when a buffer comes back (check
    /// [`Self::available`] after creating it, before awaiting).
    pub fn listen(&self) -> event_listener::EventListener {
        self.shared.returned.listen()
    }

    pub fn give_back(&self, buf: AlignedBuf) {
        assert_eq!(buf.len(), self.buffer_bytes, "buffer from another pool");
        if self.shared.free.push(buf).is_err() {
            unreachable!("more buffers returned than the pool holds");
        }
        self.shared.returned.notify(usize::MAX);
    }

    /// The first `len` bytes of `buf` as `Bytes`, without copying; the
    /// buffer returns to this pool when the last clone is dropped.
    pub fn freeze(&self, buf: AlignedBuf, len: usize) -> Bytes {
        self.freeze_for(buf, len, None)
    }

    /// [`Self::freeze`], handing the buffer back through `share`.
    pub(crate) fn freeze_for(
        &self,
        buf: AlignedBuf,
        len: usize,
        share: Option<Arc<crate::share::ShareCounter>>,
    ) -> Bytes {
        assert!(len <= buf.len());
        Bytes::from_owner(Frozen {
            buf: Some(buf),
            len,
            pool: self.clone(),
            share,
        })
    }
}

struct Frozen {
    buf: Option<AlignedBuf>,
    len: usize,
    pool: BufferPool,
    share: Option<Arc<crate::share::ShareCounter>>,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        &self.buf.as_ref().expect("present until drop").as_ref()[..self.len]
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            if let Some(share) = &self.share {
                share.released(&self.pool);
            }
            self.pool.give_back(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_come_back() {
        let pool = BufferPool::new(2, 8192);
        let mut a = pool.try_take().unwrap();
        assert_eq!(a.as_ref().as_ptr() as usize % BUFFER_ALIGN, 0);
        a.as_mut()[..3].copy_from_slice(b"abc");
        let _b = pool.try_take().unwrap();
        assert!(pool.try_take().is_none());
        let bytes = pool.freeze(a, 3);
        let clone = bytes.clone();
        assert_eq!(&clone[..], b"abc");
        drop(bytes);
        assert_eq!(pool.available(), 0, "a clone still holds it");
        drop(clone);
        assert_eq!(pool.available(), 1);
        // Bytes may be dropped on another thread.
        let bytes = pool.freeze(pool.try_take().unwrap(), 10);
        std::thread::spawn(move || drop(bytes)).join().unwrap();
        assert_eq!(pool.available(), 1);
    }
}
