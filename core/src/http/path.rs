//! Request paths: one canonical spelling, decided before any prefix match.
//!
//! Why: "is this path public?" must get the same answer in gatehouse as in the app that
//! serves it. If gatehouse matched `/share/` on the raw target, `/share/../app/` or
//! `/share/%2e%2e/app/` would pass as public and reach `/app/` without login. So the target is
//! canonicalised first — unreserved percent-escapes decoded, `.` and `..` resolved, `//`
//! collapsed — and that canonical path is both what is classified and what is forwarded.
//! What cannot be made unambiguous is refused with a [`PathError`] (400):
//!
//! - `%2F` / `%5C` inside a segment: some apps decode them into separators, others do not;
//! - a literal `\`: some servers read it as `/`;
//! - `..` climbing above the root;
//! - NUL and other control bytes, raw or escaped; malformed escapes;
//! - dot segments carrying parameters (`..;`, `..%3B`), which Java servlet containers read
//!   as `..` (some after decoding `%3B`);
//! - dot segments with trailing dots or spaces (`..%20`, `...`, `.%20`), which Windows and
//!   servers that trim names read as `.` or `..`.
//!
//! Prefixes match on whole segments: the prefix `/share/` (or `/share`) matches `/share`,
//! `/share/` and `/share/x`, never `/shared/x`. Public and Subsonic prefixes match
//! case-sensitively, like the routers of the apps behind (so `/SHARE/x` is protected, the safe
//! side). The reserved prefix matches ASCII-case-insensitively, the way the proxies in front
//! route it (Caddy's path matcher takes `/_GATEHOUSE/x` for `/_gatehouse/*`): a path a proxy
//! hands to gatehouse's own endpoints must never be an app path to gatehouse, where an
//! identity header might be believed.

use core::fmt;

use super::write::{Cursor, HEX_UPPER};

/// Default prefix of gatehouse's own endpoints (login, logout, forward-auth, health).
pub const DEFAULT_RESERVED_PREFIX: &str = "/_gatehouse/";

/// Default public path prefixes (Navidrome's shared links).
pub const DEFAULT_PUBLIC_PREFIXES: &[&str] = &["/share/"];

/// Default Subsonic API prefixes.
pub const DEFAULT_SUBSONIC_PREFIXES: &[&str] = &["/rest/"];

/// Why a request target was refused (answered with 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    InvalidEscape,
    /// `%2F` inside a segment.
    EncodedSlash,
    /// `%5C` inside a segment.
    EncodedBackslash,
    /// A literal `\`.
    Backslash,
    /// `..` above the root.
    ClimbsAboveRoot,
    /// A NUL or other control byte, raw or escaped.
    ControlByte,
    /// A `.` or `..` segment with parameters (`..;x`, `..%3Bx`).
    DotSegmentWithParams,
    /// A `.` or `..` segment followed by more dots or spaces (`..%20`, `...`, `.%20.`): a
    /// name to gatehouse, `.` or `..` to a server that trims names.
    DotSegmentLookalike,
    /// `%25` followed by two hex digits (`%252e`): an escape of an escape, which an app that
    /// decodes twice reads as another path than the one gatehouse classified.
    DoubleEncoded,
    /// The canonical target does not fit the output buffer.
    TooLong,
}

impl PathError {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path not absolute",
            PathError::InvalidEscape => "invalid percent-escape",
            PathError::EncodedSlash => "encoded slash in path",
            PathError::EncodedBackslash => "encoded backslash in path",
            PathError::Backslash => "backslash in path",
            PathError::ClimbsAboveRoot => "path climbs above root",
            PathError::ControlByte => "control byte in path",
            PathError::DotSegmentWithParams => "dot segment with parameters",
            PathError::DotSegmentLookalike => "dot segment with trailing dots or spaces",
            PathError::DoubleEncoded => "double percent-encoding in path",
            PathError::TooLong => "path too long",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canonical request target (`/path` or `/path?query`) in a caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanonicalTarget<'o> {
    target: &'o str,
    path_len: usize,
}

impl<'o> CanonicalTarget<'o> {
    /// The whole target, to be written in the forwarded request line.
    pub fn as_str(&self) -> &'o str {
        self.target
    }

    /// The canonical path (no query).
    pub fn path(&self) -> &'o str {
        &self.target[..self.path_len]
    }

    /// The query, without the `?`, when there was one.
    pub fn query(&self) -> Option<&'o str> {
        self.target.get(self.path_len + 1..)
    }
}

/// Canonicalises an origin-form target (`/path?query`, as in
/// [`super::RequestHead::path_and_query`]; empty or `?…` mean the path `/`) into `out`.
///
/// The query is kept byte for byte (the app parses it; classification does not look at it).
/// Raw non-ASCII bytes in the path are percent-encoded, as a browser would have sent them.
pub fn canonicalize<'o>(
    path_and_query: &str,
    out: &'o mut [u8],
) -> Result<CanonicalTarget<'o>, PathError> {
    let (path, query) = match path_and_query.find('?') {
        Some(q) => (&path_and_query[..q], Some(&path_and_query[q + 1..])),
        None => (path_and_query, None),
    };
    let path = path.as_bytes();
    let rest = match path {
        [] => &[][..],
        [b'/', rest @ ..] => rest,
        _ => return Err(PathError::NotAbsolute),
    };
    let Some(first) = out.first_mut() else {
        return Err(PathError::TooLong);
    };
    *first = b'/';
    let mut w = 1;
    let mut last_was_name = false;
    for raw in rest.split(|&b| b == b'/') {
        let start = w;
        w = decode_segment(raw, out, w)?;
        let seg = &out[start..w];
        let name = strip_params(seg);
        if (name == b"." || name == b"..") && name.len() != seg.len() {
            return Err(PathError::DotSegmentWithParams);
        }
        if is_dot_lookalike(name) {
            return Err(PathError::DotSegmentLookalike);
        }
        last_was_name = false;
        match seg {
            b"" | b"." => w = start,
            b".." => {
                // `start` is just past the '/' that ends the previous segment.
                if start <= 1 {
                    return Err(PathError::ClimbsAboveRoot);
                }
                w = out[..start - 1]
                    .iter()
                    .rposition(|&b| b == b'/')
                    .map_or(1, |p| p + 1);
            }
            _ => {
                *out.get_mut(w).ok_or(PathError::TooLong)? = b'/';
                w += 1;
                last_was_name = true;
            }
        }
    }
    if last_was_name {
        w -= 1; // no trailing slash after a final name
    }
    let path_len = w;
    if let Some(q) = query {
        let mut c = Cursor::new(&mut out[w..]);
        c.put(b"?").put(q.as_bytes());
        w += c.finish().map_err(|_| PathError::TooLong)?;
    }
    // Every byte written is ASCII (decoded unreserved characters, escapes, or bytes copied
    // from a `str`), so this cannot fail; the error arm keeps it panic-free regardless.
    let target = core::str::from_utf8(&out[..w]).map_err(|_| PathError::ControlByte)?;
    Ok(CanonicalTarget { target, path_len })
}

/// Decodes one raw segment into `out[w..]`, returning the new end.
fn decode_segment(raw: &[u8], out: &mut [u8], mut w: usize) -> Result<usize, PathError> {
    let start = w;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let mut put = |bytes: &[u8]| -> Result<(), PathError> {
            let dst = out.get_mut(w..w + bytes.len()).ok_or(PathError::TooLong)?;
            dst.copy_from_slice(bytes);
            w += bytes.len();
            Ok(())
        };
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    raw.get(i + 1).copied().and_then(hex_digit),
                    raw.get(i + 2).copied().and_then(hex_digit),
                ) else {
                    return Err(PathError::InvalidEscape);
                };
                let v = hi << 4 | lo;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::EncodedBackslash),
                    0..=0x1f | 0x7f => return Err(PathError::ControlByte),
                    b'%' if raw
                        .get(i + 3..i + 5)
                        .is_some_and(|h| h.iter().all(|&d| hex_digit(d).is_some())) =>
                    {
                        return Err(PathError::DoubleEncoded);
                    }
                    _ if is_unreserved(v) => put(&[v])?,
                    _ => put(&[b'%', HEX_UPPER[usize::from(hi)], HEX_UPPER[usize::from(lo)]])?,
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x20 | 0x7f => return Err(PathError::ControlByte),
            0x80..=0xff => {
                put(&[
                    b'%',
                    HEX_UPPER[usize::from(b >> 4)],
                    HEX_UPPER[usize::from(b & 0xf)],
                ])?;
                i += 1;
            }
            _ => {
                put(&[b])?;
                i += 1;
            }
        }
    }
    // The digits after a `%25` may themselves be escaped (`%25%32%65` decodes to `%252e`):
    // judge the segment the app receives, not only what the client wrote.
    let decoded = out.get(start..w).unwrap_or(&[]);
    if decoded
        .windows(5)
        .any(|x| x.starts_with(b"%25") && hex_digit(x[3]).is_some() && hex_digit(x[4]).is_some())
    {
        return Err(PathError::DoubleEncoded);
    }
    Ok(w)
}

/// A decoded segment's name: what comes before its parameters (`;`, or `%3B`, which some
/// servers decode before they look for parameters; escapes are upper case once decoded).
fn strip_params(seg: &[u8]) -> &[u8] {
    let semicolon = seg.iter().position(|&b| b == b';');
    let escaped = seg.windows(3).position(|w| w == b"%3B");
    match (semicolon, escaped) {
        (Some(a), Some(b)) => &seg[..a.min(b)],
        (Some(p), None) | (None, Some(p)) => &seg[..p],
        (None, None) => seg,
    }
}

/// A name that is `.` or `..` once trailing dots and spaces are trimmed, but not `.` or `..`
/// itself (those are resolved): `...`, `..%20`, `.%20.%20`.
fn is_dot_lookalike(name: &[u8]) -> bool {
    if name == b"." || name == b".." || name.first() != Some(&b'.') {
        return false;
    }
    let mut rest = name;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'0', tail @ ..] => tail,
            _ => return false,
        };
    }
    true
}

/// RFC 3986 unreserved: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Which rules apply to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathClass {
    /// Gatehouse's own endpoints (under the reserved prefix): never forwarded.
    Reserved,
    /// Forwarded without login and never with an identity.
    Public,
    /// The Subsonic API.
    Subsonic,
    /// Everything else: login required.
    Protected,
}

/// The configured path prefixes.
#[derive(Clone, Copy, Debug)]
pub struct PathRules<'a> {
    /// Gatehouse's own endpoints, default [`DEFAULT_RESERVED_PREFIX`].
    pub reserved: &'a str,
    /// Public prefixes, default [`DEFAULT_PUBLIC_PREFIXES`].
    pub public: &'a [&'a str],
    /// Subsonic prefixes, default [`DEFAULT_SUBSONIC_PREFIXES`].
    pub subsonic: &'a [&'a str],
}

impl Default for PathRules<'static> {
    fn default() -> Self {
        PathRules {
            reserved: DEFAULT_RESERVED_PREFIX,
            public: DEFAULT_PUBLIC_PREFIXES,
            subsonic: DEFAULT_SUBSONIC_PREFIXES,
        }
    }
}

impl PathRules<'_> {
    /// Classifies a canonical path (from [`canonicalize`]). Reserved wins over public, public
    /// over Subsonic.
    pub fn classify(&self, canonical_path: &str) -> PathClass {
        if has_prefix_ignore_ascii_case(canonical_path, self.reserved) {
            PathClass::Reserved
        } else if self.public.iter().any(|p| has_prefix(canonical_path, p)) {
            PathClass::Public
        } else if self.subsonic.iter().any(|p| has_prefix(canonical_path, p)) {
            PathClass::Subsonic
        } else {
            PathClass::Protected
        }
    }

    /// For a reserved path, the endpoint name after the prefix (`login` for
    /// `/_gatehouse/login`, `Login` for `/_GATEHOUSE/Login`: the prefix matches in any case,
    /// the name is given as written); `None` for other paths.
    pub fn reserved_endpoint<'p>(&self, canonical_path: &'p str) -> Option<&'p str> {
        let base = self.reserved.trim_end_matches('/');
        if !has_prefix_ignore_ascii_case(canonical_path, base) {
            return None;
        }
        let rest = canonical_path.get(base.len()..)?;
        match rest {
            "" => Some(""),
            _ => rest.strip_prefix('/'),
        }
    }
}

/// [`has_prefix`] with ASCII letters matched in any case.
pub fn has_prefix_ignore_ascii_case(path: &str, prefix: &str) -> bool {
    let base = prefix.trim_end_matches('/').as_bytes();
    let path = path.as_bytes();
    match path.get(..base.len()) {
        Some(head) if head.eq_ignore_ascii_case(base) => {
            matches!(path.get(base.len()), None | Some(b'/'))
        }
        _ => false,
    }
}

/// True when `path` is `prefix` or lies below it, matching whole segments (a trailing `/` on
/// the prefix is optional: `/share/` and `/share` both match `/share` and `/share/x`, never
/// `/shared`). An empty prefix or `/` matches every path.
pub fn has_prefix(path: &str, prefix: &str) -> bool {
    let base = prefix.trim_end_matches('/');
    match path.strip_prefix(base) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// True when `target` is a safe same-site place to send a browser back to after login: an
/// absolute path (`/…`), not `//…` or `/\…` (which browsers read as another host), no `\`
/// anywhere, no scheme, only visible ASCII.
pub fn is_safe_return_target(target: &[u8]) -> bool {
    match target {
        [b'/', second, ..] if *second == b'/' || *second == b'\\' => false,
        [b'/', ..] => target
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b'\\'),
        _ => false,
    }
}

/// What gatehouse accepts in a `Location` it writes: the same rule as
/// [`is_safe_return_target`].
pub(crate) fn is_safe_location(location: &[u8]) -> bool {
    is_safe_return_target(location)
}

/// Writes `value` percent-encoded for use inside a query component (everything but the
/// unreserved characters escaped). Returns the length written.
pub fn percent_encode_component(value: &[u8], out: &mut [u8]) -> Result<usize, super::OutputFull> {
    let mut c = Cursor::new(out);
    for &b in value {
        if is_unreserved(b) {
            c.put(&[b]);
        } else {
            c.put(&[
                b'%',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 0xf)],
            ]);
        }
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(input: &str) -> Result<String, PathError> {
        let mut out = [0u8; 256];
        canonicalize(input, &mut out).map(|t| t.as_str().to_owned())
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("/", "/"),
            ("", "/"),
            ("?a=1", "/?a=1"),
            ("/app", "/app"),
            ("/app/", "/app/"),
            ("//app//x//", "/app/x/"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/a/.", "/a/"),
            ("/share/../app/", "/app/"),
            ("/share/%2e%2e/app/", "/app/"),
            ("/share/%2E%2E/app", "/app"),
            ("/sh%61re/x", "/share/x"),
            ("/a%20b", "/a%20b"),
            ("/a%3bb%3B", "/a%3Bb%3B"),
            ("/%7euser", "/~user"),
            ("/a?b/../c%2F", "/a?b/../c%2F"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/..a/.b/a..", "/..a/.b/a.."),
            ("/.%20a/..x/a%20../a.%20", "/.%20a/..x/a%20../a.%20"),
            ("/%20../%20.", "/%20../%20."),
            ("/a;x/b", "/a;x/b"),
        ];
        for (input, want) in cases {
            assert_eq!(canon(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases = [
            ("app", PathError::NotAbsolute),
            ("/a%2Fb", PathError::EncodedSlash),
            ("/a%2fb", PathError::EncodedSlash),
            ("/a%5Cb", PathError::EncodedBackslash),
            ("/a\\b", PathError::Backslash),
            ("/..", PathError::ClimbsAboveRoot),
            ("/a/../..", PathError::ClimbsAboveRoot),
            ("/%2e%2e/etc", PathError::ClimbsAboveRoot),
            ("/a%00", PathError::ControlByte),
            ("/a%0d%0aX: y", PathError::ControlByte),
            ("/a\u{1}", PathError::ControlByte),
            ("/a%", PathError::InvalidEscape),
            ("/a%4", PathError::InvalidEscape),
            ("/a%zz", PathError::InvalidEscape),
            ("/share/..;/app", PathError::DotSegmentWithParams),
            ("/share/.;x/app", PathError::DotSegmentWithParams),
            // `;` escaped: decoded by some servers before they strip parameters.
            ("/share/..%3B/app", PathError::DotSegmentWithParams),
            ("/share/..%3b/app", PathError::DotSegmentWithParams),
            ("/share/.%3B/app", PathError::DotSegmentWithParams),
            ("/share/%2e%2e%3bx/app", PathError::DotSegmentWithParams),
            ("/share/..%3B;x/app", PathError::DotSegmentWithParams),
            // Trailing dots and spaces: trimmed away by some servers.
            ("/share/..%20/app", PathError::DotSegmentLookalike),
            ("/share/.%20/app", PathError::DotSegmentLookalike),
            ("/share/.../app", PathError::DotSegmentLookalike),
            ("/share/..../app", PathError::DotSegmentLookalike),
            ("/share/..%20.%20/app", PathError::DotSegmentLookalike),
            ("/share/%2e%2e%2e/app", PathError::DotSegmentLookalike),
            ("/share/...;x/app", PathError::DotSegmentLookalike),
            ("/share/..%20%3Bx/app", PathError::DotSegmentLookalike),
            ("/share/..%20", PathError::DotSegmentLookalike),
            // A tab is a control byte, raw or escaped.
            ("/share/..%09/app", PathError::ControlByte),
            ("/share/.%09/app", PathError::ControlByte),
            ("/share/%252e%252e/app/secret", PathError::DoubleEncoded),
            ("/share/%252F", PathError::DoubleEncoded),
            ("/a%25411", PathError::DoubleEncoded),
            // The same, with the digits after %25 escaped themselves.
            ("/share/%25%32%65%25%32%65/app/", PathError::DoubleEncoded),
            ("/a%25%41%42", PathError::DoubleEncoded),
            ("/a%254%42", PathError::DoubleEncoded),
        ];
        for (input, want) in cases {
            assert_eq!(canon(input), Err(want), "{input}");
        }
        // A literal percent sign is still a path byte.
        assert_eq!(canon("/100%25").as_deref(), Ok("/100%25"));
        assert_eq!(canon("/100%25-off").as_deref(), Ok("/100%25-off"));
        assert_eq!(canon("/100%25%3F").as_deref(), Ok("/100%25%3F"));
        assert_eq!(
            canonicalize("/abcdef", &mut [0u8; 4]).map(|t| t.as_str()),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn path_and_query_are_split() {
        let mut out = [0u8; 64];
        let t = canonicalize("/a/./b?x=1&y=/..", &mut out).unwrap();
        assert_eq!(t.path(), "/a/b");
        assert_eq!(t.query(), Some("x=1&y=/.."));
        let mut out = [0u8; 64];
        let t = canonicalize("/a", &mut out).unwrap();
        assert_eq!(t.query(), None);
    }

    #[test]
    fn classification_uses_segment_boundaries() {
        let rules = PathRules::default();
        let cases = [
            ("/_gatehouse/login", PathClass::Reserved),
            ("/_gatehouse", PathClass::Reserved),
            ("/_gatehousex", PathClass::Protected),
            // The reserved prefix in any case: the proxies in front route it that way.
            ("/_GATEHOUSE/x", PathClass::Reserved),
            ("/_GateHouse/auth", PathClass::Reserved),
            ("/_GATEHOUSE", PathClass::Reserved),
            ("/_GATEHOUSEx", PathClass::Protected),
            ("/share/abc", PathClass::Public),
            ("/share/", PathClass::Public),
            ("/share", PathClass::Public),
            ("/shared/x", PathClass::Protected),
            ("/SHARE/x", PathClass::Protected),
            ("/rest/ping.view", PathClass::Subsonic),
            ("/restx", PathClass::Protected),
            ("/", PathClass::Protected),
            ("/app/", PathClass::Protected),
        ];
        for (path, want) in cases {
            assert_eq!(rules.classify(path), want, "{path}");
        }
        let mut out = [0u8; 64];
        let t = canonicalize("/share/../app/", &mut out).unwrap();
        assert_eq!(rules.classify(t.path()), PathClass::Protected);
        // After canonicalisation, which decodes the escaped `_`.
        for input in [
            "/%5Fgatehouse/login",
            "/%5fGATEHOUSE/health",
            "/%5F%47ateHouse/auth",
        ] {
            let mut out = [0u8; 64];
            let t = canonicalize(input, &mut out).unwrap();
            assert_eq!(rules.classify(t.path()), PathClass::Reserved, "{input}");
        }
        let custom = PathRules {
            reserved: "/auth",
            public: &["/public", "/s/"],
            subsonic: &[],
        };
        assert_eq!(custom.classify("/auth/login"), PathClass::Reserved);
        assert_eq!(custom.classify("/AUTH/login"), PathClass::Reserved);
        assert_eq!(custom.classify("/Public/x"), PathClass::Protected);
        assert_eq!(custom.classify("/s/x"), PathClass::Public);
        assert_eq!(custom.classify("/rest/x"), PathClass::Protected);
    }

    #[test]
    fn reserved_endpoint_names() {
        let rules = PathRules::default();
        assert_eq!(rules.reserved_endpoint("/_gatehouse/login"), Some("login"));
        assert_eq!(rules.reserved_endpoint("/_gatehouse/"), Some(""));
        assert_eq!(rules.reserved_endpoint("/_gatehouse"), Some(""));
        assert_eq!(rules.reserved_endpoint("/_gatehousex"), None);
        assert_eq!(rules.reserved_endpoint("/app"), None);
        // The prefix in any case; the name as written (the gateway matches names in any case).
        assert_eq!(rules.reserved_endpoint("/_GateHouse/auth"), Some("auth"));
        assert_eq!(
            rules.reserved_endpoint("/_GATEHOUSE/Auth/Nginx"),
            Some("Auth/Nginx")
        );
        assert_eq!(rules.reserved_endpoint("/_GATEHOUSE"), Some(""));
        assert_eq!(rules.reserved_endpoint("/_GATEHOUSEx"), None);
        assert_eq!(rules.reserved_endpoint("/_gatehous\u{e9}/x"), None);
    }

    #[test]
    fn return_targets_stay_on_site() {
        for good in ["/", "/app/", "/app?x=1&y=%2F", "/a/b#c"] {
            assert!(is_safe_return_target(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "/a\\b",
            "https://evil.example/",
            "http:/evil",
            "javascript:alert(1)",
            "evil.example",
            "/a b",
            "/a\r\nX: y",
            "/caf\u{e9}",
        ] {
            assert!(!is_safe_return_target(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn components_are_percent_encoded() {
        let mut out = [0u8; 64];
        let n = percent_encode_component(b"/app/?x=1&y", &mut out).unwrap();
        assert_eq!(&out[..n], b"%2Fapp%2F%3Fx%3D1%26y");
    }
}
