//! The configuration region: what a board reads at boot from a fixed place in its flash,
//! written there at provisioning time (never compiled into the firmware image).
//!
//! # Layout (all integers little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `GHCF` |
//! | 4 | 2 | format version, [`REGION_FORMAT_VERSION`] |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 | length of the configuration JSON, `C` |
//! | 12 | 4 | length of the users JSON, `U` |
//! | 16 | 4 | CRC-32 (IEEE 802.3, as zlib's `crc32`) of the `C + U` bytes that follow |
//! | 20 | C | configuration JSON (below) |
//! | 20 + C | U | users JSON: `gatehouse_core::users`' format, the daemon's users file |
//!
//! A region that fails any check (magic, version, lengths, CRC, JSON) keeps the board from
//! serving: it never runs on a half-read configuration.
//!
//! # Configuration JSON
//!
//! Keys follow the daemon's configuration; unknown keys are an error. Only `upstream` is
//! required.
//!
//! ```json
//! {
//!   "upstream": "192.168.1.10:4533",
//!   "address": "192.168.1.80/24", "gateway": "192.168.1.1", "listen_port": 80,
//!   "trusted_sources": "192.168.1.2/32", "trusted_proxies": "192.168.1.3",
//!   "user_header": "Remote-User",
//!   "public_paths": ["/share/"], "subsonic_paths": ["/rest/"],
//!   "session_ttl_secs": 2592000, "secure_cookies": false, "logout_url": "/",
//!   "password_iterations": 10000, "clock_unix": 1767225600, "ntp_server": "192.168.1.1",
//!   "head_read_timeout_secs": 10, "idle_timeout_secs": 60, "upstream_connect_timeout_secs": 5
//! }
//! ```
//!
//! `ntp_server` (`A.B.C.D`, or `A.B.C.D:PORT` for a port other than 123) is the SNTP server
//! that gives a board the real time. Until a real-time clock or that server sets it, the time
//! is unknown and no session is issued or accepted (sessions need a true expiry; HTTP Basic,
//! app passwords and Subsonic credentials work regardless). `clock_unix` is a time the real
//! time is known not to be below (the provisioning time, say): the board counts from it, or
//! from the later floor it keeps in flash, until its clock is set, and refuses a clock source
//! that says otherwise. Strings are used as written: no JSON escapes.

use core::net::{Ipv4Addr, SocketAddrV4};

use embassy_net::{IpEndpoint, Ipv4Cidr};
use embassy_time::Duration;
use gatehouse_core::gateway::GatewayConfig;
use gatehouse_core::password::{EMBEDDED_ITERATIONS, MAX_ITERATIONS, MIN_ITERATIONS};
use serde::Deserialize;

use crate::connection::Timeouts;

/// `GHCF`: "gatehouse configuration".
pub const REGION_MAGIC: [u8; 4] = *b"GHCF";
/// The layout described in the module docs.
pub const REGION_FORMAT_VERSION: u16 = 1;
/// Bytes before the JSON documents.
pub const REGION_HEADER_LEN: usize = 20;
/// Largest region a board reserves (header and both documents).
pub const MAX_REGION_LEN: usize = 16 * 1024;
/// Entries of `public_paths` and of `subsonic_paths`.
pub const MAX_PATH_PREFIXES: usize = 8;

/// Why the configuration region cannot be used. Each variant names what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// No `GHCF` at the start: the region was never provisioned (or is erased).
    NotProvisioned,
    /// A format version this firmware does not read.
    UnsupportedVersion(u16),
    /// The lengths in the header run past the region.
    LengthsOutOfRange,
    /// The documents do not match their CRC: a torn or corrupted write.
    CrcMismatch { stored: u32, computed: u32 },
    /// The configuration JSON does not parse (or has an unknown key, or a string with
    /// escapes).
    InvalidJson,
    /// The configuration has no `upstream`.
    MissingUpstream,
    /// `upstream` is not `A.B.C.D:PORT` (optionally after `http://`).
    InvalidUpstream,
    /// `address` is not `A.B.C.D/LEN`.
    InvalidAddress,
    /// `gateway` is not `A.B.C.D`.
    InvalidGateway,
    /// `password_iterations` is out of the range core accepts.
    InvalidPasswordIterations,
    /// A timeout of 0 seconds, or of more than [`MAX_TIMEOUT_SECS`].
    InvalidTimeout,
    /// `user_header` is a header HTTP needs for itself, or not a header name
    /// ([`gatehouse_core::identity::validate_user_header`]).
    InvalidUserHeader,
    /// `clock_unix` lies beyond [`MAX_CLOCK_UNIX`] (the board's time would overflow).
    InvalidClock,
    /// `ntp_server` is not `A.B.C.D` or `A.B.C.D:PORT`.
    InvalidNtpServer,
}

/// Longest timeout a board takes, in seconds (a day): the board's timer counts in ticks, and
/// far larger values would overflow it.
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// Latest `clock_unix` a board takes: the end of the year 9999. The board's time is this plus
/// its uptime, and a session's expiry that plus the session lifetime; a value near `u64::MAX`
/// would overflow them.
pub const MAX_CLOCK_UNIX: u64 = 253_402_300_799;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig<'a> {
    #[serde(borrow, default)]
    upstream: Option<&'a str>,
    #[serde(borrow, default)]
    address: Option<&'a str>,
    #[serde(borrow, default)]
    gateway: Option<&'a str>,
    #[serde(default)]
    listen_port: Option<u16>,
    #[serde(borrow, default)]
    trusted_sources: Option<&'a str>,
    #[serde(borrow, default)]
    trusted_proxies: Option<&'a str>,
    #[serde(borrow, default)]
    user_header: Option<&'a str>,
    #[serde(borrow, default)]
    public_paths: Option<heapless::Vec<&'a str, MAX_PATH_PREFIXES>>,
    #[serde(borrow, default)]
    subsonic_paths: Option<heapless::Vec<&'a str, MAX_PATH_PREFIXES>>,
    #[serde(default)]
    session_ttl_secs: Option<u64>,
    #[serde(default)]
    secure_cookies: Option<bool>,
    #[serde(borrow, default)]
    logout_url: Option<&'a str>,
    #[serde(default)]
    password_iterations: Option<u32>,
    #[serde(default)]
    clock_unix: Option<u64>,
    #[serde(borrow, default)]
    ntp_server: Option<&'a str>,
    #[serde(default)]
    head_read_timeout_secs: Option<u64>,
    #[serde(default)]
    idle_timeout_secs: Option<u64>,
    #[serde(default)]
    upstream_connect_timeout_secs: Option<u64>,
}

/// A board's configuration, read from its region.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// The app behind the gateway.
    pub upstream: IpEndpoint,
    /// The board's own address (the board's default when absent).
    pub address: Option<Ipv4Cidr>,
    pub gateway: Option<Ipv4Addr>,
    pub listen_port: u16,
    /// The trusted-sources list (identity trust), parsed by core when the engine is made.
    pub trusted_sources: &'a str,
    /// The trusted-proxies list (forwarding trust only), parsed likewise.
    pub trusted_proxies: &'a str,
    pub user_header: &'a str,
    pub public_paths: heapless::Vec<&'a str, MAX_PATH_PREFIXES>,
    pub subsonic_paths: heapless::Vec<&'a str, MAX_PATH_PREFIXES>,
    pub session_ttl_secs: u64,
    pub secure_cookies: bool,
    pub logout_url: Option<&'a str>,
    pub password_iterations: u32,
    pub clock_unix: u64,
    /// The SNTP server that sets the clock.
    pub ntp_server: Option<SocketAddrV4>,
    pub timeouts: Timeouts,
}

impl<'a> Settings<'a> {
    /// The engine's view of these settings.
    pub fn gateway_config(&'a self) -> GatewayConfig<'a> {
        let defaults = GatewayConfig::DEFAULT;
        GatewayConfig {
            user_header: self.user_header,
            paths: gatehouse_core::http::PathRules {
                reserved: defaults.paths.reserved,
                public: &self.public_paths,
                subsonic: &self.subsonic_paths,
            },
            session_ttl_secs: self.session_ttl_secs,
            secure_cookies: self.secure_cookies,
            strip_authorization: defaults.strip_authorization,
            password_iterations: self.password_iterations,
            logout_url: self.logout_url,
            subsonic: defaults.subsonic,
            subsonic_policy: defaults.subsonic_policy,
            enable_user_editing: defaults.enable_user_editing,
            // Boards keep no counters: /_gatehouse/metrics is 404 for everyone.
            metrics_sources: defaults.metrics_sources,
        }
    }
}

/// A checked region: the settings and the provisioned users' JSON.
#[derive(Debug, Clone)]
pub struct Provisioned<'a> {
    pub settings: Settings<'a>,
    /// The users as provisioned (the write-back store may hold a newer table).
    pub users_json: &'a [u8],
    /// The region's CRC: names this provisioning, so that a newer one replaces write-backs
    /// made under an older one.
    pub region_crc: u32,
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks a region and reads its configuration.
pub fn parse_region(region: &[u8]) -> Result<Provisioned<'_>, ConfigError> {
    if region.len() < REGION_HEADER_LEN || region[..4] != REGION_MAGIC {
        return Err(ConfigError::NotProvisioned);
    }
    let version = le_u16(region, 4);
    if version != REGION_FORMAT_VERSION {
        return Err(ConfigError::UnsupportedVersion(version));
    }
    let config_len = le_u32(region, 8) as usize;
    let users_len = le_u32(region, 12) as usize;
    let stored = le_u32(region, 16);
    let end = config_len
        .checked_add(users_len)
        .and_then(|n| n.checked_add(REGION_HEADER_LEN))
        .filter(|&end| end <= region.len().min(MAX_REGION_LEN))
        .ok_or(ConfigError::LengthsOutOfRange)?;
    let documents = &region[REGION_HEADER_LEN..end];
    let computed = crc32(documents);
    if computed != stored {
        return Err(ConfigError::CrcMismatch { stored, computed });
    }
    let (config_json, users_json) = documents.split_at(config_len);
    Ok(Provisioned {
        settings: parse_settings(config_json)?,
        users_json,
        region_crc: stored,
    })
}

/// Reads the configuration JSON.
pub fn parse_settings(json: &[u8]) -> Result<Settings<'_>, ConfigError> {
    let (raw, _) =
        serde_json_core::from_slice::<RawConfig<'_>>(json).map_err(|_| ConfigError::InvalidJson)?;
    let upstream = raw.upstream.ok_or(ConfigError::MissingUpstream)?;
    let upstream = upstream.strip_prefix("http://").unwrap_or(upstream);
    let upstream: SocketAddrV4 = upstream
        .trim_end_matches('/')
        .parse()
        .map_err(|_| ConfigError::InvalidUpstream)?;
    let address = raw
        .address
        .map(|text| {
            let (ip, len) = text.split_once('/').ok_or(ConfigError::InvalidAddress)?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| ConfigError::InvalidAddress)?;
            let len: u8 = len
                .parse()
                .ok()
                .filter(|len| *len <= 32)
                .ok_or(ConfigError::InvalidAddress)?;
            Ok(Ipv4Cidr::new(ip, len))
        })
        .transpose()?;
    let gateway = raw
        .gateway
        .map(|text| text.parse().map_err(|_| ConfigError::InvalidGateway))
        .transpose()?;
    let ntp_server = raw
        .ntp_server
        .map(|text| match text.parse::<Ipv4Addr>() {
            Ok(ip) => Ok(SocketAddrV4::new(ip, crate::sntp::NTP_PORT)),
            Err(_) => text.parse().map_err(|_| ConfigError::InvalidNtpServer),
        })
        .transpose()?;
    let password_iterations = raw.password_iterations.unwrap_or(EMBEDDED_ITERATIONS);
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&password_iterations) {
        return Err(ConfigError::InvalidPasswordIterations);
    }
    let defaults = Timeouts::default();
    let secs = |value: Option<u64>, default: Duration| match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::InvalidTimeout),
        Some(s) if s > MAX_TIMEOUT_SECS => Err(ConfigError::InvalidTimeout),
        Some(s) => Ok(Duration::from_secs(s)),
    };
    let timeouts = Timeouts {
        head_read: secs(raw.head_read_timeout_secs, defaults.head_read)?,
        idle: secs(raw.idle_timeout_secs, defaults.idle)?,
        upstream_connect: secs(raw.upstream_connect_timeout_secs, defaults.upstream_connect)?,
    };
    let core_defaults = GatewayConfig::DEFAULT;
    let user_header = raw.user_header.unwrap_or(core_defaults.user_header);
    gatehouse_core::identity::validate_user_header(user_header)
        .map_err(|_| ConfigError::InvalidUserHeader)?;
    let clock_unix = raw.clock_unix.unwrap_or(0);
    if clock_unix > MAX_CLOCK_UNIX {
        return Err(ConfigError::InvalidClock);
    }
    let prefixes = |list: &[&'static str]| list.iter().copied().collect();
    Ok(Settings {
        upstream: IpEndpoint::new((*upstream.ip()).into(), upstream.port()),
        address,
        gateway,
        listen_port: raw.listen_port.unwrap_or(80),
        trusted_sources: raw.trusted_sources.unwrap_or(""),
        trusted_proxies: raw.trusted_proxies.unwrap_or(""),
        user_header,
        public_paths: raw
            .public_paths
            .unwrap_or_else(|| prefixes(core_defaults.paths.public)),
        subsonic_paths: raw
            .subsonic_paths
            .unwrap_or_else(|| prefixes(core_defaults.paths.subsonic)),
        session_ttl_secs: raw
            .session_ttl_secs
            .unwrap_or(core_defaults.session_ttl_secs),
        secure_cookies: raw.secure_cookies.unwrap_or(false),
        logout_url: raw.logout_url,
        password_iterations,
        clock_unix,
        ntp_server,
        timeouts,
    })
}

/// Writes a region (header and both documents) into `out`; returns its length. For
/// provisioning tools and tests.
pub fn write_region(config_json: &[u8], users_json: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = REGION_HEADER_LEN + config_json.len() + users_json.len();
    if len > out.len().min(MAX_REGION_LEN) {
        return None;
    }
    out[..4].copy_from_slice(&REGION_MAGIC);
    out[4..6].copy_from_slice(&REGION_FORMAT_VERSION.to_le_bytes());
    out[6..8].copy_from_slice(&[0, 0]);
    out[8..12].copy_from_slice(&(config_json.len() as u32).to_le_bytes());
    out[12..16].copy_from_slice(&(users_json.len() as u32).to_le_bytes());
    let body = &mut out[REGION_HEADER_LEN..len];
    body[..config_json.len()].copy_from_slice(config_json);
    body[config_json.len()..].copy_from_slice(users_json);
    let crc = crc32(body);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &[u8] = br#"{"upstream":"http://192.0.2.100:8080","address":"192.0.2.15/24","gateway":"192.0.2.2","trusted_sources":"192.0.2.0/24","trusted_proxies":"192.0.2.1","public_paths":["/share/","/pub/"],"idle_timeout_secs":30}"#;
    const USERS: &[u8] = br#"{"version":1,"users":[]}"#;

    fn region() -> Vec<u8> {
        let mut out = vec![0u8; 512];
        let len = write_region(CONFIG, USERS, &mut out).expect("fits");
        out.truncate(len);
        out
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn a_written_region_reads_back() {
        let region = region();
        let p = parse_region(&region).expect("valid");
        assert_eq!(p.users_json, USERS);
        let s = &p.settings;
        assert_eq!(
            s.upstream,
            IpEndpoint::new(Ipv4Addr::new(192, 0, 2, 100).into(), 8080)
        );
        assert_eq!(
            s.address,
            Some(Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 15), 24))
        );
        assert_eq!(s.gateway, Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(s.trusted_sources, "192.0.2.0/24");
        assert_eq!(s.trusted_proxies, "192.0.2.1");
        assert_eq!(&s.public_paths[..], &["/share/", "/pub/"]);
        assert_eq!(&s.subsonic_paths[..], &["/rest/"]);
        assert_eq!(s.user_header, "Remote-User");
        assert_eq!(s.timeouts.idle, Duration::from_secs(30));
        assert_eq!(s.password_iterations, EMBEDDED_ITERATIONS);
        assert_eq!(s.ntp_server, None);
        let config = s.gateway_config();
        assert_eq!(config.paths.public, &["/share/", "/pub/"]);
    }

    #[test]
    fn the_ntp_server_takes_port_123_unless_it_names_one() {
        for (json, expected) in [
            (
                &br#"{"upstream":"1.2.3.4:80","ntp_server":"192.0.2.1"}"#[..],
                SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 123),
            ),
            (
                br#"{"upstream":"1.2.3.4:80","ntp_server":"192.0.2.1:10123"}"#,
                SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 10123),
            ),
        ] {
            assert_eq!(
                parse_settings(json).expect("valid").ntp_server,
                Some(expected)
            );
        }
    }

    #[test]
    fn every_damaged_region_is_refused_by_name() {
        let good = region();
        assert_eq!(
            parse_region(&[0xff; 64]).unwrap_err(),
            ConfigError::NotProvisioned
        );
        let mut v2 = good.clone();
        v2[4] = 2;
        assert_eq!(
            parse_region(&v2).unwrap_err(),
            ConfigError::UnsupportedVersion(2)
        );
        let mut long = good.clone();
        long[8..12].copy_from_slice(&100_000u32.to_le_bytes());
        assert_eq!(
            parse_region(&long).unwrap_err(),
            ConfigError::LengthsOutOfRange
        );
        let mut torn = good.clone();
        let last = torn.len() - 1;
        torn[last] ^= 1;
        assert!(matches!(
            parse_region(&torn),
            Err(ConfigError::CrcMismatch { .. })
        ));
        assert_eq!(
            parse_region(&good[..good.len() - 1]).unwrap_err(),
            ConfigError::LengthsOutOfRange
        );
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        for (json, expected) in [
            (
                &br#"{"upstream":"1.2.3.4:80","colour":"red"}"#[..],
                ConfigError::InvalidJson,
            ),
            (
                br#"{"address":"192.0.2.15/24"}"#,
                ConfigError::MissingUpstream,
            ),
            (
                br#"{"upstream":"app.local:80"}"#,
                ConfigError::InvalidUpstream,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","address":"1.2.3.4/33"}"#,
                ConfigError::InvalidAddress,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","gateway":"1.2.3"}"#,
                ConfigError::InvalidGateway,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","password_iterations":1}"#,
                ConfigError::InvalidPasswordIterations,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","idle_timeout_secs":0}"#,
                ConfigError::InvalidTimeout,
            ),
            // Values whose ticks or time would overflow.
            (
                br#"{"upstream":"1.2.3.4:80","idle_timeout_secs":18446744073709551615}"#,
                ConfigError::InvalidTimeout,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","head_read_timeout_secs":86401}"#,
                ConfigError::InvalidTimeout,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","clock_unix":18446744073709551615}"#,
                ConfigError::InvalidClock,
            ),
            // A header HTTP needs cannot carry the user.
            (
                br#"{"upstream":"1.2.3.4:80","user_header":"Transfer-Encoding"}"#,
                ConfigError::InvalidUserHeader,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","user_header":"host"}"#,
                ConfigError::InvalidUserHeader,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","user_header":""}"#,
                ConfigError::InvalidUserHeader,
            ),
            (
                br#"{"upstream":"1.2.3.4:80","ntp_server":"pool.ntp.org"}"#,
                ConfigError::InvalidNtpServer,
            ),
        ] {
            assert_eq!(
                parse_settings(json).unwrap_err(),
                expected,
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }
}
