//! Turning a provisioned configuration into a running engine: the same steps on every board.

use embedded_storage_async::nor_flash::NorFlash;
use gatehouse_core::session::{SessionKey, SessionKeys};
use gatehouse_core::users::UserTable;
use static_cell::StaticCell;

use crate::config::Provisioned;
use crate::random::Drbg;
use crate::state::{Engine, EngineParts, Trusted};
use crate::store::{Store, StoreError};

/// Why the board cannot serve. It logs the reason and stays down: it never serves with a
/// half-read configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BootError {
    /// `trusted_sources` does not parse (the log names the entry).
    TrustedSources,
    /// `trusted_proxies` does not parse (the log names the entry).
    TrustedProxies,
    /// The provisioned users JSON is not a users table (the log says why).
    Users,
    /// The write-back store failed.
    Store(StoreError),
    /// Called twice.
    AlreadyStarted,
}

/// Makes the engine from a checked configuration region, the write-back store and the board's
/// random seed: parses the trusted sources, loads the users (the store's write-back when it
/// belongs to this region, else the region's), reads or creates the session key, and starts the
/// clock from the time floor (the one kept in flash or the configuration's `clock_unix`,
/// whichever is later). `rtc_unix` is the time a board with a real-time clock read from it:
/// then the time is known from the start; otherwise SNTP sets it (see [`crate::clock`]).
pub async fn make_engine<F: NorFlash>(
    provisioned: &'static Provisioned<'static>,
    store: &mut Store<F>,
    seed: [u8; 32],
    rtc_unix: Option<u64>,
) -> Result<&'static Engine, BootError> {
    static TRUSTED: StaticCell<Trusted> = StaticCell::new();
    static PROXIES: StaticCell<Trusted> = StaticCell::new();
    static KEYS: StaticCell<SessionKeys> = StaticCell::new();
    static ENGINE: StaticCell<Engine> = StaticCell::new();

    let settings = &provisioned.settings;
    let trusted = Trusted::parse(settings.trusted_sources).map_err(|e| {
        error!("trusted_sources: {}", e);
        BootError::TrustedSources
    })?;
    let proxies = Trusted::parse(settings.trusted_proxies).map_err(|e| {
        error!("trusted_proxies: {}", e);
        BootError::TrustedProxies
    })?;
    info!(
        "trust: identity+forwarding [{}], forwarding only [{}]",
        settings.trusted_sources, settings.trusted_proxies
    );
    if trusted.trusts_everyone() {
        warn!(
            "WARNING: trusted_sources contains a catch-all network ({}): every client of that \
             address family can name its own user in the identity header and log in as anyone, \
             admin included. Only do this inside a closed network.",
            settings.trusted_sources
        );
    }
    let users = match store.load_users().await.map_err(BootError::Store)? {
        Some(users) => {
            info!("users: {} from the write-back store", users.len());
            users
        }
        None => {
            let users = UserTable::from_json(provisioned.users_json).map_err(|e| {
                error!("users JSON in the configuration region: {}", e);
                BootError::Users
            })?;
            info!("users: {} from the configuration region", users.len());
            users
        }
    };
    let mut drbg = Drbg::new(&seed);
    let key = store
        .session_key(|| {
            let mut key = [0u8; 32];
            drbg.fill(&mut key);
            key
        })
        .await
        .map_err(BootError::Store)?;
    let mut engine_seed = [0u8; 32];
    drbg.fill(&mut engine_seed);
    let stored_floor = store.load_time_floor().await.map_err(BootError::Store)?;
    let time_floor_unix = stored_floor.unwrap_or(0).max(settings.clock_unix);
    info!("time floor: {} (UNIX)", time_floor_unix);
    if rtc_unix.is_none() && settings.ntp_server.is_none() {
        warn!(
            "no real-time clock and no ntp_server: sessions stay off (HTTP Basic, app \
             passwords and Subsonic credentials still work)"
        );
    }

    let trusted = TRUSTED.try_init(trusted).ok_or(BootError::AlreadyStarted)?;
    let proxies = PROXIES.try_init(proxies).ok_or(BootError::AlreadyStarted)?;
    let keys = KEYS
        .try_init(SessionKeys::new(SessionKey::from_bytes(key)))
        .ok_or(BootError::AlreadyStarted)?;
    let engine = Engine::new(EngineParts {
        config: settings.gateway_config(),
        trusted,
        proxies,
        keys,
        users,
        seed: engine_seed,
        time_floor_unix,
        rtc_unix,
        ntp_server: settings.ntp_server,
        upstream: settings.upstream,
        listen_port: settings.listen_port,
        timeouts: settings.timeouts,
    });
    let engine: &'static Engine = ENGINE.try_init(engine).ok_or(BootError::AlreadyStarted)?;
    Ok(engine)
}
