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

/// True when `name` spells `canonical`, ignoring ASCII case and reading `_` as `-`.
pub fn names_match_loosely(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical)
            .all(|(&a, &b)| fold_header_byte(a) == fold_header_byte(b))
}

fn fold_header_byte(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        other => other.to_ascii_lowercase(),
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
}
