//! Body framing: the relay that finds where a body ends and re-emits it.
//!
//! Input: 8 option bytes, then the bytes that follow a head.
//! - byte 0: bits 0–1 the framing (0 and 1 chunked, 2 `Content-Length`, 3 until close),
//!   bit 2 data-only output (a body gatehouse reads itself) instead of re-encoding;
//! - byte 1: the output buffer size (1–64 bytes);
//! - bytes 2–3: the `Content-Length`;
//! - bytes 4–7: two cut points at which the input is split into reads.
//!
//! Asserts:
//! - fed in pieces through a small buffer, the relay gives the same result as fed whole into
//!   a large one (same bytes out, same end of body, or the same error);
//! - `Content-Length` and until-close bodies are copied exactly and end where they must;
//! - a chunked body that is accepted is re-emitted in a normal form that is a fixed point of
//!   the relay, carries the same data, and ends the body at the same place.
#![no_main]

use gatehouse_core::http::{BodyError, BodyFraming, ChunkedOutput};
use gatehouse_fuzz::{cuts, relay_in_pieces, take};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (opts, input) = take::<8>(data);
    let framing = match opts[0] & 3 {
        0 | 1 => BodyFraming::Chunked,
        2 => BodyFraming::Length(u64::from(u16::from_be_bytes([opts[2], opts[3]]))),
        _ => BodyFraming::UntilClose,
    };
    let output = if opts[0] & 4 != 0 {
        ChunkedOutput::DataOnly
    } else {
        ChunkedOutput::Reencode
    };
    let cap = 1 + usize::from(opts[1] % 64);
    let ends = cuts(&opts[4..], input.len());

    let whole = relay_in_pieces(framing, output, input, &[], 1 << 16);
    let pieces = relay_in_pieces(framing, output, input, &ends, cap);
    match (&whole.result, &pieces.result) {
        (Ok(()), Ok(())) => assert_eq!(whole, pieces, "split at {ends:?}"),
        (Err(a), Err(b)) => assert_eq!(a, b, "split at {ends:?}"),
        _ => panic!("split at {ends:?}: whole {whole:?}, pieces {pieces:?}"),
    }
    assert!(whole.consumed <= input.len());

    match framing {
        BodyFraming::Length(n) => {
            let n = usize::try_from(n).unwrap();
            if input.len() >= n {
                assert_eq!(whole.result, Ok(()));
                assert_eq!(whole.output, &input[..n]);
                assert_eq!(whole.consumed, n);
            } else {
                assert_eq!(whole.result, Err(BodyError::Truncated));
                assert_eq!(whole.output, input);
            }
        }
        BodyFraming::UntilClose => {
            assert_eq!(whole.result, Ok(()));
            assert_eq!(whole.output, input);
            assert_eq!(whole.consumed, input.len());
        }
        BodyFraming::Chunked => {
            check_chunked(input, output, &whole.output, whole.consumed, whole.result)
        }
        BodyFraming::None => unreachable!(),
    }
});

fn check_chunked(
    input: &[u8],
    output: ChunkedOutput,
    produced: &[u8],
    consumed: usize,
    result: Result<(), BodyError>,
) {
    if result.is_err() {
        return;
    }
    let body = &input[..consumed];
    assert!(
        body.ends_with(b"\r\n"),
        "a chunked body ends with a blank line"
    );
    let data = relay_in_pieces(
        BodyFraming::Chunked,
        ChunkedOutput::DataOnly,
        body,
        &[],
        1 << 16,
    );
    assert_eq!(data.result, Ok(()));
    assert!(data.done);
    assert_eq!(
        data.consumed,
        body.len(),
        "the body ends where it ended before"
    );
    let normal = match output {
        ChunkedOutput::DataOnly => {
            assert_eq!(produced, data.output);
            let again = relay_in_pieces(
                BodyFraming::Chunked,
                ChunkedOutput::Reencode,
                body,
                &[],
                1 << 16,
            );
            assert_eq!(again.result, Ok(()));
            again.output
        }
        ChunkedOutput::Reencode => produced.to_vec(),
    };
    assert!(normal.ends_with(b"0\r\n\r\n"));
    let fixed = relay_in_pieces(
        BodyFraming::Chunked,
        ChunkedOutput::Reencode,
        &normal,
        &[],
        1 << 16,
    );
    assert_eq!(fixed.result, Ok(()));
    assert!(fixed.done);
    assert_eq!(fixed.consumed, normal.len());
    assert_eq!(fixed.output, normal, "the normal form is a fixed point");
    let normal_data = relay_in_pieces(
        BodyFraming::Chunked,
        ChunkedOutput::DataOnly,
        &normal,
        &[],
        1 << 16,
    );
    assert_eq!(
        normal_data.output, data.output,
        "re-encoding keeps the data"
    );
    // The normal form is plain: upper-case sizes without leading zeros, no extensions, no
    // trailers.
    assert_eq!(normal, encode(&data.output, &normal), "normal form");
}

/// The chunked encoding of `data` with the chunk boundaries that `normal` has.
fn encode(data: &[u8], normal: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = normal;
    let mut offset = 0;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(core::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        out.extend(format!("{size:X}\r\n").bytes());
        if size == 0 {
            out.extend(b"\r\n");
            return out;
        }
        out.extend(&data[offset..offset + size]);
        out.extend(b"\r\n");
        offset += size;
        rest = &rest[line_end + 2 + size + 2..];
    }
}
