//! A client connection's byte stream: TCP, a UNIX socket, or TLS over TCP.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use gatehouse_core::peer::Peer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

/// Where a client connection came from, as the socket says (never as a header says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAddr {
    Tcp(SocketAddr),
    /// A peer on gatehouse's own UNIX socket: the `@` trusted source.
    Unix,
}

impl PeerAddr {
    /// The peer as core sees it. A link-local IPv6 peer keeps its zone (core's
    /// [`Peer::Zoned`], never trusted): dropping it would let `fe80::1%eth0` match `fe80::/10`.
    pub fn peer(self) -> Peer {
        match self {
            PeerAddr::Tcp(a) => Peer::from_socket_addr(a),
            PeerAddr::Unix => Peer::Unix,
        }
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Tcp(a) => write!(f, "{a}"),
            PeerAddr::Unix => f.write_str("@"),
        }
    }
}

/// The client's stream.
pub enum ClientStream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl ClientStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }

    /// Waits until the socket has bytes to read (or is closed), without a read buffer: an
    /// idle keep-alive connection then holds no buffer while it waits. A TLS stream keeps its
    /// own buffers, so it returns at once and the read itself waits.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.readable().await,
            ClientStream::Unix(s) => s.readable().await,
            ClientStream::Tls(_) => Ok(()),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Unix(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::trusted::TrustedSources;
    use std::net::SocketAddrV6;

    #[test]
    fn a_zoned_tcp_peer_keeps_its_zone_and_is_never_trusted() {
        let trusted = TrustedSources::<4>::parse("fe80::/10, ::/0").expect("list");
        let zoned = SocketAddrV6::new("fe80::1".parse().expect("ip"), 4711, 0, 3);
        let peer = PeerAddr::Tcp(SocketAddr::V6(zoned)).peer();
        assert!(peer.is_zoned(), "{peer}");
        assert!(!trusted.trusts(&peer));
        let plain = SocketAddrV6::new("fe80::1".parse().expect("ip"), 4711, 0, 0);
        assert!(trusted.trusts(&PeerAddr::Tcp(SocketAddr::V6(plain)).peer()));
        assert_eq!(PeerAddr::Unix.peer(), Peer::Unix);
    }
}
