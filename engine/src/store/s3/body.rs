//! Response bodies: read into buffers reused across requests.
//!
//! A GET body of a fragment is megabytes. Allocating a fresh buffer for
//! each one costs a page fault per 4 KiB (the allocator hands large blocks
//! back to the kernel when they are freed), which was more CPU than the
//! checksums. Bodies are instead read into buffers kept in a small pool and
//! handed out as `Bytes` that return their buffer when the last slice is
//! dropped, on whatever thread that happens. The pool holds at most
//! `idle_bytes_max` of idle buffers; past that, returned buffers are freed.

use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// Bodies smaller than this are plain allocations.
const POOLED_BYTES_MIN: usize = 256 << 10;

#[derive(Debug)]
pub struct BodyPool {
    idle: Mutex<Idle>,
    idle_bytes_max: usize,
}

#[derive(Debug, Default)]
struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl BodyPool {
    pub fn new(idle_bytes_max: usize) -> Arc<BodyPool> {
        Arc::new(BodyPool {
            idle: Mutex::new(Idle::default()),
            idle_bytes_max,
        })
    }

    /// An empty buffer with room for `len` bytes.
    pub fn take(&self, len: usize) -> Vec<u8> {
        if len < POOLED_BYTES_MIN {
            return Vec::with_capacity(len);
        }
        let reused = {
            let mut idle = self.idle.lock().expect("body pool lock poisoned");
            // The smallest idle buffer that fits, else the largest (grown).
            let fit = (0..idle.buffers.len())
                .filter(|&i| idle.buffers[i].capacity() >= len)
                .min_by_key(|&i| idle.buffers[i].capacity())
                .or_else(|| (0..idle.buffers.len()).max_by_key(|&i| idle.buffers[i].capacity()));
            fit.map(|i| {
                let buffer = idle.buffers.swap_remove(i);
                idle.bytes -= buffer.capacity();
                buffer
            })
        };
        let mut buffer = reused.unwrap_or_default();
        buffer.clear();
        buffer.reserve_exact(len);
        buffer
    }

    /// Freezes a filled buffer; its memory comes back here when the last
    /// slice of it is dropped.
    pub fn freeze(self: &Arc<Self>, buffer: Vec<u8>) -> Bytes {
        if buffer.capacity() < POOLED_BYTES_MIN {
            return Bytes::from(buffer);
        }
        Bytes::from_owner(Pooled {
            buffer,
            pool: self.clone(),
        })
    }

    fn give_back(&self, buffer: Vec<u8>) {
        let mut idle = self.idle.lock().expect("body pool lock poisoned");
        if idle.bytes + buffer.capacity() <= self.idle_bytes_max {
            idle.bytes += buffer.capacity();
            idle.buffers.push(buffer);
        }
    }

    /// Bytes held by idle buffers.
    pub fn idle_bytes(&self) -> usize {
        self.idle.lock().expect("body pool lock poisoned").bytes
    }
}

struct Pooled {
    buffer: Vec<u8>,
    pool: Arc<BodyPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_idle_memory_is_bounded() {
        let pool = BodyPool::new(3 << 20);
        let mut first = pool.take(1 << 20);
        first.extend_from_slice(&vec![7u8; 1 << 20]);
        let address = first.as_ptr();
        let bytes = pool.freeze(first);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0, "a slice still holds the buffer");
        drop(slice);
        assert!(pool.idle_bytes() >= 1 << 20);
        let again = pool.take(1 << 20);
        assert_eq!(again.as_ptr(), address, "the buffer is reused");
        assert!(again.is_empty());

        // Returned from other threads; never more than the bound kept.
        let held: Vec<Bytes> = (0..8)
            .map(|_| {
                let mut b = pool.take(1 << 20);
                b.resize(1 << 20, 1);
                pool.freeze(b)
            })
            .collect();
        std::thread::spawn(move || drop(held)).join().unwrap();
        assert!(pool.idle_bytes() <= 3 << 20);

        // Small bodies are plain allocations.
        let small = pool.take(100);
        assert_eq!(pool.freeze(small).len(), 0);
    }
}
