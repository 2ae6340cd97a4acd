//! Recycled I/O buffers, and giving memory back after a peak.
//!
//! Every request needs a few buffers of some kilobytes (the bytes read, core's output, the
//! app's response). Allocating and freeing them per request, interleaved with the small
//! allocations that live as long as a connection, fragments the heap: with a thousand idle
//! keep-alive connections the process kept about 20 KiB per connection it no longer used.
//! Buffers here are taken from a free list and go back to it when dropped, so they are
//! allocated once and the heap stays compact. An idle connection holds none.
//!
//! Each thread keeps its own free list: a connection stays on one worker thread, so its
//! buffers come from and go back to that thread's list without a lock. Beyond
//! [`POOL_CAPACITY`] a dropped buffer is freed, and counted: after a peak of requests in
//! flight (a thousand at once is over 90 MiB of buffers) the allocator keeps the freed memory
//! for itself, so once the peak has passed [`trim_after_peak`] asks it to give it back.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of every pooled buffer: a request head plus a login form plus what gatehouse adds,
/// or a head and a read chunk of body.
pub const BUF_LEN: usize = 32 * 1024;

/// Buffers each thread keeps for reuse at most (the rest are freed): enough for a few dozen
/// requests in flight at once on one worker.
pub const POOL_CAPACITY: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// Buffers freed (rather than kept) since the process started.
static FREED: AtomicU64 = AtomicU64::new(0);

/// A zero-initialised buffer of [`BUF_LEN`] bytes that returns to the pool when dropped.
/// Its content is whatever the previous user left: callers track their own lengths.
pub struct PooledBuf(Option<Box<[u8]>>);

impl PooledBuf {
    pub fn take() -> PooledBuf {
        let reused = FREE.try_with(|f| f.borrow_mut().pop()).ok().flatten();
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
            let kept = FREE.try_with(|f| {
                let mut free = f.borrow_mut();
                if free.len() < POOL_CAPACITY {
                    free.push(buf);
                    true
                } else {
                    false
                }
            });
            if kept != Ok(true) {
                FREED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PooledBuf")
    }
}

/// Gives memory the allocator kept after a peak back to the system. Called periodically
/// (from one task) with what it returned last time: when buffers were freed beyond the
/// pools since the call before, and none in the last interval (the peak has passed), the
/// allocator's free memory is returned (glibc's `malloc_trim`; other C libraries have no
/// such call and nothing is done). Returns the count to pass next time.
pub fn trim_after_peak(last: TrimState) -> TrimState {
    let freed = FREED.load(Ordering::Relaxed);
    let settled = freed == last.seen;
    if settled && freed != last.trimmed_at {
        trim();
        return TrimState {
            seen: freed,
            trimmed_at: freed,
        };
    }
    TrimState {
        seen: freed,
        trimmed_at: last.trimmed_at,
    }
}

/// What [`trim_after_peak`] remembers between calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimState {
    seen: u64,
    trimmed_at: u64,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // one call into the C library, which has no safe binding
fn trim() {
    // SAFETY: malloc_trim takes no pointer and only walks glibc's own free lists, under the
    // allocator's locks; it is safe to call from any thread at any time.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(
        released,
        "returned free heap memory to the system after a peak"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_handed_out_again_on_the_same_thread() {
        let mut a = PooledBuf::take();
        assert_eq!(a.len(), BUF_LEN);
        a[0] = 42;
        let addr = a.as_ptr();
        drop(a);
        let b = PooledBuf::take();
        assert_eq!(b.as_ptr(), addr);
        assert_eq!(b[0], 42);
    }

    #[test]
    fn buffers_beyond_the_capacity_are_freed_and_a_trim_follows_once_it_settles() {
        // Another test thread may free buffers too, so the state is only ever compared with
        // what this test has seen itself.
        let before = trim_after_peak(TrimState::default());
        let many: Vec<PooledBuf> = (0..POOL_CAPACITY + 3).map(|_| PooledBuf::take()).collect();
        drop(many);
        FREE.with(|f| assert_eq!(f.borrow().len(), POOL_CAPACITY));
        assert!(FREED.load(Ordering::Relaxed) >= before.seen + 3);
        // The first look sees new frees: not settled yet, no trim.
        let next = trim_after_peak(before);
        assert_eq!(next.trimmed_at, before.trimmed_at);
        assert_ne!(next.seen, before.seen);
        // Nothing freed since: the peak has passed and the memory is given back, once.
        let after = trim_after_peak(next);
        assert_eq!(after.trimmed_at, next.seen);
        assert_eq!(trim_after_peak(after), after);
    }
}
