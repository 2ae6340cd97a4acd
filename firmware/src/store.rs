//! The write-back store: what the board learns while running and must keep across resets
//! (the users table once a user is provisioned from a trusted header, the session signing key),
//! in a flash range of its own, through [`sequential_storage`]'s key-value map.
//!
//! `sequential-storage` appends items with their own CRC and never erases the last good copy
//! of a key before the new one is complete, so a reset in the middle of a write leaves the
//! previous users table readable: the power-fail safety the board needs.
//!
//! The users record carries the CRC of the configuration region it grew from: after a new
//! provisioning (a new region), the provisioned users win over write-backs made under the old
//! one. What the board changed under the old region (a "log out everywhere", a password
//! change, a revoked app password) is then gone, and the session key stays: so every region
//! `gatehouse config-blob` writes has a users table id of its own, and the sessions of the
//! table the board held before are refused ([`gatehouse_core::session::SessionError::OtherTable`]).
//! The same region flashed again has the same CRC, and its write-backs are kept.
//!
//! The time floor is the board's time written every [`TIME_FLOOR_EVERY`] and soon after each
//! session it issues: after a reboot the real time is known not to be below it, so no clock
//! source can take the board back to a time when an expired session was still valid (see
//! [`crate::clock`]).

use embassy_futures::select::{Either3, select3};
use embassy_time::{Duration, Instant, Timer};
use embedded_storage_async::nor_flash::NorFlash;
use gatehouse_core::session::SESSION_KEY_LEN;
use gatehouse_core::users::{LoadError, UserTable};
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage, SerializationError, Value};

use crate::state::{Engine, MAX_APP_PASSWORDS, MAX_USERS, Users};

/// Map key of the users record.
const KEY_USERS: u8 = 1;
/// Map key of the session signing key.
const KEY_SESSION_KEY: u8 = 2;
/// Map key of the time floor (UNIX seconds, little-endian `u64`).
const KEY_TIME_FLOOR: u8 = 3;

/// How often the time floor is written while the board runs. A reboot loses at most this
/// much of the floor, which only matters while the time is unknown (no sessions then).
pub const TIME_FLOOR_EVERY: Duration = Duration::from_secs(600);
/// The shortest interval between two writes of the floor after sessions were issued (flash
/// wear: a burst of logins writes once).
pub const TIME_FLOOR_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Bytes a users record may take: the region CRC and the table's JSON.
pub const USERS_RECORD_LEN: usize = 4 + UserTable::<MAX_USERS, MAX_APP_PASSWORDS>::JSON_CAPACITY;
/// The work buffer the store needs (a record, its key and word alignment).
pub const STORE_BUFFER_LEN: usize = USERS_RECORD_LEN + 64;

/// Why the store could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreError {
    /// The flash failed, or the store's pages are corrupted or full.
    Flash,
    /// The stored users record is not a users table (never overwritten: the board stops).
    CorruptUsers,
    /// The stored session key has the wrong length.
    CorruptSessionKey,
    /// The stored time floor has the wrong length.
    CorruptTimeFloor,
    /// The users table does not fit the record.
    UsersTooLarge,
}

/// The users table as a map value, serialised straight into the store's buffer (under the
/// engine's lock, briefly) so that no second buffer of that size is needed.
struct UsersRecord<'e> {
    engine: &'e Engine,
    region_crc: u32,
}

impl<'a> Value<'a> for UsersRecord<'_> {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let (crc, json) = buffer
            .split_at_mut_checked(4)
            .ok_or(SerializationError::BufferTooSmall)?;
        crc.copy_from_slice(&self.region_crc.to_le_bytes());
        let len = self
            .engine
            .with_users(|users| users.to_json(json))
            .map_err(|_| SerializationError::BufferTooSmall)?;
        Ok(4 + len)
    }

    fn deserialize_from(_buffer: &'a [u8]) -> Result<(Self, usize), SerializationError> {
        // Records are read back as plain bytes (see `Store::load_users`).
        Err(SerializationError::InvalidFormat)
    }
}

/// The write-back store over a flash range.
pub struct Store<F: NorFlash> {
    map: MapStorage<u8, F, Cache<Uncached, Uncached, Uncached, u8>>,
    buffer: &'static mut [u8],
    region_crc: u32,
}

impl<F: NorFlash> Store<F> {
    /// A store over `flash[range]` (at least two erase pages, page-aligned), with a work
    /// buffer of [`STORE_BUFFER_LEN`] bytes, for the region whose CRC is `region_crc`.
    pub fn new(
        flash: F,
        range: core::ops::Range<u32>,
        buffer: &'static mut [u8],
        region_crc: u32,
    ) -> Option<Self> {
        let config = MapConfig::try_new(range).ok()?;
        Some(Self {
            map: MapStorage::new(flash, config, Cache::new_uncached()),
            buffer,
            region_crc,
        })
    }

    /// The users written back under the current region, if any.
    pub async fn load_users(&mut self) -> Result<Option<Users>, StoreError> {
        let record = self
            .map
            .fetch_item::<&[u8]>(self.buffer, &KEY_USERS)
            .await
            .map_err(|_| StoreError::Flash)?;
        let Some(record) = record else {
            return Ok(None);
        };
        let Some((crc, json)) = record.split_first_chunk::<4>() else {
            return Err(StoreError::CorruptUsers);
        };
        if u32::from_le_bytes(*crc) != self.region_crc {
            info!("the configuration region is newer than the stored users: using the region's");
            return Ok(None);
        }
        match UserTable::from_json(json) {
            Ok(users) => Ok(Some(users)),
            Err(e) => {
                let _: LoadError = e;
                Err(StoreError::CorruptUsers)
            }
        }
    }

    /// The session signing key, made with `fresh` and stored on first boot.
    pub async fn session_key(
        &mut self,
        fresh: impl FnOnce() -> [u8; SESSION_KEY_LEN],
    ) -> Result<[u8; SESSION_KEY_LEN], StoreError> {
        let stored = self
            .map
            .fetch_item::<&[u8]>(self.buffer, &KEY_SESSION_KEY)
            .await
            .map_err(|_| StoreError::Flash)?;
        if let Some(stored) = stored {
            return stored.try_into().map_err(|_| StoreError::CorruptSessionKey);
        }
        let key = fresh();
        self.map
            .store_item(self.buffer, &KEY_SESSION_KEY, &&key[..])
            .await
            .map_err(|_| StoreError::Flash)?;
        Ok(key)
    }

    /// The time floor written before the last reset, if any.
    pub async fn load_time_floor(&mut self) -> Result<Option<u64>, StoreError> {
        let stored = self
            .map
            .fetch_item::<&[u8]>(self.buffer, &KEY_TIME_FLOOR)
            .await
            .map_err(|_| StoreError::Flash)?;
        stored
            .map(|bytes| {
                bytes
                    .try_into()
                    .map(u64::from_le_bytes)
                    .map_err(|_| StoreError::CorruptTimeFloor)
            })
            .transpose()
    }

    /// Writes `unix` as the time floor.
    pub async fn save_time_floor(&mut self, unix: u64) -> Result<(), StoreError> {
        self.map
            .store_item(self.buffer, &KEY_TIME_FLOOR, &&unix.to_le_bytes()[..])
            .await
            .map_err(|_| StoreError::Flash)
    }

    /// Writes the engine's users table back.
    pub async fn save_users(&mut self, engine: &Engine) -> Result<(), StoreError> {
        let record = UsersRecord {
            engine,
            region_crc: self.region_crc,
        };
        self.map
            .store_item(self.buffer, &KEY_USERS, &record)
            .await
            .map_err(|e| match e {
                sequential_storage::Error::SerializationError(_) => StoreError::UsersTooLarge,
                _ => StoreError::Flash,
            })
    }

    /// Writes the users table back each time the engine changes it, and the time floor every
    /// [`TIME_FLOOR_EVERY`] and after sessions are issued. Runs forever (the board spawns it as
    /// a task).
    pub async fn run(mut self, engine: &'static Engine) -> ! {
        let mut floor_written = Instant::now();
        let mut floor_due = floor_written + TIME_FLOOR_EVERY;
        loop {
            match select3(
                engine.users_changed.wait(),
                engine.session_issued.wait(),
                Timer::at(floor_due),
            )
            .await
            {
                Either3::First(()) => match self.save_users(engine).await {
                    Ok(()) => info!("users written back to flash"),
                    Err(e) => error!("writing the users back failed: {:?}", e),
                },
                // Soon, not at once: the sessions of a burst of logins share one write.
                Either3::Second(()) => {
                    floor_due = floor_due.min(floor_written + TIME_FLOOR_MIN_INTERVAL);
                }
                Either3::Third(()) => {
                    let now = engine.now().unix;
                    match self.save_time_floor(now).await {
                        Ok(()) => info!("time floor {} (UNIX) written to flash", now),
                        Err(e) => error!("writing the time floor failed: {:?}", e),
                    }
                    floor_written = Instant::now();
                    floor_due = floor_written + TIME_FLOOR_EVERY;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Timeouts;
    use crate::ram_flash::{RAM_FLASH_PAGE, RamFlash};
    use crate::state::{EngineParts, Trusted};
    use embassy_futures::block_on;
    use embassy_net::{IpAddress, IpEndpoint};
    use gatehouse_core::gateway::GatewayConfig;
    use gatehouse_core::password::{MIN_ITERATIONS, hash_password};
    use gatehouse_core::session::{SessionKey, SessionKeys};

    const PAGES: usize = 4;

    fn engine_with(names: &[&str]) -> &'static Engine {
        let mut users = Users::new();
        for name in names {
            let hash = hash_password(b"pw", &[1; 16], MIN_ITERATIONS).expect("hash");
            users.add(name, false, hash).expect("add");
        }
        Box::leak(Box::new(Engine::new(EngineParts {
            config: GatewayConfig::DEFAULT,
            trusted: Box::leak(Box::new(Trusted::parse("").expect("empty"))),
            proxies: Box::leak(Box::new(Trusted::new())),
            keys: Box::leak(Box::new(SessionKeys::new(SessionKey::from_bytes([0; 32])))),
            users,
            seed: [0; 32],
            time_floor_unix: 0,
            rtc_unix: None,
            ntp_server: None,
            upstream: IpEndpoint::new(IpAddress::v4(127, 0, 0, 1), 1),
            listen_port: 80,
            timeouts: Timeouts::default(),
        })))
    }

    fn store(memory: &mut [u8], region_crc: u32) -> Store<RamFlash<'_>> {
        cut_store(memory, region_crc, None)
    }

    fn cut_store(memory: &mut [u8], region_crc: u32, cut: Option<usize>) -> Store<RamFlash<'_>> {
        let buffer = Box::leak(vec![0u8; STORE_BUFFER_LEN].into_boxed_slice());
        let len = memory.len() as u32;
        let mut flash = RamFlash::new(memory);
        flash.writes_left = cut;
        Store::new(flash, 0..len, buffer, region_crc).expect("store config")
    }

    fn names(users: &Users) -> Vec<String> {
        users.iter().map(|u| u.name.to_string()).collect()
    }

    #[test]
    fn users_written_back_are_read_back_under_the_same_region_only() {
        let mut memory = vec![0xffu8; PAGES * RAM_FLASH_PAGE];
        block_on(store(&mut memory, 7).save_users(engine_with(&["alice", "bob"]))).expect("save");
        let loaded = block_on(store(&mut memory, 7).load_users()).expect("load");
        assert_eq!(names(&loaded.expect("stored")), ["alice", "bob"]);
        let newer_region = block_on(store(&mut memory, 8).load_users()).expect("load");
        assert!(newer_region.is_none());
    }

    #[test]
    fn a_write_cut_short_leaves_the_previous_users_readable() {
        let mut memory = vec![0xffu8; PAGES * RAM_FLASH_PAGE];
        block_on(store(&mut memory, 7).save_users(engine_with(&["alice"]))).expect("save");
        for cut_after in [0, 1, 7, 40, 100, 300] {
            let mut copy = memory.clone();
            {
                let mut torn = cut_store(&mut copy, 7, Some(cut_after));
                assert!(block_on(torn.save_users(engine_with(&["alice", "mallory"]))).is_err());
            }
            let loaded = block_on(store(&mut copy, 7).load_users()).expect("load after cut");
            assert_eq!(
                names(&loaded.expect("previous table")),
                ["alice"],
                "cut after {cut_after}"
            );
        }
    }

    #[test]
    fn the_time_floor_is_kept_and_the_last_one_wins() {
        let mut memory = vec![0xffu8; PAGES * RAM_FLASH_PAGE];
        assert_eq!(block_on(store(&mut memory, 1).load_time_floor()), Ok(None));
        block_on(store(&mut memory, 1).save_time_floor(1_800_000_000)).expect("save");
        block_on(store(&mut memory, 1).save_time_floor(1_800_000_600)).expect("save");
        // A new provisioning does not take the floor back: time never goes backwards.
        assert_eq!(
            block_on(store(&mut memory, 2).load_time_floor()),
            Ok(Some(1_800_000_600))
        );
    }

    #[test]
    fn the_session_key_is_made_once_and_then_kept() {
        let mut memory = vec![0xffu8; PAGES * RAM_FLASH_PAGE];
        let first = block_on(store(&mut memory, 1).session_key(|| [5; 32])).expect("key");
        let again = block_on(store(&mut memory, 1).session_key(|| [6; 32])).expect("key");
        assert_eq!(first, [5; 32]);
        assert_eq!(again, [5; 32]);
    }
}
