//! Listeners: binding the listen addresses, accepting connections and
//! serving each with hyper (HTTP/1.1 keep-alive and h2c) behind the framing
//! guard, and the graceful drain on shutdown.
//!
//! hyper has head limits of its own. They are set here so that they never
//! answer before ours do ([`hyper_limits`]): our check names the key that
//! raises a limit, hyper's does not.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, debug_span, error, info, warn};

use super::Gateway;
use super::connections::Open;
use super::framing::{self, Protocol};
use super::send_timeout::SendTimeout;
use crate::app::Peer;
use crate::config::{HeadLimits, ServerSettings};

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

/// A connection accepted on one of the listeners.
type Accepted = (tokio::net::TcpStream, SocketAddr);

/// The public listeners, each accepting on a task of its own into one
/// queue that [`run`] serves. A reload changes the set: it binds the new
/// addresses first (all or nothing) and then closes the ones no longer
/// configured, so that an address kept never stops accepting.
pub struct Listeners {
    tx: mpsc::Sender<Accepted>,
    /// By the address as configured (`:0` stays `:0`), with where it is
    /// actually bound.
    running: Mutex<Vec<Running>>,
}

struct Running {
    configured: SocketAddr,
    bound: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// Addresses bound for a reload, not accepting yet.
pub struct Bound(Vec<(SocketAddr, TcpListener)>);

impl Listeners {
    /// Binds every address of `addrs` (all or nothing); the connections
    /// come out of the receiver, for [`run`].
    pub async fn bind(
        addrs: &[SocketAddr],
    ) -> Result<(Arc<Listeners>, mpsc::Receiver<Accepted>), ServeError> {
        let (tx, rx) = mpsc::channel(64);
        let listeners = Arc::new(Listeners {
            tx,
            running: Mutex::new(Vec::new()),
        });
        let bound = listeners.bind_new(addrs).await?;
        listeners.switch_to(addrs, bound);
        Ok((listeners, rx))
    }

    /// Binds those of `addrs` that are not listened on yet (all or
    /// nothing); nothing accepts on them until [`switch_to`](Self::switch_to).
    pub async fn bind_new(&self, addrs: &[SocketAddr]) -> Result<Bound, ServeError> {
        let have: Vec<SocketAddr> = self.lock().iter().map(|r| r.configured).collect();
        let mut bound = Vec::new();
        for &addr in addrs.iter().filter(|a| !have.contains(a)) {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            bound.push((addr, listener));
        }
        Ok(Bound(bound))
    }

    /// Starts accepting on `bound`, then closes every listener whose
    /// address is not in `addrs`. Connections already accepted go on.
    pub fn switch_to(&self, addrs: &[SocketAddr], bound: Bound) {
        let mut running = self.lock();
        for (configured, listener) in bound.0 {
            let Ok(local) = listener.local_addr() else {
                continue;
            };
            info!(addr = %local, "listening");
            running.push(Running {
                configured,
                bound: local,
                task: tokio::spawn(accept(listener, self.tx.clone())),
            });
        }
        running.retain(|r| {
            let keep = addrs.contains(&r.configured);
            if !keep {
                info!(addr = %r.bound, "no longer listening (removed from [server] listen)");
                r.task.abort();
            }
            keep
        });
    }

    /// Where the listeners are bound.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.lock().iter().map(|r| r.bound).collect()
    }

    /// Stops accepting on every listener (the drain).
    pub fn close(&self) {
        for r in self.lock().drain(..) {
            r.task.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// hyper's settings for the connections of a site (keep-alive,
/// `header_read_timeout`, the head limits: [`hyper_limits`]), one builder
/// per protocol: the guard tells which one a connection speaks
/// ([`framing::Guarded::poll_protocol`]), so hyper never reads ahead to
/// find out. (hyper-util's detection would hand hyper the first bytes in a
/// piece of their own, and hyper then doubles its 8 KiB read buffer to fit
/// the rest of the head: 16 KiB held by every idle connection.)
pub(super) struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    pub(super) fn new(server: &ServerSettings) -> Builders {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(server.header_read_timeout)
            .keep_alive(true);
        hyper_limits(&mut builder, &server.head_limits);
        Builders {
            http1: builder.clone().http1_only(),
            http2: builder.http2_only(),
        }
    }

    fn of(&self, protocol: Protocol) -> &auto::Builder<TokioExecutor> {
        match protocol {
            Protocol::Http1 => &self.http1,
            Protocol::Http2 => &self.http2,
        }
    }
}

/// Serves the connections the listeners accept until `stop` turns true,
/// then closes the listeners and lets in-flight requests finish for at
/// most `drain_timeout`. Each connection is served with the site current
/// when it was accepted; each request with the site current when it came.
pub async fn run(
    gateway: Arc<Gateway>,
    listeners: Arc<Listeners>,
    mut accepted: mpsc::Receiver<Accepted>,
    mut stop: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    // For connections that have not sent a byte yet (hyper's drain does not
    // see them): they close when it turns true.
    let (drain, draining) = watch::channel(false);
    log_connection_limit(&gateway);
    let connections = gateway.connections().clone();
    loop {
        tokio::select! {
            next = accepted.recv() => {
                let Some((stream, remote)) = next else { break };
                // The limit of the site current now (a reload may change it).
                let max = gateway.site().connection_limit.max;
                match connections.try_open(max) {
                    Some(open) => serve_connection(&gateway, &graceful, &draining, stream, remote, open),
                    None => connections.refuse(stream, max),
                }
            }
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    listeners.close();
    let _ = drain.send(true);
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

/// Says at start which connection limit is in force, and warns when the
/// open-file limit cannot carry a limit the file sets.
fn log_connection_limit(gateway: &Gateway) {
    let limit = gateway.site().connection_limit;
    info!("{}", limit.describe());
    if let Some(budget) = limit.over_budget() {
        warn!(
            max_connections = limit.max,
            budget,
            "[server] max_connections is more than the open-file limit carries (2 descriptors a connection, 256 kept for the rest): past {budget} connections accept fails with EMFILE; raise the limit (systemd LimitNOFILE=, ulimit -n) or lower max_connections"
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
/// watched by the graceful drain; `open` counts it until it ends.
fn serve_connection(
    gateway: &Arc<Gateway>,
    graceful: &GracefulShutdown,
    draining: &watch::Receiver<bool>,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    open: Open,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let site = gateway.site();
    let server = &site.config().server;
    let (limits, send_timeout, header_read_timeout) = (
        server.head_limits,
        server.send_timeout,
        server.header_read_timeout,
    );
    let gateway = gateway.clone();
    let peer = Arc::new(Peer::new(remote, local));
    let refusals = Arc::new(framing::Refusals::default());
    let mut io = framing::Guarded::new(stream, header_read_timeout, limits, refusals.clone());
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
        // At debug level only: the log's subscriber formats a span's fields
        // when the span is made, a tenth of what a request cost the gateway
        // in instructions; the lines a request logs at info and above name
        // its method, URI and client themselves.
        let span = debug_span!("request", method = %req.method(), uri = %req.uri(), %remote);
        // Boxed: hyper keeps a slot of the service future's size for the
        // whole connection (allocated once, reused), and a request's future
        // is some 4 KiB; boxed, the slot is a pointer and the 4 KiB is
        // freed when the response is done, not held by an idle connection.
        Box::pin(
            async move { Ok::<_, Infallible>(gateway.handle(req, &peer).await) }.instrument(span),
        )
    });
    let builders = site.connections.clone();
    let watcher = graceful.watcher();
    let mut draining = draining.clone();
    tokio::spawn(async move {
        // Until its first bytes come, a connection holds no hyper state.
        // They must come within `header_read_timeout`, as the rest of the
        // head must after them (nginx's `client_header_timeout` also runs
        // from the accept): a connection that never sends would otherwise
        // hold one of `max_connections` until the gateway stops.
        let protocol = tokio::select! {
            protocol = std::future::poll_fn(|cx| io.poll_protocol(cx)) => protocol,
            _ = draining.wait_for(|draining| *draining) => Ok(None),
            _ = tokio::time::sleep(header_read_timeout) => {
                debug!(%remote, "client sent nothing within header_read_timeout; closing");
                Ok(None)
            }
        };
        let result = match protocol {
            Ok(Some(protocol)) => {
                let io = TokioIo::new(SendTimeout::new(io, send_timeout));
                let conn = builders.of(protocol).serve_connection(io, service);
                // Boxed: a connection's state (hyper's, for either protocol)
                // is allocated once its first bytes are in, so a task
                // waiting for them is small.
                Box::pin(watcher.watch(conn)).await
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            debug!(%remote, error = %e, "connection ended with an error");
        }
        // Counted from accept to here.
        drop(open);
    });
}
