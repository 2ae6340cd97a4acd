//! One client connection: read a request, ask the engine, do what it says; repeat while the
//! connection stays open (keep-alive), with every request judged on its own.
//!
//! The engine (`gatehouse_core::gateway`) makes every decision; this module only moves bytes:
//! it reads heads and bodies into fixed buffers, writes what the engine wrote, opens the
//! connection to the app, relays bodies with the engine's framing state machines, and tunnels
//! after a `101`. It is written against `embedded_io_async` so that host tests drive it over
//! in-memory pipes and the boards over `embassy_net` TCP sockets.

use embassy_futures::select::{Either, select};
use embassy_time::{Duration, with_timeout};
use embedded_io_async::{Read, Write};
use gatehouse_core::gateway::{Decision, Exchange, Forward, Outcome};
use gatehouse_core::http::{
    BodyRelay, CONTINUE_100, Parse, ResponseBody, ResponseHead, Status, write_client_response_head,
    write_error,
};
use gatehouse_core::peer::Peer;

use crate::state::Engine;

/// Bytes of one request the firmware holds at once: its head, or a head and a login form.
/// Smaller than core's limits ([`gatehouse_core::gateway::READ_BUFFER_LEN`]) to fit four
/// connections in a microcontroller's RAM; a longer head is answered 431.
pub const REQUEST_BUFFER_LEN: usize = 4 * 1024;
/// What gatehouse writes (a rewritten head, a response of its own, relayed body pieces); half
/// of it holds the app's response head while the other half takes the client's.
pub const OUT_BUFFER_LEN: usize = 5 * 1024;
/// Receive and transmit window of each TCP socket.
pub const SOCKET_BUFFER_LEN: usize = 1024;

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
    /// What the client sent since the previous request ended.
    pub request: [u8; REQUEST_BUFFER_LEN],
    pub out: [u8; OUT_BUFFER_LEN],
}

impl ConnectionBuffers {
    pub const fn new() -> Self {
        Self {
            client_rx: [0; SOCKET_BUFFER_LEN],
            client_tx: [0; SOCKET_BUFFER_LEN],
            work: WorkBuffers {
                upstream_rx: [0; SOCKET_BUFFER_LEN],
                upstream_tx: [0; SOCKET_BUFFER_LEN],
                request: [0; REQUEST_BUFFER_LEN],
                out: [0; OUT_BUFFER_LEN],
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
    /// A keep-alive connection with no request in flight, and any read of a body or of the
    /// app's answer that makes no progress.
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
    /// A request head (or a form gatehouse reads) did not complete within the head-read
    /// timeout.
    HeadTimeout,
    /// The client's socket failed, or it went silent or away in the middle of a body.
    ClientError,
    /// gatehouse answered and the answer says the connection ends.
    Closed,
    /// The request head does not fit the firmware's buffer (answered 431).
    HeadTooLarge,
    /// The request body was malformed (bad chunked framing): both sides are closed.
    BadRequestBody,
    /// The app could not be reached or answered garbage (answered 502 when nothing had been
    /// sent to the client yet).
    UpstreamFailed,
    /// The app's response was cut short: the client cannot be told, only disconnected.
    UpstreamTruncated,
    /// A `101` tunnel ended.
    TunnelClosed,
    /// The engine kept asking for password checks (never expected).
    EngineLoop,
}

/// The connection to the app, one per forwarded request.
#[allow(async_fn_in_trait)]
pub trait Upstream {
    type Conn<'a>: Read + Write
    where
        Self: 'a;

    /// Opens a connection to the app, or `None` if it cannot be reached.
    async fn connect(&mut self) -> Option<Self::Conn<'_>>;

    /// Ends a connection to the app gracefully. It may leave the close to finish in the
    /// background, but never waits on the app for long: the client already has its answer
    /// and the connection task must be free for the next request or client.
    async fn disconnect<'a>(conn: Self::Conn<'a>)
    where
        Self: 'a;
}

/// Reads more of the client's bytes into `buf[*filled..]`, waiting at most `limit`.
async fn read_more<C: Read>(
    client: &mut C,
    buf: &mut [u8],
    filled: &mut usize,
    limit: Duration,
    on_timeout: End,
) -> Result<(), End> {
    match with_timeout(limit, client.read(&mut buf[*filled..])).await {
        Err(_) => Err(on_timeout),
        Ok(Ok(0)) if *filled == 0 => Err(End::ClientClosed),
        Ok(Ok(0)) | Ok(Err(_)) => Err(End::ClientError),
        Ok(Ok(n)) => {
            *filled += n;
            Ok(())
        }
    }
}

/// Writes an error page for `status` and ends the connection.
async fn answer_and_close<C: Write>(
    client: &mut C,
    out: &mut [u8],
    status: Status,
    end: End,
) -> End {
    if let Ok(len) = write_error(status, true, out) {
        let _ = client.write_all(&out[..len]).await;
        let _ = client.flush().await;
    }
    end
}

/// Serves requests on one client connection until it ends.
pub async fn serve<C: Read + Write, U: Upstream>(
    client: &mut C,
    peer: Peer,
    upstream: &mut U,
    request: &mut [u8],
    out: &mut [u8],
    engine: &Engine,
) -> End {
    let timeouts = engine.timeouts;
    let mut filled = 0;
    loop {
        if filled == 0
            && let Err(end) =
                read_more(client, request, &mut filled, timeouts.idle, End::Idle).await
        {
            return end;
        }

        // One request: decide, reading more while the engine asks for it.
        let now = engine.now();
        let random = engine.random();
        let mut continue_sent = false;
        let decision = loop {
            let ex = Exchange {
                peer,
                tls: false,
                bytes: &request[..filled],
                now: now.unix,
                time_known: now.known,
                random: &random,
            };
            let mut decision = engine.decide(&ex, out);
            let mut checks = 0;
            while let Decision::VerifyPassword(check) = decision {
                checks += 1;
                if checks > 2 {
                    return End::EngineLoop;
                }
                // The slow part, outside the lock.
                let verified = check.verify();
                decision = engine.finish(&ex, &check, verified, out);
            }
            match decision {
                Decision::NeedMoreBytes => {
                    if filled == request.len() {
                        return answer_and_close(
                            client,
                            out,
                            Status::RequestHeaderFieldsTooLarge,
                            End::HeadTooLarge,
                        )
                        .await;
                    }
                }
                Decision::ReadBody {
                    total,
                    send_continue,
                } => {
                    if total > request.len() {
                        return answer_and_close(
                            client,
                            out,
                            Status::ContentTooLarge,
                            End::HeadTooLarge,
                        )
                        .await;
                    }
                    if filled >= total {
                        // The engine asked for bytes it already has: never expected.
                        return End::EngineLoop;
                    }
                    if send_continue && !continue_sent {
                        continue_sent = true;
                        if client.write_all(CONTINUE_100).await.is_err() {
                            return End::ClientError;
                        }
                    }
                }
                other => break other,
            }
            if let Err(end) = read_more(
                client,
                request,
                &mut filled,
                timeouts.head_read,
                End::HeadTimeout,
            )
            .await
            {
                return end;
            }
        };

        let consumed = match decision {
            Decision::Respond(respond) => {
                if respond.users_changed {
                    engine.users_changed.signal(());
                }
                if respond.outcome == Outcome::LoggedIn {
                    engine.session_issued.signal(());
                }
                debug!(
                    "answered {} bytes ({})",
                    respond.len,
                    if respond.close { "close" } else { "keep-alive" }
                );
                if client.write_all(&out[..respond.len]).await.is_err()
                    || client.flush().await.is_err()
                {
                    return End::ClientError;
                }
                if respond.close {
                    return End::Closed;
                }
                respond.consumed
            }
            Decision::Forward(forward) => {
                if forward.users_changed {
                    engine.users_changed.signal(());
                }
                if forward.set_cookie.is_some() {
                    engine.session_issued.signal(());
                }
                match relay_exchange(
                    client,
                    upstream,
                    request,
                    &mut filled,
                    out,
                    &forward,
                    engine,
                )
                .await
                {
                    Ok(Next::KeepAlive { consumed }) => consumed,
                    Ok(Next::Close) => return End::Closed,
                    Err(end) => return end,
                }
            }
            // Handled in the loop above; no check is ever in flight here, since each is
            // verified and finished before another request is decided.
            Decision::NeedMoreBytes
            | Decision::ReadBody { .. }
            | Decision::VerifyPassword(_)
            | Decision::WaitForCheck
            // A board has no counters to serve, and no metrics_sources: core never says this.
            | Decision::ServeMetrics(_) => {
                return End::EngineLoop;
            }
        };
        request.copy_within(consumed..filled, 0);
        filled -= consumed;
    }
}

enum Next {
    /// The exchange is over; the request used `consumed` bytes of the buffer.
    KeepAlive {
        consumed: usize,
    },
    Close,
}

/// Forwards one request to the app and relays its answer.
async fn relay_exchange<C: Read + Write, U: Upstream>(
    client: &mut C,
    upstream: &mut U,
    request: &mut [u8],
    filled: &mut usize,
    out: &mut [u8],
    forward: &Forward,
    engine: &Engine,
) -> Result<Next, End> {
    let timeouts = engine.timeouts;
    let Ok(Some(mut app)) = with_timeout(timeouts.upstream_connect, upstream.connect()).await
    else {
        warn!("the app cannot be reached: 502");
        return Err(answer_and_close(client, out, Status::BadGateway, End::UpstreamFailed).await);
    };
    let result = relay_with(client, &mut app, request, filled, out, forward, timeouts).await;
    U::disconnect(app).await;
    result
}

async fn relay_with<C: Read + Write, A: Read + Write>(
    client: &mut C,
    app: &mut A,
    request: &mut [u8],
    filled: &mut usize,
    out: &mut [u8],
    forward: &Forward,
    timeouts: Timeouts,
) -> Result<Next, End> {
    if app.write_all(&out[..forward.head_len]).await.is_err() {
        return Err(answer_and_close(client, out, Status::BadGateway, End::UpstreamFailed).await);
    }
    if forward.send_continue && client.write_all(CONTINUE_100).await.is_err() {
        return Err(End::ClientError);
    }

    // The request body, from the buffer and then from the socket.
    let mut pos = forward.consumed;
    let mut relay = BodyRelay::new(forward.body);
    while !relay.is_done() {
        if pos == *filled {
            // Framing bytes the relay still owes go first.
            if relay.verbatim(0).is_none() {
                let step = relay.relay(&[], out).map_err(|_| End::BadRequestBody)?;
                if step.produced > 0 {
                    app.write_all(&out[..step.produced])
                        .await
                        .map_err(|_| End::UpstreamFailed)?;
                    continue;
                }
            }
            // Everything read so far was this request's: start the buffer over.
            *filled = 0;
            pos = 0;
            read_more(client, request, filled, timeouts.idle, End::ClientError).await?;
            continue;
        }
        if let Some(n) = relay.verbatim(*filled - pos) {
            app.write_all(&request[pos..pos + n])
                .await
                .map_err(|_| End::UpstreamFailed)?;
            pos += n;
        } else {
            let step = relay
                .relay(&request[pos..*filled], out)
                .map_err(|_| End::BadRequestBody)?;
            app.write_all(&out[..step.produced])
                .await
                .map_err(|_| End::UpstreamFailed)?;
            pos += step.consumed;
        }
    }
    if app.flush().await.is_err() {
        return Err(answer_and_close(client, out, Status::BadGateway, End::UpstreamFailed).await);
    }

    // The answer: heads (interim ones, then the final one), then the body.
    let (resp, client_out) = out.split_at_mut(out.len() / 2);
    let mut rfilled = 0;
    loop {
        loop {
            match ResponseHead::parse(&resp[..rfilled], forward.request_was_head, forward.upgrade) {
                Ok(Parse::Complete(_)) => break,
                Ok(Parse::Incomplete) if rfilled < resp.len() => {}
                Ok(Parse::Incomplete) | Err(_) => {
                    warn!("the app's response head is invalid or too large: 502");
                    return Err(answer_and_close(
                        client,
                        client_out,
                        Status::BadGateway,
                        End::UpstreamFailed,
                    )
                    .await);
                }
            }
            match with_timeout(timeouts.idle, app.read(&mut resp[rfilled..])).await {
                Ok(Ok(n)) if n > 0 => rfilled += n,
                _ => {
                    warn!("the app closed or went silent before answering: 502");
                    return Err(answer_and_close(
                        client,
                        client_out,
                        Status::BadGateway,
                        End::UpstreamFailed,
                    )
                    .await);
                }
            }
        }
        // The parsed head (with its header array) lives only in this block, not across the
        // awaits below: it would otherwise take room in every connection task.
        let planned = match ResponseHead::parse(
            &resp[..rfilled],
            forward.request_was_head,
            forward.upgrade,
        ) {
            Ok(Parse::Complete(head)) => {
                let cookie: [(&str, &[u8]); 1] = [(
                    "Set-Cookie",
                    forward.set_cookie.as_deref().unwrap_or_default(),
                )];
                let extra: &[(&str, &[u8])] = if forward.set_cookie.is_some() {
                    &cookie
                } else {
                    &[]
                };
                write_client_response_head(
                    &head,
                    forward.client_version,
                    forward.keep_alive,
                    extra,
                    client_out,
                )
                .ok()
                .map(|plan| (head.head_len(), plan))
            }
            _ => None,
        };
        let Some((head_len, plan)) = planned else {
            return Err(answer_and_close(
                client,
                client_out,
                Status::BadGateway,
                End::UpstreamFailed,
            )
            .await);
        };
        client
            .write_all(&client_out[..plan.head_len])
            .await
            .map_err(|_| End::ClientError)?;

        match plan.body {
            ResponseBody::Interim => {
                resp.copy_within(head_len..rfilled, 0);
                rfilled -= head_len;
            }
            ResponseBody::Tunnel => {
                client
                    .write_all(&resp[head_len..rfilled])
                    .await
                    .map_err(|_| End::ClientError)?;
                app.write_all(&request[pos..*filled])
                    .await
                    .map_err(|_| End::UpstreamFailed)?;
                tunnel(client, app, request, resp, timeouts.idle).await;
                return Err(End::TunnelClosed);
            }
            ResponseBody::Final(_) => {
                let mut relay = plan.relay;
                let mut rpos = head_len;
                while !relay.is_done() {
                    if rpos == rfilled {
                        if relay.verbatim(0).is_none() {
                            let step = relay
                                .relay(&[], client_out)
                                .map_err(|_| End::UpstreamTruncated)?;
                            if step.produced > 0 {
                                client
                                    .write_all(&client_out[..step.produced])
                                    .await
                                    .map_err(|_| End::ClientError)?;
                                continue;
                            }
                        }
                        rfilled = 0;
                        rpos = 0;
                        match with_timeout(timeouts.idle, app.read(resp)).await {
                            Ok(Ok(n)) if n > 0 => rfilled = n,
                            Ok(Ok(_)) => {
                                // The app closed: the end of an until-close body, or a cut.
                                relay.finish().map_err(|_| End::UpstreamTruncated)?;
                            }
                            _ => return Err(End::UpstreamTruncated),
                        }
                        continue;
                    }
                    if let Some(n) = relay.verbatim(rfilled - rpos) {
                        client
                            .write_all(&resp[rpos..rpos + n])
                            .await
                            .map_err(|_| End::ClientError)?;
                        rpos += n;
                    } else {
                        let step = relay
                            .relay(&resp[rpos..rfilled], client_out)
                            .map_err(|_| End::UpstreamTruncated)?;
                        client
                            .write_all(&client_out[..step.produced])
                            .await
                            .map_err(|_| End::ClientError)?;
                        rpos += step.consumed;
                    }
                }
                client.flush().await.map_err(|_| End::ClientError)?;
                return Ok(if plan.close_client {
                    Next::Close
                } else {
                    Next::KeepAlive { consumed: pos }
                });
            }
        }
    }
}

/// Copies bytes both ways after a `101 Switching Protocols`, until either side closes or both
/// stay silent for `idle`.
async fn tunnel<C: Read + Write, A: Read + Write>(
    client: &mut C,
    app: &mut A,
    to_app: &mut [u8],
    to_client: &mut [u8],
    idle: Duration,
) {
    loop {
        let step = with_timeout(idle, select(client.read(to_app), app.read(to_client))).await;
        let ok = match step {
            Ok(Either::First(Ok(n))) if n > 0 => app.write_all(&to_app[..n]).await.is_ok(),
            Ok(Either::Second(Ok(n))) if n > 0 => client.write_all(&to_client[..n]).await.is_ok(),
            _ => false,
        };
        if !ok {
            return;
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{EngineParts, Trusted, Users};
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll};
    use embassy_net::{IpAddress, IpEndpoint};
    use embassy_time::MockDriver;
    use gatehouse_core::gateway::GatewayConfig;
    use gatehouse_core::password::{MIN_ITERATIONS, hash_password};
    use gatehouse_core::session::{SessionKey, SessionKeys};
    use std::collections::VecDeque;

    /// A peer that sends `chunks` one `read` at a time (then EOF, or nothing ever again when
    /// `hang` is set) and records what it is sent.
    #[derive(Default)]
    struct FakePeer {
        chunks: VecDeque<Vec<u8>>,
        hang: bool,
        sent: Vec<u8>,
    }

    impl FakePeer {
        fn sending(chunks: &[&[u8]]) -> Self {
            Self {
                chunks: chunks.iter().map(|c| c.to_vec()).collect(),
                ..Self::default()
            }
        }
    }

    impl embedded_io_async::ErrorType for FakePeer {
        type Error = embedded_io_async::ErrorKind;
    }

    impl Read for FakePeer {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            match self.chunks.pop_front() {
                Some(mut chunk) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        self.chunks.push_front(chunk.split_off(n));
                    }
                    Ok(n)
                }
                None if self.hang => core::future::pending().await,
                None => Ok(0),
            }
        }
    }

    impl Write for FakePeer {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// The app: each connection gets the next canned answer and records what it was sent;
    /// `None` when the app is down.
    struct FakeApp {
        answers: VecDeque<&'static [u8]>,
        down: bool,
        received: Vec<Vec<u8>>,
    }

    impl FakeApp {
        fn answering(answers: &[&'static [u8]]) -> Self {
            Self {
                answers: answers.iter().copied().collect(),
                down: false,
                received: Vec::new(),
            }
        }

        fn received_text(&self) -> String {
            self.received
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect::<Vec<_>>()
                .join("|")
        }
    }

    struct AppConn<'a> {
        answer: FakePeer,
        record: &'a mut Vec<u8>,
    }

    impl embedded_io_async::ErrorType for AppConn<'_> {
        type Error = embedded_io_async::ErrorKind;
    }

    impl Read for AppConn<'_> {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            self.answer.read(buf).await
        }
    }

    impl Write for AppConn<'_> {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.record.extend_from_slice(buf);
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    impl Upstream for FakeApp {
        type Conn<'a> = AppConn<'a>;

        async fn connect(&mut self) -> Option<AppConn<'_>> {
            if self.down {
                return None;
            }
            let answer = self.answers.pop_front().unwrap_or(b"");
            self.received.push(Vec::new());
            let record = self.received.last_mut()?;
            Some(AppConn {
                answer: FakePeer::sending(&[answer]),
                record,
            })
        }

        async fn disconnect<'a>(_conn: AppConn<'a>)
        where
            Self: 'a,
        {
        }
    }

    const OK_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    /// alice:wonderland
    const ALICE_BASIC: &str = "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n";

    fn engine() -> &'static Engine {
        let mut users = Users::new();
        let hash = hash_password(b"wonderland", &[7; 16], MIN_ITERATIONS).expect("hash");
        users.add("alice", false, hash).expect("add alice");
        let trusted: &'static Trusted = Box::leak(Box::new(Trusted::parse("").expect("empty")));
        let keys: &'static SessionKeys =
            Box::leak(Box::new(SessionKeys::new(SessionKey::from_bytes([9; 32]))));
        Box::leak(Box::new(Engine::new(EngineParts {
            config: GatewayConfig {
                password_iterations: MIN_ITERATIONS,
                ..GatewayConfig::DEFAULT
            },
            trusted,
            proxies: trusted,
            keys,
            users,
            seed: [3; 32],
            time_floor_unix: 0,
            rtc_unix: Some(1_700_000_000),
            ntp_server: None,
            upstream: IpEndpoint::new(IpAddress::v4(192, 0, 2, 100), 8080),
            listen_port: 80,
            timeouts: Timeouts::default(),
        })))
    }

    fn peer() -> Peer {
        Peer::Ip(IpAddr::from([192, 0, 2, 1]))
    }

    use core::net::IpAddr;

    fn run(client: &mut FakePeer, app: &mut FakeApp) -> End {
        let mut request = vec![0u8; REQUEST_BUFFER_LEN];
        let mut out = vec![0u8; OUT_BUFFER_LEN];
        embassy_futures::block_on(serve(client, peer(), app, &mut request, &mut out, engine()))
    }

    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    }

    const HEALTH: &[u8] = b"GET /_gatehouse/health HTTP/1.1\r\nHost: gw\r\n\r\n";

    #[test]
    fn pipelined_health_requests_are_each_answered_by_the_engine() {
        let both = [HEALTH, HEALTH].concat();
        let mut client = FakePeer::sending(&[&both]);
        let mut app = FakeApp::answering(&[]);
        assert_eq!(run(&mut client, &mut app), End::ClientClosed);
        assert_eq!(count(&client.sent, b"HTTP/1.1 200 OK\r\n"), 2);
        assert!(app.received.is_empty());
    }

    #[test]
    fn a_head_split_over_many_reads_is_reassembled() {
        let pieces: Vec<&[u8]> = HEALTH.chunks(3).collect();
        let mut client = FakePeer::sending(&pieces);
        let mut app = FakeApp::answering(&[]);
        assert_eq!(run(&mut client, &mut app), End::ClientClosed);
        assert_eq!(count(&client.sent, b"HTTP/1.1 200 OK\r\n"), 1);
    }

    #[test]
    fn basic_credentials_reach_the_app_as_remote_user_and_a_spoofed_header_does_not() {
        let req = format!(
            "GET /app HTTP/1.1\r\nHost: gw\r\nRemote-User: admin\r\nremote_user: admin\r\n{ALICE_BASIC}\r\n"
        );
        let mut client = FakePeer::sending(&[req.as_bytes()]);
        let mut app = FakeApp::answering(&[OK_RESPONSE]);
        assert_eq!(run(&mut client, &mut app), End::ClientClosed);
        let seen = app.received_text();
        assert!(seen.contains("Remote-User: alice\r\n"), "{seen}");
        assert!(!seen.to_ascii_lowercase().contains("admin"), "{seen}");
        assert!(client.sent.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(client.sent.ends_with(b"hello"));
    }

    #[test]
    fn an_anonymous_client_gets_401_and_the_app_sees_nothing() {
        let mut client = FakePeer::sending(&[b"GET /app HTTP/1.1\r\nHost: gw\r\n\r\n"]);
        let mut app = FakeApp::answering(&[OK_RESPONSE]);
        run(&mut client, &mut app);
        assert!(
            client.sent.starts_with(b"HTTP/1.1 401 "),
            "{:?}",
            String::from_utf8_lossy(&client.sent)
        );
        assert!(app.received.is_empty());
    }

    #[test]
    fn a_pipelined_second_request_is_judged_on_its_own() {
        let first = format!("GET /one HTTP/1.1\r\nHost: gw\r\n{ALICE_BASIC}\r\n");
        let second = "GET /two HTTP/1.1\r\nHost: gw\r\nRemote-User: mallory\r\n\r\n";
        let both = format!("{first}{second}");
        let mut client = FakePeer::sending(&[both.as_bytes()]);
        let mut app = FakeApp::answering(&[OK_RESPONSE, OK_RESPONSE]);
        run(&mut client, &mut app);
        assert_eq!(
            app.received.len(),
            1,
            "only the authenticated request is forwarded"
        );
        let sent = String::from_utf8_lossy(&client.sent);
        assert!(sent.starts_with("HTTP/1.1 200 OK\r\n"), "{sent}");
        assert!(sent.contains("HTTP/1.1 401 "), "{sent}");
        assert!(!app.received_text().contains("mallory"));
    }

    #[test]
    fn a_chunked_request_body_is_relayed_without_its_trailers() {
        let req = format!(
            "POST /upload HTTP/1.1\r\nHost: gw\r\n{ALICE_BASIC}Transfer-Encoding: chunked\r\n\r\n"
        );
        let body: &[u8] = b"5\r\nhello\r\n0\r\nRemote-User: admin\r\n\r\n";
        let mut client = FakePeer::sending(&[req.as_bytes(), &body[..4], &body[4..]]);
        let mut app = FakeApp::answering(&[OK_RESPONSE]);
        assert_eq!(run(&mut client, &mut app), End::ClientClosed);
        let seen = app.received_text();
        assert!(seen.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "{seen}");
        assert!(!seen.contains("admin"), "{seen}");
    }

    #[test]
    fn an_app_that_is_down_gives_502() {
        let req = format!("GET /app HTTP/1.1\r\nHost: gw\r\n{ALICE_BASIC}\r\n");
        let mut client = FakePeer::sending(&[req.as_bytes()]);
        let mut app = FakeApp::answering(&[]);
        app.down = true;
        assert_eq!(run(&mut client, &mut app), End::UpstreamFailed);
        assert!(client.sent.starts_with(b"HTTP/1.1 502 "));
    }

    #[test]
    fn an_app_that_answers_garbage_gives_502() {
        let req = format!("GET /app HTTP/1.1\r\nHost: gw\r\n{ALICE_BASIC}\r\n");
        let mut client = FakePeer::sending(&[req.as_bytes()]);
        let mut app = FakeApp::answering(&[b"SSH-2.0-OpenSSH\r\n\r\n"]);
        assert_eq!(run(&mut client, &mut app), End::UpstreamFailed);
        assert!(client.sent.starts_with(b"HTTP/1.1 502 "));
    }

    #[test]
    fn a_close_delimited_response_is_relayed_and_ends_the_client_connection() {
        let req = format!("GET /app HTTP/1.1\r\nHost: gw\r\n{ALICE_BASIC}\r\n");
        let mut client = FakePeer::sending(&[req.as_bytes()]);
        let mut app = FakeApp::answering(&[b"HTTP/1.1 200 OK\r\n\r\nstreamed until close"]);
        assert_eq!(run(&mut client, &mut app), End::Closed);
        assert!(client.sent.ends_with(b"streamed until close"));
    }

    #[test]
    fn a_head_larger_than_the_buffer_gets_431() {
        let mut req = b"GET /app HTTP/1.1\r\nHost: gw\r\nX-Filler: ".to_vec();
        req.resize(REQUEST_BUFFER_LEN + 10, b'a');
        let mut client = FakePeer::sending(&[&req]);
        let mut app = FakeApp::answering(&[]);
        assert_eq!(run(&mut client, &mut app), End::HeadTooLarge);
        assert!(client.sent.starts_with(b"HTTP/1.1 431 "));
    }

    #[test]
    fn a_101_answer_to_an_upgrade_turns_into_a_tunnel_both_ways() {
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: gw\r\n{ALICE_BASIC}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nclient-frame"
        );
        let mut client = FakePeer::sending(&[req.as_bytes()]);
        let mut app = FakeApp::answering(&[
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\napp-frame",
        ]);
        assert_eq!(run(&mut client, &mut app), End::TunnelClosed);
        let sent = String::from_utf8_lossy(&client.sent);
        assert!(sent.starts_with("HTTP/1.1 101 "), "{sent}");
        assert!(sent.ends_with("app-frame"), "{sent}");
        let seen = app.received_text();
        assert!(
            seen.to_ascii_lowercase().contains("upgrade: websocket"),
            "{seen}"
        );
        assert!(seen.ends_with("client-frame"), "{seen}");
    }

    #[test]
    fn expect_100_continue_is_answered_before_the_body_is_relayed() {
        let req = format!(
            "POST /upload HTTP/1.1\r\nHost: gw\r\n{ALICE_BASIC}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        );
        let mut client = FakePeer::sending(&[req.as_bytes(), b"hello"]);
        let mut app = FakeApp::answering(&[OK_RESPONSE]);
        assert_eq!(run(&mut client, &mut app), End::ClientClosed);
        let sent = String::from_utf8_lossy(&client.sent);
        assert!(
            sent.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
            "{sent}"
        );
        assert!(app.received_text().ends_with("\r\n\r\nhello"));
    }

    #[test]
    fn a_chunked_response_reaches_the_client_rechunked_without_trailers() {
        let req = format!("GET /app HTTP/1.1\r\nHost: gw\r\n{ALICE_BASIC}\r\n");
        let mut client = FakePeer::sending(&[req.as_bytes()]);
        let mut app = FakeApp::answering(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
        ]);
        assert_eq!(run(&mut client, &mut app), End::ClientClosed);
        let sent = String::from_utf8_lossy(&client.sent);
        assert!(sent.ends_with("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "{sent}");
    }

    #[test]
    fn a_silent_connection_ends_at_the_idle_timeout_and_a_stalled_head_at_the_head_timeout() {
        let timeouts = Timeouts::default();
        for (chunks, waited, expected) in [
            (&[][..], timeouts.idle, End::Idle),
            (&[&HEALTH[..10]][..], timeouts.head_read, End::HeadTimeout),
        ] {
            let mut client = FakePeer::sending(chunks);
            client.hang = true;
            let mut app = FakeApp::answering(&[]);
            let mut request = vec![0u8; REQUEST_BUFFER_LEN];
            let mut out = vec![0u8; OUT_BUFFER_LEN];
            let mut future = pin!(serve(
                &mut client,
                peer(),
                &mut app,
                &mut request,
                &mut out,
                engine()
            ));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(future.as_mut().poll(&mut cx).is_pending());
            MockDriver::get().advance(waited - Duration::from_millis(1));
            assert!(future.as_mut().poll(&mut cx).is_pending(), "ended early");
            MockDriver::get().advance(Duration::from_millis(1));
            assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(expected));
        }
    }
}
