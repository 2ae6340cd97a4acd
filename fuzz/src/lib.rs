//! What the fuzz targets share: driving a body relay the way a shell does (in pieces, through
//! a small output buffer), and feeding a head parser growing prefixes of its input.
//!
//! The targets are in `fuzz_targets/`; each one states the invariants it asserts. Inputs that
//! carry options start with a few option bytes (documented per target), followed by the bytes
//! under test, so that hand-written seeds stay readable.

use gatehouse_core::http::{BodyError, BodyFraming, BodyRelay, ChunkedOutput};

/// What a relay made of an input: the outcome, the bytes written out and the input consumed.
#[derive(Debug, PartialEq, Eq)]
pub struct Relay {
    /// `Ok` when the body ended (or, at the end of input, was allowed to end there).
    pub result: Result<(), BodyError>,
    /// Everything written to the output, in order.
    pub output: Vec<u8>,
    /// Input bytes that belonged to the body.
    pub consumed: usize,
    /// Whether the relay said the body was done before the input ran out.
    pub done: bool,
}

/// Feeds `input` to a relay for `framing` as a shell would: the bytes become available up to
/// each of `ends` in turn (then all of them), output goes through a buffer of `out_cap`
/// bytes, and at the end of input the connection is taken as closed.
pub fn relay_in_pieces(
    framing: BodyFraming,
    output: ChunkedOutput,
    input: &[u8],
    ends: &[usize],
    out_cap: usize,
) -> Relay {
    relay_with(
        BodyRelay::with_output(framing, output),
        input,
        ends,
        out_cap,
    )
}

/// [`relay_in_pieces`] with a relay made elsewhere (e.g. the one a response plan holds).
pub fn relay_with(mut relay: BodyRelay, input: &[u8], ends: &[usize], out_cap: usize) -> Relay {
    let mut ends: Vec<usize> = ends.iter().map(|&e| e.min(input.len())).collect();
    ends.sort_unstable();
    ends.push(input.len());
    let mut out = vec![0u8; out_cap.max(1)];
    let mut collected = Vec::new();
    let mut pos = 0;
    for end in ends {
        loop {
            if relay.is_done() {
                return Relay {
                    result: Ok(()),
                    output: collected,
                    consumed: pos,
                    done: true,
                };
            }
            let available = &input[pos..end.max(pos)];
            match relay.relay(available, &mut out) {
                Ok(step) => {
                    assert!(step.consumed <= available.len(), "consumed more than given");
                    assert!(step.produced <= out.len(), "produced more than room");
                    pos += step.consumed;
                    collected.extend_from_slice(&out[..step.produced]);
                    if step.consumed == 0 && step.produced == 0 {
                        // Any output of one byte or more makes progress: no progress means
                        // the relay needs more input.
                        break;
                    }
                }
                Err(e) => {
                    return Relay {
                        result: Err(e),
                        output: collected,
                        consumed: pos,
                        done: false,
                    };
                }
            }
        }
    }
    let done = relay.is_done();
    let result = relay.finish();
    // Whatever was still owed to the output after the input ran out is flushed now.
    if result.is_ok() {
        loop {
            let step = relay.relay(&[], &mut out).expect("flushing never fails");
            collected.extend_from_slice(&out[..step.produced]);
            if step.produced == 0 {
                break;
            }
        }
    }
    Relay {
        result,
        output: collected,
        consumed: pos,
        done,
    }
}

/// Cut points for splitting `len` bytes, taken from fuzzer-chosen bytes (each byte pair is a
/// position, spread over the input).
pub fn cuts(seed: &[u8], len: usize) -> Vec<usize> {
    seed.chunks(2)
        .map(|pair| {
            let v = pair
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
            if len == 0 { 0 } else { v % (len + 1) }
        })
        .collect()
}

/// Splits off the first `n` bytes of `data` (fewer if it is shorter), padded with zeros.
pub fn take<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut head = [0u8; N];
    let n = data.len().min(N);
    head[..n].copy_from_slice(&data[..n]);
    (head, &data[n..])
}
