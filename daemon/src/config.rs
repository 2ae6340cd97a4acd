//! The configuration: one TOML file, `GATEHOUSE_<KEY>` environment variables and flags,
//! checked in one place.
//!
//! Precedence, highest first: flags, environment, file, defaults. Every value is checked
//! before any socket opens; an unknown key or a bad value stops gatehouse with an error that
//! names the key, the value and where it came from (exit code 2). A gateway that starts with a
//! half-understood configuration is worse than one that does not start.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{FlagValue, SettingFlags};

/// Most entries a trusted-sources (or trusted-proxies) list may hold.
pub const TRUSTED_SOURCES_CAPACITY: usize = 64;

/// Most event-loop threads `workers` may ask for.
pub const MAX_WORKERS: usize = 256;

/// A parsed trusted-sources list (core's type, at the daemon's capacity).
pub type TrustedList = gatehouse_core::trusted::TrustedSources<TRUSTED_SOURCES_CAPACITY>;

/// Where a value came from, so an error can say where to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "in {}", p.display()),
            Origin::Env(v) => write!(f, "from environment variable {v}"),
            Origin::Flag(flag) => write!(f, "from flag {flag}"),
        }
    }
}

/// A configuration that cannot be used: the key, the value, where it came from and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("unknown configuration key `{key}` {origin}{hint}")]
    UnknownKey {
        key: String,
        origin: Origin,
        hint: String,
    },
    #[error("bad value for `{key}` {origin}: {value}: {reason}")]
    BadValue {
        key: String,
        value: String,
        origin: Origin,
        reason: String,
    },
    #[error("{0}")]
    Conflict(String),
}

/// Every key gatehouse knows, in the spelling of the file; flags use `-` for `_`, the
/// environment `GATEHOUSE_` plus the key in capitals.
pub const KEYS: &[&str] = &[
    "listen",
    "upstream",
    "state_dir",
    "tls_cert",
    "tls_key",
    "trusted_sources",
    "trusted_proxies",
    "user_header",
    "public_paths",
    "subsonic_paths",
    "subsonic",
    "session_ttl",
    "enable_user_editing",
    "logout_url",
    "max_connections",
    "workers",
    "head_read_timeout",
    "idle_timeout",
    "upstream_connect_timeout",
    "shutdown_timeout",
    "unix_socket_mode",
    "password_iterations",
    "secure_cookies",
    "metrics_sources",
];

/// Navidrome's names for the same settings, accepted in the file so a Navidrome
/// configuration can be copied over; each use logs a note with gatehouse's name.
const NAVIDROME_ALIASES: &[(&str, &str)] = &[
    ("ReverseProxyWhitelist", "trusted_sources"),
    ("ReverseProxyUserHeader", "user_header"),
    ("ExtAuth.TrustedSources", "trusted_sources"),
    ("ExtAuth.UserHeader", "user_header"),
];

/// Where gatehouse accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Where the app is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    /// `http://host:port`: `host_port` is resolved at each new connection (so a container
    /// name works), `authority` is what the app is told in `X-Forwarded-Host` and friends.
    Tcp {
        host_port: String,
    },
    Unix(PathBuf),
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAddr::Tcp { host_port } => write!(f, "http://{host_port}"),
            UpstreamAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// TLS certificate and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A checked configuration: every field holds a usable value.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<ListenAddr>,
    pub upstream: UpstreamAddr,
    pub state_dir: PathBuf,
    pub tls: Option<TlsFiles>,
    /// Identity trust: the trusted-sources list as written (checked by core when the gateway
    /// is built). A peer on it names its user in the identity header.
    pub trusted_sources: String,
    /// Forwarding trust only: the trusted-proxies list as written. A peer on it is believed
    /// about the client's address and the original request (`X-Forwarded-For`,
    /// `X-Forwarded-Host`, the forward-auth headers), never about who the user is.
    pub trusted_proxies: String,
    /// Who may read `/_gatehouse/metrics` (checked by core like `trusted_sources`); empty:
    /// nobody.
    pub metrics_sources: String,
    pub user_header: String,
    pub public_paths: Vec<String>,
    pub subsonic_paths: Vec<String>,
    /// Who checks Subsonic credentials: gatehouse (`authenticate`) or the app
    /// (`pass-through`).
    pub subsonic: gatehouse_core::gateway::SubsonicMode,
    pub session_ttl: Duration,
    pub enable_user_editing: bool,
    pub logout_url: Option<String>,
    pub max_connections: usize,
    /// Event-loop threads serving connections; `None` (`"auto"`) is one per CPU.
    pub workers: Option<usize>,
    pub head_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub unix_socket_mode: u32,
    /// PBKDF2 iterations for new password hashes (and the dummy hash that makes an unknown
    /// user cost as much as a wrong password).
    pub password_iterations: u32,
    /// Mark cookies `Secure` even on plain HTTP, for a gatehouse behind a proxy that
    /// terminates TLS (they always are on gatehouse's own TLS listeners).
    pub secure_cookies: bool,
    /// Things to say once at start-up (Navidrome names used, risky settings).
    pub notes: Vec<String>,
}

impl Config {
    /// The defaults, with the state directory systemd gives (`$STATE_DIRECTORY`) or
    /// `./gatehouse-state`.
    pub fn defaults() -> Config {
        Config {
            listen: vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080)))],
            upstream: UpstreamAddr::Tcp {
                host_port: "127.0.0.1:4533".into(),
            },
            state_dir: default_state_dir(),
            tls: None,
            trusted_sources: String::new(),
            trusted_proxies: String::new(),
            metrics_sources: String::new(),
            user_header: "Remote-User".into(),
            public_paths: vec!["/share/".into()],
            subsonic_paths: vec!["/rest/".into()],
            subsonic: gatehouse_core::gateway::SubsonicMode::Authenticate,
            session_ttl: Duration::from_secs(7 * 86_400),
            enable_user_editing: true,
            logout_url: None,
            max_connections: 4096,
            workers: None,
            head_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            upstream_connect_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            unix_socket_mode: 0o660,
            password_iterations: gatehouse_core::password::RECOMMENDED_ITERATIONS,
            secure_cookies: false,
            notes: Vec::new(),
        }
    }

    /// Loads and checks the configuration from the file (if any), the process environment
    /// and the flags.
    pub fn load(file: Option<&Path>, flags: &SettingFlags) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::load_from(file, &env, flags)
    }

    /// [`Config::load`] with the environment given, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &SettingFlags,
    ) -> Result<Config, ConfigError> {
        let mut raw: BTreeMap<&'static str, (Raw, Origin)> = BTreeMap::new();
        let mut notes = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            read_file(path, &text, &mut raw, &mut notes)?;
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("GATEHOUSE_") else {
                continue;
            };
            if rest == "CONFIG" {
                continue;
            }
            let lower = rest.to_ascii_lowercase();
            let origin = Origin::Env(name.clone());
            let key = known_key(&lower).ok_or_else(|| ConfigError::UnknownKey {
                key: lower.clone(),
                origin: origin.clone(),
                hint: suggestion(&lower),
            })?;
            raw.insert(key, (Raw::Text(value.clone()), origin));
        }
        for (key, value) in flags.given() {
            let origin = Origin::Flag(format!("--{}", key.replace('_', "-")));
            let raw_value = match value {
                FlagValue::One(v) => Raw::Text(v),
                FlagValue::List(v) => Raw::TextList(v),
            };
            raw.insert(key, (raw_value, origin));
        }
        let mut config = Config::defaults();
        for (key, (value, origin)) in raw {
            apply(&mut config, key, value, origin)?;
        }
        config.notes.splice(0..0, notes);
        config.check_combinations()?;
        Ok(config)
    }

    fn check_combinations(&mut self) -> Result<(), ConfigError> {
        if let Some(tls) = &self.tls
            && (tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty())
        {
            {
                return Err(ConfigError::Conflict(
                    "`tls_cert` and `tls_key` go together: set both to serve HTTPS, or neither"
                        .into(),
                ));
            }
        }
        for addr in &self.listen {
            if let (ListenAddr::Unix(l), UpstreamAddr::Unix(u)) = (addr, &self.upstream)
                && l == u
            {
                {
                    return Err(ConfigError::Conflict(format!(
                        "`listen` and `upstream` are the same socket {}: gatehouse would \
                         forward to itself",
                        l.display()
                    )));
                }
            }
        }
        if self.unix_socket_mode & 0o002 != 0
            && self.listen.iter().any(|l| matches!(l, ListenAddr::Unix(_)))
        {
            self.notes.push(format!(
                "WARNING: unix_socket_mode {:04o} lets every local user write to the socket; \
                 a peer on it is the `@` trusted source",
                self.unix_socket_mode
            ));
        }
        Ok(())
    }
}

impl Config {
    /// One line per entry of `trusted_sources` and `trusted_proxies` saying which trust it
    /// gives, for the start-up log and `gatehouse check`; one line when both are empty.
    pub fn trust_summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (key, trust, list) in [
            (
                "trusted_sources",
                "identity+forwarding",
                &self.trusted_sources,
            ),
            ("trusted_proxies", "forwarding only", &self.trusted_proxies),
        ] {
            // Both lists were checked when the configuration was loaded.
            let Ok(parsed) = TrustedList::parse(list) else {
                continue;
            };
            for (i, entry) in parsed.entries().iter().enumerate() {
                lines.push(format!("{key} entry {} {entry}: {trust}", i + 1));
            }
        }
        if lines.is_empty() {
            lines.push(
                "trusted_sources and trusted_proxies are empty: no peer's identity header or \
                 X-Forwarded-* is believed"
                    .to_owned(),
            );
        }
        lines
    }
}

fn default_state_dir() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd passes a colon-separated list when several are configured; the first is ours.
        Some(v) if !v.is_empty() => {
            let s = v.to_string_lossy();
            PathBuf::from(s.split(':').next().unwrap_or_default())
        }
        _ => PathBuf::from("./gatehouse-state"),
    }
}

/// A value before it is checked: from the file (typed TOML) or text (environment, flags).
#[derive(Debug, Clone)]
enum Raw {
    Toml(toml::Value),
    Text(String),
    TextList(Vec<String>),
}

impl Raw {
    fn shown(&self) -> String {
        match self {
            Raw::Toml(v) => v.to_string(),
            Raw::Text(s) => format!("{s:?}"),
            Raw::TextList(v) => format!("{v:?}"),
        }
    }
}

fn known_key(name: &str) -> Option<&'static str> {
    KEYS.iter().copied().find(|k| *k == name)
}

fn suggestion(name: &str) -> String {
    let flat = name.replace(['-', '.'], "_").to_ascii_lowercase();
    if let Some(k) = KEYS.iter().find(|k| **k == flat) {
        return format!(" (did you mean `{k}`?)");
    }
    for (alias, key) in NAVIDROME_ALIASES {
        if alias.eq_ignore_ascii_case(name) || alias.replace('.', "_").eq_ignore_ascii_case(name) {
            return format!(" (gatehouse calls it `{key}`)");
        }
    }
    let close = KEYS
        .iter()
        .copied()
        .map(|k| (edit_distance(k, &flat), k))
        .filter(|(d, k)| {
            *d <= 2 || k.contains(flat.as_str()) || (flat.len() > 3 && flat.contains(*k))
        })
        .min();
    match close {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => format!("; known keys: {}", KEYS.join(", ")),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn read_file(
    path: &Path,
    text: &str,
    raw: &mut BTreeMap<&'static str, (Raw, Origin)>,
    notes: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let origin = Origin::File(path.to_owned());
    let mut flat: Vec<(String, toml::Value)> = Vec::new();
    for (k, v) in table {
        match (k.as_str(), v) {
            ("ExtAuth", toml::Value::Table(inner)) => {
                for (ik, iv) in inner {
                    flat.push((format!("ExtAuth.{ik}"), iv));
                }
            }
            (_, v) => flat.push((k, v)),
        }
    }
    let mut seen_via: BTreeMap<&'static str, String> = BTreeMap::new();
    for (name, value) in flat {
        let key = if let Some(k) = known_key(&name) {
            k
        } else if let Some((alias, k)) = NAVIDROME_ALIASES.iter().find(|(a, _)| *a == name) {
            notes.push(format!(
                "note: `{alias}` is Navidrome's name for this setting; gatehouse reads it as \
                 `{k}` (write `{k}` to silence this note)"
            ));
            k
        } else {
            return Err(ConfigError::UnknownKey {
                hint: suggestion(&name),
                key: name,
                origin: origin.clone(),
            });
        };
        if let Some(first) = seen_via.insert(key, name.clone()) {
            return Err(ConfigError::Conflict(format!(
                "`{first}` and `{name}` both set `{key}` in {}: keep one",
                path.display()
            )));
        }
        raw.insert(key, (Raw::Toml(value), origin.clone()));
    }
    Ok(())
}

fn apply(
    config: &mut Config,
    key: &'static str,
    value: Raw,
    origin: Origin,
) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::BadValue {
        key: key.to_owned(),
        value: value.shown(),
        origin: origin.clone(),
        reason: reason.to_owned(),
    };
    match key {
        "listen" => {
            let items =
                as_list(&value).ok_or_else(|| bad("expected an address or a list of addresses"))?;
            if items.is_empty() {
                return Err(bad("at least one address is needed"));
            }
            let mut out = Vec::new();
            for item in items {
                out.push(parse_listen(&item).map_err(|r| bad(&format!("`{item}`: {r}")))?);
            }
            config.listen = out;
        }
        "upstream" => {
            let s = as_text(&value).ok_or_else(|| bad("expected text"))?;
            config.upstream = parse_upstream(&s).map_err(|r| bad(&r))?;
        }
        "state_dir" => {
            let s = as_text(&value).ok_or_else(|| bad("expected a directory path"))?;
            if s.trim().is_empty() {
                return Err(bad("must not be empty"));
            }
            config.state_dir = PathBuf::from(s);
        }
        "tls_cert" | "tls_key" => {
            let s = as_text(&value).ok_or_else(|| bad("expected a file path"))?;
            if s.trim().is_empty() {
                return Err(bad("must not be empty"));
            }
            let tls = config.tls.get_or_insert_with(|| TlsFiles {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            });
            if key == "tls_cert" {
                tls.cert = PathBuf::from(s);
            } else {
                tls.key = PathBuf::from(s);
            }
        }
        "trusted_sources" => {
            let items = as_list(&value).ok_or_else(|| bad("expected a comma-separated list"))?;
            let list = items.join(",");
            let parsed = TrustedList::parse(&list).map_err(|e| bad(&e.to_string()))?;
            if parsed.trusts_everyone() {
                config.notes.push(format!(
                    "WARNING: trusted_sources contains a catch-all network ({parsed}): every \
                     client of that address family can name its own user in the identity \
                     header and log in as anyone, admin included. Only do this inside a \
                     closed network."
                ));
            }
            config.trusted_sources = list;
        }
        "trusted_proxies" => {
            let items = as_list(&value).ok_or_else(|| bad("expected a comma-separated list"))?;
            let list = items.join(",");
            let parsed = TrustedList::parse(&list).map_err(|e| bad(&e.to_string()))?;
            if parsed.trusts_everyone() {
                config.notes.push(format!(
                    "WARNING: trusted_proxies contains a catch-all network ({parsed}): every \
                     client of that address family can say which address it comes from and \
                     so escape the login throttle. Only do this inside a closed network."
                ));
            }
            config.trusted_proxies = list;
        }
        "metrics_sources" => {
            let items = as_list(&value).ok_or_else(|| bad("expected a comma-separated list"))?;
            let list = items.join(",");
            gatehouse_core::gateway::MetricsSources::parse(&list)
                .map_err(|e| bad(&e.to_string()))?;
            config.metrics_sources = list;
        }
        "user_header" => {
            let s = as_text(&value).ok_or_else(|| bad("expected a header name"))?;
            let s = s.trim().to_owned();
            if s.is_empty() || s.len() > 64 || !s.bytes().all(is_token_byte) {
                return Err(bad("not a header name (letters, digits and - only)"));
            }
            gatehouse_core::identity::validate_user_header(&s).map_err(|e| bad(&e.to_string()))?;
            config.user_header = s;
        }
        "public_paths" | "subsonic_paths" => {
            let items = as_list(&value).ok_or_else(|| bad("expected a list of path prefixes"))?;
            for p in &items {
                if !p.starts_with('/') || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                    return Err(bad(&format!("`{p}` is not a path prefix starting with /")));
                }
            }
            if key == "public_paths" {
                config.public_paths = items;
            } else {
                config.subsonic_paths = items;
            }
        }
        "session_ttl"
        | "head_read_timeout"
        | "idle_timeout"
        | "upstream_connect_timeout"
        | "shutdown_timeout" => {
            let d = as_duration(&value).map_err(|r| bad(&r))?;
            if d.is_zero() {
                return Err(bad("must be more than zero"));
            }
            if key == "session_ttl" && d > Duration::from_secs(400 * 86_400) {
                return Err(bad("longer than 400 days (browsers cap cookies there)"));
            }
            let slot = match key {
                "session_ttl" => &mut config.session_ttl,
                "head_read_timeout" => &mut config.head_read_timeout,
                "idle_timeout" => &mut config.idle_timeout,
                "upstream_connect_timeout" => &mut config.upstream_connect_timeout,
                _ => &mut config.shutdown_timeout,
            };
            *slot = d;
        }
        "secure_cookies" => {
            config.secure_cookies = as_bool(&value).ok_or_else(|| bad("expected true or false"))?;
        }
        "subsonic" => {
            use gatehouse_core::gateway::SubsonicMode;
            config.subsonic = match as_text(&value).as_deref().map(str::trim) {
                Some("authenticate") => SubsonicMode::Authenticate,
                Some("pass-through") => SubsonicMode::PassThrough,
                _ => return Err(bad("expected \"authenticate\" or \"pass-through\"")),
            };
        }
        "enable_user_editing" => {
            config.enable_user_editing =
                as_bool(&value).ok_or_else(|| bad("expected true or false"))?;
        }
        "logout_url" => {
            let s = as_text(&value).ok_or_else(|| bad("expected a URL"))?;
            let ok = (s.starts_with("https://") || s.starts_with("http://") || s.starts_with('/'))
                && !s.bytes().any(|b| b.is_ascii_control() || b == b' ');
            if !ok {
                return Err(bad("expected an http(s):// URL or a path starting with /"));
            }
            config.logout_url = Some(s);
        }
        "max_connections" => {
            let n = as_int(&value).ok_or_else(|| bad("expected a whole number"))?;
            if !(1..=1_000_000).contains(&n) {
                return Err(bad("must be between 1 and 1000000"));
            }
            config.max_connections = n as usize;
        }
        "workers" => {
            if as_text(&value).is_some_and(|s| s.trim() == "auto") {
                config.workers = None;
            } else {
                let n = as_int(&value)
                    .ok_or_else(|| bad("expected a whole number or \"auto\" (one per CPU)"))?;
                if !(1..=MAX_WORKERS as i64).contains(&n) {
                    return Err(bad(&format!(
                        "must be between 1 and {MAX_WORKERS}, or \"auto\""
                    )));
                }
                config.workers = Some(n as usize);
            }
        }
        "unix_socket_mode" => {
            let s = match &value {
                Raw::Toml(toml::Value::Integer(_)) => {
                    return Err(bad("write the mode as an octal string, e.g. \"0660\""));
                }
                other => {
                    as_text(other).ok_or_else(|| bad("expected an octal mode like \"0660\""))?
                }
            };
            let mode = u32::from_str_radix(s.trim().trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| bad("expected an octal mode like \"0660\""))?;
            if mode & 0o600 != 0o600 {
                return Err(bad("the owner needs read and write (0600 at least)"));
            }
            config.unix_socket_mode = mode;
        }
        "password_iterations" => {
            use gatehouse_core::password::{MAX_ITERATIONS, MIN_ITERATIONS};
            let n = as_int(&value).ok_or_else(|| bad("expected a whole number"))?;
            if !(i64::from(MIN_ITERATIONS)..=i64::from(MAX_ITERATIONS)).contains(&n) {
                return Err(bad(&format!(
                    "must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
                )));
            }
            config.password_iterations = n as u32;
        }
        _ => unreachable!("every key in KEYS is handled"),
    }
    Ok(())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn as_text(v: &Raw) -> Option<String> {
    match v {
        Raw::Toml(toml::Value::String(s)) => Some(s.clone()),
        Raw::Text(s) => Some(s.clone()),
        _ => None,
    }
}

/// A list from a TOML array, or comma-separated text (also accepted in the file, since
/// Navidrome writes its lists that way).
fn as_list(v: &Raw) -> Option<Vec<String>> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match v {
        Raw::Toml(toml::Value::String(s)) | Raw::Text(s) => Some(split(s)),
        Raw::Toml(toml::Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(|s| s.trim().to_owned()))
            .collect(),
        Raw::TextList(items) => Some(items.iter().flat_map(|s| split(s)).collect()),
        _ => None,
    }
}

fn as_bool(v: &Raw) -> Option<bool> {
    match v {
        Raw::Toml(toml::Value::Boolean(b)) => Some(*b),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn as_int(v: &Raw) -> Option<i64> {
    match v {
        Raw::Toml(toml::Value::Integer(i)) => Some(*i),
        Raw::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_duration(v: &Raw) -> Result<Duration, String> {
    match v {
        Raw::Toml(toml::Value::Integer(i)) => u64::try_from(*i)
            .map(Duration::from_secs)
            .map_err(|_| "must not be negative".into()),
        Raw::Toml(toml::Value::String(s)) | Raw::Text(s) => parse_duration(s),
        _ => Err("expected seconds or a duration like \"30s\", \"5m\", \"12h\", \"7d\"".into()),
    }
}

/// `90`, `90s`, `5m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let hint = || "expected seconds or a duration like \"30s\", \"5m\", \"12h\", \"7d\"".to_owned();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| hint())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(hint()),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(hint)
}

fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(
                "a UNIX socket needs a path, e.g. unix:/run/gatehouse/gatehouse.sock".into(),
            );
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    s.parse::<SocketAddr>()
        .map(ListenAddr::Tcp)
        .map_err(|_| "expected ip:port, [v6]:port or unix:/path".into())
}

fn parse_upstream(s: &str) -> Result<UpstreamAddr, String> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("unix:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(
                "a UNIX socket needs a path, e.g. unix:/run/navidrome/navidrome.sock".into(),
            );
        }
        return Ok(UpstreamAddr::Unix(PathBuf::from(path)));
    }
    if s.starts_with("https://") {
        return Err(
            "gatehouse speaks plain HTTP to the app: run the app on loopback or a UNIX socket \
             and use http:// or unix:"
                .into(),
        );
    }
    let rest = s
        .strip_prefix("http://")
        .ok_or("expected http://host:port or unix:/path")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(
            "expected http://host:port with no path (gatehouse forwards paths as they are)".into(),
        );
    }
    let host_port = if authority.starts_with('[') {
        if authority.ends_with(']') {
            format!("{authority}:80")
        } else {
            authority.to_owned()
        }
    } else if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let port_ok = host_port
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_some_and(|p| p != 0);
    if !port_ok {
        return Err("the port is not a number between 1 and 65535".into());
    }
    Ok(UpstreamAddr::Tcp { host_port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    fn load(text: &str, env: &[(&str, &str)], flags: SettingFlags) -> Result<Config, ConfigError> {
        let f = file(text);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load_from(Some(f.path()), &env, &flags)
    }

    #[test]
    fn defaults_are_navidromes_upstream_and_loopback() {
        let c = load("", &[], SettingFlags::default()).expect("empty file is fine");
        assert_eq!(c.upstream.to_string(), "http://127.0.0.1:4533");
        assert_eq!(
            c.listen,
            vec![ListenAddr::Tcp("127.0.0.1:8080".parse().expect("addr"))]
        );
        assert_eq!(c.public_paths, vec!["/share/"]);
        assert_eq!(c.subsonic_paths, vec!["/rest/"]);
        assert_eq!(c.unix_socket_mode, 0o660);
        assert!(c.enable_user_editing);
        assert_eq!(c.trusted_sources, "");
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file() {
        let text = "upstream = \"http://10.0.0.1:1\"\nsession_ttl = \"1h\"\nidle_timeout = 5\n";
        let env = [
            ("GATEHOUSE_UPSTREAM", "http://10.0.0.2:2"),
            ("GATEHOUSE_SESSION_TTL", "2h"),
        ];
        let flags = SettingFlags {
            upstream: Some("unix:/run/app.sock".into()),
            ..Default::default()
        };
        let c = load(text, &env, flags).expect("valid");
        assert_eq!(c.upstream, UpstreamAddr::Unix("/run/app.sock".into()));
        assert_eq!(c.session_ttl, Duration::from_secs(7200));
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
    }

    #[test]
    fn workers_is_a_count_or_auto_from_any_source() {
        assert_eq!(
            load("", &[], SettingFlags::default())
                .expect("valid")
                .workers,
            None
        );
        let c = load("workers = 3\n", &[], SettingFlags::default()).expect("valid");
        assert_eq!(c.workers, Some(3));
        let c = load(
            "workers = 3\n",
            &[("GATEHOUSE_WORKERS", "auto")],
            SettingFlags::default(),
        )
        .expect("valid");
        assert_eq!(c.workers, None);
        let flags = SettingFlags {
            workers: Some("1".into()),
            ..Default::default()
        };
        assert_eq!(
            load("workers = \"auto\"\n", &[], flags)
                .expect("valid")
                .workers,
            Some(1)
        );
        for bad in [
            "workers = 0\n",
            "workers = \"many\"\n",
            "workers = 100000\n",
        ] {
            let err = load(bad, &[], SettingFlags::default()).expect_err(bad);
            assert!(err.to_string().contains("`workers`"), "{err}");
        }
    }

    #[test]
    fn an_unknown_key_is_named_with_where_it_came_from() {
        let err = load("listen_on = \"x\"\n", &[], SettingFlags::default()).expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.contains("`listen_on`"), "{msg}");
        assert!(msg.contains("did you mean `listen`"), "{msg}");
        let err = load("", &[("GATEHOUSE_UPSTREEM", "x")], SettingFlags::default())
            .expect_err("unknown env");
        assert!(err.to_string().contains("GATEHOUSE_UPSTREEM"), "{err}");
    }

    #[test]
    fn a_bad_value_is_named_with_its_key_and_value() {
        let err = load("session_ttl = \"7x\"\n", &[], SettingFlags::default()).expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("`session_ttl`") && msg.contains("7x"), "{msg}");
        let err = load(
            "",
            &[("GATEHOUSE_MAX_CONNECTIONS", "lots")],
            SettingFlags::default(),
        )
        .expect_err("bad");
        assert!(err.to_string().contains("lots"), "{err}");
        for text in [
            "upstream = \"https://app\"\n",
            "upstream = \"http://app:0\"\n",
            "upstream = \"http://app/sub\"\n",
            "listen = \"8080\"\n",
            "listen = []\n",
            "user_header = \"Remote User\"\n",
            "public_paths = [\"share/\"]\n",
            "unix_socket_mode = 660\n",
            "unix_socket_mode = \"0060\"\n",
            "enable_user_editing = \"maybe\"\n",
            "logout_url = \"javascript:alert(1)\"\n",
            "tls_cert = \"/x.pem\"\n",
        ] {
            assert!(load(text, &[], SettingFlags::default()).is_err(), "{text}");
        }
    }

    #[test]
    fn a_user_header_http_needs_is_refused_naming_it() {
        for name in [
            "Host",
            "Content-Length",
            "transfer-encoding",
            "Cookie",
            "Authorization",
        ] {
            let err = load(
                &format!("user_header = \"{name}\"\n"),
                &[],
                SettingFlags::default(),
            )
            .expect_err(name);
            let text = err.to_string();
            assert!(
                text.contains("user_header") && text.contains(name),
                "{name}: {text}"
            );
            assert!(text.contains("cannot be the user header"), "{text}");
        }
        assert!(load("user_header = \"X-User\"\n", &[], SettingFlags::default()).is_ok());
    }

    #[test]
    fn subsonic_mode_is_authenticate_unless_pass_through_is_asked_for() {
        use gatehouse_core::gateway::SubsonicMode;
        let c = load("", &[], SettingFlags::default()).expect("defaults");
        assert_eq!(c.subsonic, SubsonicMode::Authenticate);
        let c = load(
            "subsonic = \"pass-through\"\n",
            &[],
            SettingFlags::default(),
        )
        .expect("ok");
        assert_eq!(c.subsonic, SubsonicMode::PassThrough);
        let c = load(
            "",
            &[("GATEHOUSE_SUBSONIC", "authenticate")],
            SettingFlags::default(),
        )
        .expect("ok");
        assert_eq!(c.subsonic, SubsonicMode::Authenticate);
        let err = load("subsonic = \"off\"\n", &[], SettingFlags::default()).expect_err("bad");
        assert!(err.to_string().contains("`subsonic`"), "{err}");
    }

    #[test]
    fn trusted_sources_are_checked_by_core_and_catch_alls_warn() {
        let err = load(
            "trusted_sources = \"10.0.0.0/8, 10.0.0.300\"\n",
            &[],
            SettingFlags::default(),
        )
        .expect_err("bad entry");
        let msg = err.to_string();
        assert!(
            msg.contains("`trusted_sources`") && msg.contains("10.0.0.300"),
            "{msg}"
        );
        let c = load(
            "trusted_sources = [\"0.0.0.0/0\"]\n",
            &[],
            SettingFlags::default(),
        )
        .expect("parses");
        assert!(
            c.notes
                .iter()
                .any(|n| n.starts_with("WARNING") && n.contains("0.0.0.0/0"))
        );
    }

    #[test]
    fn trusted_proxies_is_its_own_list_from_every_source() {
        let c = load(
            "trusted_proxies = [\"127.0.0.1\", \"::1\"]\n",
            &[],
            SettingFlags::default(),
        )
        .expect("file");
        assert_eq!(c.trusted_proxies, "127.0.0.1,::1");
        assert_eq!(
            c.trusted_sources, "",
            "forwarding trust grants no identity trust"
        );
        let c = load(
            "",
            &[("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8, @")],
            SettingFlags::default(),
        )
        .expect("env");
        assert_eq!(c.trusted_proxies, "10.0.0.0/8,@");
        let c = load(
            "trusted_proxies = \"10.0.0.1\"\n",
            &[],
            SettingFlags {
                trusted_proxies: Some("192.168.1.2".into()),
                ..SettingFlags::default()
            },
        )
        .expect("flag");
        assert_eq!(c.trusted_proxies, "192.168.1.2");
        let err = load(
            "trusted_proxies = \"nginx\"\n",
            &[],
            SettingFlags::default(),
        )
        .expect_err("bad entry");
        let msg = err.to_string();
        assert!(
            msg.contains("`trusted_proxies`") && msg.contains("nginx"),
            "{msg}"
        );
        // Navidrome's names still mean identity trust.
        let c = load(
            "[ExtAuth]\nTrustedSources = \"10.0.0.1\"\n",
            &[],
            SettingFlags::default(),
        )
        .expect("navidrome");
        assert_eq!(
            (c.trusted_sources.as_str(), c.trusted_proxies.as_str()),
            ("10.0.0.1", "")
        );
    }

    #[test]
    fn the_trust_summary_says_what_each_entry_gives() {
        let c = load(
            "trusted_sources = \"10.0.0.0/8, @\"\ntrusted_proxies = \"127.0.0.1\"\n",
            &[],
            SettingFlags::default(),
        )
        .expect("ok");
        assert_eq!(
            c.trust_summary(),
            [
                "trusted_sources entry 1 10.0.0.0/8: identity+forwarding",
                "trusted_sources entry 2 @: identity+forwarding",
                "trusted_proxies entry 1 127.0.0.1/32: forwarding only",
            ]
        );
        let c = load("", &[], SettingFlags::default()).expect("ok");
        let summary = c.trust_summary();
        assert_eq!(summary.len(), 1);
        assert!(summary[0].contains("empty"), "{summary:?}");
    }

    #[test]
    fn navidrome_names_are_accepted_with_a_note() {
        let text =
            "ReverseProxyUserHeader = \"X-User\"\n[ExtAuth]\nTrustedSources = \"10.0.0.0/8, @\"\n";
        let c = load(text, &[], SettingFlags::default()).expect("accepted");
        assert_eq!(c.trusted_sources, "10.0.0.0/8,@");
        assert_eq!(c.user_header, "X-User");
        assert_eq!(c.notes.len(), 2);
        assert!(c.notes.iter().any(|n| n.contains("ExtAuth.TrustedSources")));
        let both = "trusted_sources = \"@\"\nReverseProxyWhitelist = \"10.0.0.0/8\"\n";
        assert!(matches!(
            load(both, &[], SettingFlags::default()),
            Err(ConfigError::Conflict(_))
        ));
    }

    #[test]
    fn lists_take_arrays_or_commas_and_durations_take_units() {
        let text = "listen = [\"127.0.0.1:1\", \"unix:/tmp/g.sock\"]\npublic_paths = \"/share/, /public/\"\n";
        let c = load(text, &[], SettingFlags::default()).expect("valid");
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.public_paths, vec!["/share/", "/public/"]);
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(
            parse_upstream("http://navidrome:4533/"),
            Ok(UpstreamAddr::Tcp {
                host_port: "navidrome:4533".into()
            })
        );
        assert_eq!(
            parse_upstream("http://[::1]"),
            Ok(UpstreamAddr::Tcp {
                host_port: "[::1]:80".into()
            })
        );
        assert_eq!(
            parse_upstream("unix:/run/nd.sock"),
            Ok(UpstreamAddr::Unix("/run/nd.sock".into()))
        );
    }
}

#[cfg(test)]
mod packaged {
    use super::*;

    #[test]
    fn the_packaged_example_configuration_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/gatehouse.toml");
        let c = Config::load_from(Some(&path), &[], &SettingFlags::default()).expect("valid");
        assert_eq!(c.upstream.to_string(), "http://127.0.0.1:4533");
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }
}
