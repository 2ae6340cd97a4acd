//! Who reaches the app as whom: login page and session cookie, HTTP Basic, logout, password
//! changes, inbound trust with provisioning, forward-auth, and identity headers a client sends
//! in any spelling. Each test asserts what the recording app received.

mod support;

use std::time::{Duration, Instant};

use support::{
    Client, Gateway, PATIENCE, Recorder, basic, form_encode, get, hidden_field, login,
    login_response, set_cookies, users,
};

/// Fast hashes for tests: the cost of PBKDF2 is not what these tests are about.
const FAST: &[&str] = &["--password-iterations", "1000"];

const SPOOFS: &str = "Remote-User: mallory\r\nremote-user: mallory\r\nREMOTE_USER: mallory\r\n\
                      Remote_User: mallory\r\nremote_groups: admins\r\nRemote-Email: m@evil\r\n\
                      Remote-Name: Mallory\r\nX-Forwarded-User: mallory\r\nX-Remote-User: mallory\r\n";

fn add_user(state: &std::path::Path, name: &str, password: &str, admin: bool) {
    let mut args = vec!["add", name, "--password-stdin", "--iterations", "1000"];
    if admin {
        args.push("--admin");
    }
    let (code, _, err) = users(state, &args, &format!("{password}\n"));
    assert_eq!(code, 0, "{err}");
}

/// A gateway with users alice (admin) and bob, in front of a recorder.
fn setup(extra: &[&str]) -> (Recorder, Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_user(&state, "alice", "correct horse", true);
    add_user(&state, "bob", "battery staple", false);
    let app = Recorder::start();
    let mut args = FAST.to_vec();
    args.extend_from_slice(extra);
    let gw =
        Gateway::start_with_state(&state, &app.upstream(), &["--listen", "127.0.0.1:0"], &args);
    (app, gw, dir)
}

fn only_identity(seen: &support::Recorded, user: &str) {
    let ru = seen.lookalikes("Remote-User");
    assert_eq!(
        ru,
        vec![("Remote-User".to_owned(), user.to_owned())],
        "{:?}",
        seen.headers
    );
    for name in ["X-Forwarded-User", "X-Remote-User"] {
        assert!(
            seen.lookalikes(name).is_empty(),
            "{name}: {:?}",
            seen.headers
        );
    }
    assert!(seen.header("Remote-Email").is_none_or(|v| v != "m@evil"));
    assert!(seen.header("Remote-Name").is_none_or(|v| v != "Mallory"));
}

#[test]
fn an_anonymous_browser_is_sent_to_login_and_other_clients_get_401() {
    let (app, gw, _dir) = setup(&[]);
    let r = get(
        gw.addr(),
        "/library/albums?page=2",
        "Accept: text/html,*/*\r\n",
    );
    assert_eq!(r.status, 302);
    let location = r.header("location").expect("Location");
    assert!(location.starts_with("/_gatehouse/login"), "{location}");
    let r = get(gw.addr(), "/library", &format!("Accept: */*\r\n{SPOOFS}"));
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    assert!(app.requests().is_empty(), "nothing reached the app");
}

#[test]
fn the_login_page_issues_a_session_cookie_that_names_the_user_to_the_app() {
    let (app, gw, _dir) = setup(&[]);
    let r = login_response(gw.addr(), "Alice", "correct horse", "/library?x=1");
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(r.header("location"), Some("/library?x=1"));
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("gatehouse_session="))
        .expect("session cookie");
    let set = r
        .headers
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with("gatehouse_session="))
        .map(|(_, v)| v.clone())
        .expect("Set-Cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );

    let r = get(
        gw.addr(),
        "/library",
        &format!("Cookie: theme=dark; {cookie}\r\n{SPOOFS}"),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let seen = app.requests();
    assert_eq!(seen.len(), 1);
    only_identity(&seen[0], "alice");
    assert_eq!(seen[0].header("Remote-Groups"), Some("admins"));
    let forwarded_cookie = seen[0].header("Cookie").unwrap_or_default();
    assert!(
        !forwarded_cookie.contains("gatehouse_session"),
        "{forwarded_cookie}"
    );
    assert!(
        forwarded_cookie.contains("theme=dark"),
        "{forwarded_cookie}"
    );
    assert!(gw.wait_log("user=alice"), "{}", gw.logs());
    assert!(
        !gw.logs()
            .contains(cookie.trim_start_matches("gatehouse_session=")),
        "the token is never logged"
    );
}

#[test]
fn a_wrong_password_gets_no_session_and_is_counted() {
    let (app, gw, _dir) = setup(&["--metrics-sources", "127.0.0.1"]);
    let r = login_response(gw.addr(), "alice", "wrong", "/");
    assert!(
        !set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("gatehouse_session="))
    );
    let r = login_response(gw.addr(), "nobody", "wrong", "/");
    assert!(
        !set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("gatehouse_session="))
    );
    let metrics = get(gw.addr(), "/_gatehouse/metrics", "").body_text();
    assert!(
        metrics.contains("gatehouse_logins_total{result=\"failed\"} 2"),
        "{metrics}"
    );
    assert!(app.requests().is_empty());
    assert!(
        !gw.logs().contains("wrong"),
        "a password never reaches the log"
    );
}

#[test]
fn http_basic_names_the_user_and_the_app_never_sees_the_credentials() {
    let (app, gw, _dir) = setup(&[]);
    let mut c = Client::tcp(gw.addr());
    for _ in 0..3 {
        let r = c.request(
            format!(
                "GET /rest/ping.view HTTP/1.1\r\nHost: gw.test\r\n{}{SPOOFS}\r\n",
                basic("bob", "battery staple")
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    let r = get(gw.addr(), "/x", &basic("bob", "nope"));
    assert_eq!(r.status, 401);
    let seen = app.requests();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        only_identity(s, "bob");
        assert!(
            s.header("Authorization").is_none(),
            "credentials reached the app"
        );
        assert_ne!(s.header("Remote-Groups"), Some("admins"));
    }
}

#[test]
fn many_connections_with_the_same_credential_before_its_first_check_are_all_served() {
    // A cold cache: a password at the full hashing cost, sent on more connections at once
    // than the cap on checks in flight, before its first check can finish. The copies wait
    // for that check instead of being refused as busy.
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (code, _, err) = users(&state, &["add", "dave", "--password-stdin"], "slow hash\n");
    assert_eq!(code, 0, "{err}");
    let app = Recorder::start();
    let gw = Gateway::start_with_state(&state, &app.upstream(), &["--listen", "127.0.0.1:0"], &[]);
    let addr = gw.addr();
    let clients = 24;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| s.spawn(move || get(addr, "/x", &basic("dave", "slow hash")).status))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let seen = app.requests();
    assert_eq!(seen.len(), clients);
    for s in &seen {
        only_identity(s, "dave");
    }
}

#[test]
fn a_spoofed_identity_in_a_pipelined_request_on_an_authenticated_connection_never_passes() {
    let (app, gw, _dir) = setup(&[]);
    let cookie = login(gw.addr(), "bob", "battery staple");
    let mut c = Client::tcp(gw.addr());
    c.send(
        format!(
            "GET /a HTTP/1.1\r\nHost: gw.test\r\nCookie: {cookie}\r\n\r\n\
             GET /b HTTP/1.1\r\nHost: gw.test\r\n{SPOOFS}Connection: Remote-User, keep-alive\r\nAccept: */*\r\n\r\n\
             GET /c HTTP/1.1\r\nHost: gw.test\r\nCookie: {cookie}\r\n{SPOOFS}\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(c.read().expect("a").status, 200);
    assert_eq!(
        c.read().expect("b").status,
        401,
        "the second request has no login of its own"
    );
    assert_eq!(c.read().expect("c").status, 200);
    let seen = app.requests();
    assert_eq!(seen.len(), 2);
    only_identity(&seen[0], "bob");
    only_identity(&seen[1], "bob");
}

#[test]
fn logout_clears_the_cookie_and_a_password_change_revokes_every_session() {
    let (_app, gw, dir) = setup(&[]);
    let cookie = login(gw.addr(), "bob", "battery staple");
    // A GET (a link from anywhere) only shows the button.
    let page = get(
        gw.addr(),
        "/_gatehouse/logout",
        &format!("Cookie: {cookie}\r\n"),
    );
    assert_eq!(page.status, 200);
    assert!(
        !set_cookies(&page)
            .iter()
            .any(|c| c.starts_with("gatehouse_session=")),
        "a GET logged out: {:?}",
        page.headers
    );
    assert_eq!(
        get(gw.addr(), "/x", &format!("Cookie: {cookie}\r\n")).status,
        200
    );
    // The button posts the page's token with its cookie.
    let csrf = hidden_field(&page.body_text(), "csrf").expect("csrf field in the logout page");
    let csrf_cookie = set_cookies(&page).join("; ");
    let body = format!("csrf={}", form_encode(&csrf));
    let r = Client::tcp(gw.addr()).request(
        format!(
            "POST /_gatehouse/logout HTTP/1.1\r\nHost: gw.test\r\nOrigin: http://gw.test\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nCookie: {cookie}; {csrf_cookie}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 303);
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("set-cookie")
                && v.starts_with("gatehouse_session=")
                && v.contains("Max-Age=0")),
        "{:?}",
        r.headers
    );

    // Changed on disk by the CLI while the gateway runs: it re-reads the file.
    let cookie = login(gw.addr(), "bob", "battery staple");
    assert_eq!(
        get(gw.addr(), "/x", &format!("Cookie: {cookie}\r\n")).status,
        200
    );
    let (code, _, err) = users(
        &dir.path().join("state"),
        &["passwd", "bob", "--password-stdin", "--iterations", "1000"],
        "new one\n",
    );
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + PATIENCE;
    let mut status = 200;
    while Instant::now() < deadline && status == 200 {
        std::thread::sleep(Duration::from_millis(100));
        status = get(
            gw.addr(),
            "/x",
            &format!("Cookie: {cookie}\r\nAccept: */*\r\n"),
        )
        .status;
    }
    assert_eq!(status, 401, "the old session is revoked");
    login(gw.addr(), "bob", "new one");
}

#[test]
fn a_user_added_from_the_command_line_can_log_in_without_a_restart() {
    let (_app, gw, dir) = setup(&[]);
    add_user(&dir.path().join("state"), "carol", "pw for carol", false);
    // Trying before the gateway noticed would count as failed logins (and be throttled).
    assert!(gw.wait_log("users file reloaded: 3 users"), "{}", gw.logs());
    let r = get(gw.addr(), "/x", &basic("carol", "pw for carol"));
    assert_eq!(r.status, 200);
}

#[test]
fn a_trusted_proxy_names_users_who_are_created_on_first_sight_and_the_first_is_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let app = Recorder::start();
    let mut args = FAST.to_vec();
    args.extend(["--trusted-sources", "10.0.0.0/8, 127.0.0.1/32"]);
    let gw =
        Gateway::start_with_state(&state, &app.upstream(), &["--listen", "127.0.0.1:0"], &args);

    let r = get(
        gw.addr(),
        "/a",
        "Remote-User: Carol\r\nRemote-Groups: wheel\r\n",
    );
    assert_eq!(r.status, 200);
    let r = get(gw.addr(), "/b", "remote-user: dave\r\n");
    assert_eq!(r.status, 200);
    let r = get(gw.addr(), "/c", "Remote-User: carol\r\n");
    assert_eq!(r.status, 200);
    let seen = app.requests();
    only_identity(&seen[0], "Carol");
    assert_eq!(
        seen[0].header("Remote-Groups"),
        Some("admins"),
        "the first user ever is admin"
    );
    only_identity(&seen[1], "dave");
    assert_ne!(
        seen[1].header("Remote-Groups"),
        Some("admins"),
        "later users are not"
    );
    only_identity(&seen[2], "Carol");

    // Both were written to the users file.
    let (_, out, _) = users(&state, &["list"], "");
    assert_eq!(out, "Carol\tadmin\ndave\tuser\n");

    // A repeated identity header is refused, not guessed.
    let r = get(
        gw.addr(),
        "/d",
        "Remote-User: carol\r\nRemote-User: dave\r\nAccept: */*\r\n",
    );
    assert_ne!(r.status, 200);
    assert_eq!(app.requests().len(), 3);
}

#[test]
fn an_untrusted_peer_claiming_an_identity_falls_back_to_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Recorder::start();
    let mut args = FAST.to_vec();
    // 127.0.0.2 is trusted; the test connects from 127.0.0.1.
    args.extend(["--trusted-sources", "127.0.0.2/32"]);
    let gw = Gateway::start_with_state(
        &dir.path().join("state"),
        &app.upstream(),
        &["--listen", "127.0.0.1:0"],
        &args,
    );
    let r = get(
        gw.addr(),
        "/a",
        "Remote-User: admin\r\nX-Forwarded-For: 127.0.0.2\r\nX-Real-IP: 127.0.0.2\r\nAccept: */*\r\n",
    );
    assert_eq!(r.status, 401);
    assert!(app.requests().is_empty());
    let (_, out, _) = users(&dir.path().join("state"), &["list"], "");
    assert!(out.starts_with("no users"), "nobody was provisioned: {out}");
}

#[test]
fn the_unix_socket_peer_is_the_at_sign_and_tcp_peers_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("gatehouse.sock");
    let listen_unix = format!("unix:{}", sock.display());
    let app = Recorder::start();
    let mut args = FAST.to_vec();
    args.extend(["--trusted-sources", "@"]);
    let gw = Gateway::start_with_state(
        &dir.path().join("state"),
        &app.upstream(),
        &["--listen", "127.0.0.1:0", "--listen", &listen_unix],
        &args,
    );
    let mut c = Client::unix(&sock);
    let r = c.request(b"GET /via-socket HTTP/1.1\r\nHost: gw.test\r\nRemote-User: erin\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = get(
        gw.addr(),
        "/via-tcp",
        "Remote-User: erin\r\nAccept: */*\r\n",
    );
    assert_eq!(r.status, 401);
    let seen = app.requests();
    assert_eq!(seen.len(), 1);
    only_identity(&seen[0], "erin");
}

#[test]
fn forward_auth_answers_with_the_identity_for_a_session_and_401_without() {
    // The forward-auth caller (the proxy on this machine) has forwarding trust only.
    let (app, gw, _dir) = setup(&["--trusted-proxies", "127.0.0.1"]);
    let cookie = login(gw.addr(), "alice", "correct horse");
    let r = get(
        gw.addr(),
        "/_gatehouse/auth",
        &format!("X-Forwarded-Uri: /app/\r\nCookie: {cookie}\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Remote-User"), Some("alice"));
    assert_eq!(r.header("Remote-Groups"), Some("admins"));
    let r = get(
        gw.addr(),
        "/_gatehouse/auth/nginx",
        "X-Original-URI: /app/\r\nRemote-User: alice\r\nAccept: */*\r\n",
    );
    assert_eq!(r.status, 401);
    assert!(r.header("Remote-User").is_none());
    // Both kinds of original-URI header at once: refused, not guessed.
    let r = get(
        gw.addr(),
        "/_gatehouse/auth",
        "X-Forwarded-Uri: /app/\r\nX-Original-URI: /share/x\r\nAccept: */*\r\n",
    );
    assert_eq!(r.status, 403);
    // Forwarding trust is no identity trust: the proxy's Remote-User names nobody.
    let r = get(
        gw.addr(),
        "/app/",
        "Remote-User: mallory\r\nAccept: */*\r\n",
    );
    assert_eq!(r.status, 401);
    assert!(
        app.requests().is_empty(),
        "forward-auth never touches the app"
    );
}

#[test]
fn the_users_file_is_always_whole_while_users_are_provisioned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let app = Recorder::start();
    let mut args = FAST.to_vec();
    args.extend(["--trusted-sources", "127.0.0.1"]);
    let gw =
        Gateway::start_with_state(&state, &app.upstream(), &["--listen", "127.0.0.1:0"], &args);
    let addr = gw.addr();
    let writer = std::thread::spawn(move || {
        for i in 0..40 {
            let r = get(addr, "/", &format!("Remote-User: user{i}\r\n"));
            assert_eq!(r.status, 200);
        }
    });
    let path = state.join("users.json");
    let mut reads = 0;
    while !writer.is_finished() {
        if let Ok(text) = std::fs::read_to_string(&path) {
            assert!(
                text.starts_with("{\"version\":2") && text.ends_with("]}\n"),
                "torn read: {text}"
            );
            reads += 1;
        }
    }
    writer.join().expect("writer");
    let (_, out, _) = users(&state, &["list"], "");
    assert_eq!(out.lines().count(), 40);
    assert!(reads > 0);
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn secure_cookies_marks_cookies_secure_behind_a_tls_terminating_proxy() {
    let app = Recorder::start();
    let plain = Gateway::start(&app.upstream(), FAST);
    let r = get(plain.addr(), "/_gatehouse/login", "Accept: text/html\r\n");
    let cookie = r.header("set-cookie").expect("a CSRF cookie").to_owned();
    assert!(!cookie.contains("Secure"), "{cookie}");
    let mut args = FAST.to_vec();
    args.extend(["--secure-cookies", "true"]);
    let behind_tls = Gateway::start(&app.upstream(), &args);
    let r = get(
        behind_tls.addr(),
        "/_gatehouse/login",
        "Accept: text/html\r\n",
    );
    let cookie = r.header("set-cookie").expect("a CSRF cookie").to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
}
