//! The board's idea of the time, and whether it is the real time.
//!
//! Most boards have no battery-backed clock: at boot they only know a *floor*, a time the real
//! time cannot be below (the last time written to flash, or the configuration's `clock_unix`,
//! whichever is later), and count up from it with the uptime. That is good for measuring
//! intervals (the login throttle, the credential cache) but not for session expiry: a session
//! issued before a reboot would look fresh again. So the time is *unknown* until a real source
//! sets it (SNTP, see [`crate::sntp`], or a real-time clock the board reads at boot), and core
//! neither issues nor accepts sessions until then (`Exchange::time_known`).
//!
//! Time never goes backwards: a source that reports a time more than
//! [`MAX_BACKWARDS_SECS`] below what the board already counts (the floor, or a time set
//! before) is not believed. That is what keeps a real-time clock reset to its default date, or
//! a forged time-server answer, from bringing old sessions back.

use core::cell::Cell;

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::Instant;

/// How far below the board's count a time source may lie and still be believed (then the
/// count is kept): the drift of a board's oscillator between two SNTP answers, and the
/// rounding to whole seconds.
pub const MAX_BACKWARDS_SECS: u64 = 60;

/// Now, as the board counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// UNIX seconds.
    pub unix: u64,
    /// Whether `unix` is the real time, or only a floor.
    pub known: bool,
}

/// Why a time from a source was not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Backwards {
    /// What the source said.
    pub offered: u64,
    /// What the board counts already.
    pub counted: u64,
}

#[derive(Clone, Copy)]
struct State {
    /// UNIX seconds at uptime 0: now is `base + uptime`.
    base: u64,
    known: bool,
}

/// The board's clock: a base in UNIX seconds plus the uptime.
pub struct Clock {
    state: Mutex<CriticalSectionRawMutex, Cell<State>>,
}

impl Clock {
    /// A clock that counts from `floor_unix` (now), not knowing the real time.
    pub fn from_floor(floor_unix: u64) -> Self {
        let base = floor_unix.saturating_sub(uptime_secs());
        Self {
            state: Mutex::new(Cell::new(State { base, known: false })),
        }
    }

    /// Now.
    pub fn now(&self) -> Now {
        let state = self.state.lock(Cell::get);
        Now {
            unix: state.base.saturating_add(uptime_secs()),
            known: state.known,
        }
    }

    /// Sets the real time from a source (SNTP, a real-time clock). A time slightly below the
    /// board's count keeps the count; one further below is refused and changes nothing.
    pub fn set(&self, unix: u64) -> Result<(), Backwards> {
        self.state.lock(|cell| {
            let uptime = uptime_secs();
            let state = cell.get();
            let counted = state.base.saturating_add(uptime);
            if unix.saturating_add(MAX_BACKWARDS_SECS) < counted {
                return Err(Backwards {
                    offered: unix,
                    counted,
                });
            }
            cell.set(State {
                base: unix.max(counted).saturating_sub(uptime),
                known: true,
            });
            Ok(())
        })
    }
}

fn uptime_secs() -> u64 {
    Instant::now().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_is_not_the_time_until_a_source_sets_it() {
        let clock = Clock::from_floor(1_000_000);
        let now = clock.now();
        assert!(!now.known);
        assert!(now.unix >= 1_000_000);
        clock.set(2_000_000).expect("later than the floor");
        let now = clock.now();
        assert!(now.known);
        assert!(now.unix >= 2_000_000);
    }

    #[test]
    fn a_source_far_below_the_floor_is_not_believed() {
        let clock = Clock::from_floor(2_000_000);
        let refused = clock.set(1_000_000).expect_err("backwards");
        assert_eq!(refused.offered, 1_000_000);
        assert!(!clock.now().known);
        assert!(clock.now().unix >= 2_000_000);
    }

    #[test]
    fn a_source_slightly_behind_keeps_the_count() {
        let clock = Clock::from_floor(2_000_000);
        clock
            .set(2_000_000 - MAX_BACKWARDS_SECS)
            .expect("within the slack");
        let now = clock.now();
        assert!(now.known);
        assert!(now.unix >= 2_000_000, "time went backwards: {}", now.unix);
    }
}
