//! App passwords from the command line, then used by a Subsonic client and by HTTP Basic
//! through the gateway: the app sees the user and never the secret.

mod support;

use support::{
    Client, Gateway, Recorder, basic, form_encode, get, hidden_field, login, set_cookies, users,
};

const FAST: &[&str] = &["--password-iterations", "1000"];

fn add_alice(state: &std::path::Path) {
    let args = ["add", "alice", "--password-stdin", "--iterations", "1000"];
    let (code, _, err) = users(state, &args, "correct horse\n");
    assert_eq!(code, 0, "{err}");
}

/// `users app-password add` and the secret it prints.
fn add_app_password(state: &std::path::Path, label: &str) -> String {
    let (code, out, err) = users(state, &["app-password", "add", "alice", label], "");
    assert_eq!(code, 0, "{err}");
    out.lines()
        .find_map(|l| l.split("type it into the app): ").nth(1))
        .unwrap_or_else(|| panic!("no secret printed: {out}"))
        .trim()
        .to_owned()
}

#[test]
fn app_passwords_are_added_listed_and_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_alice(&state);
    let secret = add_app_password(&state, "phone");
    assert_eq!(secret.len(), 24);

    let (code, out, err) = users(&state, &["app-password", "list", "ALICE"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("phone\tcreated 20"), "{out}");
    assert!(out.contains("UTC\tnever used"), "{out}");
    assert!(!out.contains(&secret), "list never shows the secret");

    let (code, _, err) = users(&state, &["app-password", "add", "alice", "Phone"], "");
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = users(&state, &["app-password", "add", "nobody", "x"], "");
    assert_eq!(code, 2);
    assert!(err.contains("no such user"), "{err}");

    let (code, out, err) = users(&state, &["app-password", "revoke", "alice", "phone"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    assert!(
        out.contains("no gateway is running on"),
        "says that no running gateway needed telling: {out}"
    );
    let (_, out, _) = users(&state, &["app-password", "list", "alice"], "");
    assert!(out.contains("no app passwords"), "{out}");
    let (code, _, err) = users(&state, &["app-password", "revoke", "alice", "phone"], "");
    assert_eq!(code, 2);
    assert!(err.contains("no app password with that label"), "{err}");
}

#[test]
fn subsonic_clients_and_basic_use_app_passwords_and_the_app_never_sees_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_alice(&state);
    let secret = add_app_password(&state, "phone");
    let app = Recorder::start();
    let gw = Gateway::start_with_state(&state, &app.upstream(), &["--listen", "127.0.0.1:0"], FAST);
    let addr = gw.addr();

    let r = get(
        addr,
        &format!("/rest/ping.view?u=alice&p={secret}&v=1.16.1&c=test&f=json"),
        "Remote-User: mallory\r\n",
    );
    assert_eq!(r.status, 200);
    let r = get(
        addr,
        &format!("/rest/getAlbum?id=3&apiKey={secret}&v=1.16.1&c=test"),
        "",
    );
    assert_eq!(r.status, 200);
    let r = get(addr, "/app/", &basic("alice", &secret));
    assert_eq!(r.status, 200);
    let seen = app.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for request in &seen {
        assert_eq!(request.header("Remote-User"), Some("alice"), "{request:?}");
        assert!(!request.request_line.contains(&secret), "{request:?}");
        assert!(
            !request.headers.iter().any(|(_, v)| v.contains(&secret)),
            "{request:?}"
        );
    }
    assert!(
        seen[0]
            .request_line
            .starts_with("GET /rest/ping.view?u=alice&v=1.16.1&c=test&f=json "),
        "{:?}",
        seen[0]
    );

    // Wrong credentials: a Subsonic error the app never sees.
    let r = get(
        addr,
        "/rest/ping.view?u=alice&p=wrong&v=1.16.1&c=test&f=json",
        "",
    );
    assert_eq!(r.status, 200);
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("\"status\":\"failed\""), "{body}");
    assert!(body.contains("\"code\":40"), "{body}");
    let r = get(addr, "/rest/getOpenSubsonicExtensions.view?f=json", "");
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("apiKeyAuthentication"), "{body}");
    assert_eq!(app.requests().len(), 3);

    // The last use reached the users file.
    let (code, out, err) = users(&state, &["app-password", "list", "alice"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\tlast used 20"), "{out}");
}

/// The account page through the gateway: GET it with a session, POST a form with its CSRF
/// token and cookie. Returns the response and the cookies for the next POST.
struct AccountPage {
    addr: std::net::SocketAddr,
    session: String,
    csrf: String,
    csrf_cookie: String,
}

impl AccountPage {
    fn open(addr: std::net::SocketAddr, session: &str) -> AccountPage {
        let page = get(
            addr,
            "/_gatehouse/account",
            &format!("Accept: text/html\r\nCookie: {session}\r\n"),
        );
        assert_eq!(page.status, 200, "{}", page.body_text());
        let mut account = AccountPage {
            addr,
            session: session.to_owned(),
            csrf: String::new(),
            csrf_cookie: String::new(),
        };
        account.take_csrf(&page);
        account
    }

    fn take_csrf(&mut self, page: &support::Response) {
        self.csrf = hidden_field(&page.body_text(), "csrf").expect("a csrf field");
        self.csrf_cookie = set_cookies(page)
            .into_iter()
            .find(|c| c.starts_with("gatehouse_csrf="))
            .expect("a csrf cookie");
    }

    fn post(&mut self, fields: &[(&str, &str)]) -> support::Response {
        let mut body = format!("csrf={}", form_encode(&self.csrf));
        for (k, v) in fields {
            body.push_str(&format!("&{k}={}", form_encode(v)));
        }
        let mut c = Client::tcp(self.addr);
        let r = c.request(
            format!(
                "POST /_gatehouse/account HTTP/1.1\r\nHost: gw.test\r\nOrigin: http://gw.test\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nCookie: {}; {}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.session,
                self.csrf_cookie,
                body.len()
            )
            .as_bytes(),
        );
        if r.status == 200 {
            self.take_csrf(&r);
        }
        r
    }
}

/// The secret the account page shows once.
fn shown_secret(page: &str) -> Option<String> {
    let marker = "<code class=\"secret\" id=\"secret\">";
    let start = page.find(marker)? + marker.len();
    let end = page[start..].find('<')? + start;
    Some(page[start..end].to_owned())
}

#[test]
fn the_account_page_makes_and_revokes_app_passwords_and_the_users_file_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_alice(&state);
    let app = Recorder::start();
    let gw = Gateway::start_with_state(&state, &app.upstream(), &["--listen", "127.0.0.1:0"], FAST);
    let addr = gw.addr();
    let users_file = state.join("users.json");

    let session = login(addr, "alice", "correct horse");
    let mut page = AccountPage::open(addr, &session);
    // The session alone makes no app password: the password is asked again.
    let refused = page.post(&[("do", "create"), ("label", "phone")]);
    assert_eq!(refused.status, 400, "{}", refused.body_text());
    let refused = page.post(&[("do", "create"), ("label", "phone"), ("current", "wrong")]);
    assert_eq!(refused.status, 200, "{}", refused.body_text());
    assert!(shown_secret(&refused.body_text()).is_none());
    assert!(
        refused.body_text().contains("Your password is wrong"),
        "{}",
        refused.body_text()
    );
    let created = page.post(&[
        ("do", "create"),
        ("label", "phone"),
        ("current", "correct horse"),
    ]);
    assert_eq!(created.status, 200, "{}", created.body_text());
    let secret = shown_secret(&created.body_text()).expect("the secret is shown");
    assert!(created.body_text().contains("it will not be shown again"));
    let on_disk = std::fs::read_to_string(&users_file).expect("users file");
    assert!(on_disk.contains("\"label\":\"phone\""), "{on_disk}");
    let (code, out, err) = users(&state, &["app-password", "list", "alice"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("phone\tcreated 20"), "{out}");
    let again = get(
        addr,
        "/_gatehouse/account",
        &format!("Accept: text/html\r\nCookie: {session}\r\n"),
    );
    assert!(again.body_text().contains("<strong>phone</strong>"));
    assert!(!again.body_text().contains(&secret), "shown once only");

    let ping = format!("/rest/ping.view?u=alice&p={secret}&v=1.16.1&c=test&f=json");
    let r = get(addr, &ping, "");
    assert_eq!(r.status, 200);
    let seen = app.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("Remote-User"), Some("alice"));
    assert!(!seen[0].request_line.contains(&secret), "{:?}", seen[0]);
    assert!(!seen[0].headers.iter().any(|(_, v)| v.contains(&secret)));

    let revoked = page.post(&[("do", "revoke"), ("label", "phone")]);
    assert_eq!(revoked.status, 200, "{}", revoked.body_text());
    assert!(revoked.body_text().contains("revoked"));
    let r = get(addr, &ping, "");
    let body = r.body_text();
    assert!(body.contains("\"status\":\"failed\""), "{body}");
    assert!(body.contains("\"code\":40"), "{body}");
    assert_eq!(
        app.requests().len(),
        1,
        "a revoked app password reaches nothing"
    );
    let on_disk = std::fs::read_to_string(&users_file).expect("users file");
    assert!(!on_disk.contains("\"label\":\"phone\""), "{on_disk}");
    assert!(
        gw.logs()
            .contains("saved the users file: changed on the account page"),
        "{}",
        gw.logs()
    );
    assert!(!gw.logs().contains("change dropped"), "{}", gw.logs());
}

#[test]
fn the_account_page_changes_the_password_and_logs_out_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_alice(&state);
    let app = Recorder::start();
    let gw = Gateway::start_with_state(&state, &app.upstream(), &["--listen", "127.0.0.1:0"], FAST);
    let addr = gw.addr();
    let users_file = state.join("users.json");
    let before = std::fs::read_to_string(&users_file).expect("users file");

    let other_browser = login(addr, "alice", "correct horse");
    let session = login(addr, "alice", "correct horse");
    let mut page = AccountPage::open(addr, &session);
    let wrong = page.post(&[
        ("do", "password"),
        ("current", "not it"),
        ("new", "battery staple"),
        ("confirm", "battery staple"),
    ]);
    assert!(wrong.body_text().contains("current password is wrong"));
    assert_eq!(
        std::fs::read_to_string(&users_file).expect("users file"),
        before
    );

    let changed = page.post(&[
        ("do", "password"),
        ("current", "correct horse"),
        ("new", "battery staple"),
        ("confirm", "battery staple"),
    ]);
    assert_eq!(changed.status, 200, "{}", changed.body_text());
    assert!(changed.body_text().contains("Your password was changed"));
    let fresh = set_cookies(&changed)
        .into_iter()
        .find(|c| c.starts_with("gatehouse_session="))
        .expect("this browser stays signed in");
    assert_ne!(
        std::fs::read_to_string(&users_file).expect("users file"),
        before
    );
    let browse = |cookie: &str| {
        get(
            addr,
            "/app/",
            &format!("Accept: text/html\r\nCookie: {cookie}\r\n"),
        )
    };
    assert_eq!(browse(&fresh).status, 200);
    assert_eq!(browse(&other_browser).status, 302, "other sessions end");
    assert_eq!(
        get(addr, "/app/", &basic("alice", "battery staple")).status,
        200
    );

    page.session = fresh.clone();
    let out = page.post(&[("do", "logout-everywhere")]);
    assert_eq!(out.status, 303);
    assert!(
        out.header("Location")
            .unwrap_or("")
            .ends_with("/_gatehouse/login")
    );
    assert_eq!(browse(&fresh).status, 302, "this session ended too");
}

#[test]
fn a_revoked_credential_is_refused_on_the_first_request_after_the_cli_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    add_alice(&state);
    let args = ["add", "bob", "--password-stdin", "--iterations", "1000"];
    let (code, _, err) = users(&state, &args, "battery staple\n");
    assert_eq!(code, 0, "{err}");
    let app = Recorder::start();
    let mut gw =
        Gateway::start_with_state(&state, &app.upstream(), &["--listen", "127.0.0.1:0"], FAST);
    let addr = gw.addr();
    let socket = state.join("control.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&socket)
            .expect("the control socket")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "only gatehouse's user may connect");

    // Made while the gateway runs: it works at once, and is cached as verified.
    let secret = add_app_password(&state, "phone");
    let ping = format!("/rest/ping.view?u=alice&p={secret}&v=1.16.1&c=test");
    let forwarded = app.requests().len();
    let r = get(addr, &ping, "");
    assert_eq!(r.status, 200);
    assert!(!r.body_text().contains("failed"), "{}", r.body_text());
    assert_eq!(app.requests().len(), forwarded + 1, "the app answered it");
    assert_eq!(get(addr, "/x", &basic("alice", &secret)).status, 200);
    let cookie = login(addr, "bob", "battery staple");
    assert_eq!(
        get(addr, "/x", &format!("Cookie: {cookie}\r\n")).status,
        200
    );

    let (code, out, err) = users(&state, &["app-password", "revoke", "alice", "phone"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("the running gateway applied the change"),
        "{out}"
    );
    // The very next requests, with no wait: refused.
    assert_eq!(get(addr, "/x", &basic("alice", &secret)).status, 401);
    assert!(get(addr, &ping, "").body_text().contains("code=\"40\""));

    // A password change logs bob's sessions out, and a deleted user is gone, as promptly.
    let args = ["passwd", "bob", "--password-stdin", "--iterations", "1000"];
    let (code, out, err) = users(&state, &args, "new one\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("the running gateway applied the change"),
        "{out}"
    );
    assert_eq!(
        get(addr, "/x", &format!("Cookie: {cookie}\r\n")).status,
        401
    );
    assert_eq!(get(addr, "/x", &basic("bob", "new one")).status, 200);
    let (code, out, err) = users(&state, &["del", "bob"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("the running gateway applied the change (1 users)"),
        "{out}"
    );
    assert_eq!(get(addr, "/x", &basic("bob", "new one")).status, 401);

    // The socket goes with the gateway; the CLI then says none is running.
    let status = gw.terminate().expect("gatehouse exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the control socket is removed on exit");
    let (code, out, err) = users(&state, &["app-password", "add", "alice", "tablet"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no gateway is running on"), "{out}");
}
