//! The listeners: accept connections on every configured address, keep their number under
//! `max_connections`, hand each to a worker, and shut down gracefully.
//!
//! Connections are served by `workers` threads, each running its own single-threaded tokio
//! runtime, as nginx runs one event loop per worker process: a connection stays on the thread
//! that took it, its wake-ups never cross threads, and each worker keeps its own idle
//! connections to the app. The accept loops run on the main runtime and hand each new
//! connection to the worker with the fewest open ones. Password checks do not run on a
//! worker's event loop but on its blocking pool (see [`crate::engine`]).
//!
//! The rest follows mini-redis: one accept loop per listener; a semaphore permit per open
//! connection, for all workers together (when none is left, the loop stops accepting and new
//! clients wait in the kernel's backlog, while open connections carry on); a broadcast per
//! worker that tells its connections to finish their current request and close; and a channel
//! whose senders are held by the connection tasks, so "all senders dropped" means "all
//! connections have finished".

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow};
use tokio::net::{TcpListener, UnixListener};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use crate::client::{ClientStream, PeerAddr};
use crate::config::{Config, ListenAddr};
use crate::connection;
use crate::shared::Shared;
use crate::tls::TlsState;
use crate::upstream::Upstream;

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
) -> Result<()> {
    let workers = Arc::new(Workers::start(&shared)?);
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);

    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let acceptor = Acceptor {
            shared: shared.clone(),
            workers: workers.clone(),
            limit: limit.clone(),
            tls: tls.clone(),
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
    workers.notify_shutdown();
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
    // The acceptors held the only other references; stopping the workers drops whatever
    // connection is still open past the deadline.
    if let Ok(workers) = Arc::try_unwrap(workers) {
        let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
    }
    Ok(())
}

/// The number of workers `workers = "auto"` means: one per CPU.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The threads that serve connections, each with its own single-threaded runtime.
struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    runtime: Handle,
    /// Connections handed to this worker and not finished yet.
    open: Arc<AtomicUsize>,
    /// This worker's idle connections to the app: used by its connections only.
    upstream: Arc<Upstream>,
    /// Tells this worker's connections to close after their current request when dropped.
    /// One per worker: a connection waiting for its next request polls it, and a channel
    /// shared by every worker would be a lock taken from every thread.
    shutdown: std::sync::Mutex<Option<broadcast::Sender<()>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(shared: &Shared) -> Result<Workers> {
        let count = shared.config.workers.unwrap_or_else(default_workers).max(1);
        let mut workers = Vec::with_capacity(count);
        for i in 0..count {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("gatehouse-worker-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    // Whatever is left (connections past the shutdown deadline) is dropped,
                    // without waiting for a password check still running on a blocking thread.
                    runtime.shutdown_background();
                })
                .context("starting a worker thread")?;
            let runtime = handle_rx
                .recv()
                .map_err(|_| anyhow!("a worker thread ended while starting"))?
                .context("starting a worker's async runtime")?;
            workers.push(Worker {
                runtime,
                open: Arc::new(AtomicUsize::new(0)),
                upstream: Arc::new(Upstream::new(
                    shared.config.upstream.clone(),
                    shared.config.upstream_connect_timeout,
                )),
                shutdown: std::sync::Mutex::new(Some(broadcast::channel(1).0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        tracing::info!("serving connections on {count} worker threads");
        Ok(Workers { workers })
    }

    /// The worker with the fewest open connections (the first such, after `hint`, so ties go
    /// round the workers).
    fn pick(&self, hint: usize) -> &Worker {
        let n = self.workers.len();
        let mut best = &self.workers[hint % n];
        let mut best_open = best.open.load(Ordering::Relaxed);
        for k in 1..n {
            let w = &self.workers[(hint + k) % n];
            let open = w.open.load(Ordering::Relaxed);
            if open < best_open {
                best = w;
                best_open = open;
            }
        }
        best
    }

    /// Tells every open connection to close after its current request.
    fn notify_shutdown(&self) {
        for w in &self.workers {
            w.shutdown_sender().take();
        }
    }

    /// Stops every worker's runtime and waits for its thread.
    fn stop(mut self) {
        for w in &mut self.workers {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Worker {
    fn shutdown_sender(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<()>>> {
        match self.shutdown.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A receiver for a new connection, or `None` once shutting down.
    fn subscribe_shutdown(&self) -> Option<broadcast::Receiver<()>> {
        self.shutdown_sender()
            .as_ref()
            .map(broadcast::Sender::subscribe)
    }
}

/// An accepted connection on its way to a worker: a plain socket, registered with the
/// worker's runtime once there.
enum Accepted {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Accepted {
    fn into_client(self) -> std::io::Result<ClientStream> {
        Ok(match self {
            Accepted::Tcp(s) => ClientStream::Tcp(tokio::net::TcpStream::from_std(s)?),
            Accepted::Unix(s) => ClientStream::Unix(tokio::net::UnixStream::from_std(s)?),
        })
    }
}

struct Acceptor {
    shared: Arc<Shared>,
    workers: Arc<Workers>,
    limit: Arc<Semaphore>,
    tls: Option<TlsState>,
    done_tx: mpsc::Sender<()>,
}

impl Acceptor {
    async fn run(self, listener: Listener) {
        let mut backoff_ms = 1;
        let mut turn = 0usize;
        loop {
            // Wait for room under max_connections before accepting: beyond the limit, new
            // clients wait in the backlog and open connections are not disturbed.
            let Ok(permit) = self.limit.clone().acquire_owned().await else {
                return;
            };
            let accepted = match &listener {
                Listener::Tcp(l) => l.accept().await.and_then(|(s, addr)| {
                    let _ = s.set_nodelay(true);
                    Ok((Accepted::Tcp(s.into_std()?), PeerAddr::Tcp(addr)))
                }),
                Listener::Unix(l, _) => l
                    .accept()
                    .await
                    .and_then(|(s, _)| Ok((Accepted::Unix(s.into_std()?), PeerAddr::Unix))),
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
                (Accepted::Tcp(_), Some(t)) => Some(t.acceptor()),
                _ => None,
            };
            let done = self.done_tx.clone();
            turn = turn.wrapping_add(1);
            let worker = self.workers.pick(turn);
            let Some(shutdown) = worker.subscribe_shutdown() else {
                return;
            };
            let open = worker.open.clone();
            let upstream = worker.upstream.clone();
            open.fetch_add(1, Ordering::Relaxed);
            shared.metrics.connection_opened();
            worker.runtime.spawn(async move {
                match stream.into_client() {
                    Ok(stream) => {
                        connection::serve(shared.clone(), upstream, stream, peer, tls, shutdown)
                            .await;
                    }
                    Err(e) => tracing::warn!(%peer, "cannot serve an accepted connection: {e}"),
                }
                shared.metrics.connection_closed();
                open.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
                drop(done);
            });
        }
    }
}
