//! Identity spoofing: whatever a client writes, no identity header of its own reaches the app.
//! Every case authenticates as `alice` (HTTP Basic) unless it says otherwise, sends a spoofed
//! identity for `mallory`, and checks both halves: the app received the request, as alice, and
//! the word "mallory" appears nowhere in what the app received.

use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";
const SPOOF: &str = "mallory";

fn alice() -> Setup {
    Setup::new().user("alice", PASSWORD)
}

fn auth() -> String {
    basic("alice", PASSWORD)
}

/// Sends `request` on a new connection, expects it forwarded once, as alice, with no trace of
/// the spoofed name.
fn expect_forwarded_as_alice(gw: &Gateway, request: &[u8]) {
    gw.upstream.clear();
    let response = gw.send(request);
    assert_eq!(
        response.status,
        200,
        "request {:?}: {response}",
        String::from_utf8_lossy(request)
    );
    let seen = gw.upstream.only();
    assert_identity(&seen, "Remote-User", "alice");
    assert_never_seen(&[seen], SPOOF);
}

/// Sends `request` on a new connection and expects it refused before the app.
fn expect_refused(gw: &Gateway, request: &[u8], status: u16) {
    gw.upstream.clear();
    let response = gw.send(request);
    assert_eq!(
        response.status,
        status,
        "request {:?}: {response}",
        String::from_utf8_lossy(request)
    );
    let seen = gw.upstream.seen();
    assert!(
        seen.is_empty(),
        "a refused request reached the app: {seen:#?}"
    );
}

conformance! {
    /// `Remote-User` in any letter case is removed; gatehouse's own value replaces it.
    fn remote_user_in_every_case_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for name in ["Remote-User", "remote-user", "REMOTE-USER", "rEMOTE-uSER", "Remote-user"] {
            let spoof = format!("{name}: {SPOOF}");
            expect_forwarded_as_alice(&gw, &get("/app/", &[&auth(), &spoof]));
            // Before the credentials, too.
            expect_forwarded_as_alice(&gw, &get("/app/", &[&spoof, &auth()]));
        }
        Ok(())
    }

    /// `Remote_User` (and other `_` spellings), which many servers map to the same variable as
    /// `Remote-User`, is removed.
    fn remote_user_with_underscores_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for name in ["Remote_User", "REMOTE_USER", "remote_user", "Remote_user"] {
            let spoof = format!("{name}: {SPOOF}");
            expect_forwarded_as_alice(&gw, &get("/app/", &[&auth(), &spoof]));
        }
        Ok(())
    }

    /// Several copies, in several spellings, all go.
    fn repeated_remote_user_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let request = get(
            "/app/",
            &[
                "Remote-User: mallory",
                &auth(),
                "Remote-User: mallory",
                "remote_user: mallory",
                "REMOTE-USER: mallory",
            ],
        );
        expect_forwarded_as_alice(&gw, &request);
        Ok(())
    }

    /// A header folded onto the previous line (obs-fold) is refused with 400, so a folded
    /// `Remote-User` cannot slip past a line-by-line filter.
    fn remote_user_in_obs_fold_is_refused(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let auth = auth();
        for fold in [
            format!("GET /app/ HTTP/1.1\r\nHost: gw.test\r\n{auth}\r\nX-Note: hello\r\n Remote-User: mallory\r\n\r\n"),
            format!("GET /app/ HTTP/1.1\r\nHost: gw.test\r\n{auth}\r\nX-Note: hello\r\n\tRemote-User: mallory\r\n\r\n"),
            format!("GET /app/ HTTP/1.1\r\nHost: gw.test\r\n{auth}\r\nRemote-User: alice\r\n mallory\r\n\r\n"),
        ] {
            expect_refused(&gw, fold.as_bytes(), 400);
        }
        Ok(())
    }

    /// An identity header in the trailer section of a chunked body never reaches the app; the
    /// body itself does, intact.
    fn remote_user_in_chunked_trailers_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let request = [
            head("POST", "/app/upload", &[&auth(), "Transfer-Encoding: chunked"]),
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nRemote-User: mallory\r\nRemote_User: mallory\r\nX-Trailer: mallory\r\n\r\n".to_vec(),
        ]
        .concat();
        let response = gw.send(&request);
        assert_eq!(response.status, 200, "{response}");
        let seen = gw.upstream.only();
        assert_eq!(seen.body, b"hello world", "body the app received");
        assert_identity(&seen, "Remote-User", "alice");
        assert!(
            !contains_ignore_case(&seen.trailers, b"remote"),
            "trailers the app received: {:?}",
            String::from_utf8_lossy(&seen.trailers)
        );
        assert_never_seen(&[seen], SPOOF);
        Ok(())
    }

    /// On a connection whose first request was authenticated, a second pipelined request is
    /// judged on its own: with credentials and a spoof it arrives as alice; without credentials
    /// it does not arrive at all.
    fn remote_user_in_a_pipelined_second_request_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let mut client = gw.client();
        let first = get("/app/first", &[&auth()]);
        let second = get("/app/second", &[&auth(), "Remote-User: mallory"]);
        let third = get("/app/third", &["Remote-User: mallory", "Accept: */*"]);
        client.send(&[first, second, third].concat()).expect("send");
        let statuses: Vec<u16> = (0..3)
            .map(|i| client.response().unwrap_or_else(|e| panic!("response {i}: {e}")).status)
            .collect();
        assert_eq!(&statuses[..2], &[200, 200], "statuses {statuses:?}");
        assert_eq!(statuses[2], 401, "an anonymous pipelined request: {statuses:?}");
        let seen = gw.upstream.wait_for(2);
        assert_eq!(
            seen.iter().map(Seen::target).collect::<Vec<_>>(),
            ["/app/first", "/app/second"],
            "requests the app received"
        );
        for s in &seen {
            assert_identity(s, "Remote-User", "alice");
        }
        assert_never_seen(&seen, SPOOF);
        Ok(())
    }

    /// Same on a connection authenticated by a session cookie.
    fn remote_user_after_a_session_request_on_the_same_connection(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let session = login(&gw, "alice", PASSWORD);
        let mut client = gw.client();
        let cookie = session_cookie(&session);
        let first = get("/app/first", &[&cookie]);
        let second = get("/app/second", &["Remote-User: mallory"]);
        client.send(&[first, second].concat()).expect("send");
        assert_eq!(client.response().expect("first").status, 200);
        let refused = client.response().expect("second");
        assert!(is_login_refusal(&refused), "{refused}");
        let seen = gw.upstream.wait_for(1);
        assert_eq!(seen.len(), 1, "{seen:#?}");
        assert_identity(&seen[0], "Remote-User", "alice");
        assert_never_seen(&seen, SPOOF);
        Ok(())
    }

    /// Public paths are forwarded without login, and without any identity.
    fn remote_user_on_public_paths_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for headers in [
            vec!["Remote-User: mallory".to_owned()],
            vec!["remote_user: mallory".to_owned(), "Remote-Groups: admins-of-mallory".to_owned()],
            vec![auth(), "Remote-User: mallory".to_owned()],
        ] {
            gw.upstream.clear();
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let response = gw.send(&get("/share/abc123", &headers));
            assert_eq!(response.status, 200, "{response}");
            let seen = gw.upstream.only();
            assert_eq!(seen.target(), "/share/abc123");
            assert_eq!(seen.identity("Remote-User"), None, "{seen}");
            assert!(!seen.has_header_like("remote-groups"), "{seen}");
            assert_never_seen(&[seen], SPOOF);
        }
        Ok(())
    }

    /// Subsonic paths: an authenticated client arrives as itself; an anonymous one never
    /// arrives as the name it claims.
    fn remote_user_on_subsonic_paths_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        expect_forwarded_as_alice(
            &gw,
            &get("/rest/ping.view?v=1.16.1&c=test&f=json", &[&auth(), "Remote-User: mallory"]),
        );
        gw.upstream.clear();
        let _ = gw.send(&get(
            "/rest/ping.view?u=mallory&v=1.16.1&c=test",
            &["Remote-User: mallory", "Remote_User: mallory"],
        ));
        for seen in gw.upstream.seen() {
            assert_ne!(seen.identity("Remote-User").as_deref(), Some(SPOOF), "{seen}");
        }
        Ok(())
    }

    /// An HTTP/1.0 request (no `Host`) is judged like any other.
    fn remote_user_in_an_http_1_0_request_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let request = format!("GET /app/ HTTP/1.0\r\n{}\r\nRemote-User: mallory\r\n\r\n", auth());
        expect_forwarded_as_alice(&gw, request.as_bytes());
        expect_refused(&gw, b"GET /app/ HTTP/1.0\r\nRemote-User: mallory\r\n\r\n", 401);
        Ok(())
    }

    /// A client naming the identity header in `Connection` neither smuggles its own value nor
    /// removes the one gatehouse adds.
    fn remote_user_nominated_in_connection(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for connection in [
            "Connection: Remote-User",
            "Connection: keep-alive, Remote-User, Remote_User",
            "Connection: remote-user, remote-groups",
        ] {
            expect_forwarded_as_alice(&gw, &get("/app/", &[&auth(), connection]));
            expect_forwarded_as_alice(
                &gw,
                &get("/app/", &[&auth(), connection, "Remote-User: mallory"]),
            );
        }
        Ok(())
    }

    /// An absolute-form target (`GET http://host/path`) changes nothing.
    fn remote_user_with_an_absolute_form_target_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let request = format!(
            "GET http://gw.test/app/ HTTP/1.1\r\nHost: gw.test\r\n{}\r\nRemote-User: mallory\r\n\r\n",
            auth()
        );
        expect_forwarded_as_alice(&gw, request.as_bytes());
        let anonymous = b"GET http://gw.test/app/ HTTP/1.1\r\nHost: gw.test\r\nRemote-User: mallory\r\n\r\n";
        expect_refused(&gw, anonymous, 401);
        Ok(())
    }

    /// A client that is not a trusted source gains nothing by claiming to be the trusted proxy
    /// in `X-Forwarded-For`, `X-Real-IP` or `Forwarded`: trust is the raw peer address only.
    fn untrusted_source_claiming_to_be_the_proxy(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, alice().trust(Trust::Proxy))?;
        let proxy = gw.proxy_ip().expect("the proxy's address");
        let claims = [
            format!("X-Forwarded-For: {proxy}"),
            format!("X-Real-IP: {proxy}"),
            format!("Forwarded: for={proxy}"),
            format!("X-Forwarded-For: 203.0.113.9, {proxy}"),
        ];
        for claim in &claims {
            expect_refused(&gw, &get("/app/", &[claim, "Remote-User: mallory"]), 401);
        }
        // With alice's own credentials it is alice, still not mallory.
        let all: Vec<&str> = claims.iter().map(String::as_str).collect();
        let mut headers = all.clone();
        let auth = auth();
        headers.extend([auth.as_str(), "Remote-User: mallory"]);
        expect_forwarded_as_alice(&gw, &get("/app/", &headers));
        Ok(())
    }

    /// `Remote-Name`, `Remote-Email` and `Remote-Groups` from a client are removed too: alice,
    /// who is no admin, cannot put herself in `admins`.
    fn remote_name_email_and_groups_never_reach_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let request = get(
            "/app/",
            &[
                &auth(),
                "Remote-Name: Mallory",
                "Remote-Email: mallory@evil.test",
                "Remote-Groups: admins",
                "Remote_Groups: admins",
                "remote-groups: admins",
                "REMOTE_EMAIL: mallory@evil.test",
            ],
        );
        expect_forwarded_as_alice(&gw, &request);
        let seen = gw.upstream.only();
        for value in seen.header_values("remote-groups") {
            assert!(!value.contains("admins"), "alice is no admin: {seen}");
        }
        assert!(
            !seen.headers().iter().any(|(n, _)| n.contains('_')),
            "an underscore header reached the app: {seen}"
        );
        Ok(())
    }

    /// With a configured identity header (`X-Auth-User`), both it and the usual `Remote-User`
    /// spellings are removed, and the app receives the configured one from gatehouse.
    fn configured_identity_header_is_protected_like_remote_user(kind) on [daemon] {
        let gw = Gateway::start(kind, alice().set("user_header", "X-Auth-User"))?;
        let request = get(
            "/app/",
            &[&auth(), "X-Auth-User: mallory", "x_auth_user: mallory", "Remote-User: mallory"],
        );
        let response = gw.send(&request);
        assert_eq!(response.status, 200, "{response}");
        let seen = gw.upstream.only();
        assert_identity(&seen, "X-Auth-User", "alice");
        assert_never_seen(&[seen], SPOOF);
        Ok(())
    }

    /// Without credentials, a spoofed identity gets a 401 (or the login page) and the app
    /// receives nothing.
    fn anonymous_spoof_is_refused_before_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for spoof in ["Remote-User: alice", "Remote-User: mallory", "remote_user: mallory"] {
            expect_refused(&gw, &get("/app/", &[spoof]), 401);
        }
        gw.upstream.clear();
        let browser = gw.send(&get("/app/", &["Remote-User: mallory", "Accept: text/html"]));
        assert!(is_login_refusal(&browser), "{browser}");
        assert!(gw.upstream.seen().is_empty(), "reached the app: {:#?}", gw.upstream.seen());
        Ok(())
    }
    /// A client's `Authorization` (a browser's cached Basic password, an app password) never
    /// reaches the app when gatehouse let the request in for another reason: a public path,
    /// a session cookie. Nor when gatehouse checked it; `Proxy-Authorization` never.
    fn client_authorization_never_reaches_the_app(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let session = login(&gw, "alice", PASSWORD);
        let cookie = session_cookie(&session);
        let secret = "Authorization: Basic bWFsbG9yeTpzZWNyZXQ=";
        let proxy_secret = "Proxy-Authorization: Basic bWFsbG9yeTpzZWNyZXQ=";
        let requests = [
            get("/share/x", &[secret, proxy_secret]),
            get("/app/", &[&cookie, secret, proxy_secret]),
            get("/app/", &[&auth(), proxy_secret]),
        ];
        for request in requests {
            gw.upstream.clear();
            let response = gw.send(&request);
            assert_eq!(response.status, 200, "{response}");
            let seen = gw.upstream.only();
            assert!(!seen.has_header_like("Authorization"), "{seen:#?}");
            assert!(!seen.has_header_like("Proxy-Authorization"), "{seen:#?}");
            assert_never_seen(&[seen], "bWFsbG9yeTpzZWNyZXQ=");
        }
        Ok(())
    }

    /// Subsonic paths in pass-through mode: the app checks the client's credentials, so its
    /// `Authorization` is forwarded (and nothing else of the kind).
    fn subsonic_pass_through_keeps_the_client_authorization(kind) on [daemon] {
        let gw = Gateway::start(kind, alice().set("subsonic", "pass-through"))?;
        let credential = basic("alice", "app-checks-this");
        gw.upstream.clear();
        let response = gw.send(&get("/rest/ping.view", &[&credential]));
        assert_eq!(response.status, 200, "{response}");
        let seen = gw.upstream.only();
        let value = credential.trim_start_matches("Authorization: ");
        assert_eq!(seen.header("Authorization").as_deref(), Some(value), "{seen:#?}");
        Ok(())
    }
}
