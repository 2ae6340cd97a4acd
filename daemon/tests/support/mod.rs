//! Test support: the `gatehouse` binary under test, a recording upstream, and a raw HTTP
//! client. Everything runs on loopback with ports the kernel picks; every process and thread
//! started here is stopped when its guard drops, also when a test panics.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// How long any wait in these tests may last before the test fails (never a timing assertion:
/// only a bound so a broken build fails instead of hanging).
pub const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The recording upstream

/// One request as the app received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header whose name reads as `name` ignoring case and `_`/`-`.
    pub fn lookalikes(&self, name: &str) -> Vec<(String, String)> {
        let fold = |s: &str| s.to_ascii_lowercase().replace('_', "-");
        self.headers
            .iter()
            .filter(|(n, _)| fold(n) == fold(name))
            .cloned()
            .collect()
    }
}

/// Where the recorder listens.
pub enum RecorderAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A small HTTP/1.1 app that records every request head and body and answers `200 ok`.
pub struct Recorder {
    pub addr: RecorderAddr,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    delay: Arc<Mutex<Duration>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        let addr = listener.local_addr().expect("addr");
        Recorder::spawn(RecorderAddr::Tcp(addr), Accept::Tcp(listener))
    }

    /// Listens on a given loopback port (to bring an app "back" on the same address).
    pub fn start_on(addr: SocketAddr) -> Recorder {
        let listener = TcpListener::bind(addr).expect("bind recorder");
        Recorder::spawn(RecorderAddr::Tcp(addr), Accept::Tcp(listener))
    }

    pub fn start_unix(path: &Path) -> Recorder {
        let listener = UnixListener::bind(path).expect("bind recorder socket");
        Recorder::spawn(RecorderAddr::Unix(path.to_owned()), Accept::Unix(listener))
    }

    fn spawn(addr: RecorderAddr, listener: Accept) -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (s, st, d) = (seen.clone(), stop.clone(), delay.clone());
        let thread = std::thread::spawn(move || {
            loop {
                let conn: Box<dyn ReadWrite> = match &listener {
                    Accept::Tcp(l) => match l.accept() {
                        Ok((c, _)) => Box::new(c),
                        Err(_) => break,
                    },
                    Accept::Unix(l) => match l.accept() {
                        Ok((c, _)) => Box::new(c),
                        Err(_) => break,
                    },
                };
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let (s, d) = (s.clone(), d.clone());
                std::thread::spawn(move || serve_recorded(conn, s, d));
            }
        });
        Recorder {
            addr,
            seen,
            delay,
            stop,
            thread: Some(thread),
        }
    }

    /// Makes the app wait this long after recording a request before it answers.
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().expect("lock") = d;
    }

    /// Waits (bounded) until the app has recorded `n` requests.
    pub fn wait_for(&self, n: usize) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.seen.lock().expect("lock").len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The address in `upstream` syntax.
    pub fn upstream(&self) -> String {
        match &self.addr {
            RecorderAddr::Tcp(a) => format!("http://{a}"),
            RecorderAddr::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        match &self.addr {
            RecorderAddr::Tcp(a) => drop(TcpStream::connect(a)),
            RecorderAddr::Unix(p) => {
                drop(UnixStream::connect(p));
                let _ = std::fs::remove_file(p);
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Accept {
    Tcp(TcpListener),
    Unix(UnixListener),
}

pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

fn serve_recorded(
    mut conn: Box<dyn ReadWrite>,
    seen: Arc<Mutex<Vec<Recorded>>>,
    delay: Arc<Mutex<Duration>>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut conn, &mut buf) else {
            return;
        };
        let path = req
            .request_line
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        seen.lock().expect("lock").push(req);
        let wait = *delay.lock().expect("lock");
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let body = format!("ok {path}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads one request (head, then a Content-Length or chunked body) from `conn`, keeping any
/// bytes after it in `buf`.
pub fn read_request(conn: &mut dyn Read, buf: &mut Vec<u8>) -> Option<Recorded> {
    let head_end = fill_until(conn, buf, |b| find(b, b"\r\n\r\n").map(|i| i + 4))?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body =
        if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = fill_until(conn, buf, |b| find(b, b"\r\n").map(|i| i + 2))?;
                let line = String::from_utf8_lossy(&buf[..line_end - 2]).into_owned();
                buf.drain(..line_end);
                let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
                if size == 0 {
                    // Trailers until the empty line.
                    loop {
                        let end = fill_until(conn, buf, |b| find(b, b"\r\n").map(|i| i + 2))?;
                        let empty = end == 2;
                        buf.drain(..end);
                        if empty {
                            break;
                        }
                    }
                    break;
                }
                fill_until(conn, buf, |b| (b.len() >= size + 2).then_some(size + 2))?;
                body.extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
            }
            body
        } else {
            let len: usize = get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            fill_until(conn, buf, |b| (b.len() >= len).then_some(len))?;
            buf.drain(..len).collect()
        };
    Some(Recorded {
        request_line,
        headers,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn fill_until(
    conn: &mut dyn Read,
    buf: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    loop {
        if let Some(n) = done(buf) {
            return Some(n);
        }
        let mut chunk = [0u8; 8192];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 16 * 1024 * 1024 {
            return None;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway under test

/// A running `gatehouse` process, killed by PID when dropped.
pub struct Gateway {
    pub child: Child,
    /// The first TCP address it listens on (`None` when only on UNIX sockets).
    pub addr: Option<SocketAddr>,
    pub state: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Starts `gatehouse serve` with a fresh state dir, on 127.0.0.1 with a kernel-chosen port,
    /// in front of `upstream`, plus `extra` arguments.
    pub fn start(upstream: &str, extra: &[&str]) -> Gateway {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("state");
        let mut g =
            Gateway::start_with_state(&state, upstream, &["--listen", "127.0.0.1:0"], extra);
        g._tmp = Some(tmp);
        g
    }

    /// Starts `gatehouse serve` on `state` with the given listen and extra arguments.
    pub fn start_with_state(
        state: &Path,
        upstream: &str,
        listen: &[&str],
        extra: &[&str],
    ) -> Gateway {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--allow-root")
            .arg("--state-dir")
            .arg(state)
            .arg("--upstream")
            .arg(upstream)
            .args(listen)
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("STATE_DIRECTORY")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        clear_gatehouse_env(&mut cmd);
        let mut child = cmd.spawn().expect("spawn gatehouse");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let rx = collect_lines(&mut child, logs.clone());
        let mut g = Gateway {
            child,
            addr: None,
            state: state.to_owned(),
            logs,
            _tmp: None,
        };
        g.addr = g.wait_ready(&rx);
        g
    }

    fn wait_ready(&mut self, rx: &Receiver<String>) -> Option<SocketAddr> {
        let deadline = Instant::now() + PATIENCE;
        let mut first_tcp = None;
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let rest = line
                        .split("listening on http://")
                        .nth(1)
                        .or_else(|| line.split("listening on https://").nth(1));
                    if let Some(rest) = rest {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        if first_tcp.is_none() {
                            first_tcp = addr.parse().ok();
                        }
                    }
                    if line.contains("gatehouse is ready") {
                        return first_tcp;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "gatehouse did not become ready; its output:\n{}",
            self.logs()
        );
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("gateway listens on TCP")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("lock").join("\n")
    }

    /// Waits (bounded) until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self
                .logs
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits")
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal by PID with the `kill` command (no unsafe code in tests).
pub fn signal(pid: i32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Removes `GATEHOUSE_*` variables the developer's shell might have set.
pub fn clear_gatehouse_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
}

/// Collects stdout and stderr lines of `child` into `logs` and a channel.
pub fn collect_lines(child: &mut Child, logs: Arc<Mutex<Vec<String>>>) -> Receiver<String> {
    let (tx, rx) = channel();
    if let Some(out) = child.stdout.take() {
        let (tx, logs) = (tx.clone(), logs.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                logs.lock().expect("lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                logs.lock().expect("lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    rx
}

/// Runs `gatehouse users ...` on a state dir, feeding `stdin`; returns (status, stdout, stderr).
pub fn users(state: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("users")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clear_gatehouse_env(&mut cmd);
    let mut child = cmd.spawn().expect("spawn users");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("users output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP client

/// One response as the client received it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `name=value` of the first `Set-Cookie`, without attributes.
    pub fn cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.split(';').next().unwrap_or_default().to_owned())
    }
}

/// A client connection that can send several requests (keep-alive, pipelining).
pub struct Client {
    stream: Box<dyn ReadWrite>,
    buf: Vec<u8>,
}

impl Client {
    pub fn tcp(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect to gateway");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        Client {
            stream: Box::new(s),
            buf: Vec::new(),
        }
    }

    pub fn unix(path: &Path) -> Client {
        let s = UnixStream::connect(path).expect("connect to gateway socket");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        Client {
            stream: Box::new(s),
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Reads one response (`head_request` when it answers a HEAD).
    pub fn read(&mut self) -> Option<Response> {
        read_response(&mut self.stream, &mut self.buf, false)
    }

    pub fn request(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read().expect("a response")
    }

    /// True when the server closed the connection (a read returns end of file).
    pub fn is_closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

pub fn read_response(conn: &mut dyn Read, buf: &mut Vec<u8>, head_only: bool) -> Option<Response> {
    let head_end = fill_until(conn, buf, |b| find(b, b"\r\n\r\n").map(|i| i + 4))?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if head_only || status == 204 || status == 304 || status < 200 {
        Vec::new()
    } else if get("transfer-encoding").is_some() {
        // Reuse the request reader's chunked decoder through a fake head.
        let mut fake = b"X / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        fake.append(buf);
        let mut chained = fake.as_slice().chain(&mut *conn);
        let mut inner = Vec::new();
        let rec = read_request(&mut chained, &mut inner)?;
        *buf = inner;
        rec.body
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        fill_until(conn, buf, |b| (b.len() >= len).then_some(len))?;
        buf.drain(..len).collect()
    } else {
        let mut rest = std::mem::take(buf);
        let _ = conn.read_to_end(&mut rest);
        rest
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

/// A whole request to the gateway on a new connection.
pub fn get(addr: SocketAddr, path: &str, extra_headers: &str) -> Response {
    let mut c = Client::tcp(addr);
    c.request(
        format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n{extra_headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// `Authorization: Basic ...` for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64(format!("{user}:{password}").as_bytes())
    )
}

pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the hidden form field `name` in a login page.
pub fn hidden_field(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].replace("&amp;", "&"))
}

/// Every `name=value` pair the response sets with `Set-Cookie`.
pub fn set_cookies(r: &Response) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap_or_default().trim().to_owned())
        .collect()
}

/// Logs in through the login page like a browser; returns the login POST's response.
pub fn login_response(addr: SocketAddr, user: &str, password: &str, return_to: &str) -> Response {
    let page = get(
        addr,
        &format!("/_gatehouse/login?return={}", form_encode(return_to)),
        "Accept: text/html\r\n",
    );
    assert_eq!(page.status, 200, "login page: {}", page.body_text());
    let csrf = hidden_field(&page.body_text(), "csrf").expect("csrf field in the login page");
    let cookies = set_cookies(&page).join("; ");
    let ret = hidden_field(&page.body_text(), "return").unwrap_or_else(|| return_to.to_owned());
    let body = format!(
        "csrf={}&return={}&username={}&password={}",
        form_encode(&csrf),
        form_encode(&ret),
        form_encode(user),
        form_encode(password)
    );
    let mut c = Client::tcp(addr);
    c.request(
        format!(
            "POST /_gatehouse/login HTTP/1.1\r\nHost: gw.test\r\nOrigin: http://gw.test\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nCookie: {cookies}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// Logs in and returns the session cookie (`name=value`).
pub fn login(addr: SocketAddr, user: &str, password: &str) -> String {
    let r = login_response(addr, user, password, "/");
    assert!(
        r.status == 303 || r.status == 302,
        "login failed: {} {}",
        r.status,
        r.body_text()
    );
    set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("gatehouse_session="))
        .expect("a session cookie")
}
