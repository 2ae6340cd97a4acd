//! Raw-socket HTTP/1.1 clients: a test writes the exact bytes it means, split where it wants,
//! pipelined or slowly, and reads back what the gateway answered, framed by the rules of RFC 9112
//! so that a second response on the same connection is found where it really starts.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long any single read or write may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest response a client accepts (a login page, an error page, an echoed body).
pub const MAX_RESPONSE_LEN: usize = 4 * 1024 * 1024;

/// A response as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The head exactly as received, without the final empty line.
    pub head: Vec<u8>,
    /// Header fields in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body after removing the transfer coding.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy), for messages and substring checks.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the gateway said this connection ends after the response.
    pub fn says_close(&self) -> bool {
        self.headers_named("connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// The value of the cookie `name` set by this response, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers_named("set-cookie").iter().find_map(|v| {
            let pair = v.split(';').next()?.trim();
            let (n, value) = pair.split_once('=')?;
            (n == name).then(|| value.to_owned())
        })
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
        write!(f, "{}\n\n{body}", String::from_utf8_lossy(&self.head))
    }
}

/// What a read of a response came to when it could not give a response.
#[derive(Debug)]
pub enum ReadError {
    /// The gateway closed the connection before a complete response head.
    Closed {
        partial: Vec<u8>,
    },
    /// Nothing more arrived within [`IO_TIMEOUT`].
    TimedOut {
        partial: Vec<u8>,
    },
    /// The bytes are not an HTTP/1.x response.
    Malformed {
        why: String,
        partial: Vec<u8>,
    },
    Io(io::Error),
}

/// At most 300 bytes of `bytes` as text, and how many there were.
fn excerpt(bytes: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    if bytes.len() > 300 {
        format!("{shown:?}… ({} bytes)", bytes.len())
    } else {
        format!("{shown:?}")
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed { partial } => {
                write!(f, "connection closed after {}", excerpt(partial))
            }
            ReadError::TimedOut { partial } => write!(
                f,
                "no complete response within {IO_TIMEOUT:?}; got {}",
                excerpt(partial)
            ),
            ReadError::Malformed { why, partial } => {
                write!(f, "malformed response ({why}): {}", excerpt(partial))
            }
            ReadError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

/// A connection over TCP or a UNIX socket.
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_timeouts(&self, read: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)
            }
            Conn::Unix(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(IO_TIMEOUT))
            }
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown(how),
            Conn::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// One client connection.
pub struct Client {
    stream: Conn,
    /// Bytes received and not yet consumed by a response.
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    /// Wraps a connected stream (see `Gateway::client`).
    pub fn new(stream: Conn) -> Client {
        // Timeouts bound every wait; nodelay keeps split writes as separate segments.
        let _ = stream.set_timeouts(IO_TIMEOUT);
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes all of `bytes` at once.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes `bytes` in pieces cut at the given offsets, pausing between them so that each
    /// piece reaches the gateway in a read of its own.
    pub fn send_split(&mut self, bytes: &[u8], cuts: &[usize]) -> io::Result<()> {
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let cut = cut.clamp(start, bytes.len());
            if cut > start {
                self.send(&bytes[start..cut])?;
                std::thread::sleep(Duration::from_millis(30));
            }
            start = cut;
        }
        Ok(())
    }

    /// Writes `bytes` `piece` bytes at a time with `pause` between pieces (a slow client).
    pub fn send_slowly(&mut self, bytes: &[u8], piece: usize, pause: Duration) -> io::Result<()> {
        for chunk in bytes.chunks(piece.max(1)) {
            self.send(chunk)?;
            std::thread::sleep(pause);
        }
        Ok(())
    }

    /// Ends the sending side (the gateway reads EOF after what was sent).
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// Reads one response to a request that is not `HEAD`.
    pub fn response(&mut self) -> Result<Response, ReadError> {
        self.read_response(false)
    }

    /// Reads one response to a `HEAD` request (no body whatever the head says).
    pub fn head_response(&mut self) -> Result<Response, ReadError> {
        self.read_response(true)
    }

    /// Reads one response, skipping interim `1xx` responses other than `101`.
    pub fn final_response(&mut self) -> Result<Response, ReadError> {
        loop {
            let response = self.response()?;
            if !(100..200).contains(&response.status) || response.status == 101 {
                return Ok(response);
            }
        }
    }

    /// Reads until the gateway closes the connection and returns every byte not yet consumed.
    pub fn read_to_close(&mut self) -> Result<Vec<u8>, ReadError> {
        while !self.eof {
            self.fill()?;
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads exactly `n` more bytes (through a tunnel, for instance).
    pub fn read_exact_bytes(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            if self.eof {
                return Err(ReadError::Closed {
                    partial: self.buf.clone(),
                });
            }
            self.fill()?;
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// True when the gateway has closed the connection: EOF (or a reset) with no further
    /// bytes within [`IO_TIMEOUT`]. Bytes that arrive instead are an answer, so not closed.
    pub fn is_closed_by_peer(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        match self.fill() {
            Ok(()) => self.eof && self.buf.is_empty(),
            Err(ReadError::Io(_)) => true,
            Err(_) => false,
        }
    }

    /// Whether anything at all arrives within `wait` (used to show the gateway stays silent
    /// while a head is incomplete). Consumes nothing.
    pub fn anything_within(&mut self, wait: Duration) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let _ = self.stream.set_timeouts(wait);
        let got = self.fill();
        let _ = self.stream.set_timeouts(IO_TIMEOUT);
        matches!(got, Ok(())) && (!self.buf.is_empty() || self.eof)
    }

    fn fill(&mut self) -> Result<(), ReadError> {
        if self.eof {
            return Err(ReadError::Closed {
                partial: self.buf.clone(),
            });
        }
        if self.buf.len() > MAX_RESPONSE_LEN {
            return Err(ReadError::Malformed {
                why: format!("more than {MAX_RESPONSE_LEN} bytes"),
                partial: self.buf[..200].to_vec(),
            });
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(())
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Err(ReadError::TimedOut {
                    partial: self.buf.clone(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.eof = true;
                Ok(())
            }
            Err(e) => Err(ReadError::Io(e)),
        }
    }

    fn read_response(&mut self, head_request: bool) -> Result<Response, ReadError> {
        let head_len = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.eof {
                return Err(ReadError::Closed {
                    partial: self.buf.clone(),
                });
            }
            self.fill()?;
        };
        let head = self.buf[..head_len].to_vec();
        self.buf.drain(..head_len + 4);
        let (status, headers) = parse_response_head(&head).map_err(|why| ReadError::Malformed {
            why,
            partial: head.clone(),
        })?;
        let mut response = Response {
            status,
            head,
            headers,
            body: Vec::new(),
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().trim_end().ends_with("chunked"));
        if chunked {
            response.body = self.read_chunked()?;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.trim().parse().map_err(|_| ReadError::Malformed {
                why: format!("content-length {length:?}"),
                partial: response.head.clone(),
            })?;
            response.body = self.read_exact_bytes(length)?;
        } else {
            response.body = self.read_to_close()?;
        }
        Ok(response)
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
            let size_text = String::from_utf8_lossy(size_text).trim().to_owned();
            let size = usize::from_str_radix(&size_text, 16).map_err(|_| ReadError::Malformed {
                why: format!("chunk size {size_text:?}"),
                partial: body.clone(),
            })?;
            if size == 0 {
                // Trailer section up to the empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.read_exact_bytes(size)?);
            if !self.read_line()?.is_empty() {
                return Err(ReadError::Malformed {
                    why: "chunk not followed by CRLF".into(),
                    partial: body,
                });
            }
        }
    }

    fn read_line(&mut self) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.eof {
                return Err(ReadError::Closed {
                    partial: self.buf.clone(),
                });
            }
            self.fill()?;
        }
    }
}

/// The status code and the header fields of a response head (without its empty line).
pub fn parse_response_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), String> {
    let text = std::str::from_utf8(head).map_err(|_| "head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {line:?}"))?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

/// The offset of the first `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether `needle` occurs anywhere in `haystack`, ASCII case-insensitively.
pub fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
