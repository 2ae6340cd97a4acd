//! Request heads and the forwarded head.
//!
//! Input: 5 option bytes, then the bytes a client sent.
//! - byte 0, bits: 0 peer trusted, 1 TLS, 2 strip `Authorization`, 3 tunnel allowed,
//!   4 gatehouse vouches for an identity, 5 UNIX-socket peer, 6–7 the configured user header;
//! - bytes 1–4: two cut points at which the client's bytes are split into reads.
//!
//! Asserts:
//! - parsing never panics, and splitting the bytes into reads never changes the decision (a
//!   prefix is "incomplete" or gets the same answer as the whole);
//! - a head that parses is within the limits, ends in a blank line, and parses the same from
//!   exactly its own bytes;
//! - the forwarded head (after canonicalising the target) is itself a valid head with the
//!   same method, version, host and body framing, the canonical target, and **no identity
//!   header but the ones gatehouse added** — whatever spelling, case or `Connection` trick
//!   the client used; the session cookie never reaches the app; an untrusted peer's forwarding
//!   claims are replaced by gatehouse's own.
#![no_main]

use gatehouse_core::http::{
    BodyFraming, ForwardOptions, Identity, MAX_HEAD_LEN, MAX_HEADERS, Parse, RequestError,
    RequestHead, RewriteError, Version, canonicalize, list_tokens, write_forward_head,
};
use gatehouse_core::identity::{is_identity_header, read_identity_httparse};
use gatehouse_core::peer::Peer;
use gatehouse_core::session::{COOKIE_NAME, SECURE_COOKIE_NAME, session_cookies_named};
use gatehouse_fuzz::{cuts, take};
use libfuzzer_sys::fuzz_target;

const USER_HEADERS: [&str; 4] = [
    "Remote-User",
    "X-Auth-User",
    "X-WebAuth-User",
    "X-Remote-User",
];

#[derive(Debug, PartialEq)]
enum Decision {
    Incomplete,
    Refused(RequestError),
    Head(usize, String, String, BodyFraming),
}

fn decide(bytes: &[u8]) -> Decision {
    match RequestHead::parse(bytes) {
        Ok(Parse::Incomplete) => Decision::Incomplete,
        Err(e) => Decision::Refused(e),
        Ok(Parse::Complete(h)) => Decision::Head(
            h.head_len(),
            h.method().to_owned(),
            h.target().to_owned(),
            h.body(),
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let (opts, request) = take::<5>(data);
    let whole = decide(request);
    for end in cuts(&opts[1..], request.len()) {
        let part = decide(&request[..end]);
        assert!(
            part == Decision::Incomplete || part == whole,
            "split at {end}: {part:?}, whole: {whole:?}"
        );
    }
    let Ok(Parse::Complete(head)) = RequestHead::parse(request) else {
        return;
    };
    check_head(&head, request);
    forward(&head, opts[0]);
});

fn check_head(head: &RequestHead<'_>, request: &[u8]) {
    let len = head.head_len();
    assert!(len <= request.len() && len <= MAX_HEAD_LEN);
    assert!(request[..len].ends_with(b"\r\n\r\n"));
    assert!(head.headers().len() <= MAX_HEADERS);
    if len > 0 {
        assert_eq!(decide(&request[..len - 1]), Decision::Incomplete);
    }
    assert_eq!(decide(&request[..len]), decide(request));
    if head.version() == Version::Http11 {
        assert!(head.host().is_some(), "HTTP/1.1 without a host");
    }
    if head.body() == BodyFraming::Chunked {
        assert_eq!(head.version(), Version::Http11);
    }
    assert_ne!(
        head.body(),
        BodyFraming::UntilClose,
        "requests are never close-delimited"
    );
    assert_ne!(
        head.body(),
        BodyFraming::Length(0),
        "an empty body is no body"
    );
    if head.upgrade().is_some() {
        assert!(head.connection().upgrade && head.version() == Version::Http11);
    }
    if !head.path_and_query().is_empty() {
        assert!(head.target().ends_with(head.path_and_query()));
    }
}

fn forward(head: &RequestHead<'_>, flags: u8) {
    let user_header = USER_HEADERS[usize::from(flags >> 6)];
    // Reading the identity never panics, and a name it gives is a storable username.
    if let Ok(Some(name)) = read_identity_httparse(user_header, head.headers()) {
        assert!(
            gatehouse_core::users::parse_username(&name).is_ok(),
            "{name:?}"
        );
    }

    let mut target_buf = vec![0u8; 3 * head.path_and_query().len() + 16];
    let Ok(target) = canonicalize(head.path_and_query(), &mut target_buf) else {
        return;
    };
    let identity = Identity {
        user: "alice",
        name: Some("Alice Liddell"),
        email: Some("alice@example.org"),
        groups: Some("admins"),
    };
    let options = ForwardOptions {
        user_header,
        peer: if flags & 32 != 0 {
            Peer::Unix
        } else {
            Peer::Ip("::ffff:198.51.100.7".parse().unwrap())
        },
        peer_trusted: flags & 1 != 0,
        tls: flags & 2 != 0,
        strip_authorization: flags & 4 != 0,
        session_cookie: COOKIE_NAME,
        identity: (flags & 16 != 0).then_some(identity),
        tunnel: flags & 8 != 0,
    };
    // The forwarded head is the client's head (at most MAX_HEAD_LEN, its target at most three
    // times longer once canonical) plus a few fields of gatehouse's own.
    let mut out = vec![0u8; 4 * MAX_HEAD_LEN];
    let n = match write_forward_head(head, target.as_str(), &options, &mut out) {
        Ok(n) => n,
        Err(RewriteError::OutputFull) => panic!("forwarded head does not fit {}", out.len()),
        Err(e) => panic!("{e}"),
    };
    let forwarded = &out[..n];
    let sent = match RequestHead::parse(forwarded) {
        Ok(Parse::Complete(sent)) => sent,
        // gatehouse's own limits are for what clients send; the fields it adds can take a
        // head at the limit past it. The app has limits of its own.
        Err(RequestError::HeadTooLarge | RequestError::TooManyHeaders)
            if n > MAX_HEAD_LEN - 1024 || head.headers().len() > MAX_HEADERS - 12 =>
        {
            return;
        }
        other => panic!(
            "forwarded head does not parse: {:?} from {:?}",
            other.map(|_| ()),
            String::from_utf8_lossy(forwarded)
        ),
    };
    assert_eq!(sent.head_len(), n);
    assert_eq!(sent.method(), head.method());
    assert_eq!(sent.version(), head.version());
    assert_eq!(sent.target(), target.as_str());
    assert_eq!(sent.host(), head.host());
    assert_eq!(
        sent.body(),
        head.body(),
        "the app must frame the body as gatehouse does"
    );
    assert!(!sent.expect_continue());

    // Identity: exactly the headers gatehouse added, last, with its values.
    let ours: &[(&str, &str)] = match options.identity {
        Some(id) => &[
            (user_header, id.user),
            ("Remote-Name", id.name.unwrap()),
            ("Remote-Email", id.email.unwrap()),
            ("Remote-Groups", id.groups.unwrap()),
        ],
        None => &[],
    };
    let identity_fields: Vec<(&str, &[u8])> = sent
        .headers()
        .iter()
        .filter(|h| is_identity_header(h.name.as_bytes(), user_header))
        .map(|h| (h.name, h.value))
        .collect();
    let expected: Vec<(&str, &[u8])> = ours
        .iter()
        .map(|&(name, value)| (name, value.as_bytes()))
        .collect();
    assert_eq!(
        identity_fields,
        expected,
        "{:?}",
        String::from_utf8_lossy(forwarded)
    );
    let tail = &sent.headers()[sent.headers().len() - identity_fields.len()..];
    assert!(
        tail.iter()
            .all(|h| is_identity_header(h.name.as_bytes(), user_header)),
        "identity headers are the last ones"
    );
    let read = read_identity_httparse(user_header, sent.headers())
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(forwarded)));
    assert_eq!(read.as_deref(), options.identity.map(|id| id.user));

    // The session cookie is gatehouse's, never the app's.
    for cookie in sent.header_values("cookie") {
        for name in [COOKIE_NAME, SECURE_COOKIE_NAME] {
            assert_eq!(session_cookies_named(cookie, name).count(), 0);
        }
        assert!(!cookie.is_empty());
    }
    // Connection carries only what gatehouse says.
    for value in sent.header_values("connection") {
        assert!(options.tunnel && value == b"upgrade");
    }
    if !(options.tunnel && head.upgrade().is_some()) {
        assert_eq!(sent.header_values("upgrade").count(), 0);
    }
    if options.strip_authorization {
        assert_eq!(sent.header_values("authorization").count(), 0);
    }
    for name in [
        "te",
        "trailer",
        "keep-alive",
        "expect",
        "proxy-authorization",
    ] {
        assert_eq!(sent.header_values(name).count(), 0, "{name}");
    }
    assert_eq!(sent.header_values("x-forwarded-proto").count(), 1);
    assert!(sent.header_values("x-forwarded-for").count() <= 1);
    // Whoever the peer is, no other forwarding or URL-override field reaches the app.
    for h in sent.headers() {
        let name = h.name.to_ascii_lowercase().replace('_', "-");
        if name.starts_with("x-forwarded-") {
            assert!(
                ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
                    .contains(&name.as_str()),
                "{name} reached the app"
            );
        }
        for claim in [
            "forwarded",
            "x-original-url",
            "x-original-uri",
            "x-rewrite-url",
        ] {
            assert!(name != claim, "{name} reached the app");
        }
    }
    assert!(sent.header_values("x-real-ip").count() <= 1);
    if !options.peer_trusted {
        if let Some(xff) = sent.header_values("x-forwarded-for").next() {
            assert_eq!(xff, b"198.51.100.7");
        }
        let proto: &[u8] = if options.tls { b"https" } else { b"http" };
        assert_eq!(sent.header_values("x-forwarded-proto").next(), Some(proto));
        assert_eq!(sent.header_values("x-forwarded-host").next(), head.host());
    }
    // Nothing the client listed in Connection reaches the app (bar what gatehouse re-adds).
    for token in head.header_values("connection").flat_map(list_tokens) {
        let readded = [
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-real-ip",
            "content-length",
            "transfer-encoding",
            "connection",
            "upgrade",
        ];
        let Ok(token) = core::str::from_utf8(token) else {
            continue;
        };
        if readded.iter().any(|r| r.eq_ignore_ascii_case(token))
            || is_identity_header(token.as_bytes(), user_header)
        {
            continue;
        }
        assert_eq!(
            sent.header_values(token).count(),
            0,
            "{token} was listed in Connection"
        );
    }
}
