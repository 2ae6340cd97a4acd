//! What every connection shares: the configuration, the counters, and the state core decides
//! with (users, session keys, login throttle, verified-credential cache) behind one mutex. Each
//! worker keeps its own connections to the app (see [`crate::server`]).
//!
//! The mutex is held only while core decides, which is microseconds except for a password
//! verification (a login, or a Basic credential the cache does not know yet).

use std::sync::{Mutex, MutexGuard};

use anyhow::Result;
use gatehouse_core::credential_cache::{self, CredentialCache};
use gatehouse_core::gateway::{self, Gateway, GatewayConfig, PendingChecks};
use gatehouse_core::session::{SessionKey, SessionKeys as CoreKeys};
use gatehouse_core::throttle::{Throttle, ThrottlePolicy};

use crate::config::{Config, TRUSTED_SOURCES_CAPACITY, TrustedList};
use crate::files::FileStamp;
use crate::keys::{SessionKeys, os_random};
use crate::metrics::Metrics;
use crate::store::{USERS_CAPACITY, Users, UsersFile};

/// Recent login failures remembered (per client network and per username).
pub const THROTTLE_CAPACITY: usize = 1024;

/// Recently verified HTTP Basic credentials remembered.
pub const CREDENTIAL_CACHE_CAPACITY: usize = 256;

/// How long a verified Basic credential is trusted without hashing it again.
pub const CREDENTIAL_CACHE_TTL_SECS: u64 = 300;

/// The state core decides with.
pub struct GateState {
    pub users: Box<Users>,
    pub keys: CoreKeys,
    pub throttle: Box<Throttle<THROTTLE_CAPACITY>>,
    pub credentials: Box<CredentialCache<CREDENTIAL_CACHE_CAPACITY>>,
    /// Password checks core handed out that are still running.
    pub pending: PendingChecks,
    /// Identity trust (`trusted_sources`).
    pub trusted: TrustedList,
    /// Forwarding trust only (`trusted_proxies`).
    pub proxies: TrustedList,
    /// The users file as last read or written, to notice someone else's change.
    users_stamp: Option<FileStamp>,
    /// False while the file on disk does not parse: the gateway keeps serving with the users
    /// it has, and does not write over the broken file.
    users_file_ok: bool,
}

fn core_keys(keys: &SessionKeys) -> CoreKeys {
    CoreKeys {
        current: SessionKey::from_bytes(keys.current),
        previous: keys.previous.map(SessionKey::from_bytes),
    }
}

/// Shared by every connection.
pub struct Shared {
    pub config: Config,
    /// The settings core decides with, built once from `config`.
    pub gateway_config: GatewayConfig<'static>,
    pub metrics: Metrics,
    pub users_file: UsersFile,
    /// Woken when a password check finishes, for requests core told to wait for it.
    pub checks_finished: tokio::sync::Notify,
    state: Mutex<GateState>,
}

impl Shared {
    pub fn new(config: Config, users_file: UsersFile, keys: SessionKeys) -> Result<Shared> {
        let loaded = users_file.load()?;
        let trusted = TrustedList::parse(&config.trusted_sources)
            .map_err(|e| anyhow::anyhow!("`trusted_sources`: {e}"))?;
        let proxies = TrustedList::parse(&config.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("`trusted_proxies`: {e}"))?;
        let mut cache_key = [0u8; credential_cache::KEY_LEN];
        os_random(&mut cache_key)?;
        let state = GateState {
            users: loaded.users,
            keys: core_keys(&keys),
            throttle: Box::new(Throttle::new(ThrottlePolicy::DEFAULT)),
            credentials: Box::new(CredentialCache::new(&cache_key, CREDENTIAL_CACHE_TTL_SECS)),
            pending: PendingChecks::new(),
            trusted,
            proxies,
            users_stamp: loaded.stamp,
            users_file_ok: true,
        };
        Ok(Shared {
            gateway_config: crate::engine::gateway_config(&config),
            metrics: Metrics::default(),
            users_file,
            config,
            checks_finished: tokio::sync::Notify::new(),
            state: Mutex::new(state),
        })
    }

    /// The decision state, locked. A panic while it was held cannot leave it half-changed in
    /// a way that matters (core's operations are all-or-nothing), so a poisoned lock is used.
    pub fn state(&self) -> MutexGuard<'_, GateState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Runs `f` with core's gateway and the state it decides with, under the lock.
    pub fn with_gateway<R>(
        &self,
        f: impl FnOnce(
            &Gateway<'_, TRUSTED_SOURCES_CAPACITY>,
            &mut gateway::Shared<'_, USERS_CAPACITY, THROTTLE_CAPACITY, CREDENTIAL_CACHE_CAPACITY>,
        ) -> R,
    ) -> R {
        let mut guard = self.state();
        let state = &mut *guard;
        let gw = Gateway {
            config: self.gateway_config,
            trusted: &state.trusted,
            proxies: &state.proxies,
            keys: &state.keys,
        };
        let mut shared = gateway::Shared {
            users: &mut state.users,
            throttle: &mut state.throttle,
            credentials: &mut state.credentials,
            pending: &mut state.pending,
        };
        f(&gw, &mut shared)
    }

    pub fn user_count(&self) -> usize {
        self.state().users.len()
    }

    /// Reloads the users file when it changed on disk (or always, with `force`). A file that
    /// does not parse is reported and ignored: the users in memory stay in force. Returns the
    /// number of users in force after a reload (or with nothing to reload), or why the file
    /// could not be applied.
    pub fn reload_users_if_changed(&self, force: bool) -> Result<usize, String> {
        let stamp = self
            .users_file
            .stamp()
            .map_err(|e| format!("cannot read the users file: {e:#}"))?;
        {
            let state = self.state();
            if !force && stamp == state.users_stamp {
                return Ok(state.users.len());
            }
        }
        let _lock = match self.users_file.lock() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot lock the users file: {e:#}");
                return Err(format!("cannot lock the users file: {e:#}"));
            }
        };
        match self.users_file.load() {
            Ok(loaded) => {
                let mut state = self.state();
                let count = loaded.users.len();
                state.users = loaded.users;
                state.users_stamp = loaded.stamp;
                state.users_file_ok = true;
                // Cached Basic credentials were verified against the old table.
                state.credentials.clear();
                drop(state);
                tracing::info!("users file reloaded: {count} users");
                Ok(count)
            }
            Err(e) => {
                let mut state = self.state();
                if state.users_file_ok || force {
                    tracing::error!(
                        "{e:#}; keeping the {} users loaded before",
                        state.users.len()
                    );
                }
                state.users_file_ok = false;
                state.users_stamp = stamp;
                Err(format!(
                    "{e:#}; keeping the {} users loaded before",
                    state.users.len()
                ))
            }
        }
    }

    /// Reads the session keys file again (after `gatehouse rotate-key`); on failure the keys
    /// in use stay.
    pub fn reload_keys(&self) {
        match SessionKeys::load_or_create(&self.config.state_dir) {
            Ok(keys) => {
                let mut state = self.state();
                state.keys = core_keys(&keys);
                drop(state);
                tracing::info!("session keys reloaded");
            }
            Err(e) => tracing::error!("{e:#}; keeping the session keys in use"),
        }
    }

    /// Writes the table after core changed it (a user provisioned from a trusted header). If
    /// someone else changed the file meanwhile, their version is read first and core's
    /// change is applied to it again with `reapply`; a broken file is never written over.
    /// Returns whether the table is on disk: false when the change is kept in memory only.
    #[must_use]
    pub fn persist_users(&self, reapply: impl Fn(&mut Users)) -> bool {
        let _lock = match self.users_file.lock() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot lock the users file, change kept in memory only: {e:#}");
                return false;
            }
        };
        let disk_stamp = self.users_file.stamp().ok().flatten();
        let mut state = self.state();
        if disk_stamp != state.users_stamp {
            match self.users_file.load() {
                Ok(loaded) => {
                    state.users = loaded.users;
                    reapply(&mut state.users);
                    state.users_file_ok = true;
                }
                Err(e) => {
                    state.users_file_ok = false;
                    tracing::error!("{e:#}; the change is kept in memory only");
                    return false;
                }
            }
        }
        if !state.users_file_ok {
            tracing::error!("the users file on disk is corrupt; the change is kept in memory only");
            return false;
        }
        match self.users_file.save(&state.users) {
            Ok(stamp) => {
                state.users_stamp = stamp;
                true
            }
            Err(e) => {
                tracing::error!("{e:#}; the change is kept in memory only");
                false
            }
        }
    }
}
