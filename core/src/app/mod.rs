//! Apps: each `[[app]]` with what runs it and the plugins it has.
//!
//! An [`App`] holds its settings, its runner (a [`Pool`] of FastCGI
//! processes, or a [`CgiApp`] that starts a process per request) and its
//! plugin chain. [`App::run`] takes one request whose body is already
//! buffered and the script the router chose, builds the CGI parameters,
//! lets the env injectors (the server's, then the app's) add to them, runs the request, and applies
//! the app's response filters: it answers with a response or a CGI local
//! redirect, or fails with an [`AppError`] naming the app and the pid.
//!
//! [`Apps`] is the set of apps keyed by name. This module does not route
//! (the HTTP side asks the router, and sends a local redirect round
//! again), knows nothing of the HTTP connection, and owns no process
//! itself: pools and the CGI runner do.

mod error;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, Method, Request, Response, Uri, Version};

pub use error::{AppError, FailureCause};

use crate::body::{RequestBody, ResponseBody};
use crate::cgi::ScriptTarget;
use crate::cgi::answer::Answer;
use crate::cgi::params::{self, RequestInfo};
use crate::cgi::response::ResponseKind;
use crate::cgi::runner::CgiApp;
use crate::config::{AppSettings, ServerSettings};
use crate::plugin::{Chain, FilterParams, Flow, Plugins, RequestView, Where};
use crate::pool::Pool;
use crate::pool::exchange::{self, ExchangeLimits};

/// `SERVER_SOFTWARE`.
pub const SERVER_SOFTWARE: &str = concat!("fastgate/", env!("CARGO_PKG_VERSION"));

/// The two ends of a client connection, with their text forms made once
/// per connection (plugins see them as text).
#[derive(Debug)]
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Shared: each request's status entry points at it, not a copy.
    pub remote_text: Arc<str>,
    pub local_text: String,
}

impl Peer {
    pub fn new(remote: SocketAddr, local: SocketAddr) -> Peer {
        Peer {
            remote,
            local,
            remote_text: Arc::from(remote.to_string()),
            local_text: local.to_string(),
        }
    }
}

/// What runs an app's requests; shared by the old and the new app when
/// a reload keeps it.
#[derive(Debug, Clone)]
enum Runner {
    /// A pool of FastCGI processes, each serving one request at a time.
    Pool(Pool),
    /// RFC 3875 CGI: a process per request.
    Cgi(Arc<CgiApp>),
}

/// One app: its settings, its runner and its plugins.
#[derive(Debug)]
pub struct App {
    name: Arc<str>,
    config: AppSettings,
    runner: Runner,
    plugins: Chain,
    /// The env injectors of its requests: the server's (`[server]
    /// plugins`), then its own.
    injectors: Chain,
    /// The exchange limits of a pool app, made once.
    limits: ExchangeLimits,
    /// `[server] max_response_header_size`, which the CGI runner was made with.
    max_header_size: usize,
}

/// One request as an app runs it: the head (after any local redirect) and
/// the buffered body.
#[derive(Debug, Clone, Copy)]
pub struct AppRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    /// The URI's path as the router mapped it (decoded, normalised).
    pub path: &'a str,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub peer: &'a Peer,
    pub body: &'a Arc<RequestBody>,
    /// What the request filters gave for the app (`continue-with`).
    pub filter_params: Option<&'a FilterParams>,
}

/// How an app answered.
// Moved once per request: boxing the response would cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome {
    /// A response for the client (the app's response filters applied).
    Response {
        response: Response<ResponseBody>,
        pid: u32,
    },
    /// A CGI local redirect (RFC 3875 §6.2.2): serve `location` instead, as
    /// a fresh GET.
    LocalRedirect { location: String, pid: u32 },
}

impl App {
    /// The app of `config`, with the runner it asks for; nothing starts yet.
    /// `server_plugins` are `[server] plugins`: their env injectors run for
    /// this app's requests too, before its own. On a reload, `previous` is
    /// the app of the same name in the running configuration: its runner
    /// (and so its processes) is kept when nothing that shapes the
    /// processes changed ([`same_processes`]).
    pub fn new(
        config: AppSettings,
        runtime_dir: &Path,
        max_header_size: usize,
        plugins: &Plugins,
        server_plugins: &[String],
        previous: Option<&App>,
    ) -> App {
        let kept = previous.filter(|old| {
            old.max_header_size == max_header_size && same_processes(&old.config, &config)
        });
        let runner = match (kept, &config.cgi) {
            (Some(old), _) => old.runner.clone(),
            (None, Some(cgi)) => Runner::Cgi(Arc::new(CgiApp::new(&config, cgi, max_header_size))),
            (None, None) => Runner::Pool(Pool::new(&config, runtime_dir)),
        };
        App {
            name: Arc::from(config.name.as_str()),
            limits: ExchangeLimits::of(&config, max_header_size),
            plugins: plugins.chain(&config.plugins),
            injectors: injectors(plugins, server_plugins, &config.plugins),
            runner,
            config,
            max_header_size,
        }
    }

    pub fn settings(&self) -> &AppSettings {
        &self.config
    }

    /// The app's pool (`None` for a CGI app).
    pub fn pool(&self) -> Option<&Pool> {
        match &self.runner {
            Runner::Pool(pool) => Some(pool),
            Runner::Cgi(_) => None,
        }
    }

    /// Whether this app runs on the very runner of `other` (a reload kept
    /// its processes).
    pub fn shares_runner(&self, other: &App) -> bool {
        match (&self.runner, &other.runner) {
            (Runner::Pool(a), Runner::Pool(b)) => a.same(b),
            (Runner::Cgi(a), Runner::Cgi(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether the app has request filters (which may rewrite the path).
    pub fn has_request_filters(&self) -> bool {
        self.plugins.has_request_filters()
    }

    /// Runs the app's request filters (before the body is read): a filter
    /// may rewrite the request or answer it.
    pub fn filter<B>(&self, request: &mut Request<B>, peer: &Peer) -> Result<Flow, AppError> {
        if !self.plugins.has_request_filters() {
            return Ok(Flow::Continue);
        }
        self.plugins
            .on_request(request, &peer.remote_text, &peer.local_text, &self.name)
            .map_err(|e| AppError::plugin(&self.name, e))
    }

    /// Runs one request on `target`: CGI parameters, env injection, the
    /// runner, and the response filters.
    pub async fn run(
        &self,
        request: &AppRequest<'_>,
        target: &ScriptTarget,
    ) -> Result<Outcome, AppError> {
        let params = self.params(request, target)?;
        let uri = request.uri.to_string();
        let answer = match &self.runner {
            Runner::Cgi(cgi) => cgi
                .run(&target.script_filename, params, request.body.clone(), &uri)
                .await
                .map_err(|e| AppError::answer(&self.name, e))?,
            Runner::Pool(pool) => exchange::forward(
                pool,
                params,
                request.body.clone(),
                Arc::from(uri),
                exchange::Caller {
                    method: request.method.clone(),
                    client: request.peer.remote_text.clone(),
                },
                self.limits,
            )
            .await
            .map_err(|e| AppError::exchange(&self.name, e))?,
        };
        self.respond(answer)
    }

    /// The request's CGI/1.1 variables, with the app's `[app.params]` and
    /// what its env injectors add.
    fn params(
        &self,
        request: &AppRequest<'_>,
        target: &ScriptTarget,
    ) -> Result<params::Params, AppError> {
        let info = RequestInfo {
            method: request.method,
            uri: request.uri,
            version: request.version,
            headers: request.headers,
            remote_addr: request.peer.remote,
            local_addr: request.peer.local,
            content_length: request.body.len(),
            https: false,
            server_software: SERVER_SOFTWARE,
        };
        let mut params = params::build(&info, target, &self.config.params);
        if let Some(given) = request.filter_params {
            params::add_from_filters(&mut params, given.iter());
        }
        if self.injectors.has_env() {
            let view = RequestView::new(
                request.method,
                request.uri,
                request.path,
                request.version,
                request.headers,
                Where {
                    client_addr: &request.peer.remote_text,
                    server_addr: &request.peer.local_text,
                    app: &self.name,
                },
            );
            self.injectors
                .inject_env(&view, &mut params)
                .map_err(|e| AppError::plugin(&self.name, e))?;
        }
        Ok(params)
    }

    /// The client's response for an answer, or the local redirect it asks for.
    fn respond(&self, answer: Answer) -> Result<Outcome, AppError> {
        let Answer { head, pid, body } = answer;
        if let ResponseKind::LocalRedirect(location) = head.kind {
            return Ok(Outcome::LocalRedirect { location, pid });
        }
        let mut response = Response::new(ResponseBody::stream(body));
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        if self.plugins.has_response_filters() {
            self.plugins
                .on_response(response.status(), response.headers_mut())
                .map_err(|e| AppError::plugin(&self.name, e).with_pid(pid))?;
        }
        Ok(Outcome::Response { response, pid })
    }
}

/// The chain that injects parameters into an app's requests: server-wide
/// plugins first (they run for every request that reaches an app; before
/// the mapping there is no app and no parameter yet), then the app's own,
/// each plugin once.
fn injectors(plugins: &Plugins, server: &[String], app: &[String]) -> Chain {
    let mut names: Vec<String> = Vec::with_capacity(server.len() + app.len());
    for name in server.iter().chain(app) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    plugins.chain(&names)
}

/// Whether two settings of an app ask for the same processes: everything
/// but what only routes requests to it or shapes each request's variables
/// (`handles`, `verbs`, `mount`, `resource_type`, `fallback`, `params`,
/// `plugins`, static folders; where a value came from). A reload keeps the
/// processes of an app whose settings differ only there.
pub fn same_processes(old: &AppSettings, new: &AppSettings) -> bool {
    if old == new {
        return true;
    }
    let mut routed_like_old = new.clone();
    routed_like_old.handles = old.handles.clone();
    routed_like_old.verbs = old.verbs.clone();
    routed_like_old.mount = old.mount.clone();
    routed_like_old.resource_type = old.resource_type;
    routed_like_old.fallback = old.fallback.clone();
    routed_like_old.params = old.params.clone();
    routed_like_old.plugins = old.plugins.clone();
    routed_like_old.static_dirs = old.static_dirs.clone();
    routed_like_old.origins = old.origins.clone();
    routed_like_old.command_line = old.command_line;
    *old == routed_like_old
}

/// Every app of the gateway, keyed by name.
#[derive(Debug, Default)]
pub struct Apps {
    by_name: BTreeMap<Arc<str>, App>,
}

impl Apps {
    /// The apps, as resolved with their launchers; their pools not
    /// started yet. On a reload, `previous` are the running apps: an app
    /// whose processes would be the same keeps them.
    pub fn new(
        server: &ServerSettings,
        apps: Vec<AppSettings>,
        runtime_dir: &Path,
        plugins: &Plugins,
        previous: Option<&Apps>,
    ) -> Apps {
        let max_header_size = server.max_response_header_size;
        let by_name = apps
            .into_iter()
            .map(|app| {
                let old = previous.and_then(|apps| apps.get(&app.name));
                let app = App::new(
                    app,
                    runtime_dir,
                    max_header_size,
                    plugins,
                    &server.plugins,
                    old,
                );
                (app.name.clone(), app)
            })
            .collect();
        Apps { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&App> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &App> {
        self.by_name.values()
    }

    /// Each app with its pool (`None` for a CGI app), in name order.
    pub fn with_pools(&self) -> impl Iterator<Item = (&Arc<str>, Option<&Pool>)> {
        self.iter().map(|app| (app.name(), app.pool()))
    }

    /// The pools among the apps' runners.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.iter().filter_map(App::pool)
    }

    /// Starts every pool's `min_instances` and background tasks.
    pub fn start(&self) {
        for pool in self.pools() {
            pool.start();
        }
    }

    /// Stops every pool's processes and waits until they are reaped.
    pub async fn shutdown(&self) {
        for pool in self.pools() {
            pool.shutdown().await;
        }
    }
}
