//! The app behind the gateway: a recording upstream.
//!
//! It keeps the head, the body and the trailers of every request it receives, so a case asserts
//! what the app *saw*, byte for byte. How it answers is chosen by the test at run time: a small
//! fixed body, chunked, close-delimited, no body, slowly, a `101` upgrade that then echoes, or
//! exact bytes. It can go down (its port refuses connections) and come back on the same port.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::find;
use crate::net::Net;

/// How long a connection to the upstream may sit idle before the upstream drops it.
const UPSTREAM_IDLE: Duration = Duration::from_secs(30);
/// Largest request body the upstream keeps.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One request as the app received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The request head exactly as received, without its final empty line.
    pub head: Vec<u8>,
    /// The body with any transfer coding removed.
    pub body: Vec<u8>,
    /// The raw trailer section of a chunked body (empty when there was none).
    pub trailers: Vec<u8>,
}

impl Seen {
    /// The request line (`GET /x HTTP/1.1`).
    pub fn request_line(&self) -> String {
        let end = find(&self.head, b"\r\n").unwrap_or(self.head.len());
        String::from_utf8_lossy(&self.head[..end]).into_owned()
    }

    /// The request target as received.
    pub fn target(&self) -> String {
        self.request_line()
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    /// Header fields in order (name as sent, value trimmed), from the head only.
    pub fn headers(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.head);
        text.split("\r\n")
            .skip(1)
            .filter_map(|line| {
                let (n, v) = line.split_once(':')?;
                Some((n.to_owned(), v.trim().to_owned()))
            })
            .collect()
    }

    /// Every value of a header (case-insensitive name) in the head.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The single value of a header; `None` when absent. Panics when it is repeated, since a
    /// test that asks for one value must not silently pick among several.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut values = self.header_values(name);
        assert!(
            values.len() <= 1,
            "the app received {name} {} times: {}",
            values.len(),
            String::from_utf8_lossy(&self.head)
        );
        values.pop()
    }

    /// Whether any header name in the head or the trailers, compared after folding case and
    /// `_` to `-`, equals `name`. This is how an app that maps both spellings to one variable
    /// (CGI, PHP, many frameworks) would read it.
    pub fn has_header_like(&self, name: &str) -> bool {
        let want = fold(name);
        let text = String::from_utf8_lossy(&self.head).into_owned()
            + "\r\n"
            + &String::from_utf8_lossy(&self.trailers);
        text.split("\r\n").skip(1).any(|line| {
            line.split_once(':')
                .is_some_and(|(n, _)| fold(n.trim()) == want)
        })
    }

    /// The value of the identity header the app would trust (`Remote-User` by default), with
    /// look-alike spellings counted too: `None` when the app received no such header, and a
    /// panic when it received several.
    pub fn identity(&self, name: &str) -> Option<String> {
        let want = fold(name);
        let mut found: Vec<String> = self
            .headers()
            .into_iter()
            .filter(|(n, _)| fold(n) == want)
            .map(|(_, v)| v)
            .collect();
        assert!(
            found.len() <= 1,
            "the app received {} copies of {name}: {}",
            found.len(),
            String::from_utf8_lossy(&self.head)
        );
        found.pop()
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.head))
    }
}

fn fold(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('_', "-")
}

/// How the upstream answers the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200` with `Content-Length` and the body `app saw: <request line>\n`.
    Plain,
    /// `200` with a chunked body made of the given pieces, and the trailer lines given.
    Chunked {
        pieces: Vec<Vec<u8>>,
        trailers: Vec<u8>,
    },
    /// `200` with no length: the body ends when the upstream closes the connection.
    CloseDelimited(Vec<u8>),
    /// A response with no body at all (`204`, `304`).
    NoBody(u16),
    /// `101 Switching Protocols`, then every byte received is sent back (a WebSocket echo).
    Upgrade,
    /// Waits this long, then answers as [`Reply::Plain`].
    Slow(Duration),
    /// These exact bytes, then the connection is kept for the next request.
    Raw(Vec<u8>),
}

struct Shared {
    seen: Mutex<Vec<Seen>>,
    reply: Mutex<Reply>,
    connections: Mutex<Vec<TcpStream>>,
    accepted: Mutex<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not hide what was recorded before it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running recording upstream. Dropping it stops it.
pub struct Upstream {
    addr: SocketAddr,
    net: Net,
    shared: Arc<Shared>,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Upstream {
    /// Starts an upstream listening at `addr` (port 0 for any) in the given network.
    pub fn start(net: Net, addr: SocketAddr) -> io::Result<Upstream> {
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            reply: Mutex::new(Reply::Plain),
            connections: Mutex::new(Vec::new()),
            accepted: Mutex::new(0),
        });
        let mut upstream = Upstream {
            addr,
            net,
            shared,
            running: None,
        };
        upstream.come_up()?;
        Ok(upstream)
    }

    /// Where the upstream listens (as seen from its own network).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Chooses how the following requests are answered.
    pub fn set_reply(&self, reply: Reply) {
        *lock(&self.shared.reply) = reply;
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// How many connections the upstream has accepted.
    pub fn connections_accepted(&self) -> usize {
        *lock(&self.shared.accepted)
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        lock(&self.shared.seen).clear();
    }

    /// Waits (bounded) until at least `n` requests have been recorded, and returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.seen();
            if seen.len() >= n || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The only request received so far; panics, saying what arrived, when there is not
    /// exactly one.
    pub fn only(&self) -> Seen {
        let seen = self.wait_for(1);
        assert_eq!(
            seen.len(),
            1,
            "expected the app to receive exactly one request, it received: {:#?}",
            seen.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        seen.into_iter().next().expect("one request")
    }

    /// Stops listening and drops every open connection: the app is down.
    pub fn go_down(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.store(true, Ordering::SeqCst);
            let _ = running.thread.join();
        }
        for conn in lock(&self.shared.connections).drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same address: the app is back.
    pub fn come_up(&mut self) -> io::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let listener = self.net.listen(self.addr)?;
        self.addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let shared = self.shared.clone();
            std::thread::spawn(move || accept_loop(listener, stop, shared))
        };
        self.running = Some(Running { stop, thread });
        Ok(())
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.go_down();
    }
}

fn accept_loop(listener: TcpListener, stop: Arc<AtomicBool>, shared: Arc<Shared>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(UPSTREAM_IDLE));
                let _ = conn.set_write_timeout(Some(UPSTREAM_IDLE));
                if let Ok(copy) = conn.try_clone() {
                    lock(&shared.connections).push(copy);
                }
                *lock(&shared.accepted) += 1;
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &shared);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Serves one connection: request after request until the peer closes.
fn serve(mut conn: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = fill_until(&mut conn, &mut buf, |b| find(b, b"\r\n\r\n"))? else {
            return Ok(());
        };
        let head = buf[..head_end].to_vec();
        buf.drain(..head_end + 4);
        let probe = Seen {
            head: head.clone(),
            body: Vec::new(),
            trailers: Vec::new(),
        };
        let chunked = probe
            .header_values("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = probe
            .header_values("content-length")
            .first()
            .and_then(|v| v.parse::<usize>().ok());
        let (body, trailers) = if chunked {
            match read_chunked(&mut conn, &mut buf) {
                Ok(decoded) => decoded,
                Err(e) => {
                    // Keep what arrived: a case may need to see a broken body reached the app.
                    record(shared, head, buf.clone(), Vec::new());
                    return Err(e);
                }
            }
        } else if let Some(length) = length.filter(|l| *l <= MAX_BODY) {
            if !probe.header_values("expect").is_empty() {
                // The gateway may forward `Expect: 100-continue`; answer it like a server.
                conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            if fill_until(&mut conn, &mut buf, |b| {
                (b.len() >= length).then_some(length)
            })?
            .is_none()
            {
                record(shared, head, buf.clone(), Vec::new());
                return Ok(());
            }
            (buf.drain(..length).collect(), Vec::new())
        } else {
            (Vec::new(), Vec::new())
        };
        let is_head = head.starts_with(b"HEAD ");
        let line = probe.request_line();
        record(shared, head, body, trailers);
        let reply = lock(&shared.reply).clone();
        match reply {
            Reply::Plain => write_plain(&mut conn, &line, is_head)?,
            Reply::Slow(wait) => {
                std::thread::sleep(wait);
                write_plain(&mut conn, &line, is_head)?;
            }
            Reply::Chunked { pieces, trailers } => {
                let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
                if !is_head {
                    for piece in &pieces {
                        out.extend(format!("{:x}\r\n", piece.len()).bytes());
                        out.extend(piece);
                        out.extend(b"\r\n");
                    }
                    out.extend(b"0\r\n");
                    out.extend(&trailers);
                    out.extend(b"\r\n");
                }
                conn.write_all(&out)?;
            }
            Reply::CloseDelimited(body) => {
                conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                )?;
                if !is_head {
                    conn.write_all(&body)?;
                }
                return conn.shutdown(Shutdown::Both);
            }
            Reply::NoBody(status) => {
                let reason = match status {
                    204 => "No Content",
                    304 => "Not Modified",
                    _ => "No Body",
                };
                conn.write_all(
                    format!("HTTP/1.1 {status} {reason}\r\nETag: \"v1\"\r\n\r\n").as_bytes(),
                )?;
            }
            Reply::Raw(bytes) => conn.write_all(&bytes)?,
            Reply::Upgrade => {
                conn.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                )?;
                // Echo: whatever came after the head, then everything that follows.
                if !buf.is_empty() {
                    conn.write_all(&buf)?;
                }
                let mut chunk = [0u8; 4096];
                loop {
                    let n = conn.read(&mut chunk)?;
                    if n == 0 {
                        return Ok(());
                    }
                    conn.write_all(&chunk[..n])?;
                }
            }
        }
    }
}

fn write_plain(conn: &mut TcpStream, line: &str, is_head: bool) -> io::Result<()> {
    let body = format!("app saw: {line}\n");
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !is_head {
        out.extend(body.bytes());
    }
    conn.write_all(&out)
}

fn record(shared: &Shared, head: Vec<u8>, body: Vec<u8>, trailers: Vec<u8>) {
    lock(&shared.seen).push(Seen {
        head,
        body,
        trailers,
    });
}

/// Reads into `buf` until `done` finds what it looks for; `None` on EOF before that.
fn fill_until(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> Option<usize>,
) -> io::Result<Option<usize>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(found) = done(buf) {
            return Ok(Some(found));
        }
        if buf.len() > MAX_BODY + 64 * 1024 {
            return Err(io::Error::other(
                "request too large for the recording upstream",
            ));
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Decodes a chunked body; returns it and the raw trailer section.
fn read_chunked(conn: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut body = Vec::new();
    loop {
        let end =
            fill_until(conn, buf, |b| find(b, b"\r\n"))?.ok_or_else(|| bad("eof in chunk size"))?;
        let line: Vec<u8> = buf.drain(..end + 2).take(end).collect();
        let size_text =
            String::from_utf8_lossy(line.split(|b| *b == b';').next().unwrap_or_default())
                .trim()
                .to_owned();
        let size = usize::from_str_radix(&size_text, 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            let mut trailers = Vec::new();
            loop {
                let end = fill_until(conn, buf, |b| find(b, b"\r\n"))?
                    .ok_or_else(|| bad("eof in trailers"))?;
                let line: Vec<u8> = buf.drain(..end + 2).take(end).collect();
                if line.is_empty() {
                    return Ok((body, trailers));
                }
                trailers.extend(&line);
                trailers.extend(b"\r\n");
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("body too large"));
        }
        fill_until(conn, buf, |b| (b.len() >= size + 2).then_some(0))?
            .ok_or_else(|| bad("eof in chunk"))?;
        body.extend(buf.drain(..size));
        buf.drain(..2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Client, Conn};
    use std::net::{IpAddr, Ipv4Addr};

    fn upstream() -> Upstream {
        Upstream::start(
            Net::Host,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        )
        .expect("an upstream on loopback")
    }

    fn client(upstream: &Upstream) -> Client {
        Client::new(Conn::Tcp(
            Net::Host.connect(upstream.addr(), None).expect("connect"),
        ))
    }

    #[test]
    fn records_heads_bodies_and_trailers_exactly() {
        let upstream = upstream();
        let mut c = client(&upstream);
        let chunked = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
            3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n";
        let sized = b"PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz";
        c.send(&[&chunked[..], &sized[..]].concat()).expect("send");
        assert_eq!(
            c.response().expect("first").body,
            b"app saw: POST /a HTTP/1.1\n"
        );
        assert_eq!(
            c.response().expect("second").body,
            b"app saw: PUT /b HTTP/1.1\n"
        );
        let seen = upstream.wait_for(2);
        assert_eq!(
            seen[0].head,
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
        );
        assert_eq!(seen[0].body, b"abcde");
        assert_eq!(seen[0].trailers, b"X-Trailer: t\r\n");
        assert_eq!(seen[1].target(), "/b");
        assert_eq!(seen[1].body, b"wxyz");
    }

    #[test]
    fn identity_counts_look_alike_spellings() {
        let seen = Seen {
            head: b"GET / HTTP/1.1\r\nremote_user: a\r\nX-Other: b".to_vec(),
            body: Vec::new(),
            trailers: Vec::new(),
        };
        assert_eq!(seen.identity("Remote-User").as_deref(), Some("a"));
        assert!(seen.has_header_like("REMOTE-USER"));
        assert!(!seen.has_header_like("Remote-Groups"));
    }

    #[test]
    fn answers_with_each_framing_and_goes_down_and_up() {
        let mut upstream = upstream();
        let get = b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
        upstream.set_reply(Reply::Chunked {
            pieces: vec![b"one ".to_vec(), b"two".to_vec()],
            trailers: Vec::new(),
        });
        let mut c = client(&upstream);
        c.send(get).expect("send");
        assert_eq!(c.response().expect("chunked").body, b"one two");
        upstream.set_reply(Reply::NoBody(204));
        c.send(get).expect("send");
        let empty = c.response().expect("204");
        assert_eq!((empty.status, empty.body.len()), (204, 0));
        upstream.set_reply(Reply::CloseDelimited(b"to the end".to_vec()));
        c.send(get).expect("send");
        assert_eq!(c.response().expect("close-delimited").body, b"to the end");

        let addr = upstream.addr();
        upstream.go_down();
        assert!(
            Net::Host.connect(addr, None).is_err(),
            "a down upstream accepted"
        );
        upstream.come_up().expect("up again");
        assert_eq!(upstream.addr(), addr);
        upstream.set_reply(Reply::Plain);
        let mut c = client(&upstream);
        c.send(get).expect("send");
        assert_eq!(c.response().expect("plain").status, 200);
    }
}
