//! `gatehouse config-blob`: the region it writes is the one a board reads (the firmware's own
//! parser takes it back with the same users), and what a board would refuse is refused here
//! first, naming what is wrong.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use gatehouse_firmware::config::parse_region;
use gatehouse_firmware::state::{MAX_USERS, Users as BoardUsers};
use support::{BIN, users};

const BOARD_TOML: &str = r#"
upstream = "192.168.1.10:4533"
address = "192.168.1.80/24"
gateway = "192.168.1.1"
trusted_sources = "192.168.1.2/32"
trusted_proxies = "192.168.1.3, 192.168.1.4"
public_paths = ["/share/", "/pub/"]
idle_timeout_secs = 30
clock_unix = 1767225600
ntp_server = "192.168.1.1"
"#;

fn add_user(state: &Path, name: &str, iterations: &str) {
    let args = ["add", name, "--password-stdin", "--iterations", iterations];
    let (code, _, err) = users(state, &args, "correct horse battery\n");
    assert_eq!(code, 0, "{err}");
}

/// Runs `gatehouse config-blob ARGS`; (exit code, stdout, stderr).
fn config_blob(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("config-blob")
        .args(args)
        .env_remove("STATE_DIRECTORY")
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run gatehouse config-blob");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(s: &(impl AsRef<std::ffi::OsStr> + ?Sized)) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn a_toml_board_config_and_a_state_dir_make_a_region_the_board_reads_with_the_same_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_user(&state, "alice", "1000");
    add_user(&state, "Bob", "1000");
    let board = dir.path().join("board.toml");
    std::fs::write(&board, BOARD_TOML).expect("write board.toml");
    let region_path = dir.path().join("region.bin");

    let (code, out, err) = config_blob(&[
        os("--board-config"),
        board.as_os_str(),
        os("--state-dir"),
        state.as_os_str(),
        os("-o"),
        region_path.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    let region = std::fs::read(&region_path).expect("region written");
    assert!(
        out.contains(&format!("{} bytes", region.len())),
        "prints the size: {out}"
    );
    assert!(out.contains("--base-address 0x08100000"), "{out}");
    assert!(out.contains("-device loader"), "{out}");
    assert!(
        !err.contains("warning"),
        "no warning at 1000 iterations: {err}"
    );

    let provisioned = parse_region(&region).expect("the board reads the region");
    let s = &provisioned.settings;
    assert_eq!(s.upstream.port, 4533);
    assert_eq!(s.trusted_sources, "192.168.1.2/32");
    assert_eq!(s.trusted_proxies, "192.168.1.3, 192.168.1.4");
    assert_eq!(s.public_paths.as_slice(), ["/share/", "/pub/"]);
    assert_eq!(s.clock_unix, 1_767_225_600);
    assert_eq!(
        s.ntp_server,
        Some("192.168.1.1:123".parse().expect("socket address"))
    );

    let on_board = BoardUsers::from_json(provisioned.users_json).expect("board users");
    let file = std::fs::read(state.join("users.json")).expect("users file");
    let mut in_file = BoardUsers::from_json(&file).expect("users file as a board table");
    // Each provisioning is a table of its own (sessions of the board's earlier table end),
    // with the users of the file.
    let first_table = on_board.table_id();
    assert_ne!(first_table, in_file.table_id());
    assert_ne!(first_table, 0);
    in_file.renew_id(first_table.to_le_bytes());
    assert_eq!(on_board, in_file);
    assert_eq!(on_board.len(), 2);
    assert!(on_board.find("bob").is_some());

    // The same through --users and a JSON board configuration without an extension.
    let board_json = dir.path().join("board");
    std::fs::write(&board_json, r#"{"upstream":"192.168.1.10:4533"}"#).expect("write");
    let users_file = state.join("users.json");
    let (code, _, err) = config_blob(&[
        os("--board-config"),
        board_json.as_os_str(),
        os("--users"),
        users_file.as_os_str(),
        os("-o"),
        region_path.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    // Without a time server a board without a real-time clock gives no sessions: said so.
    assert!(
        err.contains("warning") && err.contains("no `ntp_server`"),
        "{err}"
    );
    let region = std::fs::read(&region_path).expect("region");
    let provisioned = parse_region(&region).expect("region parses");
    let again = BoardUsers::from_json(provisioned.users_json).expect("users");
    assert_ne!(
        again.table_id(),
        first_table,
        "the same file provisioned again"
    );
    in_file.renew_id(again.table_id().to_le_bytes());
    assert_eq!(again, in_file);
}

#[test]
fn a_bad_key_or_value_is_exit_2_naming_it_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_user(&state, "alice", "1000");
    let region_path = dir.path().join("region.bin");
    let cases = [
        ("colour = \"blue\"\n", "`colour`"),
        ("listen_port = \"eighty\"\n", "`listen_port`"),
        ("", "`upstream`"),
    ];
    for (extra, named) in cases {
        let board = dir.path().join("board.toml");
        let text = if extra.is_empty() {
            "address = \"192.168.1.80/24\"\n".to_owned()
        } else {
            format!("upstream = \"192.168.1.10:4533\"\n{extra}")
        };
        std::fs::write(&board, text).expect("write");
        let (code, _, err) = config_blob(&[
            os("--board-config"),
            board.as_os_str(),
            os("--state-dir"),
            state.as_os_str(),
            os("-o"),
            region_path.as_os_str(),
        ]);
        assert_eq!(code, 2, "{extra}: {err}");
        assert!(err.contains(named), "{extra}: {err}");
    }

    let board = dir.path().join("board.toml");
    for (text, named, value) in [
        (
            "upstream = \"nas.local:4533\"\n",
            "`upstream`",
            "nas.local:4533",
        ),
        (
            "upstream = \"192.168.1.10:4533\"\ntrusted_sources = \"10.0.0.0/33\"\n",
            "`trusted_sources`",
            "10.0.0.0/33",
        ),
        (
            "upstream = \"192.168.1.10:4533\"\ntrusted_proxies = \"127.0.0.1, nginx\"\n",
            "`trusted_proxies`",
            "nginx",
        ),
        (
            "upstream = \"192.168.1.10:4533\"\nidle_timeout_secs = 0\n",
            "`idle_timeout_secs`",
            "0",
        ),
        (
            "upstream = \"192.168.1.10:4533\"\nntp_server = \"pool.ntp.org\"\n",
            "`ntp_server`",
            "pool.ntp.org",
        ),
    ] {
        std::fs::write(&board, text).expect("write");
        let (code, _, err) = config_blob(&[
            os("--board-config"),
            board.as_os_str(),
            os("--state-dir"),
            state.as_os_str(),
            os("-o"),
            region_path.as_os_str(),
        ]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(named) && err.contains(value), "{text}: {err}");
    }
    assert!(!region_path.exists(), "nothing written on an error");
}

#[test]
fn more_users_than_a_board_holds_is_an_error_that_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    for i in 0..=MAX_USERS {
        add_user(&state, &format!("user{i}"), "1000");
    }
    let board = dir.path().join("board.toml");
    std::fs::write(&board, BOARD_TOML).expect("write");
    let region_path = dir.path().join("region.bin");
    let (code, _, err) = config_blob(&[
        os("--board-config"),
        board.as_os_str(),
        os("--state-dir"),
        state.as_os_str(),
        os("-o"),
        region_path.as_os_str(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("has {} users", MAX_USERS + 1))
            && err.contains(&format!("at most {MAX_USERS}")),
        "{err}"
    );
    assert!(!region_path.exists());
}

#[test]
fn an_argon2_user_is_refused_and_slow_pbkdf2_hashes_are_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_user(&state, "alice", "1000");
    add_user(&state, "carol", "1000");
    let users_path = state.join("users.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&users_path).expect("read")).expect("json");
    doc["users"][1]["password"] = serde_json::Value::String(
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
            .to_owned(),
    );
    let argon_file = dir.path().join("argon.json");
    std::fs::write(&argon_file, serde_json::to_vec(&doc).expect("json")).expect("write");

    let board = dir.path().join("board.toml");
    std::fs::write(&board, BOARD_TOML).expect("write");
    let region_path = dir.path().join("region.bin");
    let (code, _, err) = config_blob(&[
        os("--board-config"),
        board.as_os_str(),
        os("--users"),
        argon_file.as_os_str(),
        os("-o"),
        region_path.as_os_str(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("carol") && err.contains("argon2id"), "{err}");
    assert!(err.contains("cannot verify"), "{err}");
    assert!(!region_path.exists());

    // A PBKDF2 hash with many iterations is accepted, with a warning saying what to do.
    doc["users"][1]["password"] = serde_json::Value::String(
        "$pbkdf2-sha256$i=600000,l=32$c29tZXNhbHRzb21lc2FsdA$\
         CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
            .to_owned(),
    );
    let slow_file = dir.path().join("slow.json");
    std::fs::write(&slow_file, serde_json::to_vec(&doc).expect("json")).expect("write");
    let (code, _, err) = config_blob(&[
        os("--board-config"),
        board.as_os_str(),
        os("--users"),
        slow_file.as_os_str(),
        os("-o"),
        region_path.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains("carol") && err.contains("600000"),
        "{err}"
    );
    assert!(
        err.contains("users passwd") && err.contains("password_iterations"),
        "{err}"
    );
    assert!(parse_region(&std::fs::read(&region_path).expect("region")).is_ok());
}

/// What the board refuses, `config-blob` refuses first, naming the key: a user header HTTP
/// needs, a timeout or a clock that would overflow the board's.
#[test]
fn a_reserved_user_header_or_an_overflowing_value_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_user(&state, "alice", "1000");
    let region = dir.path().join("region.bin");
    for (line, key) in [
        ("user_header = \"Transfer-Encoding\"", "user_header"),
        ("user_header = \"Host\"", "user_header"),
        (
            "idle_timeout_secs = 9223372036854775807",
            "idle_timeout_secs",
        ),
        ("clock_unix = 9223372036854775807", "clock_unix"),
    ] {
        let board = dir.path().join("board.toml");
        std::fs::write(
            &board,
            format!("upstream = \"192.168.1.10:4533\"\n{line}\n"),
        )
        .expect("write board.toml");
        let (code, _, err) = config_blob(&[
            os("--board-config"),
            board.as_os_str(),
            os("--state-dir"),
            state.as_os_str(),
            os("-o"),
            region.as_os_str(),
        ]);
        assert_eq!(code, 2, "{line}: {err}");
        assert!(err.contains(&format!("`{key}`")), "{line}: {err}");
        assert!(!region.exists(), "{line}: a region was written");
    }
}
