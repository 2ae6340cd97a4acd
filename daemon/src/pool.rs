//! Recycled I/O buffers.
//!
//! Every request needs a few buffers of some kilobytes (the bytes read, core's output, a
//! relay scratch). Allocating and freeing them per request, interleaved with the small
//! allocations that live as long as a connection, fragments the heap: with a thousand idle
//! keep-alive connections the process kept about 20 KiB per connection it no longer used.
//! Buffers here are taken from a free list and go back to it when dropped, so they are
//! allocated once and the heap stays compact. An idle connection holds none.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Size of every pooled buffer: a request head plus a login form plus what gatehouse adds,
/// or a head and a read chunk of body.
pub const BUF_LEN: usize = 32 * 1024;

/// Buffers kept for reuse at most (the rest are freed): enough for a few dozen requests in
/// flight at once.
pub const POOL_CAPACITY: usize = 128;

static FREE: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// A zero-initialised buffer of [`BUF_LEN`] bytes that returns to the pool when dropped.
/// Its content is whatever the previous user left: callers track their own lengths.
pub struct PooledBuf(Option<Box<[u8]>>);

impl PooledBuf {
    pub fn take() -> PooledBuf {
        let reused = match FREE.lock() {
            Ok(mut free) => free.pop(),
            Err(p) => p.into_inner().pop(),
        };
        PooledBuf(Some(
            reused.unwrap_or_else(|| vec![0u8; BUF_LEN].into_boxed_slice()),
        ))
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.0.take() {
            let mut free = match FREE.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if free.len() < POOL_CAPACITY {
                free.push(buf);
            }
        }
    }
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PooledBuf")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_handed_out_again() {
        let mut a = PooledBuf::take();
        assert_eq!(a.len(), BUF_LEN);
        a[0] = 42;
        let addr = a.as_ptr();
        drop(a);
        // Other tests may take buffers concurrently; look for ours among a few.
        let taken: Vec<PooledBuf> = (0..8).map(|_| PooledBuf::take()).collect();
        assert!(taken.iter().any(|b| b.as_ptr() == addr && b[0] == 42));
    }
}
