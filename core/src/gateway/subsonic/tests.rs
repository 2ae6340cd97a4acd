//! Subsonic paths through the whole decision, over byte-level requests.

use core::ops::{Deref, DerefMut};

use super::*;
use crate::gateway::test_world::{self, NOW};

const CLIENT: &str = "192.0.2.10:5000";

/// The shared test world, with an app password and a count of password checks.
struct World {
    base: test_world::World,
    /// alice's app password "phone".
    phone: String,
    /// Password checks the shell ran.
    checks: usize,
}

impl Deref for World {
    type Target = test_world::World;
    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl DerefMut for World {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.base
    }
}

impl World {
    fn new() -> Self {
        let mut base = test_world::World::new();
        let phone = base
            .users
            .add_app_password("alice", "phone", &[7; 18], NOW - 100)
            .unwrap()
            .to_string();
        World {
            base,
            phone,
            checks: 0,
        }
    }

    /// Decides, running any password check to the end like a shell would.
    fn decide(&mut self, bytes: &[u8], out: &mut [u8]) -> Decision {
        match self.base.step_at(CLIENT, bytes, NOW, None, out) {
            Decision::VerifyPassword(check) => {
                self.checks += 1;
                let ok = check.verify();
                self.base
                    .step_at(CLIENT, bytes, NOW, Some((&check, ok)), out)
            }
            other => other,
        }
    }

    fn get(&mut self, target: &str, out: &mut [u8]) -> Decision {
        let req = format!("GET {target} HTTP/1.1\r\nHost: music\r\n\r\n");
        self.decide(req.as_bytes(), out)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn forwarded(d: &Decision, out: &[u8]) -> String {
    match d {
        Decision::Forward(f) => String::from_utf8_lossy(&out[..f.head_len]).into_owned(),
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// The Subsonic error code of an answer, and its outcome.
fn subsonic_error(d: &Decision, out: &[u8]) -> (u16, Outcome) {
    let Decision::Respond(r) = d else {
        panic!("expected Respond, got {d:?}");
    };
    let text = String::from_utf8_lossy(&out[..r.len]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let code = text
        .split("code=\"")
        .nth(1)
        .or_else(|| text.split("\"code\":").nth(1))
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no error code in {text}"));
    (code, r.outcome)
}

#[test]
fn every_credential_form_reaches_the_app_as_the_user_without_its_secret() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let phone = w.phone.clone();
    let token = hex(&crate::subsonic::token(phone.as_bytes(), b"c19b2d"));
    for (query, secret) in [
        (format!("u=alice&p={phone}&v=1.16.1&c=app"), phone.clone()),
        (
            format!("u=alice&p=enc:{}&v=1.16.1&c=app", hex(phone.as_bytes())),
            hex(phone.as_bytes()),
        ),
        (
            format!("u=alice&t={token}&s=c19b2d&v=1.16.1&c=app"),
            token.clone(),
        ),
        (format!("apiKey={phone}&v=1.16.1&c=app"), phone.clone()),
    ] {
        for path in ["/rest/getAlbum.view", "/rest/getAlbum"] {
            let d = w.get(&format!("{path}?id=7&{query}"), &mut out);
            let head = forwarded(&d, &out);
            assert!(head.contains("\r\nRemote-User: alice\r\n"), "{head}");
            assert!(head.contains("\r\nRemote-Groups: admins\r\n"), "{head}");
            assert!(!head.contains(&secret), "secret forwarded: {head}");
            assert!(!head.contains("c19b2d"), "salt forwarded: {head}");
            assert!(head.contains("v=1.16.1&c=app"), "{head}");
            assert!(head.starts_with(&format!("GET {path}?id=7&")), "{head}");
        }
    }
    assert_eq!(w.checks, 0, "app passwords cost no password hash");
}

#[test]
fn the_login_password_works_as_p_once_hashed_then_from_the_cache() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.get("/rest/ping.view?u=bob&p=builder&v=1.16.1&c=app", &mut out);
    let head = forwarded(&d, &out);
    assert!(head.starts_with("GET /rest/ping.view?u=bob&v=1.16.1&c=app HTTP/1.1\r\n"));
    assert!(head.contains("\r\nRemote-User: bob\r\n"), "{head}");
    assert_eq!(w.checks, 1);
    let d = w.get("/rest/ping.view?u=bob&p=builder&v=1.16.1&c=app", &mut out);
    forwarded(&d, &out);
    assert_eq!(w.checks, 1, "the second request is a cache hit");

    let d = w.get("/rest/ping.view?u=bob&p=wrong&f=json", &mut out);
    assert_eq!(
        subsonic_error(&d, &out),
        (40, Outcome::SubsonicRefused(SubsonicRefusal::WrongPassword))
    );
    let d = w.get("/rest/ping.view?u=nobody&p=wrong", &mut out);
    assert_eq!(subsonic_error(&d, &out).0, 40);
}

#[test]
fn a_token_answer_does_not_tell_who_has_app_passwords() {
    // alice has an app password, bob and ghost (no such user) have none: a token that is
    // none of alice's gets the very answer a token for bob or ghost gets.
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let token = hex(&crate::subsonic::token(b"builder", b"abcdef"));
    let mut answers = Vec::new();
    for user in ["alice", "bob", "ghost"] {
        for f in ["", "&f=json"] {
            let d = w.get(
                &format!("/rest/ping.view?u={user}&t={token}&s=abcdef{f}"),
                &mut out,
            );
            let Decision::Respond(r) = &d else {
                panic!("{d:?}")
            };
            assert_eq!(subsonic_error(&d, &out).0, 40, "{user}{f}");
            answers.push((f, out[..r.len].to_vec()));
        }
    }
    for (f, answer) in &answers {
        let alice = &answers.iter().find(|(g, _)| g == f).unwrap().1;
        assert_eq!(answer, alice, "{}", String::from_utf8_lossy(answer));
    }
}

#[test]
fn refusals_are_subsonic_errors_with_their_codes() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let phone = w.phone.clone();
    let login_token = hex(&crate::subsonic::token(b"builder", b"abcdef"));
    for (query, code) in [
        ("v=1.16.1&c=app".to_string(), 10),
        ("u=alice&v=1.16.1&c=app".to_string(), 10),
        ("u=alice&t=00&v=1".to_string(), 10),
        (format!("u=bob&t={login_token}&s=abcdef"), 40),
        (format!("u=alice&t={login_token}&s=abcdef"), 40),
        ("apiKey=nope".to_string(), 44),
        (format!("apiKey={phone}&u=alice"), 43),
        (format!("u=alice&p={phone}&p={phone}"), 43),
    ] {
        for f in ["", "&f=json"] {
            let d = w.get(&format!("/rest/getArtists.view?{query}{f}"), &mut out);
            assert_eq!(subsonic_error(&d, &out).0, code, "{query}{f}");
            let Decision::Respond(r) = &d else { panic!() };
            let text = String::from_utf8_lossy(&out[..r.len]);
            if f.is_empty() {
                assert!(text.contains(
                    "<subsonic-response xmlns=\"http://subsonic.org/restapi\" status=\"failed\""
                ));
            } else {
                assert!(text.contains("{\"subsonic-response\":{\"status\":\"failed\""));
            }
        }
    }
    // A session cookie or Basic still works on Subsonic paths (a web player logged in).
    let token = w
        .keys
        .issue(w.users.table_id(), "bob", 1, NOW - 10, 3600)
        .unwrap();
    let req = format!(
        "GET /rest/stream.view?id=1&u=bob&t=x&s=y HTTP/1.1\r\nHost: music\r\nSec-Fetch-Site: same-origin\r\nCookie: gatehouse_session={token}\r\n\r\n"
    );
    let head = forwarded(&w.decide(req.as_bytes(), &mut out), &out);
    assert!(head.contains("\r\nRemote-User: bob\r\n"), "{head}");
    assert!(
        head.starts_with("GET /rest/stream.view?id=1&u=bob HTTP/1.1"),
        "{head}"
    );
}

/// A link on another site to `/rest/deletePlaylist` carries the `SameSite=Lax` cookie of a
/// signed-in admin: the cookie counts only when the browser says the request is same-origin;
/// otherwise the request needs Subsonic credentials like any other.
#[test]
fn a_session_cookie_counts_on_subsonic_paths_only_from_this_site() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let generation = w.users.generation_of("alice").unwrap();
    let token = w
        .keys
        .issue(w.users.table_id(), "alice", generation, NOW - 10, 3600)
        .unwrap();
    let cookie = format!("Cookie: gatehouse_session={token}\r\n");
    let request = |extra: &str| {
        format!(
            "GET /rest/deletePlaylist.view?id=7&f=json HTTP/1.1\r\nHost: music\r\n{extra}{cookie}\r\n"
        )
    };
    for cross in [
        "",
        "Sec-Fetch-Site: cross-site\r\n",
        "Sec-Fetch-Site: same-site\r\n",
        "Origin: http://evil.example\r\n",
        "Origin: null\r\n",
        "Sec-Fetch-Site: cross-site\r\nOrigin: http://music\r\n",
    ] {
        let d = w.decide(request(cross).as_bytes(), &mut out);
        // Subsonic's "required parameter is missing": no credentials but the cookie.
        assert_eq!(subsonic_error(&d, &out).0, 10, "{cross:?}");
    }
    for same in [
        "Sec-Fetch-Site: same-origin\r\n",
        "Sec-Fetch-Site: none\r\n",
        "Origin: http://music\r\n",
    ] {
        let head = forwarded(&w.decide(request(same).as_bytes(), &mut out), &out);
        assert!(
            head.contains("\r\nRemote-User: alice\r\n"),
            "{same:?}: {head}"
        );
    }
}

#[test]
fn extensions_need_no_login_and_token_info_names_the_key_owner() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    for path in [
        "/rest/getOpenSubsonicExtensions",
        "/rest/getOpenSubsonicExtensions.view",
    ] {
        let d = w.get(&format!("{path}?f=json"), &mut out);
        let Decision::Respond(r) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(r.outcome, Outcome::SubsonicAnswered);
        let text = String::from_utf8_lossy(&out[..r.len]);
        assert!(
            text.contains("{\"name\":\"apiKeyAuthentication\",\"versions\":[1]}"),
            "{text}"
        );
    }
    let phone = w.phone.clone();
    let d = w.get(
        &format!("/rest/tokenInfo.view?apiKey={phone}&f=json"),
        &mut out,
    );
    let Decision::Respond(r) = &d else {
        panic!("{d:?}")
    };
    let text = String::from_utf8_lossy(&out[..r.len]);
    assert!(
        text.ends_with(",\"tokenInfo\":{\"username\":\"alice\"}}}"),
        "{text}"
    );
    let d = w.get("/rest/tokenInfo.view?apiKey=nope", &mut out);
    assert_eq!(subsonic_error(&d, &out).0, 44);
}

#[test]
fn form_bodies_are_read_checked_and_forwarded_without_secrets() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let phone = w.phone.clone();
    let body = format!("u=alice&p={phone}&v=1.16.1&c=app&id=7");
    let head = format!(
        "POST /rest/getSong.view HTTP/1.1\r\nHost: music\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The head alone: gatehouse asks for the body.
    let d = w.decide(head.as_bytes(), &mut out);
    assert!(
        matches!(d, Decision::ReadBody { total, .. } if total == head.len() + body.len()),
        "{d:?}"
    );
    let request = format!("{head}{body}");
    let d = w.decide(request.as_bytes(), &mut out);
    let Decision::Forward(f) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(f.consumed, request.len());
    assert_eq!(f.body, BodyFraming::None);
    let sent = String::from_utf8_lossy(&out[..f.head_len]).into_owned();
    let (sent_head, sent_body) = sent.split_once("\r\n\r\n").unwrap();
    assert_eq!(sent_body, "u=alice&v=1.16.1&c=app&id=7");
    assert!(
        sent_head.contains(&format!("\r\nContent-Length: {}", sent_body.len())),
        "{sent_head}"
    );
    assert_eq!(sent_head.matches("Content-Length").count(), 1);
    assert!(sent_head.contains("\r\nRemote-User: alice"), "{sent_head}");
    assert!(!sent.contains(&phone));

    // Credentials in the query, an unrelated form body: the body goes through untouched.
    let body = "id=7&comment=a+b";
    let request = format!(
        "POST /rest/scrobble.view?apiKey={phone} HTTP/1.1\r\nHost: music\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let d = w.decide(request.as_bytes(), &mut out);
    let Decision::Forward(f) = &d else {
        panic!("{d:?}")
    };
    let sent = String::from_utf8_lossy(&out[..f.head_len]).into_owned();
    assert!(sent.ends_with("\r\n\r\nid=7&comment=a+b"), "{sent}");
    assert!(
        sent.starts_with("POST /rest/scrobble.view HTTP/1.1\r\n"),
        "{sent}"
    );
}

/// A form body is a form body whatever the method: the secrets in a `PUT` or `PATCH` body are
/// read and stripped as in a `POST`'s, never passed to the app.
#[test]
fn put_and_patch_form_bodies_lose_their_secrets_like_post() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let phone = w.phone.clone();
    for method in ["PUT", "PATCH"] {
        let body = format!("u=alice&p={phone}&id=7");
        let request = format!(
            "{method} /rest/updatePlaylist.view HTTP/1.1\r\nHost: music\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let d = w.decide(request.as_bytes(), &mut out);
        let Decision::Forward(f) = &d else {
            panic!("{method}: {d:?}")
        };
        assert_eq!(f.consumed, request.len(), "{method}");
        let sent = String::from_utf8_lossy(&out[..f.head_len]).into_owned();
        assert!(sent.ends_with("\r\n\r\nu=alice&id=7"), "{method}: {sent}");
        assert!(sent.contains("\r\nRemote-User: alice"), "{method}: {sent}");
        assert!(!sent.contains(&phone), "{method}: {sent}");
    }
}

#[test]
fn basic_accepts_app_passwords_without_hashing() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    use base64ct::Encoding;
    let phone = w.phone.clone();
    let mut b64 = [0u8; 128];
    let cred = base64ct::Base64::encode(format!("alice:{phone}").as_bytes(), &mut b64).unwrap();
    let req = format!("GET /app/ HTTP/1.1\r\nHost: music\r\nAuthorization: Basic {cred}\r\n\r\n");
    let head = forwarded(&w.decide(req.as_bytes(), &mut out), &out);
    assert!(head.contains("\r\nRemote-User: alice\r\n"), "{head}");
    assert_eq!(w.checks, 0);
    assert_eq!(
        w.users.app_passwords("alice").next().unwrap().last_used,
        Some(NOW)
    );
}

#[test]
fn pass_through_forwards_with_no_identity_and_the_parameters_as_sent() {
    let mut w = World::new();
    w.config.subsonic = SubsonicMode::PassThrough;
    let mut out = [0u8; OUT_LEN];
    let req = b"GET /rest/ping.view?u=bob&p=builder HTTP/1.1\r\nHost: music\r\nRemote-User: alice\r\nremote_user: alice\r\n\r\n";
    let head = forwarded(&w.decide(req, &mut out), &out);
    assert!(
        head.starts_with("GET /rest/ping.view?u=bob&p=builder HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(!head.to_ascii_lowercase().contains("remote"), "{head}");
}

#[test]
fn content_length_is_rewritten_in_place() {
    let mut buf = [0u8; 128];
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234\r\nRemote-User: x\r\n\r\n";
    buf[..head.len()].copy_from_slice(head);
    let n = set_content_length(&mut buf, head.len(), 7).unwrap();
    assert_eq!(
        &buf[..n],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nRemote-User: x\r\n\r\n"
    );
    let n2 = set_content_length(&mut buf, n, 123_456).unwrap();
    assert_eq!(
        &buf[..n2],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 123456\r\nRemote-User: x\r\n\r\n"
    );
    assert_eq!(set_content_length(&mut buf, 10, 1), None);
}

#[test]
fn the_first_use_of_an_app_password_asks_the_shell_to_save_the_table() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let phone = w.phone.clone();
    let target = format!("/rest/ping.view?apiKey={phone}");
    let Decision::Forward(first) = w.get(&target, &mut out) else {
        panic!("not forwarded")
    };
    assert!(first.users_changed);
    let Decision::Forward(again) = w.get(&target, &mut out) else {
        panic!("not forwarded")
    };
    assert!(
        !again.users_changed,
        "within the granularity: nothing new to save"
    );
}

#[test]
fn a_wrong_basic_password_beside_p_costs_one_check_and_is_refused() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let basic = "YWxpY2U6bm90IGl0"; // alice:not it
    let req = format!(
        "GET /rest/ping.view?u=alice&p=wonderland&v=1.16.1&c=x&f=json HTTP/1.1\r\n\
         Host: music\r\nAuthorization: Basic {basic}\r\n\r\n"
    );
    let d = w.decide(req.as_bytes(), &mut out);
    assert!(
        !matches!(d, Decision::VerifyPassword(_)),
        "finish asked for a second password check"
    );
    assert_eq!(w.checks, 1);
    assert_eq!(subsonic_error(&d, &out).0, 40);
}

#[test]
fn token_info_answered_by_gatehouse_still_asks_to_save_a_first_use() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let phone = w.phone.clone();
    let target = format!("/rest/tokenInfo.view?apiKey={phone}&f=json");
    let Decision::Respond(first) = w.get(&target, &mut out) else {
        panic!("not answered")
    };
    assert_eq!(first.outcome, Outcome::SubsonicAnswered);
    assert!(first.users_changed, "the first use moved last_used");
    let Decision::Respond(again) = w.get(&target, &mut out) else {
        panic!("not answered")
    };
    assert!(!again.users_changed);
}
