//! The HTTP front: listeners, the per-request service, static files, and
//! the mapping of errors to statuses.
//!
//! A request goes: framing checks and head limits (on the wire, before
//! hyper) → the server's request filters →
//! [`Router`] → a static file, or an [`App`](crate::app::App), which runs
//! it and answers with a response or a CGI local redirect; a local redirect
//! goes round again from the router. Errors from every layer come back as
//! [`GatewayError`] and become a response in one place. This module owns
//! no process and no FastCGI detail.

mod connections;
mod error;
pub(crate) mod framing;
mod limits;
mod listen;
mod send_timeout;
mod static_files;

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;
use tracing::{debug, info, warn};

pub use connections::{ConnectionLimit, Connections};
pub use error::GatewayError;
pub use listen::{Listeners, ServeError, run};

use crate::access_log::AccessLog;
use crate::app::{App, AppRequest, Apps, Outcome, Peer};
use crate::body::{BodyLimits, RequestBody, ResponseBody};
use crate::cgi::ScriptTarget;
use crate::config::Config;
use crate::error::chain;
use crate::metrics::Metrics;
use crate::plugin::{Chain, FilterParams, Flow, Plugins};
use crate::route::{Route, Router, normalize_path};

/// Most CGI local redirects followed for one request.
const MAX_LOCAL_REDIRECTS: usize = 10;

/// What a request is served with, made from one configuration: a reload
/// makes a new one and swaps it in (`Gateway::replace`); a request keeps
/// the one it started with until it is done.
pub struct Site {
    config: Arc<Config>,
    router: Router,
    apps: Arc<Apps>,
    access_log: AccessLog,
    /// `[server] plugins`: every request, before the mapping.
    server_plugins: Chain,
    /// hyper's settings for new connections (timeouts, head limits).
    connections: Arc<listen::Builders>,
    /// `[server] max_connections`, resolved against the open-file limit.
    connection_limit: ConnectionLimit,
}

impl Site {
    pub fn new(
        config: Arc<Config>,
        router: Router,
        apps: Arc<Apps>,
        access_log: AccessLog,
        plugins: &Plugins,
    ) -> Site {
        Site {
            router,
            server_plugins: plugins.chain(&config.server.plugins),
            connections: Arc::new(listen::Builders::new(&config.server)),
            connection_limit: ConnectionLimit::of_this_process(config.server.max_connections),
            config,
            apps,
            access_log,
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn apps(&self) -> &Arc<Apps> {
        &self.apps
    }
}

/// Everything a request needs, shared by all connections: the current
/// [`Site`] and the metrics (which outlive reloads).
pub struct Gateway {
    site: ArcSwap<Site>,
    metrics: Arc<Metrics>,
    /// The client connections open, and those refused (`max_connections`).
    connections: Arc<Connections>,
}

/// Which app (and which of its processes) a request went to, for the
/// access log.
type ServedBy = Option<(Arc<str>, Option<u32>)>;

/// A response, and which app served it.
struct Served {
    response: Response<ResponseBody>,
    by: ServedBy,
}

impl Served {
    fn by_gateway(response: Response<ResponseBody>) -> Served {
        Served { response, by: None }
    }
}

impl Gateway {
    pub fn new(site: Site, metrics: Arc<Metrics>) -> Gateway {
        Gateway {
            site: ArcSwap::from_pointee(site),
            metrics,
            connections: Arc::default(),
        }
    }

    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// The site new requests are served with.
    pub fn site(&self) -> Arc<Site> {
        self.site.load_full()
    }

    /// Serves new requests with `site` from now on; requests in flight
    /// finish with the one they started with. Returns that one.
    pub fn replace(&self, site: Site) -> Arc<Site> {
        self.site.swap(Arc::new(site))
    }

    /// Serves one request; never fails (errors become responses).
    async fn handle(&self, req: Request<Incoming>, peer: &Peer) -> Response<ResponseBody> {
        let site = self.site.load_full();
        let started = std::time::Instant::now();
        let mut entry =
            site.access_log
                .entry(peer.remote.ip(), req.method(), req.uri(), req.version());
        let uri = req.uri().clone();
        let method = req.method().clone();
        // Who may read an error's detail: the one rule, applied to every
        // error page this request may get.
        let detailed = site.config.server.error_details.shown_to(peer.remote.ip());
        let Served {
            mut response,
            by: served_by,
        } = match site.respond(req, peer).await {
            Ok(served) => served,
            Err(e) => {
                let status = e.status();
                if status.is_server_error() {
                    warn!(status = status.as_u16(), %method, client = %peer.remote, uri = %uri, error = %chain(&e), "request failed");
                } else {
                    info!(status = status.as_u16(), %method, client = %peer.remote, uri = %uri, error = %chain(&e), "request refused");
                }
                if let Some((app, cause)) = e.app_failure() {
                    self.metrics.failed(app, cause);
                }
                Served {
                    response: e.to_response(detailed),
                    by: e.app().map(|app| (Arc::from(app), e.pid())),
                }
            }
        };
        if site.server_plugins.has_response_filters()
            && let Err(e) = site
                .server_plugins
                .on_response(response.status(), response.headers_mut())
        {
            warn!(%method, client = %peer.remote, uri = %uri, error = %chain(&e), "response filter failed");
            response = GatewayError::Plugin(e).to_response(detailed);
        }
        self.metrics.observe(
            served_by.as_ref().map(|(app, _)| app.as_ref()),
            response.status(),
            started.elapsed(),
        );
        if let Some(mut entry) = entry.take() {
            entry.set_status(response.status());
            if let Some((app, pid)) = served_by {
                entry.set_app(app, pid);
            }
            response.body_mut().set_access_entry(entry);
        }
        response
    }
}

impl Site {
    /// The request phases up to the route: framing checks, the server's
    /// filters, the mapping, then the app's filters.
    async fn respond(
        &self,
        mut req: Request<Incoming>,
        peer: &Peer,
    ) -> Result<Served, GatewayError> {
        framing::check_request(&mut req, &self.config.server.head_limits)?;
        if self.server_plugins.has_request_filters()
            && let Flow::Respond(response) =
                self.server_plugins
                    .on_request(&mut req, &peer.remote_text, &peer.local_text, "")?
        {
            return Ok(Served::by_gateway(*response));
        }
        // Decoded and normalised once: the router maps it, the app gets it.
        let path = normalize_path(req.uri().path())?;
        let route = self
            .router
            .route_normalized(req.method(), req.uri().path(), &path);
        let Route::App { app, target } = route else {
            return self
                .serve_route(route, req.method(), req.uri(), req.headers())
                .await
                .map(Served::by_gateway);
        };
        let app = self.app(&app)?;
        if let Flow::Respond(response) = app.filter(&mut req, peer)? {
            return Ok(Served {
                response: *response,
                by: Some((app.name().clone(), None)),
            });
        }
        // The app's own filters may have rewritten the path.
        let path = if app.has_request_filters() {
            normalize_path(req.uri().path())?
        } else {
            path
        };
        self.serve_app(req, app, target, path, peer).await
    }

    /// Runs a request through an app, following CGI local redirects: the
    /// body is read once; a redirect is routed again as a GET without it.
    async fn serve_app(
        &self,
        req: Request<Incoming>,
        mut app: &App,
        mut target: ScriptTarget,
        mut path: String,
        peer: &Peer,
    ) -> Result<Served, GatewayError> {
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
            let request = AppRequest {
                method: &method,
                uri: &uri,
                path: &path,
                version: parts.version,
                headers: &parts.headers,
                peer,
                body: &body,
                filter_params: parts.extensions.get::<FilterParams>(),
            };
            let (location, pid) = match app.run(&request, &target).await? {
                Outcome::Response { response, pid } => {
                    return Ok(Served {
                        response,
                        by: Some((app.name().clone(), Some(pid))),
                    });
                }
                Outcome::LocalRedirect { location, pid } => (location, pid),
            };
            // RFC 3875 §6.2.2: serve the new location as a fresh GET.
            debug!(app = %app.name(), pid, location = %location, "CGI local redirect");
            uri = location
                .parse::<Uri>()
                .map_err(|_| GatewayError::BadRedirect {
                    app: app.name().clone(),
                    location: location.clone(),
                })?;
            method = Method::GET;
            body = Arc::new(RequestBody::Empty);
            path = normalize_path(uri.path())?;
            match self.router.route_normalized(&method, uri.path(), &path) {
                Route::App {
                    app: next,
                    target: next_target,
                } => {
                    app = self.app(&next)?;
                    target = next_target;
                }
                route => {
                    let served_by = Some((app.name().clone(), Some(pid)));
                    let response = self.serve_route(route, &method, &uri, &parts.headers).await;
                    return response.map(|response| Served {
                        response,
                        by: served_by,
                    });
                }
            }
        }
        Err(GatewayError::RedirectLoop(MAX_LOCAL_REDIRECTS))
    }

    /// The answer for every route but an app's.
    async fn serve_route(
        &self,
        route: Route,
        method: &Method,
        uri: &Uri,
        headers: &http::HeaderMap,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        match route {
            Route::Static {
                file,
                cache_control,
            } => {
                let io = self.config.server.static_file_io;
                static_files::serve(method, uri, headers, &file, cache_control.as_ref(), io).await
            }
            Route::ScriptInStaticFolder { app, url } => {
                Err(GatewayError::ScriptInStaticFolder { app, url })
            }
            Route::AddSlash { location } => Ok(static_files::redirect_with_query(location, uri)),
            Route::NotFound => Err(GatewayError::NotFound),
            Route::MethodNotAllowed { allow } => Err(GatewayError::MethodNotAllowed { allow }),
            // Callers run apps themselves; this is never reached.
            Route::App { .. } => Err(GatewayError::NotFound),
        }
    }

    /// The app the router named (the router is built from the same apps,
    /// so it is always there).
    fn app(&self, name: &str) -> Result<&App, GatewayError> {
        self.apps.get(name).ok_or(GatewayError::NotFound)
    }
}
