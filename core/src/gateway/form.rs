//! The login form: `application/x-www-form-urlencoded` fields and the CSRF token.
//!
//! # CSRF defence
//!
//! A login form is a CSRF target too: a hostile page that posts the attacker's credentials
//! logs the victim into the attacker's account ("login CSRF"), and whatever the victim then
//! does lands there. gatehouse uses two independent checks, both must pass:
//!
//! 1. **Fetch metadata and origin.** When the browser sends `Sec-Fetch-Site`, it must be
//!    `same-origin` or `none`; when it sends `Origin`, its host must be the request's `Host`.
//!    Every current browser sends at least one of them on a form POST.
//! 2. **A signed double-submit token.** The login page sets a cookie `gatehouse_csrf`
//!    (`HttpOnly; SameSite=Strict`) and puts the same value in a hidden field; the POST must
//!    carry both, equal. The value is a random nonce with an HMAC under the session key, so a
//!    sibling host that can plant cookies for the domain still cannot make a valid one.

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::Mac;
use subtle::ConstantTimeEq;

use crate::session::{SessionKey, SessionKeys};

/// Name of the CSRF cookie set with the login page.
pub const CSRF_COOKIE_NAME: &str = "gatehouse_csrf";

/// Name of the CSRF cookie when cookies are `Secure` (see
/// [`crate::session::SECURE_COOKIE_NAME`]: a sibling subdomain cannot shadow it).
pub const SECURE_CSRF_COOKIE_NAME: &str = "__Host-gatehouse_csrf";

/// The CSRF cookie's name for `Secure` cookies or plain ones.
pub const fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_CSRF_COOKIE_NAME
    } else {
        CSRF_COOKIE_NAME
    }
}

/// Lifetime of a CSRF token (how long a login page may stay open), in seconds.
pub const CSRF_TTL_SECS: u64 = 3600;

const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 16;
const TOKEN_BYTES: usize = NONCE_LEN + TAG_LEN;
/// Characters of an encoded CSRF token.
pub const CSRF_TOKEN_LEN: usize = (TOKEN_BYTES * 4).div_ceil(3);

/// A CSRF token as text.
pub type CsrfToken = heapless::String<CSRF_TOKEN_LEN>;

fn tag(key: &SessionKey, nonce: &[u8]) -> Option<[u8; TAG_LEN]> {
    let mut mac = key.hmac();
    mac.update(b"gatehouse csrf v1\0");
    mac.update(nonce);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(full.get(..TAG_LEN)?);
    Some(out)
}

/// Makes a token from a random nonce, signed with the current session key.
pub fn issue_csrf_token(keys: &SessionKeys, nonce: &[u8; NONCE_LEN]) -> CsrfToken {
    let mut raw = [0u8; TOKEN_BYTES];
    raw[..NONCE_LEN].copy_from_slice(nonce);
    if let Some(t) = tag(&keys.current, nonce) {
        raw[NONCE_LEN..].copy_from_slice(&t);
    }
    let mut buf = [0u8; CSRF_TOKEN_LEN];
    let mut token = CsrfToken::new();
    if let Ok(text) = Base64UrlUnpadded::encode(&raw, &mut buf) {
        let _ = token.push_str(text);
    }
    token
}

/// Whether `form_token` equals `cookie_token` and carries a valid signature (current or
/// previous key).
pub fn csrf_tokens_match(keys: &SessionKeys, form_token: &[u8], cookie_token: &[u8]) -> bool {
    if form_token.len() != CSRF_TOKEN_LEN || !bool::from(form_token.ct_eq(cookie_token)) {
        return false;
    }
    let mut raw = [0u8; TOKEN_BYTES];
    let Ok(decoded) = Base64UrlUnpadded::decode(form_token, &mut raw) else {
        return false;
    };
    if decoded.len() != TOKEN_BYTES {
        return false;
    }
    let (nonce, given) = raw.split_at(NONCE_LEN);
    let valid = |key: &SessionKey| tag(key, nonce).is_some_and(|t| bool::from(t.ct_eq(given)));
    valid(&keys.current) || keys.previous.as_ref().is_some_and(valid)
}

/// Why a form was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormError {
    /// A field appears twice.
    Duplicate,
    /// A malformed percent-escape.
    InvalidEscape,
    /// A field is longer than its buffer.
    TooLong,
}

/// Finds the field `name` in a urlencoded `body` and decodes it into `out`. `Ok(None)` when
/// absent; a repeated field is refused rather than guessed.
pub fn form_field<'o>(
    body: &[u8],
    name: &str,
    out: &'o mut [u8],
) -> Result<Option<&'o [u8]>, FormError> {
    let mut found: Option<&[u8]> = None;
    for pair in body.split(|&b| b == b'&') {
        let mut kv = pair.splitn(2, |&b| b == b'=');
        let key = kv.next().unwrap_or(&[]);
        let value = kv.next().unwrap_or(&[]);
        // Field names gatehouse uses are plain ASCII words, never escaped.
        if key == name.as_bytes() {
            if found.is_some() {
                return Err(FormError::Duplicate);
            }
            found = Some(value);
        }
    }
    let Some(raw) = found else { return Ok(None) };
    let len = url_decode(raw, out)?;
    Ok(Some(&out[..len]))
}

/// Decodes `+` and `%XX` (form encoding) into `out`; returns the length.
pub fn url_decode(raw: &[u8], out: &mut [u8]) -> Result<usize, FormError> {
    let mut i = 0;
    let mut w = 0;
    while let Some(&b) = raw.get(i) {
        let (byte, step) = match b {
            b'+' => (b' ', 1),
            b'%' => {
                let hi = raw
                    .get(i + 1)
                    .copied()
                    .and_then(crate::http::path::hex_digit);
                let lo = raw
                    .get(i + 2)
                    .copied()
                    .and_then(crate::http::path::hex_digit);
                match (hi, lo) {
                    (Some(h), Some(l)) => (h << 4 | l, 3),
                    _ => return Err(FormError::InvalidEscape),
                }
            }
            other => (other, 1),
        };
        *out.get_mut(w).ok_or(FormError::TooLong)? = byte;
        w += 1;
        i += step;
    }
    Ok(w)
}

/// The value of the cookie `name` in a `Cookie` header value (first occurrence).
pub fn cookie_value<'v>(cookie_header: &'v [u8], name: &str) -> Option<&'v [u8]> {
    cookie_header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (k, v) = pair.split_at(eq);
        (k.trim_ascii() == name.as_bytes()).then(|| v.get(1..).unwrap_or(&[]).trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> SessionKeys {
        SessionKeys::new(SessionKey::from_bytes([seed; 32]))
    }

    #[test]
    fn csrf_tokens_verify_only_when_signed_and_equal() {
        let k = keys(1);
        let t = issue_csrf_token(&k, &[7; 16]);
        assert_eq!(t.len(), CSRF_TOKEN_LEN);
        assert!(csrf_tokens_match(&k, t.as_bytes(), t.as_bytes()));
        let other = issue_csrf_token(&k, &[8; 16]);
        assert!(!csrf_tokens_match(&k, t.as_bytes(), other.as_bytes()));
        assert!(
            !csrf_tokens_match(&keys(2), t.as_bytes(), t.as_bytes()),
            "foreign key"
        );
        let mut forged = *b"BwcHBwcHBwcHBwcHBwcHBwAAAAAAAAAAAAAAAAAAAAA";
        assert!(!csrf_tokens_match(&k, &forged, &forged));
        forged[0] = b'!';
        assert!(!csrf_tokens_match(&k, &forged, &forged));
        assert!(!csrf_tokens_match(&k, b"", b""));
        let mut rotated = k.clone();
        rotated.rotate(SessionKey::from_bytes([3; 32]));
        assert!(csrf_tokens_match(&rotated, t.as_bytes(), t.as_bytes()));
    }

    #[test]
    fn form_fields_are_decoded() {
        let body = b"username=al%69ce&password=p+w%26d%3D&return=%2Fapp%2F";
        let mut buf = [0u8; 64];
        assert_eq!(
            form_field(body, "username", &mut buf),
            Ok(Some(&b"alice"[..]))
        );
        assert_eq!(
            form_field(body, "password", &mut buf),
            Ok(Some(&b"p w&d="[..]))
        );
        assert_eq!(
            form_field(body, "return", &mut buf),
            Ok(Some(&b"/app/"[..]))
        );
        assert_eq!(form_field(body, "csrf", &mut buf), Ok(None));
        assert_eq!(
            form_field(b"a=1&a=2", "a", &mut buf),
            Err(FormError::Duplicate)
        );
        assert_eq!(
            form_field(b"a=%zz", "a", &mut buf),
            Err(FormError::InvalidEscape)
        );
        assert_eq!(
            form_field(b"a=123456", "a", &mut [0u8; 3]),
            Err(FormError::TooLong)
        );
        assert_eq!(form_field(b"a", "a", &mut buf), Ok(Some(&b""[..])));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = b"x_gatehouse_csrf=1; gatehouse_csrf=abc ; other=2";
        assert_eq!(cookie_value(h, CSRF_COOKIE_NAME), Some(&b"abc"[..]));
        assert_eq!(cookie_value(h, "missing"), None);
    }
}
