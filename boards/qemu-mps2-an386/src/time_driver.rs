//! embassy-time driver on the Cortex-M SysTick: one tick per millisecond (the image is built with
//! `tick-hz-1_000`), counted in a 64-bit counter that never wraps in practice.
//!
//! The SysTick exception bumps the counter and, when the earliest timer is due, walks the timer
//! queue (embassy's integrated queue), which wakes the expired tasks and names the next deadline.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// mps2-an386 runs its core at 25 MHz.
const CORE_CLOCK_HZ: u32 = 25_000_000;
const TICK_HZ: u32 = 1_000;

struct SysTickDriver {
    ticks: Mutex<Cell<u64>>,
    /// Tick at which the queue must be walked next (`u64::MAX`: no timer pending).
    next_alarm: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    next_alarm: Mutex::new(Cell::new(u64::MAX)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow(cs).borrow_mut();
            if queue.schedule_wake(at, waker) {
                let now = self.ticks.borrow(cs).get();
                self.next_alarm.borrow(cs).set(queue.next_expiration(now));
            }
        });
    }
}

impl SysTickDriver {
    fn on_tick(&self) {
        critical_section::with(|cs| {
            let ticks = self.ticks.borrow(cs);
            let now = ticks.get() + 1;
            ticks.set(now);
            let next_alarm = self.next_alarm.borrow(cs);
            if now >= next_alarm.get() {
                let mut queue = self.queue.borrow(cs).borrow_mut();
                next_alarm.set(queue.next_expiration(now));
            }
        });
    }
}

/// Starts SysTick at 1 kHz with its interrupt on.
pub fn init(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_CLOCK_HZ / TICK_HZ - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[cortex_m_rt::exception]
fn SysTick() {
    DRIVER.on_tick();
}
