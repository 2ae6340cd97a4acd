//! A small cache of recently verified HTTP Basic credentials.
//!
//! HTTP Basic sends the password with every request. Verifying it costs a deliberately slow
//! password hash (hundreds of milliseconds of PBKDF2 on purpose), so a Basic client such as a
//! music app or a WebDAV mount would pay that on every request. This cache remembers, for a
//! short while, that a credential was verified, so the next request costs one HMAC.
//!
//! **The threat.** A cache of credentials is a cache of secrets: if it held passwords, or
//! anything from which one could be tested offline, a memory dump or a bug that prints it
//! would hand them out. So an entry is only an HMAC-SHA256 under a per-process secret key of
//! (username, password, stored verifier); without the key the MAC says nothing, and the key
//! never leaves the process (a restart forgets everything). Entries are compared in constant
//! time (`subtle`) against every slot, so timing does not tell which slot, or how much of a MAC,
//! matched.
//!
//! A cached "yes" must also not outlive the reason it was true. Each entry records the user's
//! *generation* (bumped when the password changes or sessions are revoked) and an absolute
//! expiry: an entry whose generation differs from the user's current one, or whose time is up,
//! is dropped on sight and never answers "yes". The MAC also covers the *verifier* the
//! password was checked against (the stored PHC hash string): a user deleted and re-created
//! with the same name starts again at generation 0, but gets a new salted hash, so the old
//! password does not get in on a stale entry.
//!
//! Time is in **seconds**, on the same monotonic clock as the rest of core.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::session::{SESSION_CACHE_SLOTS, SessionCache};

/// Length of the per-process secret key, in bytes.
pub const KEY_LEN: usize = 32;

const MAC_LEN: usize = 32;

/// Domain separation: these MACs can never be confused with any other use of the same key.
const LABEL: &[u8] = b"gatehouse credential cache v1\0";

/// A MAC as 64-bit words, for comparing a word at a time.
fn mac_words(mac: &[u8; MAC_LEN]) -> [u64; MAC_LEN / 8] {
    let mut words = [0u64; MAC_LEN / 8];
    for (word, bytes) in words.iter_mut().zip(mac.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *word = u64::from_ne_bytes(b);
    }
    words
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The credential was verified recently, for this generation of the user: accept it
    /// without hashing.
    Hit,
    /// Not in the cache: verify the password, then [`CredentialCache::insert`] on success.
    Miss,
    /// It was cached, but its time was up; the entry is dropped. Verify the password.
    Expired,
    /// It was cached under another generation of the user (password changed or sessions
    /// revoked since); the entry is dropped. Verify the password.
    Revoked,
}

#[derive(Clone, Copy)]
struct Slot {
    occupied: bool,
    mac: [u8; MAC_LEN],
    generation: u32,
    expires_at: u64,
    last_used: u64,
}

const EMPTY: Slot = Slot {
    occupied: false,
    mac: [0; MAC_LEN],
    generation: 0,
    expires_at: 0,
    last_used: 0,
};

/// A fixed cache of `N` recently verified credentials. See the module documentation.
#[derive(Clone)]
pub struct CredentialCache<const N: usize> {
    keyed: Hmac<Sha256>,
    ttl: u64,
    slots: [Slot; N],
    /// Recently verified session tokens, the other credential a client sends with every
    /// request: kept here so that every shell that holds a credential cache holds it too.
    /// Its own rules are [`SessionCache`]'s.
    pub sessions: SessionCache<SESSION_CACHE_SLOTS>,
}

impl<const N: usize> fmt::Debug for CredentialCache<N> {
    /// Shows occupancy only: MACs stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("capacity", &N)
            .field(
                "occupied",
                &self.slots.iter().filter(|s| s.occupied).count(),
            )
            .field("ttl", &self.ttl)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl<const N: usize> CredentialCache<N> {
    /// An empty cache. `key` must be random and secret, drawn once per process (never stored);
    /// `ttl_seconds` bounds how long a verified credential is trusted without hashing again
    /// (0 disables the cache: nothing ever hits).
    pub fn new(key: &[u8; KEY_LEN], ttl_seconds: u64) -> Self {
        // HMAC pads a key shorter than the hash's block with zeros, so this is exactly
        // HMAC-SHA256 under `key`, built without a fallible constructor.
        let mut block = [0u8; 64];
        block[..KEY_LEN].copy_from_slice(key);
        Self {
            keyed: Hmac::<Sha256>::new((&block).into()),
            ttl: ttl_seconds,
            slots: [EMPTY; N],
            sessions: SessionCache::new(),
        }
    }

    /// Whether `username` with `password` was verified recently against `verifier` (the
    /// user's stored password hash string) for the user's current `generation`.
    ///
    /// A stale entry (expired, or of another generation) is dropped and reported as such.
    pub fn lookup(
        &mut self,
        username: &[u8],
        password: &[u8],
        verifier: &[u8],
        generation: u32,
        now: u64,
    ) -> Lookup {
        let mac = self.mac(username, password, verifier);
        let Some(index) = self.position(&mac) else {
            return Lookup::Miss;
        };
        let slot = &mut self.slots[index];
        if slot.generation != generation {
            *slot = EMPTY;
            return Lookup::Revoked;
        }
        if now >= slot.expires_at {
            *slot = EMPTY;
            return Lookup::Expired;
        }
        slot.last_used = slot.last_used.max(now);
        Lookup::Hit
    }

    /// Remembers that `username` with `password` was just verified against `verifier` for
    /// the user's `generation`. Call it only after a successful verification. When the cache
    /// is full, an expired entry or else the one used longest ago makes room.
    pub fn insert(
        &mut self,
        username: &[u8],
        password: &[u8],
        verifier: &[u8],
        generation: u32,
        now: u64,
    ) {
        let mac = self.mac(username, password, verifier);
        let index = match self.position(&mac) {
            Some(index) => Some(index),
            None => self.victim(now),
        };
        if let Some(index) = index {
            self.slots[index] = Slot {
                occupied: true,
                mac,
                generation,
                expires_at: now.saturating_add(self.ttl),
                last_used: now,
            };
        }
    }

    /// Forgets every entry, session tokens too (e.g. after the users file was reloaded).
    pub fn clear(&mut self) {
        self.slots = [EMPTY; N];
        self.sessions.clear();
    }

    /// Number of entries held, stale ones included until they are next looked up or evicted.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.occupied).count()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn mac(&self, username: &[u8], password: &[u8], verifier: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.keyed.clone();
        mac.update(LABEL);
        // Each field length-prefixed, so ("ab", "c") and ("a", "bc") are different inputs.
        for field in [username, password, verifier] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac.finalize().into_bytes().into()
    }

    /// The slot holding `mac`, found by comparing against every slot in constant time.
    ///
    /// Each slot is compared as four 64-bit words folded into one difference word, which is
    /// then tested in constant time: the same branch-free comparison as byte by byte, at an
    /// eighth of the work (byte-wise, the scan of every slot was most of a cached Basic
    /// request's cost).
    fn position(&self, mac: &[u8; MAC_LEN]) -> Option<usize> {
        let want = mac_words(mac);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, slot) in self.slots.iter().enumerate() {
            let have = mac_words(&slot.mac);
            let diff = have
                .iter()
                .zip(want.iter())
                .fold(0u64, |acc, (h, w)| acc | (h ^ w));
            let hit = diff.ct_eq(&0) & subtle::Choice::from(u8::from(slot.occupied));
            index.conditional_assign(&(i as u64), hit);
            found |= hit;
        }
        if bool::from(found) {
            usize::try_from(index).ok()
        } else {
            None
        }
    }

    fn victim(&self, now: u64) -> Option<usize> {
        if let Some(free) = self
            .slots
            .iter()
            .position(|s| !s.occupied || now >= s.expires_at)
        {
            return Some(free);
        }
        self.slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.last_used)
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; KEY_LEN] = [0x42; KEY_LEN];
    const HASH: &[u8] = b"$pbkdf2-sha256$i=600000,l=32$c2FsdA$aGFzaA";

    #[test]
    fn a_verified_credential_hits_until_it_expires() {
        let mut cache = CredentialCache::<4>::new(&KEY, 300);
        assert_eq!(cache.lookup(b"alice", b"pw", HASH, 0, 1_000), Lookup::Miss);
        cache.insert(b"alice", b"pw", HASH, 0, 1_000);
        assert_eq!(cache.lookup(b"alice", b"pw", HASH, 0, 1_000), Lookup::Hit);
        assert_eq!(cache.lookup(b"alice", b"pw", HASH, 0, 1_299), Lookup::Hit);
        assert_eq!(
            cache.lookup(b"alice", b"pw", HASH, 0, 1_300),
            Lookup::Expired
        );
        // Dropped: the next lookup is a plain miss.
        assert_eq!(cache.lookup(b"alice", b"pw", HASH, 0, 1_300), Lookup::Miss);
        assert!(cache.is_empty());
    }

    #[test]
    fn anything_different_misses() {
        let mut cache = CredentialCache::<4>::new(&KEY, 300);
        cache.insert(b"alice", b"pw", HASH, 7, 0);
        assert_eq!(cache.lookup(b"alice", b"pW", HASH, 7, 1), Lookup::Miss);
        assert_eq!(cache.lookup(b"alice", b"pw ", HASH, 7, 1), Lookup::Miss);
        assert_eq!(cache.lookup(b"alice", b"", HASH, 7, 1), Lookup::Miss);
        assert_eq!(cache.lookup(b"bob", b"pw", HASH, 7, 1), Lookup::Miss);
        // Field boundaries are part of the MAC.
        cache.insert(b"ab", b"c", HASH, 0, 0);
        assert_eq!(cache.lookup(b"a", b"bc", HASH, 0, 1), Lookup::Miss);
        // A re-created user has a new salted hash: the old password does not get in.
        let new_hash = b"$pbkdf2-sha256$i=600000,l=32$bmV3$bmV3aGFzaA";
        assert_eq!(cache.lookup(b"alice", b"pw", new_hash, 7, 1), Lookup::Miss);
        // A cache under another key knows nothing.
        let mut other = CredentialCache::<4>::new(&[0x43; KEY_LEN], 300);
        assert_eq!(other.lookup(b"alice", b"pw", HASH, 7, 1), Lookup::Miss);
        assert_eq!(cache.lookup(b"alice", b"pw", HASH, 7, 1), Lookup::Hit);
    }

    #[test]
    fn a_new_generation_revokes_and_drops_the_entry() {
        let mut cache = CredentialCache::<4>::new(&KEY, 300);
        cache.insert(b"alice", b"old", HASH, 3, 0);
        assert_eq!(cache.lookup(b"alice", b"old", HASH, 4, 1), Lookup::Revoked);
        assert_eq!(cache.lookup(b"alice", b"old", HASH, 3, 1), Lookup::Miss);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_evicts_expired_then_least_recently_used() {
        let mut cache = CredentialCache::<3>::new(&KEY, 100);
        cache.insert(b"a", b"1", HASH, 0, 0);
        cache.insert(b"b", b"2", HASH, 0, 10);
        cache.insert(b"c", b"3", HASH, 0, 20);
        assert_eq!(cache.lookup(b"a", b"1", HASH, 0, 30), Lookup::Hit); // a used last
        cache.insert(b"d", b"4", HASH, 0, 40); // evicts b, used longest ago
        assert_eq!(cache.lookup(b"b", b"2", HASH, 0, 41), Lookup::Miss);
        for (u, p) in [(b"a", b"1"), (b"c", b"3"), (b"d", b"4")] {
            assert_eq!(cache.lookup(u, p, HASH, 0, 42), Lookup::Hit);
        }
        // At 110, a (inserted at 0) has expired: though used most recently, it makes room
        // before any live entry.
        cache.insert(b"e", b"5", HASH, 0, 110);
        for (u, p) in [(b"c", b"3"), (b"d", b"4"), (b"e", b"5")] {
            assert_eq!(cache.lookup(u, p, HASH, 0, 111), Lookup::Hit);
        }
        assert_eq!(cache.lookup(b"a", b"1", HASH, 0, 111), Lookup::Miss);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn inserting_again_refreshes_instead_of_duplicating() {
        let mut cache = CredentialCache::<4>::new(&KEY, 100);
        cache.insert(b"a", b"1", HASH, 0, 0);
        cache.insert(b"a", b"1", HASH, 1, 50);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.lookup(b"a", b"1", HASH, 1, 120), Lookup::Hit);
    }

    #[test]
    fn zero_ttl_and_zero_capacity_never_hit() {
        let mut off = CredentialCache::<4>::new(&KEY, 0);
        off.insert(b"a", b"1", HASH, 0, 5);
        assert_eq!(off.lookup(b"a", b"1", HASH, 0, 5), Lookup::Expired);
        let mut none = CredentialCache::<0>::new(&KEY, 100);
        none.insert(b"a", b"1", HASH, 0, 5);
        assert_eq!(none.lookup(b"a", b"1", HASH, 0, 5), Lookup::Miss);
        let mut far = CredentialCache::<1>::new(&KEY, u64::MAX);
        far.insert(b"a", b"1", HASH, 0, u64::MAX - 1);
        assert_eq!(far.lookup(b"a", b"1", HASH, 0, u64::MAX - 1), Lookup::Hit);
    }

    #[test]
    fn mac_is_hmac_sha256_under_the_key() {
        // RFC 4231 test case 2 ("Jefe"), through the same zero-padded key construction.
        let mut key = [0u8; KEY_LEN];
        key[..4].copy_from_slice(b"Jefe");
        let cache = CredentialCache::<1>::new(&key, 1);
        let mut mac = cache.keyed.clone();
        mac.update(b"what do ya want for nothing?");
        let expected: [u8; 32] = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ];
        assert_eq!(<[u8; 32]>::from(mac.finalize().into_bytes()), expected);
    }

    #[test]
    fn a_mac_differing_in_any_single_bit_is_not_found() {
        let mut cache = CredentialCache::<4>::new(&KEY, 10);
        cache.insert(b"alice", b"pw", HASH, 0, 0);
        let mac = cache.mac(b"alice", b"pw", HASH);
        assert!(cache.position(&mac).is_some());
        for byte in 0..MAC_LEN {
            for bit in 0..8 {
                let mut other = mac;
                other[byte] ^= 1 << bit;
                assert_eq!(cache.position(&other), None, "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn debug_output_shows_no_mac() {
        let mut cache = CredentialCache::<2>::new(&KEY, 10);
        cache.insert(b"alice", b"pw", HASH, 0, 0);
        let shown = format!("{cache:?}");
        assert!(shown.contains("occupied: 1"), "{shown}");
        assert!(!shown.contains("mac"), "{shown}");
    }
}
