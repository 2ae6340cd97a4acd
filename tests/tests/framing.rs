//! Request smuggling and message framing: where one request ends must be unambiguous, and a
//! request hidden in another's body must never reach the app as a request of its own.

use std::time::Duration;

use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";

fn alice() -> Setup {
    Setup::new().user("alice", PASSWORD)
}

fn auth() -> String {
    basic("alice", PASSWORD)
}

/// A request the client hides after a body, in the hope that it is read as a request of its
/// own (with a spoofed identity).
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: gw.test\r\nRemote-User: mallory\r\n\r\n";

/// Sends `request`, expects `status`, and checks the connection ends and nothing reached the app.
fn expect_refused_and_closed(gw: &Gateway, request: &[u8], status: u16) {
    expect_refused_with_one_of(gw, request, &[status]);
}

/// Same, when RFC 9112 allows more than one status.
fn expect_refused_with_one_of(gw: &Gateway, request: &[u8], statuses: &[u16]) {
    gw.upstream.clear();
    let mut client = gw.client();
    client.send(request).expect("send");
    match client.response() {
        Ok(response) => {
            assert!(
                statuses.contains(&response.status),
                "expected one of {statuses:?} to {:?}: {response}",
                String::from_utf8_lossy(request)
            );
        }
        Err(e) => panic!("no answer to {:?}: {e}", String::from_utf8_lossy(request)),
    }
    assert!(
        client.is_closed_by_peer(),
        "the connection stayed open after a refused request: {:?}",
        String::from_utf8_lossy(request)
    );
    let seen = gw.upstream.seen();
    assert!(
        seen.is_empty(),
        "a refused request reached the app: {seen:#?}"
    );
}

/// Whatever happened to `request`, the smuggled request never arrived and no spoofed identity
/// reached the app.
fn expect_nothing_smuggled(gw: &Gateway) {
    std::thread::sleep(Duration::from_millis(200));
    let seen = gw.upstream.seen();
    assert!(
        seen.iter().all(|s| s.target() != "/smuggled"),
        "the smuggled request reached the app: {seen:#?}"
    );
    assert_never_seen(&seen, "mallory");
}

conformance! {
    /// `Content-Length` and `Transfer-Encoding` together are refused (RFC 9112 §6.1).
    fn content_length_with_transfer_encoding_is_refused(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for (cl, te) in [
            ("Content-Length: 5", "Transfer-Encoding: chunked"),
            ("Content-Length: 0", "Transfer-Encoding: chunked"),
            ("Content-Length: 44", "transfer-encoding: CHUNKED"),
        ] {
            let request = [
                head("POST", "/app/", &[&auth(), cl, te]),
                b"0\r\n\r\n".to_vec(),
                SMUGGLED.as_bytes().to_vec(),
            ]
            .concat();
            expect_refused_and_closed(&gw, &request, 400);
        }
        // Transfer-Encoding first, Content-Length after: same.
        let request = [
            head("POST", "/app/", &[&auth(), "Transfer-Encoding: chunked", "Content-Length: 3"]),
            b"0\r\n\r\n".to_vec(),
            SMUGGLED.as_bytes().to_vec(),
        ]
        .concat();
        expect_refused_and_closed(&gw, &request, 400);
        expect_nothing_smuggled(&gw);
        Ok(())
    }

    /// Two `Content-Length`s that differ, or one that is not a plain number, are refused.
    fn conflicting_or_malformed_content_length_is_refused(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for lengths in [
            vec!["Content-Length: 5", "Content-Length: 6"],
            vec!["Content-Length: 5, 6"],
            vec!["Content-Length: +5"],
            vec!["Content-Length: -1"],
            vec!["Content-Length: 0x5"],
            vec!["Content-Length: 5 5"],
            vec!["Content-Length: 99999999999999999999999"],
        ] {
            let mut headers = vec![auth()];
            headers.extend(lengths.iter().map(|s| s.to_string()));
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let request = [head("POST", "/app/", &headers), b"hello!".to_vec(), SMUGGLED.as_bytes().to_vec()].concat();
            expect_refused_and_closed(&gw, &request, 400);
        }
        expect_nothing_smuggled(&gw);
        Ok(())
    }

    /// A `Transfer-Encoding` whose last coding is not `chunked` cannot be framed: refused, with
    /// 400, or 501 for a coding the gateway does not implement (RFC 9112 §6.1 allows both).
    fn transfer_encoding_not_ending_in_chunked_is_refused(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for te in [
            "Transfer-Encoding: chunked, identity",
            "Transfer-Encoding: identity",
            "Transfer-Encoding: gzip",
            "Transfer-Encoding: xchunked",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        ] {
            let request = [
                head("POST", "/app/", &[&auth(), te]),
                b"0\r\n\r\n".to_vec(),
                SMUGGLED.as_bytes().to_vec(),
            ]
            .concat();
            expect_refused_with_one_of(&gw, &request, &[400, 501]);
        }
        expect_nothing_smuggled(&gw);
        Ok(())
    }

    /// A chunked body with a bad chunk size ends the connection; the request hidden after it
    /// never reaches the app.
    fn bad_chunk_sizes_never_smuggle_a_request(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for body in [
            "zz\r\nhello\r\n0\r\n\r\n",
            "-5\r\nhello\r\n0\r\n\r\n",
            "0x5\r\nhello\r\n0\r\n\r\n",
            "5 5\r\nhello\r\n0\r\n\r\n",
            "fffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            "5\r\nhelloXX0\r\n\r\n",
            "+5\r\nhello\r\n0\r\n\r\n",
        ] {
            gw.upstream.clear();
            let mut client = gw.client();
            let request = [
                head("POST", "/app/", &[&auth(), "Transfer-Encoding: chunked"]),
                body.as_bytes().to_vec(),
                SMUGGLED.as_bytes().to_vec(),
            ]
            .concat();
            client.send(&request).expect("send");
            // The head may have gone to the app before the bad size was read; what matters is
            // that the connection ends and nothing after it is read as a request.
            let _ = client.read_to_close();
            expect_nothing_smuggled(&gw);
        }
        Ok(())
    }

    /// A body that looks like a request is a body: the app receives it verbatim, once.
    fn a_request_inside_a_body_stays_a_body(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let request = [
            head("POST", "/app/", &[&auth(), &format!("Content-Length: {}", SMUGGLED.len())]),
            SMUGGLED.as_bytes().to_vec(),
        ]
        .concat();
        let response = gw.send(&request);
        assert_eq!(response.status, 200, "{response}");
        let seen = gw.upstream.wait_for(2);
        assert_eq!(seen.len(), 1, "the app received: {seen:#?}");
        assert_eq!(seen[0].body, SMUGGLED.as_bytes());
        assert_identity(&seen[0], "Remote-User", "alice");
        Ok(())
    }

    /// Bare CR inside a header line is refused; a bare LF never lets a second header line
    /// through as an identity.
    fn bare_cr_and_bare_lf_never_carry_an_identity(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let auth = auth();
        let bare_cr = format!("GET /app/ HTTP/1.1\r\nHost: gw.test\r\n{auth}\r\nX-Note: a\rRemote-User: mallory\r\n\r\n");
        expect_refused_and_closed(&gw, bare_cr.as_bytes(), 400);
        for bare_lf in [
            format!("GET /app/ HTTP/1.1\r\nHost: gw.test\r\n{auth}\r\nX-Note: a\nRemote-User: mallory\r\n\r\n"),
            format!("GET /app/ HTTP/1.1\nHost: gw.test\n{auth}\nRemote-User: mallory\n\n"),
            format!("GET /app/ HTTP/1.1\r\nHost: gw.test\r\n{auth}\r\nRemote-User: mallory\n\r\n"),
        ] {
            gw.upstream.clear();
            let mut client = gw.client();
            client.send(bare_lf.as_bytes()).expect("send");
            let _ = client.response();
            std::thread::sleep(Duration::from_millis(100));
            let seen = gw.upstream.seen();
            assert_never_seen(&seen, "mallory");
            for s in &seen {
                assert_identity(s, "Remote-User", "alice");
            }
        }
        Ok(())
    }

    /// A head larger than the gateway's limit gets 431 and the connection closes.
    fn oversize_head_gets_431(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let big = format!("X-Filler: {}", "a".repeat(16 * 1024));
        expect_refused_and_closed(&gw, &get("/app/", &[&auth(), &big]), 431);
        let long_target = format!("/app/{}", "b".repeat(16 * 1024));
        let response = {
            let mut client = gw.client();
            exchange(&mut client, &get(&long_target, &[&auth()]))
        };
        assert!(
            matches!(response.status, 414 | 431),
            "a 16 KiB target: {response}"
        );
        assert!(gw.upstream.seen().is_empty(), "{:#?}", gw.upstream.seen());
        Ok(())
    }

    /// More header fields than the gateway keeps gets 431 (never a silently shortened head).
    fn too_many_headers_gets_431(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let fields: Vec<String> = (0..200).map(|i| format!("X-Field-{i}: {i}")).collect();
        let mut headers: Vec<&str> = fields.iter().map(String::as_str).collect();
        let auth = auth();
        headers.push(&auth);
        headers.push("Remote-User: mallory");
        expect_refused_and_closed(&gw, &get("/app/", &headers), 431);
        Ok(())
    }

    /// `Expect: 100-continue`: the client is told to go on (or simply read), the body reaches
    /// the app intact and the client gets the app's answer.
    fn expect_100_continue_delivers_the_body(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let mut client = gw.client();
        client
            .send(&head("POST", "/app/upload", &[&auth(), "Expect: 100-continue", "Content-Length: 11"]))
            .expect("send head");
        // A client waits a moment for 100 Continue and sends the body either way (as curl does).
        let interim = client.anything_within(Duration::from_secs(2));
        client.send(b"hello world").expect("send body");
        let mut response = client.response().expect("response");
        if response.status == 100 {
            assert!(interim, "100 Continue came late");
            response = client.response().expect("final response");
        }
        assert_eq!(response.status, 200, "{response}");
        let seen = gw.upstream.only();
        assert_eq!(seen.body, b"hello world");
        assert_identity(&seen, "Remote-User", "alice");
        // The connection is still usable.
        let again = exchange(&mut client, &get("/app/again", &[&auth()]));
        assert_eq!(again.status, 200, "{again}");
        Ok(())
    }

    /// Responses without a body (to HEAD, 204, 304) keep the connection in step: the next
    /// response on it is read where it starts.
    fn bodiless_responses_keep_the_connection_in_step(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let mut client = gw.client();
        // HEAD: the app says Content-Length but sends no body.
        client.send(&request("HEAD", "/app/head", &[&auth()], b"")).expect("send");
        let head_response = client.head_response().expect("HEAD response");
        assert_eq!(head_response.status, 200, "{head_response}");
        let after_head = exchange(&mut client, &get("/app/after-head", &[&auth()]));
        assert_eq!(after_head.body, b"app saw: GET /app/after-head HTTP/1.1\n", "{after_head}");
        for status in [204, 304] {
            gw.upstream.set_reply(Reply::NoBody(status));
            let empty = exchange(&mut client, &get(&format!("/app/{status}"), &[&auth()]));
            assert_eq!(empty.status, status, "{empty}");
            assert!(empty.body.is_empty());
            gw.upstream.set_reply(Reply::Plain);
            let next = exchange(&mut client, &get("/app/next", &[&auth()]));
            assert_eq!(next.body, b"app saw: GET /app/next HTTP/1.1\n", "after {status}: {next}");
        }
        Ok(())
    }

    /// Chunked and close-delimited responses from the app reach the client whole. (Not on
    /// `qemu`: its app is reached through QEMU's `guestfwd` and `nc`, which never tells the
    /// guest that the app closed, so a close-delimited body cannot end there.)
    fn chunked_and_close_delimited_responses_reach_the_client(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, alice())?;
        gw.upstream.set_reply(Reply::Chunked {
            pieces: vec![b"first ".to_vec(), b"second ".to_vec(), vec![b'x'; 70_000]],
            trailers: Vec::new(),
        });
        let mut client = gw.client();
        let chunked = exchange(&mut client, &get("/app/chunked", &[&auth()]));
        assert_eq!(chunked.status, 200, "{chunked}");
        assert_eq!(chunked.body, [b"first second ".to_vec(), vec![b'x'; 70_000]].concat());
        let next = {
            gw.upstream.set_reply(Reply::Plain);
            exchange(&mut client, &get("/app/next", &[&auth()]))
        };
        assert_eq!(next.body, b"app saw: GET /app/next HTTP/1.1\n", "{next}");

        let body = b"until the app closes".repeat(1000);
        gw.upstream.set_reply(Reply::CloseDelimited(body.clone()));
        let mut client = gw.client();
        let delimited = exchange(&mut client, &get("/app/close", &[&auth()]));
        assert_eq!(delimited.status, 200, "{}", String::from_utf8_lossy(&delimited.head));
        assert_eq!(delimited.body.len(), body.len());
        assert_eq!(delimited.body, body);
        Ok(())
    }

    /// A WebSocket upgrade the app accepts (101) becomes a tunnel: bytes go both ways
    /// unchanged, and the upgrade request reached the app as alice.
    fn websocket_upgrade_becomes_a_tunnel(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        gw.upstream.set_reply(Reply::Upgrade);
        let mut client = gw.client();
        let upgrade = get(
            "/app/ws",
            &[
                &auth(),
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Remote-User: mallory",
            ],
        );
        client.send(&upgrade).expect("send");
        let switched = client.response().expect("101");
        assert_eq!(switched.status, 101, "{switched}");
        let seen = gw.upstream.only();
        assert_identity(&seen, "Remote-User", "alice");
        assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"), "{seen}");
        assert_never_seen(&[seen], "mallory");
        for message in [&b"\x81\x05hello"[..], b"GET /not-a-request HTTP/1.1\r\n\r\n", &[0u8, 255, 13, 10]] {
            client.send(message).expect("send through the tunnel");
            let echoed = client.read_exact_bytes(message.len()).expect("echo");
            assert_eq!(echoed, message);
        }
        assert_eq!(gw.upstream.seen().len(), 1, "tunnel bytes were read as requests");
        Ok(())
    }
}
