//! The deployables under test and how each is started, reached and stopped.
//!
//! A [`Gateway`] is one running deployable with its own recording [`Upstream`], started from a
//! [`Setup`] (users, trusted sources, settings). Whatever happens, including a panicking test,
//! dropping it stops the process by its PID, and removes the network namespace it ran in.
//!
//! | target     | runs                                    | clients reach it at               |
//! |------------|-----------------------------------------|-----------------------------------|
//! | `daemon`   | the `gatehouse` binary on loopback      | 127.0.0.1:port (from 127.0.0.3)   |
//! | `host_tap` | the host-tap board in a network namespace | 192.0.2.15:80 (from 192.0.2.3)  |
//! | `qemu`     | the mps2-an386 image under QEMU         | 127.0.0.1:port (QEMU hostfwd)     |

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::client::{Client, Conn, Response};
use crate::net::{Net, NetNs, free_port};
use crate::upstream::Upstream;

/// The deployables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Daemon,
    HostTap,
    Qemu,
}

impl Kind {
    /// The target named as in the generated test names (`daemon`, `host_tap`, `qemu`).
    pub fn from_name(name: &str) -> Kind {
        match name {
            "daemon" => Kind::Daemon,
            "host_tap" => Kind::HostTap,
            "qemu" => Kind::Qemu,
            other => panic!("unknown conformance target {other}"),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Daemon => "daemon",
            Kind::HostTap => "host_tap",
            Kind::Qemu => "qemu",
        })
    }
}

/// A target that cannot run here, and why (a missing tool, image or privilege).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a case returns: `Err` only when its target cannot run here.
pub type Outcome = Result<(), Unavailable>;

/// Whether this run is CI (`CI=true`), where an unavailable target is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Runs one case against one target; the conformance macro calls this for each pair.
pub fn run_case(name: &str, kind: Kind, case: fn(Kind) -> Outcome) {
    match case(kind) {
        Ok(()) => {}
        Err(why) if in_ci() => {
            panic!("{name} on {kind}: target unavailable, and CI=true makes that a failure: {why}")
        }
        Err(why) => eprintln!("\n*** SKIPPED {name} on {kind}: {why} ***\n"),
    }
}

/// A user the gateway knows before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    pub admin: bool,
}

/// Whose identity header (and forwarding headers) the gateway believes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// Nobody (the default of every deployable).
    #[default]
    Nobody,
    /// The harness's proxy address ([`Gateway::proxy_client`]), and nothing else, in
    /// `trusted_sources`: identity and forwarding trust.
    Proxy,
    /// The harness's proxy address in `trusted_proxies` only: forwarding trust (its
    /// `X-Forwarded-For` and forward-auth headers), never its identity header.
    ForwardingProxy,
    /// This trusted-sources list, as written.
    List(String),
    /// This trusted-proxies list, as written (forwarding trust only).
    ProxiesList(String),
}

/// How a gateway is configured for one case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Setup {
    pub users: Vec<User>,
    pub trust: Trust,
    /// Further configuration keys and values (`public_paths`, `session_ttl`, …).
    pub settings: Vec<(String, String)>,
    /// Also listen on a UNIX socket (daemon only): its peers are the `@` source.
    pub unix_listener: bool,
    /// Send requests to this app (`http://host:port`, daemon only) instead of the recording
    /// upstream, which still runs but sees nothing.
    pub app: Option<String>,
}

impl Setup {
    pub fn new() -> Setup {
        Setup::default()
    }

    /// Adds an ordinary user.
    pub fn user(mut self, name: &str, password: &str) -> Setup {
        self.users.push(User {
            name: name.into(),
            password: password.into(),
            admin: false,
        });
        self
    }

    /// Adds an administrator.
    pub fn admin(mut self, name: &str, password: &str) -> Setup {
        self.users.push(User {
            name: name.into(),
            password: password.into(),
            admin: true,
        });
        self
    }

    pub fn trust(mut self, trust: Trust) -> Setup {
        self.trust = trust;
        self
    }

    /// Sets a configuration key (the spelling of the daemon's TOML file).
    pub fn set(mut self, key: &str, value: &str) -> Setup {
        self.settings.push((key.into(), value.into()));
        self
    }

    pub fn with_unix_listener(mut self) -> Setup {
        self.unix_listener = true;
        self
    }

    /// Puts a real app (`http://host:port`) behind the daemon in place of the recording upstream.
    pub fn app(mut self, url: &str) -> Setup {
        self.app = Some(url.into());
        self
    }
}

/// How many times a start that lost a port race is retried.
const START_ATTEMPTS: usize = 3;
/// How long a deployable may take to answer its health check.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stopped process gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// PBKDF2 iterations for the users a case creates (the minimum core accepts: tests log in
/// many times and a debug build hashes slowly).
const TEST_ITERATIONS: &str = "1000";

/// The health request every deployable answers.
pub const HEALTH: &[u8] = b"GET /_gatehouse/health HTTP/1.1\r\nHost: gw\r\n\r\n";

/// A running deployable, its upstream and everything it needs; dropping it stops it.
pub struct Gateway {
    pub kind: Kind,
    /// The app behind the gateway.
    pub upstream: Upstream,
    addr: SocketAddr,
    net: Net,
    client_ip: Option<IpAddr>,
    proxy_ip: Option<IpAddr>,
    unix_socket: Option<PathBuf>,
    process: Process,
    /// Kept last: the files of the run (state, logs) outlive the process.
    dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts `kind` with `setup`, or says why it cannot run here.
    pub fn start(kind: Kind, setup: Setup) -> Result<Gateway, Unavailable> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match start_once(kind, &setup)? {
                Ok(gateway) => return Ok(gateway),
                Err(why) => last = why,
            }
        }
        panic!("{kind} did not start: {last}")
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The peer address an ordinary (untrusted) client connects from, when the target lets the
    /// harness choose it.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// A new connection from an ordinary client.
    pub fn client(&self) -> Client {
        self.client_from(self.client_ip)
    }

    /// A new connection from the harness's proxy address ([`Trust::Proxy`],
    /// [`Trust::ForwardingProxy`]).
    pub fn proxy_client(&self) -> Client {
        let ip = self
            .proxy_ip
            .unwrap_or_else(|| panic!("{}: clients cannot choose their address", self.kind));
        self.client_from(Some(ip))
    }

    /// A new connection from a chosen source address.
    pub fn client_from(&self, ip: Option<IpAddr>) -> Client {
        let stream = self
            .net
            .connect(self.addr, ip)
            .unwrap_or_else(|e| panic!("{}: cannot connect to {}: {e}", self.kind, self.addr));
        Client::new(Conn::Tcp(stream))
    }

    /// A new connection over the gateway's UNIX socket (the `@` peer).
    pub fn unix_client(&self) -> Client {
        let path = self
            .unix_socket
            .as_ref()
            .unwrap_or_else(|| panic!("{}: started without a UNIX listener", self.kind));
        let stream = UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", path.display()));
        Client::new(Conn::Unix(stream))
    }

    /// Sends `request` on a new ordinary connection and reads the (final) response.
    pub fn send(&self, request: &[u8]) -> Response {
        let mut client = self.client();
        exchange(&mut client, request)
    }

    /// Runs the gatehouse CLI against this daemon's state directory (users, keys).
    pub fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        assert_eq!(self.kind, Kind::Daemon, "only the daemon has a CLI");
        run_cli(&self.dir.path().join("state"), args, stdin)
    }

    /// The address [`Trust::Proxy`] trusts, when the target lets clients choose theirs.
    pub fn proxy_ip(&self) -> Option<IpAddr> {
        self.proxy_ip
    }

    /// Asks the daemon to reload (SIGHUP): session keys, TLS files, the users file.
    pub fn reload(&self) {
        assert_eq!(self.kind, Kind::Daemon, "only the daemon reloads on SIGHUP");
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid() as i32) {
            rustix::process::kill_process(pid, rustix::process::Signal::HUP)
                .unwrap_or_else(|e| panic!("SIGHUP to {}: {e}", self.pid()));
        }
    }

    /// The resident memory of the deployable's process, in KiB (Linux `VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("/proc/{}/status: {e}", self.pid()));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// The daemon's state directory (users file, session keys).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    /// The PID of the deployable's process.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) until the deployable answers its health check.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.process.child.try_wait() {
                return Err(format!(
                    "exited with {status} before it was ready:\n{}",
                    self.log()
                ));
            }
            match self.net.connect(self.addr, self.client_ip) {
                Ok(stream) => {
                    let mut client = Client::new(Conn::Tcp(stream));
                    match client.send(HEALTH).map(|_| client.response()) {
                        Ok(Ok(r)) if r.status == 200 => return Ok(()),
                        Ok(Ok(r)) => last = format!("health answered {}", r.status),
                        Ok(Err(e)) => last = e.to_string(),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "not ready within {READY_TIMEOUT:?}: {last}\n{}",
            self.log()
        ))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.process.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log (tail) ---\n{}",
                self.kind,
                tail(&self.process.decoded_log(), 80)
            );
            eprintln!("(files of this run: {})", self.dir.path().display());
        }
    }
}

/// Sends `request` and reads the final response, failing the test with what arrived instead.
pub fn exchange(client: &mut Client, request: &[u8]) -> Response {
    client
        .send(request)
        .unwrap_or_else(|e| panic!("cannot send {:?}: {e}", String::from_utf8_lossy(request)));
    client
        .final_response()
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(request)))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process stopped by its PID on drop: SIGTERM, a bounded wait, then SIGKILL.
struct Process {
    child: Child,
    log: PathBuf,
    /// The ELF whose defmt frames the log holds (the QEMU board).
    defmt_elf: Option<PathBuf>,
    /// Kept so the namespace the process runs in is removed only after it stopped.
    _ns: Option<Arc<NetNs>>,
}

impl Process {
    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn decoded_log(&self) -> String {
        if let Some(elf) = &self.defmt_elf {
            let decoded = File::open(&self.log).and_then(|raw| {
                Command::new("defmt-print")
                    .arg("-e")
                    .arg(elf)
                    .stdin(raw)
                    .output()
            });
            return match decoded {
                Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
                Err(e) => format!(
                    "(defmt-print unavailable: {e}; raw log {})",
                    self.log.display()
                ),
            };
        }
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The workspace's root folder.
fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The cargo target directory this test binary was built in (`<target>/<profile>/deps/…`).
fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return workspace_dir().join(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| workspace_dir().join("target"))
}

/// The `gatehouse` binary: `$GATEHOUSE_BIN`, or built once per test run with cargo.
fn daemon_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BINARY.get_or_init(|| {
        if let Ok(path) = std::env::var("GATEHOUSE_BIN") {
            return Ok(PathBuf::from(path));
        }
        let profile_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
            .ok_or("cannot tell where this test binary lives")?;
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(workspace_dir()).args([
            "build",
            "-p",
            "gatehouse-daemon",
            "--bin",
            "gatehouse",
        ]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        if in_ci() {
            build.arg("--locked");
        }
        let status = build
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build -p gatehouse-daemon failed: {status}"));
        }
        Ok(profile_dir.join("gatehouse"))
    });
    match found {
        Ok(path) => path.clone(),
        Err(why) => panic!("the daemon binary is not available: {why}"),
    }
}

/// A command running the daemon binary, with none of the caller's `GATEHOUSE_*` variables (the
/// daemon reads its settings from them, and refuses names it does not know).
fn daemon_command() -> Command {
    let mut cmd = Command::new(daemon_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn run_cli(state_dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = daemon_command();
    match args.split_first() {
        Some((&"users", rest)) => {
            cmd.arg("users")
                .arg("--state-dir")
                .arg(state_dir)
                .args(rest);
        }
        _ => {
            cmd.args(args);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run gatehouse {args:?}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("gatehouse {args:?}: {e}"))
}

/// One start attempt: `Err` when the target cannot run here, `Ok(Err)` when this attempt
/// failed in a way a retry may fix (a port taken in between).
fn start_once(kind: Kind, setup: &Setup) -> Result<Result<Gateway, String>, Unavailable> {
    match kind {
        Kind::Daemon => Ok(start_daemon(setup)),
        Kind::Qemu => start_qemu(setup),
        Kind::HostTap => start_host_tap(setup),
    }
}

fn new_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("gatehouse-conformance-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temporary directory: {e}"))
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Daemon: where ordinary clients and the trusted proxy connect from (loopback aliases).
const DAEMON_CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const DAEMON_PROXY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn start_daemon(setup: &Setup) -> Result<Gateway, String> {
    let dir = new_dir();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    for user in &setup.users {
        let mut args = vec!["users", "--iterations", TEST_ITERATIONS, "add", &user.name];
        if user.admin {
            args.push("--admin");
        }
        args.push("--password-stdin");
        let out = run_cli(&state, &args, &format!("{}\n", user.password));
        if !out.status.success() {
            panic!(
                "gatehouse {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let port = free_port(&Net::Host, LOOPBACK).map_err(|e| e.to_string())?;
    let addr = SocketAddr::new(LOOPBACK, port);
    let upstream = Upstream::start(Net::Host, SocketAddr::new(LOOPBACK, 0))
        .map_err(|e| format!("upstream: {e}"))?;
    let (trusted, proxies) = match &setup.trust {
        Trust::Nobody => (String::new(), String::new()),
        Trust::Proxy => (format!("{DAEMON_PROXY_IP}/32"), String::new()),
        Trust::ForwardingProxy => (String::new(), format!("{DAEMON_PROXY_IP}/32")),
        Trust::List(list) => (list.clone(), String::new()),
        Trust::ProxiesList(list) => (String::new(), list.clone()),
    };
    let unix_socket = setup
        .unix_listener
        .then(|| dir.path().join("gatehouse.sock"));
    let mut cmd = daemon_command();
    cmd.arg("serve")
        .arg("--allow-root")
        .args(["--password-iterations", TEST_ITERATIONS])
        .args(["--listen", &addr.to_string()])
        .args([
            "--upstream",
            &setup
                .app
                .clone()
                .unwrap_or_else(|| format!("http://{}", upstream.addr())),
        ])
        .arg("--state-dir")
        .arg(&state)
        .args(["--trusted-sources", &trusted])
        .args(["--trusted-proxies", &proxies]);
    if let Some(path) = &unix_socket {
        cmd.arg("--listen").arg(format!("unix:{}", path.display()));
    }
    for (key, value) in &setup.settings {
        cmd.arg(format!("--{}", key.replace('_', "-"))).arg(value);
    }
    let log = dir.path().join("gatehouse.log");
    let process = spawn_logged(cmd, &log, None, None)?;
    let mut gateway = Gateway {
        kind: Kind::Daemon,
        upstream,
        addr,
        net: Net::Host,
        client_ip: Some(DAEMON_CLIENT_IP),
        proxy_ip: Some(DAEMON_PROXY_IP),
        unix_socket,
        process,
        dir,
    };
    gateway.wait_ready()?;
    Ok(gateway)
}

fn spawn_logged(
    mut cmd: Command,
    log: &Path,
    defmt_elf: Option<PathBuf>,
    ns: Option<Arc<NetNs>>,
) -> Result<Process, String> {
    let out = File::create(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    Ok(Process {
        child,
        log: log.to_path_buf(),
        defmt_elf,
        _ns: ns,
    })
}

/// The firmware boards read their configuration and users from a provisioned region; the
/// harness writes one per case (`boards/provision.py`). Settings beyond users and trust, and
/// UNIX sockets, are the daemon's alone for now.
fn firmware_setup_supported(kind: Kind, setup: &Setup) -> Result<(), Unavailable> {
    if setup.settings.is_empty() && !setup.unix_listener {
        Ok(())
    } else {
        Err(Unavailable(format!(
            "{kind}: the board's configuration region takes users and trusted sources only"
        )))
    }
}

/// Writes the configuration region a firmware board boots from: `network` is the board's
/// address and the app's (`"upstream"`, `"address"`, `"gateway"` keys), `proxy` the address the
/// harness's trusted proxy connects from on this board, if it has one.
fn firmware_region(
    dir: &Path,
    kind: Kind,
    setup: &Setup,
    network: &[(&str, &str)],
    proxy: Option<IpAddr>,
) -> Result<Result<PathBuf, String>, Unavailable> {
    need_tool("python3")?;
    let proxy_entry = || match proxy {
        Some(ip) => Ok(format!("{ip}/32")),
        None => Err(Unavailable(format!(
            "{kind}: every client reaches this board from one address, so no proxy can be \
             told apart"
        ))),
    };
    let (trusted, proxies) = match &setup.trust {
        Trust::Nobody => (String::new(), String::new()),
        Trust::Proxy => (proxy_entry()?, String::new()),
        Trust::ForwardingProxy => (String::new(), proxy_entry()?),
        Trust::List(list) => (list.clone(), String::new()),
        Trust::ProxiesList(list) => (String::new(), list.clone()),
    };
    let mut config = String::from("{");
    for (key, value) in network {
        config.push_str(&format!("\"{key}\":\"{value}\","));
    }
    config.push_str(&format!(
        "\"trusted_sources\":\"{trusted}\",\"trusted_proxies\":\"{proxies}\",\
         \"password_iterations\":{TEST_ITERATIONS}}}"
    ));
    let config_path = dir.join("config.json");
    let region = dir.join("region.bin");
    if let Err(e) = std::fs::write(&config_path, config) {
        return Ok(Err(format!("{}: {e}", config_path.display())));
    }
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_dir().join("boards/provision.py"))
        .arg("--config")
        .arg(&config_path)
        .args(["--iterations", TEST_ITERATIONS])
        .arg("-o")
        .arg(&region);
    for user in &setup.users {
        let admin = if user.admin { ":admin" } else { "" };
        cmd.arg("--user")
            .arg(format!("{}:{}{admin}", user.name, user.password));
    }
    Ok(match cmd.output() {
        Ok(out) if out.status.success() => Ok(region),
        Ok(out) => Err(format!(
            "provision.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run provision.py: {e}")),
    })
}

fn need_tool(tool: &str) -> Result<(), Unavailable> {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()));
    if found {
        Ok(())
    } else {
        Err(Unavailable(format!("`{tool}` is not installed")))
    }
}

fn need_file(path: &Path, how: &str) -> Result<(), Unavailable> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Unavailable(format!(
            "{} is missing ({how})",
            path.display()
        )))
    }
}

/// QEMU board: the guest's upstream, 192.0.2.100:8080, is forwarded by QEMU to this port.
fn start_qemu(setup: &Setup) -> Result<Result<Gateway, String>, Unavailable> {
    firmware_setup_supported(Kind::Qemu, setup)?;
    need_tool("qemu-system-arm")?;
    need_tool("nc")?;
    let board = workspace_dir().join("boards/qemu-mps2-an386");
    let elf = std::env::var_os("GATEHOUSE_QEMU_ELF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            target_dir().join("boards/thumbv7em-none-eabihf/release/gatehouse-qemu")
        });
    need_file(
        &elf,
        "build it with `cd boards/qemu-mps2-an386 && CARGO_TARGET_DIR=../../target/boards cargo \
         build --release`, or set GATEHOUSE_QEMU_ELF",
    )?;
    let dir = new_dir();
    let region = match firmware_region(
        dir.path(),
        Kind::Qemu,
        setup,
        &[
            ("upstream", "192.0.2.100:8080"),
            ("address", "192.0.2.15/24"),
            ("gateway", "192.0.2.2"),
        ],
        None,
    )? {
        Ok(region) => region,
        Err(e) => return Ok(Err(e)),
    };
    Ok((|| {
        let port = free_port(&Net::Host, LOOPBACK).map_err(|e| e.to_string())?;
        let upstream = Upstream::start(Net::Host, SocketAddr::new(LOOPBACK, 0))
            .map_err(|e| format!("upstream: {e}"))?;
        // The board's own script holds its QEMU command line; use it rather than a copy.
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(r#"source "$1" && exec qemu-system-arm "${qemu_args[@]}""#)
            .arg("qemu")
            .arg(board.join("qemu-args.sh"))
            .env("elf", &elf)
            .env("port", port.to_string())
            .env("upstream_port", upstream.addr().port().to_string())
            .env("GATEHOUSE_CONFIG_BLOB", &region);
        let log = dir.path().join("defmt.raw");
        let process = spawn_logged(cmd, &log, Some(elf.clone()), None)?;
        let mut gateway = Gateway {
            kind: Kind::Qemu,
            upstream,
            addr: SocketAddr::new(LOOPBACK, port),
            net: Net::Host,
            client_ip: None,
            proxy_ip: None,
            unix_socket: None,
            process,
            dir,
        };
        gateway.wait_ready()?;
        Ok(gateway)
    })())
}

/// Host-tap board: a namespace with a TAP device; the board is 192.0.2.15, the host side of the
/// TAP holds the clients' addresses and the upstream (192.0.2.1:8080).
fn start_host_tap(setup: &Setup) -> Result<Result<Gateway, String>, Unavailable> {
    firmware_setup_supported(Kind::HostTap, setup)?;
    if !rustix::process::geteuid().is_root() {
        return Err(Unavailable(
            "host_tap needs root (network namespaces and TAP devices)".into(),
        ));
    }
    need_tool("ip")?;
    if !Path::new("/dev/net/tun").exists() {
        return Err(Unavailable("/dev/net/tun is missing".into()));
    }
    let bin = std::env::var_os("GATEHOUSE_HOST_TAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("boards/release/gatehouse-host-tap"));
    need_file(
        &bin,
        "build it with `cd boards/host-tap && CARGO_TARGET_DIR=../../target/boards cargo build \
         --release`, or set GATEHOUSE_HOST_TAP_BIN",
    )?;
    let dir = new_dir();
    let region = match firmware_region(
        dir.path(),
        Kind::HostTap,
        setup,
        &[
            ("upstream", "192.0.2.1:8080"),
            ("address", "192.0.2.15/24"),
            ("gateway", "192.0.2.1"),
        ],
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
    )? {
        Ok(region) => region,
        Err(e) => return Ok(Err(e)),
    };
    Ok((|| {
        let ns = Arc::new(NetNs::create().map_err(|e| e.to_string())?);
        let tap = "ghtap0";
        ns.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])
            .map_err(|e| e.to_string())?;
        for addr in ["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24"] {
            ns.ip(&["addr", "add", addr, "dev", tap])
                .map_err(|e| e.to_string())?;
        }
        ns.ip(&["link", "set", tap, "up"])
            .map_err(|e| e.to_string())?;
        let net = Net::Namespace(ns.clone());
        let upstream = Upstream::start(
            net.clone(),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 8080),
        )
        .map_err(|e| format!("upstream: {e}"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .arg(&bin)
            .args(["--tap", tap, "--config"])
            .arg(&region)
            .arg("--state")
            .arg(dir.path().join("store.bin"));
        let log = dir.path().join("gateway.log");
        let process = spawn_logged(cmd, &log, None, Some(ns))?;
        let mut gateway = Gateway {
            kind: Kind::HostTap,
            upstream,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 15)), 80),
            net,
            client_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))),
            proxy_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
            unix_socket: None,
            process,
            dir,
        };
        gateway.wait_ready()?;
        Ok(gateway)
    })())
}
