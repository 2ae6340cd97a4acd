//! Request heads: a checked view over the bytes a shell has read from a client.
//!
//! [`RequestHead::parse`] runs `httparse` on the bytes read so far and then applies the rules
//! that keep gatehouse and the app behind it agreeing on where each request starts and ends
//! (RFC 9112 §6) and on who it is for. A head that exists is unambiguous: one framing, one
//! host, HTTP/1.0 or 1.1, no folded or bare-CR/LF lines. Anything else is a
//! [`RequestError`] with the status to answer before closing the connection.
//!
//! Line endings: RFC 9112 §2.2 lets a recipient accept a bare LF as a line end and obliges it
//! to refuse (or blank out) a bare CR. gatehouse refuses both: it sits in front of other
//! parsers, and any byte that two parsers may read differently is a request-smuggling lever.
//! No real client sends either.

use core::fmt;

use super::body::BodyFraming;
use super::response::Status;

/// Largest request head (request line and header fields, with the blank line) gatehouse
/// accepts; larger heads are answered with 431.
pub const MAX_HEAD_LEN: usize = 8 * 1024;

/// Most header fields a request head may carry; more are answered with 431.
pub const MAX_HEADERS: usize = 64;

/// The HTTP version of a message. Only these two are spoken; anything else is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
}

impl Version {
    /// The version as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Progress of parsing a head from the bytes read so far.
#[derive(Debug)]
pub enum Parse<T> {
    /// The whole head was there.
    Complete(T),
    /// The head is not complete yet (and still within the size limit): read more bytes and
    /// call again with everything read so far.
    Incomplete,
}

/// Why a request head was refused. Every variant means: answer [`RequestError::status`], then
/// close the connection (the byte stream can no longer be trusted to be in step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The head is longer than [`MAX_HEAD_LEN`].
    HeadTooLarge,
    /// The head has more than [`MAX_HEADERS`] fields.
    TooManyHeaders,
    /// A well-formed version other than HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// The request line is not `method SP target SP version`.
    InvalidRequestLine,
    /// A CR not followed by LF.
    BareCr,
    /// A LF not preceded by CR.
    BareLf,
    /// A header line starting with whitespace (obsolete line folding), or whitespace between
    /// the request line and the first header.
    ObsFold,
    /// A header name with a byte outside `token`, or whitespace before the colon.
    InvalidHeaderName,
    /// A header value with a control byte.
    InvalidHeaderValue,
    /// HTTP/1.1 request without `Host`.
    MissingHost,
    /// More than one `Host` field.
    MultipleHost,
    /// A `Host` (or absolute-form authority) that is empty or not a plain `host[:port]`.
    InvalidHost,
    /// An absolute-form target whose authority differs from `Host`.
    HostMismatch,
    /// A target that is not origin-form (`/path?query`) or `http(s)` absolute-form, has a
    /// fragment, or carries user info.
    InvalidTarget,
    /// `OPTIONS *`: gatehouse has no server-wide options to offer and forwards none.
    AsteriskForm,
    /// `CONNECT`: gatehouse is not a forward proxy.
    ConnectMethod,
    /// Both `Content-Length` and `Transfer-Encoding`.
    ContentLengthWithTransferEncoding,
    /// A `Content-Length` that is not a plain decimal number.
    InvalidContentLength,
    /// Several `Content-Length` fields that disagree.
    ConflictingContentLength,
    /// A `Transfer-Encoding` other than exactly `chunked` (its last coding must be chunked,
    /// and gatehouse decodes no other coding).
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1: treat as faulty framing).
    TransferEncodingOnHttp10,
    /// An `Expect` other than `100-continue`.
    UnsupportedExpectation,
}

impl RequestError {
    /// The status gatehouse answers with before closing.
    pub fn status(self) -> Status {
        match self {
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => {
                Status::RequestHeaderFieldsTooLarge
            }
            RequestError::UnsupportedVersion => Status::HttpVersionNotSupported,
            RequestError::UnsupportedTransferEncoding => Status::NotImplemented,
            RequestError::UnsupportedExpectation => Status::ExpectationFailed,
            _ => Status::BadRequest,
        }
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestError::HeadTooLarge => "head too large",
            RequestError::TooManyHeaders => "too many header fields",
            RequestError::UnsupportedVersion => "unsupported HTTP version",
            RequestError::InvalidRequestLine => "invalid request line",
            RequestError::BareCr => "bare CR",
            RequestError::BareLf => "bare LF",
            RequestError::ObsFold => "obsolete line folding",
            RequestError::InvalidHeaderName => "invalid header name",
            RequestError::InvalidHeaderValue => "invalid header value",
            RequestError::MissingHost => "missing Host",
            RequestError::MultipleHost => "more than one Host",
            RequestError::InvalidHost => "invalid Host",
            RequestError::HostMismatch => "absolute-form target differs from Host",
            RequestError::InvalidTarget => "invalid request target",
            RequestError::AsteriskForm => "asterisk-form target",
            RequestError::ConnectMethod => "CONNECT",
            RequestError::ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding"
            }
            RequestError::InvalidContentLength => "invalid Content-Length",
            RequestError::ConflictingContentLength => "conflicting Content-Length",
            RequestError::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            RequestError::TransferEncodingOnHttp10 => "Transfer-Encoding on HTTP/1.0",
            RequestError::UnsupportedExpectation => "unsupported Expect",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, checked request head: a view over the shell's buffer.
#[derive(Clone, Debug)]
pub struct RequestHead<'b> {
    method: &'b str,
    target: &'b str,
    path_and_query: &'b str,
    version: Version,
    headers: [httparse::Header<'b>; MAX_HEADERS],
    header_count: usize,
    head_len: usize,
    /// The head's bytes (`head_len` of them), which the fields are views into.
    raw: &'b [u8],
    host: Option<&'b [u8]>,
    body: BodyFraming,
    expect_continue: bool,
    connection: ConnectionOptions,
    upgrade: Option<&'b [u8]>,
}

/// What the `Connection` field(s) of a message said, beyond the names of fields to drop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `close` was listed.
    pub close: bool,
    /// `keep-alive` was listed.
    pub keep_alive: bool,
    /// `upgrade` was listed.
    pub upgrade: bool,
}

impl<'b> RequestHead<'b> {
    /// Parses the request head at the start of `bytes` (everything the shell has read on this
    /// connection since the end of the previous request).
    ///
    /// Returns [`Parse::Incomplete`] while the head may still complete within
    /// [`MAX_HEAD_LEN`]; the shell reads more and calls again with all the bytes. The same
    /// bytes give the same answer however they were split across reads.
    pub fn parse(bytes: &'b [u8]) -> Result<Parse<Self>, RequestError> {
        let mut head = RequestHead::empty();
        Ok(match head.parse_in_place(bytes)? {
            Parse::Complete(()) => Parse::Complete(head),
            Parse::Incomplete => Parse::Incomplete,
        })
    }

    /// A head with no fields, to parse into with [`RequestHead::parse_in_place`].
    pub fn empty() -> Self {
        // A copy of one constant: built in place field by field, the header array was
        // written in a loop and then copied again.
        const EMPTY: RequestHead<'static> = RequestHead {
            method: "",
            target: "",
            path_and_query: "",
            version: Version::Http11,
            headers: [httparse::EMPTY_HEADER; MAX_HEADERS],
            header_count: 0,
            head_len: 0,
            raw: &[],
            host: None,
            body: BodyFraming::None,
            expect_continue: false,
            connection: ConnectionOptions {
                close: false,
                keep_alive: false,
                upgrade: false,
            },
            upgrade: None,
        };
        EMPTY
    }

    /// [`RequestHead::parse`] into `self`, which holds the result on
    /// `Ok(Parse::Complete(()))` (a head is a few KiB; this spares moving it).
    pub fn parse_in_place(&mut self, bytes: &'b [u8]) -> Result<Parse<()>, RequestError> {
        // Only the first MAX_HEAD_LEN bytes can hold a head; judging nothing past them keeps
        // the answer independent of how much more the client already sent.
        let window = &bytes[..bytes.len().min(MAX_HEAD_LEN)];
        let head = self;
        head.header_count = 0;
        let mut req = httparse::Request::new(&mut head.headers);
        let status = req.parse(window);
        let (method, target, version, header_count) =
            (req.method, req.path, req.version, req.headers.len());
        let head_len = match status {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if first_bare_lf(window).is_some() {
                    Err(RequestError::BareLf)
                } else if bytes.len() >= MAX_HEAD_LEN {
                    Err(RequestError::HeadTooLarge)
                } else {
                    Ok(Parse::Incomplete)
                };
            }
            Err(e) => {
                // Name the refusal from the bytes up to where httparse failed, so that the
                // same stream gets the same reason however it was split into reads.
                let end = httparse_error_end(window);
                return Err(match first_bare_lf(window) {
                    Some(lf) if lf < end => RequestError::BareLf,
                    _ => classify_httparse_error(&window[..end], e),
                });
            }
        };
        let (Some(m), Some(t)) = (method, target) else {
            return Err(RequestError::InvalidRequestLine);
        };
        if !lines_end_in_crlf(&window[..head_len], m, t, &head.headers[..header_count]) {
            return Err(RequestError::BareLf);
        }
        let (Some(method), Some(target), Some(version)) = (method, target, version) else {
            return Err(RequestError::InvalidRequestLine);
        };
        let version = match version {
            0 => Version::Http10,
            1 => Version::Http11,
            _ => return Err(RequestError::UnsupportedVersion),
        };
        head.method = method;
        head.target = target;
        head.version = version;
        head.header_count = header_count;
        head.head_len = head_len;
        head.raw = &window[..head_len];
        head.check()?;
        Ok(Parse::Complete(()))
    }

    /// Applies the framing, host and target rules to a head httparse accepted.
    fn check(&mut self) -> Result<(), RequestError> {
        let (method, target, version) = (self.method, self.target, self.version);
        if method == "CONNECT" {
            return Err(RequestError::ConnectMethod);
        }
        let fields = &self.headers[..self.header_count];

        let mut host: Option<&'b [u8]> = None;
        let mut content_length: Option<u64> = None;
        let mut transfer_encoding = TransferEncoding::Absent;
        let mut expect_continue = false;
        let mut connection = ConnectionOptions::default();
        let mut upgrade: Option<&'b [u8]> = None;

        for h in fields {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"host") {
                if host.is_some() {
                    return Err(RequestError::MultipleHost);
                }
                host = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                let n = parse_content_length(h.value)?;
                match content_length {
                    Some(prev) if prev != n => return Err(RequestError::ConflictingContentLength),
                    _ => content_length = Some(n),
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = transfer_encoding.add(h.value);
            } else if name.eq_ignore_ascii_case(b"expect") {
                if h.value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(RequestError::UnsupportedExpectation);
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in list_tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        connection.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        connection.keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        connection.upgrade = true;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                upgrade = Some(h.value);
            }
        }

        let body = match (content_length, transfer_encoding) {
            (Some(_), TransferEncoding::Chunked | TransferEncoding::Other) => {
                return Err(RequestError::ContentLengthWithTransferEncoding);
            }
            (_, TransferEncoding::Chunked | TransferEncoding::Other)
                if version == Version::Http10 =>
            {
                return Err(RequestError::TransferEncodingOnHttp10);
            }
            (_, TransferEncoding::Other) => {
                return Err(RequestError::UnsupportedTransferEncoding);
            }
            (_, TransferEncoding::Chunked) => BodyFraming::Chunked,
            (Some(0) | None, TransferEncoding::Absent) => BodyFraming::None,
            (Some(n), TransferEncoding::Absent) => BodyFraming::Length(n),
        };

        let path_and_query = if target == "*" {
            return Err(RequestError::AsteriskForm);
        } else if target.starts_with('/') {
            target
        } else if let Some((authority, rest)) = split_absolute_form(target) {
            check_host(authority)?;
            match host {
                Some(h) if !h.eq_ignore_ascii_case(authority.as_bytes()) => {
                    return Err(RequestError::HostMismatch);
                }
                Some(_) => {}
                // HTTP/1.0 without Host: the target's authority is the host.
                None => host = Some(authority.as_bytes()),
            }
            rest
        } else {
            return Err(RequestError::InvalidTarget);
        };
        if path_and_query.contains('#') {
            return Err(RequestError::InvalidTarget);
        }

        match host {
            Some(h) => check_host_bytes(h)?,
            None if version == Version::Http11 => return Err(RequestError::MissingHost),
            None => {}
        }

        // An upgrade is only requested when `Connection: upgrade` says the Upgrade field is
        // meant for this hop (RFC 9110 §7.8), and only in HTTP/1.1.
        let upgrade = match (upgrade, connection.upgrade, version) {
            (Some(u), true, Version::Http11) => Some(u),
            _ => None,
        };

        self.path_and_query = path_and_query;
        self.host = host;
        self.body = body;
        // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored (a
        // 1.0 client would take the interim `100` for the final answer).
        self.expect_continue = expect_continue && version == Version::Http11;
        self.connection = connection;
        self.upgrade = upgrade;
        Ok(())
    }

    /// The method, as sent (methods are case-sensitive).
    pub fn method(&self) -> &'b str {
        self.method
    }

    /// True for `HEAD`, whose response never has a body.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The request target exactly as sent.
    pub fn target(&self) -> &'b str {
        self.target
    }

    /// The origin-form part of the target: `/path?query` (for an absolute-form target, what
    /// follows the authority; may be empty or start with `?`, meaning the path `/`).
    pub fn path_and_query(&self) -> &'b str {
        self.path_and_query
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields, in order, as sent.
    pub fn headers(&self) -> &[httparse::Header<'b>] {
        &self.headers[..self.header_count]
    }

    /// Every value of the header `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers()
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The value of `name` when it appears exactly once; `Err(())` when it appears twice or
    /// more (callers refuse rather than guess which one counts).
    #[allow(clippy::result_unit_err)]
    pub fn single_header(&self, name: &str) -> Result<Option<&'b [u8]>, ()> {
        let mut values = self.header_values(name);
        let first = values.next();
        if values.next().is_some() {
            Err(())
        } else {
            Ok(first)
        }
    }

    /// The head's bytes as the client sent them (the fields are views into them).
    pub(crate) fn raw(&self) -> &'b [u8] {
        self.raw
    }

    /// Length of the head in the shell's buffer; the body (if any) starts here.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// The host the request is for (`Host`, or the authority of an HTTP/1.0 absolute-form
    /// target without `Host`). Checked to be a plain `host[:port]`.
    pub fn host(&self) -> Option<&'b [u8]> {
        self.host
    }

    /// How the request body is framed.
    pub fn body(&self) -> BodyFraming {
        self.body
    }

    /// The client sent `Expect: 100-continue`: once gatehouse decides to accept the body, the
    /// shell writes [`super::CONTINUE_100`] to the client before reading it. The expectation
    /// is not forwarded.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }

    /// The `Connection` options.
    pub fn connection(&self) -> ConnectionOptions {
        self.connection
    }

    /// The protocol requested in `Upgrade` (e.g. `websocket`) when the request asks for one
    /// for this hop (`Connection: upgrade`, HTTP/1.1).
    pub fn upgrade(&self) -> Option<&'b [u8]> {
        self.upgrade
    }

    /// Whether the client wants the connection kept open after this exchange: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.connection.close,
            Version::Http10 => self.connection.keep_alive && !self.connection.close,
        }
    }
}

#[derive(Clone, Copy)]
enum TransferEncoding {
    Absent,
    Chunked,
    Other,
}

impl TransferEncoding {
    /// Folds one more `Transfer-Encoding` field into what was seen. Only the exact coding list
    /// `chunked` (once, over all fields) is accepted.
    fn add(self, value: &[u8]) -> Self {
        let mut state = self;
        let mut any = false;
        for token in list_tokens(value) {
            any = true;
            state = match state {
                TransferEncoding::Absent if token.eq_ignore_ascii_case(b"chunked") => {
                    TransferEncoding::Chunked
                }
                _ => TransferEncoding::Other,
            };
        }
        if any { state } else { TransferEncoding::Other }
    }
}

/// `value` split at every `;`, as `value.split(|&b| b == b';')` does, but finding each `;` a
/// word at a time (a `Cookie` value is mostly one long session token).
pub(crate) fn split_semicolons(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    core::iter::from_fn(move || {
        let v = rest?;
        match memchr::memchr(b';', v) {
            Some(i) => {
                rest = v.get(i + 1..);
                v.get(..i)
            }
            None => {
                rest = None;
                Some(v)
            }
        }
    })
}

/// Splits a comma-separated field value into its non-empty, whitespace-trimmed elements.
pub fn list_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_content_length(value: &[u8]) -> Result<u64, RequestError> {
    if value.is_empty() {
        return Err(RequestError::InvalidContentLength);
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(RequestError::InvalidContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(RequestError::InvalidContentLength)?;
    }
    Ok(n)
}

/// `http://authority/rest` or `https://authority/rest` → `(authority, rest)`.
fn split_absolute_form(target: &str) -> Option<(&str, &str)> {
    let after_scheme = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"))?;
    let end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    Some(after_scheme.split_at(end))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn check_host(authority: &str) -> Result<(), RequestError> {
    check_host_bytes(authority.as_bytes())
}

/// A host is a plain `name[:port]` or `[v6]:port`: letters, digits, `-._:` and brackets.
/// Stricter than RFC 3986's reg-name on purpose: the value flows into `X-Forwarded-Host`,
/// and no real host needs sub-delimiters or percent-escapes.
fn check_host_bytes(host: &[u8]) -> Result<(), RequestError> {
    if host.is_empty()
        || !host.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
        })
    {
        return Err(RequestError::InvalidHost);
    }
    Ok(())
}

/// Whether every line of a complete head ends in CRLF. httparse accepts a bare LF as a line
/// end but no LF anywhere else, so only the line ends need looking at: any empty lines
/// httparse skipped before the request line, the end of the request line, the end of each
/// field (after its trailing whitespace) and the blank line.
fn lines_end_in_crlf(
    head: &[u8],
    method: &str,
    target: &str,
    fields: &[httparse::Header<'_>],
) -> bool {
    let base = head.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize).wrapping_sub(base);
    let crlf_at = |i: usize| head.get(i..i.wrapping_add(2)) == Some(&b"\r\n"[..]);
    let skipped = head.get(..offset(method.as_bytes())).unwrap_or(head);
    if first_bare_lf(skipped).is_some() {
        return false;
    }
    // `target SP HTTP/1.x CRLF`
    if !crlf_at(offset(target.as_bytes()) + target.len() + 9) {
        return false;
    }
    for h in fields {
        let mut i = offset(h.value) + h.value.len();
        while matches!(head.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if !crlf_at(i) {
            return false;
        }
    }
    crlf_at(head.len().wrapping_sub(2))
}

/// Position of the first LF not preceded by CR. Scans eight bytes at a time (a head is
/// mostly long lines), looking closer only at words that hold a LF.
fn first_bare_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LFS: u64 = ONES * b'\n' as u64;
    let is_bare = |i: usize| bytes[i] == b'\n' && (i == 0 || bytes[i - 1] != b'\r');
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ LFS;
        if (x.wrapping_sub(ONES) & !x & HIGHS) != 0
            && let Some(i) = (base..base + 8).find(|&i| is_bare(i))
        {
            return Some(i);
        }
        base += 8;
    }
    (base..bytes.len()).find(|&i| is_bare(i))
}

/// The shortest prefix of `bytes` on which httparse already fails (httparse scans left to
/// right, so failure is monotone in the prefix length). Only called on the error path.
fn httparse_error_end(bytes: &[u8]) -> usize {
    let fails = |k: usize| {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        httparse::Request::new(&mut headers)
            .parse(&bytes[..k])
            .is_err()
    };
    let (mut lo, mut hi) = (0, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

pub(crate) fn has_bare_cr(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n')
}

fn has_folded_line(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .any(|w| w[0] == b'\n' && matches!(w[1], b' ' | b'\t'))
}

/// Names the reason behind an `httparse` error, looking at the bytes for the smuggling
/// patterns that deserve their own name in logs.
fn classify_httparse_error(bytes: &[u8], e: httparse::Error) -> RequestError {
    match e {
        httparse::Error::TooManyHeaders => RequestError::TooManyHeaders,
        _ if has_bare_cr(bytes) => RequestError::BareCr,
        httparse::Error::Version if looks_like_other_version(bytes) => {
            RequestError::UnsupportedVersion
        }
        httparse::Error::HeaderName if has_folded_line(bytes) => RequestError::ObsFold,
        httparse::Error::HeaderName => RequestError::InvalidHeaderName,
        httparse::Error::HeaderValue => RequestError::InvalidHeaderValue,
        _ => RequestError::InvalidRequestLine,
    }
}

/// The request line ends in a well-formed `HTTP/x.y` (or `HTTP/x`), just not 1.0 or 1.1.
fn looks_like_other_version(bytes: &[u8]) -> bool {
    let line_end = bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[..line_end];
    if line.iter().filter(|&&b| b == b' ').count() != 2 {
        return false;
    }
    let Some(sp) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    let version = &line[sp + 1..];
    match version {
        [b'H', b'T', b'T', b'P', b'/', major] => major.is_ascii_digit(),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<RequestHead<'_>, RequestError> {
        match RequestHead::parse(bytes)? {
            Parse::Complete(h) => Ok(h),
            Parse::Incomplete => panic!("incomplete: {:?}", core::str::from_utf8(bytes)),
        }
    }

    fn refused(bytes: &[u8]) -> RequestError {
        match RequestHead::parse(bytes) {
            Err(e) => e,
            Ok(_) => panic!("accepted: {:?}", core::str::from_utf8(bytes)),
        }
    }

    #[test]
    fn a_plain_get_parses_with_its_facts() {
        let bytes =
            b"GET /app/?x=1 HTTP/1.1\r\nHost: music.example:8443\r\nAccept: text/html\r\n\r\nNEXT";
        let h = parse(bytes).unwrap();
        assert_eq!(h.method(), "GET");
        assert_eq!(h.path_and_query(), "/app/?x=1");
        assert_eq!(h.version(), Version::Http11);
        assert_eq!(h.host(), Some(&b"music.example:8443"[..]));
        assert_eq!(h.body(), BodyFraming::None);
        assert_eq!(h.head_len(), bytes.len() - 4);
        assert!(h.keep_alive());
        assert!(!h.expect_continue());
        assert_eq!(h.upgrade(), None);
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        let bytes = b"GET / HTTP/1.1\r\nHost: a\r\n";
        assert!(matches!(RequestHead::parse(bytes), Ok(Parse::Incomplete)));
        assert!(matches!(RequestHead::parse(b""), Ok(Parse::Incomplete)));
    }

    #[test]
    fn oversize_heads_are_431() {
        let mut big = [b'a'; MAX_HEAD_LEN + 100];
        big[..22].copy_from_slice(b"GET / HTTP/1.1\r\nX-Big:");
        let e = refused(&big);
        assert_eq!(e, RequestError::HeadTooLarge);
        assert_eq!(e.status(), Status::RequestHeaderFieldsTooLarge);
    }

    #[test]
    fn too_many_headers_are_431() {
        let mut buf = [0u8; 4096];
        let mut n = 0;
        let mut put = |s: &[u8]| {
            buf[n..n + s.len()].copy_from_slice(s);
            n += s.len();
        };
        put(b"GET / HTTP/1.1\r\nHost: a\r\n");
        for _ in 0..MAX_HEADERS {
            put(b"X-A: b\r\n");
        }
        put(b"\r\n");
        assert_eq!(refused(&buf[..n]), RequestError::TooManyHeaders);
    }

    #[test]
    fn versions_other_than_1_0_and_1_1_are_505_or_400() {
        assert_eq!(
            refused(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            RequestError::UnsupportedVersion
        );
        assert_eq!(
            refused(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
            RequestError::UnsupportedVersion
        );
        assert_eq!(
            RequestError::UnsupportedVersion.status(),
            Status::HttpVersionNotSupported
        );
        assert_eq!(
            refused(b"GET / HTXP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::InvalidRequestLine
        );
        let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(h.version(), Version::Http10);
        assert!(!h.keep_alive());
    }

    #[test]
    fn smuggling_framings_are_refused() {
        let cases: &[(&[u8], RequestError)] = &[
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::ContentLengthWithTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                RequestError::ConflictingContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                RequestError::InvalidContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
                RequestError::InvalidContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
                RequestError::InvalidContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                RequestError::InvalidContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                RequestError::UnsupportedTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                RequestError::UnsupportedTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::UnsupportedTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                RequestError::UnsupportedTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
                RequestError::UnsupportedTransferEncoding,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::TransferEncodingOnHttp10,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
                RequestError::ObsFold,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n\tRemote-User: admin\r\n\r\n",
                RequestError::ObsFold,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", RequestError::BareCr),
            (b"GET / HTTP/1.1\rHost: a\r\n\r\n", RequestError::BareCr),
            (b"GET / HTTP/1.1\nHost: a\n\n", RequestError::BareLf),
            (b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", RequestError::BareLf),
            (b"GET / HTTP/1.1\r\n\r\n", RequestError::MissingHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", RequestError::MultipleHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", RequestError::MultipleHost),
            (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", RequestError::InvalidHost),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", RequestError::InvalidHost),
            (b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", RequestError::InvalidHost),
            (
                b"GET http://evil/app HTTP/1.1\r\nHost: good\r\n\r\n",
                RequestError::HostMismatch,
            ),
            (
                b"GET http://u@good/app HTTP/1.1\r\nHost: good\r\n\r\n",
                RequestError::InvalidHost,
            ),
            (b"GET ftp://good/ HTTP/1.1\r\nHost: good\r\n\r\n", RequestError::InvalidTarget),
            (b"GET app HTTP/1.1\r\nHost: good\r\n\r\n", RequestError::InvalidTarget),
            (b"GET /a#b HTTP/1.1\r\nHost: good\r\n\r\n", RequestError::InvalidTarget),
            (b"OPTIONS * HTTP/1.1\r\nHost: good\r\n\r\n", RequestError::AsteriskForm),
            (b"CONNECT good:443 HTTP/1.1\r\nHost: good\r\n\r\n", RequestError::ConnectMethod),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost : b\r\n\r\n",
                RequestError::InvalidHeaderName,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", RequestError::InvalidHeaderValue),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
                RequestError::UnsupportedExpectation,
            ),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", RequestError::InvalidRequestLine),
        ];
        for (bytes, want) in cases {
            assert_eq!(refused(bytes), *want, "{:?}", core::str::from_utf8(bytes));
        }
    }

    #[test]
    fn framing_is_derived_from_cl_or_te() {
        let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(h.body(), BodyFraming::Length(12));
        let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(h.body(), BodyFraming::None);
        let h =
            parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n")
                .unwrap();
        assert_eq!(h.body(), BodyFraming::Length(7));
        let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(h.body(), BodyFraming::Chunked);
    }

    #[test]
    fn absolute_form_must_match_host_and_yields_its_path() {
        let h = parse(b"GET HTTP://Good:80/app?q HTTP/1.1\r\nHost: good:80\r\n\r\n").unwrap();
        assert_eq!(h.path_and_query(), "/app?q");
        let h = parse(b"GET http://good HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(h.host(), Some(&b"good"[..]));
        assert_eq!(h.path_and_query(), "");
    }

    #[test]
    fn http10_expect_continue_is_ignored() {
        let h = parse(b"POST /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
            .unwrap();
        assert!(!h.expect_continue());
    }

    #[test]
    fn expect_connection_and_upgrade_are_noted() {
        let h = parse(
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        assert!(h.expect_continue());
        let h = parse(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.upgrade(), Some(&b"websocket"[..]));
        let h = parse(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").unwrap();
        assert_eq!(
            h.upgrade(),
            None,
            "Upgrade without Connection: upgrade is not for this hop"
        );
        let h = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!h.keep_alive());
        let h = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(h.keep_alive());
    }

    #[test]
    fn single_header_refuses_duplicates() {
        let h = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\n\r\n").unwrap();
        assert_eq!(h.single_header("x-a"), Err(()));
        assert_eq!(h.single_header("X-B"), Ok(Some(&b"3"[..])));
        assert_eq!(h.single_header("X-C"), Ok(None));
    }

    #[test]
    fn semicolon_split_is_the_plain_split() {
        let long = [b'x'; 100];
        let mut with_long = b"a=1; ".to_vec();
        with_long.extend_from_slice(&long);
        with_long.extend_from_slice(b";b;;");
        for value in [
            &b""[..],
            b";",
            b";;",
            b"a",
            b"a;",
            b";a",
            b"a=1; b=2",
            b"a=1;b=2;  ;c",
            &with_long,
        ] {
            let fast: Vec<&[u8]> = split_semicolons(value).collect();
            let plain: Vec<&[u8]> = value.split(|&b| b == b';').collect();
            assert_eq!(fast, plain, "{:?}", core::str::from_utf8(value));
        }
    }

    #[test]
    fn every_prefix_of_a_good_head_is_incomplete() {
        let bytes = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        for i in 0..bytes.len() {
            assert!(
                matches!(RequestHead::parse(&bytes[..i]), Ok(Parse::Incomplete)),
                "prefix {i}"
            );
        }
        assert!(matches!(RequestHead::parse(bytes), Ok(Parse::Complete(_))));
    }
}
