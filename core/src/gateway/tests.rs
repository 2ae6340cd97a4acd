//! The decision, end to end over byte-level requests.

use super::test_world::{ITER, NOW, World};
use super::*;
use crate::http::MAX_HEAD_LEN;
use crate::password::hash_password;
use crate::throttle::ThrottlePolicy;
use crate::users::UserTable;
use base64ct::Encoding;

impl World {
    /// Decides, running any password check to the end like a shell would.
    fn decide_at(&mut self, peer: &str, bytes: &[u8], now: u64, out: &mut [u8]) -> Decision {
        match self.step_at(peer, bytes, now, None, out) {
            Decision::VerifyPassword(check) => {
                let ok = check.verify();
                let again = self.step_at(peer, bytes, now, Some((&check, ok)), out);
                assert!(
                    !matches!(again, Decision::VerifyPassword(_)),
                    "finish asked for the same check again"
                );
                again
            }
            other => other,
        }
    }

    /// One step as a shell takes it: `decide`, or with `finished` the `finish` of a check
    /// (whose verification the shell ran in between, outside the lock).
    fn step(
        &mut self,
        peer: &str,
        bytes: &[u8],
        finished: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        self.step_at(peer, bytes, NOW, finished, out)
    }

    fn decide(&mut self, peer: &str, bytes: &[u8], out: &mut [u8]) -> Decision {
        self.decide_at(peer, bytes, NOW, out)
    }

    fn session_cookie(&self, name: &str) -> String {
        let user = self.users.find(name).unwrap();
        let token = self
            .keys
            .issue(self.users.table_id(), name, user.generation, NOW - 10, 3600)
            .unwrap();
        format!("gatehouse_session={token}")
    }
}

const CLIENT: &str = "192.0.2.10:5000";
const PROXY: &str = "10.1.2.3:5000";

fn text(out: &[u8], len: usize) -> String {
    String::from_utf8_lossy(&out[..len]).into_owned()
}

fn forwarded(d: &Decision, out: &[u8]) -> String {
    match d {
        Decision::Forward(f) => text(out, f.head_len),
        other => panic!("expected Forward, got {other:?}"),
    }
}

fn responded(d: &Decision, out: &[u8]) -> (String, Outcome, bool) {
    match d {
        Decision::Respond(r) => (text(out, r.len), r.outcome, r.close),
        other => panic!("expected Respond, got {other:?}"),
    }
}

fn header<'t>(response: &'t str, name: &str) -> Option<&'t str> {
    response
        .split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[test]
fn anonymous_browsers_go_to_login_and_apis_get_a_challenge() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        CLIENT,
        b"GET /app/../app/x?y=1 HTTP/1.1\r\nHost: music\r\nAccept: text/html,*/*;q=0.8\r\n\r\n",
        &mut out,
    );
    let (resp, outcome, close) = responded(&d, &out);
    assert_eq!(outcome, Outcome::RedirectedToLogin);
    assert!(!close);
    assert!(resp.starts_with("HTTP/1.1 302 Found\r\n"), "{resp}");
    assert_eq!(
        header(&resp, "Location"),
        Some("/_gatehouse/login?return=%2Fapp%2Fx%3Fy%3D1")
    );

    // (Subsonic paths answer with Subsonic errors instead: see `gateway::subsonic`.)
    let d = w.decide(
        CLIENT,
        b"GET /api/ping HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::Unauthorized);
    assert!(resp.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    assert!(
        header(&resp, "WWW-Authenticate")
            .unwrap()
            .starts_with("Basic realm=\"gatehouse\"")
    );

    // A POST with an unread body cannot keep the connection in step: closed.
    let d = w.decide(
        CLIENT,
        b"POST /app HTTP/1.1\r\nHost: music\r\nContent-Length: 3\r\n\r\nabc",
        &mut out,
    );
    assert!(responded(&d, &out).2);
}

#[test]
fn public_paths_pass_without_identity_and_without_spoofs() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        CLIENT,
        b"GET /share/abc HTTP/1.1\r\nHost: music\r\nRemote-User: alice\r\nremote_user: alice\r\n\r\n",
        &mut out,
    );
    let head = forwarded(&d, &out);
    assert!(!head.to_ascii_lowercase().contains("remote"), "{head}");
    let Decision::Forward(f) = d else {
        unreachable!()
    };
    assert_eq!(f.class, PathClass::Public);
    assert_eq!(f.user, None);

    // `/share/../app/` is the protected `/app/`.
    let d = w.decide(
        CLIENT,
        b"GET /share/../app/ HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);
    let d = w.decide(
        CLIENT,
        b"GET /share/%2e%2e/app/ HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);
}

#[test]
fn trusted_sources_name_users_and_provision_them() {
    let mut w = World {
        users: UserTable::new(),
        ..World::new()
    };
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        PROXY,
        b"GET /app HTTP/1.1\r\nHost: music\r\nRemote-User: carol\r\n\r\n",
        &mut out,
    );
    let head = forwarded(&d, &out);
    assert!(head.contains("\r\nRemote-User: carol\r\n"), "{head}");
    assert!(
        head.contains("\r\nRemote-Groups: admins\r\n"),
        "first user is admin: {head}"
    );
    let Decision::Forward(f) = d else {
        unreachable!()
    };
    assert!(f.users_changed);
    assert_eq!(f.user.as_deref(), Some("carol"));

    let d = w.decide(
        PROXY,
        b"GET /app HTTP/1.1\r\nHost: music\r\nremote-user: Dave\r\n\r\n",
        &mut out,
    );
    let head = forwarded(&d, &out);
    assert!(head.contains("\r\nRemote-User: Dave\r\n"), "{head}");
    assert!(
        !head.contains("Remote-Groups"),
        "later users are not admin: {head}"
    );
    assert_eq!(head.matches("Remote-User").count(), 1, "{head}");

    // Known user: not changed again.
    let d = w.decide(
        PROXY,
        b"GET /app HTTP/1.1\r\nHost: music\r\nRemote-User: CAROL\r\n\r\n",
        &mut out,
    );
    let Decision::Forward(f) = d else { panic!() };
    assert!(!f.users_changed);
    assert_eq!(f.user.as_deref(), Some("carol"));

    // Repeated or empty header: not an identity; falls back to login.
    for bad in [
        &b"GET /app HTTP/1.1\r\nHost: music\r\nRemote-User: carol\r\nRemote_User: dave\r\n\r\n"[..],
        b"GET /app HTTP/1.1\r\nHost: music\r\nRemote-User:  \r\n\r\n",
    ] {
        let d = w.decide(PROXY, bad, &mut out);
        assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);
    }
}

#[test]
fn trusted_names_no_user_can_have_fall_back_to_login() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let bob = w.session_cookie("bob");
    for name in ["alice\u{2003}", "\u{a0}alice", "ali\u{85}ce"] {
        let req = format!("GET /app/ HTTP/1.1\r\nHost: music\r\nRemote-User: {name}\r\n\r\n");
        let d = w.decide(PROXY, req.as_bytes(), &mut out);
        assert_eq!(responded(&d, &out).1, Outcome::Unauthorized, "{name:?}");
        let req = format!(
            "GET /app/ HTTP/1.1\r\nHost: music\r\nRemote-User: {name}\r\nCookie: {bob}\r\n\r\n"
        );
        let d = w.decide(PROXY, req.as_bytes(), &mut out);
        assert!(
            forwarded(&d, &out).contains("Remote-User: bob\r\n"),
            "{name:?}"
        );
    }
    assert_eq!(w.users.len(), 2, "nobody was provisioned");
}

#[test]
fn untrusted_peers_cannot_name_themselves() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    for peer in [CLIENT, "11.0.0.1:1", "[::ffff:192.0.2.1]:1"] {
        let d = w.decide(
            peer,
            b"GET /app HTTP/1.1\r\nHost: music\r\nRemote-User: alice\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
            &mut out,
        );
        assert_eq!(responded(&d, &out).1, Outcome::Unauthorized, "{peer}");
    }
    // A UNIX-socket peer is trusted through `@`.
    let d = w.decide(
        "@",
        b"GET /app HTTP/1.1\r\nHost: music\r\nRemote-User: alice\r\n\r\n",
        &mut out,
    );
    assert!(forwarded(&d, &out).contains("Remote-User: alice\r\n"));
}

#[test]
fn sessions_authenticate_and_never_reach_the_app() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cookie = w.session_cookie("bob");
    let req = format!(
        "GET /app HTTP/1.1\r\nHost: music\r\nCookie: theme=dark; {cookie}\r\nRemote-User: alice\r\n\r\n"
    );
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    let head = forwarded(&d, &out);
    assert!(head.contains("\r\nRemote-User: bob\r\n"), "{head}");
    assert!(head.contains("\r\nCookie: theme=dark\r\n"), "{head}");
    assert!(!head.contains("gatehouse_session"), "{head}");
    assert!(!head.contains("alice"), "{head}");

    // Expired: anonymous again.
    let d = w.decide_at(CLIENT, req.as_bytes(), NOW + 7200, &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);

    // Revoked by a password change.
    w.users.bump_generation("bob").unwrap();
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);
}

#[test]
fn a_client_authorization_reaches_the_app_only_where_the_app_checks_it() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    // A browser's cached Basic password (alice's), an app password, a bearer token.
    let auths = [
        "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n",
        "Authorization: Basic Ym9iOmFwcC1wYXNzd29yZA==\r\n",
        "Authorization: Bearer secret\r\nProxy-Authorization: Basic eDp5\r\n",
    ];
    let cookie = w.session_cookie("bob");
    for auth in auths {
        let requests = [
            // A public path: anyone.
            (
                CLIENT,
                format!("GET /share/x HTTP/1.1\r\nHost: music\r\n{auth}\r\n"),
            ),
            // A session user.
            (
                CLIENT,
                format!("GET /app/ HTTP/1.1\r\nHost: music\r\nCookie: {cookie}\r\n{auth}\r\n"),
            ),
            // A user named by a trusted proxy.
            (
                PROXY,
                format!("GET /app/ HTTP/1.1\r\nHost: music\r\nRemote-User: bob\r\n{auth}\r\n"),
            ),
        ];
        for (peer, req) in requests {
            let d = w.decide(peer, req.as_bytes(), &mut out);
            let head = forwarded(&d, &out).to_ascii_lowercase();
            assert!(!head.contains("authorization"), "{req}\n{head}");
        }
    }

    // Authenticated with it: stripped, unless the deployment keeps it.
    let req = basic("alice", "wonderland");
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    assert!(!forwarded(&d, &out).contains("Authorization"));
    w.config.strip_authorization = false;
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    assert!(forwarded(&d, &out).contains("\r\nAuthorization: Basic "));
    // ... which keeps nothing for anyone else.
    let req = format!(
        "GET /app/ HTTP/1.1\r\nHost: music\r\nCookie: {cookie}\r\n{}\r\n",
        auths[0]
    );
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    assert!(!forwarded(&d, &out).contains("Authorization"));

    // The app checks Subsonic clients itself: their Basic credentials reach it.
    w.config.strip_authorization = true;
    w.config.subsonic = SubsonicMode::PassThrough;
    let req = format!(
        "GET /rest/ping.view HTTP/1.1\r\nHost: music\r\n{}Proxy-Authorization: Basic eDp5\r\n\r\n",
        auths[1]
    );
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    let head = forwarded(&d, &out);
    assert!(
        head.contains("\r\nAuthorization: Basic Ym9iOmFwcC1wYXNzd29yZA==\r\n"),
        "{head}"
    );
    assert!(!head.contains("Proxy-Authorization"), "{head}");
}

#[test]
fn sessions_near_expiry_are_renewed() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cookie = w.session_cookie("bob");
    let req = format!("GET /app HTTP/1.1\r\nHost: music\r\nCookie: {cookie}\r\n\r\n");
    let d = w.decide_at(CLIENT, req.as_bytes(), NOW + 3000, &mut out);
    let Decision::Forward(f) = d else {
        panic!("{d:?}")
    };
    let set = f.set_cookie.expect("renewed");
    assert!(set.starts_with(b"gatehouse_session="));
    assert!(set.windows(8).any(|w| w == b"HttpOnly"));
}

/// Two rotations with one request between: the request near the old token's expiry is
/// let in but gets no token under the new key, so the second rotation ends the session.
#[test]
fn a_session_of_the_previous_key_is_not_carried_over_to_the_new_one() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cookie = w.session_cookie("bob");
    let req = format!("GET /app HTTP/1.1\r\nHost: music\r\nCookie: {cookie}\r\n\r\n");
    w.keys
        .rotate(crate::session::SessionKey::from_bytes([6; 32]));
    let d = w.decide_at(CLIENT, req.as_bytes(), NOW + 3000, &mut out);
    let Decision::Forward(f) = d else {
        panic!("{d:?}")
    };
    assert!(f.set_cookie.is_none(), "renewed under the new key");
    w.keys
        .rotate(crate::session::SessionKey::from_bytes([7; 32]));
    let d = w.decide_at(CLIENT, req.as_bytes(), NOW + 3000, &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);
}

/// A sibling host plants its own valid session (`Path=/rest/`, so it comes first) next to
/// the victim's: neither is believed, the request is anonymous.
#[test]
fn two_session_cookies_are_no_session_even_when_both_are_valid() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let planted = w.session_cookie("bob");
    let victim = w.session_cookie("alice");
    for cookies in [
        format!("Cookie: {planted}; {victim}\r\n"),
        format!("Cookie: {planted}\r\nCookie: {victim}\r\n"),
    ] {
        let req = format!("GET /app HTTP/1.1\r\nHost: music\r\n{cookies}\r\n");
        let d = w.decide(CLIENT, req.as_bytes(), &mut out);
        assert_eq!(responded(&d, &out).1, Outcome::Unauthorized, "{cookies}");
    }
    let req = format!("GET /app HTTP/1.1\r\nHost: music\r\nCookie: {victim}\r\n\r\n");
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    assert!(forwarded(&d, &out).contains("Remote-User: alice\r\n"));
}

#[test]
fn basic_credentials_are_checked_once_then_cached() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    // alice:wonderland
    let req = b"GET /rest/ping.view HTTP/1.1\r\nHost: music\r\nAuthorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n\r\n";
    let d = w.decide(CLIENT, req, &mut out);
    let head = forwarded(&d, &out);
    assert!(head.contains("\r\nRemote-User: alice\r\n"), "{head}");
    assert!(
        !head.contains("Authorization"),
        "consumed credentials are stripped: {head}"
    );

    // The second request is a cache hit: decided without a password check.
    let random = [0u8; RANDOM_LEN];
    let ex = Exchange {
        peer: CLIENT.parse().unwrap(),
        tls: false,
        bytes: req,
        now: NOW + 1,
        time_known: true,
        random: &random,
    };
    let keys = w.keys.clone();
    let trusted = w.trusted.clone();
    let proxies = w.proxies.clone();
    let gw = Gateway {
        config: GatewayConfig {
            password_iterations: ITER,
            ..GatewayConfig::DEFAULT
        },
        trusted: &trusted,
        proxies: &proxies,
        keys: &keys,
    };
    let mut shared = Shared {
        users: &mut w.users,
        throttle: &mut w.throttle,
        credentials: &mut w.cache,
        pending: &mut w.pending,
    };
    let d = gw.decide(&ex, &mut shared, &mut out);
    assert!(matches!(d, Decision::Forward(_)), "{d:?}");
}

#[test]
fn wrong_basic_credentials_fail_then_throttle() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    // alice:wrong
    let req = b"GET /app HTTP/1.1\r\nHost: music\r\nAuthorization: Basic YWxpY2U6d3Jvbmc=\r\n\r\n";
    let mut outcomes = Vec::new();
    for _ in 0..15 {
        let d = w.decide(CLIENT, req, &mut out);
        outcomes.push(responded(&d, &out).1);
    }
    assert_eq!(outcomes[0], Outcome::BasicFailed);
    assert_eq!(outcomes.last(), Some(&Outcome::Throttled));
    let d = w.decide(CLIENT, req, &mut out);
    let (resp, _, _) = responded(&d, &out);
    assert!(resp.starts_with("HTTP/1.1 429 "), "{resp}");
    assert!(header(&resp, "Retry-After").is_some());
    // Another network is not locked out of the right password.
    let good = b"GET /app HTTP/1.1\r\nHost: music\r\nAuthorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n\r\n";
    let d = w.decide("198.51.100.1:1", good, &mut out);
    assert!(forwarded(&d, &out).contains("Remote-User: alice"));
}

fn basic(user: &str, password: &str) -> String {
    let mut b = [0u8; 256];
    let cred = base64ct::Base64::encode(format!("{user}:{password}").as_bytes(), &mut b).unwrap();
    format!("GET /app/ HTTP/1.1\r\nHost: music\r\nAuthorization: Basic {cred}\r\n\r\n")
}

#[test]
fn concurrent_guesses_are_bounded_by_the_throttle() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    // A client with many requests in flight: every check is handed out before any result
    // comes back, and none is ever finished.
    let mut in_flight = Vec::new();
    let mut throttled = 0;
    for i in 0..200 {
        let req = basic("alice", &format!("guess{i}"));
        match w.step(CLIENT, req.as_bytes(), None, &mut out) {
            Decision::VerifyPassword(c) => in_flight.push(c),
            d => {
                assert_eq!(responded(&d, &out).1, Outcome::Throttled);
                throttled += 1;
            }
        }
        // Checks that finish keep the cap free: only the throttle limits this client.
        if in_flight.len() == MAX_PENDING_CHECKS {
            for c in in_flight.drain(..) {
                let d = w.step(CLIENT, req.as_bytes(), Some((&c, false)), &mut out);
                assert_eq!(responded(&d, &out).1, Outcome::BasicFailed);
            }
        }
    }
    // The guesses let through are those a client gets one after the other: the name is
    // guarded after its burst of failures.
    let checked = 200 - throttled;
    assert_eq!(checked, ThrottlePolicy::DEFAULT.user_burst as usize);
}

#[test]
fn password_checks_in_flight_are_capped_for_the_whole_gateway() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let mut in_flight = Vec::new();
    // Clients from many networks, each well within its own throttle burst, each trying its
    // own name (copies of one guess wait for it instead; see the next test).
    for i in 0..MAX_PENDING_CHECKS {
        let peer = format!("198.51.100.{i}:1");
        let req = basic(&format!("user{i}"), "guess");
        match w.step(&peer, req.as_bytes(), None, &mut out) {
            Decision::VerifyPassword(c) => in_flight.push(c),
            other => panic!("{other:?}"),
        }
    }
    let req = basic("someone", "guess");
    let d = w.step("203.0.113.1:1", req.as_bytes(), None, &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::PasswordChecksBusy);
    assert!(resp.starts_with("HTTP/1.1 503 "), "{resp}");
    assert_eq!(header(&resp, "Retry-After"), Some("1"));
    // A finished check gives its place back.
    let c = in_flight.pop().unwrap();
    let ok = c.verify();
    let last = MAX_PENDING_CHECKS - 1;
    let req_last = basic(&format!("user{last}"), "guess");
    w.step(
        &format!("198.51.100.{last}:1"),
        req_last.as_bytes(),
        Some((&c, ok)),
        &mut out,
    );
    let d = w.step("203.0.113.1:1", req.as_bytes(), None, &mut out);
    assert!(matches!(d, Decision::VerifyPassword(_)), "{d:?}");
}

#[test]
fn the_same_credential_on_many_connections_at_once_is_checked_once() {
    // A browser or a music app opens several connections with the same Basic credentials
    // before the first check finishes (a cold cache): more than the cap on checks in flight
    // and more than the name's burst of failures.
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let good = basic("alice", "wonderland");
    let Decision::VerifyPassword(first) = w.step(CLIENT, good.as_bytes(), None, &mut out) else {
        panic!("no check handed out");
    };
    let copies = MAX_PENDING_CHECKS * 4;
    assert!(copies > ThrottlePolicy::DEFAULT.user_burst as usize);
    for _ in 0..copies {
        let d = w.step(CLIENT, good.as_bytes(), None, &mut out);
        assert!(
            matches!(d, Decision::WaitForCheck),
            "{:?}",
            responded(&d, &out)
        );
    }
    // The copies took no place: another credential is still checked at once.
    let other = basic("bob", "builder");
    assert!(matches!(
        w.step("198.51.100.9:1", other.as_bytes(), None, &mut out),
        Decision::VerifyPassword(_)
    ));
    let ok = first.verify();
    let d = w.step(CLIENT, good.as_bytes(), Some((&first, ok)), &mut out);
    assert!(forwarded(&d, &out).contains("Remote-User: alice"));
    // Asked again once the check finished, every copy is answered by the cache: no check.
    for _ in 0..copies {
        let d = w.step(CLIENT, good.as_bytes(), None, &mut out);
        assert!(forwarded(&d, &out).contains("Remote-User: alice"));
    }

    // The same wrong guess in flight: the copies wait too, and are charged nothing while
    // they wait; once it failed, a copy asked again is checked (and charged) like a guess in a
    // row, and the client can still try another password.
    let wrong = basic("alice", "not-it");
    let Decision::VerifyPassword(first) = w.step(CLIENT, wrong.as_bytes(), None, &mut out) else {
        panic!("no check handed out");
    };
    for _ in 0..copies {
        let d = w.step(CLIENT, wrong.as_bytes(), None, &mut out);
        assert!(
            matches!(d, Decision::WaitForCheck),
            "{:?}",
            responded(&d, &out)
        );
    }
    let ok = first.verify();
    let d = w.step(CLIENT, wrong.as_bytes(), Some((&first, ok)), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::BasicFailed);
    let d = w.decide(CLIENT, wrong.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::BasicFailed);
    let another = basic("alice", "second-try");
    assert!(matches!(
        w.step(CLIENT, another.as_bytes(), None, &mut out),
        Decision::VerifyPassword(_)
    ));
}

#[test]
fn a_right_password_does_not_use_up_the_throttle() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let good = basic("alice", "wonderland");
    for _ in 0..30 {
        // Cleared each time so that every request is verified again.
        w.cache = CredentialCache::new(&[9; 32], 300);
        let d = w.decide(CLIENT, good.as_bytes(), &mut out);
        assert!(forwarded(&d, &out).contains("Remote-User: alice"));
    }
}

#[test]
fn xff_with_port_does_not_merge_all_clients_into_one_bucket() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let behind =
        |xff: &str, req: &str| req.replacen("\r\n", &format!("\r\nX-Forwarded-For: {xff}\r\n"), 1);
    // One client behind the trusted proxy fails again and again…
    for i in 0..30 {
        let req = behind("198.51.100.7:4711", &basic(&format!("junk{i}"), "junk"));
        w.decide(PROXY, req.as_bytes(), &mut out);
    }
    let req = behind("198.51.100.7:4711", &basic("bob", "builder"));
    let d = w.decide(PROXY, req.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Throttled);
    // …while another client behind the same proxy is not locked out with it.
    for other in ["203.0.113.9:5555", "[2001:db8::9]:5555", "203.0.113.10"] {
        let req = behind(other, &basic("bob", "builder"));
        let d = w.decide(PROXY, req.as_bytes(), &mut out);
        assert!(forwarded(&d, &out).contains("Remote-User: bob"), "{other}");
    }
}

#[test]
fn password_change_during_basic_check_does_not_let_old_password_in() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let req = basic("alice", "wonderland");
    let Decision::VerifyPassword(check) = w.step(CLIENT, req.as_bytes(), None, &mut out) else {
        panic!("expected a password check");
    };
    // While the check runs outside the lock, the password is changed.
    w.users
        .set_password("alice", hash_password(b"new", &[3; 16], ITER).unwrap())
        .unwrap();
    let ok = check.verify();
    assert!(ok, "the old hash still matches the old password");
    let d = w.step(CLIENT, req.as_bytes(), Some((&check, ok)), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::BasicFailed);
    // Nor was it cached for the next request: that one is checked against the new hash.
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::BasicFailed);
}

fn csrf_from(resp: &str) -> (String, String) {
    let set = header(resp, "Set-Cookie").expect("csrf cookie");
    let token = set
        .strip_prefix("gatehouse_csrf=")
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_owned();
    let field = resp
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    (token, field)
}

fn login_post(token: &str, field: &str, user: &str, password: &str, extra: &str) -> String {
    let body = format!("csrf={field}&return=%2Fapp%2F%3Fx%3D1&username={user}&password={password}");
    format!(
        "POST /_gatehouse/login HTTP/1.1\r\nHost: music\r\nOrigin: http://music\r\nContent-Type: application/x-www-form-urlencoded\r\nCookie: gatehouse_csrf={token}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn the_login_form_issues_a_session() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/login?return=%2Fapp%2F%3Fx%3D1 HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (page, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::LoginPage);
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(
        page.contains("name=\"return\" value=\"/app/?x=1\""),
        "{page}"
    );
    assert!(header(&page, "Content-Security-Policy").is_some());
    let (token, field) = csrf_from(&page);
    assert_eq!(token, field);

    let post = login_post(
        &token,
        &field,
        "alice",
        "wonderland",
        "Sec-Fetch-Site: same-origin\r\n",
    );
    let d = w.decide(CLIENT, post.as_bytes(), &mut out);
    let (resp, outcome, close) = responded(&d, &out);
    assert_eq!(outcome, Outcome::LoggedIn, "{resp}");
    assert!(!close);
    assert!(resp.starts_with("HTTP/1.1 303 See Other\r\n"));
    assert_eq!(header(&resp, "Location"), Some("/app/?x=1"));
    let session = resp
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Set-Cookie: gatehouse_session="))
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_owned();
    let Decision::Respond(r) = d else {
        unreachable!()
    };
    assert_eq!(r.consumed, post.len());

    let req =
        format!("GET /app/ HTTP/1.1\r\nHost: music\r\nCookie: gatehouse_session={session}\r\n\r\n");
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    assert!(forwarded(&d, &out).contains("Remote-User: alice\r\n"));
}

#[test]
fn login_form_guesses_already_in_flight_wait_and_take_no_place() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/login HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (token, field) = csrf_from(&responded(&d, &out).0);
    let guess = login_post(&token, &field, "alice", "not-it", "");
    let Decision::VerifyPassword(first) = w.step(CLIENT, guess.as_bytes(), None, &mut out) else {
        panic!("no check handed out");
    };
    // The same guess in a loop, more often than there are places: each copy waits.
    for _ in 0..MAX_PENDING_CHECKS * 2 {
        let d = w.step(CLIENT, guess.as_bytes(), None, &mut out);
        assert!(matches!(d, Decision::WaitForCheck), "{d:?}");
    }
    // Everyone else is still checked at once, on every place but the first one's.
    let mut others = Vec::new();
    for i in 1..MAX_PENDING_CHECKS {
        let req = basic(&format!("user{i}"), "guess");
        match w.step(&format!("198.51.100.{i}:1"), req.as_bytes(), None, &mut out) {
            Decision::VerifyPassword(c) => others.push(c),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(w.pending.in_flight(NOW), MAX_PENDING_CHECKS);
    drop(others);
    let ok = first.verify();
    let d = w.step(CLIENT, guess.as_bytes(), Some((&first, ok)), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::LoginFailed);
    // Decided again once the first finished (and the others gave their places back), a copy
    // is a guess in a row: checked, and charged.
    w.pending = PendingChecks::new();
    let d = w.step(CLIENT, guess.as_bytes(), None, &mut out);
    assert!(
        matches!(d, Decision::VerifyPassword(ref c) if c.charged),
        "{d:?}"
    );
}

#[test]
fn without_the_time_no_session_is_issued_or_accepted() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    // A form fetched while the clock was set, posted after a reboot that lost it.
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/login HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (token, field) = csrf_from(&responded(&d, &out).0);
    let cookie = w.session_cookie("bob");
    w.time_known = false;

    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/login HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (page, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::TimeUnknown);
    assert!(
        page.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{page}"
    );
    assert!(page.contains("does not know the time"), "{page}");
    assert_eq!(header(&page, "Retry-After"), Some("60"));

    let post = login_post(&token, &field, "alice", "wonderland", "");
    let d = w.decide(CLIENT, post.as_bytes(), &mut out);
    let (resp, outcome, close) = responded(&d, &out);
    assert_eq!(outcome, Outcome::TimeUnknown, "{resp}");
    assert!(close, "the unread form body cannot stay on the connection");
    assert!(!resp.contains("gatehouse_session="), "{resp}");

    // A valid session is not believed: a browser is told why, an API client is challenged,
    // and a session near expiry is not renewed either.
    let browser = format!(
        "GET /app HTTP/1.1\r\nHost: music\r\nAccept: text/html\r\nCookie: {cookie}\r\n\r\n"
    );
    let d = w.decide_at(CLIENT, browser.as_bytes(), NOW + 3000, &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::TimeUnknown);
    let api = format!("GET /app HTTP/1.1\r\nHost: music\r\nCookie: {cookie}\r\n\r\n");
    let d = w.decide(CLIENT, api.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);

    // Credentials that carry no time still work, and are not turned into a session.
    let d = w.decide(CLIENT, basic("alice", "wonderland").as_bytes(), &mut out);
    let Decision::Forward(f) = &d else {
        panic!("{d:?}")
    };
    assert!(f.set_cookie.is_none());
    assert!(forwarded(&d, &out).contains("Remote-User: alice\r\n"));

    // Once the clock is set, the same session is accepted as before.
    w.time_known = true;
    let d = w.decide(CLIENT, api.as_bytes(), &mut out);
    assert!(forwarded(&d, &out).contains("Remote-User: bob\r\n"));
    let d = w.decide(CLIENT, post.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::LoggedIn);
}

#[test]
fn password_change_during_login_form_check_issues_no_session() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/login HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (token, field) = csrf_from(&responded(&d, &out).0);
    let post = login_post(&token, &field, "alice", "wonderland", "");
    let Decision::VerifyPassword(check) = w.step(CLIENT, post.as_bytes(), None, &mut out) else {
        panic!("expected a password check");
    };
    w.users
        .set_password("alice", hash_password(b"new", &[3; 16], ITER).unwrap())
        .unwrap();
    let ok = check.verify();
    let d = w.step(CLIENT, post.as_bytes(), Some((&check, ok)), &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::LoginFailed);
    assert!(!resp.contains("gatehouse_session="), "{resp}");
}

#[test]
fn the_login_form_refuses_cross_site_posts_and_wrong_passwords() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/login HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (page, _, _) = responded(&d, &out);
    let (token, field) = csrf_from(&page);

    let cases = [
        login_post(
            &token,
            &field,
            "alice",
            "wonderland",
            "Sec-Fetch-Site: cross-site\r\n",
        ),
        login_post(&token, "forged", "alice", "wonderland", ""),
        login_post("", "", "alice", "wonderland", ""),
        login_post(
            &token,
            &field,
            "alice",
            "wonderland",
            "Origin: http://evil\r\n",
        )
        .replacen("Origin: http://music\r\n", "", 1),
    ];
    for post in cases {
        let d = w.decide(CLIENT, post.as_bytes(), &mut out);
        let (resp, outcome, _) = responded(&d, &out);
        assert_eq!(outcome, Outcome::CsrfRejected, "{post}");
        assert!(resp.starts_with("HTTP/1.1 403 "));
        assert!(!resp.contains("gatehouse_session="));
    }

    let post = login_post(&token, &field, "alice", "nope", "");
    let d = w.decide(CLIENT, post.as_bytes(), &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::LoginFailed);
    assert!(resp.contains("Wrong username or password."));
    let post = login_post(&token, &field, "nobody", "nope", "");
    let d = w.decide(CLIENT, post.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::LoginFailed);

    // Unsafe return targets are replaced by `/`.
    let post = login_post(&token, &field, "alice", "wonderland", "")
        .replace("return=%2Fapp%2F%3Fx%3D1", "return=%2F%2Fevil.example");
    let post = post.replace(
        &format!(
            "Content-Length: {}",
            post.split("\r\n\r\n").nth(1).unwrap().len() + 10
        ),
        "",
    );
    let d = w.decide(CLIENT, fix_length(&post).as_bytes(), &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::LoggedIn);
    assert_eq!(header(&resp, "Location"), Some("/"));
}

fn fix_length(req: &str) -> String {
    let (head, body) = req.split_once("\r\n\r\n").unwrap();
    let head: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.starts_with("Content-Length"))
        .collect();
    format!(
        "{}\r\nContent-Length: {}\r\n\r\n{body}",
        head.join("\r\n"),
        body.len()
    )
}

#[test]
fn a_login_form_body_is_read_before_deciding() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let post = b"POST /_gatehouse/login HTTP/1.1\r\nHost: music\r\nExpect: 100-continue\r\nContent-Length: 20\r\n\r\nusername=a";
    let d = w.decide(CLIENT, post, &mut out);
    let head_len = post.len() - 10;
    assert!(
        matches!(d, Decision::ReadBody { total, send_continue: true } if total == head_len + 20),
        "{d:?}"
    );
    let big = b"POST /_gatehouse/login HTTP/1.1\r\nHost: music\r\nContent-Length: 999999\r\n\r\n";
    let d = w.decide(CLIENT, big, &mut out);
    assert_eq!(
        responded(&d, &out).1,
        Outcome::Refused(Refusal::FormTooLarge)
    );
    let chunked =
        b"POST /_gatehouse/login HTTP/1.1\r\nHost: music\r\nTransfer-Encoding: chunked\r\n\r\n";
    let d = w.decide(CLIENT, chunked, &mut out);
    assert_eq!(
        responded(&d, &out).1,
        Outcome::Refused(Refusal::LengthRequired)
    );
}

fn logout_post(token: &str, field: &str, extra: &str) -> String {
    let body = format!("csrf={field}");
    format!(
        "POST /_gatehouse/logout HTTP/1.1\r\nHost: music\r\nContent-Type: application/x-www-form-urlencoded\r\nCookie: gatehouse_csrf={token}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn clears_the_session(resp: &str) -> bool {
    resp.split("\r\n")
        .any(|l| l.starts_with("Set-Cookie: gatehouse_session=") && l.contains("Max-Age=0"))
}

#[test]
fn logout_takes_a_post_from_this_site_with_the_token() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    // A GET (a link, an image on another site) logs nobody out: it shows the button.
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/logout HTTP/1.1\r\nHost: music\r\nSec-Fetch-Site: cross-site\r\n\r\n",
        &mut out,
    );
    let (page, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::LogoutPage);
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(!page.contains("gatehouse_session"), "{page}");
    assert!(page.contains("<form method=\"post\" action=\"/_gatehouse/logout\">"));
    assert!(header(&page, "Content-Security-Policy").is_some());
    let (token, field) = csrf_from(&page);

    // Without the token, with a cookie that is not the form's, or from another site: refused,
    // the page again.
    let mut other_token = token.clone();
    other_token.replace_range(..1, if token.starts_with('A') { "B" } else { "A" });
    for post in [
        "POST /_gatehouse/logout HTTP/1.1\r\nHost: music\r\nContent-Length: 0\r\n\r\n".to_owned(),
        logout_post(&token, "", ""),
        logout_post(&other_token, &field, ""),
        logout_post(&token, &field, "Origin: http://evil.example\r\n"),
        logout_post(&token, &field, "Sec-Fetch-Site: cross-site\r\n"),
    ] {
        let d = w.decide(CLIENT, post.as_bytes(), &mut out);
        let (resp, outcome, _) = responded(&d, &out);
        assert_eq!(outcome, Outcome::CsrfRejected, "{post}\n{resp}");
        assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
        assert!(!clears_the_session(&resp), "{resp}");
        let Decision::Respond(r) = d else {
            unreachable!()
        };
        assert_eq!(r.consumed, post.len());
    }

    let post = logout_post(
        &token,
        &field,
        "Origin: http://music\r\nSec-Fetch-Site: same-origin\r\n",
    );
    let d = w.decide(CLIENT, post.as_bytes(), &mut out);
    let (resp, outcome, close) = responded(&d, &out);
    assert_eq!(outcome, Outcome::LoggedOut, "{resp}");
    assert!(!close);
    assert!(resp.starts_with("HTTP/1.1 303 "));
    assert_eq!(header(&resp, "Location"), Some("/_gatehouse/login"));
    assert!(clears_the_session(&resp), "{resp}");
    let Decision::Respond(r) = d else {
        unreachable!()
    };
    assert_eq!(r.consumed, post.len());
}

#[test]
fn forward_auth_answers_proxies() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cookie = w.session_cookie("alice");
    // nginx auth_request with a session cookie; the client's own Remote-User is ignored.
    let req = format!(
        "GET /_gatehouse/auth/nginx HTTP/1.1\r\nHost: music\r\nX-Original-URI: /app/\r\nX-Original-Method: GET\r\nCookie: {cookie}\r\nRemote-User: bob\r\n\r\n"
    );
    let d = w.decide(PROXY, req.as_bytes(), &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::ForwardAuthAllowed);
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(header(&resp, "Remote-User"), Some("alice"));
    assert_eq!(header(&resp, "Remote-Groups"), Some("admins"));

    // nginx, anonymous: 401 (nginx turns it into its error_page).
    let req = b"GET /_gatehouse/auth/nginx HTTP/1.1\r\nHost: music\r\nX-Original-URI: /app/\r\nAccept: text/html\r\nRemote-User: bob\r\n\r\n";
    let d = w.decide(PROXY, req, &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::ForwardAuthDenied);
    assert!(resp.starts_with("HTTP/1.1 401 "), "{resp}");

    // Traefik / Caddy, anonymous browser: redirect to the login page, back to the original URI.
    let req = b"GET /_gatehouse/auth HTTP/1.1\r\nHost: auth\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: music\r\nX-Forwarded-Uri: /app/?a=1\r\nAccept: text/html\r\n\r\n";
    let d = w.decide(PROXY, req, &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::ForwardAuthDenied);
    assert_eq!(
        header(&resp, "Location"),
        Some("/_gatehouse/login?return=%2Fapp%2F%3Fa%3D1")
    );

    // Public original paths pass without identity.
    let req = b"GET /_gatehouse/auth HTTP/1.1\r\nHost: auth\r\nX-Forwarded-Uri: /share/x\r\n\r\n";
    let d = w.decide(PROXY, req, &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::ForwardAuthAllowed);
    assert_eq!(header(&resp, "Remote-User"), Some(""));
}

/// A caller with forwarding trust only (`trusted_proxies`).
const PROXY_ONLY: &str = "172.16.0.9:5000";

fn refused(d: &Decision, out: &[u8]) -> ForwardAuthRefusal {
    let (resp, outcome, _) = responded(d, out);
    assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
    match outcome {
        Outcome::ForwardAuthRefused(r) => r,
        other => panic!("expected a forward-auth refusal, got {other:?}: {resp}"),
    }
}

#[test]
fn forward_auth_reads_only_the_headers_its_endpoint_names() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let caddy = "/_gatehouse/auth";
    let nginx = "/_gatehouse/auth/nginx";
    // The attack through Caddy: Caddy sets X-Forwarded-Uri, the client adds X-Original-URI
    // naming a public path. Neither header is guessed at: the call is refused.
    let cases: &[(&str, &str, ForwardAuthRefusal)] = &[
        (
            caddy,
            "X-Forwarded-Uri: /admin\r\nX-Original-URI: /share/x\r\n",
            ForwardAuthRefusal::ForeignHeaders,
        ),
        (
            caddy,
            "X-Original-URI: /share/x\r\n",
            ForwardAuthRefusal::ForeignHeaders,
        ),
        (
            caddy,
            "X-Forwarded-Uri: /share/x\r\nX-Original-Method: GET\r\n",
            ForwardAuthRefusal::ForeignHeaders,
        ),
        (
            nginx,
            "X-Original-URI: /admin\r\nX-Forwarded-Uri: /share/x\r\n",
            ForwardAuthRefusal::ForeignHeaders,
        ),
        (
            nginx,
            "X-Original-URI: /share/x\r\nX-Forwarded-Method: GET\r\n",
            ForwardAuthRefusal::ForeignHeaders,
        ),
        // Any of the kind's headers twice: never "the first one found".
        (
            caddy,
            "X-Forwarded-Uri: /share/x\r\nX-Forwarded-Uri: /admin\r\n",
            ForwardAuthRefusal::Repeated,
        ),
        (
            caddy,
            "X-Forwarded-Uri: /share/x\r\nx-forwarded-uri: /admin\r\n",
            ForwardAuthRefusal::Repeated,
        ),
        (
            caddy,
            "X-Forwarded-Uri: /app/\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Method: GET\r\n",
            ForwardAuthRefusal::Repeated,
        ),
        (
            caddy,
            "X-Forwarded-Uri: /app/\r\nX-Forwarded-Host: music\r\nX-Forwarded-Host: evil\r\n",
            ForwardAuthRefusal::Repeated,
        ),
        (
            nginx,
            "X-Original-URI: /share/x\r\nX-Original-URI: /admin\r\n",
            ForwardAuthRefusal::Repeated,
        ),
        (
            nginx,
            "X-Original-URI: /app/\r\nX-Original-Method: GET\r\nX-Original-Method: POST\r\n",
            ForwardAuthRefusal::Repeated,
        ),
        // No original URI: nothing to judge (not "/" by default).
        (
            caddy,
            "X-Forwarded-Method: GET\r\n",
            ForwardAuthRefusal::MissingUri,
        ),
        (caddy, "", ForwardAuthRefusal::MissingUri),
        (
            nginx,
            "X-Original-Method: GET\r\n",
            ForwardAuthRefusal::MissingUri,
        ),
        (nginx, "", ForwardAuthRefusal::MissingUri),
    ];
    let cookie = w.session_cookie("bob");
    for (endpoint, headers, want) in cases {
        for peer in [PROXY, PROXY_ONLY] {
            // Even a signed-in user's call is refused: the call itself is not believable.
            let req = format!(
                "GET {endpoint} HTTP/1.1\r\nHost: auth\r\n{headers}Cookie: {cookie}\r\n\r\n"
            );
            let d = w.decide(peer, req.as_bytes(), &mut out);
            assert_eq!(refused(&d, &out), *want, "{peer} {endpoint} {headers:?}");
        }
    }
    // A caller in neither list is refused whatever it says.
    for (endpoint, headers) in [
        (caddy, "X-Forwarded-Uri: /share/x\r\n"),
        (nginx, "X-Original-URI: /share/x\r\n"),
        (caddy, ""),
    ] {
        for peer in [CLIENT, "11.0.0.1:1", "[2001:db8::1]:1"] {
            let req = format!("GET {endpoint} HTTP/1.1\r\nHost: auth\r\n{headers}\r\n");
            let d = w.decide(peer, req.as_bytes(), &mut out);
            assert_eq!(
                refused(&d, &out),
                ForwardAuthRefusal::UntrustedCaller,
                "{peer} {endpoint}"
            );
        }
    }
    // Each endpoint alone, from either kind of trust, in any case of the path.
    for peer in [PROXY, PROXY_ONLY, "@"] {
        for req in [
            "GET /_gatehouse/auth HTTP/1.1\r\nHost: auth\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: music\r\nX-Forwarded-Uri: /share/x\r\n\r\n",
            "GET /_GateHouse/Auth HTTP/1.1\r\nHost: auth\r\nX-Forwarded-Uri: /share/x\r\n\r\n",
            "GET /_gatehouse/auth/nginx HTTP/1.1\r\nHost: auth\r\nX-Original-Method: GET\r\nX-Original-URI: /share/x\r\n\r\n",
            "GET /%5FGATEHOUSE/AUTH/nginx HTTP/1.1\r\nHost: auth\r\nX-Original-URI: /share/x\r\n\r\n",
        ] {
            let d = w.decide(peer, req.as_bytes(), &mut out);
            let (resp, outcome, _) = responded(&d, &out);
            assert_eq!(outcome, Outcome::ForwardAuthAllowed, "{peer} {req}: {resp}");
        }
    }
}

#[test]
fn forward_auth_lets_reserved_uris_through_only_in_the_configured_spelling() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let ask = |w: &mut World, uri: &str, cookie: &str, out: &mut [u8]| {
        let req = format!(
            "GET /_gatehouse/auth HTTP/1.1\r\nHost: auth\r\nX-Forwarded-Uri: {uri}\r\nRemote-User: alice\r\n{cookie}\r\n"
        );
        let d = w.decide(PROXY, req.as_bytes(), out);
        let (resp, outcome, _) = responded(&d, out);
        (outcome, header(&resp, "Remote-User").map(str::to_owned))
    };
    // The exact, canonical spelling is gatehouse's own page: let through, as nobody.
    for uri in ["/_gatehouse/health", "/_gatehouse/login?return=%2F"] {
        assert_eq!(
            ask(&mut w, uri, "", &mut out),
            (Outcome::ForwardAuthAllowed, Some(String::new())),
            "{uri}"
        );
    }
    // Other spellings may be the app's path to the proxy: judged like one, and the client's
    // Remote-User names nobody.
    for uri in [
        "/_GATEHOUSE/x",
        "/_GateHouse/login",
        "/%5Fgatehouse/health",
        "/_gatehouse//health",
        // The bare prefix is not under `/_gatehouse/*`: Caddy routes it to the app.
        "/_gatehouse",
        "/_gatehouse?a=b",
        "/_gatehouse/",
    ] {
        assert_eq!(
            ask(&mut w, uri, "", &mut out).0,
            Outcome::ForwardAuthDenied,
            "{uri}"
        );
        let bob = format!("Cookie: {}\r\n", w.session_cookie("bob"));
        assert_eq!(
            ask(&mut w, uri, &bob, &mut out),
            (Outcome::ForwardAuthAllowed, Some("bob".to_owned())),
            "{uri}"
        );
    }
    assert_eq!(w.users.len(), 2, "nobody was provisioned");
}

#[test]
fn forward_auth_refuses_identity_lookalikes_its_answer_would_not_overwrite() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let bob = format!("Cookie: {}\r\n", w.session_cookie("bob"));
    let ask = |w: &mut World, extra: &str, out: &mut [u8]| {
        let req = format!(
            "GET /_gatehouse/auth HTTP/1.1\r\nHost: auth\r\nX-Forwarded-Uri: /app\r\n{bob}{extra}\r\n"
        );
        let d = w.decide(PROXY, req.as_bytes(), out);
        responded(&d, out).1
    };
    // Caddy and Traefik hand these to the app as they came; a CGI-style app reads the first
    // ones as Remote-User and Remote-Groups.
    for extra in [
        "Remote_User: mallory\r\n",
        "remote_user: mallory\r\n",
        "Remote.User: mallory\r\n",
        "Remote_Groups: admins\r\n",
        "X-Forwarded-User: mallory\r\n",
        "X-Remote-User: mallory\r\n",
    ] {
        assert_eq!(
            ask(&mut w, extra, &mut out),
            Outcome::ForwardAuthRefused(ForwardAuthRefusal::IdentityLookalike),
            "{extra}"
        );
    }
    // The exact names are in every answer, so the proxy overwrites the client's copies.
    for extra in ["", "Remote-User: mallory\r\n", "remote-groups: admins\r\n"] {
        assert_eq!(
            ask(&mut w, extra, &mut out),
            Outcome::ForwardAuthAllowed,
            "{extra}"
        );
    }
}

#[test]
fn forward_auth_does_not_grant_public_on_a_non_canonical_uri() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    for uri in [
        "/app/../share/x",
        "/api/%2e%2e/share/x",
        "/admin/../_gatehouse/health",
        "/admin//..//share/",
        "/share//x",
        "/share/./x",
        "/%73hare/x",
    ] {
        for (endpoint, name) in [
            ("/_gatehouse/auth/nginx", "X-Original-URI"),
            ("/_gatehouse/auth", "X-Forwarded-Uri"),
        ] {
            let req = format!("GET {endpoint} HTTP/1.1\r\nHost: auth\r\n{name}: {uri}\r\n\r\n");
            let d = w.decide(PROXY, req.as_bytes(), &mut out);
            let (resp, outcome, _) = responded(&d, &out);
            assert_eq!(outcome, Outcome::ForwardAuthDenied, "{uri}: {resp}");
        }
    }
    // The canonical spelling, with a query, is public.
    let req = b"GET /_gatehouse/auth/nginx HTTP/1.1\r\nHost: auth\r\nX-Original-URI: /share/x?a=1\r\n\r\n";
    let d = w.decide(PROXY, req, &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::ForwardAuthAllowed);
}

#[test]
fn forwarding_trust_believes_forwarded_for_but_never_an_identity() {
    let mut w = World {
        users: UserTable::new(),
        ..World::new()
    };
    let mut out = [0u8; OUT_LEN];
    // A plain proxy relays a client's Remote-User: it names nobody, on any path.
    for req in [
        "GET /app HTTP/1.1\r\nHost: music\r\nRemote-User: mallory\r\n\r\n",
        "GET /rest/ping.view?f=json HTTP/1.1\r\nHost: music\r\nRemote-User: mallory\r\n\r\n",
        "GET /_GATEHOUSE/x HTTP/1.1\r\nHost: music\r\nRemote-User: mallory\r\n\r\n",
    ] {
        let d = w.decide(PROXY_ONLY, req.as_bytes(), &mut out);
        assert!(!matches!(d, Decision::Forward(_)), "{req}: {d:?}");
    }
    assert_eq!(w.users.len(), 0, "nobody was provisioned");

    // Its X-Forwarded-For chain reaches the app, ending with the proxy itself.
    let mut w = World::new();
    let cookie = w.session_cookie("bob");
    let req = format!(
        "GET /app HTTP/1.1\r\nHost: music\r\nX-Forwarded-For: 198.51.100.7\r\nCookie: {cookie}\r\n\r\n"
    );
    let head = forwarded(&w.decide(PROXY_ONLY, req.as_bytes(), &mut out), &out);
    assert!(
        head.contains("\r\nX-Forwarded-For: 198.51.100.7, 172.16.0.9\r\n"),
        "{head}"
    );
    // From a peer in neither list the client's chain is dropped.
    let head = forwarded(&w.decide(CLIENT, req.as_bytes(), &mut out), &out);
    assert!(
        head.contains("\r\nX-Forwarded-For: 192.0.2.10\r\n"),
        "{head}"
    );
    assert!(!head.contains("198.51.100.7"), "{head}");
}

#[test]
fn the_throttle_charges_the_client_a_forwarding_proxy_names() {
    let behind =
        |xff: &str, req: &str| req.replacen("\r\n", &format!("\r\nX-Forwarded-For: {xff}\r\n"), 1);
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    // Junk from one client behind a proxy with forwarding trust only…
    for i in 0..30 {
        let req = behind("198.51.100.7", &basic(&format!("junk{i}"), "junk"));
        w.decide(PROXY_ONLY, req.as_bytes(), &mut out);
    }
    let req = behind("198.51.100.7", &basic("bob", "builder"));
    let d = w.decide(PROXY_ONLY, req.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Throttled);
    // …does not lock out another client behind the same proxy.
    let req = behind("203.0.113.9", &basic("bob", "builder"));
    let d = w.decide(PROXY_ONLY, req.as_bytes(), &mut out);
    assert!(forwarded(&d, &out).contains("Remote-User: bob"));

    // A peer in neither list cannot escape the throttle by naming other clients.
    let mut w = World::new();
    for i in 0..30 {
        let req = behind(
            &format!("198.51.100.{i}"),
            &basic(&format!("junk{i}"), "junk"),
        );
        w.decide(CLIENT, req.as_bytes(), &mut out);
    }
    let req = behind("203.0.113.9", &basic("bob", "builder"));
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Throttled);
}

#[test]
fn forwarding_trust_believes_forwarded_host_for_the_login_origin() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/login HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (page, _, _) = responded(&d, &out);
    let (token, field) = csrf_from(&page);
    // The browser used music.example:8443; the proxy talks to gatehouse as `gatehouse`.
    let post = login_post(
        &token,
        &field,
        "alice",
        "wonderland",
        "X-Forwarded-Host: music.example:8443\r\n",
    )
    .replace("Host: music\r\n", "Host: gatehouse\r\n")
    .replace(
        "Origin: http://music\r\n",
        "Origin: https://music.example:8443\r\n",
    );
    for peer in [PROXY, PROXY_ONLY] {
        let d = w.decide(peer, post.as_bytes(), &mut out);
        assert_eq!(responded(&d, &out).1, Outcome::LoggedIn, "{peer}");
    }
    let d = w.decide(CLIENT, post.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::CsrfRejected);
}

#[test]
fn reserved_paths_match_in_any_case_and_escape() {
    let mut w = World {
        users: UserTable::new(),
        ..World::new()
    };
    let mut out = [0u8; OUT_LEN];
    let cases = [
        ("/_GATEHOUSE/x", Outcome::NotFound),
        ("/_GateHouse/x/y", Outcome::NotFound),
        ("/_GATEHOUSE", Outcome::NotFound),
        ("/%5Fgatehouse/login", Outcome::LoginPage),
        ("/%5fgatehouse/LOGIN", Outcome::LoginPage),
        ("/_GateHouse/Login", Outcome::LoginPage),
        ("/%5fGATEHOUSE/health", Outcome::Health),
        ("/_gatehouse/HEALTH", Outcome::Health),
    ];
    // Even from a peer with identity trust, a Remote-User on gatehouse's own path names
    // nobody: the request never reaches the app.
    for (path, want) in cases {
        for peer in [PROXY, PROXY_ONLY, CLIENT] {
            let req = format!("GET {path} HTTP/1.1\r\nHost: music\r\nRemote-User: mallory\r\n\r\n");
            let d = w.decide(peer, req.as_bytes(), &mut out);
            let (resp, outcome, _) = responded(&d, &out);
            assert_eq!(outcome, want, "{peer} {path}: {resp}");
        }
    }
    assert_eq!(w.users.len(), 0, "nobody was provisioned");
    // Forward-auth by its mixed-case name.
    let d = w.decide(
        PROXY,
        b"GET /_GateHouse/auth HTTP/1.1\r\nHost: a\r\nX-Forwarded-Uri: /share/x\r\n\r\n",
        &mut out,
    );
    assert_eq!(responded(&d, &out).1, Outcome::ForwardAuthAllowed);
    // A neighbour of the prefix is the app's.
    let d = w.decide(
        PROXY,
        b"GET /_GATEHOUSEx HTTP/1.1\r\nHost: a\r\nRemote-User: carol\r\n\r\n",
        &mut out,
    );
    assert_eq!(forwarded(&d, &out).matches("Remote-User: carol").count(), 1);
}

#[test]
fn forward_auth_200_always_carries_every_identity_header() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let bob = w.session_cookie("bob");
    let alice = w.session_cookie("alice");
    let cases = [
        ("/app/", bob.as_str(), "bob", ""),
        ("/app/", alice.as_str(), "alice", "admins"),
        ("/share/x", "", "", ""),
        ("/_gatehouse/health", "", "", ""),
    ];
    for (uri, cookie, user, groups) in cases {
        let req = format!(
            "GET /_gatehouse/auth HTTP/1.1\r\nHost: auth\r\nX-Forwarded-Uri: {uri}\r\nCookie: {cookie}\r\nRemote-Groups: admins\r\nRemote-User: admin\r\nRemote-Email: a@evil\r\nRemote-Name: Admin\r\n\r\n"
        );
        let d = w.decide(PROXY, req.as_bytes(), &mut out);
        let (resp, outcome, _) = responded(&d, &out);
        assert_eq!(outcome, Outcome::ForwardAuthAllowed, "{uri}: {resp}");
        assert_eq!(header(&resp, "Remote-User"), Some(user), "{resp}");
        assert_eq!(header(&resp, "Remote-Groups"), Some(groups), "{resp}");
        assert_eq!(header(&resp, "Remote-Name"), Some(""), "{resp}");
        assert_eq!(header(&resp, "Remote-Email"), Some(""), "{resp}");
    }
}

#[test]
fn malformed_requests_are_refused_and_closed() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cases: &[(&[u8], Outcome)] = &[
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            Outcome::Refused(Refusal::Request(
                RequestError::ContentLengthWithTransferEncoding,
            )),
        ),
        (
            b"GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n",
            Outcome::Refused(Refusal::Path(PathError::EncodedSlash)),
        ),
        (
            b"GET /.. HTTP/1.1\r\nHost: a\r\n\r\n",
            Outcome::Refused(Refusal::Path(PathError::ClimbsAboveRoot)),
        ),
    ];
    for (bytes, want) in cases {
        let d = w.decide(CLIENT, bytes, &mut out);
        let (resp, outcome, close) = responded(&d, &out);
        assert_eq!(outcome, *want);
        assert!(close);
        assert!(resp.starts_with("HTTP/1.1 400 "));
    }
    let mut big = vec![b'a'; MAX_HEAD_LEN + 1];
    big[..16].copy_from_slice(b"GET / HTTP/1.1\r\n");
    let d = w.decide(CLIENT, &big, &mut out);
    assert!(responded(&d, &out).0.starts_with("HTTP/1.1 431 "));
    let d = w.decide(CLIENT, b"GET / HTTP/1.1\r\nHo", &mut out);
    assert!(matches!(d, Decision::NeedMoreBytes));
}

#[test]
fn pipelined_requests_are_each_judged() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cookie = w.session_cookie("bob");
    let stream = format!(
        "GET /app HTTP/1.1\r\nHost: music\r\nCookie: {cookie}\r\n\r\nGET /app HTTP/1.1\r\nHost: music\r\nRemote-User: alice\r\n\r\n"
    );
    let d = w.decide(CLIENT, stream.as_bytes(), &mut out);
    let Decision::Forward(first) = d else {
        panic!()
    };
    assert_eq!(first.user.as_deref(), Some("bob"));
    let d = w.decide(CLIENT, &stream.as_bytes()[first.consumed..], &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);
}

#[test]
fn health_and_unknown_endpoints() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/health HTTP/1.1\r\nHost: a\r\n\r\n",
        &mut out,
    );
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::Health);
    assert!(resp.ends_with("\r\n\r\nok\n"));
    let d = w.decide(
        CLIENT,
        b"GET /_gatehouse/nope HTTP/1.1\r\nHost: a\r\n\r\n",
        &mut out,
    );
    assert_eq!(responded(&d, &out).1, Outcome::NotFound);
    let d = w.decide(
        CLIENT,
        b"DELETE /_gatehouse/login HTTP/1.1\r\nHost: a\r\n\r\n",
        &mut out,
    );
    assert_eq!(responded(&d, &out).1, Outcome::MethodNotAllowed);
    let d = w.decide(
        CLIENT,
        b"HEAD /_gatehouse/health HTTP/1.1\r\nHost: a\r\n\r\n",
        &mut out,
    );
    assert!(responded(&d, &out).0.ends_with("\r\n\r\n"));
}

#[test]
fn metrics_are_for_the_listed_scrapers_only() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let get = b"GET /_gatehouse/metrics HTTP/1.1\r\nHost: a\r\n\r\n";
    // By default nobody, not even a trusted proxy or a signed-in admin: 404, as for an
    // endpoint that does not exist.
    let cookie = w.session_cookie("alice");
    let admin = format!("GET /_gatehouse/metrics HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\r\n");
    for (peer, req) in [
        (CLIENT, &get[..]),
        (PROXY, &get[..]),
        ("@", &get[..]),
        (CLIENT, admin.as_bytes()),
    ] {
        let d = w.decide(peer, req, &mut out);
        let (resp, outcome, _) = responded(&d, &out);
        assert_eq!(outcome, Outcome::NotFound, "{peer}");
        assert!(resp.starts_with("HTTP/1.1 404 "), "{resp}");
    }

    let scrapers: &'static MetricsSources =
        Box::leak(Box::new(MetricsSources::parse("192.0.2.0/28, @").unwrap()));
    w.config.metrics_sources = scrapers;
    for peer in [CLIENT, "@"] {
        let d = w.decide(peer, get, &mut out);
        let Decision::ServeMetrics(m) = d else {
            panic!("{peer}: {d:?}")
        };
        assert_eq!(m.consumed, get.len());
        assert!(!m.head_only && !m.close);
    }
    let d = w.decide(
        CLIENT,
        b"HEAD /_gatehouse/metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        &mut out,
    );
    assert!(
        matches!(d, Decision::ServeMetrics(m) if m.head_only && m.close),
        "{d:?}"
    );
    // Anyone else (a trusted proxy included, whatever X-Forwarded-For says), or another
    // method: 404.
    let via_proxy =
        b"GET /_gatehouse/metrics HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.10\r\n\r\n";
    let post = b"POST /_gatehouse/metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    for (peer, req) in [
        ("192.0.2.16:1", &get[..]),
        (PROXY, &via_proxy[..]),
        (CLIENT, &post[..]),
    ] {
        let d = w.decide(peer, req, &mut out);
        assert_eq!(responded(&d, &out).1, Outcome::NotFound, "{peer}");
    }
}

#[test]
fn websocket_upgrades_are_forwarded_for_authenticated_users() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cookie = w.session_cookie("bob");
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: music\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nCookie: {cookie}\r\n\r\n"
    );
    let d = w.decide(CLIENT, req.as_bytes(), &mut out);
    let head = forwarded(&d, &out);
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
    let Decision::Forward(f) = d else {
        unreachable!()
    };
    assert!(f.upgrade);
}

#[test]
fn anonymous_h2c_upgrade_is_not_tunnelled() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cookie = w.session_cookie("alice");
    for (path, extra) in [
        ("/share/x", String::new()),
        ("/app/", format!("Cookie: {cookie}\r\n")),
    ] {
        for upgrade in ["h2c", "websocket, h2c", "foo"] {
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: m\r\n{extra}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
            );
            let d = w.decide(CLIENT, req.as_bytes(), &mut out);
            let head = forwarded(&d, &out);
            let Decision::Forward(f) = d else {
                unreachable!()
            };
            assert!(!f.upgrade, "{upgrade}: {head}");
            assert!(!head.to_ascii_lowercase().contains("upgrade"), "{head}");
            assert!(!head.contains("HTTP2-Settings"), "{head}");
        }
    }
}

#[test]
fn secure_cookies_are_host_prefixed_and_plain_ones_are_not_believed_over_tls() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let keys = w.keys.clone();
    let trusted = w.trusted.clone();
    let proxies = w.proxies.clone();
    let gw = Gateway {
        config: GatewayConfig {
            password_iterations: ITER,
            ..GatewayConfig::DEFAULT
        },
        trusted: &trusted,
        proxies: &proxies,
        keys: &keys,
    };
    let random = [42u8; RANDOM_LEN];
    let mut over_tls = |bytes: &[u8], out: &mut [u8]| {
        let ex = Exchange {
            peer: CLIENT.parse().unwrap(),
            tls: true,
            bytes,
            now: NOW,
            time_known: true,
            random: &random,
        };
        let mut shared = Shared {
            users: &mut w.users,
            throttle: &mut w.throttle,
            credentials: &mut w.cache,
            pending: &mut w.pending,
        };
        match gw.decide(&ex, &mut shared, out) {
            Decision::VerifyPassword(check) => {
                let ok = check.verify();
                gw.finish(&ex, &mut shared, &check, ok, out)
            }
            other => other,
        }
    };
    // The login page's CSRF cookie, and the session the form issues.
    let d = over_tls(
        b"GET /_gatehouse/login HTTP/1.1\r\nHost: music\r\n\r\n",
        &mut out,
    );
    let (page, _, _) = responded(&d, &out);
    let set = header(&page, "Set-Cookie").unwrap();
    assert!(set.starts_with("__Host-gatehouse_csrf="), "{set}");
    assert!(
        set.contains("; Path=/") && set.ends_with("; Secure"),
        "{set}"
    );
    let (token, field) = csrf_from(&page.replace("__Host-gatehouse_csrf=", "gatehouse_csrf="));
    let post = login_post(&token, &field, "alice", "wonderland", "")
        .replace("Cookie: gatehouse_csrf=", "Cookie: __Host-gatehouse_csrf=")
        .replace("Origin: http://", "Origin: https://");
    let d = over_tls(post.as_bytes(), &mut out);
    let (resp, outcome, _) = responded(&d, &out);
    assert_eq!(outcome, Outcome::LoggedIn, "{resp}");
    let session = resp
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Set-Cookie: __Host-gatehouse_session="))
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_owned();
    // The prefixed session works, and the app never sees it.
    let req = format!(
        "GET /app/ HTTP/1.1\r\nHost: music\r\nCookie: a=1; __Host-gatehouse_session={session}\r\n\r\n"
    );
    let d = over_tls(req.as_bytes(), &mut out);
    let head = forwarded(&d, &out);
    assert!(head.contains("Remote-User: alice\r\n"), "{head}");
    assert!(!head.contains(&session), "{head}");
    // The same token under the plain name is what a sibling subdomain could plant: not
    // believed over TLS.
    let req =
        format!("GET /app/ HTTP/1.1\r\nHost: music\r\nCookie: gatehouse_session={session}\r\n\r\n");
    let d = over_tls(req.as_bytes(), &mut out);
    assert_eq!(responded(&d, &out).1, Outcome::Unauthorized);
}

#[test]
fn gateway_borrows_its_config() {
    let w = World::new();
    let gw = w.gateway();
    assert_eq!(gw.config.user_header, "Remote-User");
}

#[cfg(not(feature = "account"))]
#[test]
fn without_the_account_feature_the_account_page_is_an_unknown_endpoint() {
    let mut w = World::new();
    let mut out = [0u8; OUT_LEN];
    let cookie = w.session_cookie("bob");
    let request = format!(
        "GET /_gatehouse/account HTTP/1.1\r\nHost: gw\r\nAccept: text/html\r\nCookie: {cookie}\r\n\r\n"
    );
    match w.decide("192.0.2.1:1", request.as_bytes(), &mut out) {
        Decision::Respond(r) => {
            assert_eq!(r.outcome, Outcome::NotFound);
            assert!(out[..r.len].starts_with(b"HTTP/1.1 404 "));
            assert!(!r.users_changed);
        }
        other => panic!("{other:?}"),
    }
}
