//! Proves that core code paths make no heap allocation: a counting global allocator wraps
//! the system one, and each test asserts a count of zero across a whole operation.
#![allow(unsafe_code)] // the global allocator below is the only unsafe code, test-only

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the number of heap allocations it made on this thread.
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.with(|c| c.get());
    let result = f();
    let after = ALLOCATIONS.with(|c| c.get());
    (result, after - before)
}

#[test]
fn counter_sees_an_allocation() {
    // Guards the guard: if the counter stopped counting, every zero below would be meaningless.
    let (_, n) = count_allocations(|| std::hint::black_box(vec![1u8; 16]));
    assert!(n >= 1);
}

/// The identity layer: trusted sources, peers, the identity header, the login throttle and
/// the credential cache.
mod identity_layer {
    use super::count_allocations;

    #[test]
    fn trusted_sources_peer_match_and_identity_header_allocate_nothing() {
        use gatehouse_core::identity::{DEFAULT_USER_HEADER, read_identity_httparse};
        use gatehouse_core::peer::Peer;
        use gatehouse_core::trusted::TrustedSources;

        let head: &[u8] = b"GET /app/ HTTP/1.1\r\nHost: music.example\r\n\
            Remote-User: alice\r\nAccept: text/html\r\n\r\n";
        let mut storage = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut storage);
        assert!(request.parse(head).unwrap().is_complete());
        let headers = request.headers;

        let (outcome, allocations) = count_allocations(|| {
            let sources =
                TrustedSources::<16>::parse(" 10.0.0.0/8, 192.168.1.1/24 , 2001:db8::/32, @")
                    .ok()?;
            let peer = Peer::parse("[::ffff:192.168.1.77]:51234").ok()?;
            let matched = sources.find(&peer)?;
            let user = read_identity_httparse(DEFAULT_USER_HEADER, headers).ok()??;
            // A refusal must not allocate either (the error carries a bounded excerpt).
            let refused = TrustedSources::<16>::parse("10.0.0.0/8, not-an-address").is_err();
            Some((matched.index, user, refused))
        });
        let (index, user, refused) = outcome.expect("trusted peer with a username");
        assert_eq!(index, 1);
        assert_eq!(user, "alice");
        assert!(refused);
        assert_eq!(allocations, 0);
    }

    #[test]
    fn login_throttle_allocates_nothing() {
        use gatehouse_core::peer::Peer;
        use gatehouse_core::throttle::{Throttle, ThrottlePolicy, Verdict};

        let mut throttle = Throttle::<64>::new(ThrottlePolicy::DEFAULT);
        let (verdict, allocations) = count_allocations(|| {
            let attacker = Peer::parse("[2001:db8::66]:4000").ok()?;
            for now in 0..100 {
                if throttle.check(&attacker, "alice", now) == Verdict::Allowed {
                    throttle.record_failure(&attacker, "alice", now);
                }
            }
            let home = Peer::parse("192.0.2.10:5000").ok()?;
            let verdict = throttle.check(&home, "Alice", 100);
            throttle.record_success(&home, "Alice", 100);
            Some(verdict)
        });
        assert_eq!(verdict, Some(Verdict::Allowed));
        assert_eq!(allocations, 0);
    }

    #[test]
    fn credential_cache_allocates_nothing() {
        use gatehouse_core::credential_cache::{CredentialCache, KEY_LEN, Lookup};

        let hash = b"$pbkdf2-sha256$i=600000,l=32$c2FsdA$aGFzaA";
        let (lookups, allocations) = count_allocations(|| {
            let mut cache = CredentialCache::<16>::new(&[9; KEY_LEN], 300);
            let first = cache.lookup(b"alice", b"pw", hash, 2, 10);
            cache.insert(b"alice", b"pw", hash, 2, 10);
            let again = cache.lookup(b"alice", b"pw", hash, 2, 11);
            let revoked = cache.lookup(b"alice", b"pw", hash, 3, 12);
            [first, again, revoked]
        });
        assert_eq!(lookups, [Lookup::Miss, Lookup::Hit, Lookup::Revoked]);
        assert_eq!(allocations, 0);
    }
}

mod accounts {
    use super::count_allocations;
    use gatehouse_core::password::{self, MIN_ITERATIONS, PasswordHash, SALT_LEN};
    use gatehouse_core::users::UserTable;

    #[test]
    fn hashing_and_verifying_a_password_does_not_allocate() {
        let (ok, n) = count_allocations(|| {
            let hash = password::hash_password(b"hunter2", &[7; SALT_LEN], MIN_ITERATIONS)?;
            let reparsed = PasswordHash::parse(hash.as_str())?;
            Ok::<_, password::PasswordHashError>(
                reparsed.verify(b"hunter2")
                    && !reparsed.verify(b"hunter3")
                    && !password::verify_or_dummy(None, b"hunter2", MIN_ITERATIONS),
            )
        });
        assert_eq!(ok, Ok(true));
        assert_eq!(n, 0);
    }

    #[test]
    fn users_table_provision_login_save_and_load_do_not_allocate() {
        let (ok, n) = count_allocations(|| {
            let mut table = UserTable::<8>::new();
            let created = table
                .provision("alice", &[1; 18], &[2; SALT_LEN], MIN_ITERATIONS)
                .map(|p| p.created && p.user.admin);
            let hash = password::hash_password(b"pw", &[3; SALT_LEN], MIN_ITERATIONS);
            let added = hash.map(|h| table.add("bob", false, h).is_ok());
            let login = table.authenticate("BOB", b"pw", MIN_ITERATIONS).is_ok();
            let mut json = [0u8; UserTable::<8>::JSON_CAPACITY];
            let loaded = table
                .to_json(&mut json)
                .ok()
                .and_then(|len| json.get(..len))
                .and_then(|doc| UserTable::<8>::from_json(doc).ok());
            created == Ok(true) && added == Ok(true) && login && loaded.as_ref() == Some(&table)
        });
        assert!(ok);
        assert_eq!(n, 0);
    }

    #[test]
    fn issue_session_verify_it_and_check_a_password_without_allocating() {
        use gatehouse_core::session::{
            MAX_SET_COOKIE_LEN, SessionKey, SessionKeys, session_cookies, write_set_cookie,
        };
        let mut users = UserTable::<8>::new();
        let hash = password::hash_password(b"pw", &[3; SALT_LEN], MIN_ITERATIONS).unwrap();
        users.add("alice", true, hash).unwrap();
        let mut keys = SessionKeys::new(SessionKey::from_bytes([1; 32]));
        keys.rotate(SessionKey::from_bytes([2; 32]));
        let now = 1_790_000_000;

        let (ok, n) = count_allocations(|| {
            let Ok(token) = keys.issue(users.table_id(), "alice", 0, now, 3600) else {
                return false;
            };
            let mut cookie = [0u8; MAX_SET_COOKIE_LEN];
            let written = write_set_cookie(&mut cookie, &token, 3600, true).is_ok();
            let header = [b"theme=dark; gatehouse_session=", token.as_bytes()];
            let mut line = [0u8; 256];
            let mut len = 0;
            for part in header {
                line[len..len + part.len()].copy_from_slice(part);
                len += part.len();
            }
            let verified = session_cookies(&line[..len])
                .find_map(|value| keys.verify_user(value, now + 60, &users).ok())
                .is_some_and(|(session, user)| session.generation == 0 && user.admin);
            let login = users.authenticate("alice", b"pw", MIN_ITERATIONS).is_ok();
            written && verified && login
        });
        assert!(ok);
        assert_eq!(n, 0);
    }
}

/// Subsonic credentials: parsing, the md5 token, the failure answers and the stripped query.
mod subsonic {
    use super::count_allocations;
    use gatehouse_core::subsonic::{
        self, Credential, ErrorCode, Format, GATEHOUSE_EXTENSIONS, MAX_RESPONSE_LEN,
    };

    #[test]
    fn parse_check_token_answer_and_strip_without_allocating() {
        let query = b"u=alice&t=26719a1196d2a940705a59634eb18eab&s=c19b2d&v=1.16.1&c=app&f=json";
        let (ok, n) = count_allocations(|| {
            let request = subsonic::parse_request(query, Some(b"id=7&p%3D=x"));
            let token_ok = match &request.credential {
                Ok(Credential::Token { token, salt, .. }) => {
                    subsonic::token_matches(b"sesame", salt, token)
                }
                _ => false,
            };
            let mut out = [0u8; MAX_RESPONSE_LEN];
            let xml = subsonic::write_error(
                &mut out,
                &Format::Xml,
                ErrorCode::WrongCredentials,
                Some("/_gatehouse/account"),
                None,
                false,
            )
            .is_ok();
            let json = subsonic::write_error(
                &mut out,
                &request.format,
                ErrorCode::InvalidApiKey,
                None,
                Some(10),
                true,
            )
            .is_ok();
            let ext =
                subsonic::write_extensions(&mut out, &Format::Json, GATEHOUSE_EXTENSIONS, false)
                    .is_ok();
            let mut target = [0u8; 256];
            let stripped = subsonic::strip_secrets_from_target(
                "/rest/ping.view?u=alice&p=enc:736573616d65&v=1.16.1&c=app",
                &mut target,
            )
            .is_ok_and(|n| &target[..n] == b"/rest/ping.view?u=alice&v=1.16.1&c=app");
            token_ok && xml && json && ext && stripped && request.format == Format::Json
        });
        assert!(ok);
        assert_eq!(n, 0);
    }

    #[test]
    fn app_passwords_add_check_find_and_save_without_allocating() {
        use gatehouse_core::password::{self, MIN_ITERATIONS, SALT_LEN};
        use gatehouse_core::users::{TokenCheck, UserTable};
        let mut users = UserTable::<4>::new();
        let hash = password::hash_password(b"pw", &[3; SALT_LEN], MIN_ITERATIONS).unwrap();
        users.add("alice", false, hash).unwrap();
        let (ok, n) = count_allocations(|| {
            let Ok(secret) = users.add_app_password("alice", "phone", &[9; 18], 100) else {
                return false;
            };
            let by_password = users.check_app_password("alice", secret.as_bytes()) == Some(0);
            let token = subsonic::token(secret.as_bytes(), b"c19b2d");
            let by_token =
                users.check_app_token("alice", &token, b"c19b2d") == TokenCheck::Matched(0);
            let by_key = users.find_api_key(secret.as_bytes()).is_some();
            let used = users.record_app_password_use(0, 5000);
            let mut json = [0u8; UserTable::<4>::JSON_CAPACITY];
            let saved = users
                .to_json(&mut json)
                .ok()
                .and_then(|len| json.get(..len))
                .and_then(|doc| UserTable::<4>::from_json(doc).ok())
                .is_some_and(|back| back == users);
            let revoked = users.revoke_app_password("alice", "phone").is_ok();
            by_password && by_token && by_key && used && saved && revoked
        });
        assert!(ok);
        assert_eq!(n, 0);
    }
}

/// The HTTP engine and the gateway decision, across whole requests.
mod engine {
    use super::count_allocations;
    use gatehouse_core::credential_cache::CredentialCache;
    use gatehouse_core::gateway::{
        Decision, Exchange, Gateway, GatewayConfig, OUT_LEN, PendingChecks, RANDOM_LEN, Shared,
    };
    use gatehouse_core::http::{
        BodyRelay, Parse, ResponseHead, Version, write_client_response_head,
    };
    use gatehouse_core::password::{self, MIN_ITERATIONS, SALT_LEN};
    use gatehouse_core::peer::Peer;
    use gatehouse_core::session::{SessionKey, SessionKeys};
    use gatehouse_core::throttle::Throttle;
    use gatehouse_core::trusted::TrustedSources;
    use gatehouse_core::users::UserTable;

    #[test]
    fn a_full_request_and_response_allocate_nothing() {
        let mut users = UserTable::<8>::new();
        let hash = password::hash_password(b"pw", &[3; SALT_LEN], MIN_ITERATIONS).unwrap();
        users.add("alice", true, hash).unwrap();
        let keys = SessionKeys::new(SessionKey::from_bytes([1; 32]));
        let trusted = TrustedSources::<4>::parse("10.0.0.0/8").unwrap();
        let mut throttle = Throttle::<16>::default();
        let mut cache = CredentialCache::<4>::new(&[2; 32], 300);
        let mut pending = PendingChecks::new();
        let now = 1_790_000_000;
        let generation = users.find("alice").unwrap().generation;
        let token = keys
            .issue(users.table_id(), "alice", generation, now - 5, 3600)
            .unwrap();
        let request = format!(
            "POST /app/upload HTTP/1.1\r\nHost: music\r\nCookie: __Host-gatehouse_session={token}\r\n\
             Remote-User: admin\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\nRemote-User: admin\r\n\r\n"
        );
        let basic = b"GET /rest/ping.view HTTP/1.1\r\nHost: music\r\nAuthorization: Basic YWxpY2U6cHc=\r\n\r\n";
        let response: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: x\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let random = [7u8; RANDOM_LEN];
        let mut out = vec![0u8; OUT_LEN];
        let mut body_out = [0u8; 64];

        let (ok, n) = count_allocations(|| {
            let gateway = Gateway {
                config: GatewayConfig {
                    password_iterations: MIN_ITERATIONS,
                    ..GatewayConfig::DEFAULT
                },
                trusted: &trusted,
                proxies: &TrustedSources::new(),
                keys: &keys,
            };
            let mut shared = Shared {
                users: &mut users,
                throttle: &mut throttle,
                credentials: &mut cache,
                pending: &mut pending,
            };
            let peer = Peer::parse("192.0.2.1:4000").ok()?;
            let ex = Exchange {
                peer,
                tls: true,
                bytes: request.as_bytes(),
                now,
                time_known: true,
                random: &random,
            };
            let Decision::Forward(forward) = gateway.decide(&ex, &mut shared, &mut out) else {
                return None;
            };
            let mut relay = BodyRelay::new(forward.body);
            let step = relay
                .relay(&request.as_bytes()[forward.consumed..], &mut body_out)
                .ok()?;
            let body_ok =
                relay.is_done() && &body_out[..step.produced] == b"5\r\nhello\r\n0\r\n\r\n";

            let Ok(Parse::Complete(resp)) = ResponseHead::parse(response, false, false) else {
                return None;
            };
            let plan =
                write_client_response_head(&resp, Version::Http11, true, &[], &mut out).ok()?;

            // The same session again: answered from the session cache.
            let Decision::Forward(again) = gateway.decide(&ex, &mut shared, &mut out) else {
                return None;
            };
            let session_again = again.user.as_deref() == Some("alice");

            // HTTP Basic: a password check outside the lock, then the cached path.
            let ex = Exchange { bytes: basic, ..ex };
            let Decision::VerifyPassword(check) = gateway.decide(&ex, &mut shared, &mut out) else {
                return None;
            };
            let verified = check.verify();
            let first = gateway.finish(&ex, &mut shared, &check, verified, &mut out);
            let cached = gateway.decide(&ex, &mut shared, &mut out);
            Some(
                body_ok
                    && plan.head_len > 0
                    && session_again
                    && matches!(first, Decision::Forward(_))
                    && matches!(cached, Decision::Forward(_)),
            )
        });
        assert_eq!(ok, Some(true));
        assert_eq!(n, 0);
        // The second request with the session was a hit, not a second full check.
        #[cfg(feature = "session-cache")]
        assert_eq!(cache.sessions.len(), 1);
    }

    #[test]
    fn the_login_page_and_refusals_allocate_nothing() {
        let mut users = UserTable::<2>::new();
        let keys = SessionKeys::new(SessionKey::from_bytes([1; 32]));
        let trusted = TrustedSources::<1>::new();
        let mut throttle = Throttle::<4>::default();
        let mut cache = CredentialCache::<2>::new(&[2; 32], 300);
        let mut pending = PendingChecks::new();
        let random = [7u8; RANDOM_LEN];
        let mut out = vec![0u8; OUT_LEN];
        let (ok, n) = count_allocations(|| {
            let gateway = Gateway {
                config: GatewayConfig::DEFAULT,
                trusted: &trusted,
                proxies: &TrustedSources::new(),
                keys: &keys,
            };
            let mut shared = Shared {
                users: &mut users,
                throttle: &mut throttle,
                credentials: &mut cache,
                pending: &mut pending,
            };
            let mut all = true;
            for bytes in [
                &b"GET /_gatehouse/login HTTP/1.1\r\nHost: a\r\n\r\n"[..],
                b"GET /app HTTP/1.1\r\nHost: a\r\nAccept: text/html\r\n\r\n",
                b"GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ] {
                let ex = Exchange {
                    peer: Peer::Unix,
                    tls: false,
                    bytes,
                    now: 1,
                    time_known: true,
                    random: &random,
                };
                all &= matches!(
                    gateway.decide(&ex, &mut shared, &mut out),
                    Decision::Respond(_)
                );
            }
            all
        });
        assert!(ok);
        assert_eq!(n, 0);
    }
}

/// Subsonic paths through the whole gateway decision.
mod subsonic_gateway {
    use super::count_allocations;
    use gatehouse_core::credential_cache::CredentialCache;
    use gatehouse_core::gateway::{
        Decision, Exchange, Gateway, GatewayConfig, OUT_LEN, PendingChecks, RANDOM_LEN, Shared,
    };
    use gatehouse_core::password::{self, MIN_ITERATIONS, SALT_LEN};
    use gatehouse_core::peer::Peer;
    use gatehouse_core::session::{SessionKey, SessionKeys};
    use gatehouse_core::throttle::Throttle;
    use gatehouse_core::trusted::TrustedSources;
    use gatehouse_core::users::UserTable;

    #[test]
    fn app_password_requests_errors_and_extensions_allocate_nothing() {
        let mut users = UserTable::<8>::new();
        let hash = password::hash_password(b"pw", &[3; SALT_LEN], MIN_ITERATIONS).unwrap();
        users.add("alice", true, hash).unwrap();
        let key = users
            .add_app_password("alice", "phone", &[5; 18], 1)
            .unwrap();
        let keys = SessionKeys::new(SessionKey::from_bytes([1; 32]));
        let trusted = TrustedSources::<4>::parse("10.0.0.0/8").unwrap();
        let mut throttle = Throttle::<16>::default();
        let mut cache = CredentialCache::<4>::new(&[2; 32], 300);
        let mut pending = PendingChecks::new();
        let get = format!(
            "GET /rest/getAlbum.view?id=1&apiKey={key}&v=1.16.1&c=app HTTP/1.1\r\nHost: music\r\n\r\n"
        );
        let body = format!("u=alice&p={key}&id=1");
        let post = format!(
            "POST /rest/getSong HTTP/1.1\r\nHost: music\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let wrong = b"GET /rest/ping.view?apiKey=nope&f=json HTTP/1.1\r\nHost: music\r\n\r\n";
        let ext = b"GET /rest/getOpenSubsonicExtensions HTTP/1.1\r\nHost: music\r\n\r\n";
        let random = [7u8; RANDOM_LEN];
        let mut out = vec![0u8; OUT_LEN];

        let (ok, n) = count_allocations(|| {
            let gateway = Gateway {
                config: GatewayConfig {
                    password_iterations: MIN_ITERATIONS,
                    ..GatewayConfig::DEFAULT
                },
                trusted: &trusted,
                proxies: &TrustedSources::new(),
                keys: &keys,
            };
            let mut shared = Shared {
                users: &mut users,
                throttle: &mut throttle,
                credentials: &mut cache,
                pending: &mut pending,
            };
            let ex = Exchange {
                peer: Peer::parse("192.0.2.1:4000").ok()?,
                tls: false,
                bytes: get.as_bytes(),
                now: 1_790_000_000,
                time_known: true,
                random: &random,
            };
            let mut all = true;
            for bytes in [get.as_bytes(), post.as_bytes()] {
                let ex = Exchange { bytes, ..ex };
                all &= matches!(
                    gateway.decide(&ex, &mut shared, &mut out),
                    Decision::Forward(_)
                );
            }
            for bytes in [&wrong[..], &ext[..]] {
                let ex = Exchange { bytes, ..ex };
                all &= matches!(
                    gateway.decide(&ex, &mut shared, &mut out),
                    Decision::Respond(_)
                );
            }
            Some(all)
        });
        assert_eq!(ok, Some(true));
        assert_eq!(n, 0);
    }
}
