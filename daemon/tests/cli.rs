//! The command line, run as a user would: `trust`, `users`, configuration errors, state files.

mod support;

use std::process::{Command, Stdio};

use support::{BIN, clear_gatehouse_env, users};

fn run(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clear_gatehouse_env(&mut cmd);
    let out = cmd.output().expect("run gatehouse");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn trust_says_which_entry_matched_and_exits_0() {
    let (code, out, _) = run(&["trust", "10.0.0.0/8, 192.168.1.0/24", "192.168.1.7:52100"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("192.168.1.0/24 (entry 2)"), "{out}");
    let (code, out, _) = run(&["trust", "10.0.0.0/8", "[::ffff:10.1.2.3]:80"]);
    assert_eq!(code, 0, "mapped IPv4 matches IPv4 entries: {out}");
    let (code, out, _) = run(&["trust", "127.0.0.1,@", "@"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("@ (entry 2)"), "{out}");
}

#[test]
fn trust_says_which_trust_an_entry_gives() {
    let (code, out, _) = run(&["trust", "10.0.0.0/8", "10.1.2.3", "--proxies", "127.0.0.1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("identity+forwarding"), "{out}");
    let (code, out, _) = run(&["trust", "10.0.0.0/8", "127.0.0.1", "--proxies", "127.0.0.1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("127.0.0.1/32 (entry 1) of --proxies: forwarding only"),
        "{out}"
    );
    let (code, out, _) = run(&["trust", "", "192.0.2.1", "--proxies", "127.0.0.1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a trusted proxy either"), "{out}");
    let (code, _, err) = run(&["trust", "", "127.0.0.1", "--proxies", "nginx"]);
    assert_eq!(code, 2);
    assert!(err.contains("--proxies") && err.contains("nginx"), "{err}");
}

#[test]
fn trust_exits_1_when_not_trusted_with_a_hint_for_the_usual_mistake() {
    let (code, out, _) = run(&["trust", "127.0.0.1/32", "[::1]:4533"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not trusted"), "{out}");
    assert!(out.contains("IPv4 entries never match IPv6 peers"), "{out}");
    let (code, out, _) = run(&["trust", "::/0", "127.0.0.1"]);
    assert_eq!(code, 1, "::/0 does not trust IPv4: {out}");
    let (code, out, _) = run(&["trust", "", "10.0.0.1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("empty"), "{out}");
}

#[test]
fn trust_exits_2_naming_the_bad_entry_or_peer() {
    let (code, _, err) = run(&["trust", "10.0.0.0/8, 10.0.0.300/8", "10.0.0.1"]);
    assert_eq!(code, 2);
    assert!(err.contains("10.0.0.300/8") && err.contains("2"), "{err}");
    let (code, _, err) = run(&["trust", "10.0.0.0/8", "fe80::1%eth0"]);
    assert_eq!(code, 2);
    assert!(err.contains("fe80::1%eth0"), "{err}");
}

#[test]
fn users_are_added_listed_and_deleted_in_the_users_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (code, out, err) = users(
        &state,
        &["add", "Alice", "--admin", "--iterations", "1000"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created admin Alice"), "{out}");
    let generated = out
        .lines()
        .find_map(|l| l.split("write it down): ").nth(1))
        .expect("a generated password is printed");
    assert_eq!(generated.trim().len(), 24);

    let (code, _, err) = users(
        &state,
        &["add", "bob", "--password-stdin", "--iterations", "1000"],
        "s3cret\n",
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = users(&state, &["add", "ALICE", "--iterations", "1000"], "");
    assert_eq!(code, 2, "names are matched ignoring case");
    assert!(err.contains("already exists"), "{err}");

    let (_, out, _) = users(&state, &["list"], "");
    assert_eq!(out, "Alice\tadmin\nbob\tuser\n");
    let (code, _, _) = users(&state, &["del", "bob"], "");
    assert_eq!(code, 0);
    let (_, out, _) = users(&state, &["list"], "");
    assert_eq!(out, "Alice\tadmin\n");

    let json = std::fs::read_to_string(state.join("users.json")).expect("users file");
    assert!(json.contains("\"name\":\"Alice\""), "{json}");
    assert!(!json.contains("s3cret"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(state.join("users.json"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(&state)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
}

#[test]
fn an_empty_password_on_stdin_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = users(dir.path(), &["add", "carol", "--password-stdin"], "\n");
    assert_eq!(code, 2);
    assert!(err.contains("empty"), "{err}");
    assert!(!dir.path().join("users.json").exists());
}

fn write_config(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

#[test]
fn an_unknown_key_stops_serve_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "listen = \"127.0.0.1:0\"\nupstrem = \"http://127.0.0.1:1\"\n",
    );
    let (code, _, err) = run(&["serve", "--allow-root", "--config", &config]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`upstrem`") && err.contains("did you mean `upstream`"),
        "{err}"
    );
    assert!(err.contains(&config), "the file is named: {err}");
}

#[test]
fn a_bad_value_stops_serve_with_exit_2_naming_key_value_and_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "session_ttl = \"forever\"\n");
    let (code, _, err) = run(&["serve", "--allow-root", "--config", &config]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`session_ttl`") && err.contains("forever"),
        "{err}"
    );

    let (code, _, err) = run(&[
        "serve",
        "--allow-root",
        "--trusted-sources",
        "10.0.0.0/8,nonsense",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nonsense") && err.contains("--trusted-sources"),
        "{err}"
    );

    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--allow-root"])
        .env("GATEHOUSE_MAX_CONNECTIONS", "-5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("GATEHOUSE_MAX_CONNECTIONS") && err.contains("-5"),
        "{err}"
    );
}

#[test]
fn a_corrupt_users_file_stops_start_up_and_is_left_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    let broken = b"{\"version\":1,\"users\":[{\"name\":\"a\",";
    std::fs::write(state.join("users.json"), broken).expect("write");
    let (code, _, err) = run(&[
        "serve",
        "--allow-root",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &state.to_string_lossy(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("users.json") && err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(state.join("users.json")).expect("read"),
        broken
    );
}

#[test]
fn running_as_root_is_refused_without_allow_root() {
    let (_, uid, _) = {
        let out = Command::new("id").arg("-u").output().expect("id -u");
        (
            0,
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            (),
        )
    };
    let (code, _, err) = run(&["serve", "--listen", "not-an-address"]);
    assert_eq!(code, 2);
    if uid == "0" {
        assert!(err.contains("refusing to run as root"), "{err}");
    } else {
        assert!(!err.contains("refusing to run as root"), "{err}");
        assert!(err.contains("`listen`"), "{err}");
    }
}

#[test]
fn check_offline_validates_configuration_and_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (code, _, _) = users(
        &state,
        &["add", "root-admin", "--admin", "--iterations", "1000"],
        "",
    );
    assert_eq!(code, 0);
    let config = write_config(
        dir.path(),
        &format!(
            "state_dir = {:?}\nReverseProxyWhitelist = \"10.0.0.0/8\"\ntrusted_proxies = \"127.0.0.1\"\n",
            state.to_string_lossy()
        ),
    );
    let (code, out, err) = run(&["check", "--offline", "--config", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok    configuration is valid"), "{out}");
    assert!(out.contains("1 users, 1 admins"), "{out}");
    assert!(out.contains("Navidrome's name"), "{out}");
    // Which trust each entry gives.
    assert!(
        out.contains("trust trusted_sources entry 1 10.0.0.0/8: identity+forwarding"),
        "{out}"
    );
    assert!(
        out.contains("trust trusted_proxies entry 1 127.0.0.1/32: forwarding only"),
        "{out}"
    );
}

/// Whoever can write the state directory (the service user) plants links to another file;
/// `gatehouse users` (often run as root) refuses, says which, and the other file is untouched.
#[test]
fn links_planted_in_the_state_directory_are_refused_and_never_followed() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (code, _, err) = users(&state, &["add", "alice", "--iterations", "1000"], "");
    assert_eq!(code, 0, "{err}");
    let victim = dir.path().join("shadow");
    std::fs::write(&victim, b"root:x:0:0\n").expect("write");

    for planted in ["users.lock", "users.json"] {
        let path = state.join(planted);
        let kept = path.with_extension("kept");
        std::fs::rename(&path, &kept).expect("move aside");
        symlink(&victim, &path).expect("symlink");
        let (code, _, err) = users(&state, &["add", "bob", "--iterations", "1000"], "");
        assert_ne!(code, 0, "{planted}: a link was followed");
        assert!(
            err.contains(&format!("{planted} is a symbolic link")),
            "{err}"
        );
        assert_eq!(std::fs::read(&victim).expect("read"), b"root:x:0:0\n");
        std::fs::remove_file(&path).expect("unlink");
        std::fs::rename(&kept, &path).expect("move back");
    }

    // The state directory as a link, and one that others may write.
    let linked = dir.path().join("linked");
    symlink(&state, &linked).expect("symlink");
    let (code, _, err) = users(&linked, &["list"], "");
    assert_ne!(code, 0);
    assert!(err.contains("linked is a symbolic link"), "{err}");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, _, err) = users(&state, &["list"], "");
    assert_ne!(code, 0);
    assert!(
        err.contains("is writable by group or others (mode 777"),
        "{err}"
    );
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let (code, out, err) = users(&state, &["list"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice") && !out.contains("bob"), "{out}");
}
