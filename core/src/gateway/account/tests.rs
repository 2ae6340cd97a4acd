//! The account page over byte-level requests, as a shell would drive it.

use core::ops::{Deref, DerefMut};

use super::*;
use crate::gateway::test_world::{self, ITER, NOW};
use crate::password::hash_password;

const PAGE: &str = "/_gatehouse/account";

/// The shared test world, with the account page's own steps.
struct World(test_world::World);

impl Deref for World {
    type Target = test_world::World;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for World {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// What gatehouse answered.
struct Answered {
    outcome: Outcome,
    users_changed: bool,
    consumed: usize,
    text: String,
}

impl Answered {
    fn head(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(h, _)| h)
    }

    fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    fn status(&self) -> u16 {
        self.text[9..12].parse().unwrap()
    }

    /// The value of the `Set-Cookie` for `name` (`name=value`), if any.
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.head()
            .lines()
            .filter_map(|l| l.strip_prefix("Set-Cookie: "))
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap())
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let body = self.body();
        let at = body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        body[at..at + body[at..].find('"').unwrap()].to_owned()
    }

    /// The secret shown on the page, if any.
    fn secret(&self) -> Option<String> {
        let body = self.body();
        let at = body.find("<code class=\"secret\" id=\"secret\">")? + 33;
        Some(body[at..at + body[at..].find('<')?].to_owned())
    }
}

impl World {
    fn new() -> Self {
        World(test_world::World::new())
    }

    /// One step as a shell takes it, from one client.
    fn step(
        &mut self,
        bytes: &[u8],
        finished: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        self.0.step_at("192.0.2.9:4000", bytes, NOW, finished, out)
    }

    /// Decides to the end (a password check run in between, as the shell does) and returns
    /// the answer, with whether a check was handed out.
    fn answer(&mut self, bytes: &[u8]) -> (Answered, bool) {
        let mut out = vec![0u8; OUT_LEN];
        let mut checked = false;
        let decision = match self.step(bytes, None, &mut out) {
            Decision::VerifyPassword(check) => {
                checked = true;
                let ok = check.verify();
                self.step(bytes, Some((&check, ok)), &mut out)
            }
            other => other,
        };
        let Decision::Respond(r) = decision else {
            panic!("not an answer: {decision:?}");
        };
        let text = String::from_utf8(out[..r.len].to_vec()).unwrap();
        let answered = Answered {
            outcome: r.outcome,
            users_changed: r.users_changed,
            consumed: r.consumed,
            text,
        };
        (answered, checked)
    }

    fn session(&self, name: &str) -> String {
        let user = self.users.find(name).unwrap();
        let token = self
            .keys
            .issue(self.users.table_id(), name, user.generation, NOW - 10, 3600)
            .unwrap();
        format!("gatehouse_session={token}")
    }

    fn get(&mut self, cookie: &str) -> Answered {
        let request = format!(
            "GET {PAGE} HTTP/1.1\r\nHost: gw\r\nAccept: text/html\r\nCookie: {cookie}\r\n\r\n"
        );
        self.answer(request.as_bytes()).0
    }

    /// The page for `name`, and a POST with its CSRF token and `fields`.
    fn post_as(&mut self, name: &str, fields: &[(&str, &str)]) -> (Answered, bool) {
        let session = self.session(name);
        let page = self.get(&session);
        assert_eq!(page.outcome, Outcome::Account(AccountOutcome::Page));
        let csrf = page.csrf();
        let cookie = format!("{session}; gatehouse_csrf={csrf}");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(&cookie, &all, "Sec-Fetch-Site: same-origin\r\n")
    }

    fn post(&mut self, cookie: &str, fields: &[(&str, &str)], extra: &str) -> (Answered, bool) {
        let body = encode(fields);
        let request = format!(
            "POST {PAGE} HTTP/1.1\r\nHost: gw\r\nCookie: {cookie}\r\n{extra}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (a, checked) = self.answer(request.as_bytes());
        if a.outcome != Outcome::Account(AccountOutcome::NoSession) {
            // The form was read whole: the next request on the connection starts after it.
            assert_eq!(a.consumed, request.len(), "{}", a.text);
            assert!(!a.head().contains("Connection: close"));
        }
        (a, checked)
    }
}

fn encode(fields: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (k, v) in fields {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(k);
        body.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() {
                body.push(b as char);
            } else {
                body.push_str(&format!("%{b:02X}"));
            }
        }
    }
    body
}

#[test]
fn an_anonymous_browser_is_sent_to_login_and_back_here() {
    let mut w = World::new();
    let a = w.get("other=1");
    assert_eq!(a.status(), 302);
    assert_eq!(a.outcome, Outcome::RedirectedToLogin);
    assert!(
        a.head()
            .contains("\r\nLocation: /_gatehouse/login?return=%2F_gatehouse%2Faccount\r\n"),
        "{}",
        a.text
    );
    assert!(!a.users_changed);
    // A forged or foreign session is anonymous too, and so is HTTP Basic.
    let forged = w.get("gatehouse_session=AAAA.BBBB");
    assert_eq!(forged.outcome, Outcome::RedirectedToLogin);
    let request = format!(
        "GET {PAGE} HTTP/1.1\r\nHost: gw\r\nAccept: text/html\r\nAuthorization: Basic {}\r\n\r\n",
        "Ym9iOmJ1aWxkZXI="
    );
    let (basic, checked) = w.answer(request.as_bytes());
    assert_eq!(basic.outcome, Outcome::RedirectedToLogin);
    assert!(!checked, "Basic credentials are not even checked");
}

#[test]
fn the_page_lists_only_the_users_own_app_passwords_escaped() {
    let mut w = World::new();
    w.users
        .add_app_password("bob", "<b>\"car\"</b>", &[3; 18], NOW - 86_400)
        .unwrap();
    let index = w
        .users
        .add_app_password("bob", "phone", &[4; 18], NOW - 3600)
        .map(|secret| w.users.check_app_password("bob", secret.as_bytes()))
        .unwrap()
        .unwrap();
    w.users.record_app_password_use(index, NOW - 60);
    w.users
        .add_app_password("alice", "alices-tablet", &[5; 18], NOW)
        .unwrap();

    let session = w.session("bob");
    let page = w.get(&session);
    assert_eq!(page.status(), 200);
    assert_eq!(page.outcome, Outcome::Account(AccountOutcome::Page));
    assert!(!page.users_changed);
    let body = page.body();
    assert!(body.contains("Signed in as <strong>bob</strong>"), "{body}");
    assert!(
        body.contains("<strong>&lt;b&gt;&quot;car&quot;&lt;/b&gt;</strong>"),
        "{body}"
    );
    assert!(!body.contains("<b>\"car\""), "a label is never markup");
    assert!(body.contains("<strong>phone</strong>"));
    assert!(body.contains("created 2027-01-14 08:00 UTC, last used never"));
    assert!(body.contains("created 2027-01-15 07:00 UTC, last used 2027-01-15 07:59 UTC"));
    assert!(!body.contains("alices-tablet"), "only the user's own");
    assert!(!body.contains("<script"));
    assert!(body.contains("name=\"viewport\""));
    assert_eq!(body.matches("name=\"csrf\"").count(), 5, "every form");
    assert_eq!(page.csrf().len(), CSRF_TOKEN_LEN);
    let head = page.head();
    assert!(head.contains("Content-Security-Policy: default-src 'none'"));
    assert!(head.contains("Cache-Control: no-store"));
    assert!(head.contains(&format!("Set-Cookie: gatehouse_csrf={}", page.csrf())));
    assert!(page.secret().is_none());
}

#[test]
fn an_app_password_is_created_shown_once_and_stored() {
    let mut w = World::new();
    let (created, checked) = w.post_as(
        "bob",
        &[("do", "create"), ("label", "phone"), ("current", "builder")],
    );
    assert!(checked, "the password is checked off the lock");
    assert_eq!(created.status(), 200);
    assert_eq!(created.outcome, Outcome::Account(AccountOutcome::Created));
    assert!(created.users_changed);
    let secret = created.secret().expect("the secret is shown");
    assert_eq!(secret.len(), 24);
    assert!(
        created
            .body()
            .contains("Copy it now: it will not be shown again.")
    );
    assert!(
        w.users
            .check_app_password("bob", secret.as_bytes())
            .is_some()
    );
    assert!(
        w.users
            .check_app_password("alice", secret.as_bytes())
            .is_none()
    );
    let stored = w.users.app_passwords("bob").next().unwrap();
    assert_eq!((stored.label.as_str(), stored.created), ("phone", NOW));
    assert!(created.head().contains("Cache-Control: no-store"));

    let session = w.session("bob");
    let again = w.get(&session);
    assert!(again.body().contains("<strong>phone</strong>"));
    assert!(!again.text.contains(&secret), "shown once only");
    assert!(again.secret().is_none());

    // The same label again: refused, nothing stored, nothing to save.
    let (twice, _) = w.post_as(
        "bob",
        &[("do", "create"), ("label", "PHONE"), ("current", "builder")],
    );
    assert_eq!(
        twice.outcome,
        Outcome::Account(AccountOutcome::CreateFailed(
            AppPasswordError::DuplicateLabel
        ))
    );
    assert!(!twice.users_changed);
    assert!(twice.body().contains("already exists"), "{}", twice.body());
    assert!(twice.secret().is_none());
    assert_eq!(w.users.app_passwords("bob").count(), 1);
    let (bad, _) = w.post_as(
        "bob",
        &[("do", "create"), ("label", " x"), ("current", "builder")],
    );
    assert!(matches!(
        bad.outcome,
        Outcome::Account(AccountOutcome::CreateFailed(
            AppPasswordError::InvalidLabel(_)
        ))
    ));
    assert!(!bad.users_changed);
    let (missing, _) = w.post_as("bob", &[("do", "create")]);
    assert_eq!(missing.outcome, Outcome::Account(AccountOutcome::BadForm));
    assert_eq!(missing.status(), 400);
}

#[test]
fn a_new_app_password_needs_the_current_password() {
    let mut w = World::new();
    let page = w.get(&w.session("bob"));
    assert!(
        page.body()
            .contains("<input id=\"create-current\" name=\"current\" type=\"password\""),
        "{}",
        page.body()
    );
    // A stolen session alone makes none: without the password, or with a wrong one.
    let (missing, checked) = w.post_as("bob", &[("do", "create"), ("label", "phone")]);
    assert_eq!(missing.outcome, Outcome::Account(AccountOutcome::BadForm));
    assert!(!checked && !missing.users_changed && missing.secret().is_none());
    let (empty, _) = w.post_as(
        "bob",
        &[("do", "create"), ("label", "phone"), ("current", "")],
    );
    assert_eq!(empty.outcome, Outcome::Account(AccountOutcome::BadForm));
    let (wrong, checked) = w.post_as(
        "bob",
        &[("do", "create"), ("label", "phone"), ("current", "not-it")],
    );
    assert!(checked);
    assert_eq!(
        wrong.outcome,
        Outcome::Account(AccountOutcome::WrongPassword)
    );
    assert!(!wrong.users_changed && wrong.secret().is_none());
    assert!(
        wrong.body().contains("Your password is wrong"),
        "{}",
        wrong.body()
    );
    assert_eq!(w.users.app_passwords("bob").count(), 0);
    // Another user's password is no use either.
    let (theirs, _) = w.post_as(
        "bob",
        &[
            ("do", "create"),
            ("label", "phone"),
            ("current", "wonderland"),
        ],
    );
    assert_eq!(
        theirs.outcome,
        Outcome::Account(AccountOutcome::WrongPassword)
    );
    assert_eq!(w.users.app_passwords("bob").count(), 0);
    // Wrong guesses count against the login throttle, like a login's: it runs out.
    let mut throttled = false;
    for _ in 0..50 {
        let (a, _) = w.post_as(
            "bob",
            &[("do", "create"), ("label", "phone"), ("current", "guess")],
        );
        if a.outcome == Outcome::Throttled {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "wrong passwords were never throttled");
    assert_eq!(w.users.app_passwords("bob").count(), 0);
}

#[test]
fn an_app_password_is_revoked_by_its_label() {
    let mut w = World::new();
    let secret = w
        .users
        .add_app_password("bob", "phone", &[4; 18], NOW)
        .unwrap();
    w.users
        .add_app_password("alice", "phone", &[5; 18], NOW)
        .unwrap();
    let (revoked, _) = w.post_as("bob", &[("do", "revoke"), ("label", "Phone")]);
    assert_eq!(revoked.outcome, Outcome::Account(AccountOutcome::Revoked));
    assert!(revoked.users_changed);
    assert!(revoked.body().contains("revoked"), "{}", revoked.body());
    assert!(!revoked.body().contains("<strong>phone</strong>"));
    assert!(
        w.users
            .check_app_password("bob", secret.as_bytes())
            .is_none()
    );
    assert_eq!(w.users.app_passwords("alice").count(), 1, "only bob's own");

    let (again, _) = w.post_as("bob", &[("do", "revoke"), ("label", "phone")]);
    assert_eq!(
        again.outcome,
        Outcome::Account(AccountOutcome::RevokeFailed(AppPasswordError::UnknownLabel))
    );
    assert!(!again.users_changed);
}

#[test]
fn changing_the_password_checks_the_current_one_off_the_lock_and_keeps_this_browser_in() {
    let mut w = World::new();
    let old_session = w.session("bob");
    let old_generation = w.users.generation_of("bob").unwrap();
    let (changed, checked) = w.post_as(
        "bob",
        &[
            ("do", "password"),
            ("current", "builder"),
            ("new", "new & better"),
            ("confirm", "new & better"),
        ],
    );
    assert!(checked, "the current password is a password check");
    assert_eq!(changed.status(), 200);
    assert_eq!(
        changed.outcome,
        Outcome::Account(AccountOutcome::PasswordChanged)
    );
    assert!(changed.users_changed);
    assert!(w.users.authenticate("bob", b"new & better", ITER).is_ok());
    assert!(w.users.authenticate("bob", b"builder", ITER).is_err());
    assert_ne!(w.users.generation_of("bob"), Some(old_generation));

    // Other sessions are out; this browser got a fresh one that works.
    let old = w.get(&old_session);
    assert_eq!(old.outcome, Outcome::RedirectedToLogin);
    let fresh = changed
        .set_cookie("gatehouse_session")
        .expect("a new session");
    let page = w.get(fresh);
    assert_eq!(page.outcome, Outcome::Account(AccountOutcome::Page));
}

#[test]
fn a_wrong_current_password_changes_nothing_and_counts_as_a_failure() {
    let mut w = World::new();
    let generation = w.users.generation_of("bob");
    let (wrong, checked) = w.post_as(
        "bob",
        &[
            ("do", "password"),
            ("current", "guess"),
            ("new", "x"),
            ("confirm", "x"),
        ],
    );
    assert!(checked);
    assert_eq!(
        wrong.outcome,
        Outcome::Account(AccountOutcome::WrongPassword)
    );
    assert!(!wrong.users_changed);
    assert!(wrong.set_cookie("gatehouse_session").is_none());
    assert!(wrong.body().contains("current password is wrong"));
    assert!(w.users.authenticate("bob", b"builder", ITER).is_ok());
    assert_eq!(w.users.generation_of("bob"), generation);

    // Guessing is throttled like logging in.
    let mut throttled = false;
    for _ in 0..20 {
        let (a, _) = w.post_as(
            "bob",
            &[
                ("do", "password"),
                ("current", "guess"),
                ("new", "x"),
                ("confirm", "x"),
            ],
        );
        if a.outcome == Outcome::Throttled {
            assert_eq!(a.status(), 429);
            throttled = true;
            break;
        }
    }
    assert!(throttled, "twenty guesses and no throttle");
}

#[test]
fn a_confirmation_that_differs_is_refused_before_any_check() {
    let mut w = World::new();
    let (a, checked) = w.post_as(
        "bob",
        &[
            ("do", "password"),
            ("current", "builder"),
            ("new", "one"),
            ("confirm", "two"),
        ],
    );
    assert!(!checked);
    assert_eq!(
        a.outcome,
        Outcome::Account(AccountOutcome::PasswordMismatch)
    );
    assert!(!a.users_changed);
    assert!(a.body().contains("differ"));
    assert!(w.users.authenticate("bob", b"builder", ITER).is_ok());
    let (empty, _) = w.post_as(
        "bob",
        &[
            ("do", "password"),
            ("current", "builder"),
            ("new", ""),
            ("confirm", ""),
        ],
    );
    assert_eq!(empty.outcome, Outcome::Account(AccountOutcome::BadForm));
}

#[test]
fn with_user_editing_disabled_only_admins_change_their_password() {
    let mut w = World::new();
    w.config.enable_user_editing = false;
    let session = w.session("bob");
    let page = w.get(&session);
    assert!(page.body().contains("Password changes are turned off"));
    assert!(!page.body().contains("name=\"new\""));
    let (bob, checked) = w.post_as(
        "bob",
        &[
            ("do", "password"),
            ("current", "builder"),
            ("new", "mine"),
            ("confirm", "mine"),
        ],
    );
    assert!(!checked, "refused before any password check");
    assert_eq!(bob.status(), 403);
    assert_eq!(
        bob.outcome,
        Outcome::Account(AccountOutcome::PasswordRefused(
            UserError::UserEditingDisabled
        ))
    );
    assert!(!bob.users_changed);
    assert!(bob.body().contains("Password changes are turned off"));
    assert!(w.users.authenticate("bob", b"builder", ITER).is_ok());

    let (alice, checked) = w.post_as(
        "alice",
        &[
            ("do", "password"),
            ("current", "wonderland"),
            ("new", "looking glass"),
            ("confirm", "looking glass"),
        ],
    );
    assert!(checked);
    assert_eq!(
        alice.outcome,
        Outcome::Account(AccountOutcome::PasswordChanged)
    );
    assert!(alice.users_changed);
    assert!(
        w.users
            .authenticate("alice", b"looking glass", ITER)
            .is_ok()
    );
}

#[test]
fn a_change_made_meanwhile_voids_the_check() {
    let mut w = World::new();
    let session = w.session("bob");
    let csrf = w.get(&session).csrf();
    let body = encode(&[
        ("csrf", &csrf),
        ("do", "password"),
        ("current", "builder"),
        ("new", "mine"),
        ("confirm", "mine"),
    ]);
    let request = format!(
        "POST {PAGE} HTTP/1.1\r\nHost: gw\r\nOrigin: http://gw\r\n\
         Cookie: {session}; gatehouse_csrf={csrf}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut out = vec![0u8; OUT_LEN];
    let Decision::VerifyPassword(check) = w.step(request.as_bytes(), None, &mut out) else {
        panic!("no password check");
    };
    let ok = check.verify();
    assert!(ok);
    // While the check ran, an admin set bob's password (and so his generation).
    let admin_set = hash_password(b"from the admin", &[8; 16], ITER).unwrap();
    w.users.set_password("bob", admin_set).unwrap();
    let Decision::Respond(r) = w.step(request.as_bytes(), Some((&check, ok)), &mut out) else {
        panic!("no answer");
    };
    assert!(!r.users_changed);
    assert_ne!(r.outcome, Outcome::Account(AccountOutcome::PasswordChanged));
    assert!(w.users.authenticate("bob", b"from the admin", ITER).is_ok());
    assert!(w.users.authenticate("bob", b"mine", ITER).is_err());
}

#[test]
fn log_out_everywhere_revokes_every_session_this_one_included() {
    let mut w = World::new();
    let old_session = w.session("bob");
    let app = w
        .users
        .add_app_password("bob", "phone", &[4; 18], NOW)
        .unwrap();
    let (out, _) = w.post_as("bob", &[("do", "logout-everywhere")]);
    assert_eq!(out.status(), 303);
    assert_eq!(
        out.outcome,
        Outcome::Account(AccountOutcome::LoggedOutEverywhere)
    );
    assert!(out.users_changed);
    assert!(out.head().contains("\r\nLocation: /_gatehouse/login\r\n"));
    assert!(
        out.head()
            .contains("Set-Cookie: gatehouse_session=; Path=/; Max-Age=0")
    );
    assert_eq!(w.get(&old_session).outcome, Outcome::RedirectedToLogin);
    assert!(
        w.users.check_app_password("bob", app.as_bytes()).is_some(),
        "app passwords keep working"
    );
}

#[test]
fn csrf_failures_and_missing_sessions_are_refused_and_change_nothing() {
    let mut w = World::new();
    let session = w.session("bob");
    let csrf = w.get(&session).csrf();
    let create = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("do", "create".into()),
            ("label", "x".into()),
        ]
    };
    /// Cookie header, form fields, extra header lines.
    type Case<'a> = (String, Vec<(&'a str, String)>, &'a str);
    let cases: [Case<'_>; 6] = [
        // No token in the form.
        (
            format!("{session}; gatehouse_csrf={csrf}"),
            vec![("do", "create".into()), ("label", "x".into())],
            "Sec-Fetch-Site: same-origin\r\n",
        ),
        // No cookie.
        (
            session.clone(),
            create(&csrf),
            "Sec-Fetch-Site: same-origin\r\n",
        ),
        // A token that is not the cookie's.
        (
            format!("{session}; gatehouse_csrf={csrf}"),
            create(&format!("{}A", &csrf[..csrf.len() - 1])),
            "Sec-Fetch-Site: same-origin\r\n",
        ),
        // Both the same but not signed by gatehouse.
        (
            format!("{session}; gatehouse_csrf=BwcHBwcHBwcHBwcHBwcHBwAAAAAAAAAAAAAAAAAAAAA"),
            create("BwcHBwcHBwcHBwcHBwcHBwAAAAAAAAAAAAAAAAAAAAA"),
            "Sec-Fetch-Site: same-origin\r\n",
        ),
        // Right token, but posted from another site.
        (
            format!("{session}; gatehouse_csrf={csrf}"),
            create(&csrf),
            "Sec-Fetch-Site: cross-site\r\n",
        ),
        // Right token, but the request does not say which page it came from.
        (
            format!("{session}; gatehouse_csrf={csrf}"),
            create(&csrf),
            "",
        ),
    ];
    for (cookie, fields, extra) in cases {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (a, _) = w.post(&cookie, &fields, extra);
        assert_eq!(a.status(), 403, "{cookie} {fields:?}");
        assert_eq!(a.outcome, Outcome::Account(AccountOutcome::CsrfRejected));
        assert!(!a.users_changed);
        assert!(a.secret().is_none());
        assert!(a.body().contains("nothing was done"));
    }
    assert_eq!(w.users.app_passwords("bob").count(), 0);

    // A right token with no session.
    let fields = [("csrf", csrf.as_str()), ("do", "logout-everywhere")];
    let generation = w.users.generation_of("bob");
    let (a, _) = w.post(&format!("gatehouse_csrf={csrf}"), &fields, "");
    assert_eq!(a.outcome, Outcome::Account(AccountOutcome::NoSession));
    assert_eq!(a.status(), 302);
    assert!(!a.users_changed);
    assert_eq!(w.users.generation_of("bob"), generation);

    // Sane form, unknown action.
    let (a, _) = w.post(
        &format!("{session}; gatehouse_csrf={csrf}"),
        &[("csrf", &csrf), ("do", "delete-everything")],
        "Origin: http://gw\r\n",
    );
    assert_eq!(a.outcome, Outcome::Account(AccountOutcome::BadForm));
    assert!(!a.users_changed);
}

#[test]
fn a_post_is_read_whole_and_other_methods_are_refused() {
    let mut w = World::new();
    let session = w.session("bob");
    let head = format!(
        "POST {PAGE} HTTP/1.1\r\nHost: gw\r\nCookie: {session}\r\nContent-Length: 40\r\n\r\n"
    );
    let mut out = vec![0u8; OUT_LEN];
    match w.step(head.as_bytes(), None, &mut out) {
        Decision::ReadBody { total, .. } => assert_eq!(total, head.len() + 40),
        other => panic!("{other:?}"),
    }
    let (a, _) = w.answer(
        format!("DELETE {PAGE} HTTP/1.1\r\nHost: gw\r\nCookie: {session}\r\n\r\n").as_bytes(),
    );
    assert_eq!(a.outcome, Outcome::MethodNotAllowed);
}
