//! The plugin host: loads plugins, runs their hooks, and turns what they
//! answer into changes to requests and responses.
//!
//! One host trait, [`Backend`], with two implementations: [`wasm`]
//! (components in wasmtime: sandboxed, deadline and memory cap per call,
//! instances pooled and discarded after any trap) and [`native`] (shared
//! libraries through the SDK's C ABI: trusted code, panics caught). The
//! types crossing the trait are the SDK's own ([`fastgate_sdk`]), so both
//! backends give the gateway identical answers for identical plugins.
//!
//! This module owns plugin loading, the per-request filter chains and the
//! validation of everything a plugin returns (statuses, header names, paths,
//! spawn specs). It does not route, spawn processes or touch sockets; a
//! plugin failure becomes a [`PluginError`], which the chain turns into a
//! 500 (`on_error = "fail-closed"`) or a logged warning (`"fail-open"`).

mod builtin;
pub mod launch;
mod native;
mod stats;
mod wasm;
pub mod wasm_cache;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastgate_sdk as sdk;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use tracing::{debug, warn};

use crate::body::ResponseBody;
use crate::cgi::params::Params;
use crate::config::{AppSettings, Config, OnError, PluginKind, PluginSettings};
use crate::error::chain;
use crate::route::normalize_path;
pub use stats::{HOOKS, HookStats, PluginStats};

/// Why a plugin could not be loaded or a hook could not run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot load {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("{path} was built for plugin ABI {found}; this gateway speaks ABI {expected} and ABI 1 (rebuild it against fastgate-sdk {sdk})", sdk = sdk::CONTRACT_VERSION)]
    AbiVersion {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("configuration refused by the plugin: {0}")]
    Init(String),
    #[error("ran past its deadline of {0:?} and was stopped")]
    Deadline(Duration),
    #[error("hit its memory limit of {0} bytes")]
    MemoryLimit(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("{0}")]
    Panic(String),
    #[error("returned an invalid answer: {0}")]
    Invalid(String),
    #[error("has no `{0}` hook (its capabilities do not include it)")]
    Missing(&'static str),
}

/// What a plugin sees of a request, borrowed from the gateway's own data:
/// each backend copies it once, straight into the form it needs (the
/// instance's memory, or the native ABI's bytes). It is the SDK's
/// `RequestHead` without the copies.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The path the router maps: decoded once and normalised
    /// (`route::normalize_path`). Filters match on this one, so that
    /// `/%61dmin`, `//admin` and `/a/../admin` are all `/admin` to them.
    pub path: &'a str,
    /// The path as the client sent it.
    pub raw_path: &'a str,
    pub query: &'a str,
    pub version: &'static str,
    pub headers: &'a HeaderMap,
    pub client_addr: &'a str,
    pub server_addr: &'a str,
    /// Empty for server-wide filters (they run before the mapping).
    pub app: &'a str,
}

/// The connection a request came on and the app it is for, as plugins see
/// them (text made once per connection).
#[derive(Debug, Clone, Copy)]
pub struct Where<'a> {
    pub client_addr: &'a str,
    pub server_addr: &'a str,
    /// Empty before the mapping.
    pub app: &'a str,
}

impl<'a> RequestView<'a> {
    /// The view of a request's head, as the gateway holds it (a local
    /// redirect changes the method and URI but keeps the rest). `path` is
    /// the URI's path as the router maps it (`route::normalize_path`).
    pub fn new(
        method: &'a http::Method,
        uri: &'a Uri,
        path: &'a str,
        version: http::Version,
        headers: &'a HeaderMap,
        origin: Where<'a>,
    ) -> Self {
        RequestView {
            method: method.as_str(),
            path,
            raw_path: uri.path(),
            query: uri.query().unwrap_or(""),
            version: version_text(version),
            headers,
            client_addr: origin.client_addr,
            server_addr: origin.server_addr,
            app: origin.app,
        }
    }

    fn of<B>(request: &'a Request<B>, path: &'a str, origin: Where<'a>) -> Self {
        Self::new(
            request.method(),
            request.uri(),
            path,
            request.version(),
            request.headers(),
            origin,
        )
    }
}

/// The contract version a plugin was built for, which decides the layout of
/// what crosses to it and back: 0.1.0 (native ABI 1) or the current 0.2.0
/// (ABI 2). Built-in plugins are always current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contract {
    V0_1,
    Current,
}

/// Writes a request (and parameters, for `inject-env`) in the SDK's wire
/// encoding, which the native ABI, the wasm contract's `request-head` and
/// the built-ins' views read in place: the layout of `contract`.
fn put_request(
    out: &mut Vec<u8>,
    r: &RequestView<'_>,
    params: Option<&Params>,
    contract: Contract,
) {
    let head = sdk::wire::RequestHeadRef {
        method: r.method,
        path: r.path,
        raw_path: r.raw_path,
        query: r.query,
        version: r.version,
        header_count: r.headers.len(),
        headers: header_pairs(r.headers),
        client_addr: r.client_addr,
        server_addr: r.server_addr,
        app: r.app,
    };
    match contract {
        Contract::Current => head.put(out),
        Contract::V0_1 => sdk::wire::abi1::put_request_head(head, out),
    }
    if let Some(params) = params {
        put_params(out, params);
    }
}

/// Writes CGI parameters as the contract's `pairs`. Names are text in the
/// contract: a parameter whose name is not UTF-8 (none the gateway builds)
/// is not shown to plugins.
fn put_params(out: &mut Vec<u8>, params: &Params) {
    let shown = |(name, _): &(&[u8], &[u8])| std::str::from_utf8(name).is_ok();
    let count = params.iter().filter(shown).count();
    sdk::wire::put_pairs(out, count, params.iter().filter(shown));
}

/// Header names and values as byte pairs.
fn header_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
}

/// `HTTP/1.1` and friends, as plugins see them.
fn version_text(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// One host trait for both kinds of plugin. Implementations must be cheap
/// to call concurrently from many request tasks.
pub trait Backend: Send + Sync {
    fn on_request(&self, request: &RequestView<'_>) -> Result<sdk::Decision, PluginError>;
    fn on_response(
        &self,
        status: u16,
        headers: &HeaderMap,
    ) -> Result<sdk::HeaderChanges, PluginError>;
    fn inject_env(
        &self,
        request: &RequestView<'_>,
        params: &Params,
    ) -> Result<Vec<sdk::Param>, PluginError>;
    fn launch(&self, app: &sdk::AppConfig) -> Result<Result<sdk::SpawnSpec, String>, PluginError>;
}

/// A loaded plugin: its backend, what it can do, and what a failure means.
pub struct Plugin {
    pub name: Arc<str>,
    pub on_error: OnError,
    pub capabilities: sdk::Capabilities,
    /// Calls, errors and time per hook (status page and metrics).
    pub stats: PluginStats,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Loads a plugin and runs its `init` (once, to learn its capabilities
    /// and to surface configuration errors now rather than per request).
    pub fn load(config: &PluginSettings) -> Result<Plugin, PluginError> {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let (backend, capabilities): (Box<dyn Backend>, _) = match config.kind {
            PluginKind::Wasm => {
                let (plugin, caps) = wasm::WasmPlugin::load(config)?;
                (Box::new(plugin), caps)
            }
            PluginKind::Native => {
                let (plugin, caps) = native::NativePlugin::load(config)?;
                (Box::new(plugin), caps)
            }
        };
        debug!(plugin = %name, kind = ?config.kind, ?capabilities, "plugin loaded");
        Ok(Plugin {
            name,
            on_error: config.on_error,
            capabilities,
            stats: PluginStats::default(),
            backend,
        })
    }

    /// The built-in plugin called `name` (a crate of `plugins/`), if any.
    fn builtin(name: &str) -> Option<Result<Plugin, PluginError>> {
        let loaded = builtin::load(name)?;
        Some(loaded.map(|(backend, capabilities)| Plugin {
            name: Arc::from(name),
            on_error: OnError::FailClosed,
            capabilities,
            stats: PluginStats::default(),
            backend,
        }))
    }

    /// Describes an app's processes (this plugin must be a launcher).
    pub fn launch(
        &self,
        app: &sdk::AppConfig,
    ) -> Result<Result<sdk::SpawnSpec, String>, PluginError> {
        if !self.capabilities.launcher {
            return Err(PluginError::Missing("launch"));
        }
        self.backend.launch(app)
    }
}

/// The plugins of a config, loaded, and its apps as they will run.
#[derive(Debug)]
pub struct Prepared {
    pub plugins: Plugins,
    /// Every app in the file's order, launchers' proposals resolved.
    pub apps: Vec<AppSettings>,
}

/// Loads every plugin and resolves each app with its launcher: what
/// `fastgate serve` and `fastgate check` do before anything else. Errors
/// are one line each, naming the plugin (and app).
pub fn prepare(config: &Config) -> Result<Prepared, Vec<String>> {
    wasm_cache::use_dir(config.server.plugin_cache_dir.as_deref());
    // A plugin that cannot load (or refuses its `config`) is pointed at by
    // the line of its `[[plugin]]` table.
    let plugins = Plugins::load(&config.plugins).map_err(|errors| {
        errors
            .iter()
            .map(|e| match config.plugin_location(&e.name) {
                Some(at) => format!("{at}: {}", chain(e)),
                None => chain(e),
            })
            .collect::<Vec<_>>()
    })?;
    let apps = launch::resolve(config, &plugins)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok(Prepared { plugins, apps })
}

/// Every plugin of the config, by name.
#[derive(Debug, Default, Clone)]
pub struct Plugins {
    by_name: HashMap<String, Arc<Plugin>>,
}

/// A plugin that failed to load, for `fastgate check` and the start-up error.
#[derive(Debug, thiserror::Error)]
#[error("plugin \"{name}\": {source}")]
pub struct LoadError {
    pub name: String,
    #[source]
    pub source: PluginError,
}

impl Plugins {
    /// Loads every `[[plugin]]`; all of them, so that `fastgate check`
    /// reports every broken plugin at once. Then the built-ins (the
    /// framework launchers), unless a `[[plugin]]` took their name.
    pub fn load(configs: &[PluginSettings]) -> Result<Plugins, Vec<LoadError>> {
        let builtins = crate::config::BUILTIN_LAUNCHERS
            .iter()
            .filter(|&&name| !configs.iter().any(|c| c.name == name))
            .filter_map(|&name| Some((name.to_string(), Plugin::builtin(name)?)));
        let configured = configs.iter().map(|c| (c.name.clone(), Plugin::load(c)));
        let mut by_name = HashMap::new();
        let mut errors = Vec::new();
        for (name, loaded) in builtins.chain(configured) {
            match loaded {
                Ok(plugin) => {
                    by_name.insert(name, Arc::new(plugin));
                }
                Err(source) => errors.push(LoadError { name, source }),
            }
        }
        if errors.is_empty() {
            Ok(Plugins { by_name })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.by_name.get(name)
    }

    /// Every plugin, built-ins included, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        let mut plugins: Vec<_> = self.by_name.values().collect();
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        plugins.into_iter()
    }

    /// The chain for a list of plugin names (names were checked when the
    /// config was loaded; unknown ones are skipped).
    pub fn chain(&self, names: &[String]) -> Chain {
        Chain {
            plugins: names
                .iter()
                .filter_map(|n| self.by_name.get(n).cloned())
                .collect(),
        }
    }
}

/// The plugins applied to a request, in order: the server's, or an app's.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    plugins: Vec<Arc<Plugin>>,
}

/// A plugin failure that stops the request (`on_error = "fail-closed"`).
#[derive(Debug, thiserror::Error)]
#[error("plugin \"{plugin}\" {hook}: {source}")]
pub struct ChainError {
    pub plugin: Arc<str>,
    pub hook: &'static str,
    #[source]
    pub source: PluginError,
}

/// What the request filters decided.
pub enum Flow {
    /// Go on with the (possibly rewritten) request.
    Continue,
    /// Answer with this response; nothing else runs.
    Respond(Box<Response<ResponseBody>>),
}

impl Chain {
    fn with(&self, pick: fn(&sdk::Capabilities) -> bool) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.iter().filter(move |p| pick(&p.capabilities))
    }

    pub fn has_request_filters(&self) -> bool {
        self.with(|c| c.request_filter).next().is_some()
    }

    pub fn has_response_filters(&self) -> bool {
        self.with(|c| c.response_filter).next().is_some()
    }

    pub fn has_env(&self) -> bool {
        self.with(|c| c.inject_env).next().is_some()
    }

    /// A failure: fail-closed stops the request, fail-open logs and goes on.
    fn failed(plugin: &Plugin, hook: &'static str, source: PluginError) -> Result<(), ChainError> {
        plugin.stats.hook(hook).errors.inc();
        match plugin.on_error {
            OnError::FailClosed => Err(ChainError {
                plugin: plugin.name.clone(),
                hook,
                source,
            }),
            OnError::FailOpen => {
                warn!(plugin = %plugin.name, hook, error = %source, "plugin failed; going on without it (on_error = fail-open)");
                Ok(())
            }
        }
    }

    /// Runs the request filters in order. A rewrite changes `request` (and
    /// what the next filter sees); deny and respond end the chain;
    /// parameters for the app go with the request ([`FilterParams`]).
    ///
    /// Filters see the path the router will map. A path the router refuses
    /// (a bad escape, a control character, `..` above the root) reaches no
    /// filter: the router answers it with a 400 right after.
    pub fn on_request<B>(
        &self,
        request: &mut Request<B>,
        client_addr: &str,
        server_addr: &str,
        app: &str,
    ) -> Result<Flow, ChainError> {
        let Ok(mut path) = normalize_path(request.uri().path()) else {
            return Ok(Flow::Continue);
        };
        let origin = Where {
            client_addr,
            server_addr,
            app,
        };
        for plugin in self.with(|c| c.request_filter) {
            let view = RequestView::of(request, &path, origin);
            let started = Instant::now();
            let decided = plugin.backend.on_request(&view);
            plugin.stats.on_request.called(started);
            let decision = match decided {
                Ok(d) => d,
                Err(e) => {
                    Self::failed(plugin, "on_request", e)?;
                    continue;
                }
            };
            match apply(request, decision) {
                Ok(Applied::Respond(response)) => {
                    debug!(plugin = %plugin.name, status = response.status().as_u16(), "request answered by plugin");
                    return Ok(Flow::Respond(response));
                }
                Ok(Applied::Rewritten(new_path)) => {
                    debug!(plugin = %plugin.name, uri = %request.uri(), "request rewritten");
                    path = new_path;
                }
                Ok(Applied::Continue) => {}
                Err(reason) => Self::failed(plugin, "on_request", PluginError::Invalid(reason))?,
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs the response filters over the response headers.
    pub fn on_response(
        &self,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) -> Result<(), ChainError> {
        for plugin in self.with(|c| c.response_filter) {
            let started = Instant::now();
            let changes = plugin.backend.on_response(status.as_u16(), headers);
            plugin.stats.on_response.called(started);
            let changes = changes.and_then(|changes| {
                apply_header_changes(headers, &changes).map_err(PluginError::Invalid)
            });
            if let Err(e) = changes {
                Self::failed(plugin, "on_response", e)?;
            }
        }
        Ok(())
    }

    /// Asks the env injectors for extra parameters; a name that exists is
    /// replaced, a new one appended.
    pub fn inject_env(
        &self,
        request: &RequestView<'_>,
        params: &mut Params,
    ) -> Result<(), ChainError> {
        for plugin in self.with(|c| c.inject_env) {
            let started = Instant::now();
            let extra = plugin.backend.inject_env(request, params);
            plugin.stats.inject_env.called(started);
            match extra {
                Ok(extra) => {
                    for p in extra {
                        if p.name.is_empty() || p.name.contains('\0') {
                            Self::failed(
                                plugin,
                                "inject_env",
                                PluginError::Invalid(format!("bad parameter name {:?}", p.name)),
                            )?;
                            continue;
                        }
                        params.set(p.name.into_bytes(), p.value);
                    }
                }
                Err(e) => Self::failed(plugin, "inject_env", e)?,
            }
        }
        Ok(())
    }
}

/// Parameters for the app that request filters gave (`continue-with`, or a
/// rewrite's `params`), carried in the request's extensions until the
/// app's parameters are built (`cgi::params::add_from_filters`). A later
/// one replaces an earlier one of the same name. A request that ends at a
/// static file drops them.
#[derive(Debug, Clone, Default)]
pub struct FilterParams(Vec<(String, Vec<u8>)>);

impl FilterParams {
    fn set(&mut self, name: String, value: Vec<u8>) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(pair) => pair.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Every parameter, in the order first given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
}

/// What one filter's decision did to the request.
enum Applied {
    Continue,
    /// A rewrite; the new path as the router will map it.
    Rewritten(String),
    Respond(Box<Response<ResponseBody>>),
}

/// Applies a request filter's decision; an invalid one is an error (the
/// plugin's `on_error` decides what follows).
fn apply<B>(request: &mut Request<B>, decision: sdk::Decision) -> Result<Applied, String> {
    match decision {
        sdk::Decision::Continue => Ok(Applied::Continue),
        sdk::Decision::ContinueWith(params) => {
            add_params(request, params)?;
            Ok(Applied::Continue)
        }
        sdk::Decision::Deny(status) => deny(status).map(|r| Applied::Respond(Box::new(r))),
        sdk::Decision::Respond(r) => respond(r).map(|r| Applied::Respond(Box::new(r))),
        sdk::Decision::Rewrite(mut rw) => {
            check_params(&rw.params)?;
            let path = rewrite(request, &rw)?;
            add_params(request, std::mem::take(&mut rw.params))?;
            Ok(path.map_or(Applied::Continue, Applied::Rewritten))
        }
    }
}

/// Refuses parameter names no filter may give: empty, with `=` or NUL
/// (not an environment variable), or set by the gateway itself
/// (`cgi::params::reserved`: a filter that could set `SCRIPT_FILENAME` or
/// `PHP_VALUE` from what a client sent would hand the client the app).
fn check_params(params: &[sdk::Param]) -> Result<(), String> {
    for p in params {
        if p.name.is_empty() || p.name.contains(['=', '\0']) {
            return Err(format!("bad parameter name {:?}", p.name));
        }
        if crate::cgi::params::reserved(&p.name) {
            return Err(format!(
                "parameter {:?} is set by the gateway; a request filter may not give it",
                p.name
            ));
        }
    }
    Ok(())
}

/// Checks `params` and adds them to the request's [`FilterParams`].
fn add_params<B>(request: &mut Request<B>, params: Vec<sdk::Param>) -> Result<(), String> {
    if params.is_empty() {
        return Ok(());
    }
    check_params(&params)?;
    let carried = request
        .extensions_mut()
        .get_or_insert_default::<FilterParams>();
    for p in params {
        carried.set(p.name, p.value);
    }
    Ok(())
}

fn header(h: &sdk::Header) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(h.name.as_bytes())
        .map_err(|_| format!("bad header name {:?}", h.name))?;
    let value = HeaderValue::from_bytes(&h.value)
        .map_err(|_| format!("bad value for header {:?}", h.name))?;
    Ok((name, value))
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("bad header name {name:?}"))
}

/// A generic response for `deny(status)`.
fn deny(status: u16) -> Result<Response<ResponseBody>, String> {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .ok_or_else(|| format!("deny needs a 4xx or 5xx status, not {status}"))?;
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(ResponseBody::full(format!(
        "{} {reason}\n",
        status.as_u16()
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// The response of `respond(...)`, checked header by header.
fn respond(r: sdk::Response) -> Result<Response<ResponseBody>, String> {
    let status = StatusCode::from_u16(r.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| format!("respond needs a final status (200-999), not {}", r.status))?;
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    for h in &r.headers {
        let (name, value) = header(h)?;
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            // The gateway frames the body itself.
            continue;
        }
        headers.append(name, value);
    }
    let mut response = Response::new(ResponseBody::full(Bytes::from(r.body)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Applies a rewrite to the request: a new path (and query), set and
/// removed headers. The new path must pass the router's own checks
/// (`route::normalize_path`); it is returned as the router will map it
/// (`None` when the rewrite keeps the path).
fn rewrite<B>(request: &mut Request<B>, rw: &sdk::Rewrite) -> Result<Option<String>, String> {
    let mut mapped = None;
    if let Some(path) = &rw.path {
        if !path.starts_with('/') {
            return Err(format!("rewrite path must start with '/': {path:?}"));
        }
        let path_and_query = uri_text(path);
        let new_path = path_and_query.split('?').next().unwrap_or("");
        mapped = Some(normalize_path(new_path).map_err(|e| format!("rewrite path {path:?}: {e}"))?);
        let path_and_query = match (path.contains('?'), request.uri().query()) {
            (false, Some(q)) => format!("{path_and_query}?{q}"),
            _ => path_and_query,
        };
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = Some(
            path_and_query
                .parse()
                .map_err(|_| format!("rewrite path is not a valid URI path: {path:?}"))?,
        );
        *request.uri_mut() =
            Uri::from_parts(parts).map_err(|e| format!("rewrite path {path:?}: {e}"))?;
    }
    let headers = request.headers_mut();
    for name in &rw.remove_headers {
        headers.remove(header_name(name)?);
    }
    for h in &rw.set_headers {
        let (name, value) = header(h)?;
        headers.insert(name, value);
    }
    Ok(mapped)
}

/// A rewrite path as URI text: a byte a URI cannot carry as it is (a
/// space, a non-ASCII letter, a control character) is percent-encoded, so a
/// rewrite built from a decoded path (`RequestHead::path`) still parses.
/// `%` (an escape) and `?` (the query) keep their URI meaning; plugins
/// encode those with `fastgate_sdk::encode_path`.
fn uri_text(path: &str) -> String {
    const KEEP: &[u8] = b"-._~/?@!$&'()*+,;=:%";
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || KEEP.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Applies a response filter's changes: removals, then sets, then appends.
fn apply_header_changes(
    headers: &mut HeaderMap,
    changes: &sdk::HeaderChanges,
) -> Result<(), String> {
    if changes.is_empty() {
        return Ok(());
    }
    for name in &changes.remove {
        headers.remove(header_name(name)?);
    }
    for h in &changes.set {
        let (name, value) = header(h)?;
        headers.insert(name, value);
    }
    for h in &changes.append {
        let (name, value) = header(h)?;
        headers.append(name, value);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn deny_needs_an_error_status() {
        assert_eq!(deny(403).unwrap().status(), StatusCode::FORBIDDEN);
        assert!(deny(200).is_err());
        assert!(deny(1000).is_err());
    }

    #[test]
    fn respond_checks_headers_and_drops_framing() {
        let mut r = sdk::Response::text(200, "pong");
        r.headers.push(sdk::Header::new("content-length", "999"));
        let response = respond(r.clone()).unwrap();
        assert!(response.headers().get("content-length").is_none());
        r.headers.push(sdk::Header::new("bad name", "x"));
        assert!(respond(r).is_err());
        assert!(respond(sdk::Response::text(101, "")).is_err());
    }

    #[test]
    fn rewrite_keeps_or_replaces_the_query() {
        let mut req = Request::builder().uri("/old/x?a=1").body(()).unwrap();
        let rw = sdk::Rewrite {
            path: Some("/new/x".into()),
            set_headers: vec![sdk::Header::new("x-tenant", "t1")],
            remove_headers: vec!["cookie".into()],
            params: vec![],
        };
        assert_eq!(rewrite(&mut req, &rw).unwrap().as_deref(), Some("/new/x"));
        assert_eq!(req.uri(), "/new/x?a=1");
        assert_eq!(req.headers()["x-tenant"], "t1");
        let rw = sdk::Rewrite {
            path: Some("/q?b=2".into()),
            ..Default::default()
        };
        rewrite(&mut req, &rw).unwrap();
        assert_eq!(req.uri(), "/q?b=2");
        let rw = sdk::Rewrite {
            path: Some("relative".into()),
            ..Default::default()
        };
        assert!(rewrite(&mut req, &rw).is_err());
    }

    #[test]
    fn a_rewrite_is_mapped_as_the_router_maps_it() {
        let mut req = Request::builder().uri("/x?a=1").body(()).unwrap();
        let to = |req: &mut Request<()>, path: &str| {
            let rw = sdk::Rewrite {
                path: Some(path.into()),
                ..Default::default()
            };
            rewrite(req, &rw)
        };
        // What the next filter sees is the normalised path.
        assert_eq!(
            to(&mut req, "/a/../%61dmin//x").unwrap().as_deref(),
            Some("/admin/x")
        );
        // A decoded path with a space or a non-ASCII letter still parses.
        assert_eq!(
            to(&mut req, "/caf\u{e9} au lait").unwrap().as_deref(),
            Some("/caf\u{e9} au lait")
        );
        assert_eq!(req.uri(), "/caf%C3%A9%20au%20lait?a=1");
        // What the router refuses, a rewrite may not produce.
        for bad in ["/../etc/passwd", "/a%0ab", "/a\nb", "/bad%zz"] {
            let before = req.uri().clone();
            assert!(to(&mut req, bad).is_err(), "{bad:?}");
            assert_eq!(req.uri(), &before, "{bad:?} changed the request");
        }
    }

    #[test]
    fn filters_may_add_parameters_but_never_the_gateways() {
        let mut req = Request::builder().uri("/x").body(()).unwrap();
        let with = |params: &[(&str, &str)]| {
            sdk::Decision::ContinueWith(
                params
                    .iter()
                    .map(|(n, v)| sdk::Param::new(*n, *v))
                    .collect(),
            )
        };
        assert!(matches!(
            apply(
                &mut req,
                with(&[("REMOTE_USER", "alice"), ("AUTH_TYPE", "Bearer")])
            ),
            Ok(Applied::Continue)
        ));
        apply(&mut req, with(&[("REMOTE_USER", "bob")])).unwrap();
        let carried: Vec<_> = req
            .extensions()
            .get::<FilterParams>()
            .unwrap()
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        assert_eq!(
            carried,
            [
                ("REMOTE_USER".to_string(), "bob".to_string()),
                ("AUTH_TYPE".to_string(), "Bearer".to_string())
            ]
        );
        for bad in [
            "SCRIPT_FILENAME",
            "script_filename",
            "PATH_INFO",
            "HTTP_X_USER",
            "PHP_VALUE",
            "PHP_ADMIN_VALUE",
            "",
            "A=B",
            "A\0",
        ] {
            let err = match apply(&mut req, with(&[("OK", "1"), (bad, "x")])) {
                Err(e) => e,
                Ok(_) => panic!("{bad:?} accepted"),
            };
            assert!(err.contains("parameter"), "{bad:?}: {err}");
        }
        // Nothing of a refused answer was kept.
        let names: Vec<_> = req
            .extensions()
            .get::<FilterParams>()
            .unwrap()
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, ["REMOTE_USER", "AUTH_TYPE"]);
        // A rewrite may carry parameters too; a bad one refuses the rewrite.
        let rw = |name: &str| {
            sdk::Decision::Rewrite(sdk::Rewrite {
                path: Some("/y".into()),
                remove_headers: vec!["authorization".into()],
                params: vec![sdk::Param::new(name, "carol")],
                ..Default::default()
            })
        };
        assert!(apply(&mut req, rw("SCRIPT_NAME")).is_err());
        assert_eq!(req.uri(), "/x");
        assert!(
            matches!(apply(&mut req, rw("REMOTE_USER")), Ok(Applied::Rewritten(p)) if p == "/y")
        );
        assert_eq!(
            req.extensions()
                .get::<FilterParams>()
                .unwrap()
                .iter()
                .next(),
            Some(("REMOTE_USER", &b"carol"[..]))
        );
    }

    #[test]
    fn header_changes_remove_set_append() {
        let mut headers = HeaderMap::new();
        headers.insert("server", HeaderValue::from_static("x"));
        headers.insert("a", HeaderValue::from_static("1"));
        let changes = sdk::HeaderChanges {
            set: vec![sdk::Header::new("a", "2")],
            append: vec![sdk::Header::new("a", "3")],
            remove: vec!["server".into()],
        };
        apply_header_changes(&mut headers, &changes).unwrap();
        assert!(headers.get("server").is_none());
        let a: Vec<_> = headers.get_all("a").iter().collect();
        assert_eq!(a, ["2", "3"]);
    }
}
