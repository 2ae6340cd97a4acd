//! The identity header: the one header an app trusts to say who the user is.
//!
//! Two jobs live here. Reading: from a *trusted* peer, the configured header (default
//! `Remote-User`) names the user. Stripping: on every request forwarded to the app, every
//! client copy of an identity header — and of anything an app server might read as one — is
//! removed before gatehouse adds its own.
//!
//! Why look-alikes matter: many servers hand headers to the app as CGI-style variables
//! (`HTTP_REMOTE_USER`), which maps `Remote-User` and `Remote_User` to the same name. If
//! gatehouse removed only the exact spelling, a client could send `remote_user: admin` and be
//! admin. So names are compared ignoring ASCII case and treating `_` as `-`.
//!
//! **The threat, reading side.** Even from a trusted proxy, the value is a string that ends up
//! as an account name, in logs and in the app's own header. A value with control characters
//! can forge log lines or smuggle a second header downstream; an over-long one cannot be
//! stored; and a header that arrives twice (`Remote-User: alice` and `remote_user: admin`) is
//! a sign that a client's copy slipped through the proxy — which copy the app would believe is
//! anyone's guess. So the value is refused, with a named [`IdentityError`], unless it is
//! exactly one header, non-empty after trimming spaces, valid UTF-8, short enough to store and
//! free of control characters. Nothing is ever guessed or repaired.

/// The header gatehouse reads from trusted peers and sets for the app, unless configured.
pub const DEFAULT_USER_HEADER: &str = "Remote-User";

/// The identity headers gatehouse itself sets on forwarded requests (besides the configured
/// user header, which defaults to the first of these).
pub const IDENTITY_HEADERS: [&str; 4] = [
    "Remote-User",
    "Remote-Name",
    "Remote-Email",
    "Remote-Groups",
];

/// Identity headers that other gateways set and that common apps can be configured to trust
/// (oauth2-proxy, Grafana's auth proxy, Apache-style `X-Remote-User`). No client has a reason
/// to send them through gatehouse, so they are stripped too.
pub const FOREIGN_IDENTITY_HEADERS: [&str; 10] = [
    "X-Remote-User",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username",
    "X-WebAuth-User",
];

/// Longest user header name a configuration may give.
pub const MAX_USER_HEADER_LEN: usize = 64;

/// Headers that cannot be the user header: the ones HTTP frames a request with (`Host`,
/// `Content-Length`, `Transfer-Encoding`), the hop-by-hop ones a proxy consumes, and the
/// ones that carry credentials (`Cookie`, `Authorization`). gatehouse strips every client copy
/// of the user header and writes its own; with one of these, it would strip or replace what
/// HTTP itself needs (a request smuggled past the framing, a connection kept or closed at the
/// client's word) or hand the app a user name as a credential.
pub const RESERVED_HEADERS: [&str; 14] = [
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Cookie",
    "Authorization",
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Proxy-Authorization",
    "TE",
    "Trailer",
    "Upgrade",
    "Expect",
    "Set-Cookie",
];

/// Why a name cannot be the user header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserHeaderError {
    /// The name is empty.
    Empty,
    /// Longer than [`MAX_USER_HEADER_LEN`] bytes.
    TooLong,
    /// A byte that is not allowed in a header name (RFC 9110 `token`).
    NotAHeaderName,
    /// One of [`RESERVED_HEADERS`], in any spelling ([`names_match_loosely`]).
    Reserved,
}

impl core::fmt::Display for UserHeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Empty => "the user header name is empty",
            Self::TooLong => "the user header name is too long",
            Self::NotAHeaderName => "not a header name (letters, digits and -)",
            Self::Reserved => {
                "a header HTTP needs for itself (framing, hop-by-hop or credentials) cannot be \
                 the user header"
            }
        })
    }
}

impl core::error::Error for UserHeaderError {}

/// Checks a configured user header name; every deployable's configuration calls this, so the
/// daemon, a board and `gatehouse config-blob` refuse the same names.
pub fn validate_user_header(name: &str) -> Result<(), UserHeaderError> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() {
        return Err(UserHeaderError::Empty);
    }
    if name.len() > MAX_USER_HEADER_LEN {
        return Err(UserHeaderError::TooLong);
    }
    if !name.bytes().all(tchar) {
        return Err(UserHeaderError::NotAHeaderName);
    }
    if RESERVED_HEADERS
        .iter()
        .any(|reserved| names_match_loosely(name.as_bytes(), reserved.as_bytes()))
    {
        return Err(UserHeaderError::Reserved);
    }
    Ok(())
}

/// True when `name` spells `canonical`, ignoring ASCII case and reading every byte that is
/// not an ASCII letter or digit as `-`.
///
/// CGI-style environments turn header names into variables: Apache and most servers map `-`
/// to `_` (`Remote_User` and `Remote-User` both become `HTTP_REMOTE_USER`), and lighttpd maps
/// *every* byte that is not alphanumeric to `_` (`Remote.User`, `Remote~User`, …). Any two
/// names one of them confuses are one name here.
pub fn names_match_loosely(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical)
            .all(|(&a, &b)| fold_header_byte(a) == fold_header_byte(b))
}

fn fold_header_byte(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_lowercase()
    } else {
        b'-'
    }
}

/// Whether a header a client sent must be removed before the request reaches the app: any
/// spelling of the configured user header, of gatehouse's own identity headers, or of a
/// well-known foreign identity header.
pub fn is_identity_header(name: &[u8], configured_user_header: &str) -> bool {
    names_match_loosely(name, configured_user_header.as_bytes())
        || IDENTITY_HEADERS
            .iter()
            .chain(FOREIGN_IDENTITY_HEADERS.iter())
            .any(|h| names_match_loosely(name, h.as_bytes()))
}

/// Why a trusted peer's identity header names no user. The engine falls back to its normal
/// login for every one of these (as Navidrome does for an empty header); none is a username.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// The header appears more than once, counting every spelling that
    /// [`names_match_loosely`] matches (`Remote-User`, `remote_user`, …).
    Repeated,
    /// The value is empty or only spaces and tabs.
    Empty,
    /// The value, trimmed, is longer than [`crate::MAX_USERNAME_LEN`] bytes.
    TooLong,
    /// The value is not valid UTF-8.
    NotUtf8,
    /// The value contains a control character (ASCII or Unicode `Cc`, e.g. NUL, tab, CR, LF,
    /// DEL or U+0085) between its first and last visible character.
    ControlCharacter,
}

impl core::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Repeated => "identity header sent more than once",
            Self::Empty => "identity header is empty",
            Self::TooLong => "identity header is longer than a username may be",
            Self::NotUtf8 => "identity header is not valid UTF-8",
            Self::ControlCharacter => "identity header contains a control character",
        })
    }
}

impl core::error::Error for IdentityError {}

/// Reads the username a trusted peer sent in the configured identity header.
///
/// `headers` yields `(name, value)` pairs as they came on the wire. The header is found by
/// its name ignoring ASCII case (as an app reading `Remote-User` would); it is `Repeated` when
/// more than one header spells it loosely (any case, `_` for `-`). Returns `Ok(None)` when the
/// header is absent.
///
/// Call this only for a peer that [`crate::trusted::TrustedSources`] trusts; from anyone else
/// the header is a forgery and is stripped, not read.
pub fn read_identity<'h, I>(
    configured_user_header: &str,
    headers: I,
) -> Result<Option<crate::Username>, IdentityError>
where
    I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
{
    let wanted = configured_user_header.as_bytes();
    let mut found: Option<&[u8]> = None;
    let mut loose_copies = 0usize;
    for (name, value) in headers {
        if !names_match_loosely(name, wanted) {
            continue;
        }
        loose_copies += 1;
        if loose_copies > 1 {
            return Err(IdentityError::Repeated);
        }
        if name.eq_ignore_ascii_case(wanted) {
            found = Some(value);
        }
    }
    found.map(parse_username).transpose()
}

/// [`read_identity`] over the headers `httparse` parsed.
pub fn read_identity_httparse(
    configured_user_header: &str,
    headers: &[httparse::Header<'_>],
) -> Result<Option<crate::Username>, IdentityError> {
    read_identity(
        configured_user_header,
        headers.iter().map(|h| (h.name.as_bytes(), h.value)),
    )
}

/// Checks one identity header value and returns it as a username: spaces and tabs around it
/// trimmed, then non-empty, at most [`crate::MAX_USERNAME_LEN`] bytes, valid UTF-8, no
/// control characters.
pub fn parse_username(value: &[u8]) -> Result<crate::Username, IdentityError> {
    let trimmed = trim_spaces(value);
    if trimmed.is_empty() {
        return Err(IdentityError::Empty);
    }
    // Control bytes first: a value with a CR or NUL is refused as such even when it is also
    // too long or not UTF-8, so the log says the most alarming thing.
    if trimmed.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(IdentityError::ControlCharacter);
    }
    let text = core::str::from_utf8(trimmed).map_err(|_| IdentityError::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(IdentityError::ControlCharacter);
    }
    let mut name = crate::Username::new();
    name.push_str(text).map_err(|_| IdentityError::TooLong)?;
    Ok(name)
}

fn trim_spaces(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_remote_user_is_an_identity_header() {
        for name in [
            "Remote-User",
            "remote-user",
            "REMOTE-USER",
            "Remote_User",
            "rEmOtE_uSeR",
        ] {
            assert!(
                is_identity_header(name.as_bytes(), DEFAULT_USER_HEADER),
                "{name}"
            );
        }
    }

    #[test]
    fn identity_lookalikes_with_other_token_separators_are_identity_headers() {
        // lighttpd maps every byte that is not alphanumeric to `_` in CGI variable names.
        for sep in [
            ".", "~", "!", "'", "*", "+", "#", "$", "%", "&", "^", "`", "|", "_", "-",
        ] {
            for name in [
                "Remote{sep}User",
                "Remote{sep}Groups",
                "X{sep}Forwarded{sep}User",
            ] {
                let name = name.replace("{sep}", sep);
                assert!(
                    is_identity_header(name.as_bytes(), DEFAULT_USER_HEADER),
                    "{name}"
                );
            }
        }
        assert!(!is_identity_header(b"RemoteUser", DEFAULT_USER_HEADER));
        assert!(!is_identity_header(b"Remote-Users", DEFAULT_USER_HEADER));
    }

    #[test]
    fn gatehouse_and_foreign_identity_headers_are_stripped_whatever_the_configured_name() {
        for name in [
            "remote_groups",
            "REMOTE-EMAIL",
            "Remote-Name",
            "x_forwarded_user",
            "X-WEBAUTH-USER",
        ] {
            assert!(
                is_identity_header(name.as_bytes(), "X-Custom-User"),
                "{name}"
            );
        }
        assert!(is_identity_header(b"x_custom_user", "X-Custom-User"));
    }

    #[test]
    fn ordinary_headers_and_near_misses_are_kept() {
        for name in [
            "Host",
            "Cookie",
            "Remote-User2",
            "Remote-Use",
            "RemoteUser",
            "X-Remote-User-Agent",
            "",
        ] {
            assert!(
                !is_identity_header(name.as_bytes(), DEFAULT_USER_HEADER),
                "{name}"
            );
        }
    }

    fn read(headers: &[(&str, &[u8])]) -> Result<Option<crate::Username>, IdentityError> {
        read_identity(
            DEFAULT_USER_HEADER,
            headers.iter().map(|(n, v)| (n.as_bytes(), *v)),
        )
    }

    #[test]
    fn reads_the_configured_header_in_any_case() {
        let got = read(&[("Host", b"x"), ("remote-user", b"  alice\t")]).unwrap();
        assert_eq!(got.as_deref(), Some("alice"));
        let got = read(&[("REMOTE-USER", "Zoë Ørsted".as_bytes())]).unwrap();
        assert_eq!(got.as_deref(), Some("Zoë Ørsted"));
        let custom = read_identity(
            "X-Forwarded-User",
            [(&b"x-forwarded-user"[..], &b"bob"[..])],
        )
        .unwrap();
        assert_eq!(custom.as_deref(), Some("bob"));
    }

    #[test]
    fn absent_header_is_none() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[("Host", b"x"), ("Remote-Name", b"Alice")]), Ok(None));
        // A lone look-alike is not the header (Navidrome reads `Remote-User` only): it is
        // stripped, not read.
        assert_eq!(read(&[("Remote_User", b"alice")]), Ok(None));
    }

    #[test]
    fn repeated_header_in_any_spelling_is_refused() {
        use IdentityError::Repeated;
        assert_eq!(
            read(&[("Remote-User", b"alice"), ("Remote-User", b"alice")]),
            Err(Repeated)
        );
        assert_eq!(
            read(&[("Remote-User", b"alice"), ("remote-user", b"bob")]),
            Err(Repeated)
        );
        // A look-alike beside the header makes it ambiguous: which one would the app read?
        assert_eq!(
            read(&[("Remote-User", b"alice"), ("REMOTE_USER", b"admin")]),
            Err(Repeated)
        );
        assert_eq!(
            read(&[("Remote_User", b"admin"), ("Remote-User", b"alice")]),
            Err(Repeated)
        );
        // Even when one copy is empty.
        assert_eq!(
            read(&[("Remote-User", b""), ("Remote-User", b"alice")]),
            Err(Repeated)
        );
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        use IdentityError::*;
        let long = [b'a'; crate::MAX_USERNAME_LEN + 1];
        let cases: &[(&[u8], IdentityError)] = &[
            (b"", Empty),
            (b"   ", Empty),
            (b" \t ", Empty),
            (&long, TooLong),
            (b"\xff\xfe", NotUtf8),
            (b"al\xc3", NotUtf8),
            (b"ali\x00ce", ControlCharacter),
            (b"alice\r\nRemote-Groups: admins", ControlCharacter),
            (b"al\tice", ControlCharacter),
            (b"alice\x7f", ControlCharacter),
            (b"\x1b[31malice", ControlCharacter),
            ("ali\u{85}ce".as_bytes(), ControlCharacter),
            ("ali\u{9f}ce".as_bytes(), ControlCharacter),
        ];
        for &(value, want) in cases {
            assert_eq!(parse_username(value), Err(want), "{value:?}");
            assert_eq!(read(&[("Remote-User", value)]), Err(want), "{value:?}");
        }
    }

    #[test]
    fn values_at_the_limits_are_accepted() {
        let max = [b'a'; crate::MAX_USERNAME_LEN];
        assert_eq!(parse_username(&max).unwrap().len(), crate::MAX_USERNAME_LEN);
        let padded = [&b"  "[..], &max, b"\t "].concat();
        assert_eq!(
            parse_username(&padded).unwrap().len(),
            crate::MAX_USERNAME_LEN
        );
        assert_eq!(parse_username(b"a").unwrap(), "a");
        // Inner spaces are part of the name; only the ends are trimmed.
        assert_eq!(parse_username(b" Alice Smith ").unwrap(), "Alice Smith");
        assert_eq!(
            parse_username(b"alice@example.org").unwrap(),
            "alice@example.org"
        );
    }

    #[test]
    fn reads_from_httparse_headers() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        let head = b"GET / HTTP/1.1\r\nHost: app\r\nremote-USER:   carol  \r\n\r\n";
        assert!(req.parse(head).unwrap().is_complete());
        let got = read_identity_httparse(DEFAULT_USER_HEADER, req.headers).unwrap();
        assert_eq!(got.as_deref(), Some("carol"));

        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        let head = b"GET / HTTP/1.1\r\nRemote-User: carol\r\nRemote_User: admin\r\n\r\n";
        assert!(req.parse(head).unwrap().is_complete());
        assert_eq!(
            read_identity_httparse(DEFAULT_USER_HEADER, req.headers),
            Err(IdentityError::Repeated)
        );
    }

    #[test]
    fn a_user_header_that_http_needs_is_refused() {
        for good in ["Remote-User", "X-Forwarded-User", "X-WebAuth-User", "user"] {
            assert_eq!(validate_user_header(good), Ok(()), "{good}");
        }
        for reserved in [
            "Host",
            "content-length",
            "Transfer_Encoding",
            "COOKIE",
            "Authorization",
            "connection",
            "Proxy-Authorization",
            "te",
        ] {
            assert_eq!(
                validate_user_header(reserved),
                Err(UserHeaderError::Reserved),
                "{reserved}"
            );
        }
        assert_eq!(validate_user_header(""), Err(UserHeaderError::Empty));
        assert_eq!(
            validate_user_header("Remote User"),
            Err(UserHeaderError::NotAHeaderName)
        );
        assert_eq!(
            validate_user_header("Remote-User:"),
            Err(UserHeaderError::NotAHeaderName)
        );
        assert_eq!(
            validate_user_header(&"x".repeat(MAX_USER_HEADER_LEN + 1)),
            Err(UserHeaderError::TooLong)
        );
    }
}
