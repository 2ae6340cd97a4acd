//! Message body framing (RFC 9112 §6): where a body ends, fed in whatever pieces the socket
//! gives.
//!
//! A [`BodyRelay`] is made from a message's [`BodyFraming`] and then fed the bytes that follow
//! the head. It copies what belongs to the body into the caller's output and stops exactly at
//! the end of the message, so whatever follows (a pipelined request, the next response) is
//! left for the next head parse. Chunked bodies are checked byte by byte and re-emitted in a
//! normal form: chunk extensions are dropped, and **trailers are always dropped** — a trailer
//! is a header field that arrives after the body, and an app that merges trailers into its
//! headers would otherwise receive a client's `Remote-User` through them.
//!
//! ```
//! use gatehouse_core::http::{BodyFraming, BodyRelay};
//!
//! let mut relay = BodyRelay::new(BodyFraming::Chunked);
//! let mut out = [0u8; 64];
//! let input = b"5;ext=1\r\nhello\r\n0\r\nRemote-User: admin\r\n\r\nGET /next";
//! let step = relay.relay(input, &mut out).unwrap();
//! assert!(relay.is_done());
//! assert_eq!(&out[..step.produced], b"5\r\nhello\r\n0\r\n\r\n");
//! assert_eq!(&input[step.consumed..], b"GET /next"); // the next request, untouched
//! ```

use core::fmt;

use super::path::hex_digit;
use super::write::Cursor;

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: the next message starts right after the head.
    None,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the sender closes the connection (responses only, RFC 9112 §6.3).
    UntilClose,
}

/// Longest chunk extension gatehouse reads (and drops) on one chunk-size line.
pub const MAX_CHUNK_EXT_LEN: usize = 1024;

/// Most bytes of trailer section gatehouse reads (and drops) after the last chunk.
pub const MAX_TRAILER_LEN: usize = 4096;

/// Most hex digits of a chunk size, leading zeros included.
pub const MAX_CHUNK_SIZE_DIGITS: u8 = 32;

/// Why a body could not be relayed. The connection must be closed: both ends disagree on
/// where the next message starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// A chunk-size line that is not `1*HEXDIG [ext] CRLF`.
    InvalidChunkSize,
    /// A chunk size that does not fit in 64 bits.
    ChunkSizeOverflow,
    /// A chunk extension with a control byte, or longer than [`MAX_CHUNK_EXT_LEN`].
    InvalidChunkExtension,
    /// Chunk data not followed by CRLF.
    MissingChunkCrlf,
    /// A trailer line with a control byte, a bare CR/LF or folding.
    InvalidTrailer,
    /// A trailer section longer than [`MAX_TRAILER_LEN`].
    TrailerTooLarge,
    /// The connection ended before the body did.
    Truncated,
}

impl BodyError {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyError::InvalidChunkSize => "invalid chunk size",
            BodyError::ChunkSizeOverflow => "chunk size overflow",
            BodyError::InvalidChunkExtension => "invalid chunk extension",
            BodyError::MissingChunkCrlf => "chunk data not followed by CRLF",
            BodyError::InvalidTrailer => "invalid trailer",
            BodyError::TrailerTooLarge => "trailer section too large",
            BodyError::Truncated => "body truncated",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one [`BodyRelay::relay`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relayed {
    /// Input bytes used; the rest of the input is not part of this body (when
    /// [`BodyRelay::is_done`]) or did not fit in the output yet.
    pub consumed: usize,
    /// Bytes written at the start of the output, to be sent on.
    pub produced: usize,
}

/// How a chunked body is written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedOutput {
    /// Re-emit chunked, in normal form, without extensions or trailers (for relaying).
    Reencode,
    /// Emit only the data (for reading a body gatehouse consumes itself).
    DataOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Done,
    Length {
        remaining: u64,
    },
    UntilClose,
    Size {
        value: u64,
        digits: u8,
    },
    SizeWs {
        value: u64,
    },
    Ext {
        value: u64,
        len: usize,
    },
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// In the trailer section; `line_len` bytes read on the current line.
    Trailer {
        line_len: usize,
        total: usize,
    },
    TrailerLf {
        line_len: usize,
        total: usize,
    },
}

/// The body framing state machine of one message (see the module docs).
#[derive(Clone, Debug)]
pub struct BodyRelay {
    state: State,
    output: ChunkedOutput,
    pending: [u8; 20],
    pending_len: u8,
    pending_pos: u8,
}

impl BodyRelay {
    /// A relay for a body framed as `framing`, re-encoding chunked bodies.
    pub fn new(framing: BodyFraming) -> Self {
        Self::with_output(framing, ChunkedOutput::Reencode)
    }

    /// A relay choosing how chunked bodies are written out.
    pub fn with_output(framing: BodyFraming, output: ChunkedOutput) -> Self {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length { remaining: n },
            BodyFraming::Chunked => State::Size {
                value: 0,
                digits: 0,
            },
            BodyFraming::UntilClose => State::UntilClose,
        };
        BodyRelay {
            state,
            output,
            pending: [0; 20],
            pending_len: 0,
            pending_pos: 0,
        }
    }

    /// True once the whole body has been read and written out: the next input byte belongs
    /// to the next message.
    pub fn is_done(&self) -> bool {
        self.state == State::Done && self.pending_pos == self.pending_len
    }

    /// Bytes of body still expected, when the framing says (a `Content-Length` body).
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length { remaining } => Some(remaining),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// For bodies that are copied unchanged (Content-Length, until-close): how many of the
    /// next `available` input bytes belong to the body, counted as relayed. The shell may then
    /// send them straight from its input buffer instead of calling [`BodyRelay::relay`].
    /// `None` for chunked bodies, which must go through `relay`.
    pub fn verbatim(&mut self, available: usize) -> Option<usize> {
        match &mut self.state {
            State::Length { remaining } => {
                let n = clamp(*remaining, available);
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.state = State::Done;
                }
                Some(n)
            }
            State::UntilClose => Some(available),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The connection ended. Fine for an until-close body (which is then done) and for a body
    /// that was complete; anything else was cut short.
    pub fn finish(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(BodyError::Truncated),
        }
    }

    /// Feeds `input` (bytes that follow what was consumed before) and writes what is to be
    /// sent on into `out`. Call again with the unconsumed rest (and more input) until
    /// [`BodyRelay::is_done`]; an empty `input` flushes pending framing bytes. Any `out` of at
    /// least one byte makes progress.
    pub fn relay(&mut self, input: &[u8], out: &mut [u8]) -> Result<Relayed, BodyError> {
        let mut i = 0;
        let mut o = 0;
        loop {
            // Framing bytes owed to the output go first.
            while self.pending_pos < self.pending_len {
                let Some(slot) = out.get_mut(o) else {
                    return Ok(Relayed {
                        consumed: i,
                        produced: o,
                    });
                };
                *slot = self.pending[self.pending_pos as usize];
                self.pending_pos += 1;
                o += 1;
            }
            if self.state == State::Done {
                break;
            }
            let Some(&b) = input.get(i) else { break };
            match self.state {
                State::Done => break,
                State::Length { remaining } => {
                    let n = clamp(remaining, (input.len() - i).min(out.len() - o));
                    if n == 0 {
                        break;
                    }
                    out[o..o + n].copy_from_slice(&input[i..i + n]);
                    i += n;
                    o += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::Done
                    } else {
                        State::Length { remaining }
                    };
                }
                State::UntilClose => {
                    let n = (input.len() - i).min(out.len() - o);
                    if n == 0 {
                        break;
                    }
                    out[o..o + n].copy_from_slice(&input[i..i + n]);
                    i += n;
                    o += n;
                }
                State::Data { remaining } => {
                    let n = clamp(remaining, (input.len() - i).min(out.len() - o));
                    if n == 0 {
                        break;
                    }
                    out[o..o + n].copy_from_slice(&input[i..i + n]);
                    i += n;
                    o += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                }
                _ => {
                    self.step_byte(b)?;
                    i += 1;
                }
            }
        }
        Ok(Relayed {
            consumed: i,
            produced: o,
        })
    }

    /// Advances the chunked framing by one byte (outside chunk data).
    fn step_byte(&mut self, b: u8) -> Result<(), BodyError> {
        self.state = match self.state {
            State::Size { value, digits } => match (hex_digit(b), b) {
                (Some(d), _) => {
                    if digits >= MAX_CHUNK_SIZE_DIGITS {
                        return Err(BodyError::InvalidChunkSize);
                    }
                    let value = value
                        .checked_mul(16)
                        .map(|v| v | u64::from(d))
                        .ok_or(BodyError::ChunkSizeOverflow)?;
                    State::Size {
                        value,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err(BodyError::InvalidChunkSize),
                (_, b';') => State::Ext { value, len: 0 },
                (_, b' ' | b'\t') => State::SizeWs { value },
                (_, b'\r') => State::SizeLf { value },
                _ => return Err(BodyError::InvalidChunkSize),
            },
            // Whitespace after the size is only allowed before an extension (BWS ";").
            State::SizeWs { value } => match b {
                b' ' | b'\t' => State::SizeWs { value },
                b';' => State::Ext { value, len: 0 },
                _ => return Err(BodyError::InvalidChunkSize),
            },
            State::Ext { value, len } => match b {
                b'\r' => State::SizeLf { value },
                b'\t' | 0x20..=0x7e if len < MAX_CHUNK_EXT_LEN => State::Ext {
                    value,
                    len: len + 1,
                },
                _ => return Err(BodyError::InvalidChunkExtension),
            },
            State::SizeLf { value } => {
                if b != b'\n' {
                    return Err(BodyError::InvalidChunkSize);
                }
                if value == 0 {
                    State::Trailer {
                        line_len: 0,
                        total: 0,
                    }
                } else {
                    self.emit_chunk_header(value);
                    State::Data { remaining: value }
                }
            }
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(BodyError::MissingChunkCrlf),
            },
            State::DataLf => match b {
                b'\n' => {
                    self.emit(b"\r\n");
                    State::Size {
                        value: 0,
                        digits: 0,
                    }
                }
                _ => return Err(BodyError::MissingChunkCrlf),
            },
            State::Trailer { line_len, total } => {
                let total = total + 1;
                if total > MAX_TRAILER_LEN {
                    return Err(BodyError::TrailerTooLarge);
                }
                match b {
                    b'\r' => State::TrailerLf { line_len, total },
                    b' ' | b'\t' if line_len == 0 => return Err(BodyError::InvalidTrailer),
                    b'\t' | 0x20..=0x7e | 0x80..=0xff => State::Trailer {
                        line_len: line_len + 1,
                        total,
                    },
                    _ => return Err(BodyError::InvalidTrailer),
                }
            }
            State::TrailerLf { line_len, total } => match b {
                b'\n' if line_len == 0 => {
                    self.emit(b"0\r\n\r\n");
                    State::Done
                }
                b'\n' => State::Trailer { line_len: 0, total },
                _ => return Err(BodyError::InvalidTrailer),
            },
            State::Done | State::Length { .. } | State::UntilClose | State::Data { .. } => {
                self.state
            }
        };
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.output == ChunkedOutput::DataOnly {
            return;
        }
        let n = bytes.len().min(self.pending.len());
        self.pending[..n].copy_from_slice(&bytes[..n]);
        self.pending_len = n as u8;
        self.pending_pos = 0;
    }

    fn emit_chunk_header(&mut self, size: u64) {
        let mut buf = [0u8; 18];
        let mut c = Cursor::new(&mut buf);
        c.put_hex(size).put(b"\r\n");
        let n = c.len();
        self.emit(&buf[..n]);
    }
}

fn clamp(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes through an output of `out_cap` bytes and
    /// collects what came out.
    fn run(
        framing: BodyFraming,
        output: ChunkedOutput,
        input: &[u8],
        step: usize,
        out_cap: usize,
    ) -> (Result<(), BodyError>, Vec<u8>, usize) {
        let mut relay = BodyRelay::with_output(framing, output);
        let mut collected = Vec::new();
        let mut out = vec![0u8; out_cap];
        let mut pos = 0;
        let mut fed = 0;
        for _ in 0..100_000 {
            if relay.is_done() {
                break;
            }
            fed = (fed + step).min(input.len()).max(pos);
            match relay.relay(&input[pos..fed], &mut out) {
                Ok(r) => {
                    pos += r.consumed;
                    collected.extend_from_slice(&out[..r.produced]);
                    if r.consumed == 0 && r.produced == 0 && fed == input.len() {
                        return (relay.finish(), collected, pos);
                    }
                }
                Err(e) => return (Err(e), collected, pos),
            }
        }
        (Ok(()), collected, pos)
    }

    #[test]
    fn content_length_stops_at_the_end_of_the_body() {
        let (r, out, used) = run(
            BodyFraming::Length(5),
            ChunkedOutput::Reencode,
            b"helloGET /",
            3,
            2,
        );
        assert_eq!(r, Ok(()));
        assert_eq!(out, b"hello");
        assert_eq!(used, 5);
    }

    #[test]
    fn truncated_content_length_is_an_error_at_eof() {
        let (r, out, _) = run(
            BodyFraming::Length(10),
            ChunkedOutput::Reencode,
            b"hel",
            5,
            8,
        );
        assert_eq!(r, Err(BodyError::Truncated));
        assert_eq!(out, b"hel");
    }

    #[test]
    fn until_close_ends_at_eof() {
        let mut relay = BodyRelay::new(BodyFraming::UntilClose);
        let mut out = [0u8; 8];
        let r = relay.relay(b"abc", &mut out).unwrap();
        assert_eq!((r.consumed, r.produced), (3, 3));
        assert!(!relay.is_done());
        assert_eq!(relay.finish(), Ok(()));
        assert!(relay.is_done());
    }

    #[test]
    fn no_body_is_done_at_once() {
        let mut relay = BodyRelay::new(BodyFraming::None);
        assert!(relay.is_done());
        let r = relay.relay(b"GET / HTTP/1.1", &mut [0u8; 4]).unwrap();
        assert_eq!(
            r,
            Relayed {
                consumed: 0,
                produced: 0
            }
        );
    }

    #[test]
    fn chunked_is_normalised_and_trailers_are_dropped() {
        let input = b"1a; name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n03\r\nxyz\r\n0\r\nRemote-User: admin\r\nX-A: b\r\n\r\nNEXT";
        for step in [1, 2, 7, 100] {
            for cap in [1, 3, 64] {
                let (r, out, used) = run(
                    BodyFraming::Chunked,
                    ChunkedOutput::Reencode,
                    input,
                    step,
                    cap,
                );
                assert_eq!(r, Ok(()), "step {step} cap {cap}");
                assert_eq!(
                    out, b"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\nxyz\r\n0\r\n\r\n",
                    "step {step} cap {cap}"
                );
                assert_eq!(&input[used..], b"NEXT");
            }
        }
        let (r, out, _) = run(BodyFraming::Chunked, ChunkedOutput::DataOnly, input, 5, 4);
        assert_eq!(r, Ok(()));
        assert_eq!(out, b"abcdefghijklmnopqrstuvwxyzxyz");
    }

    #[test]
    fn hostile_chunked_bodies_are_refused() {
        let cases: &[(&[u8], BodyError)] = &[
            (b"\r\n", BodyError::InvalidChunkSize),
            (b"g\r\n", BodyError::InvalidChunkSize),
            (b"-1\r\n", BodyError::InvalidChunkSize),
            (b"0x5\r\n", BodyError::InvalidChunkSize),
            (b"5\n", BodyError::InvalidChunkSize),
            (b"5 \r\n", BodyError::InvalidChunkSize),
            (b"5\rX", BodyError::InvalidChunkSize),
            (b"10000000000000000\r\n", BodyError::ChunkSizeOverflow),
            (b"5;a\nb\r\n", BodyError::InvalidChunkExtension),
            (b"5;a\0\r\n", BodyError::InvalidChunkExtension),
            (b"3\r\nabcX", BodyError::MissingChunkCrlf),
            (b"3\r\nabc\rX", BodyError::MissingChunkCrlf),
            (b"3\r\nabc\n", BodyError::MissingChunkCrlf),
            (b"0\r\nX: a\nY: b\r\n\r\n", BodyError::InvalidTrailer),
            (b"0\r\nX: a\r\n b\r\n\r\n", BodyError::InvalidTrailer),
            (b"0\r\nX: \x01\r\n\r\n", BodyError::InvalidTrailer),
            (b"0\r\n\n", BodyError::InvalidTrailer),
        ];
        for (input, want) in cases {
            let (r, _, _) = run(BodyFraming::Chunked, ChunkedOutput::Reencode, input, 1, 8);
            assert_eq!(r, Err(*want), "{:?}", String::from_utf8_lossy(input));
        }
        let mut long = vec![b'x'; MAX_TRAILER_LEN + 10];
        long[..3].copy_from_slice(b"0\r\n");
        let (r, _, _) = run(BodyFraming::Chunked, ChunkedOutput::Reencode, &long, 64, 8);
        assert_eq!(r, Err(BodyError::TrailerTooLarge));
        let mut ext = vec![b'a'; MAX_CHUNK_EXT_LEN + 10];
        ext[..2].copy_from_slice(b"1;");
        let (r, _, _) = run(BodyFraming::Chunked, ChunkedOutput::Reencode, &ext, 64, 8);
        assert_eq!(r, Err(BodyError::InvalidChunkExtension));
    }

    #[test]
    fn largest_chunk_size_is_accepted_and_leading_zeros_are_fine() {
        let mut relay = BodyRelay::new(BodyFraming::Chunked);
        let r = relay
            .relay(b"FFFFFFFFFFFFFFFF\r\nab", &mut [0u8; 64])
            .unwrap();
        assert_eq!(r.consumed, 20);
        assert_eq!(relay.remaining(), None);
        let (r, out, _) = run(
            BodyFraming::Chunked,
            ChunkedOutput::Reencode,
            b"00002\r\nab\r\n000\r\n\r\n",
            3,
            8,
        );
        assert_eq!(r, Ok(()));
        assert_eq!(out, b"2\r\nab\r\n0\r\n\r\n");
    }

    #[test]
    fn truncated_chunked_is_an_error_at_eof() {
        let (r, _, _) = run(
            BodyFraming::Chunked,
            ChunkedOutput::Reencode,
            b"5\r\nab",
            2,
            8,
        );
        assert_eq!(r, Err(BodyError::Truncated));
    }

    #[test]
    fn verbatim_counts_content_length_bytes() {
        let mut relay = BodyRelay::new(BodyFraming::Length(5));
        assert_eq!(relay.verbatim(3), Some(3));
        assert_eq!(relay.remaining(), Some(2));
        assert_eq!(relay.verbatim(10), Some(2));
        assert!(relay.is_done());
        let mut chunked = BodyRelay::new(BodyFraming::Chunked);
        assert_eq!(chunked.verbatim(10), None);
    }
}
