//! The HTTP front: listeners, the per-request path through the gateway,
//! static files, and the graceful drain on shutdown.
//!
//! A request goes: framing checks → [`Router`] → a static file, or the
//! app's pool through [`exchange::forward`]; a CGI local redirect sends it
//! round again. Errors from every layer come back as [`GatewayError`] and
//! become a response in one place. This module owns no process and no
//! FastCGI detail.

mod framing;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::access_log::AccessLog;
use crate::body::{BodyLimits, RequestBody, ResponseBody};
use crate::cgi::params::{self, RequestInfo};
use crate::cgi::response::ResponseKind;
use crate::cgi::runner::CgiApp;
use crate::config::Config;
use crate::error::{GatewayError, chain};
use crate::plugin::{Chain, Flow, Plugins, RequestView};
use crate::pool::Pool;
use crate::cgi::ScriptTarget;
use crate::route::{Route, Router};
use crate::pool::exchange::{self, Limits};

/// `SERVER_SOFTWARE`.
pub const SERVER_SOFTWARE: &str = concat!("fastgate/", env!("CARGO_PKG_VERSION"));
/// Most CGI local redirects followed for one request.
const MAX_LOCAL_REDIRECTS: usize = 10;

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    config: Arc<Config>,
    router: Router,
    /// What serves each app (same order as `config.apps`).
    runners: Vec<AppRunner>,
    access_log: AccessLog,
    /// `[server] plugins`: every request, before the mapping.
    server_plugins: Chain,
    /// Each app's `plugins` (same order as `config.apps`).
    app_plugins: Vec<Chain>,
}

/// What serves an app's requests.
pub enum AppRunner {
    /// A pool of FastCGI processes, each serving one request at a time.
    Pool(Pool),
    /// RFC 3875 CGI: a process per request.
    Cgi(CgiApp),
}

impl AppRunner {
    pub fn name(&self) -> &str {
        match self {
            AppRunner::Pool(pool) => pool.name(),
            AppRunner::Cgi(cgi) => cgi.name(),
        }
    }
}

impl Gateway {
    pub fn new(
        config: Arc<Config>,
        runners: Vec<AppRunner>,
        access_log: AccessLog,
        plugins: &Plugins,
    ) -> Gateway {
        let router = Router::new(&config.server, &config.apps);
        let server_plugins = plugins.chain(&config.server.plugins);
        let app_plugins = config
            .apps
            .iter()
            .map(|a| plugins.chain(&a.plugins))
            .collect();
        Gateway {
            config,
            router,
            runners,
            access_log,
            server_plugins,
            app_plugins,
        }
    }

    /// Serves one request; never fails (errors become responses).
    async fn handle(&self, req: Request<Incoming>, peer: &Peer) -> Response<ResponseBody> {
        let remote = peer.remote;
        let mut entry = self
            .access_log
            .entry(remote.ip(), req.method(), req.uri(), req.version());
        let mut served_by = None;
        let uri = req.uri().clone();
        let mut response = match self.respond(req, peer, &mut served_by).await {
            Ok(response) => response,
            Err(e) => {
                let status = e.status();
                if status.is_server_error() {
                    warn!(status = status.as_u16(), uri = %uri, error = %chain(&e), "request failed");
                } else {
                    info!(status = status.as_u16(), uri = %uri, error = %chain(&e), "request refused");
                }
                match &mut served_by {
                    Some((_, pid @ None)) => *pid = e.pid(),
                    Some(_) => {}
                    None => served_by = e.app().map(|app| (Arc::from(app), e.pid())),
                }
                e.to_response()
            }
        };
        if self.server_plugins.has_response_filters()
            && let Err(e) = self
                .server_plugins
                .on_response(response.status(), response.headers_mut())
        {
            warn!(uri = %uri, error = %chain(&e), "response filter failed");
            response = GatewayError::Plugin(e).to_response();
        }
        if let Some(mut entry) = entry.take() {
            entry.set_status(response.status());
            if let Some((app, pid)) = served_by {
                entry.set_app(app, pid);
            }
            response.body_mut().set_access_entry(entry);
        }
        response
    }

    async fn respond(
        &self,
        req: Request<Incoming>,
        peer: &Peer,
        served_by: &mut Option<(Arc<str>, Option<u32>)>,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        framing::check_request(&req)?;
        let mut req = req;
        if self.server_plugins.has_request_filters()
            && let Flow::Respond(response) =
                self.server_plugins
                    .on_request(&mut req, &peer.remote_text, &peer.local_text, "")?
        {
            return Ok(*response);
        }
        let route = self.router.route(req.method(), req.uri().path())?;
        match route {
            Route::Static { file } => {
                self.serve_static(req.method(), req.uri(), req.headers(), &file)
                    .await
            }
            Route::AddSlash { location } => Ok(redirect_with_query(location, req.uri())),
            Route::NotFound => Err(GatewayError::NotFound),
            Route::MethodNotAllowed { allow } => Err(GatewayError::MethodNotAllowed { allow }),
            Route::App { app, target } => {
                let plugins = &self.app_plugins[app];
                if plugins.has_request_filters() {
                    *served_by = Some((Arc::from(self.runners[app].name()), None));
                    match plugins.on_request(
                        &mut req,
                        &peer.remote_text,
                        &peer.local_text,
                        self.runners[app].name(),
                    )? {
                        Flow::Respond(response) => return Ok(*response),
                        Flow::Continue => {}
                    }
                }
                self.serve_app(req, app, target, peer, served_by).await
            }
        }
    }

    /// Runs a request through an app, following CGI local redirects.
    async fn serve_app(
        &self,
        req: Request<Incoming>,
        mut app: usize,
        mut target: ScriptTarget,
        peer: &Peer,
        served_by: &mut Option<(Arc<str>, Option<u32>)>,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        let server = &self.config.server;
        let (parts, body) = req.into_parts();
        let limits = BodyLimits {
            max_size: server.max_body_size,
            memory: server.body_buffer_size,
            read_timeout: server.body_read_timeout,
        };
        let mut body = Arc::new(RequestBody::read(body, limits).await?);
        let mut method = parts.method.clone();
        let mut uri = parts.uri.clone();
        for _ in 0..MAX_LOCAL_REDIRECTS {
            let runner = &self.runners[app];
            let name = runner.name();
            *served_by = Some((Arc::from(name), None));
            let info = RequestInfo {
                method: &method,
                uri: &uri,
                version: parts.version,
                headers: &parts.headers,
                remote_addr: peer.remote,
                local_addr: peer.local,
                content_length: body.len(),
                https: false,
                server_software: SERVER_SOFTWARE,
            };
            let mut params = params::build(&info, &target, &self.config.apps[app].params);
            let plugins = &self.app_plugins[app];
            if plugins.has_env() {
                let view = RequestView::new(
                    &method,
                    &uri,
                    parts.version,
                    &parts.headers,
                    &peer.remote_text,
                    &peer.local_text,
                    name,
                );
                plugins.inject_env(&view, &mut params)?;
            }
            let (head, pid, body_rx) = match runner {
                AppRunner::Cgi(cgi) => {
                    let r = cgi
                        .run(
                            &target.script_filename,
                            params,
                            body.clone(),
                            &uri.to_string(),
                        )
                        .await?;
                    (r.head, r.pid, r.body)
                }
                AppRunner::Pool(pool) => {
                    let limits =
                        Limits::of(&self.config.apps[app], server.max_response_header_size);
                    let r = exchange::forward(
                        pool,
                        params,
                        body.clone(),
                        Arc::from(uri.to_string()),
                        limits,
                    )
                    .await?;
                    (r.head, r.pid, r.body)
                }
            };
            *served_by = Some((Arc::from(name), Some(pid)));
            let location = match head.kind {
                ResponseKind::LocalRedirect(location) => location,
                ResponseKind::Document | ResponseKind::ClientRedirect => {
                    let mut response = Response::new(ResponseBody::stream(body_rx));
                    *response.status_mut() = head.status;
                    *response.headers_mut() = head.headers;
                    let plugins = &self.app_plugins[app];
                    if plugins.has_response_filters() {
                        plugins.on_response(response.status(), response.headers_mut())?;
                    }
                    return Ok(response);
                }
            };
            // RFC 3875 §6.2.2: serve the new location as a fresh GET.
            debug!(app = name, location = %location, "CGI local redirect");
            let bad_redirect = || GatewayError::BadRedirect {
                app: Arc::from(name),
                location: location.clone(),
            };
            uri = location.parse::<Uri>().map_err(|_| bad_redirect())?;
            method = Method::GET;
            body = Arc::new(RequestBody::Empty);
            match self.router.route(&method, uri.path())? {
                Route::App {
                    app: next,
                    target: next_target,
                } => {
                    app = next;
                    target = next_target;
                }
                Route::Static { file } => {
                    return self
                        .serve_static(&method, &uri, &parts.headers, &file)
                        .await;
                }
                Route::AddSlash { location } => return Ok(redirect_with_query(location, &uri)),
                Route::NotFound => return Err(GatewayError::NotFound),
                Route::MethodNotAllowed { allow } => {
                    return Err(GatewayError::MethodNotAllowed { allow });
                }
            }
        }
        Err(GatewayError::RedirectLoop(MAX_LOCAL_REDIRECTS))
    }

    /// Serves a file the router found (conditional requests, ranges, HEAD).
    async fn serve_static(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &http::HeaderMap,
        file: &std::path::Path,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        let static_error = |source| GatewayError::Static {
            path: uri.path().to_string(),
            source,
        };
        let handle = tokio::fs::File::open(file).await.map_err(static_error)?;
        let metadata = handle.metadata().await.map_err(static_error)?;
        let resolved = hyper_staticfile::ResolvedFile {
            handle,
            path: file.to_path_buf(),
            size: metadata.len(),
            modified: metadata.modified().ok(),
            content_type: Some(content_type(file)),
            encoding: None,
        };
        let response = hyper_staticfile::ResponseBuilder::new()
            .request_parts(method, uri, headers)
            .build(hyper_staticfile::ResolveResult::Found(resolved))
            .map_err(|e| static_error(std::io::Error::other(e)))?;
        let mut response = response.map(ResponseBody::static_file);
        if response.status() == StatusCode::OK && not_modified(headers, response.headers()) {
            // hyper-staticfile handles If-Modified-Since but not If-None-Match,
            // which takes precedence (RFC 9110 §13.2.2).
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            *response.body_mut() = ResponseBody::empty();
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        Ok(response)
    }
}

/// The two ends of a client connection, with their text forms made once
/// per connection (plugins see them as text).
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub remote_text: String,
    pub local_text: String,
}

impl Peer {
    pub fn new(remote: SocketAddr, local: SocketAddr) -> Peer {
        Peer {
            remote,
            local,
            remote_text: remote.to_string(),
            local_text: local.to_string(),
        }
    }
}

/// Whether `If-None-Match` matches the response's ETag (weak comparison).
fn not_modified(request: &http::HeaderMap, response: &http::HeaderMap) -> bool {
    let Some(etag) = response.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let weak = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || weak(tag) == weak(etag))
}

/// `Content-Type` of a static file; text types get a UTF-8 charset.
fn content_type(path: &std::path::Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    if mime.type_() == mime_guess::mime::TEXT || mime.subtype() == mime_guess::mime::JAVASCRIPT {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// A 301 to `location`, keeping the request's query string.
fn redirect_with_query(mut location: String, uri: &Uri) -> Response<ResponseBody> {
    if let Some(query) = uri.query() {
        location.push('?');
        location.push_str(query);
    }
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gateway.config.server.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);

    let gateway_header_timeout = gateway.config.server.header_read_timeout;
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(64);
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "listening");
        }
        let tx = conn_tx.clone();
        accept_tasks.push(tokio::spawn(async move {
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
        }));
    }
    drop(conn_tx);

    loop {
        tokio::select! {
            accepted = conn_rx.recv() => {
                let Some((stream, remote)) = accepted else { break };
                let local = match stream.local_addr() {
                    Ok(local) => local,
                    Err(_) => continue,
                };
                let _ = stream.set_nodelay(true);
                let gateway = gateway.clone();
                let peer = Arc::new(Peer::new(remote, local));
                let service = service_fn(move |req| {
                    let gateway = gateway.clone();
                    let peer = peer.clone();
                    let span = info_span!("request", method = %req.method(), uri = %req.uri(), %remote);
                    async move { Ok::<_, Infallible>(gateway.handle(req, &peer).await) }.instrument(span)
                });
                let io = framing::Guarded::new(stream, gateway_header_timeout);
                let conn = builder.serve_connection(TokioIo::new(io), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!(%remote, error = %e, "connection ended with an error");
                    }
                });
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
