//! The forward-auth endpoint (`/_gatehouse/auth`) as Caddy `forward_auth`, Traefik
//! `ForwardAuth` and nginx `auth_request` call it, spoken in raw bytes from the trusted proxy's
//! address. (The same flows through real nginx and Caddy are in `real_proxies`.)

use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";

fn setup() -> Setup {
    Setup::new()
        .admin("root", "root password")
        .user("alice", PASSWORD)
        .trust(Trust::Proxy)
}

fn auth_call(gw: &Gateway, headers: &[&str]) -> Response {
    let mut proxy = gw.proxy_client();
    exchange(&mut proxy, &get("/_gatehouse/auth", headers))
}

conformance! {
    /// nginx `auth_request` with a session cookie: 200 and the user in `Remote-User`; the
    /// client's own `Remote-User` on the subrequest changes nothing.
    fn nginx_style_call_with_a_session_names_the_user(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let session = login(&gw, "alice", PASSWORD);
        let response = auth_call(
            &gw,
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

    /// Anonymous: 401 for an API client; a browser sent through Traefik or Caddy (which pass
    /// the original URI in `X-Forwarded-Uri`) is redirected to the login page with the
    /// original URI as its return target. A spoofed `Remote-User` is no identity.
    fn anonymous_calls_are_denied_or_sent_to_login(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let api = auth_call(&gw, &["X-Original-URI: /app/", "Remote-User: alice"]);
        assert_eq!(api.status, 401, "{api}");
        assert_eq!(api.header("remote-user"), None, "{api}");
        let browser = auth_call(
            &gw,
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
        let response = auth_call(&gw, &["X-Forwarded-Uri: /app/", &basic("root", "root password")]);
        assert_eq!(response.status, 200, "{response}");
        assert_eq!(response.header("remote-user"), Some("root"));
        assert!(
            response.headers_named("remote-groups").iter().any(|g| g.contains("admins")),
            "{response}"
        );
        Ok(())
    }

    /// A public original URI passes without identity, but only when the trusted proxy says so:
    /// an ordinary client claiming a public `X-Forwarded-Uri` is not let through.
    fn public_original_uri_passes_only_from_the_proxy(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, setup())?;
        let response = auth_call(&gw, &["X-Forwarded-Uri: /share/abc", "Remote-User: mallory"]);
        assert_eq!(response.status, 200, "{response}");
        // Every identity header is in the answer, empty: the proxy overwrites the client's.
        assert_eq!(response.header("remote-user"), Some(""), "{response}");
        let mut stranger = gw.client();
        let response = exchange(
            &mut stranger,
            &get("/_gatehouse/auth", &["X-Forwarded-Uri: /share/abc", "X-Original-URI: /share/abc"]),
        );
        assert_eq!(response.status, 401, "{response}");
        Ok(())
    }
}
