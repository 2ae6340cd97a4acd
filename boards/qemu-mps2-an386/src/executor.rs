//! A thread-mode executor that sleeps with `WFI`.
//!
//! embassy's stock Cortex-M executor sleeps with `WFE`, which QEMU does not treat as a sleep:
//! the host core spins at ~90% while the board is idle. `WFI` does sleep. To use it without a
//! lost wake-up, the "is there work?" check and the `WFI` run with interrupts masked (PRIMASK):
//! an interrupt that becomes pending in between still ends the `WFI`, and runs as soon as
//! interrupts are unmasked again.

use core::sync::atomic::{AtomicBool, Ordering};

use embassy_executor::{Spawner, raw};

/// Set by the pender (from a task waking another, or from an interrupt handler).
static WORK_PENDING: AtomicBool = AtomicBool::new(false);

#[unsafe(export_name = "__pender")]
fn pender(_context: *mut ()) {
    WORK_PENDING.store(true, Ordering::Release);
}

/// The executor; lives in a `StaticCell` because tasks borrow it forever.
pub struct Executor {
    inner: raw::Executor,
}

impl Executor {
    pub fn new() -> Self {
        Self {
            inner: raw::Executor::new(core::ptr::null_mut()),
        }
    }

    /// Runs `init` to spawn the first tasks, then polls forever, sleeping while idle.
    pub fn run(&'static mut self, init: impl FnOnce(Spawner)) -> ! {
        init(self.inner.spawner());
        loop {
            // SAFETY: `poll` is only ever called here, from this one thread-mode loop, never
            // re-entrantly (the pender only sets a flag).
            unsafe { self.inner.poll() };
            cortex_m::interrupt::free(|_| {
                if !WORK_PENDING.swap(false, Ordering::AcqRel) {
                    cortex_m::asm::wfi();
                }
            });
            // Unmasking interrupts here runs whatever woke the WFI; the next `poll` sees it.
        }
    }
}
