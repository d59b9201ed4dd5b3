//! The plain Rust types of the contract, one for each record of
//! `wit/plugin.wit`. They are the same whether the plugin is built as a
//! WebAssembly component or as a native library.

/// One HTTP header: a lower-case ASCII name and the raw value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The value as text, when it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// Name-value pairs as the gateway sends them (request headers, CGI
/// parameters), read in place: no copy, no allocation. Names are text
/// (header names lower-case ASCII); values are raw bytes.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Pairs<'a> {
    pub(crate) count: usize,
    /// The pairs after the count, already checked by [`crate::wire`].
    pub(crate) bytes: &'a [u8],
}

impl<'a> Pairs<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every pair, in order.
    pub fn iter(&self) -> PairsIter<'a> {
        PairsIter {
            rest: self.bytes,
            left: self.count,
        }
    }

    /// The first value called `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Owned copies, for keeping beyond the call.
    pub fn to_headers(&self) -> Vec<Header> {
        self.iter().map(|(n, v)| Header::new(n, v)).collect()
    }
}

impl std::fmt::Debug for Pairs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

impl<'a> IntoIterator for Pairs<'a> {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = PairsIter<'a>;
    fn into_iter(self) -> PairsIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Pairs`].
#[derive(Debug, Clone)]
pub struct PairsIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> PairsIter<'a> {
    fn field(&mut self) -> &'a [u8] {
        // The layout was checked when the pairs were read: lengths are
        // within bounds. Were they not, iteration just ends early.
        if self.rest.len() < 4 {
            self.rest = &[];
            return &[];
        }
        let len =
            u32::from_le_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]) as usize;
        let end = (4 + len).min(self.rest.len());
        let field = &self.rest[4..end];
        self.rest = &self.rest[end..];
        field
    }
}

impl<'a> Iterator for PairsIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name = std::str::from_utf8(self.field()).unwrap_or("");
        let value = self.field();
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for PairsIter<'_> {}

/// What a filter sees of a request: everything but the body, borrowed from
/// what the gateway sent (copy what you keep).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as the client sent it (still percent-encoded).
    pub path: &'a str,
    /// The query string without the `?`; empty when there is none.
    pub query: &'a str,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub version: &'a str,
    pub headers: Pairs<'a>,
    /// The client's address and port, e.g. `192.0.2.7:51234`.
    pub client_addr: &'a str,
    /// The address and port of the listener that took the request.
    pub server_addr: &'a str,
    /// The app the request was mapped to; empty for server-wide filters,
    /// which run before the mapping.
    pub app: &'a str,
}

impl<'a> RequestHead<'a> {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.get(name)
    }

    /// The client's IP address as text, without the port or brackets.
    pub fn client_ip(&self) -> &'a str {
        let addr = self.client_addr;
        match addr.rsplit_once(':') {
            Some((ip, _port)) => ip.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        }
    }
}

/// A complete response produced by a filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![Header::new("content-type", "text/plain; charset=utf-8")],
            body: body.into().into_bytes(),
        }
    }
}

/// A rewrite of the request before it goes on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// New path (may carry `?query`, which then replaces the query).
    pub path: Option<String>,
    /// Headers to set (replacing any of the same name).
    pub set_headers: Vec<Header>,
    /// Header names to remove.
    pub remove_headers: Vec<String>,
}

/// What a request filter decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Decision {
    /// Let the request go on unchanged.
    #[default]
    Continue,
    /// Refuse the request with this status (4xx or 5xx) and a generic body.
    Deny(u16),
    /// Answer the request with this response; the app never sees it.
    Respond(Response),
    /// Change the request, then let it go on.
    Rewrite(Rewrite),
}

/// Changes a response filter makes to the response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderChanges {
    /// Headers to set (replacing any of the same name).
    pub set: Vec<Header>,
    /// Headers to add next to existing ones.
    pub append: Vec<Header>,
    /// Header names to remove.
    pub remove: Vec<String>,
}

impl HeaderChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.append.is_empty() && self.remove.is_empty()
    }
}

/// One FastCGI/CGI parameter; the value is raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Vec<u8>,
}

impl Param {
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Param {
        Param {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Which hooks a plugin implements. The gateway calls no other hook, so a
/// plugin pays nothing for the hooks it leaves out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Plugin::on_request`](crate::Plugin::on_request)
    pub request_filter: bool,
    /// [`Plugin::on_response`](crate::Plugin::on_response)
    pub response_filter: bool,
    /// [`Plugin::inject_env`](crate::Plugin::inject_env)
    pub inject_env: bool,
    /// [`Plugin::launch`](crate::Plugin::launch)
    pub launcher: bool,
}

impl Capabilities {
    pub const NONE: Capabilities = Capabilities {
        request_filter: false,
        response_filter: false,
        inject_env: false,
        launcher: false,
    };
    pub const REQUEST_FILTER: Capabilities = Capabilities {
        request_filter: true,
        ..Capabilities::NONE
    };
    pub const RESPONSE_FILTER: Capabilities = Capabilities {
        response_filter: true,
        ..Capabilities::NONE
    };
    pub const INJECT_ENV: Capabilities = Capabilities {
        inject_env: true,
        ..Capabilities::NONE
    };
    pub const LAUNCHER: Capabilities = Capabilities {
        launcher: true,
        ..Capabilities::NONE
    };

    /// Both sets together.
    pub const fn with(self, other: Capabilities) -> Capabilities {
        Capabilities {
            request_filter: self.request_filter || other.request_filter,
            response_filter: self.response_filter || other.response_filter,
            inject_env: self.inject_env || other.inject_env,
            launcher: self.launcher || other.launcher,
        }
    }
}

/// A log level for [`crate::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// What a launcher is told about the app it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppConfig {
    /// The app's name from `[[app]]`.
    pub name: String,
    /// The app's `[app.options]` table as JSON text (`{}` when absent).
    pub options: String,
    /// `command` from the config, when given: it overrides what the
    /// launcher would run.
    pub command: Option<String>,
    /// `args` from the config.
    pub args: Vec<String>,
    /// `env` from the config.
    pub env: Vec<(String, String)>,
    /// The server's document root.
    pub root: String,
    /// `instance_max_requests` (0 = unlimited).
    pub instance_max_requests: u64,
    /// The folder of fastgate.toml: relative paths in `options` resolve
    /// against it (see [`AppConfig::path`]).
    pub config_dir: String,
}

impl AppConfig {
    /// A path from the options, resolved the way the config file resolves
    /// its own: relative paths against the config file's folder.
    pub fn path(&self, path: &str) -> String {
        if path.starts_with('/') || self.config_dir.is_empty() {
            path.to_string()
        } else {
            format!(
                "{}/{}",
                self.config_dir.trim_end_matches('/'),
                path.trim_start_matches("./")
            )
        }
    }
}

/// How the gateway talks to the processes a launcher describes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AppProtocol {
    /// A pool of FastCGI processes, each listening on fd 0.
    #[default]
    FastCgi,
    /// RFC 3875 CGI: one process per request.
    Cgi,
}

/// A file the gateway writes into the app's runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFile {
    /// A plain file name: no `/`, not `.` or `..`.
    pub name: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

/// Handler-mapping defaults a launcher proposes; the app's own settings in
/// fastgate.toml win over each of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingDefaults {
    /// Patterns such as `*.php` or `/*`.
    pub handles: Vec<String>,
    /// `file`, `directory`, `either` or `unspecified`.
    pub resource_type: Option<String>,
    /// A script for requests whose file does not exist (front controller).
    pub fallback: Option<String>,
    /// URL prefix → folder served as static files by the gateway.
    pub static_dirs: Vec<(String, String)>,
}

/// How to start an app. In `command`, `args`, `env` values and
/// `working_dir`, the text `{runtime_dir}` stands for the app's runtime
/// directory, where `files` are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnSpec {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub files: Vec<RuntimeFile>,
    pub protocol: AppProtocol,
    /// Parameters sent with every request, before the request's own.
    pub params: Vec<(String, String)>,
    pub mapping: MappingDefaults,
    /// A default for the app's `request_timeout`, in milliseconds; the
    /// app's own setting wins.
    pub request_timeout_ms: Option<u64>,
}
