//! The peer: who is on the other end of the socket a request arrived on.
//!
//! Trust is decided on this raw address only, never on `X-Forwarded-For` or any other header a
//! client can write.
//!
//! **The threat.** A peer string that parses "almost" (a zone, a stray port, brackets around an
//! IPv4 address) is the kind of input where two parsers disagree, and a trust decision taken on
//! a disagreement is a bypass waiting to happen. So the grammar is small and exact: `ip`,
//! `ip:port`, `[v6]`, `[v6]:port`, or `@` for a UNIX-socket peer; anything else is a named
//! [`PeerParseError`]. Zoned IPv6 addresses (`fe80::1%eth0`) are refused outright, because
//! Navidrome never trusts them and gatehouse must not be more trusting than the app behind it.
//! A connection that did come from a zoned address (a link-local peer: the socket reports a
//! scope id) is a [`Peer::Zoned`], which no trusted source ever matches; dropping the zone
//! instead would let `fe80::1%eth0` match an `fe80::/10` entry.
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports for an IPv4
//! client) are one address with two spellings; [`Peer::canonical_ip`] gives the one spelling
//! every check compares.

use core::fmt;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The transport peer of a connection, as the shell saw it when it accepted the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A TCP peer. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as IPv4 when
    /// matched against trusted sources.
    Ip(IpAddr),
    /// A peer on a UNIX-domain socket (written `@` in a trusted-sources list).
    Unix,
    /// A TCP peer at an IPv6 address with a zone (the socket reported a scope id: a
    /// link-local peer). Never trusted (no entry matches it, not even `fe80::/10` or `::/0`);
    /// its address serves only to tell clients apart (the login throttle, `X-Forwarded-For`).
    Zoned {
        /// The address, without its zone.
        ip: Ipv6Addr,
        /// The zone (the interface index the socket reported).
        scope_id: u32,
    },
}

/// Why a peer string is not a peer. Each variant is a refusal a shell can log as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerParseError {
    /// Nothing to parse.
    Empty,
    /// An IPv6 address with a zone (`fe80::1%eth0`, `[fe80::1%25eth0]:80`). Navidrome never
    /// trusts zoned peers, so gatehouse refuses them rather than guess which interface counts.
    Zoned,
    /// Not an IPv4 or IPv6 address (nor `@`).
    InvalidAddress,
    /// A `:port` (or `]:port`) whose port is not a decimal number from 0 to 65535.
    InvalidPort,
    /// An IPv4 address in brackets (`[192.0.2.1]:80`): brackets are for IPv6 only.
    Ipv4InBrackets,
    /// A `[` without its `]`, or text after `]` that is not `:port`.
    UnbalancedBrackets,
}

impl fmt::Display for PeerParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty peer address",
            Self::Zoned => "zoned IPv6 address (with %zone): never trusted",
            Self::InvalidAddress => "not an IP address, ip:port, [v6]:port or @",
            Self::InvalidPort => "port is not a number from 0 to 65535",
            Self::Ipv4InBrackets => "brackets around an IPv4 address (brackets are for IPv6)",
            Self::UnbalancedBrackets => "'[' without ']' or junk after ']'",
        })
    }
}

impl core::error::Error for PeerParseError {}

impl Peer {
    /// Parses a peer as written by a shell or an admin: `192.0.2.7`, `192.0.2.7:51234`,
    /// `2001:db8::7`, `[2001:db8::7]`, `[2001:db8::7]:51234`, or `@` for a UNIX-socket peer.
    /// The port, when present, is checked and then dropped: trust never depends on it.
    ///
    /// Nothing is trimmed: a peer comes from a socket, not from a person typing.
    pub fn parse(s: &str) -> Result<Self, PeerParseError> {
        if s.is_empty() {
            return Err(PeerParseError::Empty);
        }
        if s == "@" {
            return Ok(Self::Unix);
        }
        // A zone anywhere (bare, bracketed, percent-encoded as in URIs) is refused before
        // anything else, so that no later branch can accept part of a zoned address.
        if s.contains('%') {
            return Err(PeerParseError::Zoned);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or(PeerParseError::UnbalancedBrackets)?;
            match after {
                "" => {}
                _ => match after.strip_prefix(':') {
                    Some(port) => parse_port(port)?,
                    None => return Err(PeerParseError::UnbalancedBrackets),
                },
            }
            return match inside.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => Ok(Self::Ip(IpAddr::V6(v6))),
                Ok(IpAddr::V4(_)) => Err(PeerParseError::Ipv4InBrackets),
                Err(_) => Err(PeerParseError::InvalidAddress),
            };
        }
        if s.contains(']') {
            return Err(PeerParseError::UnbalancedBrackets);
        }
        // A bare address (v4 or v6) first: `::1:80` is an IPv6 address, not `::1` port 80,
        // exactly as Go's `net.ParseIP` (and so Navidrome) reads it.
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        // Then `a.b.c.d:port`. Only IPv4 may carry a port without brackets.
        if let Some((host, port)) = s.rsplit_once(':') {
            if host.contains(':') {
                return Err(PeerParseError::InvalidAddress);
            }
            let ip = host
                .parse::<core::net::Ipv4Addr>()
                .map_err(|_| PeerParseError::InvalidAddress)?;
            parse_port(port)?;
            return Ok(Self::Ip(IpAddr::V4(ip)));
        }
        Err(PeerParseError::InvalidAddress)
    }

    /// The peer of an accepted TCP connection, port dropped. An IPv6 peer with a scope id (a
    /// link-local address with a zone) is a [`Peer::Zoned`]: such a connection has no peer
    /// gatehouse may trust. Shells build TCP peers with this, never with `Peer::Ip(addr.ip())`,
    /// which drops the zone.
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V6(v6) if v6.scope_id() != 0 => Self::Zoned {
                ip: *v6.ip(),
                scope_id: v6.scope_id(),
            },
            other => Self::Ip(other.ip()),
        }
    }

    /// The IP address, as the socket reported it, without a zone (`None` for a UNIX-socket
    /// peer). Not a trust decision: see [`Peer::is_zoned`].
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Ip(ip) => Some(*ip),
            Self::Zoned { ip, .. } => Some(IpAddr::V6(*ip)),
            Self::Unix => None,
        }
    }

    /// True for a [`Peer::Zoned`]: a peer no trusted source matches.
    pub fn is_zoned(&self) -> bool {
        matches!(self, Self::Zoned { .. })
    }

    /// The IP address in the one spelling every check compares: an IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) becomes the IPv4 address; everything else is unchanged.
    pub fn canonical_ip(&self) -> Option<IpAddr> {
        self.ip().map(canonical_ip)
    }

    /// True for an IPv4 peer, including an IPv4-mapped IPv6 one.
    pub fn is_ipv4(&self) -> bool {
        matches!(self.canonical_ip(), Some(IpAddr::V4(_)))
    }

    /// True for an IPv6 peer that is not IPv4-mapped.
    pub fn is_ipv6(&self) -> bool {
        matches!(self.canonical_ip(), Some(IpAddr::V6(_)))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address; any other address
/// unchanged. (The deprecated IPv4-*compatible* form `::a.b.c.d` stays IPv6, as in Go.)
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn parse_port(port: &str) -> Result<(), PeerParseError> {
    // Digits only, no sign, no spaces; at most 5 of them (leading zeros are fine, as in Go).
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PeerParseError::InvalidPort);
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| PeerParseError::InvalidPort)
}

impl fmt::Display for Peer {
    /// `@` for a UNIX-socket peer, the address as the socket reported it otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => fmt::Display::fmt(ip, f),
            Self::Zoned { ip, scope_id } => write!(f, "{ip}%{scope_id}"),
            Self::Unix => f.write_str("@"),
        }
    }
}

impl core::str::FromStr for Peer {
    type Err = PeerParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV6};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Peer {
        Peer::Ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }
    fn v6(s: &str) -> Peer {
        Peer::Ip(IpAddr::V6(s.parse().unwrap()))
    }

    #[test]
    fn good_peers() {
        let cases: &[(&str, Peer)] = &[
            ("@", Peer::Unix),
            ("192.0.2.7", v4(192, 0, 2, 7)),
            ("192.0.2.7:51234", v4(192, 0, 2, 7)),
            ("192.0.2.7:0", v4(192, 0, 2, 7)),
            ("192.0.2.7:65535", v4(192, 0, 2, 7)),
            ("192.0.2.7:00080", v4(192, 0, 2, 7)),
            ("::1", v6("::1")),
            ("[::1]", v6("::1")),
            ("[::1]:8080", v6("::1")),
            ("2001:db8::7", v6("2001:db8::7")),
            ("2001:0db8:0000:0000:0000:0000:0000:0007", v6("2001:db8::7")),
            ("[2001:0DB8:0:0:0:0:0:7]:443", v6("2001:db8::7")),
            ("::ffff:192.0.2.7", v6("::ffff:192.0.2.7")),
            ("[::ffff:192.0.2.7]:1234", v6("::ffff:192.0.2.7")),
            // As Go reads it: a whole IPv6 address, not `::1` port 80.
            ("::1:80", v6("::1:80")),
        ];
        for (text, want) in cases {
            assert_eq!(Peer::parse(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_peers_are_named() {
        use PeerParseError::*;
        let cases: &[(&str, PeerParseError)] = &[
            ("", Empty),
            ("fe80::1%eth0", Zoned),
            ("[fe80::1%eth0]:80", Zoned),
            ("[fe80::1%25eth0]:80", Zoned),
            ("%", Zoned),
            ("localhost", InvalidAddress),
            ("localhost:80", InvalidAddress),
            ("192.0.2", InvalidAddress),
            ("192.0.2.256", InvalidAddress),
            ("010.0.0.1", InvalidAddress),
            (" 192.0.2.7", InvalidAddress),
            ("192.0.2.7 ", InvalidAddress),
            ("@@", InvalidAddress),
            ("unix:/run/x.sock", InvalidAddress),
            ("192.0.2.7:", InvalidPort),
            ("192.0.2.7:65536", InvalidPort),
            ("192.0.2.7:-1", InvalidPort),
            ("192.0.2.7:+80", InvalidPort),
            ("192.0.2.7:080a", InvalidPort),
            ("192.0.2.7:0000080", InvalidPort),
            ("[::1]:", InvalidPort),
            ("[::1]:99999", InvalidPort),
            ("[192.0.2.7]:80", Ipv4InBrackets),
            ("[192.0.2.7]", Ipv4InBrackets),
            ("[::1", UnbalancedBrackets),
            ("[::1]80", UnbalancedBrackets),
            ("::1]", UnbalancedBrackets),
            ("[::1]]:80", UnbalancedBrackets),
            ("[]", InvalidAddress),
            ("[::1:80", UnbalancedBrackets),
            ("2001:db8::7:", InvalidAddress),
        ];
        for (text, want) in cases {
            assert_eq!(Peer::parse(text), Err(*want), "{text:?}");
        }
    }

    #[test]
    fn trailing_space_is_not_trimmed() {
        assert!(Peer::parse("192.0.2.7 ").is_err());
        assert!(Peer::parse("@ ").is_err());
    }

    #[test]
    fn mapped_addresses_are_ipv4_for_every_check() {
        let mapped = Peer::parse("::ffff:10.1.2.3").unwrap();
        assert!(mapped.is_ipv4());
        assert!(!mapped.is_ipv6());
        assert_eq!(
            mapped.canonical_ip(),
            Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))
        );
        // The deprecated IPv4-compatible form is not mapped.
        let compat = Peer::parse("::10.1.2.3").unwrap();
        assert!(compat.is_ipv6());
        assert!(Peer::parse("2001:db8::1").unwrap().is_ipv6());
        assert!(!Peer::Unix.is_ipv4() && !Peer::Unix.is_ipv6());
        assert_eq!(Peer::Unix.canonical_ip(), None);
    }

    #[test]
    fn socket_addresses() {
        let plain: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(Peer::from_socket_addr(plain), v6("2001:db8::1"));
        let zoned = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 80, 0, 2));
        let peer = Peer::from_socket_addr(zoned);
        assert_eq!(
            peer,
            Peer::Zoned {
                ip: "fe80::1".parse().unwrap(),
                scope_id: 2
            }
        );
        assert!(peer.is_zoned() && peer.is_ipv6());
        assert_eq!(peer.to_string(), "fe80::1%2");
        // Its text form is refused as a peer, as any zoned address is.
        assert_eq!(Peer::parse(&peer.to_string()), Err(PeerParseError::Zoned));
        let four: SocketAddr = "192.0.2.1:80".parse().unwrap();
        assert_eq!(Peer::from_socket_addr(four), v4(192, 0, 2, 1));
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        assert!(Peer::from_socket_addr(mapped).is_ipv4());
    }

    #[test]
    fn display_round_trips() {
        for text in ["@", "192.0.2.7", "2001:db8::7", "::ffff:192.0.2.7"] {
            let peer = Peer::parse(text).unwrap();
            assert_eq!(peer.to_string(), text);
            assert_eq!(text.parse::<Peer>(), Ok(peer));
        }
    }
}
