//! The listeners: accept connections on every configured address, keep their number under
//! `max_connections`, and shut down gracefully.
//!
//! The layout follows mini-redis: one accept loop per listener; a semaphore permit per open
//! connection (when none is left, the loop stops accepting and new clients wait in the
//! kernel's backlog, while open connections carry on); a broadcast that tells every
//! connection to finish its current request and close; and a channel whose senders are held by
//! the connection tasks, so "all senders dropped" means "all connections have finished".

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::client::{ClientStream, PeerAddr};
use crate::config::{Config, ListenAddr};
use crate::connection;
use crate::shared::Shared;
use crate::tls::TlsState;

/// One bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// How the listener is shown in logs and to the tests that parse them.
    pub fn describe(&self, tls: bool) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("{}://{a}", if tls { "https" } else { "http" }),
                Err(_) => "tcp (address unknown)".into(),
            },
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// Opens every listener before anything is served, so a bad address fails at start-up.
pub async fn bind_all(config: &Config) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    for addr in &config.listen {
        match addr {
            ListenAddr::Tcp(a) => {
                let l = TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on `listen` = {a}"))?;
                out.push(Listener::Tcp(l));
            }
            ListenAddr::Unix(path) => {
                out.push(bind_unix(path, config.unix_socket_mode)?);
            }
        }
    }
    Ok(out)
}

/// Binds a UNIX socket with its permissions set before anyone can connect: the umask is
/// tightened around `bind` so the socket never exists with looser permissions, then it is
/// chmod-ed to the configured mode.
fn bind_unix(path: &Path, mode: u32) -> Result<Listener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket left by a previous run. If something still answers on it, another
            // gateway is running; do not steal its address.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(anyhow!(
                    "`listen` = unix:{}: another process is already serving on this socket",
                    path.display()
                ));
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        Ok(_) => {
            return Err(anyhow!(
                "`listen` = unix:{}: the path exists and is not a socket; refusing to replace it",
                path.display()
            ));
        }
        Err(_) => {}
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener =
        bound.with_context(|| format!("cannot listen on `listen` = unix:{}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode {mode:04o} on {}", path.display()))?;
    Ok(Listener::Unix(listener, path.to_owned()))
}

/// Serves every listener until `shutdown` resolves, then lets open connections finish their
/// current request within `shutdown_timeout`.
pub async fn run(
    listeners: Vec<Listener>,
    shared: Arc<Shared>,
    tls: Option<TlsState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);

    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let acceptor = Acceptor {
            shared: shared.clone(),
            limit: limit.clone(),
            tls: tls.clone(),
            notify_shutdown: notify_shutdown.clone(),
            done_tx: done_tx.clone(),
        };
        accept_tasks.push(tokio::spawn(acceptor.run(listener)));
    }

    shutdown.await;
    tracing::info!(
        open_connections = shared.metrics.open_connections(),
        "shutting down: no new connections; finishing requests in flight"
    );
    for task in &accept_tasks {
        task.abort();
    }
    for task in accept_tasks {
        let _ = task.await;
    }
    // Every connection holds a receiver; this tells each to close after its current request.
    drop(notify_shutdown);
    drop(done_tx);
    let deadline = shared.config.shutdown_timeout;
    if tokio::time::timeout(deadline, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            open_connections = shared.metrics.open_connections(),
            "shutdown deadline of {deadline:?} passed; closing the remaining connections"
        );
    }
}

struct Acceptor {
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    tls: Option<TlsState>,
    notify_shutdown: broadcast::Sender<()>,
    done_tx: mpsc::Sender<()>,
}

impl Acceptor {
    async fn run(self, listener: Listener) {
        let mut backoff_ms = 1;
        loop {
            // Wait for room under max_connections before accepting: beyond the limit, new
            // clients wait in the backlog and open connections are not disturbed.
            let Ok(permit) = self.limit.clone().acquire_owned().await else {
                return;
            };
            let accepted = match &listener {
                Listener::Tcp(l) => l.accept().await.map(|(s, addr)| {
                    let _ = s.set_nodelay(true);
                    (ClientStream::Tcp(s), PeerAddr::Tcp(addr))
                }),
                Listener::Unix(l, _) => l
                    .accept()
                    .await
                    .map(|(s, _)| (ClientStream::Unix(s), PeerAddr::Unix)),
            };
            let (stream, peer) = match accepted {
                Ok(x) => {
                    backoff_ms = 1;
                    x
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(1000);
                    continue;
                }
            };
            let shared = self.shared.clone();
            let tls = match (&stream, &self.tls) {
                (ClientStream::Tcp(_), Some(t)) => Some(t.acceptor()),
                _ => None,
            };
            let shutdown = self.notify_shutdown.subscribe();
            let done = self.done_tx.clone();
            tokio::spawn(async move {
                shared.metrics.connection_opened();
                connection::serve(shared.clone(), stream, peer, tls, shutdown).await;
                shared.metrics.connection_closed();
                drop(permit);
                drop(done);
            });
        }
    }
}
