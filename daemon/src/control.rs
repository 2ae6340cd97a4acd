//! The control socket: how `gatehouse users …` tells a running gateway to apply a change now.
//!
//! A running gateway also notices a changed `users.json` by itself, but only at its next
//! look (once a second), and until then a revoked app password, a deleted user or a changed
//! password still works. So after writing the file, the CLI connects to `control.sock` in the
//! state directory, asks the gateway to reload the users file, and returns only once it
//! answered with what it applied. No socket, or nobody answering on it, means no gateway is
//! running on this state directory: the change is in the file for the next one.
//!
//! The socket is made with mode 0600 (only gatehouse's own user can connect) and removed on
//! exit. The protocol is one line each way: the request `reload-users`, the answer
//! `ok <users>` or `error <why>`.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::shared::Shared;

/// The control socket's name in the state directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The one request there is.
const RELOAD_USERS: &str = "reload-users";

/// How long the CLI waits for a gateway to answer (a reload takes a lock the gateway holds
/// only briefly, and reads one file).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the gateway waits for a request line on an accepted connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The control socket's path for `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Binds the control socket, mode 0600 from the start. `Ok(None)` when another gateway is
/// already answering on it (two gateways on one state directory): this one then relies on
/// noticing file changes by itself, and says so.
pub fn bind(state_dir: &Path) -> Result<Option<(UnixListener, PathBuf)>> {
    let path = socket_path(state_dir);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                tracing::warn!(
                    "another gateway answers on {}: `gatehouse users` changes reach this one \
                     within a second, not at once",
                    path.display()
                );
                return Ok(None);
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        Ok(_) => {
            return Err(anyhow!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ));
        }
        Err(_) => {}
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(&path);
    rustix::process::umask(old);
    let listener =
        bound.with_context(|| format!("cannot listen on the control socket {}", path.display()))?;
    Ok(Some((listener, path)))
}

/// Answers control requests until the task is dropped. Each connection is served on its own
/// task, and the reload runs on the blocking pool: nothing here holds up the accept loops
/// that serve clients.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read).take(128);
            let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
            let answer = match read {
                Ok(Ok(_)) if line.trim_end() == RELOAD_USERS => {
                    match tokio::task::spawn_blocking(move || shared.reload_users_if_changed(true))
                        .await
                    {
                        Ok(Ok(count)) => format!("ok {count}\n"),
                        Ok(Err(e)) => format!("error {e}\n"),
                        Err(_) => "error the reload did not finish\n".to_owned(),
                    }
                }
                Ok(Ok(_)) => "error unknown request\n".to_owned(),
                _ => return,
            };
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
}

/// What a running gateway did with the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Notified {
    /// It reloaded the users file: this many users are in force.
    Applied(usize),
    /// No gateway answers on this state directory.
    NoneRunning,
}

/// Asks the gateway running on `state_dir` (if any) to reload the users file, and waits for
/// its answer. An error says what went wrong; the change is in the file either way.
pub fn notify_running_gateway(state_dir: &Path) -> Result<Notified> {
    let path = socket_path(state_dir);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(Notified::NoneRunning);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("connecting to {}", path.display()));
        }
    };
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    stream
        .write_all(format!("{RELOAD_USERS}\n").as_bytes())
        .with_context(|| format!("writing to {}", path.display()))?;
    let mut line = String::new();
    let read = BufReader::new(&stream).take(256).read_line(&mut line);
    match read {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(anyhow!(
            "the running gateway did not confirm the change within {}s (it still reads \
                 the users file within a second on its own)",
            ANSWER_TIMEOUT.as_secs()
        )),
        Err(e) => Err(e).with_context(|| format!("reading from {}", path.display())),
        Ok(_) => match line.trim_end().split_once(' ') {
            Some(("ok", count)) => count
                .parse()
                .map(Notified::Applied)
                .map_err(|_| anyhow!("the running gateway answered {line:?}")),
            Some(("error", why)) => Err(anyhow!(
                "the running gateway could not apply the change: {why}"
            )),
            _ => Err(anyhow!(
                "the running gateway answered {:?} instead of confirming the change",
                line.trim_end()
            )),
        },
    }
}
