//! Responses: the heads the app sends back (parsed to learn their framing), and the small
//! complete responses gatehouse writes itself.

use core::fmt;

use super::body::{BodyFraming, BodyRelay, ChunkedOutput};
use super::request::{
    ConnectionOptions, MAX_HEAD_LEN, MAX_HEADERS, Parse, Version, has_bare_cr, list_tokens,
};
use super::write::{Cursor, OutputFull};

/// The statuses gatehouse writes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// 200
    Ok,
    /// 204
    NoContent,
    /// 302
    Found,
    /// 303 (after a form POST)
    SeeOther,
    /// 400
    BadRequest,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 411
    LengthRequired,
    /// 413
    ContentTooLarge,
    /// 417
    ExpectationFailed,
    /// 429
    TooManyRequests,
    /// 431
    RequestHeaderFieldsTooLarge,
    /// 500
    InternalServerError,
    /// 501
    NotImplemented,
    /// 502
    BadGateway,
    /// 503
    ServiceUnavailable,
    /// 504
    GatewayTimeout,
    /// 505
    HttpVersionNotSupported,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::Found => 302,
            Status::SeeOther => 303,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::LengthRequired => 411,
            Status::ContentTooLarge => 413,
            Status::ExpectationFailed => 417,
            Status::TooManyRequests => 429,
            Status::RequestHeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::BadGateway => 502,
            Status::ServiceUnavailable => 503,
            Status::GatewayTimeout => 504,
            Status::HttpVersionNotSupported => 505,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NoContent => "No Content",
            Status::Found => "Found",
            Status::SeeOther => "See Other",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::LengthRequired => "Length Required",
            Status::ContentTooLarge => "Content Too Large",
            Status::ExpectationFailed => "Expectation Failed",
            Status::TooManyRequests => "Too Many Requests",
            Status::RequestHeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::BadGateway => "Bad Gateway",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::GatewayTimeout => "Gateway Timeout",
            Status::HttpVersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// The interim response a shell writes to a client that sent `Expect: 100-continue`, once
/// gatehouse has decided to read the body.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The realm in gatehouse's `WWW-Authenticate` challenges.
pub const BASIC_REALM: &str = "gatehouse";

/// The whole `WWW-Authenticate` value gatehouse sends with a 401.
pub const BASIC_CHALLENGE: &[u8] = b"Basic realm=\"gatehouse\", charset=\"UTF-8\"";

/// What follows a response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// A 1xx other than 101: relay the head to an HTTP/1.1 client (drop it for HTTP/1.0), then
    /// parse the next response head from what follows; the exchange is not over.
    Interim,
    /// `101 Switching Protocols` answering a request that asked for an upgrade: relay the
    /// head, then copy bytes both ways until either side closes. No more HTTP on this
    /// connection.
    Tunnel,
    /// A final response whose body is framed like this (`None` for HEAD, 204 and 304).
    Final(BodyFraming),
}

/// Why an app's response head was refused: answer the client 502 and close both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// Not a parsable HTTP/1.x status line and header fields.
    Malformed,
    /// The head is longer than [`MAX_HEAD_LEN`] or has more than [`MAX_HEADERS`] fields.
    TooLarge,
    /// A version other than HTTP/1.0 or 1.1.
    UnsupportedVersion,
    /// Both `Content-Length` and `Transfer-Encoding`, or differing or malformed
    /// `Content-Length`s.
    AmbiguousFraming,
    /// `101` to a request that did not ask for an upgrade.
    UnexpectedSwitchingProtocols,
}

impl ResponseError {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseError::Malformed => "malformed response head",
            ResponseError::TooLarge => "response head too large",
            ResponseError::UnsupportedVersion => "unsupported response version",
            ResponseError::AmbiguousFraming => "ambiguous response framing",
            ResponseError::UnexpectedSwitchingProtocols => "unexpected 101",
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed response head from the app.
#[derive(Clone, Debug)]
pub struct ResponseHead<'b> {
    code: u16,
    reason: &'b str,
    version: Version,
    headers: [httparse::Header<'b>; MAX_HEADERS],
    header_count: usize,
    head_len: usize,
    body: ResponseBody,
    connection: ConnectionOptions,
}

impl<'b> ResponseHead<'b> {
    /// Parses the response head at the start of `bytes`, for a request that was a `HEAD`
    /// (`request_was_head`) and did or did not ask for an upgrade (`upgrade_requested`):
    /// both change where the response ends (RFC 9112 §6.3).
    pub fn parse(
        bytes: &'b [u8],
        request_was_head: bool,
        upgrade_requested: bool,
    ) -> Result<Parse<Self>, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let status = resp.parse(bytes);
        let (code, reason, version, header_count) =
            (resp.code, resp.reason, resp.version, resp.headers.len());
        let head_len = match status {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if bytes.len() >= MAX_HEAD_LEN => {
                return Err(ResponseError::TooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(Parse::Incomplete),
            Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooLarge),
            Err(httparse::Error::Version) => return Err(ResponseError::UnsupportedVersion),
            Err(_) => return Err(ResponseError::Malformed),
        };
        if head_len > MAX_HEAD_LEN {
            return Err(ResponseError::TooLarge);
        }
        if has_bare_cr(&bytes[..head_len]) {
            return Err(ResponseError::Malformed);
        }
        let (Some(code), Some(version)) = (code, version) else {
            return Err(ResponseError::Malformed);
        };
        let version = match version {
            0 => Version::Http10,
            1 => Version::Http11,
            _ => return Err(ResponseError::UnsupportedVersion),
        };
        let fields = &headers[..header_count];

        let mut content_length: Option<u64> = None;
        let mut chunked_last = false;
        let mut has_te = false;
        let mut connection = ConnectionOptions::default();
        for h in fields {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = parse_decimal(h.value).ok_or(ResponseError::AmbiguousFraming)?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(ResponseError::AmbiguousFraming);
                }
                content_length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                has_te = true;
                // Only the last coding of the last field decides (RFC 9112 §6.3 item 4).
                chunked_last = list_tokens(h.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in list_tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        connection.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        connection.keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        connection.upgrade = true;
                    }
                }
            }
        }
        if has_te && content_length.is_some() {
            return Err(ResponseError::AmbiguousFraming);
        }

        let body = match code {
            101 if upgrade_requested => ResponseBody::Tunnel,
            101 => return Err(ResponseError::UnexpectedSwitchingProtocols),
            100..=199 => ResponseBody::Interim,
            _ if request_was_head => ResponseBody::Final(BodyFraming::None),
            204 | 304 => ResponseBody::Final(BodyFraming::None),
            _ if has_te && version == Version::Http10 => {
                return Err(ResponseError::AmbiguousFraming);
            }
            _ if has_te && chunked_last => ResponseBody::Final(BodyFraming::Chunked),
            _ if has_te => ResponseBody::Final(BodyFraming::UntilClose),
            _ => match content_length {
                Some(0) => ResponseBody::Final(BodyFraming::None),
                Some(n) => ResponseBody::Final(BodyFraming::Length(n)),
                None => ResponseBody::Final(BodyFraming::UntilClose),
            },
        };
        if !(100..=999).contains(&code) {
            return Err(ResponseError::Malformed);
        }

        Ok(Parse::Complete(ResponseHead {
            code,
            reason: reason.unwrap_or(""),
            version,
            headers,
            header_count,
            head_len,
            body,
            connection,
        }))
    }

    /// The status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reason phrase.
    pub fn reason(&self) -> &'b str {
        self.reason
    }

    /// The version the app answered with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields as sent.
    pub fn headers(&self) -> &[httparse::Header<'b>] {
        &self.headers[..self.header_count]
    }

    /// Length of the head; the body starts here.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// What follows the head.
    pub fn body(&self) -> ResponseBody {
        self.body
    }

    /// The `Connection` options the app sent.
    pub fn connection(&self) -> ConnectionOptions {
        self.connection
    }

    /// Whether the upstream connection may carry another request after this response: a
    /// delimited body, HTTP/1.1 without `close` or HTTP/1.0 with `keep-alive`.
    pub fn upstream_reusable(&self) -> bool {
        let delimited = !matches!(
            self.body,
            ResponseBody::Tunnel | ResponseBody::Final(BodyFraming::UntilClose)
        );
        let persistent = match self.version {
            Version::Http11 => !self.connection.close,
            Version::Http10 => self.connection.keep_alive && !self.connection.close,
        };
        delimited && persistent
    }
}

fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Writes a complete response of gatehouse's own into a caller's buffer.
///
/// ```
/// use gatehouse_core::http::{ResponseWriter, Status};
///
/// let mut out = [0u8; 512];
/// let mut w = ResponseWriter::new(&mut out, Status::TooManyRequests);
/// w.header("Retry-After", b"30");
/// let n = w.finish("text/plain; charset=utf-8", b"Too many attempts\n", true).unwrap();
/// assert!(out[..n].starts_with(b"HTTP/1.1 429 Too Many Requests\r\n"));
/// ```
pub struct ResponseWriter<'o> {
    cursor: Cursor<'o>,
}

impl<'o> ResponseWriter<'o> {
    /// Starts a response with its status line.
    pub fn new(out: &'o mut [u8], status: Status) -> Self {
        let mut cursor = Cursor::new(out);
        cursor
            .put(b"HTTP/1.1 ")
            .put_u64(u64::from(status.code()))
            .put(b" ")
            .put_str(status.reason())
            .put(b"\r\n");
        ResponseWriter { cursor }
    }

    /// Adds a header field. Values are written as given: pass only values gatehouse built or
    /// checked (no CR or LF).
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.cursor.header(name, value);
        self
    }

    /// Adds a header field whose value is a number.
    pub fn header_u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.cursor
            .put_str(name)
            .put(b": ")
            .put_u64(value)
            .put(b"\r\n");
        self
    }

    /// Ends the head with `Content-Type` (when there is a body), `Content-Length`,
    /// `Cache-Control: no-store`, the hardening headers every gatehouse page carries, and
    /// `Connection: close` when `close`; then the body. Returns the response length.
    pub fn finish(self, content_type: &str, body: &[u8], close: bool) -> Result<usize, OutputFull> {
        self.finish_with(content_type, body.len(), close, |out| {
            let dst = out.get_mut(..body.len()).ok_or(OutputFull)?;
            dst.copy_from_slice(body);
            Ok(body.len())
        })
    }

    /// Like [`ResponseWriter::finish`] for a body of `body_len` bytes that `write_body`
    /// writes straight into the output after the head (no copy of the body on the stack).
    /// `write_body` must write exactly `body_len` bytes.
    pub fn finish_with(
        mut self,
        content_type: &str,
        body_len: usize,
        close: bool,
        write_body: impl FnOnce(&mut [u8]) -> Result<usize, OutputFull>,
    ) -> Result<usize, OutputFull> {
        let c = &mut self.cursor;
        if body_len > 0 {
            c.header("Content-Type", content_type.as_bytes());
        }
        c.put(b"Content-Length: ")
            .put_u64(body_len as u64)
            .put(b"\r\n")
            .put(b"Cache-Control: no-store\r\n")
            .put(b"X-Content-Type-Options: nosniff\r\n")
            .put(b"X-Frame-Options: DENY\r\n")
            .put(b"Referrer-Policy: same-origin\r\n");
        if close {
            c.put(b"Connection: close\r\n");
        }
        c.put(b"\r\n");
        let (out, head_len) = self.cursor.into_parts()?;
        let rest = out.get_mut(head_len..).ok_or(OutputFull)?;
        if write_body(rest)? != body_len {
            return Err(OutputFull);
        }
        Ok(head_len + body_len)
    }

    /// Ends the head without a body but with a fixed `Content-Length` for a HEAD answer, or
    /// an empty body: see [`ResponseWriter::finish`].
    pub fn finish_empty(self, close: bool) -> Result<usize, OutputFull> {
        self.finish("", b"", close)
    }
}

/// Writes a plain-text error page for `status` (`"<code> <reason>\n"`).
pub fn write_error(status: Status, close: bool, out: &mut [u8]) -> Result<usize, OutputFull> {
    let mut body = [0u8; 64];
    let mut c = Cursor::new(&mut body);
    c.put_u64(u64::from(status.code()))
        .put(b" ")
        .put_str(status.reason())
        .put(b"\n");
    let len = c.len();
    let mut w = ResponseWriter::new(out, status);
    if status == Status::Unauthorized {
        w.header("WWW-Authenticate", BASIC_CHALLENGE);
    }
    w.finish("text/plain; charset=utf-8", &body[..len], close)
}

/// Writes a 429 with `Retry-After: retry_after_secs`.
pub fn write_too_many_requests(
    retry_after_secs: u64,
    close: bool,
    out: &mut [u8],
) -> Result<usize, OutputFull> {
    let mut w = ResponseWriter::new(out, Status::TooManyRequests);
    w.header_u64("Retry-After", retry_after_secs.max(1));
    w.finish(
        "text/plain; charset=utf-8",
        b"429 Too Many Requests\n",
        close,
    )
}

/// Writes a redirect (`302`, or `303` after a form POST) to `location`, which must be a safe
/// same-site target (see [`super::path::is_safe_return_target`]) or a URL gatehouse built;
/// anything else is refused with [`RedirectError::UnsafeLocation`].
pub fn write_redirect(
    status: Status,
    location: &[u8],
    extra: &[(&str, &[u8])],
    close: bool,
    out: &mut [u8],
) -> Result<usize, RedirectError> {
    if !super::path::is_safe_location(location) {
        return Err(RedirectError::UnsafeLocation);
    }
    let mut w = ResponseWriter::new(out, status);
    w.header("Location", location);
    for (name, value) in extra {
        w.header(name, value);
    }
    w.finish_empty(close).map_err(|_| RedirectError::OutputFull)
}

/// Why a redirect was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectError {
    /// The location could leave the site (`//host`, a scheme, a backslash) or holds a
    /// control byte.
    UnsafeLocation,
    /// The output buffer was too small.
    OutputFull,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], head: bool, upgrade: bool) -> Result<ResponseHead<'_>, ResponseError> {
        match ResponseHead::parse(bytes, head, upgrade)? {
            Parse::Complete(h) => Ok(h),
            Parse::Incomplete => panic!("incomplete"),
        }
    }

    fn body_of(bytes: &[u8], head: bool, upgrade: bool) -> Result<ResponseBody, ResponseError> {
        parse(bytes, head, upgrade).map(|h| h.body())
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        use BodyFraming::*;
        use ResponseBody::*;
        let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(body_of(cl, false, false), Ok(Final(Length(5))));
        assert_eq!(
            body_of(cl, true, false),
            Ok(Final(None)),
            "HEAD has no body"
        );
        let te = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(body_of(te, false, false), Ok(Final(Chunked)));
        let te_other = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(body_of(te_other, false, false), Ok(Final(UntilClose)));
        let bare = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(body_of(bare, false, false), Ok(Final(UntilClose)));
        assert!(!parse(bare, false, false).unwrap().upstream_reusable());
        assert_eq!(
            body_of(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
                false,
                false
            ),
            Ok(Final(None))
        );
        assert_eq!(
            body_of(b"HTTP/1.1 304 Not Modified\r\n\r\n", false, false),
            Ok(Final(None))
        );
        assert_eq!(
            body_of(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                false,
                false
            ),
            Ok(Interim)
        );
        let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(body_of(switching, false, true), Ok(Tunnel));
        assert_eq!(
            body_of(switching, false, false),
            Err(ResponseError::UnexpectedSwitchingProtocols)
        );
    }

    #[test]
    fn ambiguous_response_framing_is_refused() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                body_of(bytes, false, false),
                Err(ResponseError::AmbiguousFraming)
            );
        }
        assert_eq!(
            body_of(b"HTTP/2 200 OK\r\n\r\n", false, false),
            Err(ResponseError::UnsupportedVersion)
        );
        assert_eq!(
            body_of(b"HTTP/1.1 20 OK\r\n\r\n", false, false),
            Err(ResponseError::Malformed)
        );
    }

    #[test]
    fn reusability_follows_version_and_connection() {
        let keep = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            false,
        )
        .unwrap();
        assert!(keep.upstream_reusable());
        let close = parse(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
            false,
        )
        .unwrap();
        assert!(!close.upstream_reusable());
        let old = parse(
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            false,
        )
        .unwrap();
        assert!(!old.upstream_reusable());
    }

    #[test]
    fn error_pages_are_complete_responses() {
        let mut out = [0u8; 512];
        let n = write_error(Status::Unauthorized, false, &mut out).unwrap();
        let text = core::str::from_utf8(&out[..n]).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(text.contains("\r\nWWW-Authenticate: Basic realm=\"gatehouse\""));
        assert!(text.contains("\r\nContent-Length: 17\r\n"));
        assert!(text.ends_with("\r\n\r\n401 Unauthorized\n"));
        assert!(!text.contains("Connection: close"));

        for status in [
            Status::BadRequest,
            Status::Forbidden,
            Status::NotFound,
            Status::RequestHeaderFieldsTooLarge,
            Status::BadGateway,
            Status::ServiceUnavailable,
            Status::HttpVersionNotSupported,
        ] {
            let n = write_error(status, true, &mut out).unwrap();
            let text = core::str::from_utf8(&out[..n]).unwrap();
            assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("Content-Length: {}", body.len())));
        }
        assert_eq!(
            write_error(Status::BadGateway, true, &mut [0u8; 20]),
            Err(OutputFull)
        );
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let mut out = [0u8; 512];
        let n = write_too_many_requests(42, false, &mut out).unwrap();
        let text = core::str::from_utf8(&out[..n]).unwrap();
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(text.contains("\r\nRetry-After: 42\r\n"));
    }

    #[test]
    fn redirects_go_only_to_safe_places() {
        let mut out = [0u8; 512];
        let n = write_redirect(
            Status::Found,
            b"/_gatehouse/login?return=%2Fapp",
            &[],
            false,
            &mut out,
        )
        .unwrap();
        let text = core::str::from_utf8(&out[..n]).unwrap();
        assert!(text.starts_with("HTTP/1.1 302 Found\r\n"));
        assert!(text.contains("\r\nLocation: /_gatehouse/login?return=%2Fapp\r\n"));
        for evil in [
            &b"//evil.example/"[..],
            b"/\\evil.example",
            b"https://evil.example/",
            b"javascript:alert(1)",
            b"/a\r\nSet-Cookie: x=y",
            b"",
        ] {
            assert_eq!(
                write_redirect(Status::Found, evil, &[], false, &mut out),
                Err(RedirectError::UnsafeLocation),
                "{:?}",
                core::str::from_utf8(evil)
            );
        }
    }
}

/// How to relay an app's response to the client, as decided by [`write_client_response_head`].
#[derive(Clone, Debug)]
pub struct ResponsePlan {
    /// Bytes of the head written to the output (0 when an interim response is not for this
    /// client).
    pub head_len: usize,
    /// Feed the response body (the app's bytes after [`ResponseHead::head_len`]) through
    /// this; it writes what the client gets.
    pub relay: BodyRelay,
    /// What follows: parse another head ([`ResponseBody::Interim`]), tunnel, or the body.
    pub body: ResponseBody,
    /// Close the client connection once the body is relayed.
    pub close_client: bool,
}

/// Fields of an app's response that belong to the hop between gatehouse and the app.
const RESPONSE_HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

/// Writes the response head the client gets for an app's `response` and plans the body
/// relay: hop-by-hop fields (and those the app named in `Connection`) removed, framing
/// re-emitted for this client (an HTTP/1.0 client gets a chunked body de-chunked and the
/// connection closed), `Connection: close` when the connection ends, and `extra` fields
/// (e.g. a renewed `Set-Cookie`) added.
pub fn write_client_response_head(
    response: &ResponseHead<'_>,
    client_version: Version,
    client_keep_alive: bool,
    extra: &[(&str, &[u8])],
    out: &mut [u8],
) -> Result<ResponsePlan, OutputFull> {
    let body = response.body();
    let (relay, framing_header, mut close) = match body {
        ResponseBody::Interim if client_version == Version::Http10 => {
            return Ok(ResponsePlan {
                head_len: 0,
                relay: BodyRelay::new(BodyFraming::None),
                body,
                close_client: false,
            });
        }
        ResponseBody::Interim | ResponseBody::Tunnel => {
            (BodyRelay::new(BodyFraming::None), Framing::None, false)
        }
        ResponseBody::Final(BodyFraming::Chunked) if client_version == Version::Http10 => (
            BodyRelay::with_output(BodyFraming::Chunked, ChunkedOutput::DataOnly),
            Framing::None,
            true,
        ),
        ResponseBody::Final(BodyFraming::Chunked) => (
            BodyRelay::new(BodyFraming::Chunked),
            Framing::Chunked,
            !client_keep_alive,
        ),
        ResponseBody::Final(BodyFraming::Length(n)) => (
            BodyRelay::new(BodyFraming::Length(n)),
            Framing::Length(n),
            !client_keep_alive,
        ),
        ResponseBody::Final(BodyFraming::UntilClose) => {
            (BodyRelay::new(BodyFraming::UntilClose), Framing::None, true)
        }
        ResponseBody::Final(BodyFraming::None) => (
            BodyRelay::new(BodyFraming::None),
            Framing::KeepDeclaredLength,
            !client_keep_alive,
        ),
    };
    if matches!(body, ResponseBody::Interim | ResponseBody::Tunnel) {
        close = false;
    }
    let mut c = Cursor::new(out);
    c.put(b"HTTP/1.1 ")
        .put_u64(u64::from(response.code()))
        .put(b" ")
        .put_str(response.reason())
        .put(b"\r\n");
    let named_in_connection = |name: &str| {
        response
            .headers()
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| list_tokens(h.value))
            .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    };
    let keep_transfer_codings = matches!(framing_header, Framing::Chunked)
        || body == ResponseBody::Final(BodyFraming::UntilClose);
    let mut declared_length_kept = false;
    for h in response.headers() {
        let keep_declared = matches!(framing_header, Framing::KeepDeclaredLength)
            && h.name.eq_ignore_ascii_case("content-length")
            && response.code() != 204
            && !declared_length_kept;
        let keep_upgrade = body == ResponseBody::Tunnel && h.name.eq_ignore_ascii_case("upgrade");
        // The app's transfer codings describe the bytes relayed (a chunked body is re-chunked,
        // so `gzip, chunked` stays true); only a body de-chunked for HTTP/1.0 loses them.
        let keep_codings =
            keep_transfer_codings && h.name.eq_ignore_ascii_case("transfer-encoding");
        if !keep_declared
            && !keep_upgrade
            && !keep_codings
            && (RESPONSE_HOP_BY_HOP
                .iter()
                .any(|d| h.name.eq_ignore_ascii_case(d))
                || h.name
                    .get(..6)
                    .is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
                || named_in_connection(h.name))
        {
            continue;
        }
        declared_length_kept |= keep_declared;
        c.header(h.name, h.value);
    }
    for (name, value) in extra {
        c.header(name, value);
    }
    match framing_header {
        // The app's own `Transfer-Encoding` (ending in chunked) was kept above.
        Framing::Chunked => {}
        Framing::Length(n) => {
            c.put(b"Content-Length: ").put_u64(n).put(b"\r\n");
        }
        Framing::None | Framing::KeepDeclaredLength => {}
    }
    if body == ResponseBody::Tunnel {
        c.put(b"Connection: upgrade\r\n");
    } else if close {
        c.put(b"Connection: close\r\n");
    } else if client_version == Version::Http10 && !matches!(body, ResponseBody::Interim) {
        c.put(b"Connection: keep-alive\r\n");
    }
    c.put(b"\r\n");
    let head_len = c.finish()?;
    Ok(ResponsePlan {
        head_len,
        relay,
        body,
        close_client: close,
    })
}

enum Framing {
    None,
    Chunked,
    Length(u64),
    /// No body follows, but a `Content-Length` the app declared (HEAD, 304) is passed on.
    KeepDeclaredLength,
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn plan(
        bytes: &[u8],
        head: bool,
        upgrade: bool,
        version: Version,
        keep_alive: bool,
    ) -> (String, ResponsePlan) {
        let Ok(Parse::Complete(resp)) = ResponseHead::parse(bytes, head, upgrade) else {
            panic!("not a response");
        };
        let mut out = [0u8; 1024];
        let plan = write_client_response_head(
            &resp,
            version,
            keep_alive,
            &[("Set-Cookie", b"a=b")],
            &mut out,
        )
        .unwrap();
        (
            String::from_utf8(out[..plan.head_len].to_vec()).unwrap(),
            plan,
        )
    }

    #[test]
    fn hop_by_hop_fields_are_removed_and_framing_reemitted() {
        let (text, p) = plan(
            b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n",
            false,
            false,
            Version::Http11,
            true,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nSet-Cookie: a=b\r\n\r\n"
        );
        assert!(!p.close_client);
        assert_eq!(p.body, ResponseBody::Final(BodyFraming::Chunked));
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_kept() {
        let (text, p) = plan(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
            false,
            Version::Http11,
            true,
        );
        assert!(
            text.contains("\r\nTransfer-Encoding: gzip, chunked\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("Transfer-Encoding").count(), 1, "{text}");
        assert_eq!(p.body, ResponseBody::Final(BodyFraming::Chunked));
        let (text, p) = plan(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            false,
            false,
            Version::Http11,
            true,
        );
        assert!(text.contains("\r\nTransfer-Encoding: gzip\r\n"), "{text}");
        assert!(p.close_client);
    }

    #[test]
    fn http_1_0_clients_get_dechunked_bodies_and_a_close() {
        let (text, mut p) = plan(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            false,
            Version::Http10,
            true,
        );
        assert!(!text.contains("Transfer-Encoding"), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
        assert!(p.close_client);
        let mut out = [0u8; 32];
        let r = p.relay.relay(b"3\r\nabc\r\n0\r\n\r\n", &mut out).unwrap();
        assert_eq!(&out[..r.produced], b"abc");
        assert!(p.relay.is_done());
    }

    #[test]
    fn until_close_bodies_close_the_client_and_head_keeps_its_length() {
        let (text, p) = plan(
            b"HTTP/1.1 200 OK\r\n\r\n",
            false,
            false,
            Version::Http11,
            true,
        );
        assert!(p.close_client);
        assert!(text.contains("Connection: close"), "{text}");
        let (text, p) = plan(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
            true,
            false,
            Version::Http11,
            true,
        );
        assert!(text.contains("Content-Length: 1234"), "{text}");
        assert!(p.relay.is_done());
        assert!(!p.close_client);
    }

    #[test]
    fn switching_protocols_keeps_upgrade() {
        let (text, p) = plan(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
            false,
            true,
            Version::Http11,
            true,
        );
        assert_eq!(p.body, ResponseBody::Tunnel);
        assert!(text.contains("Upgrade: websocket\r\n"), "{text}");
        assert!(text.contains("Connection: upgrade\r\n"), "{text}");
        assert!(text.contains("Sec-WebSocket-Accept: x\r\n"), "{text}");
    }

    #[test]
    fn interim_responses_are_dropped_for_http_1_0() {
        let (_, p) = plan(
            b"HTTP/1.1 103 Early Hints\r\n\r\n",
            false,
            false,
            Version::Http10,
            true,
        );
        assert_eq!(p.head_len, 0);
        assert_eq!(p.body, ResponseBody::Interim);
    }
}
