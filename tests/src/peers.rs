//! Real peers that no one here wrote, run in front of a gateway: nginx (`auth_request`) and
//! Caddy (`forward_auth`), each configured from the snippet in the README, on a loopback port
//! chosen at run time, and stopped by PID when dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, Conn};
use crate::flows::{
    SESSION_COOKIE, assert_identity, assert_never_seen, get, post_login, session_cookie,
};
use crate::net::{Net, free_port};
use crate::target::Unavailable;
use crate::target::{Gateway, exchange};

/// Spoofed identities a client sends through the proxy.
pub const SPOOFS: [&str; 3] = [
    "Remote-User: mallory",
    "remote-user: mallory",
    "Remote_User: mallory",
];

/// The flows every proxy must get right, for `alice` with [`PASSWORD`]: an anonymous browser is
/// sent to the login page (which leads back), the login form works through the proxy, and a
/// logged-in request reaches the app as alice with no trace of the spoofed identities.
pub fn exercise(proxy: &Proxy, gw: &Gateway) {
    let name = proxy.name;
    // Anonymous browser, with a spoofed identity: to the login page, nothing reaches the app.
    let mut headers = vec!["Accept: text/html"];
    headers.extend(SPOOFS);
    let response = exchange(&mut proxy.client(), &get("/app/inbox", &headers));
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
    let mut client = proxy.client();
    let login = post_login(&mut client, "alice", PASSWORD, "/app/inbox");
    assert_eq!(
        login.status, 303,
        "{name}: login through the proxy: {login}"
    );
    let session = login
        .set_cookie(SESSION_COOKIE)
        .unwrap_or_else(|| panic!("{name}: no session cookie: {login}"));

    // Logged in, with spoofed identities: the app sees alice, once, and no mallory.
    let cookie = session_cookie(&session);
    let mut headers = vec![cookie.as_str()];
    headers.extend(SPOOFS);
    let response = exchange(&mut proxy.client(), &get("/app/inbox", &headers));
    assert_eq!(
        response.status, 200,
        "{name}: logged-in request: {response}"
    );
    let seen = gw.upstream.only();
    assert_identity(&seen, "Remote-User", "alice");
    assert_never_seen(&[seen], "mallory");
}

/// A public path through the proxy: reachable without login, with no identity and no trace of
/// the client's spoofed one.
pub fn public_path_carries_no_identity(proxy: &Proxy, gw: &Gateway) {
    gw.upstream.clear();
    let response = exchange(&mut proxy.client(), &get("/share/abc", &SPOOFS));
    assert_eq!(
        response.status, 200,
        "{}: public path: {response}",
        proxy.name
    );
    let seen = gw.upstream.only();
    assert_never_seen(std::slice::from_ref(&seen), "mallory");
    let identity = seen.identity("Remote-User").unwrap_or_default();
    assert!(
        identity.is_empty(),
        "{}: a public request reached the app with Remote-User {identity:?}:\n{seen}",
        proxy.name
    );
}

/// alice's password in the proxy flows.
pub const PASSWORD: &str = "correct horse battery";

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running proxy. Dropping it stops it (SIGTERM, bounded wait, SIGKILL).
pub struct Proxy {
    pub name: &'static str,
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// nginx with the README's `auth_request` configuration: gatehouse at `gateway`, the app at
    /// `app`. `extra` goes into the `server` block.
    pub fn nginx(gateway: SocketAddr, app: SocketAddr, extra: &str) -> Result<Proxy, Unavailable> {
        let nginx = find_tool(&["nginx", "/usr/sbin/nginx"])?;
        let dir = temp_dir();
        let port = free_port(&Net::Host, LOOPBACK).map_err(|e| Unavailable(e.to_string()))?;
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
        {extra}
        location /_gatehouse/ {{
            proxy_pass http://{gateway};
            proxy_set_header Host $host;
        }}
        location = /_gatehouse/auth/nginx {{
            internal;
            proxy_pass http://{gateway};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
        location / {{
            auth_request /_gatehouse/auth/nginx;
            auth_request_set $gh_user $upstream_http_remote_user;
            auth_request_set $gh_name $upstream_http_remote_name;
            auth_request_set $gh_email $upstream_http_remote_email;
            auth_request_set $gh_groups $upstream_http_remote_groups;
            proxy_set_header Remote-User $gh_user;
            proxy_set_header Remote-Name $gh_name;
            proxy_set_header Remote-Email $gh_email;
            proxy_set_header Remote-Groups $gh_groups;
            error_page 401 = @login;
            proxy_pass http://{app};
        }}
        location @login {{ return 302 /_gatehouse/login?return=$request_uri; }}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| Unavailable(e.to_string()))?;
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"));
        Proxy::spawn("nginx", cmd, port, dir)
    }

    /// Caddy with the README's `forward_auth` configuration.
    pub fn caddy(gateway: SocketAddr, app: SocketAddr) -> Result<Proxy, Unavailable> {
        let caddy = find_tool(&["caddy", "/usr/bin/caddy"])?;
        let dir = temp_dir();
        let port = free_port(&Net::Host, LOOPBACK).map_err(|e| Unavailable(e.to_string()))?;
        let caddyfile = format!(
            "{{
	admin off
	auto_https off
}}
http://:{port} {{
	bind 127.0.0.1
	handle /_gatehouse/* {{
		reverse_proxy {gateway}
	}}
	handle {{
		request_header -Remote_User
		request_header -Remote_Name
		request_header -Remote_Email
		request_header -Remote_Groups
		forward_auth {gateway} {{
			uri /_gatehouse/auth
			copy_headers Remote-User Remote-Name Remote-Email Remote-Groups
		}}
		reverse_proxy {app}
	}}
}}
"
        );
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, caddyfile).map_err(|e| Unavailable(e.to_string()))?;
        let mut cmd = Command::new(caddy);
        cmd.args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path());
        Proxy::spawn("caddy", cmd, port, dir)
    }

    fn spawn(
        name: &'static str,
        mut cmd: Command,
        port: u16,
        dir: tempfile::TempDir,
    ) -> Result<Proxy, Unavailable> {
        let log = std::fs::File::create(dir.path().join("output.log"))
            .map_err(|e| Unavailable(e.to_string()))?;
        let err = log.try_clone().map_err(|e| Unavailable(e.to_string()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| Unavailable(format!("cannot start {name}: {e}")))?;
        let mut proxy = Proxy {
            name,
            addr: SocketAddr::new(LOOPBACK, port),
            child,
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", proxy.log());
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
        let stream = Net::Host
            .connect(self.addr, None)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name));
        Client::new(Conn::Tcp(stream))
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
