//! Password checks handed out and not finished yet: a global cap on verifications in flight.
//!
//! **The threat.** A password hash costs hundreds of milliseconds of CPU on purpose, and a
//! shell runs it outside its lock (on a thread pool in the daemon). Without a cap, clients
//! from many networks (each within its own throttle burst) can keep any number of hashes
//! running at once and starve the gateway of CPU. So [`super::Gateway::decide`] hands out at
//! most [`MAX_PENDING_CHECKS`] checks at a time and answers `503` with `Retry-After` beyond
//! that; [`super::Gateway::finish`] gives the place back.
//!
//! A shell may drop a check without finishing it (the client went away while it ran, the
//! verification thread failed): a place held longer than [`PENDING_CHECK_EXPIRY_SECS`] is
//! taken as abandoned and reused, so a lost check never shrinks the cap for good.

/// Password checks in flight at once, for the whole gateway.
pub const MAX_PENDING_CHECKS: usize = 8;

/// Seconds after which a check never finished is taken as abandoned.
pub const PENDING_CHECK_EXPIRY_SECS: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    ticket: u64,
    since: u64,
}

/// The checks in flight (part of the state a shell keeps behind its lock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingChecks {
    places: [Option<Place>; MAX_PENDING_CHECKS],
    next_ticket: u64,
}

impl Default for PendingChecks {
    fn default() -> Self {
        Self::new()
    }
}

impl PendingChecks {
    /// None in flight.
    pub const fn new() -> Self {
        Self {
            places: [None; MAX_PENDING_CHECKS],
            next_ticket: 0,
        }
    }

    /// Checks in flight at `now` (abandoned ones not counted).
    pub fn in_flight(&self, now: u64) -> usize {
        self.places
            .iter()
            .filter(|p| p.is_some_and(|p| !abandoned(p, now)))
            .count()
    }

    /// Takes a place for a new check, or `None` when all are taken.
    pub(super) fn claim(&mut self, now: u64) -> Option<u64> {
        let place = self
            .places
            .iter_mut()
            .find(|p| p.is_none_or(|p| abandoned(p, now)))?;
        let ticket = self.next_ticket;
        self.next_ticket = ticket.wrapping_add(1);
        *place = Some(Place { ticket, since: now });
        Some(ticket)
    }

    /// Gives back the place of the check with `ticket` (nothing if it was already reused).
    pub(super) fn release(&mut self, ticket: u64) {
        for place in &mut self.places {
            if place.is_some_and(|p| p.ticket == ticket) {
                *place = None;
            }
        }
    }
}

/// Held too long, or a clock that went backwards: either way not worth keeping a place for.
fn abandoned(place: Place, now: u64) -> bool {
    now.abs_diff(place.since) >= PENDING_CHECK_EXPIRY_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_and_given_back() {
        let mut p = PendingChecks::new();
        let tickets: [Option<u64>; MAX_PENDING_CHECKS] = core::array::from_fn(|_| p.claim(10));
        assert!(tickets.iter().all(Option::is_some));
        assert_eq!(p.claim(10), None);
        assert_eq!(p.in_flight(10), MAX_PENDING_CHECKS);
        p.release(tickets[3].unwrap());
        assert_eq!(p.in_flight(10), MAX_PENDING_CHECKS - 1);
        assert!(p.claim(10).is_some());
        assert_eq!(p.claim(10), None);
    }

    #[test]
    fn abandoned_checks_give_their_place_back_after_the_expiry() {
        let mut p = PendingChecks::new();
        let first = p.claim(10).unwrap();
        while p.claim(10).is_some() {}
        let later = 10 + PENDING_CHECK_EXPIRY_SECS;
        assert_eq!(p.in_flight(later), 0);
        assert!(p.claim(later).is_some());
        // A late finish of the reused place's first holder frees nothing of the new one.
        p.release(first);
        assert_eq!(p.in_flight(later), 1);
    }
}
