//! App passwords from the command line, then used by a Subsonic client and by HTTP Basic
//! through the gateway: the app sees the user and never the secret.

mod support;

use support::{Gateway, Recorder, basic, get, users};

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
