//! One client connection: read a request head, get the answer, write it; repeat while the
//! connection stays open (keep-alive), with every request judged on its own.
//!
//! Written against `embedded_io_async` so that host tests drive it over in-memory pipes, and the
//! boards over `embassy_net` TCP sockets.

use embassy_time::{Duration, with_timeout};
use embedded_io_async::{Read, Write};

/// Bytes a request head may take; a longer head is refused.
pub const HEAD_BUFFER_LEN: usize = 4096;
/// Receive and transmit window of each TCP socket.
pub const SOCKET_BUFFER_LEN: usize = 2048;

/// The fixed memory of one connection task.
pub struct ConnectionBuffers {
    /// The client socket's receive window.
    pub client_rx: [u8; SOCKET_BUFFER_LEN],
    /// The client socket's transmit window.
    pub client_tx: [u8; SOCKET_BUFFER_LEN],
    /// Everything else, borrowed while the client socket holds the two above.
    pub work: WorkBuffers,
}

/// The buffers a connection works in while its client socket is open.
pub struct WorkBuffers {
    pub upstream_rx: [u8; SOCKET_BUFFER_LEN],
    pub upstream_tx: [u8; SOCKET_BUFFER_LEN],
    /// The request head as read from the client (and pipelined bytes after it).
    pub head: [u8; HEAD_BUFFER_LEN],
    /// What gatehouse writes: a rewritten head for the app, or a response of its own.
    pub out: [u8; HEAD_BUFFER_LEN],
}

impl ConnectionBuffers {
    pub const fn new() -> Self {
        Self {
            client_rx: [0; SOCKET_BUFFER_LEN],
            client_tx: [0; SOCKET_BUFFER_LEN],
            work: WorkBuffers {
                upstream_rx: [0; SOCKET_BUFFER_LEN],
                upstream_tx: [0; SOCKET_BUFFER_LEN],
                head: [0; HEAD_BUFFER_LEN],
                out: [0; HEAD_BUFFER_LEN],
            },
        }
    }
}

impl Default for ConnectionBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// How long gatehouse waits on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// From the first byte of a request head to its end (slow-loris clients).
    pub head_read: Duration,
    /// A keep-alive connection with no request in flight.
    pub idle: Duration,
    /// Opening the TCP connection to the app.
    pub upstream_connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            head_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            upstream_connect: Duration::from_secs(5),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum End {
    /// The client closed between requests.
    ClientClosed,
    /// No new request within the idle timeout.
    Idle,
    /// A request head did not complete within the head-read timeout.
    HeadTimeout,
    /// The client's socket failed.
    ClientError,
    /// gatehouse answered and the answer says the connection ends.
    Closed,
}

/// Reads until `buf[..filled]` holds a complete head (ends with an empty line) and returns its
/// length. The first byte is awaited for up to `idle`, the rest for up to `head_read`.
pub async fn read_head<R: Read>(
    client: &mut R,
    buf: &mut [u8],
    filled: &mut usize,
    timeouts: &Timeouts,
) -> Result<usize, End> {
    loop {
        if let Some(end) = find_head_end(&buf[..*filled]) {
            return Ok(end);
        }
        if *filled == buf.len() {
            return Ok(buf.len());
        }
        let limit = if *filled == 0 {
            timeouts.idle
        } else {
            timeouts.head_read
        };
        match with_timeout(limit, client.read(&mut buf[*filled..])).await {
            Err(_) if *filled == 0 => return Err(End::Idle),
            Err(_) => return Err(End::HeadTimeout),
            Ok(Ok(0)) => return Err(End::ClientClosed),
            Ok(Ok(n)) => *filled += n,
            Ok(Err(_)) => return Err(End::ClientError),
        }
    }
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Serves requests on one client connection until it ends.
pub async fn serve<C: Read + Write>(
    client: &mut C,
    bufs: &mut WorkBuffers,
    timeouts: &Timeouts,
) -> End {
    let mut filled = 0;
    loop {
        let head_len = match read_head(client, &mut bufs.head, &mut filled, timeouts).await {
            Ok(len) => len,
            Err(end) => return end,
        };
        let (response, close) = answer(&bufs.head[..head_len]);
        debug!("request answered ({} bytes)", response.len());
        if client.write_all(response).await.is_err() || client.flush().await.is_err() {
            return End::ClientError;
        }
        if close {
            return End::Closed;
        }
        bufs.head.copy_within(head_len..filled, 0);
        filled -= head_len;
    }
}

const HEALTH: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n";
const NOT_FOUND: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nconnection: close\r\n\r\nnot serving\n";

fn answer(head: &[u8]) -> (&'static [u8], bool) {
    if head.starts_with(b"GET /_gatehouse/health ") {
        (HEALTH, false)
    } else {
        (NOT_FOUND, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll};
    use embassy_time::MockDriver;

    /// A client that sends `chunks` one `read` at a time (then EOF, or never anything more
    /// when `hang` is set) and records what it is sent.
    struct FakeClient {
        chunks: Vec<Vec<u8>>,
        hang: bool,
        sent: Vec<u8>,
    }

    impl FakeClient {
        fn new(chunks: &[&[u8]]) -> Self {
            Self {
                chunks: chunks.iter().rev().map(|c| c.to_vec()).collect(),
                hang: false,
                sent: Vec::new(),
            }
        }
    }

    impl embedded_io_async::ErrorType for FakeClient {
        type Error = embedded_io_async::ErrorKind;
    }

    impl Read for FakeClient {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            match self.chunks.pop() {
                Some(mut chunk) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        self.chunks.push(chunk.split_off(n));
                    }
                    Ok(n)
                }
                None if self.hang => core::future::pending().await,
                None => Ok(0),
            }
        }
    }

    impl Write for FakeClient {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    fn work_buffers() -> Box<WorkBuffers> {
        Box::new(ConnectionBuffers::new().work)
    }

    const HEALTH: &[u8] = b"GET /_gatehouse/health HTTP/1.1\r\nHost: gw\r\n\r\n";

    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    }

    #[test]
    fn pipelined_requests_in_one_read_are_each_answered() {
        let both = [HEALTH, HEALTH].concat();
        let mut client = FakeClient::new(&[&both]);
        let mut bufs = work_buffers();
        let end = embassy_futures::block_on(serve(&mut client, &mut bufs, &Timeouts::default()));
        assert_eq!(end, End::ClientClosed);
        assert_eq!(count(&client.sent, b"HTTP/1.1 200 OK\r\n"), 2);
    }

    #[test]
    fn a_head_split_over_many_reads_is_reassembled() {
        let pieces: Vec<&[u8]> = HEALTH.chunks(3).collect();
        let mut client = FakeClient::new(&pieces);
        let mut bufs = work_buffers();
        let end = embassy_futures::block_on(serve(&mut client, &mut bufs, &Timeouts::default()));
        assert_eq!(end, End::ClientClosed);
        assert_eq!(count(&client.sent, b"HTTP/1.1 200 OK\r\n"), 1);
    }

    #[test]
    fn a_silent_connection_ends_at_the_idle_timeout_and_a_stalled_head_at_the_head_timeout() {
        let timeouts = Timeouts::default();
        for (chunks, waited, expected) in [
            (&[][..], timeouts.idle, End::Idle),
            (&[&HEALTH[..10]][..], timeouts.head_read, End::HeadTimeout),
        ] {
            let mut client = FakeClient::new(chunks);
            client.hang = true;
            let mut bufs = work_buffers();
            let mut future = pin!(serve(&mut client, &mut bufs, &timeouts));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(future.as_mut().poll(&mut cx).is_pending());
            MockDriver::get().advance(waited - Duration::from_millis(1));
            assert!(future.as_mut().poll(&mut cx).is_pending(), "ended early");
            MockDriver::get().advance(Duration::from_millis(1));
            assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(expected));
        }
    }
}
