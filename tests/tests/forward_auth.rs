//! The forward-auth endpoints as their proxies call them, spoken in raw bytes from the proxy's
//! address: `/_gatehouse/auth` for Caddy `forward_auth` and Traefik `ForwardAuth` (the
//! original request in `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host`) and
//! `/_gatehouse/auth/nginx` for nginx `auth_request` (`X-Original-URI`, `X-Original-Method`).
//! The caller has forwarding trust only (`trusted_proxies`), as the README configures it. A
//! call that cannot be believed (the other kind's headers, a header twice, no original URI, a
//! caller in neither trust list) is refused with 403. (The same flows through real nginx and
//! Caddy are in `real_proxies`.)

use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";
const CADDY: &str = "/_gatehouse/auth";
const NGINX: &str = "/_gatehouse/auth/nginx";

fn setup() -> Setup {
    Setup::new()
        .admin("root", "root password")
        .user("alice", PASSWORD)
        .trust(Trust::ForwardingProxy)
}

fn auth_call(gw: &Gateway, endpoint: &str, headers: &[&str]) -> Response {
    let mut proxy = gw.proxy_client();
    exchange(&mut proxy, &get(endpoint, headers))
}

conformance! {
    /// nginx `auth_request` with a session cookie: 200 and the user in `Remote-User`; the
    /// client's own `Remote-User` on the subrequest changes nothing.
    fn nginx_style_call_with_a_session_names_the_user(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let session = login(&gw, "alice", PASSWORD);
        let response = auth_call(
            &gw,
            NGINX,
            &[
                "X-Original-URI: /app/inbox",
                "X-Original-Method: GET",
                &session_cookie(&session),
                "Remote-User: mallory",
                "Remote-Groups: admins",
            ],
        );
        assert_eq!(response.status, 200, "{response}");
        assert_eq!(response.header("remote-user"), Some("alice"), "{response}");
        assert!(
            response.headers_named("remote-groups").iter().all(|g| !g.contains("admins")),
            "{response}"
        );
        assert!(!contains_ignore_case(&response.head, b"mallory"), "{response}");
        assert!(gw.upstream.seen().is_empty(), "forward-auth reached the app");
        Ok(())
    }

    /// Anonymous: 401 for an nginx subrequest; a browser sent through Traefik or Caddy is
    /// redirected to the login page with the original URI as its return target. A spoofed
    /// `Remote-User` is no identity.
    fn anonymous_calls_are_denied_or_sent_to_login(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let api = auth_call(&gw, NGINX, &["X-Original-URI: /app/", "Remote-User: alice"]);
        assert_eq!(api.status, 401, "{api}");
        assert_eq!(api.header("remote-user"), None, "{api}");
        let browser = auth_call(
            &gw,
            CADDY,
            &[
                "X-Forwarded-Method: GET",
                "X-Forwarded-Proto: https",
                "X-Forwarded-Host: music.example",
                "X-Forwarded-Uri: /app/album?id=3",
                "Accept: text/html",
                "Remote-User: alice",
            ],
        );
        assert_eq!(browser.status, 302, "{browser}");
        let location = browser.header("location").unwrap_or_default();
        assert!(location.contains("/_gatehouse/login"), "{location}");
        assert!(location.contains("%2Fapp%2Falbum%3Fid%3D3"), "{location}");
        Ok(())
    }

    /// HTTP Basic on the subrequest works like anywhere else.
    fn basic_credentials_on_the_subrequest_name_the_user(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let response =
            auth_call(&gw, CADDY, &["X-Forwarded-Uri: /app/", &basic("root", "root password")]);
        assert_eq!(response.status, 200, "{response}");
        assert_eq!(response.header("remote-user"), Some("root"));
        assert!(
            response.headers_named("remote-groups").iter().any(|g| g.contains("admins")),
            "{response}"
        );
        Ok(())
    }

    /// A public original URI passes without identity, but only when the proxy says so: an
    /// ordinary client (in neither trust list) calling either endpoint is refused with 403,
    /// whatever it claims.
    fn public_original_uri_passes_only_from_the_proxy(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let response =
            auth_call(&gw, CADDY, &["X-Forwarded-Uri: /share/abc", "Remote-User: mallory"]);
        assert_eq!(response.status, 200, "{response}");
        // Every identity header is in the answer, empty: the proxy overwrites the client's.
        assert_eq!(response.header("remote-user"), Some(""), "{response}");
        for (endpoint, header) in [
            (CADDY, "X-Forwarded-Uri: /share/abc"),
            (NGINX, "X-Original-URI: /share/abc"),
            (CADDY, "X-Forwarded-Method: GET"),
        ] {
            let mut stranger = gw.client();
            let response = exchange(&mut stranger, &get(endpoint, &[header]));
            assert_eq!(response.status, 403, "{endpoint} {header}: {response}");
        }
        Ok(())
    }

    /// The attack through Caddy: Caddy sets `X-Forwarded-Uri` and passes the client's own
    /// `X-Original-URI` along. The endpoint names the headers it reads; the other kind's at
    /// all is a refusal, never a guess (not even for a signed-in user).
    fn the_other_kinds_headers_are_refused(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let session = login(&gw, "alice", PASSWORD);
        let cookie = session_cookie(&session);
        for (endpoint, headers) in [
            (CADDY, ["X-Forwarded-Uri: /admin/settings", "X-Original-URI: /share/x"]),
            (CADDY, ["X-Forwarded-Uri: /share/x", "X-Original-Method: GET"]),
            (CADDY, ["X-Original-URI: /share/x", "X-Original-Method: GET"]),
            (NGINX, ["X-Original-URI: /admin/settings", "X-Forwarded-Uri: /share/x"]),
            (NGINX, ["X-Original-URI: /share/x", "X-Forwarded-Method: GET"]),
        ] {
            let response = auth_call(&gw, endpoint, &[headers[0], headers[1], &cookie]);
            assert_eq!(response.status, 403, "{endpoint} {headers:?}: {response}");
            assert_eq!(response.header("remote-user"), None, "{response}");
        }
        assert!(gw.upstream.seen().is_empty(), "forward-auth reached the app");
        Ok(())
    }

    /// Any of the kind's own headers twice is refused, never "the first one found".
    fn repeated_original_request_headers_are_refused(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        for (endpoint, headers) in [
            (CADDY, ["X-Forwarded-Uri: /share/x", "X-Forwarded-Uri: /admin/"]),
            (CADDY, ["X-Forwarded-Uri: /share/x", "x-forwarded-uri: /admin/"]),
            (CADDY, ["X-Forwarded-Method: GET", "X-Forwarded-Method: POST"]),
            (CADDY, ["X-Forwarded-Host: music.example", "X-Forwarded-Host: evil.example"]),
            (NGINX, ["X-Original-URI: /share/x", "X-Original-URI: /admin/"]),
            (NGINX, ["X-Original-Method: GET", "X-Original-Method: POST"]),
        ] {
            let mut all = vec![headers[0], headers[1]];
            let uri = if endpoint == CADDY { "X-Forwarded-Uri: /share/y" } else { "X-Original-URI: /share/y" };
            if !headers[0].to_ascii_lowercase().contains("uri") {
                all.push(uri);
            }
            let response = auth_call(&gw, endpoint, &all);
            assert_eq!(response.status, 403, "{endpoint} {all:?}: {response}");
        }
        Ok(())
    }

    /// A call without the original URI has nothing to judge: refused, not taken for `/`.
    fn a_missing_original_uri_is_refused(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        for (endpoint, headers) in [
            (CADDY, &["X-Forwarded-Method: GET", "X-Forwarded-Host: music.example"][..]),
            (CADDY, &[][..]),
            (NGINX, &["X-Original-Method: GET"][..]),
            (NGINX, &[][..]),
        ] {
            let response = auth_call(&gw, endpoint, headers);
            assert_eq!(response.status, 403, "{endpoint} {headers:?}: {response}");
        }
        Ok(())
    }

    /// Both endpoints, and gatehouse's own paths generally, match in any case and with `_`
    /// escaped, as the proxies in front route them.
    fn endpoint_names_match_in_any_case(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        for (endpoint, header) in [
            ("/_GateHouse/auth", "X-Forwarded-Uri: /share/x"),
            ("/%5Fgatehouse/AUTH", "X-Forwarded-Uri: /share/x"),
            ("/_GATEHOUSE/Auth/Nginx", "X-Original-URI: /share/x"),
        ] {
            let response = auth_call(&gw, endpoint, &[header]);
            assert_eq!(response.status, 200, "{endpoint}: {response}");
            assert_eq!(response.header("remote-user"), Some(""), "{response}");
        }
        Ok(())
    }

    /// An original URI under the reserved prefix is let through anonymously only in the
    /// exact, canonical spelling; `/_GATEHOUSE/x` may be the app's path to the proxy in
    /// front, so it needs a login like any app path.
    fn reserved_original_uris_pass_only_in_the_exact_spelling(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let response = auth_call(&gw, CADDY, &["X-Forwarded-Uri: /_gatehouse/login"]);
        assert_eq!(response.status, 200, "{response}");
        for uri in ["/_GATEHOUSE/x", "/_GateHouse/login", "/%5Fgatehouse/login"] {
            let header = format!("X-Forwarded-Uri: {uri}");
            let response = auth_call(&gw, CADDY, &[&header, "Remote-User: mallory"]);
            assert_eq!(response.status, 401, "{uri}: {response}");
            let header = format!("X-Original-URI: {uri}");
            let response = auth_call(&gw, NGINX, &[&header, "Remote-User: mallory"]);
            assert_eq!(response.status, 401, "{uri}: {response}");
        }
        Ok(())
    }
}
