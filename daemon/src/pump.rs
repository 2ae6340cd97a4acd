//! Moving bytes for one forwarded request: the head core wrote, the request body, the app's
//! response, or a tunnel after `101 Switching Protocols`.
//!
//! Nothing here decides anything about who may pass: the head sent to the app is the one core
//! wrote, body boundaries come from core's [`BodyRelay`], response boundaries from core's
//! [`ResponseHead`]. What this file adds is I/O: reading in pieces, writing, timeouts, and
//! reusing the connection to the app when core says the response left it reusable.

use std::io;
use std::time::Duration;

use gatehouse_core::http::{
    BodyError, BodyFraming, BodyRelay, CONTINUE_100, MAX_HEAD_LEN, Parse, ResponseBody,
    ResponseError, ResponseHead, Version, write_client_response_head,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::pool::{BUF_LEN, PooledBuf};
use crate::upstream::{ConnectError, Stream, Upstream};

// The client's response head (at most a head plus what core adds) and a chunk of body fit
// one pooled buffer.
const _: () = assert!(MAX_HEAD_LEN + 1024 + READ_CHUNK <= BUF_LEN);

/// Bytes read from a socket and not used yet. Bytes after one message (a pipelined request,
/// the start of the next response) stay here for the next parse. The memory is a pooled
/// buffer, taken on the first read and given back when the connection goes idle.
#[derive(Debug, Default)]
pub struct Buf {
    mem: Option<PooledBuf>,
    start: usize,
    end: usize,
}

impl Buf {
    pub fn new() -> Buf {
        Buf::default()
    }

    pub fn data(&self) -> &[u8] {
        match &self.mem {
            Some(m) => &m[self.start..self.end],
            None => &[],
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Gives the memory back when nothing is buffered, so an idle keep-alive connection
    /// costs only its socket.
    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.mem = None;
        }
    }

    /// Reads once from `src`, appending; returns the number of bytes read (0 at end of stream).
    pub async fn read_from<R: AsyncRead + Unpin>(&mut self, src: &mut R) -> io::Result<usize> {
        let mem = self.mem.get_or_insert_with(PooledBuf::take);
        if self.start > 0 && (self.end == mem.len() || self.start >= mem.len() / 2) {
            mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == mem.len() {
            // Callers consume what they parse before reading more; a full buffer means a
            // message part larger than any limit core enforces.
            return Err(io::Error::other("read buffer full"));
        }
        let n = src.read(&mut mem[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

/// Most bytes of body copied per write.
pub const READ_CHUNK: usize = 16 * 1024;

/// Why a forwarded exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The app could not be reached: nothing was sent, the client gets a 502.
    #[error("{0}")]
    Connect(#[from] ConnectError),
    /// The app broke off or sent something core refused before any byte reached the client:
    /// the client gets a 502.
    #[error("the app {0}")]
    Upstream(String),
    /// The exchange broke off after the response had started (or on the client's side): the
    /// connection can only be closed.
    #[error("{0}")]
    Broken(String),
}

/// How the client connection goes on after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Ready for the next request.
    KeepAlive,
    /// Close it (the response was delimited by closing, or someone asked to close).
    Close,
}

/// What core decided to forward, in the terms the pump needs. The head core wrote for the
/// app is passed beside it, in the buffer core wrote it to (see [`forward`]).
pub struct Forward<'a> {
    /// Length of the head core wrote for the app.
    pub head_len: usize,
    /// How the request body is framed (core's reading of the client's head).
    pub body: BodyFraming,
    /// Answer `100 Continue` to the client before reading the body.
    pub expect_continue: bool,
    /// The request was `HEAD` (its response has no body).
    pub is_head: bool,
    /// The request asked for an upgrade and core allows the tunnel on `101`.
    pub upgrade: bool,
    /// The client asked to keep the connection open.
    pub client_keep_alive: bool,
    /// The client's HTTP version (core adapts the response head to it).
    pub client_version: Version,
    /// Fields core wants added to the response, e.g. a renewed session cookie.
    pub extra_response_headers: &'a [(&'static str, Vec<u8>)],
}

/// Timeouts that bound every wait of an exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for any read or write to make progress.
    pub idle: Duration,
}

async fn io_timeout<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: no progress for {limit:?}"),
        )),
    }
}

/// Forwards one request and relays its response. `head` is the buffer holding the head core
/// wrote for the app (`plan.head_len` bytes); once the app has it, the same buffer holds the
/// client's response head, so a request in flight needs one buffer less. `client_buf` holds
/// the client's bytes after the request head (the body's start, or pipelined requests); what
/// is left in it afterwards is the next request.
pub async fn forward<C>(
    upstream: &Upstream,
    client: &mut C,
    client_buf: &mut Buf,
    head: &mut [u8],
    plan: &Forward<'_>,
    limits: Limits,
) -> Result<(After, u16), ForwardError>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    // A pooled connection may have been closed by the app since it was put back. When the
    // request has no body, a failure before any response byte is retried once on a new
    // connection; with a body, the body may already be half sent, so no retry.
    let retriable = matches!(plan.body, BodyFraming::None | BodyFraming::Length(0));
    let request_head = head.get(..plan.head_len).unwrap_or_default();
    let (mut app, reused) = upstream.get().await?;
    let mut app_buf = Buf::new();
    let sent = send_request(&mut app, client, client_buf, request_head, plan, limits).await;
    let first = match sent {
        Ok(()) => read_response_head(&mut app, &mut app_buf, plan, limits).await,
        Err(e) => Err(e),
    };
    let first = match first {
        Err(HeadError::Closed) if reused && retriable => {
            app = upstream.connect().await?;
            app_buf = Buf::new();
            match send_request(&mut app, client, client_buf, request_head, plan, limits).await {
                Ok(()) => read_response_head(&mut app, &mut app_buf, plan, limits).await,
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    first.map_err(|e| e.into_forward())?;

    // The app has the request head: its buffer now takes the client's response head and,
    // when it is already here, the start of the body: a small response goes out in one write.
    let out = head;
    let extra: Vec<(&str, &[u8])> = plan
        .extra_response_headers
        .iter()
        .map(|(n, v)| (*n, v.as_slice()))
        .collect();
    let mut started = false;
    let mut status = 0;
    loop {
        // A whole head is buffered (read_response_head saw it complete); parse it again here
        // to borrow it while core writes the client's version of it.
        let step = match ResponseHead::parse(app_buf.data(), plan.is_head, plan.upgrade) {
            Ok(Parse::Complete(head)) => {
                status = head.code();
                let reusable = head.upstream_reusable();
                let head_len = head.head_len();
                write_client_response_head(
                    &head,
                    plan.client_version,
                    plan.client_keep_alive,
                    &extra,
                    out,
                )
                .map(|p| (p, reusable, head_len))
                .map_err(|_| {
                    ForwardError::Upstream("sent a response head too large to relay".into())
                })
            }
            _ => Err(ForwardError::Upstream(
                "sent an unreadable response head".into(),
            )),
        };
        let (mut response, reusable, app_head_len) = match step {
            Ok(x) => x,
            Err(e) if started => return Err(ForwardError::Broken(e.to_string())),
            Err(e) => return Err(e),
        };
        app_buf.consume(app_head_len);
        let mut len = response.head_len;
        if matches!(response.body, ResponseBody::Final(_)) && !app_buf.is_empty() {
            let room = out.len() - len;
            if let Some(n) = response.relay.verbatim(app_buf.len().min(room)) {
                out[len..len + n].copy_from_slice(&app_buf.data()[..n]);
                app_buf.consume(n);
                len += n;
            } else {
                let step = response
                    .relay
                    .relay(app_buf.data(), &mut out[len..])
                    .map_err(|e| ForwardError::Upstream(format!("sent a malformed body: {e}")))?;
                app_buf.consume(step.consumed);
                len += step.produced;
            }
        }
        if len > 0 {
            write_all(client, &out[..len], limits, "client").await?;
            started = true;
        }
        match response.body {
            ResponseBody::Interim => {
                if let Err(e) = read_response_head(&mut app, &mut app_buf, plan, limits).await {
                    return Err(if started {
                        ForwardError::Broken(e.to_string())
                    } else {
                        e.into_forward()
                    });
                }
            }
            ResponseBody::Tunnel => {
                tunnel(client, client_buf, app, app_buf).await;
                return Ok((After::Close, status));
            }
            ResponseBody::Final(_) => {
                relay_body(
                    &mut app,
                    &mut app_buf,
                    client,
                    &mut response.relay,
                    limits,
                    "app",
                )
                .await
                .map_err(|e| ForwardError::Broken(e.to_string()))?;
                if reusable && app_buf.is_empty() {
                    upstream.put(app);
                }
                let keep = plan.client_keep_alive && !response.close_client;
                let after = if keep { After::KeepAlive } else { After::Close };
                return Ok((after, status));
            }
        }
    }
}

#[derive(Debug)]
enum HeadError {
    /// The app closed before sending a byte of the response.
    Closed,
    Io(io::Error),
    Refused(ResponseError),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Closed => f.write_str("closed the connection before answering"),
            HeadError::Io(e) => write!(f, "connection failed: {e}"),
            HeadError::Refused(e) => write!(f, "sent a response gatehouse refuses: {e}"),
        }
    }
}

impl HeadError {
    fn into_forward(self) -> ForwardError {
        ForwardError::Upstream(self.to_string())
    }
}

async fn send_request<C>(
    app: &mut Stream,
    client: &mut C,
    client_buf: &mut Buf,
    head: &[u8],
    plan: &Forward<'_>,
    limits: Limits,
) -> Result<(), HeadError>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let closed = |e: io::Error| match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => HeadError::Closed,
        _ => HeadError::Io(e),
    };
    io_timeout(limits.idle, "writing to the app", app.write_all(head))
        .await
        .map_err(closed)?;
    if !matches!(plan.body, BodyFraming::None | BodyFraming::Length(0)) {
        if plan.expect_continue {
            io_timeout(
                limits.idle,
                "writing to the client",
                client.write_all(CONTINUE_100),
            )
            .await
            .map_err(HeadError::Io)?;
        }
        let mut relay = BodyRelay::new(plan.body);
        relay_body(client, client_buf, app, &mut relay, limits, "client")
            .await
            .map_err(|e| HeadError::Io(io::Error::other(e.to_string())))?;
    }
    Ok(())
}

/// Reads until a whole response head is buffered (or core refuses what was read).
async fn read_response_head(
    app: &mut Stream,
    app_buf: &mut Buf,
    plan: &Forward<'_>,
    limits: Limits,
) -> Result<(), HeadError> {
    loop {
        if !app_buf.is_empty() {
            match ResponseHead::parse(app_buf.data(), plan.is_head, plan.upgrade) {
                Ok(Parse::Complete(_)) => return Ok(()),
                Ok(Parse::Incomplete) => {}
                Err(e) => return Err(HeadError::Refused(e)),
            }
            if app_buf.len() > MAX_HEAD_LEN {
                return Err(HeadError::Refused(ResponseError::TooLarge));
            }
        }
        let n = io_timeout(limits.idle, "waiting for the app", app_buf.read_from(app))
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionReset => HeadError::Closed,
                _ => HeadError::Io(e),
            })?;
        if n == 0 {
            return Err(if app_buf.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed in the middle of the response head",
                ))
            });
        }
    }
}

async fn write_all<W: AsyncWrite + Unpin>(
    dst: &mut W,
    bytes: &[u8],
    limits: Limits,
    who: &str,
) -> Result<(), ForwardError> {
    io_timeout(limits.idle, who, dst.write_all(bytes))
        .await
        .map_err(|e| ForwardError::Broken(format!("writing to the {who}: {e}")))
}

/// Why a body could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("reading from the {who}: {source}")]
    Read {
        who: &'static str,
        source: io::Error,
    },
    #[error("writing: {0}")]
    Write(io::Error),
    #[error("the {who}'s body is malformed: {error}")]
    Framing { who: &'static str, error: BodyError },
}

/// Copies one body from `src` to `dst` exactly as core's relay delimits it. Bytes after the
/// body stay in `src_buf`.
pub async fn relay_body<R, W>(
    src: &mut R,
    src_buf: &mut Buf,
    dst: &mut W,
    relay: &mut BodyRelay,
    limits: Limits,
    who: &'static str,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scratch: Option<PooledBuf> = None;
    loop {
        if relay.is_done() {
            break;
        }
        if src_buf.is_empty() {
            let n = io_timeout(limits.idle, "body", src_buf.read_from(src))
                .await
                .map_err(|source| RelayError::Read { who, source })?;
            if n == 0 {
                relay
                    .finish()
                    .map_err(|error| RelayError::Framing { who, error })?;
                break;
            }
        }
        if let Some(n) = relay.verbatim(src_buf.len()) {
            io_timeout(limits.idle, "body", dst.write_all(&src_buf.data()[..n]))
                .await
                .map_err(RelayError::Write)?;
            src_buf.consume(n);
            continue;
        }
        let scratch = scratch.get_or_insert_with(PooledBuf::take);
        let step = relay
            .relay(src_buf.data(), scratch)
            .map_err(|error| RelayError::Framing { who, error })?;
        if step.produced > 0 {
            io_timeout(
                limits.idle,
                "body",
                dst.write_all(&scratch[..step.produced]),
            )
            .await
            .map_err(RelayError::Write)?;
        }
        src_buf.consume(step.consumed);
        if step.consumed == 0 && step.produced == 0 && !relay.is_done() {
            // Everything buffered was framing in progress; more input is needed.
            let n = io_timeout(limits.idle, "body", src_buf.read_from(src))
                .await
                .map_err(|source| RelayError::Read { who, source })?;
            if n == 0 {
                relay
                    .finish()
                    .map_err(|error| RelayError::Framing { who, error })?;
                break;
            }
        }
    }
    Ok(())
}

/// After `101 Switching Protocols`: the bytes already read on each side go across first, then
/// bytes are copied both ways until either side closes.
async fn tunnel<C>(client: &mut C, client_buf: &mut Buf, mut app: Stream, app_buf: Buf)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    if !app_buf.is_empty() && client.write_all(app_buf.data()).await.is_err() {
        return;
    }
    if !client_buf.is_empty() {
        if app.write_all(client_buf.data()).await.is_err() {
            return;
        }
        let n = client_buf.len();
        client_buf.consume(n);
    }
    let _ = tokio::io::copy_bidirectional(client, &mut app).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        idle: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn a_chunked_body_arriving_in_pieces_is_relayed_and_the_next_request_kept() {
        let (mut tx, mut src) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for piece in [
                &b"5\r\nhel"[..],
                b"lo\r\n0\r\nRemote-User: x\r\n",
                b"\r\nGET /next",
            ] {
                tx.write_all(piece).await.expect("write");
                tokio::task::yield_now().await;
            }
            tx
        });
        let mut buf = Buf::new();
        let mut out: Vec<u8> = Vec::new();
        let mut relay = BodyRelay::new(BodyFraming::Chunked);
        relay_body(&mut src, &mut buf, &mut out, &mut relay, LIMITS, "client")
            .await
            .expect("relayed");
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
        let _tx = writer.await.expect("writer");
        // Whatever followed the body is the next request, left for the next parse.
        while buf.len() < b"GET /next".len() {
            buf.read_from(&mut src).await.expect("read");
        }
        assert_eq!(buf.data(), b"GET /next");
    }

    #[tokio::test]
    async fn a_content_length_body_stops_at_its_length() {
        let mut src: &[u8] = b"abcdefXYZ";
        let mut buf = Buf::new();
        let mut out: Vec<u8> = Vec::new();
        let mut relay = BodyRelay::new(BodyFraming::Length(6));
        relay_body(&mut src, &mut buf, &mut out, &mut relay, LIMITS, "client")
            .await
            .expect("relayed");
        assert_eq!(out, b"abcdef");
        assert_eq!(buf.data(), b"XYZ");
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let mut src: &[u8] = b"abc";
        let mut buf = Buf::new();
        let mut out: Vec<u8> = Vec::new();
        let mut relay = BodyRelay::new(BodyFraming::Length(6));
        let err = relay_body(&mut src, &mut buf, &mut out, &mut relay, LIMITS, "client").await;
        assert!(matches!(err, Err(RelayError::Framing { .. })), "{err:?}");
    }
}
