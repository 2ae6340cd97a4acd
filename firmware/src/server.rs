//! The connection tasks: a fixed pool, each listening on the gateway port and serving one client
//! at a time.

use embassy_executor::{SpawnError, Spawner};
use embassy_net::Stack;
use embassy_net::tcp::TcpSocket;
use embassy_time::{Duration, with_timeout};

use crate::MAX_CONNECTIONS;
use crate::connection::{self, ConnectionBuffers, Timeouts};

/// How long a closing connection may take to flush its last bytes.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// What the board configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// TCP port gatehouse listens on.
    pub listen_port: u16,
    pub timeouts: Timeouts,
}

/// State shared by all connection tasks.
pub struct Gateway {
    pub settings: Settings,
}

impl Gateway {
    pub const fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

/// Spawns the [`MAX_CONNECTIONS`] connection tasks.
pub fn spawn(
    spawner: &Spawner,
    stack: Stack<'static>,
    gateway: &'static Gateway,
) -> Result<(), SpawnError> {
    for slot in 0..MAX_CONNECTIONS {
        spawner.spawn(connection_task(stack, gateway, slot)?);
    }
    info!(
        "gateway: {} connection tasks on port {}",
        MAX_CONNECTIONS, gateway.settings.listen_port
    );
    Ok(())
}

#[embassy_executor::task(pool_size = MAX_CONNECTIONS)]
async fn connection_task(stack: Stack<'static>, gateway: &'static Gateway, slot: usize) -> ! {
    let mut bufs = ConnectionBuffers::new();
    let settings = gateway.settings;
    loop {
        let ConnectionBuffers {
            client_rx,
            client_tx,
            work,
        } = &mut bufs;
        let mut socket = TcpSocket::new(stack, client_rx, client_tx);
        if let Err(e) = socket.accept(settings.listen_port).await {
            warn!("slot {}: accept failed: {:?}", slot, e);
            continue;
        }
        let end = connection::serve(&mut socket, work, &settings.timeouts).await;
        debug!("slot {}: connection ended: {:?}", slot, end);
        socket.close();
        let _ = with_timeout(CLOSE_FLUSH, socket.flush()).await;
        socket.abort();
    }
}
