//! Listeners: binding the listen addresses, accepting connections and
//! serving each with hyper (HTTP/1.1 keep-alive and h2c) behind the framing
//! guard, and the graceful drain on shutdown.
//!
//! hyper has head limits of its own. They are set here so that they never
//! answer before ours do ([`hyper_limits`]): our check names the key that
//! raises a limit, hyper's does not.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::Gateway;
use super::framing;
use super::send_timeout::SendTimeout;
use crate::app::Peer;
use crate::config::HeadLimits;

/// hyper's buffer per connection, for reading heads and queueing writes
/// (its default is ~400 KiB), at least `max_request_head` + 64 KiB so that a
/// head and the body bytes that come with it fit: a response held for a
/// slow client is memory per connection, and what goes beyond is spooled
/// to a file anyway.
const MAX_BUF_SIZE: usize = 128 * 1024;

/// Why the gateway could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds every listen address (all or nothing).
pub async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ServeError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves connections on `listeners` until `stop` turns true, then lets
/// in-flight requests finish for at most `drain_timeout`.
pub async fn run(
    gateway: Arc<Gateway>,
    listeners: Vec<TcpListener>,
    mut stop: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let header_read_timeout = gateway.config().server.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    hyper_limits(&mut builder, &gateway.config().server.head_limits);

    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(64);
    let accept_tasks: Vec<_> = listeners
        .into_iter()
        .map(|listener| tokio::spawn(accept(listener, conn_tx.clone())))
        .collect();
    drop(conn_tx);

    loop {
        tokio::select! {
            accepted = conn_rx.recv() => {
                let Some((stream, remote)) = accepted else { break };
                serve_connection(&gateway, &builder, &graceful, stream, remote, header_read_timeout);
            }
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    for task in accept_tasks {
        task.abort();
    }
    info!(
        connections = graceful.count(),
        "no longer accepting; draining in-flight requests"
    );
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            ?drain_timeout,
            "requests still running after shutdown_timeout; stopping anyway"
        );
    }
}

/// hyper's head limits, made looser than ours so that ours answer:
/// - HTTP/1 header count (hyper: 100, then 431): `max_headers` exactly (the
///   guard lets no more through); it also bounds chunked trailers.
/// - HTTP/1 read buffer (hyper: ~400 KiB, then 431): room for a head of
///   `max_request_head` and the body bytes read with it.
/// - HTTP/2 header list (hyper: 16 KiB, then 431 from h2): an HTTP/2 list
///   counts 32 bytes more per field than HTTP/1 lines do, so `max_request_head`
///   plus that for every field allowed; `check_request` then applies ours.
///
/// Left as hyper has them: the request target (65 534 bytes, 414; our
/// `max_uri_length` may not go above it), chunked trailers (16 KiB) and
/// chunk extensions (16 KiB per body).
fn hyper_limits(builder: &mut auto::Builder<TokioExecutor>, limits: &HeadLimits) {
    builder
        .http1()
        .max_headers(limits.max_headers)
        .max_buf_size(MAX_BUF_SIZE.max(limits.max_request_head.saturating_add(64 * 1024)));
    let per_field = 32 + 32;
    let list = limits.max_request_head.saturating_add(
        limits
            .max_headers
            .saturating_add(8)
            .saturating_mul(per_field),
    );
    builder
        .http2()
        .max_header_list_size(u32::try_from(list).unwrap_or(u32::MAX));
}

/// Accepts connections on one listener and hands them to the serving loop.
async fn accept(
    listener: TcpListener,
    tx: tokio::sync::mpsc::Sender<(tokio::net::TcpStream, SocketAddr)>,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "listening");
    }
    loop {
        match listener.accept().await {
            Ok(accepted) => {
                if tx.send(accepted).await.is_err() {
                    return;
                }
            }
            // Usually EMFILE: back off rather than spin.
            Err(e) => {
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one client connection in its own task, behind the framing guard,
/// watched by the graceful drain.
fn serve_connection(
    gateway: &Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    header_read_timeout: Duration,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let limits = gateway.config().server.head_limits;
    let send_timeout = gateway.config().server.send_timeout;
    let gateway = gateway.clone();
    let peer = Arc::new(Peer::new(remote, local));
    let refusals = Arc::new(framing::Refusals::default());
    let io = framing::Guarded::new(stream, header_read_timeout, limits, refusals.clone());
    let io = SendTimeout::new(io, send_timeout);
    // hyper hands over the connection's requests in order: this counts them,
    // so that a head the guard refused is recognised by its position.
    let requests = Arc::new(AtomicU64::new(0));
    let service = service_fn(move |mut req| {
        let request = requests.fetch_add(1, Ordering::Relaxed);
        if let Some(refusal) = refusals.take(request) {
            req.extensions_mut().insert(refusal);
        }
        let gateway = gateway.clone();
        let peer = peer.clone();
        let span = info_span!("request", method = %req.method(), uri = %req.uri(), %remote);
        async move { Ok::<_, Infallible>(gateway.handle(req, &peer).await) }.instrument(span)
    });
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(%remote, error = %e, "connection ended with an error");
        }
    });
}
