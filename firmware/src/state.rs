//! What all connection tasks share: the core engine with its configuration, and the mutable
//! state its decisions read and update (users, login throttle, credential cache), behind one
//! lock. Capacities are fixed here, at compile time.

use core::cell::{Cell, RefCell};
use core::net::SocketAddrV4;

use embassy_net::IpEndpoint;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use gatehouse_core::credential_cache::CredentialCache;
use gatehouse_core::gateway::{
    Decision, Exchange, Gateway, GatewayConfig, PasswordCheck, PendingChecks, RANDOM_LEN, Shared,
};
use gatehouse_core::session::SessionKeys;
use gatehouse_core::throttle::{Throttle, ThrottlePolicy};
use gatehouse_core::trusted::TrustedSources;
use gatehouse_core::users::UserTable;

use crate::clock::{Backwards, Clock, Now};
use crate::connection::Timeouts;
use crate::random::Drbg;

/// Users the board holds.
pub const MAX_USERS: usize = 8;
/// App passwords the board holds, all users together.
pub const MAX_APP_PASSWORDS: usize = 16;
/// Entries of the trusted-sources list.
pub const MAX_TRUSTED_SOURCES: usize = 8;
/// Clients (networks and usernames) the login throttle remembers.
pub const THROTTLE_SLOTS: usize = 32;
/// Recently verified HTTP Basic credentials remembered.
pub const CREDENTIAL_CACHE_SLOTS: usize = 8;
/// How long a verified Basic credential is trusted without hashing again.
pub const CREDENTIAL_CACHE_TTL_SECS: u64 = 300;

/// The users table of a board.
pub type Users = UserTable<MAX_USERS, MAX_APP_PASSWORDS>;
/// A trusted-sources or trusted-proxies list of a board.
pub type Trusted = TrustedSources<MAX_TRUSTED_SOURCES>;

/// The state decisions update.
pub struct MutableState {
    pub users: Users,
    pub throttle: Throttle<THROTTLE_SLOTS>,
    pub credentials: CredentialCache<CREDENTIAL_CACHE_SLOTS>,
    pub pending: PendingChecks,
}

/// Everything the connection tasks share. Made once at boot, then lives forever.
pub struct Engine {
    gateway: Gateway<'static, MAX_TRUSTED_SOURCES>,
    state: Mutex<CriticalSectionRawMutex, RefCell<MutableState>>,
    random: Mutex<CriticalSectionRawMutex, RefCell<Drbg>>,
    /// The time, and whether it is known (see [`crate::clock`]).
    clock: Clock,
    /// The SNTP server that sets the clock, if any.
    pub ntp_server: Option<SocketAddrV4>,
    /// The app behind the gateway.
    pub upstream: IpEndpoint,
    /// TCP port gatehouse listens on.
    pub listen_port: u16,
    pub timeouts: Timeouts,
    /// Raised when the users table changed and must be written back to flash.
    pub users_changed: Signal<CriticalSectionRawMutex, ()>,
    /// Raised when a session was issued: the time floor in flash must catch up, so that after
    /// a reboot no clock source can go back to before it.
    pub session_issued: Signal<CriticalSectionRawMutex, ()>,
    /// Connection tasks serving a client right now.
    busy: Mutex<CriticalSectionRawMutex, Cell<usize>>,
    /// Raised when `busy` changes (the overflow task listens only while all tasks are busy).
    pub(crate) busy_changed: Signal<CriticalSectionRawMutex, ()>,
}

/// What a board hands to [`Engine::new`].
pub struct EngineParts {
    pub config: GatewayConfig<'static>,
    /// Identity trust (`trusted_sources`).
    pub trusted: &'static Trusted,
    /// Forwarding trust only (`trusted_proxies`).
    pub proxies: &'static Trusted,
    pub keys: &'static SessionKeys,
    pub users: Users,
    /// Random bytes for the DRBG (at least [`crate::random::SEED_LEN`]).
    pub seed: [u8; 32],
    /// A time the real time is not below (UNIX seconds): the floor kept in flash or the
    /// configuration's `clock_unix`, whichever is later.
    pub time_floor_unix: u64,
    /// The real time, from a real-time clock the board read at boot.
    pub rtc_unix: Option<u64>,
    pub ntp_server: Option<SocketAddrV4>,
    pub upstream: IpEndpoint,
    pub listen_port: u16,
    pub timeouts: Timeouts,
}

impl Engine {
    pub fn new(parts: EngineParts) -> Self {
        let mut drbg = Drbg::new(&parts.seed);
        let mut cache_key = [0u8; 32];
        drbg.fill(&mut cache_key);
        let clock = Clock::from_floor(parts.time_floor_unix);
        if let Some(rtc) = parts.rtc_unix {
            match clock.set(rtc) {
                Ok(()) => info!("time: {} (UNIX), from the real-time clock", rtc),
                Err(e) => error!(
                    "the real-time clock says {} (UNIX), earlier than the floor {}: not believed",
                    e.offered, e.counted
                ),
            }
        }
        Self {
            gateway: Gateway {
                config: parts.config,
                trusted: parts.trusted,
                proxies: parts.proxies,
                keys: parts.keys,
            },
            state: Mutex::new(RefCell::new(MutableState {
                users: parts.users,
                throttle: Throttle::new(ThrottlePolicy::DEFAULT),
                credentials: CredentialCache::new(&cache_key, CREDENTIAL_CACHE_TTL_SECS),
                pending: PendingChecks::new(),
            })),
            random: Mutex::new(RefCell::new(drbg)),
            clock,
            ntp_server: parts.ntp_server,
            upstream: parts.upstream,
            listen_port: parts.listen_port,
            timeouts: parts.timeouts,
            users_changed: Signal::new(),
            session_issued: Signal::new(),
            busy: Mutex::new(Cell::new(0)),
            busy_changed: Signal::new(),
        }
    }

    /// Now, as the engine counts it, and whether that is the real time.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    /// Sets the real time (from SNTP); refused if it lies before what the board counts.
    pub fn set_time(&self, unix: u64) -> Result<(), Backwards> {
        self.clock.set(unix)
    }

    /// Fresh random bytes for one request.
    pub fn random(&self) -> [u8; RANDOM_LEN] {
        let mut bytes = [0u8; RANDOM_LEN];
        self.random.lock(|drbg| drbg.borrow_mut().fill(&mut bytes));
        bytes
    }

    /// Asks the engine about the request at the start of `ex.bytes`.
    pub fn decide(&self, ex: &Exchange<'_>, out: &mut [u8]) -> Decision {
        self.state.lock(|state| {
            let state = &mut *state.borrow_mut();
            let mut shared = Shared {
                users: &mut state.users,
                throttle: &mut state.throttle,
                credentials: &mut state.credentials,
                pending: &mut state.pending,
            };
            self.gateway.decide(ex, &mut shared, out)
        })
    }

    /// Completes a password check made outside the lock.
    pub fn finish(
        &self,
        ex: &Exchange<'_>,
        check: &PasswordCheck,
        verified: bool,
        out: &mut [u8],
    ) -> Decision {
        self.state.lock(|state| {
            let state = &mut *state.borrow_mut();
            let mut shared = Shared {
                users: &mut state.users,
                throttle: &mut state.throttle,
                credentials: &mut state.credentials,
                pending: &mut state.pending,
            };
            self.gateway.finish(ex, &mut shared, check, verified, out)
        })
    }

    /// Connection tasks serving a client right now.
    pub fn busy(&self) -> usize {
        self.busy.lock(Cell::get)
    }

    pub(crate) fn set_busy(&self, change: impl FnOnce(usize) -> usize) {
        self.busy.lock(|busy| busy.set(change(busy.get())));
        self.busy_changed.signal(());
    }

    /// Runs `f` on the users table (for writing it back).
    pub fn with_users<R>(&self, f: impl FnOnce(&Users) -> R) -> R {
        self.state.lock(|state| f(&state.borrow().users))
    }
}
