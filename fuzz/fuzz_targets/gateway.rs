//! The gateway decision, end to end: (peer, request bytes, now, random bytes) → action.
//!
//! Input: 2 option bytes, then the bytes a client sent on one connection (possibly several
//! pipelined requests, judged one after another against the same state).
//! - byte 0, bits 0–1: the peer (0 an untrusted client, 1 a trusted proxy, 2 a UNIX-socket
//!   peer, trusted, 3 a trusted proxy's IPv4-mapped IPv6 address); bit 2: TLS; bit 3: the
//!   untrusted client's network is in `trusted_proxies` (forwarding trust, never identity);
//! - byte 1: the clock, in hours after the seed corpus's session tokens were issued.
//!
//! The world: users `alice` (admin, password `wonderland`) and `bob` (`builder`), trusted
//! sources `10.0.0.0/8, @`, the session keys of the seed corpus.
//!
//! Asserts, for every decision (and after every password check, as a shell would run it):
//! - no panic; "need more bytes" only for an incomplete head; what is consumed is there;
//! - a forwarded head is a valid head with a canonical target, never for a reserved path,
//!   and it carries an identity **only** for a user the request proves: the identity header
//!   from a trusted peer, a session cookie that verifies, the right Basic password or the
//!   login password as Subsonic's `p` — never on a public path, never on a client's own
//!   identity header from an untrusted peer;
//! - forward-auth allows a user only on a cookie or Basic password, never on a header;
//! - a session cookie is set only for the right password (login form) or a valid session;
//! - gatehouse's own answers are valid responses, and refusals close the connection;
//! - the account page changes the users table only for a valid session with a valid CSRF
//!   token pair, a password change only with the right current password, and an answer says
//!   `users_changed` exactly when the table changed.
#![no_main]

use std::sync::OnceLock;

use base64ct::{Base64, Encoding};
use gatehouse_core::credential_cache::CredentialCache;
use gatehouse_core::gateway::{
    AccountOutcome, Decision, Exchange, Gateway, GatewayConfig, OUT_LEN, Outcome, PendingChecks,
    RANDOM_LEN, Shared, cookie_value, csrf_cookie_name, csrf_tokens_match, form_field,
};
use gatehouse_core::http::{
    BodyFraming, MAX_HEAD_LEN, MAX_HEADERS, Parse, PathClass, RequestError, RequestHead,
    ResponseHead, canonicalize,
};
use gatehouse_core::identity::{DEFAULT_USER_HEADER, is_identity_header, read_identity_httparse};
use gatehouse_core::password::{MIN_ITERATIONS, PasswordHash};
use gatehouse_core::peer::Peer;
use gatehouse_core::session::{SessionKey, SessionKeys, cookie_name, single_session_cookie};
use gatehouse_core::subsonic::{self, Credential};
use gatehouse_core::throttle::{Throttle, ThrottlePolicy};
use gatehouse_core::trusted::TrustedSources;
use gatehouse_core::users::{UserTable, same_username};
use gatehouse_fuzz::take;
use libfuzzer_sys::fuzz_target;

/// When the seed corpus's session tokens were issued.
const ISSUED_AT: u64 = 1_700_000_000;

/// Users and the passwords that are theirs (PBKDF2 with the lowest count, made once).
const PASSWORDS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

type Users = UserTable<4>;

fn users() -> &'static Users {
    static USERS: OnceLock<Users> = OnceLock::new();
    USERS.get_or_init(|| {
        let mut users = Users::new();
        for (i, (name, password)) in PASSWORDS.iter().enumerate() {
            let salt = [i as u8 + 1; 16];
            let hash =
                gatehouse_core::password::hash_password(password.as_bytes(), &salt, MIN_ITERATIONS)
                    .unwrap();
            let hash = PasswordHash::parse(hash.as_str()).unwrap();
            users.add(name, i == 0, hash).unwrap();
        }
        users
    })
}

fn keys() -> SessionKeys {
    let mut keys = SessionKeys::new(SessionKey::from_bytes([0x11; 32]));
    keys.rotate(SessionKey::from_bytes([0x22; 32]));
    keys
}

fuzz_target!(|data: &[u8]| {
    let (opts, mut bytes) = take::<2>(data);
    let peer = match opts[0] & 3 {
        0 => Peer::Ip("203.0.113.9".parse().unwrap()),
        1 => Peer::Ip("10.1.2.3".parse().unwrap()),
        2 => Peer::Unix,
        _ => Peer::Ip("::ffff:10.0.0.5".parse().unwrap()),
    };
    let tls = opts[0] & 4 != 0;
    let now = ISSUED_AT + u64::from(opts[1]) * 3600;

    let trusted: TrustedSources<4> = TrustedSources::parse("10.0.0.0/8, @").unwrap();
    let proxies: TrustedSources<4> = match opts[0] & 8 {
        0 => TrustedSources::new(),
        _ => TrustedSources::parse("203.0.113.0/24").unwrap(),
    };
    let keys = keys();
    let gateway = Gateway {
        config: GatewayConfig {
            password_iterations: MIN_ITERATIONS,
            ..GatewayConfig::DEFAULT
        },
        trusted: &trusted,
        proxies: &proxies,
        keys: &keys,
    };
    let mut users = users().clone();
    let mut throttle: Throttle<8> = Throttle::new(ThrottlePolicy::DEFAULT);
    let mut credentials: CredentialCache<4> = CredentialCache::new(&[9; 32], 300);
    let mut pending = PendingChecks::new();
    let random = [42u8; RANDOM_LEN];
    let mut out = vec![0u8; OUT_LEN];

    for _ in 0..4 {
        // The table this request is judged against (the account page may change it).
        let before = users.clone();
        let ex = Exchange {
            peer,
            tls,
            bytes,
            now,
            time_known: true,
            random: &random,
        };
        let mut shared = Shared {
            users: &mut users,
            throttle: &mut throttle,
            credentials: &mut credentials,
            pending: &mut pending,
        };
        let decision = match gateway.decide(&ex, &mut shared, &mut out) {
            Decision::VerifyPassword(check) => {
                let ok = check.verify();
                let again = gateway.finish(&ex, &mut shared, &check, ok, &mut out);
                assert!(
                    !matches!(again, Decision::VerifyPassword(_)),
                    "the same password check again"
                );
                again
            }
            other => other,
        };
        let judge = Judge {
            bytes,
            peer_trusted: trusted.trusts(&peer),
            tls,
            now,
            keys: &keys,
            users: &before,
            after: &users,
        };
        let consumed = match decision {
            Decision::NeedMoreBytes => {
                assert!(matches!(RequestHead::parse(bytes), Ok(Parse::Incomplete)));
                return;
            }
            Decision::ReadBody { total, .. } => {
                assert!(total > bytes.len());
                return;
            }
            Decision::VerifyPassword(_) | Decision::WaitForCheck | Decision::ServeMetrics(_) => {
                unreachable!()
            }
            Decision::Forward(f) => {
                judge.forward(&f, &out[..f.head_len]);
                if f.body != BodyFraming::None || f.upgrade {
                    // The body (or tunnel) follows: the next request is not simply next.
                    return;
                }
                if !f.keep_alive {
                    return;
                }
                f.consumed
            }
            Decision::Respond(r) => {
                assert!(r.len <= out.len());
                judge.respond(&r, &out[..r.len]);
                if r.close {
                    return;
                }
                r.consumed
            }
        };
        assert!(consumed > 0 && consumed <= bytes.len());
        bytes = &bytes[consumed..];
    }
});

struct Judge<'a> {
    bytes: &'a [u8],
    peer_trusted: bool,
    /// Cookies are `Secure` (and so `__Host-` named).
    tls: bool,
    now: u64,
    keys: &'a SessionKeys,
    /// The users as the request found them.
    users: &'a Users,
    /// The users after the decision.
    after: &'a Users,
}

impl Judge<'_> {
    fn head(&self) -> RequestHead<'_> {
        match RequestHead::parse(self.bytes) {
            Ok(Parse::Complete(h)) => h,
            other => panic!(
                "decided on a head that does not parse: {:?}",
                other.map(|_| ())
            ),
        }
    }

    /// Whether the request proves it is `user`: by the identity header from a trusted peer
    /// (when `header` counts), a session cookie, or the right Basic password.
    fn proves(&self, user: &str, header: bool) -> bool {
        let head = self.head();
        let by_header = header
            && self.peer_trusted
            && matches!(
                read_identity_httparse(DEFAULT_USER_HEADER, head.headers()),
                Ok(Some(n)) if same_username(&n, user)
            );
        let by_cookie = single_session_cookie(head.header_values("cookie"), cookie_name(self.tls))
            .ok()
            .flatten()
            .and_then(|t| self.keys.verify_user(t, self.now, self.users).ok())
            .is_some_and(|(s, _)| same_username(&s.username, user));
        let by_basic = match head.single_header("authorization") {
            Ok(Some(value)) => basic(value).is_some_and(|(name, password)| {
                same_username(&name, user) && self.right_password(&name, &password)
            }),
            _ => false,
        };
        by_header || by_cookie || by_basic || self.by_subsonic(&head, user)
    }

    /// The login password as Subsonic's `p` (plain or `enc:` hex), in the query or in a form
    /// body. (Tokens and API keys need app passwords, which this world has none of.)
    fn by_subsonic(&self, head: &RequestHead<'_>, user: &str) -> bool {
        let query = head
            .path_and_query()
            .split_once('?')
            .map_or(&b""[..], |(_, q)| q.as_bytes());
        let body = match head.body() {
            BodyFraming::Length(n) => usize::try_from(n).ok().and_then(|n| {
                self.bytes
                    .get(head.head_len()..head.head_len().checked_add(n)?)
            }),
            _ => None,
        };
        [None, body].into_iter().any(
            |body| match subsonic::parse_request(query, body).credential {
                Ok(Credential::Password { user: u, password }) => {
                    same_username(&u, user) && self.right_password(&u, password.as_bytes())
                }
                _ => false,
            },
        )
    }

    fn forward(&self, f: &gatehouse_core::gateway::Forward, sent: &[u8]) {
        let head = self.head();
        // A Subsonic form body is read by gatehouse (to take the secrets out of it) and sent
        // right after the head; any other body follows the head as the client framed it.
        let body_read = f.consumed != head.head_len();
        if body_read {
            assert_eq!(f.class, PathClass::Subsonic);
            let BodyFraming::Length(n) = head.body() else {
                panic!("read a body of {:?}", head.body());
            };
            assert_eq!(f.consumed, head.head_len() + usize::try_from(n).unwrap());
            assert_eq!(f.body, BodyFraming::None);
        }
        assert_ne!(
            f.class,
            PathClass::Reserved,
            "a reserved path was forwarded"
        );
        if f.class == PathClass::Public {
            assert!(f.user.is_none(), "an identity on a public path");
        }
        if let Some(user) = &f.user {
            assert!(
                self.proves(user, true),
                "forwarded as {user:?} without proof: {:?}",
                String::from_utf8_lossy(self.bytes)
            );
        }
        let forwarded = match RequestHead::parse(sent) {
            Ok(Parse::Complete(h)) => h,
            Err(RequestError::HeadTooLarge | RequestError::TooManyHeaders)
                if sent.len() > MAX_HEAD_LEN - 1024 || head.headers().len() > MAX_HEADERS - 12 =>
            {
                return;
            }
            other => panic!(
                "forwarded head does not parse: {:?}: {:?}",
                other.map(|_| ()),
                String::from_utf8_lossy(sent)
            ),
        };
        let sent_body = &sent[forwarded.head_len()..];
        if body_read {
            assert_eq!(
                forwarded.body(),
                match sent_body.len() {
                    0 => BodyFraming::None,
                    n => BodyFraming::Length(n as u64),
                },
                "the stripped body is framed by its own length"
            );
        } else {
            assert!(sent_body.is_empty());
            assert_eq!(forwarded.body(), f.body);
        }
        if f.class == PathClass::Subsonic {
            let query = forwarded
                .target()
                .split_once('?')
                .map_or(&b""[..], |(_, q)| q.as_bytes());
            let body = Some(sent_body).filter(|b| !b.is_empty());
            assert!(
                subsonic::parse_request(query, body).credential.is_err(),
                "a Subsonic secret reached the app: {:?}",
                String::from_utf8_lossy(sent)
            );
        }
        let mut again = vec![0u8; forwarded.target().len() + 1];
        assert_eq!(
            canonicalize(forwarded.target(), &mut again).map(|t| t.as_str()),
            Ok(forwarded.target()),
            "the app gets the canonical target"
        );
        let identity: Vec<(&str, &[u8])> = forwarded
            .headers()
            .iter()
            .filter(|h| is_identity_header(h.name.as_bytes(), DEFAULT_USER_HEADER))
            .map(|h| (h.name, h.value))
            .collect();
        match &f.user {
            None => assert!(identity.is_empty(), "{identity:?} reached the app"),
            Some(user) => {
                let admin = self.users.find(user).is_some_and(|u| u.admin);
                let mut expected: Vec<(&str, &[u8])> = vec![(DEFAULT_USER_HEADER, user.as_bytes())];
                if admin {
                    expected.push(("Remote-Groups", b"admins"));
                }
                assert_eq!(identity, expected);
            }
        }
        if let Some(cookie) = &f.set_cookie {
            let user = f.user.as_deref().expect("a cookie for someone");
            assert!(cookie.starts_with(cookie_name(self.tls).as_bytes()));
            assert!(
                self.proves(user, false),
                "a renewed session without a session"
            );
        }
    }

    fn respond(&self, r: &gatehouse_core::gateway::Respond, written: &[u8]) {
        assert!(r.consumed <= self.bytes.len());
        if let Outcome::Refused(_) = r.outcome {
            assert!(r.close, "a refusal keeps the connection");
        }
        if r.len == 0 {
            assert_eq!(
                r.outcome,
                Outcome::Refused(gatehouse_core::gateway::Refusal::OutputTooSmall)
            );
            return;
        }
        let head_request = RequestHead::parse(self.bytes)
            .ok()
            .and_then(|p| match p {
                Parse::Complete(h) => Some(h.is_head()),
                Parse::Incomplete => None,
            })
            .unwrap_or(false);
        let response = match ResponseHead::parse(written, head_request, false) {
            Ok(Parse::Complete(response)) => response,
            other => panic!(
                "gatehouse wrote an invalid response: {:?}: {:?}",
                other.map(|_| ()),
                String::from_utf8_lossy(written)
            ),
        };
        let session_set = response.headers().iter().any(|h| {
            h.name.eq_ignore_ascii_case("set-cookie")
                && h.value.starts_with(cookie_name(self.tls).as_bytes())
                && h.value
                    .get(cookie_name(self.tls).len() + 1)
                    .is_some_and(|&b| b != b';')
        });
        if let Outcome::Account(outcome) = r.outcome {
            self.account(r, outcome);
        } else {
            assert!(!r.users_changed, "{:?} changed the users", r.outcome);
        }
        assert_eq!(
            r.users_changed,
            self.users != self.after,
            "users_changed says {} for {:?}",
            r.users_changed,
            r.outcome
        );
        if session_set && r.outcome == Outcome::Account(AccountOutcome::PasswordChanged) {
            // Checked in `account`: a fresh session after a password change.
        } else if session_set {
            assert_eq!(r.outcome, Outcome::LoggedIn);
            let head = self.head();
            let body = &self.bytes[head.head_len()..r.consumed];
            let mut name = [0u8; 256];
            let mut password = [0u8; 256];
            let name = form_field(body, "username", &mut name).unwrap().unwrap();
            let password = form_field(body, "password", &mut password)
                .unwrap()
                .unwrap();
            let name = core::str::from_utf8(name).unwrap();
            assert!(
                self.right_password(name, password),
                "logged in without the password"
            );
        }
        if r.outcome == Outcome::ForwardAuthAllowed {
            let user = response
                .headers()
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(DEFAULT_USER_HEADER))
                .map(|h| core::str::from_utf8(h.value).unwrap());
            // An empty value vouches for nobody (it overwrites a client's own copy).
            if let Some(user) = user.filter(|u| !u.is_empty()) {
                assert!(
                    self.proves(user, false),
                    "forward-auth allowed {user:?} without proof: {:?}",
                    String::from_utf8_lossy(self.bytes)
                );
            }
        }
    }
}

impl Judge<'_> {
    /// The login password of `name`: the world's, or (after a password change earlier on this
    /// connection) the one the table holds now.
    fn right_password(&self, name: &str, password: &[u8]) -> bool {
        let original = PASSWORDS
            .iter()
            .any(|(n, p)| same_username(n, name) && same_pbkdf2_key(p.as_bytes(), password));
        let changed = self.users.find(name).is_some_and(|u| {
            users().find(name).is_some_and(|o| o.password != u.password)
                && gatehouse_core::password::verify_or_dummy(
                    Some(&u.password),
                    password,
                    MIN_ITERATIONS,
                )
        });
        let unchanged = self
            .users
            .find(name)
            .zip(users().find(name))
            .is_some_and(|(u, o)| u.password == o.password);
        (original && unchanged) || changed
    }

    /// The user a session cookie of the request names, as the request found the table.
    fn session_user(&self) -> Option<String> {
        let head = self.head();
        let token = single_session_cookie(head.header_values("cookie"), cookie_name(self.tls));
        self.keys
            .verify_user(token.ok()??, self.now, self.users)
            .ok()
            .map(|(_, u)| u.name.to_string())
    }

    /// The form's CSRF token equals the CSRF cookie and is signed by gatehouse.
    fn csrf_valid(&self, body: &[u8]) -> bool {
        let head = self.head();
        let mut buf = [0u8; 128];
        let form = form_field(body, "csrf", &mut buf).ok().flatten();
        let cookie = head
            .header_values("cookie")
            .find_map(|v| cookie_value(v, csrf_cookie_name(self.tls)));
        matches!((form, cookie), (Some(f), Some(c)) if csrf_tokens_match(self.keys, f, c))
    }

    /// What the account page may do, and may not.
    fn account(&self, r: &gatehouse_core::gateway::Respond, outcome: AccountOutcome) {
        if !r.users_changed && outcome != AccountOutcome::PasswordChanged {
            return;
        }
        let head = self.head();
        assert_eq!(head.method(), "POST", "{outcome:?} without a POST");
        let body = &self.bytes[head.head_len()..r.consumed];
        let user = self
            .session_user()
            .unwrap_or_else(|| panic!("{outcome:?} without a session"));
        assert!(
            self.csrf_valid(body),
            "{outcome:?} without a CSRF token pair"
        );
        if outcome == AccountOutcome::PasswordChanged {
            let mut buf = [0u8; 256];
            let current = form_field(body, "current", &mut buf).unwrap().unwrap();
            assert!(
                self.right_password(&user, current),
                "a password changed without the current one"
            );
            let mut new = [0u8; 256];
            let new = form_field(body, "new", &mut new).unwrap().unwrap();
            let stored = &self.after.find(&user).unwrap().password;
            assert!(gatehouse_core::password::verify_or_dummy(
                Some(stored),
                new,
                MIN_ITERATIONS
            ));
        }
    }
}

fn basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let raw = Base64::decode_vec(core::str::from_utf8(rest.trim_ascii()).ok()?).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let name = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((name, raw[colon + 1..].to_vec()))
}

/// Whether PBKDF2-HMAC-SHA256 treats two passwords as one. HMAC pads a key shorter than its
/// 64-byte block with zeros, so a password and the same password with NULs appended give the
/// same hash (a property of the standard construction, shared by every PBKDF2 user).
fn same_pbkdf2_key(a: &[u8], b: &[u8]) -> bool {
    fn padded(p: &[u8]) -> &[u8] {
        if p.len() > 64 {
            return p;
        }
        let end = p.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        &p[..end]
    }
    padded(a) == padded(b)
}
