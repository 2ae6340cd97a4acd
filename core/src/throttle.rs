//! Login throttling: a fixed table of recent failures, per client network and per username.
//!
//! **The threat.** A login form and an HTTP Basic endpoint are password oracles: without a
//! limit, an attacker tries passwords as fast as the gateway can hash them. The opposite threat
//! is as real: a limit that an attacker can trip on purpose is a lockout button, and a
//! gateway that locks out every user after a burst of junk (or a table that fills up and then
//! refuses everyone) is a denial of service. The policy below slows guessing while making sure
//! that nobody can lock a real user out from somewhere else.
//!
//! # Policy
//!
//! Two kinds of bucket, each a leaky bucket counted in failures (GCRA: every failure adds
//! `interval` seconds of "debt", time pays it back):
//!
//! - **per client network** — an IPv4 address (/32), an IPv6 /64 (one customer's LAN, which a
//!   single attacker can fill with addresses), or the UNIX-socket peer (all local peers
//!   together). An IPv4-mapped IPv6 peer, and a NAT64 peer (`64:ff9b::/96`), is its IPv4
//!   address. A network gets
//!   [`ThrottlePolicy::network_burst`] failures for free; after that, one more attempt per
//!   [`ThrottlePolicy::network_interval`] seconds.
//! - **per username**, ASCII case folded (as the users table matches names), for existing and
//!   unknown names alike (so the answer does not tell which names exist). After
//!   [`ThrottlePolicy::user_burst`] failures, the name is *guarded*: attempts on it are
//!   refused, but **only from networks that have failed recently** (whose own bucket is not
//!   empty). A network with no recent failure is never refused because of a username.
//!
//! So an attacker hammering `alice` from network A is slowed by A's bucket, and keeps
//! `alice` guarded; `alice` logging in from network B is not delayed at all, and after a typo
//! from B she waits at most [`ThrottlePolicy::network_interval`] seconds (B's one failure
//! drains) before her next attempt. The price of that guarantee: an attacker with many
//! networks gets one guess per network per `network_interval` on a guarded name instead of
//! none. Nothing stronger is possible without telling the real user apart from the attacker,
//! which a network address cannot do.
//!
//! Every bucket's debt is capped just under twice its burst, so the longest wait is
//! `burst × interval` (100 s for a network, 5 minutes for a guarded name, with the defaults)
//! however long an
//! attack has run.
//!
//! # Table
//!
//! `N` slots hold both kinds of bucket. A new bucket takes a free slot, or one whose debt is
//! paid (it remembers nothing), or else the slot touched longest ago: a full table forgets
//! its oldest entry, which can only make the throttle more lenient, never lock anyone out. An
//! attacker's own network bucket is touched on each of its failures, so flooding the table
//! with junk usernames does not evict it. A network or name that has no bucket is always
//! allowed.
//!
//! Usernames are stored as a 64-bit FNV-1a hash of the case-folded name, never in clear. Two
//! names that collide share a bucket; a collision crafted on purpose gains nothing that
//! failing on the target name directly would not.
//!
//! # Time
//!
//! `now` is in **seconds** on any monotonic clock the shell chooses (the same clock for every
//! call). Time that goes backwards is treated as no time passing.
//!
//! # Use
//!
//! Before verifying a password, [`Throttle::attempt`]: it checks and, when the attempt is
//! allowed, charges it as a failure *before* the password is verified. On
//! [`Verdict::RetryAfter`], answer 429 with `Retry-After` and do not verify. When the password
//! turns out right, [`Throttle::refund`] the network's charge and [`Throttle::record_success`].
//! Charging up front is what bounds guesses that are verified concurrently: were failures
//! recorded only when a verification ends, a client with many requests in flight would have
//! every one of them checked against an empty bucket. Pass the peer that identifies the
//! client: the socket peer, or the client a trusted proxy reported (otherwise every client
//! behind a local proxy on the UNIX socket shares one network bucket).

use core::net::IpAddr;

use crate::peer::Peer;

/// The throttle's limits. [`ThrottlePolicy::DEFAULT`] is what gatehouse ships with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures a network may make before it must wait (values below 1 count as 1).
    pub network_burst: u32,
    /// Seconds it takes for one failure of a network to be forgiven.
    pub network_interval: u64,
    /// Failures on one username (from all networks) before the name is guarded
    /// (values below 1 count as 1).
    pub user_burst: u32,
    /// Seconds it takes for one failure on a username to be forgiven.
    pub user_interval: u64,
}

impl ThrottlePolicy {
    /// 10 free failures per network, then one attempt every 10 s (so at most 8,640 guesses a
    /// day from one network, and a wait of at most 100 s); a name is guarded after 5 failures,
    /// each forgiven after a minute (a wait of at most 5 minutes, for suspect networks only).
    pub const DEFAULT: Self = Self {
        network_burst: 10,
        network_interval: 10,
        user_burst: 5,
        user_interval: 60,
    };
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which limit refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The client's network has failed too often.
    Network,
    /// The username is guarded, and the client's network has failed recently.
    User,
}

/// The throttle's answer before a password is verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead and verify.
    Allowed,
    /// Do not verify; answer 429 with `Retry-After: seconds`.
    RetryAfter {
        /// Seconds until the attempt would be allowed (at least 1).
        seconds: u64,
        /// The limit that refused it.
        limit: Limit,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Free,
    V4(u32),
    V6Net64(u64),
    Unix,
    User(u64),
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: Key,
    /// When the bucket is empty again ("theoretical arrival time" of GCRA).
    empty_at: u64,
    /// Last failure recorded in this slot, for choosing which slot to forget.
    touched: u64,
}

const FREE: Slot = Slot {
    key: Key::Free,
    empty_at: 0,
    touched: 0,
};

/// A fixed-size table of recent login failures; see the module documentation for the policy.
#[derive(Clone, Debug)]
pub struct Throttle<const N: usize> {
    policy: ThrottlePolicy,
    slots: [Slot; N],
}

impl<const N: usize> Default for Throttle<N> {
    fn default() -> Self {
        Self::new(ThrottlePolicy::DEFAULT)
    }
}

impl<const N: usize> Throttle<N> {
    /// An empty table with the given limits.
    pub const fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            slots: [FREE; N],
        }
    }

    /// The limits in force.
    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    /// May this client try a password for this username now?
    pub fn check(&self, peer: &Peer, user: impl AsRef<[u8]>, now: u64) -> Verdict {
        let network = self.find(network_key(peer));
        let network_debt = network.map_or(0, |slot| slot.empty_at.saturating_sub(now));
        let network_wait = wait(
            network_debt,
            self.policy.network_burst,
            self.policy.network_interval,
        );
        if network_wait > 0 {
            return Verdict::RetryAfter {
                seconds: network_wait,
                limit: Limit::Network,
            };
        }
        // A clean network is never refused because of a username: that is what keeps an
        // attack on a name from locking its owner out everywhere.
        if network_debt == 0 {
            return Verdict::Allowed;
        }
        let user_debt = self
            .find(user_key(user.as_ref()))
            .map_or(0, |slot| slot.empty_at.saturating_sub(now));
        let user_wait = wait(user_debt, self.policy.user_burst, self.policy.user_interval);
        if user_wait > 0 {
            // Waiting out the network's own debt also lifts the guard.
            return Verdict::RetryAfter {
                seconds: user_wait.min(network_debt),
                limit: Limit::User,
            };
        }
        Verdict::Allowed
    }

    /// [`Throttle::check`], and when the attempt is allowed, charge it as a failure at once
    /// ([`Throttle::record_failure`]); a right password is then [`Throttle::refund`]ed.
    pub fn attempt(&mut self, peer: &Peer, user: impl AsRef<[u8]>, now: u64) -> Verdict {
        let verdict = self.check(peer, user.as_ref(), now);
        if verdict == Verdict::Allowed {
            self.record_failure(peer, user, now);
        }
        verdict
    }

    /// Pays back the one failure [`Throttle::attempt`] charged to the client's network for an
    /// attempt whose password was right.
    pub fn refund(&mut self, peer: &Peer, now: u64) {
        let key = network_key(peer);
        let interval = self.policy.network_interval;
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.key == key) {
            slot.empty_at = slot.empty_at.saturating_sub(interval).max(now);
        }
    }

    /// Records a failed password verification for this client and username.
    pub fn record_failure(&mut self, peer: &Peer, user: impl AsRef<[u8]>, now: u64) {
        let policy = self.policy;
        let network = self.charge(
            network_key(peer),
            policy.network_burst,
            policy.network_interval,
            now,
            None,
        );
        self.charge(
            user_key(user.as_ref()),
            policy.user_burst,
            policy.user_interval,
            now,
            network,
        );
    }

    /// Records a successful login: the username's failures are forgiven (whoever knows the
    /// password has nothing left to guess). The network's failures are kept: other clients
    /// may share it.
    pub fn record_success(&mut self, _peer: &Peer, user: impl AsRef<[u8]>, _now: u64) {
        let key = user_key(user.as_ref());
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.key == key) {
            *slot = FREE;
        }
    }

    /// Forgets every failure.
    pub fn clear(&mut self) {
        self.slots = [FREE; N];
    }

    fn find(&self, key: Key) -> Option<&Slot> {
        self.slots.iter().find(|slot| slot.key == key)
    }

    /// Adds one failure to the bucket of `key`, allocating a slot (never `keep`) if needed;
    /// returns the slot's index, or `None` when the table has no slot to give.
    fn charge(
        &mut self,
        key: Key,
        burst: u32,
        interval: u64,
        now: u64,
        keep: Option<usize>,
    ) -> Option<usize> {
        let index = match self.slots.iter().position(|slot| slot.key == key) {
            Some(index) => index,
            None => {
                let index = self.victim(now, keep)?;
                self.slots[index] = Slot {
                    key,
                    empty_at: now,
                    touched: now,
                };
                index
            }
        };
        // Debt beyond this would only lengthen the wait past `burst × interval`.
        let cap = (u64::from(burst.max(1)) * 2 - 1).saturating_mul(interval);
        let slot = &mut self.slots[index];
        let start = slot.empty_at.max(now);
        slot.empty_at = start.saturating_add(interval).min(now.saturating_add(cap));
        slot.touched = slot.touched.max(now);
        Some(index)
    }

    /// The slot a new bucket takes: a free one, else one whose debt is paid, else the one
    /// touched longest ago; never `keep`.
    fn victim(&self, now: u64, keep: Option<usize>) -> Option<usize> {
        let candidates = self
            .slots
            .iter()
            .enumerate()
            .filter(|&(index, _)| Some(index) != keep);
        let mut oldest: Option<(usize, u64)> = None;
        for (index, slot) in candidates {
            if slot.key == Key::Free || slot.empty_at <= now {
                return Some(index);
            }
            if oldest.is_none_or(|(_, touched)| slot.touched < touched) {
                oldest = Some((index, slot.touched));
            }
        }
        oldest.map(|(index, _)| index)
    }
}

/// Seconds until a bucket holding `debt` seconds allows another attempt (0: allowed now).
fn wait(debt: u64, burst: u32, interval: u64) -> u64 {
    let allowance = u64::from(burst.max(1) - 1).saturating_mul(interval);
    debt.saturating_sub(allowance)
}

fn network_key(peer: &Peer) -> Key {
    match peer.canonical_ip() {
        None => Key::Unix,
        Some(IpAddr::V4(v4)) => Key::V4(u32::from(v4)),
        Some(IpAddr::V6(v6)) => match v6.octets() {
            // NAT64 (RFC 6052 well-known prefix `64:ff9b::/96`): every IPv4 client of the
            // translator shares this one /64, so key them by the IPv4 address they carry.
            [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c, d] => {
                Key::V4(u32::from_be_bytes([a, b, c, d]))
            }
            _ => Key::V6Net64((u128::from(v6) >> 64) as u64),
        },
    }
}

fn user_key(name: &[u8]) -> Key {
    // FNV-1a, 64 bits, over the ASCII-lowercased name.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in name {
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Key::User(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ThrottlePolicy = ThrottlePolicy::DEFAULT;

    fn peer(text: &str) -> Peer {
        Peer::parse(text).unwrap()
    }

    /// What the engine does for one login attempt with a wrong password.
    fn attempt<const N: usize>(t: &mut Throttle<N>, who: &Peer, user: &str, now: u64) -> Verdict {
        t.attempt(who, user, now)
    }

    #[test]
    fn attempts_in_flight_are_charged_before_they_are_verified() {
        let mut t = Throttle::<16>::default();
        let a = peer("192.0.2.1");
        // Nothing has been verified yet, yet only the burst is let through (a different
        // name each time, so that no name is guarded).
        let allowed = (0..100)
            .filter(|i| t.attempt(&a, format!("name{i}"), 100) == Verdict::Allowed)
            .count();
        assert_eq!(allowed, P.network_burst as usize);
    }

    #[test]
    fn a_right_password_costs_the_network_nothing() {
        let mut t = Throttle::<16>::default();
        let a = peer("192.0.2.1");
        for _ in 0..100 {
            assert_eq!(t.attempt(&a, "alice", 100), Verdict::Allowed);
            t.refund(&a, 100);
            t.record_success(&a, "alice", 100);
        }
        assert_eq!(t.check(&a, "alice", 100), Verdict::Allowed);
    }

    #[test]
    fn a_network_gets_its_burst_then_waits() {
        let mut t = Throttle::<32>::default();
        let a = peer("192.0.2.1");
        for i in 0..P.network_burst {
            assert_eq!(
                attempt(&mut t, &a, &format!("junk{i}"), 100),
                Verdict::Allowed
            );
        }
        assert_eq!(
            t.check(&a, "someone", 100),
            Verdict::RetryAfter {
                seconds: P.network_interval,
                limit: Limit::Network
            }
        );
        assert_eq!(
            t.check(&a, "someone", 100 + P.network_interval - 1),
            Verdict::RetryAfter {
                seconds: 1,
                limit: Limit::Network
            }
        );
        // One failure drained: exactly one more attempt.
        let later = 100 + P.network_interval;
        assert_eq!(attempt(&mut t, &a, "x", later), Verdict::Allowed);
        assert!(matches!(
            t.check(&a, "x", later),
            Verdict::RetryAfter { .. }
        ));
        // Fully drained: a whole burst again (names all different, so none is guarded).
        let idle = later + u64::from(P.network_burst) * P.network_interval;
        for i in 0..P.network_burst {
            assert_eq!(
                attempt(&mut t, &a, &format!("other{i}"), idle),
                Verdict::Allowed
            );
        }
    }

    #[test]
    fn attack_on_a_name_from_one_network_does_not_lock_its_owner_out_elsewhere() {
        let mut t = Throttle::<64>::default();
        let attacker = peer("198.51.100.7");
        let home = peer("[2001:db8:aaaa:1::20]:50000");
        // An hour of an attacker hammering "alice" ten times a second.
        let mut guesses = 0u64;
        for tick in 0..36_000u64 {
            let now = 1_000 + tick / 10;
            if attempt(&mut t, &attacker, "alice", now) == Verdict::Allowed {
                guesses += 1;
            }
            // Alice, from her own network, is never delayed.
            if tick % 600 == 0 {
                assert_eq!(t.check(&home, "Alice", now), Verdict::Allowed, "t={now}");
            }
        }
        let now = 1_000 + 3_600;
        // The attacker is throttled: its burst, then at most one guess per interval.
        assert!(
            guesses <= u64::from(P.network_burst) + 3_600 / P.network_interval + 1,
            "{guesses}"
        );
        // Alice mistypes once from home: the name is guarded and home is now suspect…
        assert_eq!(attempt(&mut t, &home, "alice", now), Verdict::Allowed);
        let Verdict::RetryAfter { seconds, limit } = t.check(&home, "alice", now) else {
            panic!("a guarded name from a network that just failed should wait");
        };
        assert_eq!(limit, Limit::User);
        // …but only until home's own failure drains: a modest, bounded delay.
        assert!(seconds <= P.network_interval, "{seconds}");
        assert_eq!(t.check(&home, "alice", now + seconds), Verdict::Allowed);
        // And a login from home succeeds, forgiving the name's failures.
        t.record_success(&home, "alice", now + seconds);
        assert_eq!(t.check(&home, "alice", now + seconds), Verdict::Allowed);
    }

    #[test]
    fn guarded_names_slow_a_distributed_attack() {
        let mut t = Throttle::<64>::default();
        for i in 0..P.user_burst {
            let bot = peer(&format!("203.0.113.{i}"));
            assert_eq!(attempt(&mut t, &bot, "bob", 10), Verdict::Allowed);
        }
        // Each bot has failed once: the guarded name refuses them, though their own
        // networks are far below their burst…
        let bot = peer("203.0.113.0");
        assert_eq!(
            t.check(&bot, "BOB", 10),
            Verdict::RetryAfter {
                seconds: P.network_interval,
                limit: Limit::User
            }
        );
        // …while other names are unaffected.
        assert_eq!(t.check(&bot, "carol", 10), Verdict::Allowed);
        // A fresh bot gets one guess, then it is suspect too.
        let fresh = peer("203.0.113.200");
        assert_eq!(attempt(&mut t, &fresh, "bob", 10), Verdict::Allowed);
        assert!(matches!(
            t.check(&fresh, "bob", 10),
            Verdict::RetryAfter {
                limit: Limit::User,
                ..
            }
        ));
    }

    #[test]
    fn usernames_are_case_folded() {
        let mut t = Throttle::<16>::default();
        for i in 0..P.user_burst {
            t.record_failure(&peer(&format!("10.0.0.{i}")), "DaVe", 0);
        }
        let suspect = peer("10.0.0.0");
        for spelling in ["dave", "DAVE", "Dave"] {
            assert!(matches!(
                t.check(&suspect, spelling, 0),
                Verdict::RetryAfter {
                    limit: Limit::User,
                    ..
                }
            ));
        }
        t.record_success(&suspect, "DAVE", 0);
        assert_eq!(t.check(&suspect, "dave", 0), Verdict::Allowed);
    }

    #[test]
    fn networks_are_grouped_as_documented() {
        let mut t = Throttle::<16>::default();
        for _ in 0..P.network_burst {
            t.record_failure(&peer("2001:db8:1:2::1"), "u", 0);
            t.record_failure(&peer("192.0.2.9"), "u", 0);
            t.record_failure(&Peer::Unix, "u", 0);
        }
        let refused = |t: &Throttle<16>, who: &str| t.check(&peer(who), "v", 0) != Verdict::Allowed;
        // The same IPv6 /64, any spelling.
        assert!(refused(&t, "2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert!(refused(&t, "[2001:0db8:0001:0002::7]:1"));
        // Another /64 of the same /48 is another network.
        assert!(!refused(&t, "2001:db8:1:3::1"));
        // IPv4 is per address, and a mapped peer is the IPv4 peer.
        assert!(refused(&t, "::ffff:192.0.2.9"));
        assert!(refused(&t, "192.0.2.9:4444"));
        assert!(!refused(&t, "192.0.2.10"));
        // The UNIX peer is its own network.
        assert!(refused(&t, "@"));
        let mut fresh = Throttle::<16>::default();
        for _ in 0..P.network_burst {
            fresh.record_failure(&Peer::Unix, "u", 0);
        }
        assert!(!refused(&fresh, "127.0.0.1"));
    }

    #[test]
    fn nat64_clients_do_not_share_one_throttle_bucket() {
        let mut t = Throttle::<64>::default();
        let attacker = peer("64:ff9b::192.0.2.1");
        for i in 0..30u32 {
            t.record_failure(&attacker, format!("junk{i}"), 1_000);
        }
        assert!(matches!(
            t.check(&attacker, "x", 1_000),
            Verdict::RetryAfter { .. }
        ));
        assert_eq!(
            t.check(&peer("64:ff9b::198.51.100.7"), "alice", 1_000),
            Verdict::Allowed
        );
        // The client is its IPv4 address, however it reaches gatehouse.
        assert!(matches!(
            t.check(&peer("192.0.2.1"), "x", 1_000),
            Verdict::RetryAfter { .. }
        ));
    }

    #[test]
    fn waits_are_capped_however_long_the_attack() {
        let mut t = Throttle::<8>::default();
        let a = peer("192.0.2.1");
        // Record far more failures than check would ever allow (a misbehaving caller).
        for _ in 0..10_000 {
            t.record_failure(&a, "alice", 50);
        }
        let Verdict::RetryAfter { seconds, .. } = t.check(&a, "alice", 50) else {
            panic!("should be throttled");
        };
        assert!(seconds <= u64::from(P.network_burst) * P.network_interval);
        assert!(seconds <= u64::from(P.user_burst) * P.user_interval);
    }

    #[test]
    fn a_full_table_forgets_the_oldest_and_never_refuses_strangers() {
        let mut t = Throttle::<8>::default();
        // 1000 junk attempts from 1000 networks fill the table many times over.
        for i in 0..1000u32 {
            let who = Peer::Ip(IpAddr::V4((0x0a00_0000 + i).into()));
            t.record_failure(&who, format!("junk{i}"), 500);
        }
        assert_eq!(t.check(&peer("192.0.2.1"), "alice", 500), Verdict::Allowed);
        assert_eq!(t.check(&peer("2001:db8::1"), "bob", 500), Verdict::Allowed);
        assert_eq!(t.check(&Peer::Unix, "carol", 500), Verdict::Allowed);
    }

    #[test]
    fn junk_names_do_not_evict_the_attackers_own_network() {
        let mut t = Throttle::<4>::default();
        let a = peer("192.0.2.66");
        for i in 0..100u64 {
            t.record_failure(&a, format!("junk{i}"), i);
        }
        assert!(matches!(
            t.check(&a, "anyone", 100),
            Verdict::RetryAfter {
                limit: Limit::Network,
                ..
            }
        ));
    }

    #[test]
    fn tiny_tables_and_odd_policies_do_not_panic() {
        let odd = ThrottlePolicy {
            network_burst: 0,
            network_interval: u64::MAX,
            user_burst: 0,
            user_interval: 0,
        };
        let mut zero = Throttle::<0>::new(odd);
        zero.record_failure(&Peer::Unix, "x", u64::MAX);
        assert_eq!(zero.check(&Peer::Unix, "x", 0), Verdict::Allowed);
        let mut one = Throttle::<1>::new(odd);
        one.record_failure(&Peer::Unix, "x", u64::MAX);
        one.record_failure(&Peer::Unix, "x", 0);
        let _ = one.check(&Peer::Unix, "x", 3);
        one.record_success(&Peer::Unix, "x", 3);
        one.clear();
        assert_eq!(one.check(&Peer::Unix, "x", 3), Verdict::Allowed);
    }

    #[test]
    fn time_going_backwards_is_no_time_passing() {
        let mut t = Throttle::<8>::default();
        let a = peer("192.0.2.1");
        for _ in 0..P.network_burst {
            t.record_failure(&a, "u", 1_000);
        }
        assert!(matches!(t.check(&a, "u", 10), Verdict::RetryAfter { .. }));
        assert_eq!(t.check(&a, "u", 1_000_000), Verdict::Allowed);
    }
}
