//! The peer: who is on the other end of the socket a request arrived on.
//!
//! Trust is decided on this raw address only, never on `X-Forwarded-For` or any other header a
//! client can write.

use core::net::IpAddr;

/// The transport peer of a connection, as the shell saw it when it accepted the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as IPv4 when
    /// matched against trusted sources.
    Ip(IpAddr),
    /// A peer on a UNIX-domain socket (written `@` in a trusted-sources list).
    Unix,
}
