//! One client connection: request after request, each judged by core.
//!
//! The loop: wait for the first byte of a request (idle timeout; a shutdown ends the wait),
//! read until core has a whole head (head-read timeout, so a slowloris client cannot hold a
//! connection forever), ask core what to do, do it, and go round again with whatever bytes
//! followed the request. Every request on a keep-alive connection goes through core, pipelined
//! or not: nothing reaches the app that core did not write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::http::CONTINUE_100;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;
use tokio_rustls::TlsAcceptor;

use crate::client::{ClientStream, PeerAddr};
use crate::engine::{self, Judged};
use crate::keys::RandomPool;
use crate::metrics::Outcome;
use crate::pump::{self, After, Buf, ForwardError, Limits};
use crate::shared::Shared;
use crate::upstream::Upstream;

/// Serves one accepted connection until it closes, times out, or the server shuts down.
pub async fn serve(
    shared: Arc<Shared>,
    upstream: Arc<Upstream>,
    stream: ClientStream,
    peer: PeerAddr,
    tls: Option<TlsAcceptor>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let mut stream = match (stream, tls) {
        (ClientStream::Tcp(tcp), Some(acceptor)) => {
            match tokio::time::timeout(shared.config.head_read_timeout, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => ClientStream::Tls(Box::new(tls)),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
        (s, _) => s,
    };
    let mut conn = Connection {
        shared,
        upstream,
        peer,
        buf: Buf::new(),
        first: true,
        random: RandomPool::default(),
    };
    conn.run(&mut stream, &mut shutdown).await;
    let _ = stream.shutdown().await;
}

struct Connection {
    shared: Arc<Shared>,
    /// The idle connections to the app of the worker this connection runs on.
    upstream: Arc<Upstream>,
    peer: PeerAddr,
    buf: Buf,
    first: bool,
    random: RandomPool,
}

/// Why the connection ends while waiting for a request.
enum Wait {
    Ready,
    Closed,
}

impl Connection {
    async fn run(&mut self, stream: &mut ClientStream, shutdown: &mut broadcast::Receiver<()>) {
        loop {
            if let Wait::Closed = self.wait_for_request(stream, shutdown).await {
                return;
            }
            match self.one_request(stream).await {
                After::KeepAlive => {
                    self.first = false;
                    self.buf.release_if_empty();
                }
                After::Close => return,
            }
        }
    }

    /// Waits for the first byte of the next request, unless some are buffered already.
    async fn wait_for_request(
        &mut self,
        stream: &mut ClientStream,
        shutdown: &mut broadcast::Receiver<()>,
    ) -> Wait {
        if !self.buf.is_empty() {
            // Pipelined requests already read; but once shutting down, none is started.
            return match shutdown.try_recv() {
                Err(broadcast::error::TryRecvError::Empty) => Wait::Ready,
                _ => Wait::Closed,
            };
        }
        let limit = if self.first {
            self.shared.config.head_read_timeout
        } else {
            self.shared.config.idle_timeout
        };
        let deadline = tokio::time::Instant::now() + limit;
        let readable = tokio::select! {
            biased;
            _ = shutdown.recv() => false,
            r = tokio::time::timeout_at(deadline, stream.readable()) => matches!(r, Ok(Ok(()))),
        };
        if !readable {
            return Wait::Closed;
        }
        tokio::select! {
            biased;
            _ = shutdown.recv() => Wait::Closed,
            r = tokio::time::timeout_at(deadline, self.buf.read_from(stream)) => match r {
                Ok(Ok(n)) if n > 0 => Wait::Ready,
                _ => Wait::Closed,
            },
        }
    }

    /// Reads, judges and carries out one request.
    async fn one_request(&mut self, stream: &mut ClientStream) -> After {
        let started = Instant::now();
        let deadline = started + self.shared.config.head_read_timeout;
        let limits = Limits {
            idle: self.shared.config.idle_timeout,
        };
        let mut sent_continue = false;
        loop {
            let judged = engine::judge(
                &self.shared,
                self.peer,
                stream.is_tls(),
                self.buf.data(),
                &mut self.random,
            )
            .await;
            match judged {
                Judged::ReadBody {
                    total,
                    send_continue,
                } => {
                    if send_continue && !sent_continue {
                        sent_continue = true;
                        if !write_with_timeout(stream, CONTINUE_100, limits.idle).await {
                            return After::Close;
                        }
                    }
                    // core bounds `total` (a login form); read until it is all here.
                    while self.buf.len() < total {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match tokio::time::timeout(left, self.buf.read_from(stream)).await {
                            Ok(Ok(n)) if n > 0 => {}
                            _ => return After::Close,
                        }
                    }
                }
                Judged::NeedMore => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, self.buf.read_from(stream)).await {
                        Ok(Ok(n)) if n > 0 => continue,
                        Ok(_) => return After::Close,
                        Err(_) => {
                            tracing::info!(peer = %self.peer, "request head not received within {:?}; closing", self.shared.config.head_read_timeout);
                            return After::Close;
                        }
                    }
                }
                Judged::Respond(resp) => {
                    self.buf.consume(resp.consumed);
                    let ok = write_with_timeout(stream, &resp.bytes, limits.idle).await;
                    self.shared.metrics.request(resp.log.outcome);
                    resp.log.emit(resp.status, started.elapsed());
                    return if ok && !resp.close {
                        After::KeepAlive
                    } else {
                        After::Close
                    };
                }
                Judged::Forward(mut fwd) => {
                    self.buf.consume(fwd.consumed);
                    let (head, plan) = fwd.plan();
                    let result =
                        pump::forward(&self.upstream, stream, &mut self.buf, head, &plan, limits)
                            .await;
                    return match result {
                        Ok((after, status)) => {
                            self.shared.metrics.request(Outcome::Forwarded);
                            fwd.log.emit(status, started.elapsed());
                            after
                        }
                        Err(ForwardError::Broken(e)) => {
                            self.shared.metrics.upstream_error();
                            self.shared.metrics.request(Outcome::UpstreamError);
                            tracing::info!(peer = %self.peer, "exchange broken off: {e}");
                            After::Close
                        }
                        Err(e) => {
                            self.shared.metrics.upstream_error();
                            self.shared.metrics.request(Outcome::UpstreamError);
                            tracing::warn!("upstream error: {e}");
                            let page = engine::bad_gateway();
                            let _ = write_with_timeout(stream, &page, limits.idle).await;
                            fwd.log.emit(502, started.elapsed());
                            After::Close
                        }
                    };
                }
            }
        }
    }
}

async fn write_with_timeout(stream: &mut ClientStream, bytes: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}
