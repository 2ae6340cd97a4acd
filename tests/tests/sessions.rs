//! Sessions and login: the login form's cookie works and carries the user to the app; it
//! expires; a password change revokes it; it survives one key rotation; logout clears it; login
//! throttling slows an attacker's network without locking out a real user elsewhere.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";

fn alice() -> Setup {
    Setup::new().user("alice", PASSWORD)
}

/// GET /app/ with the session cookie on a new connection.
fn with_session(gw: &Gateway, session: &str) -> Response {
    gw.send(&get("/app/", &[&session_cookie(session)]))
}

/// Polls (bounded) until `refused` holds for the session, returning the last response.
fn wait_until_refused(gw: &Gateway, session: &str, within: Duration) -> Response {
    let deadline = Instant::now() + within;
    loop {
        let response = with_session(gw, session);
        if is_login_refusal(&response) || Instant::now() > deadline {
            return response;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `gatehouse rotate-key` with `flags` on the gateway's state directory, then a reload.
fn rotate_key(gw: &Gateway, flags: &[&str]) {
    let dir = gw.state_dir();
    let dir = dir.to_str().expect("UTF-8 path");
    let mut args = vec!["rotate-key", "--state-dir", dir];
    args.extend_from_slice(flags);
    let out = gw.cli(&args, "");
    assert!(
        out.status.success(),
        "rotate-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reloads = |gw: &Gateway| gw.log().matches("session keys reloaded").count();
    let before = reloads(gw);
    gw.reload();
    let deadline = Instant::now() + Duration::from_secs(15);
    while reloads(gw) == before {
        assert!(
            Instant::now() < deadline,
            "the gateway did not reload its keys: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Another network than the ordinary clients' (a different /32).
fn other_network(kind: Kind) -> IpAddr {
    match kind {
        Kind::Daemon => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4)),
        _ => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    }
}

conformance! {
    /// The login form issues an `HttpOnly`, `SameSite=Lax` session cookie; with it the app
    /// receives the user, and never the session cookie itself (other cookies pass).
    fn login_form_session_reaches_the_app_as_the_user(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let mut client = gw.client();
        let response = post_login(&mut client, "alice", PASSWORD, "/app/inbox?page=2");
        assert_eq!(response.status, 303, "{response}");
        assert_eq!(response.header("location"), Some("/app/inbox?page=2"), "{response}");
        let set = response
            .headers_named("set-cookie")
            .into_iter()
            .find(|v| v.starts_with(SESSION_COOKIE))
            .expect("a session cookie")
            .to_owned();
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.to_ascii_lowercase().contains("samesite=lax"), "{set}");
        let session = response.set_cookie(SESSION_COOKIE).expect("session");
        assert!(gw.upstream.seen().is_empty(), "the login itself reached the app");

        let cookie = format!("Cookie: theme=dark; {SESSION_COOKIE}={session}; lang=en");
        let response = gw.send(&get("/app/inbox", &[&cookie, "Remote-User: mallory"]));
        assert_eq!(response.status, 200, "{response}");
        let seen = gw.upstream.only();
        assert_identity(&seen, "Remote-User", "alice");
        assert_never_seen(std::slice::from_ref(&seen), &session);
        assert_never_seen(std::slice::from_ref(&seen), "mallory");
        let cookies = seen.header_values("cookie").join("; ");
        assert!(cookies.contains("theme=dark") && cookies.contains("lang=en"), "{seen}");
        assert!(!cookies.contains(SESSION_COOKIE), "{seen}");
        Ok(())
    }

    /// A wrong password, an unknown user, or a forged cookie give no session.
    fn bad_credentials_and_forged_cookies_give_no_session(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for (user, password) in [("alice", "wrong"), ("nobody", PASSWORD), ("ALICE", "wrong")] {
            let mut client = gw.client();
            let response = post_login(&mut client, user, password, "/app/");
            assert!(response.set_cookie(SESSION_COOKIE).is_none_or(|v| v.is_empty()), "{response}");
            assert_ne!(response.status, 303, "{response}");
        }
        let real = login(&gw, "alice", PASSWORD);
        let mut forged = real.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        for cookie in [forged.as_str(), "", "x", "AAAA", "alice"] {
            let response = with_session(&gw, cookie);
            assert!(is_login_refusal(&response), "cookie {cookie:?}: {response}");
        }
        assert!(gw.upstream.seen().is_empty(), "{:#?}", gw.upstream.seen());
        Ok(())
    }

    /// The username is matched case-insensitively at login; the app receives it as stored.
    fn login_name_is_case_insensitive(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let session = login(&gw, "ALICE", PASSWORD);
        let response = with_session(&gw, &session);
        assert_eq!(response.status, 200, "{response}");
        assert_identity(&gw.upstream.only(), "Remote-User", "alice");
        Ok(())
    }

    /// A session ends at its expiry (`session_ttl`).
    fn session_expires(kind) on [daemon] {
        let gw = Gateway::start(kind, alice().set("session_ttl", "2s"))?;
        let session = login(&gw, "alice", PASSWORD);
        let response = with_session(&gw, &session);
        assert_eq!(response.status, 200, "{response}");
        std::thread::sleep(Duration::from_secs(4));
        let response = wait_until_refused(&gw, &session, Duration::from_secs(5));
        assert!(is_login_refusal(&response), "an expired session still works: {response}");
        Ok(())
    }

    /// Changing a user's password revokes their sessions; the new password works, the old one
    /// no longer does.
    fn password_change_revokes_sessions(kind) on [daemon] {
        let gw = Gateway::start(kind, alice())?;
        let session = login(&gw, "alice", PASSWORD);
        assert_eq!(with_session(&gw, &session).status, 200);
        let out = gw.cli(&["users", "--iterations", "1000", "passwd", "alice", "--password-stdin"], "a brand new password\n");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let response = wait_until_refused(&gw, &session, Duration::from_secs(15));
        assert!(is_login_refusal(&response), "the old session survived a password change: {response}");
        let old = gw.send(&get("/app/", &[&basic("alice", PASSWORD)]));
        assert!(is_login_refusal(&old), "the old password still works: {old}");
        let new = gw.send(&get("/app/", &[&basic("alice", "a brand new password")]));
        assert_eq!(new.status, 200, "{new}");
        Ok(())
    }

    /// A key rotation keeps existing sessions working (the previous key still verifies); a
    /// second rotation retires the first key and the sessions it signed.
    fn sessions_survive_one_key_rotation(kind) on [daemon] {
        let gw = Gateway::start(kind, alice())?;
        let first = login(&gw, "alice", PASSWORD);
        let state = |gw: &Gateway| {
            let dir = gw.state_dir();
            let dir = dir.to_str().expect("UTF-8 path");
            let out = gw.cli(&["rotate-key", "--state-dir", dir], "");
            assert!(out.status.success(), "rotate-key: {}", String::from_utf8_lossy(&out.stderr));
            gw.reload();
        };
        state(&gw);
        // The new key signs new sessions as soon as the reload is done: wait until a session
        // issued now outlives the next rotation while `first` does not.
        std::thread::sleep(Duration::from_millis(500));
        let response = with_session(&gw, &first);
        assert_eq!(response.status, 200, "a session did not survive one rotation: {response}");
        let second = login(&gw, "alice", PASSWORD);
        state(&gw);
        let response = wait_until_refused(&gw, &first, Duration::from_secs(15));
        assert!(is_login_refusal(&response), "a session outlived two rotations: {response}");
        let response = with_session(&gw, &second);
        assert_eq!(response.status, 200, "the previous key no longer verifies: {response}");
        Ok(())
    }

    /// A request between two rotations does not carry a session over to the new key: it is
    /// let in without a renewed cookie, and the second rotation ends it (a token forged with
    /// a leaked key must not survive the rotations that retire the key).
    fn two_rotations_end_a_session_used_between_them(kind) on [daemon] {
        let gw = Gateway::start(kind, alice())?;
        let first = login(&gw, "alice", PASSWORD);
        rotate_key(&gw, &[]);
        let response = with_session(&gw, &first);
        assert_eq!(response.status, 200, "a session did not survive one rotation: {response}");
        let renewed = response.set_cookie(SESSION_COOKIE);
        assert_eq!(renewed, None, "a session of the previous key was renewed under the new one");
        rotate_key(&gw, &[]);
        let response = wait_until_refused(&gw, &first, Duration::from_secs(15));
        assert!(is_login_refusal(&response), "a session outlived two rotations: {response}");
        Ok(())
    }

    /// `rotate-key --log-out-everyone` and a reload end every session at once, those of the
    /// current key and of the previous one; a new login works.
    fn rotate_key_log_out_everyone_ends_every_session(kind) on [daemon] {
        let gw = Gateway::start(kind, alice())?;
        let older = login(&gw, "alice", PASSWORD);
        rotate_key(&gw, &[]);
        let newer = login(&gw, "alice", PASSWORD);
        assert_eq!(with_session(&gw, &older).status, 200);
        assert_eq!(with_session(&gw, &newer).status, 200);
        rotate_key(&gw, &["--log-out-everyone"]);
        for session in [&older, &newer] {
            let response = wait_until_refused(&gw, session, Duration::from_secs(15));
            assert!(is_login_refusal(&response), "a session outlived --log-out-everyone: {response}");
        }
        let fresh = login(&gw, "alice", PASSWORD);
        assert_eq!(with_session(&gw, &fresh).status, 200);
        Ok(())
    }

    /// A signed-in admin's browser sent to `/rest/deletePlaylist` by a link on another site
    /// carries the `SameSite=Lax` cookie: it does not authenticate the Subsonic request, which
    /// never reaches the app. The same cookie on a same-origin request does.
    fn a_cross_site_subsonic_request_is_not_authenticated_by_the_session(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let session = login(&gw, "alice", PASSWORD);
        let cookie = session_cookie(&session);
        for cross in ["Sec-Fetch-Site: cross-site", "Origin: http://evil.example"] {
            let response = gw.send(&get("/rest/deletePlaylist.view?id=7&f=json", &[&cookie, cross]));
            assert_eq!(response.status, 200, "{cross}: {response}");
            assert!(response.text().contains("\"status\":\"failed\""), "{cross}: {response}");
            assert!(gw.upstream.seen().is_empty(), "{cross}: the request reached the app");
        }
        let response = gw.send(&get(
            "/rest/getPlaylists.view?f=json",
            &[&cookie, "Sec-Fetch-Site: same-origin"],
        ));
        assert_eq!(response.status, 200, "{response}");
        assert_identity(&gw.upstream.only(), "Remote-User", "alice");
        Ok(())
    }

    /// Logout is the logout page's form: a POST from this site with its CSRF token. It
    /// answers with the session cookie cleared and a redirect.
    fn logout_clears_the_cookie(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let session = login(&gw, "alice", PASSWORD);
        let mut client = gw.client();
        let (csrf_cookie, field) = logout_page(&mut client, &session);
        let body = format!("csrf={}", form_encode(&field));
        let response = exchange(
            &mut client,
            &request(
                "POST",
                "/_gatehouse/logout",
                &[
                    &format!("Cookie: {SESSION_COOKIE}={session}; {CSRF_COOKIE}={csrf_cookie}"),
                    &format!("Origin: http://{HOST}"),
                    "Content-Type: application/x-www-form-urlencoded",
                ],
                body.as_bytes(),
            ),
        );
        assert!(matches!(response.status, 302 | 303), "{response}");
        let cleared = response
            .headers_named("set-cookie")
            .into_iter()
            .find(|v| v.starts_with(SESSION_COOKIE))
            .unwrap_or_else(|| panic!("logout does not clear the cookie: {response}"));
        assert!(
            cleared.contains("Max-Age=0") || cleared.to_ascii_lowercase().contains("expires=thu, 01 jan 1970"),
            "{cleared}"
        );
        assert!(gw.upstream.seen().is_empty(), "logout reached the app");
        Ok(())
    }

    /// Another site cannot log anyone out: a GET (a link, an image) only shows the button,
    /// and a POST without the page's token, or from another origin, is refused; the session
    /// keeps working.
    fn logout_from_another_site_logs_nobody_out(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let session = login(&gw, "alice", PASSWORD);
        let mut client = gw.client();
        let cookie = session_cookie(&session);
        let (csrf_cookie, field) = logout_page(&mut client, &session);
        let body = format!("csrf={}", form_encode(&field));
        let both = format!("Cookie: {SESSION_COOKIE}={session}; {CSRF_COOKIE}={csrf_cookie}");
        let form = "Content-Type: application/x-www-form-urlencoded";
        let attempts = [
            get("/_gatehouse/logout", &[&cookie, "Sec-Fetch-Site: cross-site"]),
            request("POST", "/_gatehouse/logout", &[&cookie, "Origin: http://evil.example"], b""),
            request("POST", "/_gatehouse/logout", &[&cookie, form], body.as_bytes()),
            request(
                "POST",
                "/_gatehouse/logout",
                &[&both, form, "Origin: http://evil.example"],
                body.as_bytes(),
            ),
            request(
                "POST",
                "/_gatehouse/logout",
                &[&both, form, "Sec-Fetch-Site: cross-site"],
                body.as_bytes(),
            ),
        ];
        for attempt in attempts {
            let response = exchange(&mut gw.client(), &attempt);
            assert!(matches!(response.status, 200 | 403), "{response}");
            assert!(response.set_cookie(SESSION_COOKIE).is_none(), "{response}");
        }
        assert_eq!(with_session(&gw, &session).status, 200);
        Ok(())
    }

    /// Repeated failures from one network are throttled (429 with `Retry-After`), even with
    /// the right password from there; the real user on another network is not locked out.
    fn login_failures_throttle_the_network_not_the_user_elsewhere(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, alice())?;
        let mut throttled = None;
        for i in 0..30 {
            let response = gw.send(&get("/app/", &[&basic("alice", &format!("guess {i}"))]));
            assert!(matches!(response.status, 401 | 429), "{response}");
            if response.status == 429 {
                throttled = Some(response);
                break;
            }
        }
        let throttled = throttled.expect("30 wrong passwords from one network were never throttled");
        let retry: u64 = throttled
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("429 without a Retry-After in seconds: {throttled}"));
        assert!(retry > 0, "{throttled}");
        let same_network = gw.send(&get("/app/", &[&basic("alice", PASSWORD)]));
        assert_eq!(same_network.status, 429, "the attacking network is throttled even for a right password: {same_network}");
        let mut elsewhere = gw.client_from(Some(other_network(kind)));
        let response = exchange(&mut elsewhere, &get("/app/", &[&basic("alice", PASSWORD)]));
        assert_eq!(response.status, 200, "alice on another network is locked out: {response}");
        assert_identity(&gw.upstream.only(), "Remote-User", "alice");
        Ok(())
    }

    /// A flood of junk logins (random names, random passwords) does not lock out a real user
    /// from another network, through the login form or Basic.
    fn junk_login_flood_does_not_lock_out_a_real_user(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, alice())?;
        let mut statuses = Vec::new();
        for i in 0..40 {
            let user = format!("junk{i:04}");
            let response = gw.send(&get("/app/", &[&basic(&user, "junk")]));
            statuses.push(response.status);
        }
        assert!(statuses.iter().all(|s| matches!(s, 401 | 429)), "{statuses:?}");
        assert!(statuses.contains(&429), "the flood was never throttled: {statuses:?}");
        let mut elsewhere = gw.client_from(Some(other_network(kind)));
        let response = exchange(&mut elsewhere, &get("/app/", &[&basic("alice", PASSWORD)]));
        assert_eq!(response.status, 200, "{response}");
        let mut elsewhere = gw.client_from(Some(other_network(kind)));
        let login = post_login(&mut elsewhere, "alice", PASSWORD, "/app/");
        assert_eq!(login.status, 303, "login form after a flood: {login}");
        Ok(())
    }

    /// An anonymous browser is sent to the login page with a safe return target; the page
    /// logs in and sends it back there.
    fn anonymous_browser_is_redirected_to_login_and_back(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let response = gw.send(&get("/app/music?id=7", &["Accept: text/html,application/xhtml+xml"]));
        assert_eq!(response.status, 302, "{response}");
        let location = response.header("location").expect("Location").to_owned();
        assert!(location.starts_with("/_gatehouse/login"), "{location}");
        assert!(location.contains("%2Fapp%2Fmusic"), "the return target is kept: {location}");
        // An off-site return target is never followed.
        let mut client = gw.client();
        let evil = post_login(&mut client, "alice", PASSWORD, "https://evil.test/");
        assert_eq!(evil.status, 303, "{evil}");
        let to = evil.header("location").unwrap_or_default();
        assert!(to.starts_with('/') && !to.starts_with("//"), "login redirected off-site to {to:?}");
        assert!(gw.upstream.seen().is_empty());
        Ok(())
    }

    /// Eight connections opened at once, each with alice's right password (a browser or a
    /// music app does this): all are served, none is throttled.
    fn parallel_requests_with_the_right_password_are_all_served(kind) on [daemon] {
        let gw = Gateway::start(kind, alice())?;
        let request = get("/app/", &[&basic("alice", PASSWORD)]);
        let mut clients: Vec<Client> = (0..8).map(|_| gw.client()).collect();
        for client in &mut clients {
            client.send(&request).expect("send");
        }
        for (i, client) in clients.iter_mut().enumerate() {
            let response = client.response().expect("response");
            assert_eq!(response.status, 200, "connection {i}: {response}");
        }
        assert_eq!(gw.upstream.wait_for(8).len(), 8, "requests the app received");
        Ok(())
    }
}
