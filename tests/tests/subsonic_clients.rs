//! Subsonic client libraries that gatehouse's authors did not write, end to end through the
//! daemon: `py-sonic` (PyPI, module `libsonic`) and `subsonic-api` (npm), driven by the small
//! scripts in `tests/subsonic_clients/`, log in with an app password (clear, token + salt,
//! apiKey) and the app behind gatehouse sees the user in `Remote-User` and never the secret.
//! With `subsonic = "pass-through"`, `supysonic` (a Subsonic server, PyPI) is the app and
//! authenticates the client itself.
//!
//! Prerequisites (`.ci/run` installs them): a Python with `py-sonic`, `supysonic` and
//! `waitress` (`$GATEHOUSE_PYTHON`, else `python3`), node, and `npm ci` in
//! `tests/subsonic_clients/`. Missing ones skip these cases, or fail them under `CI=true`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gatehouse_tests::net::{Net, free_port};
use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";
/// What the recording upstream answers: a Subsonic server's `ok`, so the libraries succeed.
const SUBSONIC_OK: &str = r#"{"subsonic-response":{"status":"ok","version":"1.16.1"}}"#;
/// The credential parameters no app behind gatehouse may receive.
const SECRET_PARAMS: [&str; 4] = ["p", "t", "s", "apiKey"];

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("subsonic_clients")
}

fn python() -> String {
    std::env::var("GATEHOUSE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The tools these cases need, or why they cannot run here.
fn prerequisites() -> Result<(), Unavailable> {
    let imports = Command::new(python())
        .args(["-c", "import libsonic, supysonic, waitress"])
        .output()
        .map_err(|e| Unavailable(format!("{}: {e}", python())))?;
    if !imports.status.success() {
        return Err(Unavailable(format!(
            "{} cannot import py-sonic, supysonic and waitress (pip install py-sonic supysonic \
             waitress): {}",
            python(),
            String::from_utf8_lossy(&imports.stderr).trim()
        )));
    }
    Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| Unavailable(format!("node: {e}")))?;
    if !clients_dir().join("node_modules/subsonic-api").is_dir() {
        return Err(Unavailable(format!(
            "subsonic-api is not installed (npm ci in {})",
            clients_dir().display()
        )));
    }
    Ok(())
}

/// Runs a client script and fails the test with its output unless it succeeded.
fn run(program: &str, args: &[&str]) -> String {
    let out: Output = Command::new(program)
        .current_dir(clients_dir())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

fn py_sonic(gw_addr: SocketAddr, mode: &str, user: &str, secret: &str, forms: &str) -> String {
    run(
        &python(),
        &[
            "py_sonic_client.py",
            mode,
            &format!("http://{}", gw_addr.ip()),
            &gw_addr.port().to_string(),
            user,
            secret,
            forms,
        ],
    )
}

fn subsonic_api(gw_addr: SocketAddr, mode: &str, user: &str, secret: &str) -> String {
    run(
        "node",
        &[
            "subsonic_api_client.mjs",
            mode,
            &format!("http://{gw_addr}"),
            user,
            secret,
            "apikey",
        ],
    )
}

/// Creates an app password for `user` with the CLI, has the daemon reload its users file, and
/// returns the secret the CLI printed once.
fn app_password(gw: &Gateway, user: &str, label: &str) -> String {
    let secret = add_app_password(gw, user, label);
    let reloads = || gw.log().matches("users file reloaded").count();
    let before = reloads();
    gw.reload();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reloads() == before {
        assert!(Instant::now() < deadline, "no reload logged:\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    secret
}

fn add_app_password(gw: &Gateway, user: &str, label: &str) -> String {
    let out = gw.cli(&["users", "app-password", "add", user, label], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.split("type it into the app): ").nth(1))
        .unwrap_or_else(|| panic!("no secret printed: {text}"))
        .trim()
        .to_owned()
}

/// The parameter names of a query string or form body.
fn param_names(encoded: &str) -> Vec<String> {
    encoded
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split('=').next().unwrap_or_default().to_owned())
        .collect()
}

/// The parameters the app received, from the target's query and a form body.
fn params_seen(seen: &Seen) -> Vec<String> {
    let target = seen.target();
    let mut names = param_names(target.split_once('?').map_or("", |(_, q)| q));
    names.extend(param_names(&String::from_utf8_lossy(&seen.body)));
    names
}

fn subsonic_ok_reply() -> Reply {
    Reply::Raw(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            SUBSONIC_OK.len(),
            SUBSONIC_OK
        )
        .into_bytes(),
    )
}

/// supysonic on a loopback port of its own, with a temporary sqlite database and one user
/// created by its CLI; stopped by its PID on drop.
struct Supysonic {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Supysonic {
    fn start(user: &str, password: &str) -> Supysonic {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-supysonic-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let d = dir.path().display();
        // supysonic reads `supysonic.conf` from its working directory.
        let conf = format!(
            "[base]\ndatabase_uri = sqlite:///{d}/supysonic.db\n\
             [webapp]\ncache_dir = {d}/cache\nmount_webui = no\n\
             [daemon]\nsocket = {d}/daemon.sock\nrun_watcher = no\n"
        );
        std::fs::write(dir.path().join("supysonic.conf"), conf)
            .unwrap_or_else(|e| panic!("supysonic.conf: {e}"));
        let cli = |args: &[&str]| {
            let out = Command::new(python())
                .current_dir(dir.path())
                .args(["-m", "supysonic.cli"])
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("supysonic-cli: {e}"));
            assert!(
                out.status.success(),
                "supysonic-cli {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        cli(&["user", "add", user, "-p", password]);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = free_port(&Net::Host, ip).unwrap_or_else(|e| panic!("free port: {e}"));
        let addr = SocketAddr::new(ip, port);
        let log = std::fs::File::create(dir.path().join("supysonic.log"))
            .unwrap_or_else(|e| panic!("supysonic.log: {e}"));
        let child = Command::new(python())
            .current_dir(dir.path())
            .args([
                "-m",
                "supysonic.server",
                "-S",
                "waitress",
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("log: {e}")))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start supysonic: {e}"));
        let mut server = Supysonic { child, addr, dir };
        server.wait_ready();
        server
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("supysonic.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("supysonic exited with {status}:\n{}", self.log());
            }
            if TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("supysonic did not listen on {}:\n{}", self.addr, self.log());
    }
}

impl Drop for Supysonic {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- supysonic log ---\n{}", self.log());
        }
    }
}

conformance! {
    /// py-sonic and subsonic-api log in with an app password in every form they support; the
    /// app sees alice and no secret; a wrong secret gets the error the library reports as 40.
    fn subsonic_libraries_use_an_app_password(kind) on [daemon] {
        prerequisites()?;
        let gw = Gateway::start(kind, Setup::new().user("alice", PASSWORD).user("carol", PASSWORD))?;
        gw.upstream.set_reply(subsonic_ok_reply());
        let secret = app_password(&gw, "alice", "phone");
        let carols = app_password(&gw, "carol", "car");

        let said = py_sonic(gw.addr(), "ok", "alice", &secret, "clear,token");
        assert_eq!(said.matches("ping ok").count(), 4, "{said}");
        let said = subsonic_api(gw.addr(), "ok", "alice", &secret);
        assert_eq!(said.matches("ping ok").count(), 4, "{said}");

        let seen = gw.upstream.wait_for(8);
        assert_eq!(seen.len(), 8, "every ping reaches the app once");
        for request in &seen {
            assert_identity(request, "Remote-User", "alice");
            let params = params_seen(request);
            for secret_param in SECRET_PARAMS {
                assert!(
                    !params.iter().any(|p| p == secret_param),
                    "the app received `{secret_param}`: {request}\n{}",
                    String::from_utf8_lossy(&request.body)
                );
            }
            assert!(params.iter().any(|p| p == "c"), "other parameters kept: {request}");
        }
        assert_never_seen(&seen, &secret);

        let wrong = format!("{}x", &secret[1..]);
        let said = py_sonic(gw.addr(), "wrong", "alice", &wrong, "clear,token");
        assert_eq!(said.matches("refused with code 40").count(), 4, "{said}");
        // Another user with an app password of her own (token auth needs one), so the
        // login throttle (a few failures per user and network) stays out of the way.
        let wrong = format!("{}x", &carols[1..]);
        let said = subsonic_api(gw.addr(), "wrong", "carol", &wrong);
        assert_eq!(said.matches("refused with code").count(), 4, "{said}");
        assert_eq!(gw.upstream.seen().len(), 8, "a refused client never reaches the app");
        Ok(())
    }

    /// In pass-through mode a real Subsonic server (supysonic) behind gatehouse checks the
    /// password itself: py-sonic's clear password is accepted, a wrong one gets supysonic's 40.
    fn pass_through_lets_supysonic_authenticate(kind) on [daemon] {
        prerequisites()?;
        let server = Supysonic::start("bob", PASSWORD);
        let gw = Gateway::start(
            kind,
            Setup::new().set("subsonic", "pass-through").app(&server.url()),
        )?;
        let said = py_sonic(gw.addr(), "ok", "bob", PASSWORD, "clear");
        assert_eq!(said.matches("ping ok").count(), 2, "{said}");
        let said = py_sonic(gw.addr(), "wrong", "bob", "not the password", "clear");
        assert_eq!(said.matches("refused with code 40").count(), 2, "{said}");
        assert!(gw.upstream.seen().is_empty(), "the recording upstream is not the app here");
        drop(gw);
        drop(server);
        Ok(())
    }

    /// In pass-through mode the app receives py-sonic's request as sent, except any client
    /// identity header, which gatehouse still removes.
    fn pass_through_still_strips_client_identity(kind) on [daemon] {
        prerequisites()?;
        let gw = Gateway::start(kind, Setup::new().set("subsonic", "pass-through"))?;
        gw.upstream.set_reply(subsonic_ok_reply());
        let said = py_sonic(gw.addr(), "ok", "bob", PASSWORD, "clear");
        assert_eq!(said.matches("ping ok").count(), 2, "{said}");
        let seen = gw.upstream.wait_for(2);
        for request in &seen {
            assert!(request.identity("Remote-User").is_none(), "{request}");
            assert!(params_seen(request).iter().any(|p| p == "p"), "the app checks p itself");
        }
        let spoofed = seen.iter().filter(|r| !r.has_header_like("Remote-User")).count();
        assert_eq!(spoofed, 2, "no spelling of Remote-User reaches the app");
        Ok(())
    }
}
