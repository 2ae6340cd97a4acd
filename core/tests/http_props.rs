//! Property tests of the HTTP layer: hostile bytes never panic, splitting never changes a
//! decision, chunked framing round-trips, and no client spelling of an identity header
//! reaches the app.

use gatehouse_core::http::{
    BodyError, BodyFraming, BodyRelay, ChunkedOutput, ForwardOptions, Identity, Parse,
    RequestError, RequestHead, ResponseHead, canonicalize, is_dropped_request_header,
    write_forward_head,
};
use gatehouse_core::identity::{FOREIGN_IDENTITY_HEADERS, IDENTITY_HEADERS, is_identity_header};
use gatehouse_core::peer::Peer;
use proptest::prelude::*;

/// Pieces that hostile requests are made of.
const FRAGMENTS: &[&str] = &[
    "GET ",
    "POST ",
    "HEAD ",
    "CONNECT ",
    "/",
    "/share/",
    "..",
    "%2e",
    "%2F",
    "%",
    "\\",
    "?",
    "#",
    " ",
    "\t",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/2.0",
    "\r\n",
    "\n",
    "\r",
    "\r\n\r\n",
    "Host: a",
    "Host: b",
    "Content-Length: 5",
    "Content-Length: 6",
    "Content-Length: x",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: gzip",
    "Remote-User: admin",
    "remote_user: admin",
    "Connection: close, Remote-Name",
    "Upgrade: websocket",
    "Connection: upgrade",
    "Expect: 100-continue",
    "http://a/",
    "\0",
    "\u{e9}",
    "X: y",
    ":",
    "0\r\n",
    "5\r\nhello\r\n",
    "X: a \t\n",
    "Y:\n",
    "Z: \r\n",
    "\n\r\n",
    "Host: a\r\n",
    "Host: a\n",
];

fn fragments() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40)
        .prop_map(|parts| parts.concat().into_bytes())
}

fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..600), fragments()]
}

/// What a shell would act on: the first non-incomplete answer.
#[derive(Debug, PartialEq)]
enum Decision {
    Incomplete,
    Refused(RequestError),
    Head {
        len: usize,
        body: BodyFraming,
        target: String,
    },
}

fn decide(bytes: &[u8]) -> Decision {
    match RequestHead::parse(bytes) {
        Ok(Parse::Incomplete) => Decision::Incomplete,
        Err(e) => Decision::Refused(e),
        Ok(Parse::Complete(h)) => Decision::Head {
            len: h.head_len(),
            body: h.body(),
            target: h.target().to_owned(),
        },
    }
}

/// Feeds growing prefixes ending at `cuts` (then the whole input), as a shell that reads in
/// pieces would, and returns the first decision that is not "incomplete".
fn decide_in_pieces(bytes: &[u8], cuts: &[usize]) -> Decision {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(bytes.len());
    for end in ends {
        match decide(&bytes[..end]) {
            Decision::Incomplete => continue,
            d => return d,
        }
    }
    Decision::Incomplete
}

fn relay_all(
    framing: BodyFraming,
    output: ChunkedOutput,
    input: &[u8],
    cuts: &[usize],
    out_cap: usize,
) -> (Result<(), BodyError>, Vec<u8>, usize) {
    let mut relay = BodyRelay::with_output(framing, output);
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(input.len());
    let mut out = vec![0u8; out_cap.max(1)];
    let mut collected = Vec::new();
    let mut pos = 0;
    for end in ends {
        // Bounded: every call consumes or produces at least one byte, or we move on.
        for _ in 0..(4 * input.len() + 64) {
            if relay.is_done() {
                return (Ok(()), collected, pos);
            }
            let avail = &input[pos..end.max(pos)];
            match relay.relay(avail, &mut out) {
                Ok(r) => {
                    pos += r.consumed;
                    collected.extend_from_slice(&out[..r.produced]);
                    if r.consumed == 0 && r.produced == 0 {
                        break;
                    }
                }
                Err(e) => return (Err(e), collected, pos),
            }
        }
    }
    if relay.is_done() {
        (Ok(()), collected, pos)
    } else {
        (relay.finish(), collected, pos)
    }
}

fn options<'a>(identity: Option<Identity<'a>>, user_header: &'a str) -> ForwardOptions<'a> {
    ForwardOptions {
        user_header,
        peer: Peer::Ip("192.0.2.1".parse().unwrap()),
        peer_trusted: false,
        tls: false,
        strip_authorization: true,
        session_cookie: "gatehouse_session",
        identity,
        tunnel: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hostile_bytes_never_panic(bytes in hostile_bytes(), head in any::<bool>(), up in any::<bool>()) {
        let _ = ResponseHead::parse(&bytes, head, up);
        for framing in [BodyFraming::Chunked, BodyFraming::Length(7), BodyFraming::UntilClose] {
            let _ = relay_all(framing, ChunkedOutput::Reencode, &bytes, &[3, 17], 5);
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = canonicalize(&text, &mut [0u8; 512]);
        if let Ok(Parse::Complete(h)) = RequestHead::parse(&bytes) {
            let mut target = [0u8; 4096];
            if let Ok(t) = canonicalize(h.path_and_query(), &mut target) {
                let mut out = [0u8; 16384];
                let id = Identity { user: "alice", name: None, email: None, groups: Some("admins") };
                let _ = write_forward_head(&h, t.as_str(), &options(Some(id), "Remote-User"), &mut out);
            }
        }
    }

    #[test]
    fn accepted_heads_have_only_crlf_line_ends(bytes in hostile_bytes()) {
        if let Ok(Parse::Complete(h)) = RequestHead::parse(&bytes) {
            let head = &bytes[..h.head_len()];
            for (i, &b) in head.iter().enumerate() {
                if b == b'\n' {
                    prop_assert!(i > 0 && head[i - 1] == b'\r', "bare LF at {} in {:?}", i, String::from_utf8_lossy(head));
                }
                if b == b'\r' {
                    prop_assert_eq!(head.get(i + 1), Some(&b'\n'));
                }
            }
        }
    }

    #[test]
    fn a_bare_lf_on_any_line_is_refused(
        lines in prop::collection::vec(("[A-Za-z-]{1,10}", "[ -~]{0,12}", "[ \t]{0,2}", any::<bool>()), 0..8),
        leading in prop::collection::vec(any::<bool>(), 0..2),
        request_line_bare in any::<bool>(),
        last_bare in any::<bool>(),
    ) {
        let eol = |bare: bool| if bare { "\n" } else { "\r\n" };
        let mut req = String::new();
        for &bare in &leading {
            req.push_str(eol(bare));
        }
        req.push_str("GET / HTTP/1.1");
        req.push_str(eol(request_line_bare));
        req.push_str("Host: a\r\n");
        for (name, value, ws, bare) in &lines {
            req.push_str(&format!("X-{name}: {value}{ws}{}", eol(*bare)));
        }
        req.push_str(eol(last_bare));
        let any_bare = leading.iter().any(|&b| b)
            || request_line_bare
            || last_bare
            || lines.iter().any(|l| l.3);
        match RequestHead::parse(req.as_bytes()) {
            Ok(Parse::Complete(_)) => prop_assert!(!any_bare, "accepted {:?}", req),
            Err(RequestError::BareLf) => prop_assert!(any_bare),
            other => prop_assert!(false, "{:?} for {:?}", other, req),
        }
    }

    #[test]
    fn every_identity_header_spelling_is_dropped(
        name in prop::collection::vec(prop::sample::select(&[
            "Remote", "remote", "REMOTE", "X", "x", "Forwarded", "Auth", "Request", "User", "user",
            "Name", "Email", "Groups", "WebAuth", "Preferred", "Username", "Custom", "-", "_", ".",
            "~", "Accept",
        ][..]), 1..6),
        custom in any::<bool>(),
    ) {
        let name = name.concat();
        let user_header = if custom { "X-Custom-User" } else { "Remote-User" };
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let Ok(Parse::Complete(head)) = RequestHead::parse(req) else {
            return Err(TestCaseError::fail("head"));
        };
        let opts = options(None, user_header);
        if is_identity_header(name.as_bytes(), user_header) {
            prop_assert!(is_dropped_request_header(&head, &name, &opts), "{} kept", name);
        }
    }

    #[test]
    fn splitting_never_changes_the_decision(
        bytes in hostile_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assert_eq!(decide_in_pieces(&bytes, &cuts), decide(&bytes));
    }

    #[test]
    fn splitting_never_changes_a_body(
        body in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        cap in 1usize..40,
    ) {
        for framing in [BodyFraming::Chunked, BodyFraming::Length(40), BodyFraming::UntilClose] {
            // On an error the connection is closed, so only the error itself must agree.
            let outcome = |(r, out, used): (Result<(), BodyError>, Vec<u8>, usize)| match r {
                Ok(()) => Ok((out, used)),
                Err(e) => Err(e),
            };
            let whole = outcome(relay_all(framing, ChunkedOutput::Reencode, &body, &[], 4096));
            let pieces = outcome(relay_all(framing, ChunkedOutput::Reencode, &body, &cuts, cap));
            prop_assert_eq!(whole, pieces);
        }
    }

    #[test]
    fn chunked_round_trips(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..50), 0..8),
        ext in prop::option::of("[a-z]{1,8}(=[a-z0-9\"]{0,8})?"),
        upper in any::<bool>(),
        zeros in 0usize..3,
        trailers in prop::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,20}", 0..3),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        cap in 1usize..64,
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            let size = if upper { format!("{:X}", c.len()) } else { format!("{:x}", c.len()) };
            wire.extend("0".repeat(zeros).bytes());
            wire.extend(size.bytes());
            if let Some(e) = &ext {
                wire.extend(format!(";{e}").bytes());
            }
            wire.extend(b"\r\n");
            wire.extend(c);
            wire.extend(b"\r\n");
        }
        wire.extend(b"0\r\n");
        for t in &trailers {
            wire.extend(t.bytes());
            wire.extend(b"\r\n");
        }
        wire.extend(b"\r\n");
        let next = b"GET /next HTTP/1.1\r\n";
        wire.extend(next);
        let data: Vec<u8> = chunks.concat();

        let (r, decoded, used) = relay_all(BodyFraming::Chunked, ChunkedOutput::DataOnly, &wire, &cuts, cap);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(&decoded, &data);
        prop_assert_eq!(&wire[used..], &next[..]);

        let (r, normal, _) = relay_all(BodyFraming::Chunked, ChunkedOutput::Reencode, &wire, &cuts, cap);
        prop_assert_eq!(r, Ok(()));
        let (r, again, used) = relay_all(BodyFraming::Chunked, ChunkedOutput::Reencode, &normal, &[], 4096);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(used, normal.len());
        prop_assert_eq!(&again, &normal, "the normal form is a fixed point");
        let (_, data_again, _) = relay_all(BodyFraming::Chunked, ChunkedOutput::DataOnly, &normal, &[], 4096);
        prop_assert_eq!(&data_again, &data);
        let mut expected = Vec::new();
        for c in &chunks {
            expected.extend(format!("{:X}\r\n", c.len()).bytes());
            expected.extend(c);
            expected.extend(b"\r\n");
        }
        expected.extend(b"0\r\n\r\n");
        prop_assert_eq!(&normal, &expected, "extensions and trailers are dropped");
    }

    #[test]
    fn no_client_identity_header_survives_rewriting(
        spellings in prop::collection::vec(
            (0usize..(IDENTITY_HEADERS.len() + FOREIGN_IDENTITY_HEADERS.len() + 1),
             prop::collection::vec(any::<bool>(), 40),
             prop::collection::vec(any::<bool>(), 40)),
            1..6),
        nominate in any::<bool>(),
        with_identity in any::<bool>(),
        custom_header in any::<bool>(),
    ) {
        let user_header = if custom_header { "X-Custom-User" } else { "Remote-User" };
        let mut names = Vec::new();
        for (which, case, underscore) in &spellings {
            let base = IDENTITY_HEADERS
                .iter()
                .chain(FOREIGN_IDENTITY_HEADERS.iter())
                .copied()
                .chain([user_header])
                .nth(*which)
                .unwrap();
            let name: String = base
                .chars()
                .enumerate()
                .map(|(i, ch)| {
                    let ch = if ch == '-' && underscore[i % 40] { '_' } else { ch };
                    if case[i % 40] { ch.to_ascii_uppercase() } else { ch.to_ascii_lowercase() }
                })
                .collect();
            names.push(name);
        }
        let mut req = String::from("GET /app HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n");
        for n in &names {
            req.push_str(&format!("{n}: evil\r\n"));
        }
        if nominate {
            req.push_str(&format!("Connection: keep-alive, {}\r\n", names.join(", ")));
        }
        req.push_str("\r\n");
        let head = match RequestHead::parse(req.as_bytes()) {
            Ok(Parse::Complete(h)) => h,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        let identity = with_identity.then_some(Identity {
            user: "alice",
            name: Some("Alice A"),
            email: Some("alice@example.org"),
            groups: Some("admins"),
        });
        let mut out = [0u8; 8192];
        let n = write_forward_head(&head, "/app", &options(identity, user_header), &mut out).unwrap();
        let forwarded = &out[..n];
        prop_assert!(!forwarded.windows(4).any(|w| w == b"evil"));
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        prop_assert!(parsed.parse(forwarded).unwrap().is_complete());
        let mut seen = 0;
        for h in parsed.headers.iter() {
            if is_identity_header(h.name.as_bytes(), user_header) {
                prop_assert!(with_identity, "identity header {} without identity", h.name);
                let expected: &[u8] = match h.name {
                    n if n == user_header => b"alice",
                    "Remote-Name" => b"Alice A",
                    "Remote-Email" => b"alice@example.org",
                    "Remote-Groups" => b"admins",
                    other => return Err(TestCaseError::fail(format!("unexpected {other}"))),
                };
                prop_assert_eq!(h.value, expected);
                seen += 1;
            }
        }
        prop_assert_eq!(seen, if with_identity { 4 } else { 0 });
    }
}
