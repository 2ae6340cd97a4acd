//! The whole gateway decision for a realistic browser request with a session cookie, beside
//! `httparse` alone parsing the same head (the floor), with the session token in the session
//! cache (a browser's every request after its first) and not, and on a public path (no
//! session check, no identity); and the trusted-sources match for lists of 1, 16 and 64
//! entries.
//!
//! Run: `cargo bench -p gatehouse-core --bench decision`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_core::credential_cache::CredentialCache;
use gatehouse_core::gateway::{
    Decision, Exchange, Gateway, GatewayConfig, OUT_LEN, PendingChecks, RANDOM_LEN, Shared,
};
use gatehouse_core::http::{
    ForwardOptions, Identity, Parse, RequestHead, canonicalize, write_forward_head,
};
use gatehouse_core::password::{MIN_ITERATIONS, hash_password};
use gatehouse_core::peer::Peer;
use gatehouse_core::session::{SESSION_CACHE_SLOTS, SessionCache, SessionKey, SessionKeys};
use gatehouse_core::throttle::Throttle;
use gatehouse_core::trusted::TrustedSources;
use gatehouse_core::users::UserTable;

const NOW: u64 = 1_800_000_000;

fn browser_request(token: &str) -> Vec<u8> {
    format!(
        "GET /app/albums?_sort=name&_order=ASC HTTP/1.1\r\n\
         Host: music.example.org\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
         Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
         Accept-Language: en-US,en;q=0.9\r\n\
         Accept-Encoding: gzip, deflate, br, zstd\r\n\
         Referer: https://music.example.org/app/\r\n\
         Sec-Fetch-Dest: document\r\n\
         Sec-Fetch-Mode: navigate\r\n\
         Sec-Fetch-Site: same-origin\r\n\
         Upgrade-Insecure-Requests: 1\r\n\
         Cookie: theme=dark; __Host-gatehouse_session={token}\r\n\
         Connection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

/// The length of the head a decision forwards (0 for any other decision), kept from the
/// optimiser.
fn forward_len(decision: Decision) -> usize {
    match decision {
        Decision::Forward(f) => black_box(f.head_len),
        _ => 0,
    }
}

fn bench(c: &mut Criterion) {
    let mut users = UserTable::<16>::new();
    for (i, name) in ["alice", "bob", "carol", "dave"].iter().enumerate() {
        let hash = hash_password(b"pw", &[i as u8; 16], MIN_ITERATIONS).unwrap();
        users.add(name, i == 0, hash).unwrap();
    }
    let keys = SessionKeys::new(SessionKey::from_bytes([1; 32]));
    let trusted = TrustedSources::<8>::parse("10.0.0.0/8, fd00::/8, @").unwrap();
    let mut throttle = Throttle::<64>::default();
    let mut cache = CredentialCache::<16>::new(&[2; 32], 300);
    let mut pending = PendingChecks::new();
    let carol = users.find("carol").unwrap().generation;
    let table = users.table_id();
    let token = keys
        .issue(table, "carol", carol, NOW - 60, 30 * 24 * 3600)
        .unwrap();
    let request = browser_request(&token);
    eprintln!("request head: {} bytes", request.len());

    let gateway = Gateway {
        config: GatewayConfig::DEFAULT,
        trusted: &trusted,
        proxies: &TrustedSources::new(),
        keys: &keys,
    };
    let random = [7u8; RANDOM_LEN];
    let peer = Peer::Ip("192.0.2.10".parse().unwrap());
    let mut out = vec![0u8; OUT_LEN];

    // One decision over the state a shell holds, as from a browser on TLS.
    let mut decide = |bytes: &[u8]| {
        let mut shared = Shared {
            users: &mut users,
            throttle: &mut throttle,
            credentials: &mut cache,
            pending: &mut pending,
        };
        let ex = Exchange {
            peer,
            tls: true,
            bytes,
            now: NOW,
            time_known: true,
            random: &random,
        };
        gateway.decide(&ex, &mut shared, &mut out)
    };

    // Sanity: the benchmarked path is the forward of an authenticated request.
    match decide(&request) {
        Decision::Forward(f) => assert_eq!(f.user.as_deref(), Some("carol")),
        other => panic!("expected a forward, got {other:?}"),
    }

    let mut group = c.benchmark_group("browser_request_with_session_cookie");
    group.bench_function("httparse_alone", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            black_box(req.parse(black_box(&request)).ok());
            black_box(req.headers.len())
        })
    });
    group.bench_function("gatehouse_decision", |b| {
        b.iter(|| forward_len(decide(black_box(&request))))
    });
    // The same head on a public path (`/share/`): parsed, canonicalised and forwarded with
    // no identity, so the session check and the identity header are all it lacks.
    let public = String::from_utf8(request.clone())
        .unwrap()
        .replacen("GET /app/", "GET /share/", 1)
        .into_bytes();
    group.bench_function("gatehouse_decision_public_path", |b| {
        b.iter(|| forward_len(decide(black_box(&public))))
    });
    // The same decision with a session token the session cache does not hold: the same
    // request with one more distinct token (same length) than the cache has slots, taken in
    // turn, so that each is pushed out before it comes round again. This is the base64
    // decoding and the HMAC on every request, as a browser's first request pays them.
    let cold: Vec<Vec<u8>> = (0..=SESSION_CACHE_SLOTS as u64)
        .map(|i| {
            let t = keys
                .issue(table, "carol", carol, NOW - 60 - i, 30 * 24 * 3600)
                .unwrap();
            browser_request(&t)
        })
        .collect();
    assert!(cold.iter().all(|r| r.len() == request.len()));
    let mut turn = 0;
    group.bench_function("gatehouse_decision_uncached_session", |b| {
        b.iter(|| {
            turn = (turn + 1) % cold.len();
            forward_len(decide(black_box(&cold[turn])))
        })
    });
    group.finish();

    // The parts of the decision, to see where its time goes.
    let mut parts = c.benchmark_group("decision_parts");
    parts.bench_function("request_head_parse", |b| {
        b.iter(|| match RequestHead::parse(black_box(&request)) {
            Ok(Parse::Complete(h)) => h.head_len(),
            _ => 0,
        })
    });
    // As the decision parses: into a head on the stack, not moved out (httparse and
    // gatehouse's framing, host and line-end checks).
    parts.bench_function("request_head_parse_in_place", |b| {
        b.iter(|| {
            let mut head = RequestHead::empty();
            match head.parse_in_place(black_box(&request)) {
                Ok(Parse::Complete(())) => head.head_len(),
                _ => 0,
            }
        })
    });
    let cookie_value = format!("{token}");
    // Uncached: decoding, HMAC and the checks.
    parts.bench_function("session_verify", |b| {
        b.iter(|| {
            keys.verify_user(black_box(cookie_value.as_bytes()), NOW, &users)
                .is_ok()
        })
    });
    // A token the session cache holds: the comparison with every slot and the checks.
    let mut sessions = SessionCache::<SESSION_CACHE_SLOTS>::new();
    parts.bench_function("session_verify_cached", |b| {
        b.iter(|| {
            keys.verify_user_cached(
                black_box(cookie_value.as_bytes()),
                NOW,
                &users,
                &mut sessions,
            )
            .is_ok()
        })
    });
    let Ok(Parse::Complete(head)) = RequestHead::parse(&request) else {
        panic!("head")
    };
    let mut target = [0u8; 256];
    parts.bench_function("canonicalize", |b| {
        b.iter(|| {
            canonicalize(black_box(head.path_and_query()), &mut target).map(|t| t.path().len())
        })
    });
    let options = ForwardOptions {
        user_header: "Remote-User",
        peer,
        peer_trusted: false,
        tls: true,
        strip_authorization: false,
        session_cookie: "gatehouse_session",
        identity: Some(Identity {
            user: "carol",
            name: None,
            email: None,
            groups: None,
        }),
        tunnel: false,
    };
    parts.bench_function("write_forward_head", |b| {
        b.iter(|| {
            write_forward_head(
                black_box(&head),
                "/app/albums?_sort=name&_order=ASC",
                &options,
                &mut out,
            )
        })
    });
    parts.finish();
}

/// A list of `n` entries: IPv4 networks of every prefix length, IPv6 networks and `@`, so the
/// match goes through each kind of entry.
fn trusted_list(n: usize) -> String {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("10.{}.0.0/16", i),
            1 => format!("fd00:{:x}::/32", i),
            2 => format!("192.168.{}.{}/{}", i, i, 24 + i % 9),
            _ if i == 3 => "@".to_owned(),
            _ => format!("172.16.{}.1", i),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn bench_trusted(c: &mut Criterion) {
    let mut group = c.benchmark_group("trusted_sources_match");
    // The common case costs the most: a client that is not a trusted proxy, so every entry is
    // tried. An IPv4-mapped IPv6 peer also goes through the mapping.
    let stranger = Peer::Ip("203.0.113.7".parse().unwrap());
    let mapped = Peer::Ip("::ffff:203.0.113.7".parse().unwrap());
    for n in [1usize, 16, 64] {
        let list = TrustedSources::<64>::parse(&trusted_list(n)).unwrap();
        assert_eq!(list.len(), n);
        assert!(!list.trusts(&stranger) && !list.trusts(&mapped));
        group.bench_function(format!("{n}_entries_no_match"), |b| {
            b.iter(|| black_box(&list).trusts(black_box(&stranger)))
        });
        group.bench_function(format!("{n}_entries_no_match_v4_mapped"), |b| {
            b.iter(|| black_box(&list).trusts(black_box(&mapped)))
        });
        // The last entry matches: a trusted proxy listed at the end.
        let last = list.entries()[n - 1];
        if let Some((ip, _)) = last.cidr() {
            let peer = Peer::Ip(ip);
            assert!(list.trusts(&peer));
            group.bench_function(format!("{n}_entries_last_matches"), |b| {
                b.iter(|| black_box(&list).trusts(black_box(&peer)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, bench_trusted);
criterion_main!(benches);
