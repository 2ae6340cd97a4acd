//! The state a shell holds around the gateway, for the tests that drive the decision over
//! byte-level requests (this module's, the account page's and the Subsonic paths').

use super::*;
use crate::credential_cache::CredentialCache;
use crate::password::hash_password;
use crate::session::{SessionKey, SessionKeys};
use crate::throttle::{Throttle, ThrottlePolicy};
use crate::trusted::TrustedSources;
use crate::users::UserTable;

/// The fewest PBKDF2 iterations core accepts: fast enough for tests.
pub(super) const ITER: u32 = crate::password::MIN_ITERATIONS;
/// The time of every exchange unless a test says otherwise.
pub(super) const NOW: u64 = 1_800_000_000;

pub(super) struct World {
    pub users: UserTable<8>,
    pub throttle: Throttle<16>,
    pub cache: CredentialCache<4>,
    pub pending: PendingChecks,
    /// Identity trust: `10.0.0.0/8` and UNIX-socket peers.
    pub trusted: TrustedSources<4>,
    /// Forwarding trust only: `172.16.0.0/12`.
    pub proxies: TrustedSources<4>,
    pub keys: SessionKeys,
    /// gatehouse's defaults with [`ITER`] iterations; tests change what they are about.
    pub config: GatewayConfig<'static>,
    /// What every exchange says about the clock ([`Exchange::time_known`]); `true` unless a
    /// test is about a board that has not set its clock yet.
    pub time_known: bool,
}

impl World {
    /// alice (admin, password "wonderland") and bob ("builder").
    pub fn new() -> Self {
        let mut users = UserTable::new();
        let hash = hash_password(b"wonderland", &[1; 16], ITER).unwrap();
        users.add("alice", true, hash).unwrap();
        let hash = hash_password(b"builder", &[2; 16], ITER).unwrap();
        users.add("bob", false, hash).unwrap();
        World {
            users,
            throttle: Throttle::new(ThrottlePolicy::DEFAULT),
            cache: CredentialCache::new(&[9; 32], 300),
            pending: PendingChecks::new(),
            trusted: TrustedSources::parse("10.0.0.0/8, @").unwrap(),
            proxies: TrustedSources::parse("172.16.0.0/12").unwrap(),
            keys: SessionKeys::new(SessionKey::from_bytes([5; 32])),
            config: GatewayConfig {
                password_iterations: ITER,
                ..GatewayConfig::DEFAULT
            },
            time_known: true,
        }
    }

    pub fn gateway(&self) -> Gateway<'_, 4> {
        Gateway {
            config: self.config,
            trusted: &self.trusted,
            proxies: &self.proxies,
            keys: &self.keys,
        }
    }

    /// One step as a shell takes it: `decide`, or with `finished` the `finish` of a check
    /// (whose verification the shell ran in between, outside the lock).
    pub fn step_at(
        &mut self,
        peer: &str,
        bytes: &[u8],
        now: u64,
        finished: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let keys = self.keys.clone();
        let trusted = self.trusted.clone();
        let proxies = self.proxies.clone();
        let gw = Gateway {
            config: self.config,
            trusted: &trusted,
            proxies: &proxies,
            keys: &keys,
        };
        let random = [42u8; RANDOM_LEN];
        let ex = Exchange {
            peer: peer.parse().unwrap(),
            tls: false,
            bytes,
            now,
            time_known: self.time_known,
            random: &random,
        };
        let mut shared = Shared {
            users: &mut self.users,
            throttle: &mut self.throttle,
            credentials: &mut self.cache,
            pending: &mut self.pending,
        };
        match finished {
            None => gw.decide(&ex, &mut shared, out),
            Some((check, ok)) => gw.finish(&ex, &mut shared, check, ok, out),
        }
    }
}
