//! Property tests of the gateway decision: any bytes from any peer get an answer without a
//! panic, and reading a request in pieces never changes what is decided.

use gatehouse_core::credential_cache::CredentialCache;
use gatehouse_core::gateway::{
    Decision, Exchange, Gateway, GatewayConfig, OUT_LEN, PendingChecks, RANDOM_LEN, Shared,
};
use gatehouse_core::password::{MIN_ITERATIONS, hash_password};
use gatehouse_core::peer::Peer;
use gatehouse_core::session::{SessionKey, SessionKeys};
use gatehouse_core::throttle::Throttle;
use gatehouse_core::trusted::TrustedSources;
use gatehouse_core::users::UserTable;
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

struct World {
    users: UserTable<4>,
    throttle: Throttle<8>,
    cache: CredentialCache<4>,
    pending: PendingChecks,
    trusted: TrustedSources<2>,
    keys: SessionKeys,
}

impl World {
    fn new() -> Self {
        let mut users = UserTable::new();
        users
            .add(
                "alice",
                true,
                hash_password(b"pw", &[1; 16], MIN_ITERATIONS).unwrap(),
            )
            .unwrap();
        World {
            users,
            throttle: Throttle::default(),
            cache: CredentialCache::new(&[3; 32], 60),
            pending: PendingChecks::new(),
            trusted: TrustedSources::parse("10.0.0.0/8").unwrap(),
            keys: SessionKeys::new(SessionKey::from_bytes([4; 32])),
        }
    }

    /// The decision as a comparable summary (variant, lengths, bytes written).
    fn decide(&mut self, peer: Peer, bytes: &[u8]) -> (String, Vec<u8>) {
        let gateway = Gateway {
            config: GatewayConfig {
                password_iterations: MIN_ITERATIONS,
                ..GatewayConfig::DEFAULT
            },
            trusted: &self.trusted,
            proxies: &TrustedSources::new(),
            keys: &self.keys,
        };
        let mut shared = Shared {
            users: &mut self.users,
            throttle: &mut self.throttle,
            credentials: &mut self.cache,
            pending: &mut self.pending,
        };
        let random = [9u8; RANDOM_LEN];
        let ex = Exchange {
            peer,
            tls: false,
            bytes,
            now: NOW,
            time_known: true,
            random: &random,
        };
        let mut out = vec![0u8; OUT_LEN];
        match gateway.decide(&ex, &mut shared, &mut out) {
            Decision::NeedMoreBytes => ("need more".into(), Vec::new()),
            Decision::ReadBody {
                total,
                send_continue,
            } => (format!("read body {total} {send_continue}"), Vec::new()),
            Decision::Forward(f) => (
                format!("forward {} {:?} {:?}", f.consumed, f.body, f.user),
                out[..f.head_len].to_vec(),
            ),
            Decision::Respond(r) => (
                format!("respond {} {} {:?}", r.consumed, r.close, r.outcome),
                out[..r.len].to_vec(),
            ),
            Decision::VerifyPassword(c) => (format!("verify {}", c.username()), Vec::new()),
            Decision::WaitForCheck => ("wait for check".into(), Vec::new()),
            Decision::ServeMetrics(m) => (format!("metrics {m:?}"), Vec::new()),
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "GET ",
    "POST ",
    "HEAD ",
    "/",
    "/app",
    "/share/",
    "/_gatehouse/",
    "login",
    "auth",
    "logout",
    "health",
    "/rest/",
    "..",
    "%2e",
    "%2F",
    "?return=%2F%2Fevil",
    " HTTP/1.1",
    " HTTP/1.0",
    "\r\n",
    "\n",
    "\r",
    "\r\n\r\n",
    "Host: music",
    "Content-Length: 5",
    "Content-Length: 0",
    "Transfer-Encoding: chunked",
    "Remote-User: alice",
    "remote_user: admin",
    "Authorization: Basic YWxpY2U6cHc=",
    "Authorization: Basic !!",
    "Cookie: gatehouse_session=x",
    "Cookie: gatehouse_csrf=y",
    "Accept: text/html",
    "X-Original-URI: /app",
    "X-Forwarded-Uri: /share/x",
    "X-Forwarded-For: 1.2.3.4",
    "Connection: close",
    "Expect: 100-continue",
    "Origin: http://music",
    "csrf=y&username=alice&password=pw",
    "\0",
];

fn request_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..30)
            .prop_map(|parts| parts.concat().into_bytes()),
    ]
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        Just(Peer::Unix),
        Just(Peer::Ip("10.0.0.5".parse().unwrap())),
        Just(Peer::Ip("192.0.2.1".parse().unwrap())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_from_any_peer_get_an_answer(bytes in request_like(), peer in peer()) {
        let mut world = World::new();
        let _ = world.decide(peer, &bytes);
    }

    #[test]
    fn reading_in_pieces_never_changes_the_decision(
        bytes in request_like(),
        peer in peer(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let whole = World::new().decide(peer, &bytes);
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        ends.sort_unstable();
        ends.push(bytes.len());
        let mut world = World::new();
        let mut pieces = ("need more".to_owned(), Vec::new());
        for end in ends {
            pieces = world.decide(peer, &bytes[..end]);
            if pieces.0 != "need more" && !pieces.0.starts_with("read body") {
                break;
            }
        }
        prop_assert_eq!(pieces, whole);
    }
}
