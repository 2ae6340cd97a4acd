//! Password checks handed out and not finished yet: a global cap on verifications in flight.
//!
//! **The threat.** A password hash costs hundreds of milliseconds of CPU on purpose, and a
//! shell runs it outside its lock (on a thread pool in the daemon). Without a cap, clients
//! from many networks (each within its own throttle burst) can keep any number of hashes
//! running at once and starve the gateway of CPU. So [`super::Gateway::decide`] hands out at
//! most [`MAX_PENDING_CHECKS`] checks at a time and answers `503` with `Retry-After` beyond
//! that; [`super::Gateway::finish`] gives the place back.
//!
//! **The same guess twice is one guess.** A client that already knows the password often
//! sends it on several connections at once (a browser opening six connections with HTTP
//! Basic, a music app fetching covers in parallel). Each check is charged to the login
//! throttle when it is handed out, so without care those concurrent *right* passwords would be
//! counted as failures until they finish, and the user would be throttled for knowing their
//! own password. So each place remembers a digest of the guess (username folded to ASCII
//! lower case, and password), and a check whose guess is already in flight is not charged
//! again: it tells an attacker nothing the first one will not. A credential sent with every
//! request (HTTP Basic, Subsonic) is not even checked twice: while its guess is in flight,
//! another request with it is told to wait ([`super::Decision::WaitForCheck`]) and decide
//! again once the check finished, when the verified-credential cache answers; it takes no
//! place, so a cold cache and many connections with the same credential cost one hash and
//! no `503`.
//!
//! A shell may drop a check without finishing it (the client went away while it ran, the
//! verification thread failed): a place held longer than [`PENDING_CHECK_EXPIRY_SECS`] is
//! taken as abandoned and reused, so a lost check never shrinks the cap for good.

/// Password checks in flight at once, for the whole gateway.
pub const MAX_PENDING_CHECKS: usize = 8;

/// Seconds after which a check never finished is taken as abandoned.
pub const PENDING_CHECK_EXPIRY_SECS: u64 = 60;

/// A digest of one guess (folded username and password), long enough that two different
/// guesses never share one in practice. Held only while the check is in flight.
pub(super) type Guess = [u8; 16];

/// Digest of a guess: SHA-256 over the username folded to ASCII lower case, a separator that
/// cannot occur in a username, and the password.
pub(super) fn guess_digest(username: &str, password: &[u8]) -> Guess {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for b in username.bytes() {
        hasher.update([b.to_ascii_lowercase()]);
    }
    hasher.update([0u8]);
    hasher.update(password);
    let digest = hasher.finalize();
    let mut guess = [0u8; 16];
    guess.copy_from_slice(&digest[..16]);
    guess
}

/// A place taken by a check: its ticket, and whether the same guess was already in flight
/// (then the attempt is not charged to the throttle a second time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Claim {
    pub(super) ticket: u64,
    pub(super) duplicate: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    ticket: u64,
    since: u64,
    guess: Guess,
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

    /// Whether a check of `guess` is in flight at `now`.
    pub(super) fn has(&self, guess: &Guess, now: u64) -> bool {
        self.places
            .iter()
            .flatten()
            .any(|p| !abandoned(*p, now) && p.guess == *guess)
    }

    /// Takes a place for a new check of `guess`, or `None` when all are taken.
    pub(super) fn claim(&mut self, guess: &Guess, now: u64) -> Option<Claim> {
        let duplicate = self.has(guess, now);
        let place = self
            .places
            .iter_mut()
            .find(|p| p.is_none_or(|p| abandoned(p, now)))?;
        let ticket = self.next_ticket;
        self.next_ticket = ticket.wrapping_add(1);
        *place = Some(Place {
            ticket,
            since: now,
            guess: *guess,
        });
        Some(Claim { ticket, duplicate })
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
        let tickets: [Option<Claim>; MAX_PENDING_CHECKS] =
            core::array::from_fn(|i| p.claim(&guess_digest("alice", &[i as u8]), 10));
        assert!(tickets.iter().all(Option::is_some));
        assert_eq!(p.claim(&G, 10), None);
        assert_eq!(p.in_flight(10), MAX_PENDING_CHECKS);
        p.release(tickets[3].unwrap().ticket);
        assert_eq!(p.in_flight(10), MAX_PENDING_CHECKS - 1);
        assert!(p.claim(&G, 10).is_some());
        assert_eq!(p.claim(&G, 10), None);
    }

    const G: Guess = [7; 16];

    #[test]
    fn a_guess_already_in_flight_is_a_duplicate_until_it_finishes() {
        let mut p = PendingChecks::new();
        let first = p.claim(&guess_digest("Alice", b"right"), 10).unwrap();
        assert!(!first.duplicate);
        // Same guess, any case of the name: a duplicate.
        let second = p.claim(&guess_digest("alice", b"right"), 10).unwrap();
        assert!(second.duplicate);
        // Another password, or another user with the same password: a new guess.
        assert!(
            !p.claim(&guess_digest("alice", b"wrong"), 10)
                .unwrap()
                .duplicate
        );
        assert!(
            !p.claim(&guess_digest("bob", b"right"), 10)
                .unwrap()
                .duplicate
        );
        // Once both copies are finished, the same guess is new again.
        p.release(first.ticket);
        assert!(
            p.claim(&guess_digest("alice", b"right"), 10)
                .unwrap()
                .duplicate
        );
        p.release(second.ticket);
        let mut fresh = PendingChecks::new();
        assert!(
            !fresh
                .claim(&guess_digest("alice", b"right"), 10)
                .unwrap()
                .duplicate
        );
    }

    #[test]
    fn the_separator_keeps_name_and_password_apart() {
        assert_ne!(guess_digest("ab", b"c"), guess_digest("a", b"bc"));
    }

    #[test]
    fn abandoned_checks_give_their_place_back_after_the_expiry() {
        let mut p = PendingChecks::new();
        let first = p.claim(&G, 10).unwrap().ticket;
        while p.claim(&G, 10).is_some() {}
        let later = 10 + PENDING_CHECK_EXPIRY_SECS;
        assert_eq!(p.in_flight(later), 0);
        // An abandoned place does not make a new check a duplicate.
        assert!(!p.claim(&G, later).unwrap().duplicate);
        // A late finish of the reused place's first holder frees nothing of the new one.
        p.release(first);
        assert_eq!(p.in_flight(later), 1);
    }
}
