//! Request builders and the user-facing flows a case needs: HTTP Basic, the login form (with
//! its CSRF token) and the session cookie it sets.

use crate::client::{Client, Response, contains_ignore_case};
use crate::target::{Gateway, exchange};
use crate::upstream::Seen;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gatehouse_session";
/// The login form's CSRF cookie.
pub const CSRF_COOKIE: &str = "gatehouse_csrf";
/// The `Host` every case sends.
pub const HOST: &str = "gw.test";

/// `GET path` with `Host` and the extra header lines given (each without CRLF).
pub fn get(path: &str, headers: &[&str]) -> Vec<u8> {
    request("GET", path, headers, b"")
}

/// A request head with `Host` and the header lines given, and no framing header of its own
/// (the caller adds `Content-Length` or `Transfer-Encoding` and the body).
pub fn head(method: &str, path: &str, headers: &[&str]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n").into_bytes();
    for h in headers {
        out.extend(h.as_bytes());
        out.extend(b"\r\n");
    }
    out.extend(b"\r\n");
    out
}

/// A request with a `Content-Length` body (none when `body` is empty and the method is GET).
pub fn request(method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n").into_bytes();
    for h in headers {
        out.extend(h.as_bytes());
        out.extend(b"\r\n");
    }
    if !body.is_empty() || method == "POST" {
        out.extend(format!("Content-Length: {}\r\n", body.len()).bytes());
    }
    out.extend(b"\r\n");
    out.extend(body);
    out
}

/// The `Authorization` header line for HTTP Basic.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Authorization: Basic {}",
        base64(format!("{user}:{password}").as_bytes())
    )
}

/// The `Cookie` header line carrying a session.
pub fn session_cookie(value: &str) -> String {
    format!("Cookie: {SESSION_COOKIE}={value}")
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes a form value.
pub fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The login page's CSRF cookie and the matching hidden form field.
pub fn login_page(client: &mut Client) -> (Response, String, String) {
    login_page_at(client, HOST)
}

/// [`login_page`] asked for with `Host: host` (a site behind a proxy, a non-default port).
pub fn login_page_at(client: &mut Client, host: &str) -> (Response, String, String) {
    let page = exchange(
        client,
        &with_host(&get("/_gatehouse/login", &["Accept: text/html"]), host),
    );
    assert_eq!(page.status, 200, "login page: {page}");
    let cookie = page
        .set_cookie(CSRF_COOKIE)
        .unwrap_or_else(|| panic!("the login page sets no {CSRF_COOKIE} cookie: {page}"));
    let text = page.text();
    let field = text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("the login page has no csrf field: {text}"))
        .to_owned();
    (page, cookie, field)
}

/// Posts the login form on `client` and returns the response (303 with a session on success).
pub fn post_login(client: &mut Client, user: &str, password: &str, return_to: &str) -> Response {
    post_login_at(client, HOST, &[], user, password, return_to)
}

/// [`post_login`] as a browser on `http://host` does it (`Host` and `Origin` both name
/// `host`), with `extra` header lines on the POST.
pub fn post_login_at(
    client: &mut Client,
    host: &str,
    extra: &[&str],
    user: &str,
    password: &str,
    return_to: &str,
) -> Response {
    let (_, cookie, field) = login_page_at(client, host);
    let body = format!(
        "csrf={}&return={}&username={}&password={}",
        form_encode(&field),
        form_encode(return_to),
        form_encode(user),
        form_encode(password)
    );
    let origin = format!("Origin: http://{host}");
    let cookie = format!("Cookie: {CSRF_COOKIE}={cookie}");
    let mut headers = vec![
        origin.as_str(),
        "Content-Type: application/x-www-form-urlencoded",
        "Sec-Fetch-Site: same-origin",
        cookie.as_str(),
    ];
    headers.extend_from_slice(extra);
    exchange(
        client,
        &with_host(
            &request("POST", "/_gatehouse/login", &headers, body.as_bytes()),
            host,
        ),
    )
}

/// `request` with every `Host: gw.test` line (the one the builders above write) naming
/// `host` instead.
pub fn with_host(request: &[u8], host: &str) -> Vec<u8> {
    if host == HOST {
        return request.to_vec();
    }
    let from = format!("\r\nHost: {HOST}\r\n");
    let to = format!("\r\nHost: {host}\r\n");
    let mut out = Vec::with_capacity(request.len() + 32);
    let mut rest = request;
    while let Some(i) = crate::client::find(rest, from.as_bytes()) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to.as_bytes());
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The logout page (a GET with the session): its CSRF cookie and the form's hidden field.
pub fn logout_page(client: &mut Client, session: &str) -> (String, String) {
    let page = exchange(
        client,
        &get(
            "/_gatehouse/logout",
            &[&session_cookie(session), "Accept: text/html"],
        ),
    );
    assert_eq!(page.status, 200, "logout page: {page}");
    assert!(
        page.set_cookie(SESSION_COOKIE).is_none(),
        "a GET logged out: {page}"
    );
    let cookie = page
        .set_cookie(CSRF_COOKIE)
        .unwrap_or_else(|| panic!("the logout page sets no {CSRF_COOKIE} cookie: {page}"));
    let text = page.text();
    let field = text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("the logout page has no csrf field: {text}"))
        .to_owned();
    (cookie, field)
}

/// Logs in through the login form and returns the session cookie's value.
pub fn login(gw: &Gateway, user: &str, password: &str) -> String {
    let mut client = gw.client();
    let response = post_login(&mut client, user, password, "/app/");
    assert_eq!(response.status, 303, "login as {user}: {response}");
    response
        .set_cookie(SESSION_COOKIE)
        .unwrap_or_else(|| panic!("login as {user} set no session cookie: {response}"))
}

/// Whether a response refuses an anonymous request: a 401 challenge or a redirect to the login
/// page. Either way nothing may have reached the app.
pub fn is_login_refusal(response: &Response) -> bool {
    match response.status {
        401 => true,
        302 | 303 => response
            .header("location")
            .is_some_and(|l| l.contains("/_gatehouse/login")),
        _ => false,
    }
}

/// Asserts that the app received `seen` as `user`: exactly one identity header (`header`,
/// look-alike spellings included) and its value is `user`.
pub fn assert_identity(seen: &Seen, header: &str, user: &str) {
    assert_eq!(
        seen.identity(header).as_deref(),
        Some(user),
        "the app should have received {header}: {user}; it received:\n{seen}"
    );
}

/// Asserts that nothing the app received, in any request (head, body or trailers), contains
/// `needle` (ASCII case-insensitively).
pub fn assert_never_seen(seen: &[Seen], needle: &str) {
    for s in seen {
        for (part, bytes) in [
            ("head", &s.head),
            ("body", &s.body),
            ("trailers", &s.trailers),
        ] {
            assert!(
                !contains_ignore_case(bytes, needle.as_bytes()),
                "{needle:?} reached the app in a request {part}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }
}
