//! The connection tasks: a fixed pool, each listening on the gateway port and serving one client
//! at a time, each with its own buffers (in the task's static storage).

use core::net::{IpAddr, SocketAddrV4};

use embassy_executor::{SpawnError, Spawner};
use embassy_futures::select::{Either, select};
use embassy_net::tcp::{State, TcpSocket};
use embassy_net::{IpEndpoint, Stack};
use embassy_time::{Duration, with_timeout};
use gatehouse_core::http::{Status, write_error};
use gatehouse_core::peer::Peer;

use crate::MAX_CONNECTIONS;
use crate::connection::{self, ConnectionBuffers, Upstream, WorkBuffers};
use crate::state::Engine;

/// How long a closing connection may take to flush its last bytes.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// Buffers of the overflow socket: enough for a request line and a 503.
const OVERFLOW_BUFFER_LEN: usize = 256;

/// Spawns the [`MAX_CONNECTIONS`] connection tasks, and the overflow task that answers 503
/// while they are all busy.
pub fn spawn(
    spawner: &Spawner,
    stack: Stack<'static>,
    engine: &'static Engine,
) -> Result<(), SpawnError> {
    for slot in 0..MAX_CONNECTIONS {
        spawner.spawn(connection_task(stack, engine, slot)?);
    }
    spawner.spawn(overflow_task(stack, engine)?);
    if let Some(server) = engine.ntp_server {
        spawner.spawn(sntp_task(stack, engine, server)?);
        info!("time from SNTP server {}", server);
    }
    info!(
        "gateway: {} connection tasks on port {}",
        MAX_CONNECTIONS, engine.listen_port
    );
    Ok(())
}

#[embassy_executor::task]
async fn sntp_task(stack: Stack<'static>, engine: &'static Engine, server: SocketAddrV4) -> ! {
    crate::sntp::run(stack, engine, server).await
}

#[embassy_executor::task(pool_size = MAX_CONNECTIONS)]
async fn connection_task(stack: Stack<'static>, engine: &'static Engine, slot: usize) -> ! {
    let mut bufs = ConnectionBuffers::new();
    let ConnectionBuffers {
        client_rx,
        client_tx,
        work,
    } = &mut bufs;
    let WorkBuffers {
        upstream_rx,
        upstream_tx,
        request,
        out,
    } = work;
    // One socket towards the app for the task's whole life: a connection to the app that is
    // still closing when the client has its answer finishes in the background, while the
    // task already serves its next client.
    let mut upstream = TcpUpstream {
        socket: TcpSocket::new(stack, upstream_rx, upstream_tx),
        endpoint: engine.upstream,
        idle: engine.timeouts.idle,
    };
    loop {
        let mut socket = TcpSocket::new(stack, &mut client_rx[..], &mut client_tx[..]);
        if let Err(e) = socket.accept(engine.listen_port).await {
            warn!("slot {}: accept failed: {:?}", slot, e);
            continue;
        }
        // Keep-alive and head timeouts are the engine's business; this one only frees a slot
        // whose peer vanished without a word.
        socket.set_timeout(Some(engine.timeouts.idle + engine.timeouts.idle));
        let Some(remote) = socket.remote_endpoint() else {
            socket.abort();
            continue;
        };
        let peer = Peer::Ip(IpAddr::from(remote.addr));
        engine.set_busy(|busy| busy + 1);
        let end = connection::serve(
            &mut socket,
            peer,
            &mut upstream,
            &mut request[..],
            &mut out[..],
            engine,
        )
        .await;
        debug!("slot {}: connection ended: {:?}", slot, end);
        socket.close();
        let _ = with_timeout(CLOSE_FLUSH, socket.flush()).await;
        socket.abort();
        engine.set_busy(|busy| busy.saturating_sub(1));
    }
}

/// While every connection task is busy, listens in their place and answers 503 (then closes),
/// so that a client beyond the limit gets an answer rather than a reset. It stops listening as
/// soon as a task is free again, so it never takes a client a task could serve.
#[embassy_executor::task]
async fn overflow_task(stack: Stack<'static>, engine: &'static Engine) -> ! {
    let mut rx = [0u8; OVERFLOW_BUFFER_LEN];
    let mut tx = [0u8; OVERFLOW_BUFFER_LEN];
    let mut out = [0u8; OVERFLOW_BUFFER_LEN];
    loop {
        while engine.busy() < MAX_CONNECTIONS {
            engine.busy_changed.wait().await;
        }
        let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
        let accepted = select(socket.accept(engine.listen_port), async {
            while engine.busy() >= MAX_CONNECTIONS {
                engine.busy_changed.wait().await;
            }
        })
        .await;
        if let Either::First(Ok(())) = accepted {
            warn!("all {} connection tasks busy: 503", MAX_CONNECTIONS);
            // Take what the client sent first, so that closing does not reset the
            // connection before it reads the answer.
            let mut scratch = [0u8; 64];
            let _ = with_timeout(CLOSE_FLUSH, socket.read(&mut scratch)).await;
            if let Ok(len) = write_error(Status::ServiceUnavailable, true, &mut out) {
                let _ = with_timeout(CLOSE_FLUSH, socket.write(&out[..len])).await;
            }
            socket.close();
            let _ = with_timeout(CLOSE_FLUSH, socket.flush()).await;
        }
        socket.abort();
    }
}

/// The app, over TCP through the same stack: one socket, reused for every exchange.
struct TcpUpstream<'b> {
    socket: TcpSocket<'b>,
    endpoint: IpEndpoint,
    idle: Duration,
}

impl<'b> Upstream for TcpUpstream<'b> {
    type Conn<'a>
        = &'a mut TcpSocket<'b>
    where
        Self: 'a;

    async fn connect(&mut self) -> Option<&mut TcpSocket<'b>> {
        let socket = &mut self.socket;
        if socket.state() != State::Closed {
            // The previous exchange's connection is still closing: give the app the time a
            // close may take to acknowledge it (long past, normally), then forget it.
            let _ = with_timeout(CLOSE_FLUSH, socket.flush()).await;
            socket.abort();
            let _ = with_timeout(CLOSE_FLUSH, socket.flush()).await;
        }
        socket.set_timeout(Some(self.idle + self.idle));
        match socket.connect(self.endpoint).await {
            Ok(()) => Some(socket),
            Err(e) => {
                warn!("connecting to the app failed: {:?}", e);
                socket.abort();
                None
            }
        }
    }

    /// Sends the FIN and returns: waiting here for the app to acknowledge it (which a peer
    /// may delay, e.g. by TCP delayed ACK while the app keeps its end open) would hold the
    /// connection task, and with it a connection slot, after the client has its answer.
    /// The close completes in the background; [`Self::connect`] finishes it if need be.
    async fn disconnect<'a>(conn: &'a mut TcpSocket<'b>)
    where
        Self: 'a,
    {
        conn.close();
    }
}
