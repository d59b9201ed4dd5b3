//! Configuration: the TOML schema, its IIS defaults, and validation.
//!
//! The file is parsed once into the typed structs below; nothing downstream
//! ever looks at TOML again. Relative paths are resolved against the folder
//! of the config file. Errors name the file, the line and the key.
//!
//! This module owns the *shape* of the configuration and its checks. It does
//! not spawn anything, open sockets or look at requests.
//!
//! One file per concern: `raw` is the serde schema, `load` the entry points
//! and where an error is, `convert` the checks and defaults that turn raw
//! tables into the types below, `parse` the value parsers, `command` the
//! `PATH` lookup with install hints, and `summary` what `fastgate check`
//! prints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Method;

mod command;
mod convert;
mod load;
mod mounts;
mod parse;
mod raw;
mod source;
mod summary;
pub mod users;

pub use command::{check_commands, install_hint, resolve_command};
pub use load::{load_file, load_str};
pub use mounts::{StaticFolder, check_mappings, static_folders};
pub use parse::{parse_fallback, parse_mount, parse_pattern, parse_resource_type};
pub use source::ConfigError;
pub use summary::render_summary;
pub use users::{Rlimits, RunAs, RunAsOrigin, check_access};

/// The whole, validated configuration of one gateway.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (`None` for the built-in quickstart).
    pub source: Option<PathBuf>,
    /// Where relative paths resolve: the file's folder, absolute.
    pub base_dir: PathBuf,
    pub server: ServerSettings,
    /// `[[static]]`: URL prefixes served from folders, in file order
    /// (launchers' proposals join them in [`static_folders`]).
    pub static_folders: Vec<StaticSettings>,
    pub apps: Vec<AppSettings>,
    /// `[[plugin]]`: every plugin the gateway loads, in file order.
    pub plugins: Vec<PluginSettings>,
    /// Non-fatal findings (shown by `fastgate check` and logged at start).
    pub warnings: Vec<String>,
    /// `[admin]`: the operator's listener (status, metrics), off unless set.
    pub admin: Option<AdminSettings>,
    /// The line of each `[[plugin]]` table, by name, so that a plugin that
    /// refuses its `config` can be pointed at ([`Config::plugin_location`]).
    pub plugin_lines: BTreeMap<String, usize>,
}

/// `[admin]`: a listener for operators, apart from the public ones.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Where it listens (`listen`); never an address of `[server] listen`.
    pub listen: SocketAddr,
    /// A file holding the bearer token every admin request must carry
    /// (`token_file`); without one, anyone who can reach `listen` may.
    pub token_file: Option<PathBuf>,
}

/// `[server]`: the HTTP front and the static file root.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Every address to listen on (`listen`, a string or a list).
    pub listen: Vec<SocketAddr>,
    /// Document root for static files and the default app root (`root`).
    pub root: PathBuf,
    /// Index documents tried for a directory, in order (`index`).
    pub index: Vec<String>,
    /// Largest accepted request body in bytes (`max_body_size`, default 100 MiB).
    pub max_body_size: u64,
    /// Request bodies are kept in memory up to this size, then spilled to a
    /// temporary file (`body_buffer_size`, default 1 MiB).
    pub body_buffer_size: u64,
    /// Largest CGI/FastCGI response header block (`max_response_header_size`,
    /// default 64 KiB).
    pub max_response_header_size: usize,
    /// Time a client has to send the request head (`header_read_timeout`, 30s).
    pub header_read_timeout: Duration,
    /// What a request head may hold, checked on the wire before any app
    /// sees it (`max_header_line`, `max_request_head`, `max_headers`,
    /// `max_uri_length`).
    pub head_limits: HeadLimits,
    /// Longest pause between two body chunks from a client (`body_read_timeout`, 60s).
    pub body_read_timeout: Duration,
    /// How long in-flight requests may run after a shutdown signal (`shutdown_timeout`, 30s).
    pub shutdown_timeout: Duration,
    /// A client that accepts no byte of its response for this long is
    /// disconnected (`send_timeout`, nginx's, 60s).
    pub send_timeout: Duration,
    /// Where the access log goes (`access_log`: "stdout" (default), "off", or a path).
    pub access_log: AccessLogTarget,
    /// Folder for per-app runtime directories (`runtime_dir`, default: a
    /// fresh private temporary directory).
    pub runtime_dir: Option<PathBuf>,
    /// The line of the `runtime_dir` key, so that a folder too long for the
    /// apps' sockets can be pointed at.
    pub runtime_dir_line: Option<usize>,
    /// Who gets the server-side detail of an error in its response body
    /// (`error_details`, IIS `httpErrors errorMode`, default `local`).
    pub error_details: ErrorDetails,
    /// Where compiled wasm plugins are kept between starts
    /// (`plugin_cache_dir`; default `$XDG_CACHE_HOME/fastgate` or
    /// `~/.cache/fastgate`; `""` turns the cache off).
    pub plugin_cache_dir: Option<PathBuf>,
    /// Plugins applied to every request, in order, before the handler
    /// mapping (`plugins`, names of `[[plugin]]` entries).
    pub plugins: Vec<String>,
    /// Most client connections open at once, idle keep-alive ones included
    /// (`max_connections`; `None`: automatic, from the open-file limit, see
    /// `http::connection_limit`). Past it a connection gets 503.
    pub max_connections: Option<usize>,
    /// Where static files are read (`static_file_io`, default `inline`).
    pub static_file_io: StaticFileIo,
    /// Threads serving connections (`worker_threads`; `None`: automatic,
    /// see [`ServerSettings::worker_threads`]).
    pub worker_threads: Option<usize>,
}

impl ServerSettings {
    /// The threads that serve connections: `worker_threads`, or half the
    /// CPUs this process may use, at least one. The apps' processes need
    /// the other half: on 2 CPUs, one thread serving hello.php spent 36 µs
    /// of CPU a request where two spent 49 µs (two threads wake and steal
    /// from each other; docs/benchmarks.md), and one thread serves
    /// 30 000 requests a second.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cpus / 2).max(1)
        })
    }
}

/// `static_file_io`: which thread reads a static file. Reading a file the
/// page cache holds takes microseconds, less than handing the work to
/// another thread and back; a file system that can stall for long (NFS, a
/// failing disk) would stall every connection of the thread reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticFileIo {
    /// On the thread serving the connection (nginx's default, `aio off`).
    Inline,
    /// On tokio's blocking threads (nginx `aio threads`).
    Threads,
}

impl StaticFileIo {
    /// As it is written in the file.
    pub const fn name(self) -> &'static str {
        match self {
            StaticFileIo::Inline => "inline",
            StaticFileIo::Threads => "threads",
        }
    }
}

/// `error_details`: who may read the server-side detail of an error (an
/// app's stderr text, the cause, the pid, an exit status) in the response
/// body. It is always logged, with the app, the pid and the URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDetails {
    /// Clients on a loopback address; others get a generic page (IIS
    /// `DetailedLocalOnly`, its default).
    Local,
    /// Every client (IIS `Detailed`).
    Always,
    /// No client (IIS `Custom`).
    Never,
}

impl ErrorDetails {
    /// Whether a client at `client` gets the detailed error page. An
    /// IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn shown_to(self, client: std::net::IpAddr) -> bool {
        match self {
            ErrorDetails::Always => true,
            ErrorDetails::Never => false,
            ErrorDetails::Local => client.to_canonical().is_loopback(),
        }
    }

    /// As it is written in the file.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorDetails::Local => "local",
            ErrorDetails::Always => "always",
            ErrorDetails::Never => "never",
        }
    }
}

/// One `[[static]]` as the file writes it: a URL prefix served from a
/// folder outside (or inside) the document root, like an IIS virtual
/// directory or nginx's `alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticSettings {
    /// The URL prefix, ending in `/` (`url`).
    pub url: String,
    /// The folder (`dir`); absent only to add `cache_control` to the
    /// folder a launcher proposes at the same `url`.
    pub dir: Option<PathBuf>,
    /// `Cache-Control` sent with its files (`cache_control`, default none).
    pub cache_control: Option<String>,
}

/// Limits on a request head. A head beyond one of them is answered 431
/// (414 for the URI) at the front, as nginx's `large_client_header_buffers`
/// and Apache's `LimitRequestField*` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest header line, name and value, without its CR LF
    /// (`max_header_line`, default 8 KiB).
    pub max_header_line: usize,
    /// Largest whole head: request line, header lines and line ends
    /// (`max_request_head`, default 32 KiB).
    pub max_request_head: usize,
    /// Most header lines (`max_headers`, default 100).
    pub max_headers: usize,
    /// Longest request target, path and query (`max_uri_length`, default 8 KiB).
    pub max_uri_length: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_header_line: defaults::MAX_HEADER_LINE,
            max_request_head: defaults::MAX_REQUEST_HEAD,
            max_headers: defaults::MAX_HEADERS,
            max_uri_length: defaults::MAX_URI_LENGTH,
        }
    }
}

/// One `[[plugin]]`.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Unique name (`name`), used in `plugins = [...]`, `launcher` and logs.
    pub name: String,
    /// The file (`path`): a `.wasm` component or a native `.so`.
    pub path: PathBuf,
    /// Which backend loads it (from the file extension).
    pub kind: PluginKind,
    /// The plugin's own settings (`config`, a table), as JSON text.
    pub config_json: String,
    /// What a request gets when the plugin fails (`on_error`, default fail-closed).
    pub on_error: OnError,
    /// Longest time one wasm hook call may run (`timeout`, default 10ms).
    pub timeout: Duration,
    /// Linear-memory cap of one wasm instance (`memory_limit`, default 64 MiB).
    pub memory_limit: u64,
    /// Warm wasm instances kept for reuse (`instances`, default 2 × CPUs).
    pub instances: usize,
}

/// `.wasm` → a WebAssembly component; anything else → a native library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Wasm,
    Native,
}

/// `on_error`: what a request gets when a plugin traps, times out, panics
/// or answers nonsense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// A 500, logged with the plugin's name.
    FailClosed,
    /// The request goes on as if the plugin had said `continue` (logged).
    FailOpen,
}

/// Destination of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    Off,
    File(PathBuf),
}

/// One `[[app]]`: a pool of processes and the handler mapping that feeds it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSettings {
    /// Unique name (`name`), used in logs, metrics and errors.
    pub name: String,
    /// The program to run (`command`, IIS fullPath), as written in the file:
    /// a bare name is looked up on `PATH` when the pool starts.
    pub command: PathBuf,
    /// Its arguments (`args`, IIS arguments).
    pub args: Vec<String>,
    /// Working directory of the processes (`working_dir`, default: `root`).
    pub working_dir: Option<PathBuf>,
    /// Document root of this app (`root`, default `server.root`).
    pub root: PathBuf,
    /// Where the app lives in the URL space (`mount`, IIS's application
    /// path, WSGI's `SCRIPT_NAME`): `""` for the site root (the default),
    /// else `/a/b`. For the URL patterns `/prefix/*` and `/exact`,
    /// `SCRIPT_NAME` is the mount and `PATH_INFO` the rest of the path;
    /// the name patterns `*.ext` and `*` name their script and ignore it.
    pub mount: String,
    /// Path patterns this app handles (`handles`).
    pub handles: Vec<HandlerPattern>,
    /// Methods this app handles (`verbs`, default all).
    pub verbs: Verbs,
    /// Must the mapped script exist? (`resource_type`, default `file`).
    pub resource_type: ResourceType,
    /// Front-controller script run when no file exists at the path (`fallback`).
    pub fallback: Option<String>,
    /// Most processes at once (`max_instances`, default 4); 0 = automatic
    /// sizing between 1 and `max_instances_auto_ceiling`.
    pub max_instances: u32,
    /// Upper bound of automatic sizing (`max_instances_auto_ceiling`, default 4 × CPUs).
    pub max_instances_auto_ceiling: u32,
    /// Processes started eagerly and kept (`min_instances`, default 0; a
    /// launcher may propose another).
    pub min_instances: u32,
    /// Recycle a process after this many requests (`instance_max_requests`,
    /// default 200; a launcher may propose another).
    pub instance_max_requests: u64,
    /// Requests that may wait for a process (`queue_length`, default 1000).
    pub queue_length: usize,
    /// How the gateway talks to the processes (`protocol`, default unix).
    pub protocol: Protocol,
    /// Environment of the processes (`[app.env]`); nothing else is passed
    /// except the variables named in `inherit_env`.
    pub env: BTreeMap<String, String>,
    /// Names of gateway environment variables passed through (`inherit_env`).
    pub inherit_env: Vec<String>,
    /// Extra FastCGI parameters sent with every request (`[app.params]`).
    pub params: Vec<(String, String)>,
    /// SIGTERM first and wait this long before SIGKILL (`signal_before_terminate`, default 0 = SIGKILL at once).
    pub signal_before_terminate: Duration,
    /// Longest time one request may run on an instance (`request_timeout`, IIS requestTimeout, 90s).
    pub request_timeout: Duration,
    /// A request running longer is logged once, with what its process is
    /// doing (`slow_request_timeout`, php-fpm's request_slowlog_timeout;
    /// default off).
    pub slow_request_timeout: Option<Duration>,
    /// An instance whose peak resident memory went over this many bytes is
    /// recycled after the request (`instance_max_memory`, uWSGI's
    /// reload-on-rss; default off).
    pub instance_max_memory: Option<u64>,
    /// Longest silence from the app during a request (`activity_timeout`, IIS activityTimeout, 30s).
    pub activity_timeout: Duration,
    /// An instance idle this long is stopped, down to `min_instances` (`idle_timeout`, IIS idleTimeout, 300s).
    pub idle_timeout: Duration,
    /// Instance failures within a minute that take the app offline for the
    /// rest of that minute (`rapid_fails_per_minute`, IIS rapidFailsPerMinute, 10).
    pub rapid_fails_per_minute: u32,
    /// What FCGI_STDERR output does to a response (`stderr_mode`, IIS stderrMode).
    pub stderr_mode: StderrMode,
    /// Files whose change recycles every instance (`monitor_changes_to`, IIS monitorChangesTo).
    pub monitor_changes_to: Vec<PathBuf>,
    /// Bytes of response buffered before the head is sent (`response_buffer_limit`, 0 = stream).
    pub response_buffer_limit: u64,
    /// Read the response at the app's speed, whatever the client's, so the
    /// instance is free as soon as the app is done (`response_buffering`,
    /// nginx `fastcgi_buffering`, default true). An app turns it off for
    /// one response with `X-Accel-Buffering: no`.
    pub response_buffering: bool,
    /// Bytes of a response held in memory for a client that falls behind
    /// (`response_memory_buffer`, default 64 KiB, like nginx's `fastcgi_buffers 8 8k`).
    pub response_memory_buffer: u64,
    /// Beyond memory, bytes held in an anonymous temporary file
    /// (`max_temp_file_size`, nginx's, default 1 GiB; 0 = none). Past it the
    /// response streams at the client's speed.
    pub max_temp_file_size: u64,
    /// Request filters and env injectors for this app's requests (`plugins`).
    pub plugins: Vec<String>,
    /// The launcher that describes this app's processes (`launcher`).
    pub launcher: Option<LauncherRef>,
    /// Which of the values above the file set, and which the launcher.
    pub origins: Origins,
    /// Files written into the app's runtime directory before the first
    /// process starts (from a launcher).
    pub runtime_files: Vec<AppFile>,
    /// Folders (plain names) created in the app's runtime directory before
    /// the first process starts (from a launcher).
    pub runtime_dirs: Vec<String>,
    /// URL prefix (ending in `/`) → folder the gateway serves itself (from
    /// a launcher, e.g. Django's static files); the app never sees those.
    /// Served with the `[[static]]` tables, through [`static_folders`].
    pub static_dirs: Vec<(String, std::path::PathBuf)>,
    /// Run as RFC 3875 CGI, one process per request (the `cgi` launcher),
    /// instead of a FastCGI pool.
    pub cgi: Option<CgiSettings>,
    /// The line of the `command` key, so that `fastgate check` can point at
    /// a command that cannot be run.
    pub command_line: Option<usize>,
    /// Who its processes run as (`user`, `group`).
    pub run_as: RunAs,
    /// Its processes' resource limits (`rlimit_*`).
    pub rlimits: Rlimits,
}

/// An app run as CGI: each request `execve`s its script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiSettings {
    /// Runs the script (`interpreter script`), for scripts without a
    /// shebang line; `None` executes the script itself.
    pub interpreter: Option<std::path::PathBuf>,
}

/// `launcher = "..."`: the plugin that describes the app, and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherRef {
    /// The plugin's name.
    pub plugin: String,
    /// `[app.options]` as JSON text (`{}` when absent).
    pub options_json: String,
}

/// An `[[app]]` key whose effective value may come from the file, from the
/// app's launcher or from the gateway's defaults: what the launcher may
/// propose, and what `fastgate check` traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppKey {
    Command,
    Handles,
    Mount,
    ResourceType,
    Fallback,
    MaxInstances,
    MinInstances,
    InstanceMaxRequests,
    QueueLength,
    RequestTimeout,
    SlowRequestTimeout,
    InstanceMaxMemory,
    ActivityTimeout,
    IdleTimeout,
    StderrMode,
}

impl AppKey {
    /// The key as it is written in fastgate.toml.
    pub const fn name(self) -> &'static str {
        match self {
            AppKey::Command => "command",
            AppKey::Handles => "handles",
            AppKey::Mount => "mount",
            AppKey::ResourceType => "resource_type",
            AppKey::Fallback => "fallback",
            AppKey::MaxInstances => "max_instances",
            AppKey::MinInstances => "min_instances",
            AppKey::InstanceMaxRequests => "instance_max_requests",
            AppKey::QueueLength => "queue_length",
            AppKey::RequestTimeout => "request_timeout",
            AppKey::SlowRequestTimeout => "slow_request_timeout",
            AppKey::InstanceMaxMemory => "instance_max_memory",
            AppKey::ActivityTimeout => "activity_timeout",
            AppKey::IdleTimeout => "idle_timeout",
            AppKey::StderrMode => "stderr_mode",
        }
    }
}

/// Where an app's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Nobody set it: the gateway's default (IIS's, where IIS has one).
    Default,
    /// The app's launcher proposed it (the plugin's name).
    Launcher(String),
    /// fastgate.toml sets it.
    File,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Launcher(name) => write!(f, "launcher \"{name}\""),
            Origin::File => f.write_str("file"),
        }
    }
}

/// Which keys of an app the file set, and which its launcher set where the
/// file did not. The file always wins, so a key is never both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    file: std::collections::BTreeSet<AppKey>,
    launcher: std::collections::BTreeSet<AppKey>,
    /// The launcher's plugin name, once it has set a key.
    launcher_name: Option<String>,
}

impl Origins {
    /// The keys fastgate.toml sets.
    pub fn from_file(keys: impl IntoIterator<Item = AppKey>) -> Origins {
        Origins {
            file: keys.into_iter().collect(),
            ..Origins::default()
        }
    }

    /// Does fastgate.toml set `key`? Then no launcher may change it.
    pub fn in_file(&self, key: AppKey) -> bool {
        self.file.contains(&key)
    }

    /// Records that `launcher` set `key` (which the file did not set).
    pub fn set_by_launcher(&mut self, key: AppKey, launcher: &str) {
        if !self.in_file(key) {
            self.launcher.insert(key);
            self.launcher_name = Some(launcher.to_string());
        }
    }

    /// Where the effective value of `key` came from.
    pub fn origin(&self, key: AppKey) -> Origin {
        if self.in_file(key) {
            return Origin::File;
        }
        match (&self.launcher_name, self.launcher.contains(&key)) {
            (Some(name), true) => Origin::Launcher(name.clone()),
            _ => Origin::Default,
        }
    }
}

/// A file for the app's runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppFile {
    /// A plain file name.
    pub name: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

/// `stderr_mode`, IIS stderrMode: what FCGI_STDERR output during a request
/// does to the response. In every mode the text is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrMode {
    /// 500 with the stderr text (HTML-escaped) as the body (IIS default).
    ReturnStderrIn500,
    /// A generic 500.
    ReturnGeneric500,
    /// The normal response; stderr is only logged.
    IgnoreAndReturn200,
    /// The instance is killed and the client gets a generic 500.
    TerminateProcess,
}

/// One entry of `handles`, IIS `path` style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerPattern {
    /// `*.php`: any path with a segment ending in `.php` (stored lower-case,
    /// without the dot; matched ASCII case-insensitively).
    Extension(String),
    /// `/app/*`: the prefix `/app` and everything below it (stored without
    /// the trailing `/*`; `/*` is stored as the empty prefix).
    Prefix(String),
    /// `/status`: exactly this path.
    Exact(String),
    /// `*`: every path.
    Any,
}

/// `verbs`: which request methods an app handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verbs {
    Any,
    List(Vec<Method>),
}

impl Verbs {
    pub fn allows(&self, method: &Method) -> bool {
        match self {
            Verbs::Any => true,
            Verbs::List(list) => list.iter().any(|m| m == method),
        }
    }
}

/// `resource_type`, IIS resourceType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// The mapped script must be an existing file (else 404).
    File,
    /// The mapped path must be an existing directory.
    Directory,
    /// A file or a directory.
    Either,
    /// No check: for apps that route themselves (Django at `/`).
    Unspecified,
}

/// `protocol`: the transport between gateway and app processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A private Unix socket per instance, passed as fd 0.
    Unix,
    /// A loopback TCP port per instance, passed as fd 0.
    Tcp,
}

/// `PHP_FCGI_MAX_REQUESTS` of an app's environment, when set above zero:
/// php-cgi exits on its own after that many requests.
pub fn php_fcgi_max_requests(env: &BTreeMap<String, String>) -> Option<u64> {
    env.get("PHP_FCGI_MAX_REQUESTS")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
}

impl AppSettings {
    /// Requests after which an instance is recycled: `instance_max_requests`,
    /// or fewer when php-cgi would exit on its own first (sending it one
    /// more request would fail).
    pub fn effective_max_requests(&self) -> u64 {
        match php_fcgi_max_requests(&self.env) {
            Some(limit) => self.instance_max_requests.min(limit),
            None => self.instance_max_requests,
        }
    }

    /// The values of `inherit_env` in the gateway's own environment (the
    /// only part of it an app process sees).
    pub fn inherited_env(&self) -> BTreeMap<String, String> {
        self.inherit_env
            .iter()
            .filter_map(|key| Some((key.clone(), std::env::var(key).ok()?)))
            .collect()
    }

    /// The program to check for before starting, if it can be checked: not
    /// a launcher's file written at start-up (`{runtime_dir}`), nor the
    /// empty command of a CGI app that runs its scripts themselves.
    pub fn command_to_check(&self) -> Option<&std::path::Path> {
        let text = self.command.to_string_lossy();
        let runs_scripts = self.cgi.is_some() && self.command.as_os_str().is_empty();
        (!runs_scripts && !text.contains("{runtime_dir}")).then_some(self.command.as_path())
    }
}

impl Config {
    /// Where the `[[plugin]]` table named `name` is, as `file:line`; `None`
    /// for a built-in plugin or a config that is not a file.
    pub fn plugin_location(&self, name: &str) -> Option<String> {
        let line = self.plugin_lines.get(name)?;
        Some(format!("{}:{line}", self.source.as_ref()?.display()))
    }

    /// The built-in quickstart: `examples/quickstart` served on 127.0.0.1:8080.
    pub fn quickstart() -> Result<Config, ConfigError> {
        load::quickstart()
    }
}

/// Launchers built into the gateway (`launcher = "php"` with no
/// `[[plugin]]` entry); crates in `plugins/`.
pub const BUILTIN_LAUNCHERS: &[&str] = &["php", "django", "cgi"];

/// The number of CPUs the gateway may use (automatic sizing starts there).
pub fn cpu_count() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Defaults, IIS values where IIS has one.
pub mod defaults {
    use std::time::Duration;

    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const MAX_BODY_SIZE: u64 = 100 * 1024 * 1024;
    pub const BODY_BUFFER_SIZE: u64 = 1024 * 1024;
    pub const MAX_RESPONSE_HEADER_SIZE: usize = 64 * 1024;
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MAX_HEADER_LINE: usize = 8 * 1024;
    pub const MAX_REQUEST_HEAD: usize = 32 * 1024;
    pub const MAX_HEADERS: usize = 100;
    pub const MAX_URI_LENGTH: usize = 8 * 1024;
    pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
    pub const RESPONSE_MEMORY_BUFFER: u64 = 64 * 1024;
    pub const MAX_TEMP_FILE_SIZE: u64 = 1024 * 1024 * 1024;
    pub const MAX_INSTANCES: u32 = 4;
    pub const MIN_INSTANCES: u32 = 0;
    pub const INSTANCE_MAX_REQUESTS: u64 = 200;
    pub const QUEUE_LENGTH: usize = 1000;
    pub const SIGNAL_BEFORE_TERMINATE: Duration = Duration::ZERO;
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
    pub const ACTIVITY_TIMEOUT: Duration = Duration::from_secs(30);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    pub const RAPID_FAILS_PER_MINUTE: u32 = 10;
    pub const RESPONSE_BUFFER_LIMIT: u64 = 0;
    pub const PLUGIN_TIMEOUT: Duration = Duration::from_millis(10);
    pub const PLUGIN_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
    pub const ERROR_DETAILS: super::ErrorDetails = super::ErrorDetails::Local;
    pub const STATIC_FILE_IO: super::StaticFileIo = super::StaticFileIo::Inline;
}

/// What the configuration's unit tests share: loading a text as if it were
/// `/etc/fg/fastgate.toml`, and the smallest valid app.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    use super::{Config, ConfigError, load_str};

    pub(crate) fn load(text: &str) -> Result<Config, ConfigError> {
        load_str(text, Some(Path::new("/etc/fg/fastgate.toml")))
    }

    pub(crate) const MINIMAL: &str =
        "[[app]]\nname = \"php\"\ncommand = \"php-cgi\"\nhandles = [\"*.php\"]\n";
}
