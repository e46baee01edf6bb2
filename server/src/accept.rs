//! Accepting connections, on hyper directly rather than `axum::serve`, for three things
//! it does not offer: a deadline for a request's headers (hyper's
//! `header_read_timeout`), so silent and trickling connections cannot hold
//! descriptors; a cap on open connections, WebSockets included (a permit travels with
//! the socket through the upgrade); and a pause, not a spin, when the process runs out
//! of descriptors.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::metrics::Metrics;

/// How long an accept that failed for want of resources waits before the next try.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);
/// How long shutdown waits for HTTP requests in flight.
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// What bounds the connections a server holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// Serves `router` on `listener` until `stop` turns true, then waits (a bounded time)
/// for HTTP requests in flight. Upgraded sockets are the connections' own to close.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(Semaphore::new(bounds.max_connections));
    // HTTP/1.1 only: hyper's protocol sniffing (for HTTP/2) would wait for a first byte
    // with no deadline, which is exactly what a silent connection never sends.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout);
    // Each connection task holds a receiver; when all are gone, every request is done.
    let (in_flight, all_done) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                // Out of descriptors or memory: connections will close (the header
                // deadline sees to idle ones), so wait rather than spin.
                metrics.accept_failure();
                tracing::error!(error = %err, "accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            metrics.connection_refused();
            tracing::warn!(
                max_connections = bounds.max_connections,
                "connection refused: MAX_CONNECTIONS reached"
            );
            continue;
        };
        // Frames are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Counted {
            stream,
            _permit: permit,
        });
        let connection = builder
            .serve_connection(io, TowerToHyperService::new(router.clone()))
            .with_upgrades();
        let mut stop = stop.clone();
        let done = all_done.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = async { stop.wait_for(|stopping| *stopping).await.map(drop) } => {
                    // Finish the request in flight, take no new one.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, "HTTP connection ended with an error");
            }
            drop(done);
        });
    }
    drop(listener);
    drop(all_done);
    if tokio::time::timeout(HTTP_GRACE, in_flight.closed())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still in flight after the grace period");
    }
}

/// Errors that concern one connection only (the peer gave up during the handshake):
/// the next accept may succeed at once.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A socket that holds one of the server's connection permits until it is dropped,
/// after an upgrade too.
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
