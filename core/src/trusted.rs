//! Trusted sources: which peers may tell gatehouse who the user is.
//!
//! This is Navidrome's `ExtAuth.TrustedSources` (formerly `ReverseProxyWhitelist`): a
//! comma-separated list of IPv4/IPv6 CIDRs and `@` (a peer on a UNIX socket). A request whose
//! *socket peer* is in the list may name its user in the identity header; any other request
//! goes through gatehouse's own login.
//!
//! **The threat.** The identity header is a password that anyone can type. The only thing that
//! makes it safe is that it is believed from a handful of peers and nobody else, so every way a
//! peer could be "in the list" by accident is a way to become any user, admin included. Hence:
//! matching is done on the raw peer address (never `X-Forwarded-For`); the semantics are
//! Navidrome's to the letter, so a list means the same thing in gatehouse and in the app
//! behind it:
//! - an IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`) is the IPv4 peer `a.b.c.d` and matches IPv4
//!   entries; IPv4 peers never match IPv6 entries and IPv6 peers never match IPv4 entries, so
//!   `::/0` does not trust IPv4;
//! - host bits in an entry are ignored (`192.168.1.1/24` is `192.168.1.0/24`);
//! - zoned peers (`fe80::1%eth0`) never match (they do not even parse as a [`Peer`]);
//! - an empty list trusts nobody: the feature is off;
//! - `@` matches the UNIX-socket peer and nothing else.
//!
//! Parsing is stricter and friendlier than Navidrome's, which silently drops what it cannot
//! parse (a typo would quietly leave a proxy untrusted, or — worse — leave the admin believing
//! a rule exists): spaces around entries are trimmed, a bare address means `/32` or `/128`, and
//! an entry that does not parse is an error naming that entry, never skipped. Empty entries
//! (`a,,b`, a trailing comma, an all-blank list) are skipped: skipping nothing can only ever
//! trust *less*, and a blank list is the documented way to switch the feature off. `0.0.0.0/0`
//! and `::/0` parse (someone may really mean it, e.g. inside a container network) but are
//! flagged by [`TrustedSources::trusts_everyone`] so the shells warn loudly.
//!
//! An IPv6 entry inside `::ffff:0:0/96` (IPv4-mapped) is stored as the IPv4 network it
//! covers (`::ffff:10.0.0.0/104` is `10.0.0.0/8`), which is what Go's `net.IPNet` makes of it.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::Range;

use crate::peer::Peer;

/// Longest excerpt of a bad entry an error keeps, in bytes (longer entries are cut on a
/// character boundary and shown with `…`).
pub const ERROR_EXCERPT_LEN: usize = 48;

/// One entry of a trusted-sources list: `@` or a network with its host bits cleared.
///
/// A value of this type is always valid: the network never has host bits set and the prefix
/// never exceeds the family's width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrustedSource(Repr);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Repr {
    Unix,
    V4 { network: u32, prefix: u8 },
    V6 { network: u128, prefix: u8 },
}

/// Why one entry of a trusted-sources list is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TrustedSourceErrorKind {
    /// The address part is not an IPv4 or IPv6 address (nor `@`). Ports, brackets and host
    /// names are not allowed in entries.
    InvalidAddress,
    /// The part after `/` is not a decimal number within 0–32 (IPv4) or 0–128 (IPv6).
    InvalidPrefix,
    /// An IPv6 address with a zone (`fe80::1%eth0`): zoned peers are never trusted, so such an
    /// entry could never match and is refused rather than kept as a rule that does nothing.
    Zoned,
    /// More entries than this list's capacity.
    TooMany {
        /// How many entries the list holds.
        capacity: usize,
    },
}

impl fmt::Display for TrustedSourceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAddress => f.write_str(
                "not an IP address, CIDR or @ (ports, brackets and host names are not allowed)",
            ),
            Self::InvalidPrefix => {
                f.write_str("prefix length must be 0-32 for IPv4 and 0-128 for IPv6")
            }
            Self::Zoned => f.write_str("zoned IPv6 address (with %zone): it would never match"),
            Self::TooMany { capacity } => {
                write!(f, "too many entries: at most {capacity} are supported")
            }
        }
    }
}

/// A trusted-sources list that does not parse, naming the entry at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrustedSourcesError {
    kind: TrustedSourceErrorKind,
    index: usize,
    span: Range<usize>,
    excerpt: heapless::String<ERROR_EXCERPT_LEN>,
    excerpt_cut: bool,
}

impl TrustedSourcesError {
    fn new(kind: TrustedSourceErrorKind, index: usize, input: &str, span: Range<usize>) -> Self {
        let entry = input.get(span.clone()).unwrap_or("");
        let mut cut = entry.len().min(ERROR_EXCERPT_LEN);
        while !entry.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut excerpt = heapless::String::new();
        // Cannot fail: `cut` is at most the capacity.
        let _ = excerpt.push_str(&entry[..cut]);
        Self {
            kind,
            index,
            span,
            excerpt,
            excerpt_cut: cut < entry.len(),
        }
    }

    /// What is wrong with the entry.
    pub fn kind(&self) -> TrustedSourceErrorKind {
        self.kind
    }

    /// Position of the bad entry among the list's non-empty entries, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Byte range of the bad entry (spaces trimmed) in the parsed string.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The bad entry as written, cut to [`ERROR_EXCERPT_LEN`] bytes (see
    /// [`Self::excerpt_is_cut`]); [`Self::span`] gives the whole of it in the input.
    pub fn excerpt(&self) -> &str {
        &self.excerpt
    }

    /// True when [`Self::excerpt`] is only the beginning of the entry.
    pub fn excerpt_is_cut(&self) -> bool {
        self.excerpt_cut
    }
}

impl fmt::Display for TrustedSourcesError {
    /// E.g. `trusted source 2 "10.0.0.300/8": not an IP address, CIDR or @ (…)`. Entries are
    /// counted from 1 here, as people count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ellipsis = if self.excerpt_cut { "…" } else { "" };
        write!(
            f,
            "trusted source {} \"{}{}\": {}",
            self.index + 1,
            self.excerpt,
            ellipsis,
            self.kind
        )
    }
}

impl core::error::Error for TrustedSourcesError {}

impl TrustedSource {
    /// The UNIX-socket peer, written `@`.
    pub const UNIX: Self = Self(Repr::Unix);

    /// The network `ip/prefix`, host bits cleared. An IPv4-mapped IPv6 network of prefix 96 or
    /// more becomes the IPv4 network it covers.
    pub fn network(ip: IpAddr, prefix: u8) -> Result<Self, TrustedSourceErrorKind> {
        match ip {
            IpAddr::V4(v4) => {
                if prefix > 32 {
                    return Err(TrustedSourceErrorKind::InvalidPrefix);
                }
                Ok(Self(Repr::V4 {
                    network: u32::from(v4) & mask_v4(prefix),
                    prefix,
                }))
            }
            IpAddr::V6(v6) => {
                if prefix > 128 {
                    return Err(TrustedSourceErrorKind::InvalidPrefix);
                }
                let network = Ipv6Addr::from(u128::from(v6) & mask_v6(prefix));
                match network.to_ipv4_mapped() {
                    Some(v4) if prefix >= 96 => Ok(Self(Repr::V4 {
                        network: u32::from(v4),
                        prefix: prefix - 96,
                    })),
                    _ => Ok(Self(Repr::V6 {
                        network: u128::from(network),
                        prefix,
                    })),
                }
            }
        }
    }

    /// Parses one entry: `@`, an address (`/32` or `/128` implied) or a CIDR. No trimming.
    pub fn parse(entry: &str) -> Result<Self, TrustedSourceErrorKind> {
        if entry == "@" {
            return Ok(Self::UNIX);
        }
        if entry.contains('%') {
            return Err(TrustedSourceErrorKind::Zoned);
        }
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (entry, None),
        };
        let ip: IpAddr = address
            .parse()
            .map_err(|_| TrustedSourceErrorKind::InvalidAddress)?;
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(text) => parse_prefix(text).ok_or(TrustedSourceErrorKind::InvalidPrefix)?,
        };
        Self::network(ip, prefix)
    }

    /// True for `@`.
    pub fn is_unix(&self) -> bool {
        matches!(self.0, Repr::Unix)
    }

    /// The network address (host bits cleared) and prefix length; `None` for `@`.
    pub fn cidr(&self) -> Option<(IpAddr, u8)> {
        match self.0 {
            Repr::Unix => None,
            Repr::V4 { network, prefix } => Some((IpAddr::V4(Ipv4Addr::from(network)), prefix)),
            Repr::V6 { network, prefix } => Some((IpAddr::V6(Ipv6Addr::from(network)), prefix)),
        }
    }

    /// True for `0.0.0.0/0` or `::/0`: an entry that trusts a whole address family, i.e. the
    /// whole internet can name its own user.
    pub fn is_catch_all(&self) -> bool {
        matches!(
            self.0,
            Repr::V4 { prefix: 0, .. } | Repr::V6 { prefix: 0, .. }
        )
    }

    /// Whether this entry matches the peer, under the rules in the module documentation.
    pub fn contains(&self, peer: &Peer) -> bool {
        if peer.is_zoned() {
            return false;
        }
        match (self.0, peer.canonical_ip()) {
            (Repr::Unix, None) => true,
            (Repr::V4 { network, prefix }, Some(IpAddr::V4(ip))) => {
                u32::from(ip) & mask_v4(prefix) == network
            }
            (Repr::V6 { network, prefix }, Some(IpAddr::V6(ip))) => {
                u128::from(ip) & mask_v6(prefix) == network
            }
            _ => false,
        }
    }
}

impl fmt::Display for TrustedSource {
    /// `@`, or the CIDR with host bits cleared (`192.168.1.0/24`, `2001:db8::/32`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cidr() {
            None => f.write_str("@"),
            Some((ip, prefix)) => write!(f, "{ip}/{prefix}"),
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn parse_prefix(text: &str) -> Option<u8> {
    // Digits only (no sign, no spaces), as Go's `net.ParseCIDR`; at most three of them.
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Which entry of a list matched a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Position of the entry in the list, from 0.
    pub index: usize,
    /// The entry (as stored: host bits cleared).
    pub source: TrustedSource,
}

impl fmt::Display for Match {
    /// E.g. `10.0.0.0/8 (entry 2)`: entries counted from 1, as people count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (entry {})", self.source, self.index + 1)
    }
}

/// A parsed trusted-sources list of at most `N` entries. An empty list trusts nobody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedSources<const N: usize> {
    entries: heapless::Vec<TrustedSource, N>,
}

impl<const N: usize> Default for TrustedSources<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TrustedSources<N> {
    /// The empty list: trusts nobody.
    pub const fn new() -> Self {
        Self {
            entries: heapless::Vec::new(),
        }
    }

    /// Parses a comma-separated list, e.g. `"10.0.0.0/8, 192.168.1.1, ::1, @"`. See the
    /// module documentation for the rules; the first bad entry is the error.
    pub fn parse(list: &str) -> Result<Self, TrustedSourcesError> {
        let mut entries = heapless::Vec::new();
        let mut start = 0;
        for raw in list.split(',') {
            let raw_start = start;
            start += raw.len() + 1;
            let entry = raw.trim_ascii();
            if entry.is_empty() {
                continue;
            }
            let leading = raw.len() - raw.trim_ascii_start().len();
            let span = raw_start + leading..raw_start + leading + entry.len();
            let index = entries.len();
            let source = TrustedSource::parse(entry)
                .map_err(|kind| TrustedSourcesError::new(kind, index, list, span.clone()))?;
            entries.push(source).map_err(|_| {
                TrustedSourcesError::new(
                    TrustedSourceErrorKind::TooMany { capacity: N },
                    index,
                    list,
                    span,
                )
            })?;
        }
        Ok(Self { entries })
    }

    /// The first entry that matches the peer, if any.
    pub fn find(&self, peer: &Peer) -> Option<Match> {
        self.entries
            .iter()
            .position(|source| source.contains(peer))
            .map(|index| Match {
                index,
                source: self.entries[index],
            })
    }

    /// Whether the peer may name its user in the identity header.
    pub fn trusts(&self, peer: &Peer) -> bool {
        self.entries.iter().any(|source| source.contains(peer))
    }

    /// True when an entry is `0.0.0.0/0` or `::/0` (or the mapped `::ffff:0:0/96`): every
    /// client of that address family can name its own user. Shells must warn loudly.
    pub fn trusts_everyone(&self) -> bool {
        self.entries.iter().any(TrustedSource::is_catch_all)
    }

    /// The entries in list order.
    pub fn entries(&self) -> &[TrustedSource] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the list has no entry (the feature is off: nobody is trusted).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<const N: usize> fmt::Display for TrustedSources<N> {
    /// The list in canonical form, `", "`-separated (empty for an empty list); it parses back
    /// to the same list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, source) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt::Display::fmt(source, f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrustedSourceErrorKind::*;

    type List = TrustedSources<8>;

    fn list(text: &str) -> List {
        List::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn peer(text: &str) -> Peer {
        Peer::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// (list, peer, expected matching entry index) — Navidrome's semantics.
    #[test]
    fn navidrome_matching_vectors() {
        let cases: &[(&str, &str, Option<usize>)] = &[
            // IPv4 lists, peers with and without ports.
            ("192.168.0.0/16", "192.168.1.10", Some(0)),
            ("192.168.0.0/16", "192.168.1.10:51234", Some(0)),
            ("192.168.0.0/16", "192.169.0.1:80", None),
            ("10.0.0.0/8,192.168.1.1/32", "192.168.1.1:443", Some(1)),
            ("10.0.0.0/8,192.168.1.1/32", "192.168.1.2:443", None),
            ("127.0.0.2", "127.0.0.2:9", Some(0)),
            ("127.0.0.2", "127.0.0.3:9", None),
            // IPv6, compressed and expanded, in list and peer.
            ("2001:db8::/32", "2001:db8:1::7", Some(0)),
            ("2001:db8::/32", "[2001:db8:1::7]:443", Some(0)),
            (
                "2001:0db8:0000:0000:0000:0000:0000:0000/32",
                "[2001:db8::1]",
                Some(0),
            ),
            (
                "2001:db8::/32",
                "2001:0db8:0000:0000:0000:0000:0000:0001",
                Some(0),
            ),
            ("2001:db8::/32", "2001:db9::1", None),
            ("::1", "[::1]:80", Some(0)),
            ("::1/128", "::2", None),
            // Mapped peers match IPv4 entries…
            ("10.0.0.0/8", "::ffff:10.1.2.3", Some(0)),
            ("10.0.0.0/8", "[::ffff:10.1.2.3]:5000", Some(0)),
            ("10.0.0.0/8", "::ffff:11.1.2.3", None),
            // …and never IPv6 ones, not even `::/0`.
            ("::/0", "::ffff:10.1.2.3", None),
            // Mapped entries are the IPv4 network they cover.
            ("::ffff:10.0.0.0/104", "10.9.9.9", Some(0)),
            ("::ffff:10.0.0.0/104", "::ffff:10.9.9.9", Some(0)),
            ("::ffff:10.0.0.0/104", "11.0.0.1", None),
            // Cross-family never matches.
            ("::/0", "192.0.2.1", None),
            ("0.0.0.0/0", "2001:db8::1", None),
            ("0.0.0.0/0", "::1", None),
            ("0.0.0.0/0", "192.0.2.1:1", Some(0)),
            ("::/0", "2001:db8::1", Some(0)),
            // `@` matches the UNIX peer only; IP entries never match it.
            ("@", "@", Some(0)),
            ("@", "127.0.0.1", None),
            ("@", "::1", None),
            ("0.0.0.0/0,::/0", "@", None),
            ("10.0.0.0/8, @", "@", Some(1)),
            // Host bits ignored.
            ("192.168.1.1/24", "192.168.1.200", Some(0)),
            ("192.168.1.1/24", "192.168.2.1", None),
            ("2001:db8::ffff/64", "2001:db8::1", Some(0)),
            // Spaces trimmed, first matching entry reported.
            ("  10.0.0.0/8 ,\t10.1.0.0/16  ", "10.1.2.3", Some(0)),
            (" 172.16.0.0/12 , 10.1.0.0/16", "10.1.2.3", Some(1)),
            // Empty list trusts nobody.
            ("", "127.0.0.1", None),
            ("", "@", None),
            (" , ,", "127.0.0.1", None),
        ];
        for &(sources, who, want) in cases {
            let got = list(sources).find(&peer(who)).map(|m| m.index);
            assert_eq!(got, want, "list {sources:?}, peer {who:?}");
            assert_eq!(list(sources).trusts(&peer(who)), want.is_some());
        }
    }

    #[test]
    fn zoned_and_invalid_peers_never_reach_the_list() {
        for bad in [
            "fe80::1%eth0",
            "[fe80::1%eth0]:80",
            "localhost",
            "192.0.2.1:99999",
            "",
            "[10.0.0.1]:80",
        ] {
            assert!(Peer::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_zoned_socket_peer_is_never_trusted() {
        use core::net::{SocketAddr, SocketAddrV6};
        let l = list("fe80::/10, fe80::1, ::/0, @");
        for scope_id in [1, 2, u32::MAX] {
            let addr = SocketAddrV6::new("fe80::1".parse().unwrap(), 4711, 0, scope_id);
            let zoned = Peer::from_socket_addr(SocketAddr::V6(addr));
            assert!(!l.trusts(&zoned), "{zoned}");
            assert_eq!(l.find(&zoned), None);
        }
        // Without a zone, the same address is trusted.
        let plain = SocketAddrV6::new("fe80::1".parse().unwrap(), 4711, 0, 0);
        assert!(l.trusts(&Peer::from_socket_addr(SocketAddr::V6(plain))));
    }

    #[test]
    fn bare_addresses_are_single_hosts() {
        let l = list("192.0.2.7, 2001:db8::7");
        assert_eq!(l.entries()[0].to_string(), "192.0.2.7/32");
        assert_eq!(l.entries()[1].to_string(), "2001:db8::7/128");
        assert!(l.trusts(&peer("192.0.2.7")));
        assert!(!l.trusts(&peer("192.0.2.8")));
        assert!(l.trusts(&peer("2001:db8::7")));
        assert!(!l.trusts(&peer("2001:db8::8")));
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        let l = list(" 192.168.1.77/24,@ ,2001:0db8::1/32 , ::ffff:10.1.1.1/104,::/0");
        let shown = l.to_string();
        assert_eq!(shown, "192.168.1.0/24, @, 2001:db8::/32, 10.0.0.0/8, ::/0");
        assert_eq!(list(&shown), l);
        let m = l.find(&peer("10.2.3.4")).unwrap();
        assert_eq!(m.to_string(), "10.0.0.0/8 (entry 4)");
    }

    #[test]
    fn bad_entries_are_named_with_their_position() {
        let cases: &[(&str, TrustedSourceErrorKind, usize, &str)] = &[
            (
                "10.0.0.0/8, 10.0.0.300/8",
                InvalidAddress,
                1,
                "10.0.0.300/8",
            ),
            ("10.0.0.0/33", InvalidPrefix, 0, "10.0.0.0/33"),
            ("::/129", InvalidPrefix, 0, "::/129"),
            ("10.0.0.0/", InvalidPrefix, 0, "10.0.0.0/"),
            ("10.0.0.0/+8", InvalidPrefix, 0, "10.0.0.0/+8"),
            ("10.0.0.0/8/8", InvalidPrefix, 0, "10.0.0.0/8/8"),
            ("10.0.0.0/ 8", InvalidPrefix, 0, "10.0.0.0/ 8"),
            ("10.0.0.0/0008", InvalidPrefix, 0, "10.0.0.0/0008"),
            ("@, 192.168.0.1:80", InvalidAddress, 1, "192.168.0.1:80"),
            ("[::1]", InvalidAddress, 0, "[::1]"),
            ("localhost", InvalidAddress, 0, "localhost"),
            ("unix:/run/a.sock", InvalidAddress, 0, "unix:/run/a.sock"),
            ("@@", InvalidAddress, 0, "@@"),
            ("*", InvalidAddress, 0, "*"),
            ("10.0.0.0 /8", InvalidAddress, 0, "10.0.0.0 /8"),
            ("fe80::/10, fe80::1%eth0", Zoned, 1, "fe80::1%eth0"),
            ("fe80::1%eth0/64", Zoned, 0, "fe80::1%eth0/64"),
            // Empty entries do not count in the position.
            (",, 10.0.0.1 ,,, nope ,", InvalidAddress, 1, "nope"),
        ];
        for &(text, kind, index, entry) in cases {
            let err = List::parse(text).unwrap_err();
            assert_eq!(err.kind(), kind, "{text:?}");
            assert_eq!(err.index(), index, "{text:?}");
            assert_eq!(err.excerpt(), entry, "{text:?}");
            assert_eq!(&text[err.span()], entry, "{text:?}");
            assert!(!err.excerpt_is_cut());
        }
    }

    #[test]
    fn error_message_names_the_entry() {
        let err = List::parse("10.0.0.0/8, 10.0.0.300/8").unwrap_err();
        assert_eq!(
            err.to_string(),
            "trusted source 2 \"10.0.0.300/8\": not an IP address, CIDR or @ \
             (ports, brackets and host names are not allowed)"
        );
    }

    #[test]
    fn long_bad_entries_are_cut_on_a_character_boundary() {
        let long = "10.0.0.0/8, é".to_string() + &"x".repeat(100);
        let err = List::parse(&long).unwrap_err();
        assert!(err.excerpt_is_cut());
        assert_eq!(err.excerpt().len(), ERROR_EXCERPT_LEN);
        assert!(err.excerpt().starts_with('é'));
        assert_eq!(err.span(), 12..long.len());
        assert!(err.to_string().contains("xxx…\""));
        // Cut in the middle of a 2-byte character: the excerpt backs off one byte.
        let odd = "x".repeat(ERROR_EXCERPT_LEN - 1) + "é";
        let err = List::parse(&odd).unwrap_err();
        assert_eq!(err.excerpt().len(), ERROR_EXCERPT_LEN - 1);
    }

    #[test]
    fn capacity_is_an_error_naming_the_first_entry_too_many() {
        let ok = "1.1.1.1,2.2.2.2,3.3.3.3";
        assert_eq!(TrustedSources::<3>::parse(ok).unwrap().len(), 3);
        let err = TrustedSources::<3>::parse("1.1.1.1,2.2.2.2,3.3.3.3, 4.4.4.4").unwrap_err();
        assert_eq!(err.kind(), TooMany { capacity: 3 });
        assert_eq!(err.index(), 3);
        assert_eq!(err.excerpt(), "4.4.4.4");
        // Empty entries do not use capacity.
        assert!(TrustedSources::<3>::parse("1.1.1.1,,2.2.2.2,,,3.3.3.3,").is_ok());
        assert!(TrustedSources::<0>::parse("").is_ok());
        assert!(TrustedSources::<0>::parse("@").is_err());
    }

    #[test]
    fn catch_all_entries_are_flagged() {
        assert!(list("0.0.0.0/0").trusts_everyone());
        assert!(list("10.0.0.0/8, ::/0").trusts_everyone());
        assert!(list("1.2.3.4/0").trusts_everyone());
        assert!(list("::ffff:0:0/96").trusts_everyone());
        assert!(!list("10.0.0.0/1, ::/1, @").trusts_everyone());
        assert!(!list("").trusts_everyone());
    }

    #[test]
    fn empty_list_is_off() {
        for text in ["", " ", ",", " , ,\t"] {
            let l = list(text);
            assert!(l.is_empty());
            assert!(!l.trusts(&Peer::Unix));
            assert!(!l.trusts(&peer("127.0.0.1")));
            assert!(!l.trusts(&peer("::1")));
        }
    }

    #[test]
    fn every_prefix_length_masks_correctly() {
        for prefix in 0..=32u8 {
            let s = TrustedSource::network("255.255.255.255".parse().unwrap(), prefix).unwrap();
            let (ip, p) = s.cidr().unwrap();
            assert_eq!(p, prefix);
            let bits = u32::from(match ip {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => unreachable!(),
            });
            assert_eq!(bits.count_ones(), u32::from(prefix));
        }
        for prefix in 0..=128u8 {
            let s = TrustedSource::network(IpAddr::V6(Ipv6Addr::from(u128::MAX)), prefix).unwrap();
            assert_eq!(s.cidr().unwrap().1, prefix);
        }
        assert_eq!(
            TrustedSource::network("1.2.3.4".parse().unwrap(), 33),
            Err(InvalidPrefix)
        );
    }
}
