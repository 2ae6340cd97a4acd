//! `gatehouse config-blob`: the configuration region a board reads at boot, made from a board
//! configuration (TOML or JSON) and a users file, checked with the firmware's own parsers.
//!
//! The region's layout and every key of the board configuration belong to
//! `gatehouse_firmware::config`; this file only converts TOML to the JSON the board reads, finds
//! the users file, explains what a board would refuse, and writes the result atomically.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use gatehouse_core::password::{EMBEDDED_ITERATIONS, Scheme};
use gatehouse_firmware::config::{
    ConfigError as BoardError, MAX_CLOCK_UNIX, MAX_REGION_LEN, MAX_TIMEOUT_SECS, parse_region,
    parse_settings, write_region,
};
use gatehouse_firmware::state::{MAX_APP_PASSWORDS, MAX_USERS, Trusted, Users as BoardUsers};
use serde_json::{Map, Value};

use crate::cli::{ConfigBlobArgs, SettingFlags};
use crate::commands::EXIT_INVALID;
use crate::config::Config;
use crate::files::write_atomically;
use crate::store::{Users as DaemonUsers, UsersFile};

/// PBKDF2 iteration counts above this make a login slow on a microcontroller.
pub const SLOW_ON_A_BOARD_ITERATIONS: u32 = 50_000;

/// Keys of the board configuration (`firmware/src/config.rs`), to tell an unknown key from a
/// known key with a value of the wrong type.
const BOARD_KEYS: &[&str] = &[
    "upstream",
    "address",
    "gateway",
    "listen_port",
    "trusted_sources",
    "trusted_proxies",
    "user_header",
    "public_paths",
    "subsonic_paths",
    "session_ttl_secs",
    "secure_cookies",
    "logout_url",
    "password_iterations",
    "clock_unix",
    "ntp_server",
    "head_read_timeout_secs",
    "idle_timeout_secs",
    "upstream_connect_timeout_secs",
];

/// `gatehouse config-blob`.
pub fn config_blob(args: ConfigBlobArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn run(args: ConfigBlobArgs) -> Result<()> {
    let config_json = board_config_json(&args.board_config)?;
    let users_path = users_path(&args)?;
    let users_json = board_users_json(&users_path)?;

    let mut region = vec![0u8; MAX_REGION_LEN];
    let len = write_region(&config_json, &users_json, &mut region).ok_or_else(|| {
        anyhow!(
            "the region would be {} bytes (configuration {}, users {}); a board reserves {} \
             bytes: remove users or app passwords, or shorten the configuration",
            gatehouse_firmware::config::REGION_HEADER_LEN + config_json.len() + users_json.len(),
            config_json.len(),
            users_json.len(),
            MAX_REGION_LEN
        )
    })?;
    region.truncate(len);
    let provisioned = parse_region(&region)
        .map_err(|e| anyhow!("the region made does not read back on a board: {e:?}"))?;
    let users = BoardUsers::from_json(provisioned.users_json)
        .map_err(|e| anyhow!("the users in the region made do not read back: {e}"))?;

    write_atomically(&args.output, &region, 0o600)
        .with_context(|| format!("writing {}", args.output.display()))?;

    println!(
        "wrote {}: {len} bytes (a board reserves {MAX_REGION_LEN}), {} user(s) and {} app \
         password(s) from {}",
        args.output.display(),
        users.len(),
        users.app_password_count(),
        users_path.display()
    );
    // The boards' commands run in their own folder: name the region by its absolute path.
    let region_path = std::fs::canonicalize(&args.output).unwrap_or(args.output.clone());
    let out = region_path.display();
    println!();
    println!("Write it where the board reads it (commands run in boards/<board>/):");
    println!(
        "  qemu-mps2-an386  GATEHOUSE_CONFIG_BLOB={out} cargo run --release\n                   \
         (QEMU loads it with -device loader,file={out},addr=0x00380000,force-raw=on)"
    );
    println!(
        "  host-tap         cargo run --release -- --tap tap0 --config {out} --state store.bin"
    );
    println!(
        "  nucleo-h743zi    probe-rs download --chip STM32H743ZITx --binary-format bin \
         --base-address 0x08100000 {out}"
    );
    Ok(())
}

/// The board configuration as the compact JSON the board reads, after checking it with the
/// firmware's parser.
fn board_config_json(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read board configuration {}", path.display()))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let value: Value = match extension.as_deref() {
        Some("json") => serde_json::from_str(&text).map_err(|e| {
            anyhow!(
                "board configuration {} is not valid JSON: {e}",
                path.display()
            )
        })?,
        Some("toml") => from_toml(path, &text)?,
        _ => match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(_) => from_toml(path, &text)?,
        },
    };
    let Value::Object(object) = value else {
        bail!(
            "board configuration {} is not a table of keys (see firmware/src/config.rs)",
            path.display()
        );
    };
    let json = serde_json::to_vec(&object).context("encoding the board configuration")?;
    check_settings(path, &object, &json)?;
    Ok(json)
}

fn from_toml(path: &Path, text: &str) -> Result<Value> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        anyhow!(
            "board configuration {} is not valid TOML or JSON: {}",
            path.display(),
            e.message()
        )
    })?;
    serde_json::to_value(&table).map_err(|e| {
        anyhow!(
            "board configuration {}: a value has no JSON form: {e}",
            path.display()
        )
    })
}

/// Runs the firmware's own checks and turns a refusal into a message naming the key and the
/// value, as the daemon's configuration errors do.
fn check_settings(path: &Path, object: &Map<String, Value>, json: &[u8]) -> Result<()> {
    let origin = format!("in board configuration {}", path.display());
    let bad = |key: &str, reason: &str| -> anyhow::Error {
        let value = object.get(key).map(Value::to_string).unwrap_or_default();
        anyhow!("bad value for `{key}` {origin}: {value}: {reason}")
    };
    let settings = match parse_settings(json) {
        Ok(settings) => settings,
        Err(BoardError::InvalidJson) => return Err(explain_invalid(&origin, object)),
        Err(BoardError::MissingUpstream) => {
            bail!("missing key `upstream` {origin}: the app behind the board, as \"A.B.C.D:PORT\"")
        }
        Err(BoardError::InvalidUpstream) => {
            return Err(bad(
                "upstream",
                "expected an IPv4 address and port, \"A.B.C.D:PORT\" (optionally after http://)",
            ));
        }
        Err(BoardError::InvalidAddress) => {
            return Err(bad(
                "address",
                "expected \"A.B.C.D/LEN\", e.g. 192.168.1.80/24",
            ));
        }
        Err(BoardError::InvalidGateway) => {
            return Err(bad("gateway", "expected an IPv4 address \"A.B.C.D\""));
        }
        Err(BoardError::InvalidPasswordIterations) => {
            return Err(bad(
                "password_iterations",
                &format!(
                    "out of the range accepted ({}..={})",
                    gatehouse_core::password::MIN_ITERATIONS,
                    gatehouse_core::password::MAX_ITERATIONS
                ),
            ));
        }
        Err(BoardError::InvalidNtpServer) => {
            return Err(bad(
                "ntp_server",
                "expected an IPv4 address \"A.B.C.D\" (port 123) or \"A.B.C.D:PORT\"",
            ));
        }
        Err(BoardError::InvalidTimeout) => {
            let key = [
                "head_read_timeout_secs",
                "idle_timeout_secs",
                "upstream_connect_timeout_secs",
            ]
            .into_iter()
            .find(|k| {
                object
                    .get(*k)
                    .and_then(Value::as_u64)
                    .is_some_and(|secs| secs == 0 || secs > MAX_TIMEOUT_SECS)
            })
            .unwrap_or("head_read_timeout_secs");
            return Err(bad(
                key,
                &format!(
                    "a timeout must be at least 1 second and at most {MAX_TIMEOUT_SECS} seconds"
                ),
            ));
        }
        Err(BoardError::InvalidUserHeader) => {
            let name = object
                .get("user_header")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let reason = gatehouse_core::identity::validate_user_header(name)
                .err()
                .map_or_else(
                    || "not a header a board takes".to_owned(),
                    |e| e.to_string(),
                );
            return Err(bad("user_header", &reason));
        }
        Err(BoardError::InvalidClock) => {
            return Err(bad(
                "clock_unix",
                &format!(
                    "later than the year 9999 ({MAX_CLOCK_UNIX}): the board's time would overflow"
                ),
            ));
        }
        Err(other) => bail!("board configuration {} refused: {other:?}", path.display()),
    };
    // The board parses both trust lists when it starts; refuse here what it would refuse.
    Trusted::parse(settings.trusted_sources).map_err(|e| bad("trusted_sources", &e.to_string()))?;
    Trusted::parse(settings.trusted_proxies).map_err(|e| bad("trusted_proxies", &e.to_string()))?;
    if settings.ntp_server.is_none() {
        eprintln!(
            "gatehouse: warning: no `ntp_server` {origin}: a board without a real-time clock \
             (the Nucleo-H743ZI among them) never knows the time, and then issues and accepts \
             no session (the login page answers 503); HTTP Basic, app passwords and Subsonic \
             credentials still work"
        );
    }
    if settings.password_iterations > SLOW_ON_A_BOARD_ITERATIONS {
        eprintln!(
            "gatehouse: warning: `password_iterations` = {} {origin}: hashes the board makes \
             would take {} to verify on a Cortex-M4 class board; {EMBEDDED_ITERATIONS} is usual",
            settings.password_iterations,
            login_cost(settings.password_iterations)
        );
    }
    Ok(())
}

/// The firmware's parser says only "invalid JSON" (an unknown key, a wrong type, or a string
/// with escapes): find the key by parsing each one alone.
fn explain_invalid(origin: &str, object: &Map<String, Value>) -> anyhow::Error {
    for (key, value) in object {
        let mut alone = Map::new();
        alone.insert(key.clone(), value.clone());
        let Ok(json) = serde_json::to_vec(&alone) else {
            continue;
        };
        if !matches!(parse_settings(&json), Err(BoardError::InvalidJson)) {
            continue;
        }
        if !BOARD_KEYS.contains(&key.as_str()) {
            return anyhow!(
                "unknown board configuration key `{key}` {origin} (the keys a board reads: {})",
                BOARD_KEYS.join(", ")
            );
        }
        let reason = match value {
            Value::String(s) if s.contains(['"', '\\']) || s.chars().any(char::is_control) => {
                "a board reads strings as written: no quotes, backslashes or control characters"
            }
            _ => "not the type a board reads here (see firmware/src/config.rs)",
        };
        return anyhow!("bad value for `{key}` {origin}: {value}: {reason}");
    }
    anyhow!("board configuration {origin} is refused by the board's parser")
}

/// Roughly how long a Cortex-M4 class board takes for one PBKDF2 verification: about 50 µs an
/// iteration (core's `EMBEDDED_ITERATIONS`, 10 000, is about half a second).
fn login_cost(iterations: u32) -> String {
    let secs = f64::from(iterations) * 50e-6;
    if secs < 10.0 {
        format!("about {secs:.1} s per login")
    } else {
        format!("about {secs:.0} s per login")
    }
}

/// The users file: `--users`, else `users.json` in the state directory of `--state-dir` or of
/// the daemon's configuration (`--config`), as `gatehouse users` finds it.
fn users_path(args: &ConfigBlobArgs) -> Result<PathBuf> {
    if let Some(path) = &args.users {
        return Ok(path.clone());
    }
    let flags = SettingFlags {
        state_dir: args.state_dir.clone(),
        ..SettingFlags::default()
    };
    let config = Config::load(args.config.as_deref(), &flags)?;
    Ok(UsersFile::at(&config.state_dir).path())
}

/// The users as the board will hold them (core's JSON, compact), after checking that a board
/// can hold and verify every one.
fn board_users_json(path: &Path) -> Result<Vec<u8>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no users file at {}: create users with `gatehouse users add NAME --admin \
             --iterations {EMBEDDED_ITERATIONS}` (with --state-dir or --config), or name one \
             with --users",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let file = path.display();
    // The daemon's larger table first, to count what a board cannot hold.
    let all = DaemonUsers::from_json(&bytes)
        .map_err(|e| anyhow!("users file {file} is not a valid users file: {e}"))?;
    if all.len() > MAX_USERS {
        bail!(
            "users file {file} has {} users; a board holds at most {MAX_USERS}: delete some \
             (`gatehouse users del NAME`) or use a users file made for the board",
            all.len()
        );
    }
    if all.app_password_count() > MAX_APP_PASSWORDS {
        bail!(
            "users file {file} has {} app passwords; a board holds at most {MAX_APP_PASSWORDS} \
             for all users together: revoke some (`gatehouse users app-password revoke NAME \
             LABEL`)",
            all.app_password_count()
        );
    }
    let argon2: Vec<&str> = all
        .iter()
        .filter(|u| u.password.scheme() == Scheme::Argon2id)
        .map(|u| u.name.as_str())
        .collect();
    if !argon2.is_empty() {
        bail!(
            "users file {file}: {} ha{} an argon2id password hash, which a board cannot verify \
             (argon2id needs megabytes of memory); give {} a PBKDF2 password with `gatehouse \
             users passwd NAME --iterations {EMBEDDED_ITERATIONS}`",
            argon2.join(", "),
            if argon2.len() == 1 { "s" } else { "ve" },
            if argon2.len() == 1 { "it" } else { "them" },
        );
    }
    let mut slow: Vec<(&str, u32)> = all
        .iter()
        .filter_map(|u| Some((u.name.as_str(), u.password.iterations()?)))
        .filter(|(_, i)| *i > SLOW_ON_A_BOARD_ITERATIONS)
        .collect();
    slow.sort_by_key(|(_, i)| std::cmp::Reverse(*i));
    if let Some((_, most)) = slow.first() {
        let names: Vec<&str> = slow.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "gatehouse: warning: {}: password hashes with up to {most} PBKDF2 iterations take \
             {} on a Cortex-M4 class board. For a board, set them again with fewer: `gatehouse \
             users passwd NAME --iterations {EMBEDDED_ITERATIONS}` (or `password_iterations = \
             {EMBEDDED_ITERATIONS}` in the daemon's configuration), then run config-blob again",
            names.join(", "),
            login_cost(*most)
        );
    }
    let mut users = BoardUsers::from_json(&bytes)
        .map_err(|e| anyhow!("users file {file} cannot be loaded by a board: {e}"))?;
    // Each provisioning is a table of its own: a board provisioned again refuses the sessions
    // of the table it held before (whose log-outs and password changes the new region drops).
    let mut random = [0u8; gatehouse_core::users::TABLE_ID_RANDOM_LEN];
    crate::keys::os_random(&mut random)?;
    users.renew_id(random);
    let mut out = vec![0u8; BoardUsers::JSON_CAPACITY];
    let n = users
        .to_json(&mut out)
        .map_err(|e| anyhow!("encoding the users for the board: {e}"))?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_key_is_one_the_board_reads() {
        for key in BOARD_KEYS {
            let json = format!(r#"{{"{key}":null}}"#);
            assert_ne!(
                parse_settings(json.as_bytes()).err(),
                Some(BoardError::InvalidJson),
                "{key}"
            );
        }
        assert_eq!(
            parse_settings(br#"{"nope":null}"#).err(),
            Some(BoardError::InvalidJson)
        );
    }

    #[test]
    fn login_costs_scale_with_iterations() {
        assert_eq!(login_cost(10_000), "about 0.5 s per login");
        assert_eq!(login_cost(600_000), "about 30 s per login");
    }
}
