//! Real peers that no one here wrote, run in front of a gateway: nginx and Caddy, in
//! forward-auth mode (`auth_request`, `forward_auth`) and in front mode (a plain reverse proxy
//! to gatehouse), each configured from its snippet in the README as the README prints it today
//! (only the addresses and the site name replaced), on a loopback port chosen at run time, and
//! stopped by PID when dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, Conn, Response, contains_ignore_case};
use crate::flows::{SESSION_COOKIE, get, post_login_at, session_cookie, with_host};
use crate::net::{Net, free_port};
use crate::target::Unavailable;
use crate::target::{Gateway, exchange};
use crate::upstream::Seen;

/// Spoofed identities a client sends through the proxy.
/// Only exact names here: a look-alike (`Remote_User`) makes gatehouse refuse a forward-auth
/// call outright, which `proxy_attacks` checks for every deployment.
pub const SPOOFS: [&str; 3] = [
    "Remote-User: mallory",
    "remote-user: mallory",
    "REMOTE-USER: mallory",
];

/// The flows every proxy must get right, for `alice` with [`PASSWORD`]: an anonymous browser is
/// sent to the login page (which leads back), the login form works through the proxy, and a
/// logged-in request reaches the app as alice with no trace of the spoofed identities.
pub fn exercise(proxy: &Proxy, gw: &Gateway) {
    let name = proxy.name;
    gw.upstream.clear();
    // Anonymous browser, with a spoofed identity: to the login page, nothing reaches the app.
    let mut headers = vec!["Accept: text/html"];
    headers.extend(SPOOFS);
    let response = proxy.send(&get("/app/inbox", &headers));
    assert!(
        matches!(response.status, 302 | 303),
        "{name}: anonymous browser: {response}"
    );
    let location = response.header("location").unwrap_or_default();
    assert!(
        location.contains("/_gatehouse/login"),
        "{name}: redirected to {location:?}"
    );
    assert!(
        gw.upstream.seen().is_empty(),
        "{name}: anonymous request reached the app"
    );

    // The login page works through the proxy and gives a session.
    let session = proxy_login(proxy, None, &[], "alice", PASSWORD)
        .unwrap_or_else(|login| panic!("{name}: login through the proxy: {login}"));

    // Logged in, with spoofed identities: the app sees alice, once, and no mallory.
    let cookie = session_cookie(&session);
    let mut headers = vec![cookie.as_str()];
    headers.extend(SPOOFS);
    let response = proxy.send(&get("/app/inbox", &headers));
    assert_eq!(
        response.status, 200,
        "{name}: logged-in request: {response}"
    );
    let seen = gw.upstream.only();
    assert_eq!(seen.target(), "/app/inbox", "{name}: {seen}");
    proxy.assert_app_identity("logged in", &seen, Some("alice"), "mallory");
    gw.upstream.clear();
}

/// Logs in through the proxy's login form from `from`, with `extra` header lines on the POST;
/// the session cookie, or the response that refused it.
pub fn proxy_login(
    proxy: &Proxy,
    from: Option<IpAddr>,
    extra: &[&str],
    user: &str,
    password: &str,
) -> Result<String, Response> {
    let mut client = proxy.client_from(from);
    let login = post_login_at(
        &mut client,
        &proxy.host(),
        extra,
        user,
        password,
        "/app/inbox",
    );
    match login.set_cookie(SESSION_COOKIE) {
        Some(session) if login.status == 303 => Ok(session),
        _ => Err(login),
    }
}

/// A public path through the proxy: reachable without login, with no identity and no trace of
/// the client's spoofed one.
pub fn public_path_carries_no_identity(proxy: &Proxy, gw: &Gateway) {
    gw.upstream.clear();
    let response = proxy.send(&get("/share/abc", &SPOOFS));
    assert_eq!(
        response.status, 200,
        "{}: public path: {response}",
        proxy.name
    );
    let seen = gw.upstream.only();
    assert_eq!(seen.target(), "/share/abc", "{}: {seen}", proxy.name);
    proxy.assert_app_identity("public path", &seen, None, "mallory");
    gw.upstream.clear();
}

/// alice's password in the proxy flows.
pub const PASSWORD: &str = "correct horse battery";

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The addresses and the site name the README's snippets are written with; the suite replaces
/// exactly these strings, and nothing else, with its own.
pub const README_GATEWAY: &str = "127.0.0.1:8080";
pub const README_APP: &str = "127.0.0.1:4533";
pub const README_SITE: &str = "music.example.com";

/// The README's four deployments of gatehouse behind a proxy, each run from its snippet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// Caddy `forward_auth` to `/_gatehouse/auth`, the app behind Caddy.
    CaddyForwardAuth,
    /// nginx `auth_request` to `/_gatehouse/auth/nginx`, the app behind nginx.
    NginxForwardAuth,
    /// Caddy `reverse_proxy` to gatehouse, the app behind gatehouse.
    CaddyFront,
    /// nginx `proxy_pass` to gatehouse, the app behind gatehouse.
    NginxFront,
}

impl Deployment {
    pub const ALL: [Deployment; 4] = [
        Deployment::CaddyForwardAuth,
        Deployment::NginxForwardAuth,
        Deployment::CaddyFront,
        Deployment::NginxFront,
    ];

    /// The marker of its snippet in the README (`<!-- snippet: NAME -->`).
    pub fn snippet(self) -> &'static str {
        match self {
            Deployment::CaddyForwardAuth => "caddy-forward-auth",
            Deployment::NginxForwardAuth => "nginx-forward-auth",
            Deployment::CaddyFront => "caddy-front",
            Deployment::NginxFront => "nginx-front",
        }
    }

    /// Whether the proxy, not gatehouse, builds the request the app receives.
    pub fn is_forward_auth(self) -> bool {
        matches!(
            self,
            Deployment::CaddyForwardAuth | Deployment::NginxForwardAuth
        )
    }

    /// Starts the proxy with its README snippet, gatehouse at `gateway` and the app at `app`.
    pub fn start(self, gateway: SocketAddr, app: SocketAddr) -> Result<Proxy, Unavailable> {
        let snippet = readme_snippet(self.snippet());
        let mut placeholders = vec![README_GATEWAY];
        if self.is_forward_auth() {
            placeholders.push(README_APP);
        }
        if matches!(self, Deployment::CaddyForwardAuth | Deployment::CaddyFront) {
            placeholders.push(README_SITE);
        }
        for placeholder in placeholders {
            assert!(
                snippet.contains(placeholder),
                "README.md: the `{}` snippet must name {placeholder}:\n{snippet}",
                self.snippet()
            );
        }
        let mut proxy = match self {
            Deployment::CaddyForwardAuth | Deployment::CaddyFront => {
                Proxy::caddy_config(self.snippet(), &snippet, gateway, app)
            }
            Deployment::NginxForwardAuth | Deployment::NginxFront => {
                Proxy::nginx_config(self.snippet(), &snippet, gateway, app)
            }
        }?;
        proxy.deployment = Some(self);
        Ok(proxy)
    }
}

/// The README, read when the suite runs (so the suite runs what the README prints today).
fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The fenced code block that directly follows the line `<!-- snippet: NAME -->` in the
/// README, without its fences.
pub fn readme_snippet(name: &str) -> String {
    let text = readme();
    let marker = format!("<!-- snippet: {name} -->");
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.trim() == marker)
        .unwrap_or_else(|| panic!("README.md has no `{marker}` line"));
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "README.md: `{marker}` must be followed directly by a fenced block, not {fence:?}"
    );
    let mut body = String::new();
    for line in lines {
        if line.starts_with("```") {
            return body;
        }
        body.push_str(line);
        body.push('\n');
    }
    panic!("README.md: the block after `{marker}` is not closed");
}

/// `text` with the README's addresses and site replaced, each occurrence once, in one pass
/// (a port chosen at run time may contain another placeholder's digits).
pub fn substitute(text: &str, replacements: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for (from, to) in replacements {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// A running proxy. Dropping it stops it (SIGTERM, bounded wait, SIGKILL).
pub struct Proxy {
    pub name: &'static str,
    /// The README deployment it runs, when it runs one.
    pub deployment: Option<Deployment>,
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// nginx with the README's `auth_request` snippet: gatehouse at `gateway`, the app at `app`.
    pub fn nginx(gateway: SocketAddr, app: SocketAddr) -> Result<Proxy, Unavailable> {
        Deployment::NginxForwardAuth.start(gateway, app)
    }

    /// Caddy with the README's `forward_auth` snippet.
    pub fn caddy(gateway: SocketAddr, app: SocketAddr) -> Result<Proxy, Unavailable> {
        Deployment::CaddyForwardAuth.start(gateway, app)
    }

    /// nginx with the README's front-mode snippet: gatehouse at `gateway` behind it.
    pub fn nginx_front(gateway: SocketAddr) -> Result<Proxy, Unavailable> {
        Deployment::NginxFront.start(gateway, gateway)
    }

    /// Caddy with the README's front-mode snippet.
    pub fn caddy_front(gateway: SocketAddr) -> Result<Proxy, Unavailable> {
        Deployment::CaddyFront.start(gateway, gateway)
    }

    /// nginx serving `locations` (nginx `location` blocks written with the README's addresses)
    /// in a minimal `http`/`server` skeleton on a loopback port chosen now.
    pub fn nginx_config(
        name: &'static str,
        locations: &str,
        gateway: SocketAddr,
        app: SocketAddr,
    ) -> Result<Proxy, Unavailable> {
        let nginx = find_tool(&["nginx", "/usr/sbin/nginx"])?;
        Proxy::with_free_port(|port| Proxy::nginx_on(name, &nginx, port, locations, gateway, app))
    }

    fn nginx_on(
        name: &'static str,
        nginx: &Path,
        port: u16,
        locations: &str,
        gateway: SocketAddr,
        app: SocketAddr,
    ) -> Result<Proxy, Spawn> {
        let dir = temp_dir();
        let gateway = gateway.to_string();
        let app = app.to_string();
        let locations = substitute(locations, &[(README_GATEWAY, &gateway), (README_APP, &app)]);
        let d = dir.path().display();
        let conf = format!(
            r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| Spawn::Unavailable(e.to_string()))?;
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"));
        Proxy::spawn(name, cmd, port, dir)
    }

    /// Caddy serving `site` (a Caddyfile site block for `music.example.com`, written with the
    /// README's addresses) as `http://127.0.0.1:PORT`, with a port chosen now.
    pub fn caddy_config(
        name: &'static str,
        site: &str,
        gateway: SocketAddr,
        app: SocketAddr,
    ) -> Result<Proxy, Unavailable> {
        let caddy = find_tool(&["caddy", "/usr/bin/caddy"])?;
        Proxy::with_free_port(|port| Proxy::caddy_on(name, &caddy, port, site, gateway, app))
    }

    fn caddy_on(
        name: &'static str,
        caddy: &Path,
        port: u16,
        site: &str,
        gateway: SocketAddr,
        app: SocketAddr,
    ) -> Result<Proxy, Spawn> {
        let dir = temp_dir();
        let gateway = gateway.to_string();
        let app = app.to_string();
        let address = format!("http://127.0.0.1:{port}");
        let site = substitute(
            site,
            &[
                (README_GATEWAY, &gateway),
                (README_APP, &app),
                (README_SITE, &address),
            ],
        );
        let caddyfile = format!("{{\n\tadmin off\n\tauto_https off\n}}\n{site}");
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, caddyfile).map_err(|e| Spawn::Unavailable(e.to_string()))?;
        let mut cmd = Command::new(caddy);
        cmd.args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path());
        Proxy::spawn(name, cmd, port, dir)
    }

    /// Starts a proxy on a port chosen now, and again on another one when the port was taken
    /// between choosing it and binding it (Caddy binds every address, so a client socket of
    /// another test on that port is enough).
    fn with_free_port(
        mut start: impl FnMut(u16) -> Result<Proxy, Spawn>,
    ) -> Result<Proxy, Unavailable> {
        const ATTEMPTS: usize = 5;
        for _ in 1..ATTEMPTS {
            let port = free_port(&Net::Host, LOOPBACK).map_err(|e| Unavailable(e.to_string()))?;
            match start(port) {
                Ok(proxy) => return Ok(proxy),
                Err(Spawn::PortTaken) => continue,
                Err(Spawn::Unavailable(e)) => return Err(Unavailable(e)),
            }
        }
        let port = free_port(&Net::Host, LOOPBACK).map_err(|e| Unavailable(e.to_string()))?;
        match start(port) {
            Ok(proxy) => Ok(proxy),
            Err(Spawn::PortTaken) => panic!("no free port after {ATTEMPTS} attempts"),
            Err(Spawn::Unavailable(e)) => Err(Unavailable(e)),
        }
    }

    fn spawn(
        name: &'static str,
        mut cmd: Command,
        port: u16,
        dir: tempfile::TempDir,
    ) -> Result<Proxy, Spawn> {
        let log = std::fs::File::create(dir.path().join("output.log"))
            .map_err(|e| Spawn::Unavailable(e.to_string()))?;
        let err = log
            .try_clone()
            .map_err(|e| Spawn::Unavailable(e.to_string()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| Spawn::Unavailable(format!("cannot start {name}: {e}")))?;
        let mut proxy = Proxy {
            name,
            deployment: None,
            addr: SocketAddr::new(LOOPBACK, port),
            child,
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                let log = proxy.log();
                if log.contains("address already in use") || log.contains("Address already in use")
                {
                    return Err(Spawn::PortTaken);
                }
                panic!("{name} exited with {status}:\n{log}");
            }
            if Net::Host.connect(proxy.addr, None).is_ok() {
                return Ok(proxy);
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} did not listen within {READY_TIMEOUT:?}:\n{}",
                    proxy.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new client connection to the proxy.
    pub fn client(&self) -> Client {
        self.client_from(None)
    }

    /// A new client connection to the proxy from a chosen loopback source address
    /// (127.0.0.2 for an attacker, 127.0.0.3 for its victim).
    pub fn client_from(&self, ip: Option<IpAddr>) -> Client {
        let stream = Net::Host
            .connect(self.addr, ip)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name));
        Client::new(Conn::Tcp(stream))
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `Host` a browser sends to the proxy: its address with the port, as in the URL.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `request` (built with [`crate::flows`]) addressed to this proxy's site.
    pub fn at(&self, request: &[u8]) -> Vec<u8> {
        with_host(request, &self.host())
    }

    /// Sends `request` (addressed to this proxy's site) on a new connection and reads the
    /// final response.
    pub fn send(&self, request: &[u8]) -> Response {
        exchange(&mut self.client(), &self.at(request))
    }

    /// Asserts what identity the app received in `seen`: `Remote-User` is `user` (`None`: no
    /// identity at all, absent or empty), and `attacker` reached the app in no header that
    /// could be read as the identity header, in any spelling (a CGI-style app folds `_` into
    /// `-`), nor as its groups.
    pub fn assert_app_identity(&self, what: &str, seen: &Seen, user: Option<&str>, attacker: &str) {
        let name = self.name;
        let got = seen.identity("Remote-User").filter(|v| !v.is_empty());
        assert_eq!(
            got.as_deref(),
            user,
            "{name}: {what}: the app received the wrong identity:\n{seen}"
        );
        // Nobody in these scenes is an admin: no spelling of the groups header may say so.
        for (header, value) in seen.headers() {
            let folded = header.trim().to_ascii_lowercase().replace('_', "-");
            assert!(
                folded != "remote-groups" || !value.to_ascii_lowercase().contains("admins"),
                "{name}: {what}: the app was told `{header}: {value}`:\n{seen}"
            );
        }
        let deployment = self.deployment;
        if deployment.is_some_and(|d| !d.is_forward_auth()) {
            // gatehouse built this request: nothing of the attacker's may be in it.
            assert!(
                !contains_ignore_case(&seen.head, attacker.as_bytes()),
                "{name}: {what}: {attacker:?} reached the app:\n{seen}"
            );
            return;
        }
        for (header, value) in seen.headers() {
            if !contains_ignore_case(value.as_bytes(), attacker.as_bytes()) {
                continue;
            }
            let readable_as_identity =
                header.trim().to_ascii_lowercase().replace('_', "-") == "remote-user";
            assert!(
                !readable_as_identity,
                "{name}: {what}: {attacker:?} reached the app in `{header}`:\n{seen}"
            );
        }
    }

    /// What the proxy logged.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for file in ["output.log", "error.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(file)) {
                out.push_str(&text);
            }
        }
        out
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

/// Why a proxy did not start.
enum Spawn {
    /// Its port was taken before it could bind it: try another.
    PortTaken,
    Unavailable(String),
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("gatehouse-peer-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temporary directory: {e}"))
}

fn find_tool(candidates: &[&str]) -> Result<std::path::PathBuf, Unavailable> {
    for c in candidates {
        if c.contains('/') {
            if Path::new(c).is_file() {
                return Ok(c.into());
            }
        } else if let Some(paths) = std::env::var_os("PATH") {
            for p in std::env::split_paths(&paths) {
                if p.join(c).is_file() {
                    return Ok(p.join(c));
                }
            }
        }
    }
    Err(Unavailable(format!("`{}` is not installed", candidates[0])))
}
