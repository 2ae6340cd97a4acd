//! The app: connecting to it over TCP or a UNIX socket, and keeping a few idle keep-alive
//! connections to reuse.
//!
//! Opening a connection per request would cost a round trip and a socket each time; a small
//! pool of idle connections avoids that. Each worker thread keeps its own pool (see
//! [`crate::server`]), so a connection to the app is only ever used by the thread whose
//! runtime it is registered with. A pooled connection the app has closed meanwhile is
//! noticed before use (a read that returns end-of-file) and dropped.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::UpstreamAddr;

/// How many idle connections to the app each worker keeps.
pub const POOL_CAPACITY: usize = 64;

/// An idle pooled connection older than this is closed rather than reused (apps commonly
/// close idle keep-alive connections after 60–120 s; reusing one they are closing fails).
pub const POOL_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// A byte stream to or from a peer: TCP or a UNIX socket.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// True when the peer has closed or sent something unasked: the connection must not be
    /// reused for a new request.
    fn is_stale(&self) -> bool {
        let mut probe = [0u8; 1];
        let r = match self {
            Stream::Tcp(s) => s.try_read(&mut probe),
            Stream::Unix(s) => s.try_read(&mut probe),
        };
        !matches!(r, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}

/// Where the app is, and the idle connections to it.
pub struct Upstream {
    addr: UpstreamAddr,
    connect_timeout: Duration,
    idle: Mutex<Vec<(Stream, Instant)>>,
}

/// Why the app could not be reached (the client gets a 502).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {addr} timed out after {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("connecting to {addr}: {source}")]
    Io { addr: String, source: io::Error },
}

impl Upstream {
    pub fn new(addr: UpstreamAddr, connect_timeout: Duration) -> Upstream {
        Upstream {
            addr,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A connection to the app: a fresh idle one from the pool, else a new one. The flag says
    /// whether it was reused (a reused one may still turn out closed by the app; the caller
    /// may then retry once on a new connection if nothing was sent yet).
    pub async fn get(&self) -> Result<(Stream, bool), ConnectError> {
        while let Some(stream) = self.take_idle() {
            if !stream.is_stale() {
                return Ok((stream, true));
            }
        }
        self.connect().await.map(|s| (s, false))
    }

    fn take_idle(&self) -> Option<Stream> {
        let mut idle = match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        idle.retain(|(_, since)| now.duration_since(*since) < POOL_IDLE_LIMIT);
        idle.pop().map(|(s, _)| s)
    }

    /// Gives back a connection whose last response was read completely and which the app
    /// did not ask to close.
    pub fn put(&self, stream: Stream) {
        let mut idle = match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if idle.len() < POOL_CAPACITY {
            idle.push((stream, Instant::now()));
        }
    }

    /// A new connection to the app, within the connect timeout.
    pub async fn connect(&self) -> Result<Stream, ConnectError> {
        let attempt = async {
            match &self.addr {
                UpstreamAddr::Tcp { host_port } => {
                    let s = TcpStream::connect(host_port.as_str()).await?;
                    s.set_nodelay(true)?;
                    Ok(Stream::Tcp(s))
                }
                UpstreamAddr::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
            }
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => Err(ConnectError::Io {
                addr: self.addr.to_string(),
                source,
            }),
            Err(_) => Err(ConnectError::Timeout {
                addr: self.addr.to_string(),
                timeout: self.connect_timeout,
            }),
        }
    }
}
