//! An app's response: its head, the head the client gets, and the body relayed between them.
//!
//! Input: 6 option bytes, then the bytes the app sent.
//! - byte 0, bits: 0 the request was `HEAD`, 1 it asked for an upgrade, 2 the client speaks
//!   HTTP/1.0, 3 the client wants to keep the connection;
//! - byte 1: the relay's output buffer size (1–256 bytes);
//! - bytes 2–5: two cut points at which the app's bytes are split into reads.
//!
//! Asserts:
//! - parsing never panics and splitting never changes the decision;
//! - the head written for the client parses, with the same status, and with framing that
//!   delimits exactly the body gatehouse relays: the client reads the body gatehouse sent and
//!   not one byte more or less (no response desync), whatever framing the app used;
//! - a connection the client keeps open always has a delimited body; `Connection: close` is
//!   written exactly when gatehouse closes; the client never gets both a length and a
//!   transfer coding, nor two lengths.
#![no_main]

use gatehouse_core::http::{
    BodyFraming, ChunkedOutput, MAX_HEAD_LEN, MAX_HEADERS, Parse, ResponseBody, ResponseError,
    ResponseHead, Version, write_client_response_head,
};
use gatehouse_fuzz::{cuts, relay_in_pieces, relay_with, take};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Decision {
    Incomplete,
    Refused(ResponseError),
    Head(usize, u16, ResponseBody),
}

fn decide(bytes: &[u8], head: bool, upgrade: bool) -> Decision {
    match ResponseHead::parse(bytes, head, upgrade) {
        Ok(Parse::Incomplete) => Decision::Incomplete,
        Err(e) => Decision::Refused(e),
        Ok(Parse::Complete(h)) => Decision::Head(h.head_len(), h.code(), h.body()),
    }
}

const SET_COOKIE: &[u8] = b"gatehouse_session=token; Path=/; HttpOnly";

fuzz_target!(|data: &[u8]| {
    let (opts, mut app) = take::<6>(data);
    let request_was_head = opts[0] & 1 != 0;
    let upgrade = opts[0] & 2 != 0;
    let client_version = if opts[0] & 4 != 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let keep_alive = opts[0] & 8 != 0;
    let cap = 1 + usize::from(opts[1]);

    // Interim responses come first; a bounded number of them is plenty.
    for _ in 0..4 {
        let whole = decide(app, request_was_head, upgrade);
        for end in cuts(&opts[2..], app.len()) {
            let part = decide(&app[..end], request_was_head, upgrade);
            assert!(
                part == Decision::Incomplete || part == whole,
                "split at {end}: {part:?}, whole: {whole:?}"
            );
        }
        let Ok(Parse::Complete(response)) = ResponseHead::parse(app, request_was_head, upgrade)
        else {
            return;
        };
        assert!(response.head_len() <= app.len() && response.head_len() <= MAX_HEAD_LEN);
        assert!((100..=999).contains(&response.code()));
        let body = &app[response.head_len()..];

        let mut out = vec![0u8; 2 * MAX_HEAD_LEN];
        let plan = write_client_response_head(
            &response,
            client_version,
            keep_alive,
            &[("Set-Cookie", SET_COOKIE)],
            &mut out,
        )
        .expect("the client head fits twice the largest app head");
        assert_eq!(plan.body, response.body());
        if plan.head_len == 0 {
            assert_eq!(response.body(), ResponseBody::Interim);
            assert_eq!(client_version, Version::Http10);
            app = body;
            continue;
        }
        let written = &out[..plan.head_len];
        let sent = match ResponseHead::parse(written, request_was_head, upgrade) {
            Ok(Parse::Complete(sent)) => sent,
            // A head at the app's limits plus gatehouse's fields may pass the limits.
            Err(ResponseError::TooLarge)
                if response.headers().len() > MAX_HEADERS - 4
                    || written.len() > MAX_HEAD_LEN - 512 =>
            {
                return;
            }
            other => panic!(
                "client head does not parse: {:?}: {:?}",
                other.map(|_| ()),
                String::from_utf8_lossy(written)
            ),
        };
        assert_eq!(sent.head_len(), written.len());
        assert_eq!(sent.code(), response.code());
        assert_eq!(sent.version(), Version::Http11);
        let count = |name: &str| {
            sent.headers()
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .count()
        };
        // The app's transfer codings may be kept (they describe the bytes relayed), but
        // never beside a length.
        assert!(count("content-length") <= 1);
        assert!(count("transfer-encoding") == 0 || count("content-length") == 0);
        assert!(count("connection") <= 1);
        assert!(count("keep-alive") == 0 && count("trailer") == 0 && count("te") == 0);
        assert!(
            sent.headers()
                .iter()
                .any(|h| h.name == "Set-Cookie" && h.value == SET_COOKIE)
        );

        match response.body() {
            ResponseBody::Interim => {
                assert_eq!(sent.body(), ResponseBody::Interim);
                assert!(!plan.close_client);
                app = body;
                continue;
            }
            ResponseBody::Tunnel => {
                assert_eq!(sent.body(), ResponseBody::Tunnel);
                assert!(sent.connection().upgrade);
                return;
            }
            ResponseBody::Final(_) => {}
        }
        let ResponseBody::Final(client_framing) = sent.body() else {
            panic!("final response became {:?}", sent.body());
        };
        assert_eq!(sent.connection().close, plan.close_client);
        if !plan.close_client {
            assert_ne!(
                client_framing,
                BodyFraming::UntilClose,
                "keep-alive needs a length"
            );
        }
        if client_version == Version::Http10 {
            assert_ne!(client_framing, BodyFraming::Chunked);
        }

        // Relay the app's body and read it back as the client would.
        let ends = cuts(&opts[2..], body.len());
        let relayed = relay_with(plan.relay.clone(), body, &ends, cap);
        let at_once = relay_with(plan.relay, body, &[], 1 << 16);
        assert_eq!(relayed.result, at_once.result);
        if relayed.result.is_err() {
            return;
        }
        assert_eq!(relayed, at_once);
        let client_side = relay_in_pieces(
            client_framing,
            ChunkedOutput::Reencode,
            &relayed.output,
            &[],
            1 << 16,
        );
        assert_eq!(client_side.result, Ok(()), "client cannot read the body");
        assert_eq!(
            client_side.consumed,
            relayed.output.len(),
            "client reads the body to a different end"
        );
        if client_framing != BodyFraming::Chunked {
            assert_eq!(client_side.output, relayed.output);
        }
        if let ResponseBody::Final(BodyFraming::Length(n)) = response.body() {
            assert_eq!(u64::try_from(relayed.consumed).unwrap(), n);
        }
        return;
    }
});
