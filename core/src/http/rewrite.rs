//! The forwarded request head: what the app receives, written into a caller's buffer.
//!
//! This is where a client's attempt to name itself dies. Of the client's head, the app gets:
//!
//! - the request line with the *canonical* target (the one gatehouse classified);
//! - `Host` as checked;
//! - every other field except: any spelling of an identity header
//!   ([`crate::identity::is_identity_header`]); any field the client nominated in
//!   `Connection` (a client may not make gatehouse drop, or keep, a field by naming it);
//!   the hop-by-hop fields of RFC 9110 §7.6.1 (`Connection`, `Keep-Alive`, `Proxy-*`, `TE`,
//!   `Trailer`, `Upgrade` — the latter kept for a tunnel); the framing fields (re-emitted by
//!   gatehouse, once); `Expect` (the shell answers 100-continue itself); `Authorization` unless
//!   the caller forwards it on purpose (the gateway: only where the app checks it); gatehouse's session cookie (out of `Cookie`);
//! - forwarding fields: `X-Forwarded-For` / `-Proto` / `-Host` and `X-Real-IP` set from what
//!   gatehouse knows. A proxy with forwarding trust is believed about the first three (its
//!   `X-Forwarded-For` chain is kept and extended, its `-Proto` and `-Host` kept, and
//!   `X-Real-IP` is the client at the end of its chain); from anyone else they are replaced.
//!   `Forwarded`, any other `X-Forwarded-*`, a client's `X-Real-IP` and the other client-IP
//!   and URL-override fields (`X-Original-URL`, `X-Rewrite-URL`, …) never reach the app: a
//!   plain proxy in front relays whatever its clients send, and an app that honours them
//!   would route or log by the client's word;
//! - last, the identity headers gatehouse vouches for, if any.

use core::fmt;
use core::net::IpAddr;

use super::body::BodyFraming;
use super::request::{RequestHead, list_tokens, split_semicolons, trim_ows};
use super::write::Cursor;
use crate::identity::names_match_loosely;
use crate::peer::Peer;

/// The identity gatehouse vouches for on a forwarded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity<'a> {
    /// The username, sent in the configured user header (default `Remote-User`).
    pub user: &'a str,
    /// `Remote-Name`, when known.
    pub name: Option<&'a str>,
    /// `Remote-Email`, when known.
    pub email: Option<&'a str>,
    /// `Remote-Groups` (comma-separated; `admins` for administrators), when known.
    pub groups: Option<&'a str>,
}

/// Everything besides the request that decides the forwarded head.
#[derive(Clone, Copy, Debug)]
pub struct ForwardOptions<'a> {
    /// The configured user header (default [`crate::identity::DEFAULT_USER_HEADER`]).
    pub user_header: &'a str,
    /// The transport peer.
    pub peer: Peer,
    /// Whether the peer is a trusted proxy (its forwarding fields are then kept).
    pub peer_trusted: bool,
    /// Whether the client connection is TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// Drop the client's `Authorization` (`Proxy-Authorization` is always dropped).
    pub strip_authorization: bool,
    /// Name of gatehouse's session cookie, removed from `Cookie`.
    pub session_cookie: &'a str,
    /// The identity to add, if any.
    pub identity: Option<Identity<'a>>,
    /// Keep `Upgrade` and send `Connection: upgrade` (the request asked for a protocol
    /// upgrade and gatehouse allows the tunnel).
    pub tunnel: bool,
}

/// Why a forwarded head was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RewriteError {
    /// The output buffer is too small.
    OutputFull,
    /// An identity value is empty or holds a control byte (it would break the head).
    InvalidIdentityValue,
}

impl RewriteError {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RewriteError::OutputFull => "forwarded head too large",
            RewriteError::InvalidIdentityValue => "invalid identity value",
        }
    }
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fields never forwarded as the client sent them (hop-by-hop, framing, or re-emitted).
#[cfg(test)]
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "host",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    // Only meaningful with an `h2c` upgrade, which is never tunnelled.
    "http2-settings",
    // httpoxy: CGI-style servers turn it into `HTTP_PROXY`, which HTTP clients in the app
    // read as their outbound proxy.
    "proxy",
];

/// Fields that claim something about the client or the original URL; kept only from a
/// trusted proxy.
#[cfg(test)]
const PROXY_CLAIMS: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "x-original-uri",
    "x-original-url",
    "x-original-method",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-forwarded",
    "front-end-https",
    "x-url-scheme",
    "x-scheme",
];

/// What a client field is, by its folded name (see [`fold_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Identity,
    Dropped,
    Upgrade,
    Authorization,
    ProxyClaim,
    Other,
}

/// One list of folded names makes both [`kind`] and [`SPECIAL_NAMES`], so the prefilter
/// ([`surely_kept`]) can never miss a name that `kind` knows.
macro_rules! kinds {
    ($($kind:ident => [$($name:literal),+ $(,)?]),+ $(,)?) => {
        /// What a client field is, by its folded name. The lists above (kept in step by a
        /// test) are the documentation; this `match` is what runs, one comparison tree per
        /// field instead of one comparison per listed name.
        fn kind(folded: &[u8]) -> Kind {
            match folded {
                $($($name)|+ => Kind::$kind,)+
                _ => Kind::Other,
            }
        }

        /// Every folded name [`kind`] classifies as something other than [`Kind::Other`].
        const SPECIAL_NAMES: &[&[u8]] = &[$($($name),+),+];
    };
}

kinds! {
    Identity => [
        b"remote-user",
        b"remote-name",
        b"remote-email",
        b"remote-groups",
        b"x-remote-user",
        b"x-forwarded-user",
        b"x-forwarded-email",
        b"x-forwarded-groups",
        b"x-forwarded-preferred-username",
        b"x-auth-request-user",
        b"x-auth-request-email",
        b"x-auth-request-groups",
        b"x-auth-request-preferred-username",
        b"x-webauth-user",
    ],
    Dropped => [
        b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding",
        b"content-length", b"host", b"expect", b"x-forwarded-for", b"x-forwarded-proto",
        b"x-forwarded-host", b"http2-settings", b"proxy",
    ],
    Upgrade => [b"upgrade"],
    Authorization => [b"authorization"],
    ProxyClaim => [
        b"forwarded",
        b"x-real-ip",
        b"x-client-ip",
        b"true-client-ip",
        b"cf-connecting-ip",
        b"x-cluster-client-ip",
        b"x-original-uri",
        b"x-original-url",
        b"x-original-method",
        b"x-rewrite-url",
        b"x-original-host",
        b"x-host",
        b"x-forwarded",
        b"front-end-https",
        b"x-url-scheme",
        b"x-scheme",
    ],
}

/// The prefilter's bit for a folded byte (see [`FOLD`]): its low six bits. Digits share bits
/// with `p`…`y` and `-` with `m`; a shared bit only sends more names to the full check.
const fn first_bit(folded: u8) -> u64 {
    1 << (folded & 63)
}

/// For each name length (the last row: every length past [`FOLD_LEN`]), the folded first
/// bytes (as [`first_bit`]s) with which a name of that length may be more than a plain field: a
/// name [`kind`] knows, `Cookie`, or a `proxy-…` or `x-forwarded-…` name (any length from
/// its prefix's on). The configured user header and the names listed in `Connection` are
/// checked at run time.
static SPECIAL_FIRST: [u64; FOLD_LEN + 2] = {
    let mut table = [0u64; FOLD_LEN + 2];
    let mut i = 0;
    while i < SPECIAL_NAMES.len() {
        let name = SPECIAL_NAMES[i];
        table[name.len()] |= first_bit(name[0]);
        i += 1;
    }
    table[b"cookie".len()] |= first_bit(b'c');
    let mut len = 0;
    while len < table.len() {
        if len >= b"proxy-".len() {
            table[len] |= first_bit(b'p');
        }
        if len >= b"x-forwarded-".len() {
            table[len] |= first_bit(b'x');
        }
        len += 1;
    }
    table
};

/// A cheap test that a client field is forwarded exactly as sent: `true` only when
/// [`is_dropped`] is `false` and the field is not `Cookie`. `false` means "look closer",
/// never "drop". Sound because every such name has the length and the folded first byte's
/// [`first_bit`] of an entry of [`SPECIAL_FIRST`], or the length of the configured user
/// header ([`names_match_loosely`] needs equal lengths) or of a name listed in `Connection`
/// (compared ignoring case, so of equal length).
fn surely_kept(name: &[u8], options: &ForwardOptions<'_>, nominated: &Nominated<'_>) -> bool {
    let Some(&first) = name.first() else {
        return false;
    };
    let row = SPECIAL_FIRST[name.len().min(FOLD_LEN + 1)];
    row & first_bit(FOLD[usize::from(first)]) == 0
        && name.len() != options.user_header.len()
        && !nominated.may_contain_len(name.len())
}

/// Longest field name [`fold_name`] folds; no listed name is longer.
const FOLD_LEN: usize = 48;

/// The name as CGI-style servers see it: letters and digits lowercased, any other byte `-`
/// ([`names_match_loosely`]'s folding). `None` when longer than [`FOLD_LEN`].
fn fold_name<'f>(name: &[u8], buf: &'f mut [u8; FOLD_LEN]) -> Option<&'f [u8]> {
    let dst = buf.get_mut(..name.len())?;
    for (d, &b) in dst.iter_mut().zip(name) {
        *d = FOLD[usize::from(b)];
    }
    Some(dst)
}

/// [`fold_name`]'s byte mapping as a table.
static FOLD: [u8; 256] = {
    let mut table = [b'-'; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte.is_ascii_alphanumeric() {
            table[b] = byte.to_ascii_lowercase();
        }
        b += 1;
    }
    table
};

/// Whether the client field `name` is dropped before forwarding (for any identity).
pub fn is_dropped_request_header(
    head: &RequestHead<'_>,
    name: &str,
    options: &ForwardOptions<'_>,
) -> bool {
    is_dropped(head, name, options, &Nominated::of(head))
}

/// The field names a client listed in `Connection` (collected once per head).
struct Nominated<'b> {
    names: [&'b [u8]; 16],
    len: usize,
    /// More names than fit: look them up in the head instead.
    overflow: bool,
}

impl<'b> Nominated<'b> {
    fn of(head: &RequestHead<'b>) -> Self {
        let mut n = Nominated {
            names: [&[]; 16],
            len: 0,
            overflow: false,
        };
        for token in head.header_values("connection").flat_map(list_tokens) {
            match n.names.get_mut(n.len) {
                Some(slot) => {
                    *slot = token;
                    n.len += 1;
                }
                None => n.overflow = true,
            }
        }
        n
    }

    /// Whether a name of `len` bytes may be one of these.
    fn may_contain_len(&self, len: usize) -> bool {
        self.overflow || self.names[..self.len].iter().any(|t| t.len() == len)
    }

    fn contains(&self, head: &RequestHead<'_>, name: &[u8]) -> bool {
        if self.overflow {
            return named_in_connection(head, name);
        }
        self.names[..self.len]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

fn is_dropped(
    head: &RequestHead<'_>,
    name: &str,
    options: &ForwardOptions<'_>,
    nominated: &Nominated<'_>,
) -> bool {
    // Names are compared as CGI-style environments see them (`X_Forwarded_For` is
    // `X-Forwarded-For` to the app): see [`names_match_loosely`].
    let n = name.as_bytes();
    let mut buf = [0u8; FOLD_LEN];
    let kind = fold_name(n, &mut buf).map_or(Kind::Other, kind);
    match kind {
        Kind::Identity | Kind::Dropped | Kind::ProxyClaim => return true,
        Kind::Upgrade if !(options.tunnel && head.upgrade().is_some()) => return true,
        Kind::Authorization if options.strip_authorization => return true,
        _ => {}
    }
    // Gatehouse's and foreign identity headers are `Kind::Identity` above (a test keeps the
    // lists in step with `is_identity_header`); what is left is the configured name.
    names_match_loosely(n, options.user_header.as_bytes())
        || starts_with_loosely(n, b"proxy-")
        || starts_with_loosely(n, b"x-forwarded-")
        || nominated.contains(head, n)
}

fn starts_with_loosely(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|h| names_match_loosely(h, prefix))
}

fn named_in_connection(head: &RequestHead<'_>, name: &[u8]) -> bool {
    head.header_values("connection")
        .flat_map(list_tokens)
        .any(|t| t.eq_ignore_ascii_case(name))
}

/// Writes the head to send to the app for `head`, with `target` (the canonical target) in the
/// request line. Returns its length in `out`.
pub fn write_forward_head(
    head: &RequestHead<'_>,
    target: &str,
    options: &ForwardOptions<'_>,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    if let Some(id) = &options.identity {
        check_identity_value(id.user)?;
        for v in [id.name, id.email, id.groups].into_iter().flatten() {
            check_identity_value(v)?;
        }
    }
    let mut c = Cursor::new(out);
    c.put_str(head.method())
        .put(b" ")
        .put_str(target)
        .put(b" ")
        .put_str(head.version().as_str())
        .put(b"\r\n");
    if let Some(host) = head.host() {
        c.header("Host", host);
    }
    let nominated = Nominated::of(head);
    // Fields kept as sent are copied from the client's head a run of lines at a time: `run`
    // is the span of `raw` not copied yet.
    let raw = head.raw();
    let mut run = 0..0;
    for h in head.headers() {
        let name = h.name.as_bytes();
        if !surely_kept(name, options, &nominated) {
            if is_dropped(head, h.name, options, &nominated) {
                continue;
            }
            if name.eq_ignore_ascii_case(b"cookie") {
                c.put(&raw[core::mem::take(&mut run)]);
                write_cookie_without(&mut c, h.value, options.session_cookie);
                continue;
            }
        }
        match plain_line(raw, h) {
            Some(line) if line.start == run.end => run.end = line.end,
            Some(line) => {
                c.put(&raw[core::mem::replace(&mut run, line)]);
            }
            None => {
                c.put(&raw[core::mem::take(&mut run)]);
                c.header(h.name, h.value);
            }
        }
    }
    c.put(&raw[run]);

    let trusted = options.peer_trusted;
    // X-Forwarded-For: the trusted proxy's chain, then the peer.
    let mut ip_buf = [0u8; MAX_IP_TEXT_LEN];
    let peer_ip = match options.peer {
        Peer::Ip(ip) => Some(ip_text(ip.to_canonical(), &mut ip_buf)?),
        // The address without its zone: the app has no use for this host's interface index.
        Peer::Zoned { ip, .. } => Some(ip_text(IpAddr::V6(ip), &mut ip_buf)?),
        Peer::Unix => None,
    };
    // A client's own forwarding fields count only from a trusted proxy: not even looked for
    // otherwise.
    let claims = |name: &'static str| trusted.then(|| head.header_values(name));
    let mut chain = claims("x-forwarded-for").into_iter().flatten();
    let first = chain.next();
    if first.is_some() || peer_ip.is_some() {
        c.put(b"X-Forwarded-For: ");
        let mut sep = false;
        for v in first.into_iter().chain(chain) {
            if sep {
                c.put(b", ");
            }
            c.put(v);
            sep = true;
        }
        if let Some(ip) = peer_ip {
            if sep {
                c.put(b", ");
            }
            c.put(ip);
        }
        c.put(b"\r\n");
    }
    let client_proto = claims("x-forwarded-proto")
        .and_then(|mut v| v.next())
        .filter(|v| v.eq_ignore_ascii_case(b"http") || v.eq_ignore_ascii_case(b"https"));
    let proto: &[u8] = match client_proto {
        Some(p) => p,
        None if options.tls => b"https",
        None => b"http",
    };
    c.header("X-Forwarded-Proto", proto);
    let client_host = claims("x-forwarded-host")
        .and_then(|mut v| v.next())
        .filter(|v| !v.is_empty());
    if let Some(host) = client_host.or(head.host()) {
        c.header("X-Forwarded-Host", host);
    }
    // X-Real-IP: the client the proxy reported at the end of its chain, else the peer.
    let mut reported_buf = [0u8; MAX_IP_TEXT_LEN];
    let reported = claims("x-forwarded-for")
        .and_then(|values| values.flat_map(list_tokens).last())
        .and_then(|t| core::str::from_utf8(t).ok())
        .and_then(|t| Peer::parse(t).ok())
        .and_then(|p| p.ip())
        .and_then(|ip| ip_text(ip.to_canonical(), &mut reported_buf).ok());
    if let Some(ip) = reported.or(peer_ip) {
        c.header("X-Real-IP", ip);
    }

    match head.body() {
        BodyFraming::Length(n) => {
            c.put(b"Content-Length: ").put_u64(n).put(b"\r\n");
        }
        BodyFraming::Chunked => {
            c.put(b"Transfer-Encoding: chunked\r\n");
        }
        BodyFraming::None | BodyFraming::UntilClose => {}
    }
    if let (true, Some(proto)) = (options.tunnel, head.upgrade()) {
        c.put(b"Connection: upgrade\r\n").header("Upgrade", proto);
    }
    if let Some(id) = &options.identity {
        c.header(options.user_header, id.user.as_bytes());
        if let Some(v) = id.name {
            c.header("Remote-Name", v.as_bytes());
        }
        if let Some(v) = id.email {
            c.header("Remote-Email", v.as_bytes());
        }
        if let Some(v) = id.groups {
            c.header("Remote-Groups", v.as_bytes());
        }
    }
    c.put(b"\r\n");
    c.finish().map_err(|_| RewriteError::OutputFull)
}

/// Where the field `h` lies in `raw` (the client's head) when its line there is exactly
/// `name: value\r\n`, the bytes [`Cursor::header`] would write for it; `None` for any other
/// spelling (no space or more than one after the colon, trailing whitespace), which is then
/// written out field by field.
fn plain_line(raw: &[u8], h: &httparse::Header<'_>) -> Option<core::ops::Range<usize>> {
    let base = raw.as_ptr() as usize;
    let start = (h.name.as_ptr() as usize).checked_sub(base)?;
    let colon = start.checked_add(h.name.len())?;
    let value = colon.checked_add(2)?;
    if (h.value.as_ptr() as usize).checked_sub(base)? != value {
        return None;
    }
    let end = value.checked_add(h.value.len())?.checked_add(2)?;
    let line = raw.get(start..end)?;
    // `line` holds the name's and the value's own bytes (the same memory): only the
    // separators need looking at.
    (raw.get(colon..value)? == b": " && line.ends_with(b"\r\n")).then_some(start..end)
}

/// Longest text of an IP address (`ffff:…:255.255.255.255` style IPv6 is the longest).
const MAX_IP_TEXT_LEN: usize = 45;

/// `ip` as text in `buf` (written once, sent in `X-Forwarded-For` and `X-Real-IP`): the
/// text `Display` gives (RFC 5952 for IPv6), written by hand so that no formatting machinery
/// is linked into the firmware images for it.
fn ip_text(ip: IpAddr, buf: &mut [u8; MAX_IP_TEXT_LEN]) -> Result<&[u8], RewriteError> {
    let mut c = Cursor::new(buf);
    match ip {
        IpAddr::V4(v4) => put_ipv4(&mut c, v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => put_ipv4(c.put(b"::ffff:"), v4),
            None => put_ipv6(&mut c, &v6.segments()),
        },
    }
    // Never too long for the buffer; if it were, the head could not be written.
    let (buf, n) = c.into_parts().map_err(|_| RewriteError::OutputFull)?;
    Ok(buf.get(..n).unwrap_or_default())
}

fn put_ipv4(c: &mut Cursor<'_>, ip: core::net::Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            c.put(b".");
        }
        c.put_u64(octet.into());
    }
}

/// RFC 5952: lower-case hex without leading zeros; the longest run of two or more zero
/// groups (the first of equal runs) is written `::`.
fn put_ipv6(c: &mut Cursor<'_>, groups: &[u16; 8]) {
    let (mut zeros_at, mut zeros_len) = (groups.len(), 0);
    let (mut run_at, mut run_len) = (0, 0);
    for (i, &g) in groups.iter().enumerate() {
        if g != 0 {
            run_len = 0;
            continue;
        }
        if run_len == 0 {
            run_at = i;
        }
        run_len += 1;
        if run_len > zeros_len {
            (zeros_at, zeros_len) = (run_at, run_len);
        }
    }
    if zeros_len < 2 {
        zeros_at = groups.len();
    }
    let mut i = 0;
    while let Some(&g) = groups.get(i) {
        if i == zeros_at {
            c.put(b"::");
            i += zeros_len;
            continue;
        }
        if i > 0 && i != zeros_at + zeros_len {
            c.put(b":");
        }
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let digit = usize::from((g >> shift) & 0xf);
            if digit != 0 || started || shift == 0 {
                c.put(&[b"0123456789abcdef"[digit]]);
                started = true;
            }
        }
        i += 1;
    }
}

fn check_identity_value(v: &str) -> Result<(), RewriteError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
        && trim_ows(v.as_bytes()).len() == v.len();
    if ok {
        Ok(())
    } else {
        Err(RewriteError::InvalidIdentityValue)
    }
}

/// Writes `Cookie: …` with every pair named `session_cookie` removed; nothing when no pair is
/// left.
fn write_cookie_without(c: &mut Cursor<'_>, value: &[u8], session_cookie: &str) {
    let keep = |pair: &&[u8]| {
        let pair = trim_ows(pair);
        let name = pair.split(|&b| b == b'=').next().unwrap_or(pair);
        // Its `Secure` spelling too (`__Host-` prefixed): the app never sees a session.
        let name = trim_ows(name);
        let session = name == session_cookie.as_bytes()
            || name.strip_prefix(b"__Host-") == Some(session_cookie.as_bytes());
        !pair.is_empty() && !session
    };
    let mut pairs = split_semicolons(value).filter(keep);
    let Some(first) = pairs.next() else { return };
    c.put(b"Cookie: ").put(trim_ows(first));
    for p in pairs {
        c.put(b"; ").put(trim_ows(p));
    }
    c.put(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Parse;
    use core::net::Ipv4Addr;

    fn head(bytes: &[u8]) -> RequestHead<'_> {
        match RequestHead::parse(bytes) {
            Ok(Parse::Complete(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn options<'a>(identity: Option<Identity<'a>>) -> ForwardOptions<'a> {
        ForwardOptions {
            user_header: "Remote-User",
            peer: Peer::Ip(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
            peer_trusted: false,
            tls: true,
            strip_authorization: true,
            session_cookie: "gatehouse_session",
            identity,
            tunnel: false,
        }
    }

    fn forward(bytes: &[u8], target: &str, opts: &ForwardOptions<'_>) -> String {
        let h = head(bytes);
        let mut out = [0u8; 4096];
        let n = write_forward_head(&h, target, opts, &mut out).unwrap();
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn forwarding_claims_with_underscores_are_dropped_for_untrusted_clients() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 127.0.0.1\r\nX-Forwarded_For: 10.0.0.1\r\nX_Real_IP: 127.0.0.9\r\nX_Forwarded_Proto: http\r\nX_Forwarded_Host: evil.example\r\nX_Original_URI: /admin\r\nX.Forwarded.Server: evil.example\r\nX_Original_Host: evil.example\r\nX-Url-Scheme: http\r\n\r\n";
        let text = forward(req, "/", &options(None));
        for spoof in [
            "127.0.0.1",
            "10.0.0.1",
            "127.0.0.9",
            "evil.example",
            "/admin",
            "X_",
            "X.",
            "Url-Scheme",
        ] {
            assert!(!text.contains(spoof), "{spoof:?} reached the app:\n{text}");
        }
        assert!(text.contains("X-Forwarded-For: 203.0.113.7\r\n"), "{text}");
    }

    #[test]
    fn httpoxy_proxy_header_is_dropped() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\nProxy: http://evil.example:3128\r\nproxy_authorization: x\r\n\r\n";
        for trusted in [false, true] {
            let mut opts = options(None);
            opts.peer_trusted = trusted;
            let text = forward(req, "/", &opts);
            assert!(!text.contains("evil.example"), "{text}");
            assert!(!text.contains("proxy_authorization"), "{text}");
        }
    }

    const ALICE: Identity<'static> = Identity {
        user: "alice",
        name: Some("Alice"),
        email: None,
        groups: Some("admins"),
    };

    #[test]
    fn the_fast_classification_covers_every_listed_name() {
        use crate::identity::{FOREIGN_IDENTITY_HEADERS, IDENTITY_HEADERS};
        let mut buf = [0u8; FOLD_LEN];
        for name in IDENTITY_HEADERS
            .iter()
            .chain(FOREIGN_IDENTITY_HEADERS.iter())
        {
            let folded = fold_name(name.as_bytes(), &mut buf).unwrap();
            assert_eq!(kind(folded), Kind::Identity, "{name}");
        }
        for name in DROPPED {
            let folded = fold_name(name.as_bytes(), &mut buf).unwrap();
            assert_eq!(kind(folded), Kind::Dropped, "{name}");
        }
        for name in PROXY_CLAIMS {
            let folded = fold_name(name.as_bytes(), &mut buf).unwrap();
            assert_eq!(kind(folded), Kind::ProxyClaim, "{name}");
        }
        for (spelling, want) in [
            ("X_FORWARDED_FOR", Kind::Dropped),
            ("Remote.User", Kind::Identity),
            ("UPGRADE", Kind::Upgrade),
            ("authorization", Kind::Authorization),
            ("Accept", Kind::Other),
        ] {
            assert_eq!(
                kind(fold_name(spelling.as_bytes(), &mut buf).unwrap()),
                want
            );
        }
        assert_eq!(fold_name(&[b'a'; FOLD_LEN + 1], &mut buf), None);
        for b in 0..=255u8 {
            let mut one = [0u8; FOLD_LEN];
            let folded = fold_name(&[b], &mut one).unwrap()[0];
            assert!(names_match_loosely(&[b], &[folded]), "{b}");
        }
    }

    #[test]
    fn client_identity_headers_never_survive() {
        let req = b"GET /app/../app/x HTTP/1.1\r\nHost: music\r\nRemote-User: admin\r\nremote_user: admin\r\nREMOTE-GROUPS: admins\r\nX-Forwarded-User: admin\r\nX-Custom: a\r\nConnection: X-Custom, keep-alive\r\n\r\n";
        let text = forward(req, "/app/x", &options(Some(ALICE)));
        assert_eq!(
            text,
            "GET /app/x HTTP/1.1\r\nHost: music\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: music\r\nX-Real-IP: 203.0.113.7\r\nRemote-User: alice\r\nRemote-Name: Alice\r\nRemote-Groups: admins\r\n\r\n"
        );
        let anonymous = forward(req, "/app/x", &options(None));
        assert!(
            !anonymous.to_ascii_lowercase().contains("remote"),
            "{anonymous}"
        );
    }

    #[test]
    fn hop_by_hop_and_framing_fields_are_replaced() {
        let req = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: Remote-User\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nExpect: 100-continue\r\nAuthorization: Basic YTpi\r\nAccept: */*\r\n\r\n";
        let text = forward(req, "/up", &options(None));
        assert_eq!(
            text,
            "POST /up HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\nX-Real-IP: 203.0.113.7\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let mut keep_auth = options(None);
        keep_auth.strip_authorization = false;
        assert!(forward(req, "/up", &keep_auth).contains("\r\nAuthorization: Basic YTpi\r\n"));
    }

    #[test]
    fn tunnels_keep_upgrade() {
        let req = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
        let mut opts = options(Some(ALICE));
        opts.tunnel = true;
        let text = forward(req, "/ws", &opts);
        assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: upgrade\r\n"), "{text}");
        assert!(text.contains("\r\nSec-WebSocket-Key: k\r\n"), "{text}");
        assert_eq!(text.matches("Upgrade: websocket").count(), 1, "{text}");
        opts.tunnel = false;
        let text = forward(req, "/ws", &opts);
        assert!(!text.contains("Upgrade"), "{text}");
    }

    #[test]
    fn session_cookie_is_removed_from_cookie() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; gatehouse_session=SECRET; b=2\r\nCookie: gatehouse_session=X\r\n\r\n";
        let text = forward(req, "/", &options(None));
        assert!(text.contains("\r\nCookie: a=1; b=2\r\n"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert_eq!(text.matches("Cookie").count(), 1, "{text}");
    }

    #[test]
    fn forwarding_claims_are_kept_only_from_trusted_proxies_and_overrides_never() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: outer\r\nX-Real-IP: 1.2.3.4\r\nForwarded: for=1.2.3.4\r\nX-Forwarded-Prefix: /x\r\n\r\n";
        let text = forward(req, "/", &options(None));
        assert!(
            text.contains("\r\nX-Forwarded-For: 203.0.113.7\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nX-Forwarded-Proto: https\r\n"), "{text}");
        assert!(text.contains("\r\nX-Forwarded-Host: a\r\n"), "{text}");
        assert!(text.contains("\r\nX-Real-IP: 203.0.113.7\r\n"), "{text}");
        for gone in ["1.2.3.4", "outer", "Forwarded:", "Prefix"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        let mut trusted = options(None);
        trusted.peer_trusted = true;
        let text = forward(req, "/", &trusted);
        assert!(
            text.contains("\r\nX-Forwarded-For: 1.2.3.4, 5.6.7.8, 203.0.113.7\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nX-Forwarded-Proto: http\r\n"), "{text}");
        assert!(text.contains("\r\nX-Forwarded-Host: outer\r\n"), "{text}");
        // The client the proxy reported last, never a client's own X-Real-IP.
        assert!(text.contains("\r\nX-Real-IP: 5.6.7.8\r\n"), "{text}");
        assert_eq!(text.matches("X-Real-IP").count(), 1, "{text}");
        // A plain proxy relays these from its clients: never believed.
        for gone in ["Forwarded:", "Prefix"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert_eq!(text.matches("X-Forwarded-For").count(), 1, "{text}");
    }

    #[test]
    fn mapped_and_unix_peers() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut opts = options(None);
        opts.peer = Peer::Ip("::ffff:10.0.0.1".parse().unwrap());
        assert!(forward(req, "/", &opts).contains("X-Forwarded-For: 10.0.0.1\r\n"));
        opts.peer = Peer::Ip("2001:db8::1".parse().unwrap());
        assert!(forward(req, "/", &opts).contains("X-Forwarded-For: 2001:db8::1\r\n"));
        opts.peer = Peer::Unix;
        assert!(!forward(req, "/", &opts).contains("X-Forwarded-For"));
    }

    #[test]
    fn configured_user_header_is_used_and_stripped() {
        let req =
            b"GET / HTTP/1.1\r\nHost: a\r\nx_webauth_user: admin\r\nX-Auth-User: admin\r\n\r\n";
        let mut opts = options(Some(Identity {
            user: "bob",
            name: None,
            email: None,
            groups: None,
        }));
        opts.user_header = "X-Auth-User";
        let text = forward(req, "/", &opts);
        assert!(text.ends_with("\r\nX-Auth-User: bob\r\n\r\n"), "{text}");
        assert!(!text.contains("admin"), "{text}");
    }

    #[test]
    fn identity_values_cannot_inject() {
        let h = head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut out = [0u8; 1024];
        for bad in ["", "a\r\nRemote-User: admin", "a\0", " a", "a\t"] {
            let opts = options(Some(Identity {
                user: bad,
                name: None,
                email: None,
                groups: None,
            }));
            assert_eq!(
                write_forward_head(&h, "/", &opts, &mut out),
                Err(RewriteError::InvalidIdentityValue),
                "{bad:?}"
            );
        }
        assert_eq!(
            write_forward_head(&h, "/", &options(None), &mut [0u8; 10]),
            Err(RewriteError::OutputFull)
        );
    }

    #[test]
    fn http_1_0_keeps_its_version_and_has_no_host_when_none_was_sent() {
        let text = forward(b"GET /a HTTP/1.0\r\n\r\n", "/a", &options(None));
        assert!(
            text.starts_with("GET /a HTTP/1.0\r\nX-Forwarded-For"),
            "{text}"
        );
    }

    #[test]
    fn fields_are_forwarded_in_order_however_their_lines_were_spelled() {
        // Plain `name: value` lines are copied as runs; other spellings are rewritten to that
        // form; a dropped field or the Cookie field in between breaks a run, not the order.
        let req = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B:2\r\nX-C:  3 \t\r\nRemote-User: x\r\nX-D: 4\r\nCookie: a=b; gatehouse_session=s\r\nX-E: 5\r\nX-F:\r\nX-G: \r\nX-H:\t6\r\nX-I: 7\r\n\r\n";
        let text = forward(req, "/", &options(None));
        assert_eq!(
            text,
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\nCookie: a=b\r\nX-E: 5\r\nX-F: \r\nX-G: \r\nX-H: 6\r\nX-I: 7\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\nX-Real-IP: 203.0.113.7\r\n\r\n"
        );
    }

    #[test]
    fn peer_addresses_are_written_in_their_usual_text() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for (ip, want) in [
            ("0.0.0.0", "0.0.0.0"),
            ("9.10.99.100", "9.10.99.100"),
            ("255.255.255.255", "255.255.255.255"),
            ("2001:db8::7", "2001:db8::7"),
            (
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            ("::ffff:192.0.2.1", "192.0.2.1"),
        ] {
            let mut opts = options(None);
            opts.peer = Peer::Ip(ip.parse().unwrap());
            let text = forward(req, "/", &opts);
            assert!(
                text.contains(&format!("X-Forwarded-For: {want}\r\n"))
                    && text.contains(&format!("X-Real-IP: {want}\r\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn the_prefilter_never_passes_a_field_that_needs_a_closer_look() {
        use crate::identity::{FOREIGN_IDENTITY_HEADERS, IDENTITY_HEADERS};
        let h = head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Custom-Th\r\n\r\n");
        let nominated = Nominated::of(&h);
        let mut opts = options(None);
        opts.user_header = "X-Login-Name";
        let listed = IDENTITY_HEADERS
            .iter()
            .chain(FOREIGN_IDENTITY_HEADERS.iter())
            .chain(DROPPED)
            .chain(PROXY_CLAIMS)
            .copied()
            .chain([
                "Upgrade",
                "Authorization",
                "Cookie",
                "COOKIE",
                "Proxy-Authorization",
                "proxy_anything_at_all_that_is_very_long_indeed_and_longer_than_48",
                "X-Forwarded-Server",
                "x_forwarded_anything_at_all_that_is_very_long_indeed_and_longer",
                "x-login-name",
                "X_LOGIN.NAME",
                "x-custom-th",
                "X-CUSTOM-TH",
            ]);
        for name in listed {
            assert!(!surely_kept(name.as_bytes(), &opts, &nominated), "{name}");
        }
        for name in [
            "Accept",
            "User-Agent",
            "Sec-Fetch-Mode",
            "X-Trace",
            "Referer",
        ] {
            assert!(surely_kept(name.as_bytes(), &opts, &nominated), "{name}");
        }
    }

    #[test]
    fn ip_text_follows_rfc_5952() {
        for (ip, text) in [
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("0:0:0:0:0:0:0:0", "::"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("fe80:0:0:0:0:0:0:0", "fe80::"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("ABCD:EF01:0:0:0:0:0:0A", "abcd:ef01::a"),
            ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
            ("192.0.2.10", "192.0.2.10"),
            ("0.100.9.255", "0.100.9.255"),
        ] {
            let mut buf = [0u8; MAX_IP_TEXT_LEN];
            let got = ip_text(ip.parse().unwrap(), &mut buf).unwrap();
            assert_eq!(got, text.as_bytes(), "{ip}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// What the prefilter lets through untouched is exactly what the full check
            /// keeps, whatever the name, the configured user header and `Connection`.
            #[test]
            fn the_prefilter_agrees_with_the_full_check(
                name in "[A-Za-z0-9_.~!-]{1,60}",
                user_header in "[A-Za-z0-9_-]{1,20}",
                nominated in "[A-Za-z0-9_-]{1,20}",
                trusted in any::<bool>(),
                tunnel in any::<bool>(),
                strip in any::<bool>(),
            ) {
                let req = format!(
                    "GET / HTTP/1.1\r\nHost: a\r\nConnection: {nominated}\r\nUpgrade: websocket\r\n\r\n"
                );
                let h = head(req.as_bytes());
                let n = Nominated::of(&h);
                let mut opts = options(None);
                opts.user_header = &user_header;
                opts.peer_trusted = trusted;
                opts.tunnel = tunnel;
                opts.strip_authorization = strip;
                if surely_kept(name.as_bytes(), &opts, &n) {
                    prop_assert!(!is_dropped(&h, &name, &opts, &n));
                    prop_assert!(!name.eq_ignore_ascii_case("cookie"));
                }
            }

            /// The address text sent in `X-Forwarded-For` and `X-Real-IP` is what `Display`
            /// writes, for any address; groups drawn mostly from 0 and 1 make zero runs of
            /// every length and place.
            #[test]
            fn ip_text_is_what_display_writes(
                groups in proptest::array::uniform8(prop_oneof![Just(0u16), Just(1u16), any::<u16>()]),
                v4 in any::<u32>(),
                mapped in any::<bool>(),
            ) {
                let v6 = core::net::Ipv6Addr::from(groups);
                let v6 = if mapped { core::net::Ipv4Addr::from(v4).to_ipv6_mapped() } else { v6 };
                for ip in [IpAddr::V6(v6), IpAddr::V4(v4.into())] {
                    let mut buf = [0u8; MAX_IP_TEXT_LEN];
                    let text = ip_text(ip, &mut buf).unwrap();
                    prop_assert_eq!(core::str::from_utf8(text).unwrap(), ip.to_string());
                }
            }

            /// Spelled with the listed names' letters, so that names close to them come up.
            #[test]
            fn the_prefilter_agrees_on_look_alikes(
                index in 0..SPECIAL_NAMES.len(),
                cut in 0usize..40,
                tail in "[a-z_-]{0,6}",
                upper in any::<bool>(),
            ) {
                let base = core::str::from_utf8(SPECIAL_NAMES[index]).unwrap();
                let cut = cut.min(base.len());
                let mut name = format!("{}{tail}", &base[..cut]).replace('-', "_");
                if upper {
                    name = name.to_ascii_uppercase();
                }
                prop_assume!(!name.is_empty());
                let h = head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                let n = Nominated::of(&h);
                let opts = options(None);
                if surely_kept(name.as_bytes(), &opts, &n) {
                    prop_assert!(!is_dropped(&h, &name, &opts, &n));
                    prop_assert!(!name.eq_ignore_ascii_case("cookie"));
                }
            }
        }
    }
}
