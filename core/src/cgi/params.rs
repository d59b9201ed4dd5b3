//! The CGI/1.1 variables of one request (RFC 3875 §4.1, with the additions
//! nginx's `fastcgi_params` and php-fpm users rely on).
//!
//! Built once per request from what the HTTP layer knows ([`RequestInfo`])
//! and what the router decided ([`ScriptTarget`]). Security rules live here
//! because this is where client input becomes app input:
//! - request headers only ever become `HTTP_*` variables, so a client cannot
//!   set `PHP_VALUE`, `SCRIPT_FILENAME` or any other parameter;
//! - `Proxy:` is never passed (httpoxy, CVE-2016-5385);
//! - header names containing `_` or anything outside `[A-Za-z0-9-]` are
//!   dropped, so `X-Remote_User` cannot pose as `X-Remote-User`;
//! - a request filter's parameters ([`add_from_filters`]) never take a name
//!   the gateway sets ([`reserved`]): a filter deriving them from what a
//!   client sent must not be able to point `SCRIPT_FILENAME` elsewhere or
//!   set `PHP_VALUE` (CVE-2019-11043 showed what that gives).

use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;

use http::{HeaderMap, Method, Uri, Version, header};

use super::ScriptTarget;

/// The CGI variables of one request, in order. Names and values are bytes:
/// header values need not be UTF-8.
///
/// Every name and value lives in one byte buffer, and a pair is where its
/// name and value lie in it: building ~35 variables costs two allocations,
/// not ~70, and the FastCGI encoder and the CGI runner read them in place.
/// [`build`] appends the variables that cannot repeat without looking for
/// an earlier one; only [`Params::set`] (configured, filter-given and
/// plugin-injected names) searches.
#[derive(Clone, Default)]
pub struct Params {
    /// Names and values, back to back; a replaced value's old bytes stay
    /// (replacing is rare: an override, not the common case).
    bytes: Vec<u8>,
    pairs: Vec<Pair>,
}

#[derive(Debug, Clone)]
struct Pair {
    name: Range<usize>,
    value: Range<usize>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_capacity(bytes: usize, pairs: usize) -> Self {
        Params {
            bytes: Vec::with_capacity(bytes),
            pairs: Vec::with_capacity(pairs),
        }
    }

    /// Sets a variable, replacing one of the same name in place.
    pub fn set(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        let value = self.append(value);
        let bytes = &self.bytes;
        match self
            .pairs
            .iter_mut()
            .find(|p| bytes[p.name.clone()] == *name)
        {
            Some(pair) => pair.value = value,
            None => {
                let name = self.append(name);
                self.pairs.push(Pair { name, value });
            }
        }
    }

    /// Appends a variable without looking for one of the same name: for
    /// names that cannot be there yet.
    fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_with(name, |bytes| bytes.extend_from_slice(value));
    }

    /// Appends a variable whose value `write` appends to the buffer it is
    /// given, without looking for one of the same name (see [`Self::push`]).
    fn push_with(&mut self, name: &[u8], write: impl FnOnce(&mut Vec<u8>)) {
        self.push_written(|out| out.extend_from_slice(name), write);
    }

    /// Appends a variable whose name and value the two functions append
    /// to the buffer they are given, without looking for one of the same
    /// name (see [`Self::push`]).
    fn push_written(&mut self, name: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        name(&mut self.bytes);
        let middle = self.bytes.len();
        value(&mut self.bytes);
        let (name, value) = (start..middle, middle..self.bytes.len());
        self.pairs.push(Pair { name, value });
    }

    /// Appends `more` to the value of the variable pushed last, which must
    /// end the buffer (nothing was [`set`](Self::set) since).
    fn extend_last(&mut self, more: &[u8]) {
        if let Some(last) = self.pairs.last_mut() {
            debug_assert_eq!(last.value.end, self.bytes.len());
            self.bytes.extend_from_slice(more);
            last.value.end = self.bytes.len();
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs
            .iter()
            .map(|p| (&self.bytes[p.name.clone()], &self.bytes[p.value.clone()]))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// At least the bytes the pairs take in the FastCGI name-value encoding
    /// (at most 8 length bytes a pair), to size the encoder's buffer once.
    pub fn encoded_len_bound(&self) -> usize {
        self.bytes.len() + 8 * self.pairs.len()
    }
}

/// Equal when they hold the same variables in the same order (the buffer's
/// unused bytes do not count).
impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Params {}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

/// What the HTTP layer knows about a request.
#[derive(Debug, Clone)]
pub struct RequestInfo<'a> {
    pub method: &'a Method,
    /// The request target as received (origin-form, or absolute-form).
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub remote_addr: SocketAddr,
    pub local_addr: SocketAddr,
    /// The real body length (bodies are buffered before dispatch).
    pub content_length: u64,
    pub https: bool,
    pub server_software: &'a str,
}

/// Builds every CGI/1.1 variable for `target`, then applies `extra` (the
/// app's configured params, which override: configuration is trusted).
pub fn build(req: &RequestInfo<'_>, target: &ScriptTarget, extra: &[(String, String)]) -> Params {
    let mut p = Params::with_capacity(
        capacity(req, target, extra),
        24 + req.headers.keys_len() + extra.len(),
    );
    // Every name pushed here is distinct: none is searched for.
    p.push(b"GATEWAY_INTERFACE", b"CGI/1.1");
    p.push(b"SERVER_SOFTWARE", req.server_software.as_bytes());
    p.push_with(b"SERVER_NAME", |out| match server_name(req) {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => put_ip(out, req.local_addr.ip()),
    });
    p.push_with(b"SERVER_ADDR", |out| put_ip(out, req.local_addr.ip()));
    p.push_with(b"SERVER_PORT", |out| {
        put_decimal(out, u64::from(req.local_addr.port()))
    });
    p.push(b"SERVER_PROTOCOL", protocol(req.version).as_bytes());
    p.push(b"REQUEST_METHOD", req.method.as_str().as_bytes());
    p.push_with(b"REQUEST_URI", |out| {
        out.extend_from_slice(req.uri.path().as_bytes());
        if let Some(q) = req.uri.query() {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
    });
    p.push(
        b"REQUEST_SCHEME",
        if req.https { b"https" } else { b"http" },
    );
    if req.https {
        // PHP treats any non-empty HTTPS as on: set it only when it is.
        p.push(b"HTTPS", b"on");
    }
    p.push(b"QUERY_STRING", req.uri.query().unwrap_or("").as_bytes());
    add_script(&mut p, target);
    p.push(
        b"CONTENT_TYPE",
        req.headers
            .get(header::CONTENT_TYPE)
            .map_or(&[][..], |v| v.as_bytes()),
    );
    // Like nginx: the length when there is a body (or one was announced),
    // else empty. The body is buffered, so this is always the real length.
    let announced = req.headers.contains_key(header::CONTENT_LENGTH)
        || req.headers.contains_key(header::TRANSFER_ENCODING);
    p.push_with(b"CONTENT_LENGTH", |out| {
        if req.content_length > 0 || announced {
            put_decimal(out, req.content_length);
        }
    });
    p.push_with(b"REMOTE_ADDR", |out| put_ip(out, req.remote_addr.ip()));
    p.push_with(b"REMOTE_PORT", |out| {
        put_decimal(out, u64::from(req.remote_addr.port()))
    });
    // php-cgi's cgi.force_redirect refuses to run without it.
    p.push(b"REDIRECT_STATUS", b"200");
    add_headers(&mut p, req.headers);
    // HTTP/2 carries the host as `:authority`, not as a Host header; apps
    // (PHP's $_SERVER['HTTP_HOST']) expect it as HTTP_HOST, as nginx gives it.
    // Without a Host header there is no HTTP_HOST yet.
    if !req.headers.contains_key(header::HOST)
        && let Some(authority) = req.uri.authority()
    {
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        p.push(b"HTTP_HOST", host.as_bytes());
    }
    // Configuration may name any variable, twice even: these search.
    for (name, value) in extra {
        p.set(name, value);
    }
    p
}

/// The variables that say which script runs and where it lives.
fn add_script(p: &mut Params, target: &ScriptTarget) {
    let root = target.document_root.as_os_str().as_bytes();
    p.push(b"SCRIPT_NAME", target.script_name.as_bytes());
    p.push(
        b"SCRIPT_FILENAME",
        target.script_filename.as_os_str().as_bytes(),
    );
    p.push(b"PATH_INFO", target.path_info.as_bytes());
    if !target.path_info.is_empty() {
        p.push_with(b"PATH_TRANSLATED", |out| {
            out.extend_from_slice(root);
            out.extend_from_slice(target.path_info.as_bytes());
        });
    }
    p.push(b"DOCUMENT_ROOT", root);
    p.push(b"DOCUMENT_URI", target.document_uri.as_bytes());
}

/// Bytes enough for every name and value [`build`] writes, so that its
/// buffer is allocated once: the fixed names and short values, plus
/// everything whose length comes from the request, the target or `extra`.
fn capacity(req: &RequestInfo<'_>, target: &ScriptTarget, extra: &[(String, String)]) -> usize {
    let uri = req.uri.path().len() + req.uri.query().map_or(0, str::len);
    let root = target.document_root.as_os_str().len();
    let headers: usize = req
        .headers
        .iter()
        .map(|(n, v)| "HTTP_".len() + n.as_str().len() + v.len() + 2)
        .sum();
    let extra: usize = extra.iter().map(|(n, v)| n.len() + v.len()).sum();
    512 + req.server_software.len()
        + 2 * uri
        + 2 * root
        + target.script_name.len()
        + target.script_filename.as_os_str().len()
        + 2 * target.path_info.len()
        + target.document_uri.len()
        + headers
        + extra
}

/// Appends `ip` as its `Display` form. IPv4, the common case, is written
/// by hand: the formatter costs more than the rest of a variable.
fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                put_decimal(out, u64::from(octet));
            }
        }
        // Writing to a Vec cannot fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `n` in decimal, without the formatter (`itoa`, which hyper and
/// `http` use for the same reason).
fn put_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The variables [`build`] sets from the request and the connection.
const GATEWAY_VARIABLES: &[&str] = &[
    "GATEWAY_INTERFACE",
    "SERVER_SOFTWARE",
    "SERVER_NAME",
    "SERVER_ADDR",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REQUEST_METHOD",
    "REQUEST_URI",
    "REQUEST_SCHEME",
    "HTTPS",
    "QUERY_STRING",
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "DOCUMENT_ROOT",
    "DOCUMENT_URI",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REDIRECT_STATUS",
];

/// Whether a request filter may not give the parameter `name` (ASCII
/// case-insensitively): a variable [`build`] sets, a request header's
/// `HTTP_*` (a filter changes headers with a rewrite instead), or PHP's
/// per-request ini overrides `PHP_VALUE` and `PHP_ADMIN_VALUE`. What is
/// left is what a filter is for: `REMOTE_USER`, `AUTH_TYPE`, names of the
/// app's own.
pub fn reserved(name: &str) -> bool {
    let starts_http = name
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("HTTP_"));
    starts_http
        || GATEWAY_VARIABLES
            .iter()
            .chain(&["PHP_VALUE", "PHP_ADMIN_VALUE"])
            .any(|v| v.eq_ignore_ascii_case(name))
}

/// Adds the parameters request filters gave (`plugin::FilterParams`,
/// already checked by the plugin host): after [`build`], so a filter's
/// value replaces one of the same name from `[app.params]` or the launcher
/// (a per-request value over the app's constant), and before the env
/// injectors, which see it. A [`reserved`] name is skipped.
pub fn add_from_filters<'a>(p: &mut Params, params: impl Iterator<Item = (&'a str, &'a [u8])>) {
    for (name, value) in params {
        if !reserved(name) {
            p.set(name, value);
        }
    }
}

/// Where a variable's value comes from, which says whose doing a value too
/// large to pass on is: the client's (its headers, its URI) or the
/// gateway's and its configuration's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Headers,
    Uri,
    Gateway,
}

/// The [`Origin`] of the variable `name`, as [`build`] sets it.
pub fn origin(name: &str) -> Origin {
    match name {
        "CONTENT_TYPE" | "SERVER_NAME" => Origin::Headers,
        "REQUEST_URI" | "QUERY_STRING" | "SCRIPT_NAME" | "SCRIPT_FILENAME" | "PATH_INFO"
        | "PATH_TRANSLATED" | "DOCUMENT_URI" => Origin::Uri,
        _ if name.starts_with("HTTP_") => Origin::Headers,
        _ => Origin::Gateway,
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `SERVER_NAME`: the Host header without its port; `None` for the local
/// address instead.
fn server_name<'a>(req: &RequestInfo<'a>) -> Option<&'a str> {
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())?;
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port → v6
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b));
    valid.then_some(name)
}

/// Headers that CGI variables already carry, and headers never passed.
fn skipped(name: &str) -> bool {
    matches!(name, "content-type" | "content-length" | "proxy")
}

/// `HTTP_*` variables from the request headers (see the module docs). A
/// header's values are joined into one variable (`; ` for cookies, `, `
/// otherwise). No two variables can share a name, so none is searched
/// for: a header name maps to its variable one to one (names with `_` are
/// dropped), and no variable [`build`] sets before starts with `HTTP_`.
fn add_headers(p: &mut Params, headers: &HeaderMap) {
    // `HeaderMap::iter` yields a name's values one after the other (a test
    // pins it): a value of the name seen last extends that name's variable.
    let mut last: Option<(&header::HeaderName, bool)> = None;
    for (name, value) in headers {
        match last {
            Some((seen, passed)) if seen == name => {
                if passed {
                    let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
                    p.extend_last(separator);
                    p.extend_last(value.as_bytes());
                }
                continue;
            }
            _ => {}
        }
        let name_str = name.as_str();
        let passed = !skipped(name_str)
            && name_str
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        last = Some((name, passed));
        if passed {
            p.push_written(
                |out| {
                    out.extend_from_slice(b"HTTP_");
                    out.extend(name_str.bytes().map(|b| {
                        if b == b'-' {
                            b'_'
                        } else {
                            b.to_ascii_uppercase()
                        }
                    }));
                },
                |out| out.extend_from_slice(value.as_bytes()),
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A variable added to `build` must be added to `GATEWAY_VARIABLES`, or
    /// a filter could replace it.
    #[test]
    fn every_variable_build_sets_is_reserved_for_the_gateway() {
        let uri: Uri = "/sub/info.php/x/y?a=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_static("u"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let req = RequestInfo {
            method: &Method::POST,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &headers,
            remote_addr: "127.0.0.1:4000".parse().unwrap(),
            local_addr: "127.0.0.1:80".parse().unwrap(),
            content_length: 3,
            https: true,
            server_software: "fastgate",
        };
        let p = build(&req, &target(), &[("APP_SETTING".into(), "1".into())]);
        for (name, _) in p.iter() {
            let name = std::str::from_utf8(name).unwrap();
            assert_eq!(reserved(name), name != "APP_SETTING", "{name}");
        }
        for free in ["REMOTE_USER", "AUTH_TYPE", "TENANT", "HTTPX"] {
            assert!(!reserved(free), "{free}");
        }
        let mut p = build(&req, &target(), &[("REMOTE_USER".into(), "-".into())]);
        let given: [(&str, &[u8]); 3] = [
            ("REMOTE_USER", b"alice"),
            ("SCRIPT_FILENAME", b"/etc/passwd"),
            ("php_value", b"auto_prepend_file=/tmp/x"),
        ];
        add_from_filters(&mut p, given.into_iter());
        assert_eq!(p.get("REMOTE_USER"), Some(&b"alice"[..]));
        assert_eq!(
            p.get("SCRIPT_FILENAME"),
            Some(&b"/srv/www/sub/info.php"[..])
        );
        assert_eq!(p.get("php_value"), None);
    }
    use http::HeaderValue;
    use std::path::PathBuf;

    fn target() -> ScriptTarget {
        ScriptTarget {
            script_name: "/sub/info.php".into(),
            path_info: "/x/y".into(),
            script_filename: PathBuf::from("/srv/www/sub/info.php"),
            document_root: PathBuf::from("/srv/www"),
            document_uri: "/sub/info.php/x/y".into(),
        }
    }

    fn build_with(method: &str, uri: &str, headers: &[(&str, &[u8])], len: u64) -> Params {
        let method: Method = method.parse().unwrap();
        let uri: Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        let req = RequestInfo {
            method: &method,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &map,
            remote_addr: "[::1]:50000".parse().unwrap(),
            local_addr: "127.0.0.1:8080".parse().unwrap(),
            content_length: len,
            https: false,
            server_software: "fastgate/test",
        };
        build(&req, &target(), &[])
    }

    fn get<'a>(p: &'a Params, name: &str) -> &'a str {
        std::str::from_utf8(p.get(name).unwrap_or_else(|| panic!("{name} missing"))).unwrap()
    }

    #[test]
    fn standard_variables_of_a_get() {
        let p = build_with(
            "GET",
            "/sub/info.php/x/y?q=1&r=%20",
            &[("host", b"example.org:8080")],
            0,
        );
        assert_eq!(get(&p, "GATEWAY_INTERFACE"), "CGI/1.1");
        assert_eq!(get(&p, "SERVER_SOFTWARE"), "fastgate/test");
        assert_eq!(get(&p, "SERVER_NAME"), "example.org");
        assert_eq!(get(&p, "SERVER_PORT"), "8080");
        assert_eq!(get(&p, "SERVER_ADDR"), "127.0.0.1");
        assert_eq!(get(&p, "SERVER_PROTOCOL"), "HTTP/1.1");
        assert_eq!(get(&p, "REQUEST_METHOD"), "GET");
        assert_eq!(get(&p, "REQUEST_URI"), "/sub/info.php/x/y?q=1&r=%20");
        assert_eq!(get(&p, "QUERY_STRING"), "q=1&r=%20");
        assert_eq!(get(&p, "REQUEST_SCHEME"), "http");
        assert!(p.get("HTTPS").is_none());
        assert_eq!(get(&p, "SCRIPT_NAME"), "/sub/info.php");
        assert_eq!(get(&p, "SCRIPT_FILENAME"), "/srv/www/sub/info.php");
        assert_eq!(get(&p, "PATH_INFO"), "/x/y");
        assert_eq!(get(&p, "PATH_TRANSLATED"), "/srv/www/x/y");
        assert_eq!(get(&p, "DOCUMENT_ROOT"), "/srv/www");
        assert_eq!(get(&p, "DOCUMENT_URI"), "/sub/info.php/x/y");
        assert_eq!(get(&p, "CONTENT_LENGTH"), "");
        assert_eq!(get(&p, "CONTENT_TYPE"), "");
        assert_eq!(get(&p, "REMOTE_ADDR"), "::1");
        assert_eq!(get(&p, "REMOTE_PORT"), "50000");
        assert_eq!(get(&p, "REDIRECT_STATUS"), "200");
        assert_eq!(get(&p, "HTTP_HOST"), "example.org:8080");
    }

    #[test]
    fn post_body_variables() {
        let p = build_with(
            "POST",
            "/f.php",
            &[
                ("content-type", b"application/x-www-form-urlencoded"),
                ("content-length", b"7"),
            ],
            7,
        );
        assert_eq!(get(&p, "CONTENT_LENGTH"), "7");
        assert_eq!(get(&p, "CONTENT_TYPE"), "application/x-www-form-urlencoded");
        assert!(p.get("HTTP_CONTENT_TYPE").is_none());
        assert!(p.get("HTTP_CONTENT_LENGTH").is_none());
    }

    #[test]
    fn chunked_body_gets_its_real_length() {
        let p = build_with("POST", "/f.php", &[("transfer-encoding", b"chunked")], 1234);
        assert_eq!(get(&p, "CONTENT_LENGTH"), "1234");
    }

    #[test]
    fn httpoxy_proxy_header_is_never_passed() {
        let p = build_with("GET", "/", &[("proxy", b"http://evil:8080")], 0);
        assert!(p.get("HTTP_PROXY").is_none());
    }

    #[test]
    fn underscore_and_odd_header_names_are_dropped() {
        let p = build_with(
            "GET",
            "/",
            &[
                ("x-remote_user", b"admin"),
                ("x-a.b", b"1"),
                ("x-remote-user", b"bob"),
            ],
            0,
        );
        assert_eq!(get(&p, "HTTP_X_REMOTE_USER"), "bob");
        assert!(
            p.iter()
                .all(|(n, _)| n != b"HTTP_X_A.B" && n != b"HTTP_X_A_B")
        );
    }

    #[test]
    fn clients_cannot_set_non_http_params() {
        let p = build_with(
            "GET",
            "/",
            &[
                ("php-value", b"auto_prepend_file=/etc/passwd"),
                ("script-filename", b"/x"),
            ],
            0,
        );
        assert!(p.get("PHP_VALUE").is_none());
        assert_eq!(get(&p, "HTTP_PHP_VALUE"), "auto_prepend_file=/etc/passwd");
        assert_eq!(get(&p, "SCRIPT_FILENAME"), "/srv/www/sub/info.php");
        for (name, _) in p.iter() {
            let n = std::str::from_utf8(name).unwrap();
            assert!(!n.contains("PHP_VALUE") || n.starts_with("HTTP_"), "{n}");
        }
    }

    #[test]
    fn repeated_headers_are_joined() {
        let p = build_with(
            "GET",
            "/",
            &[
                ("cookie", b"a=1"),
                ("cookie", b"b=2"),
                ("accept", b"x"),
                ("accept", b"y"),
            ],
            0,
        );
        assert_eq!(get(&p, "HTTP_COOKIE"), "a=1; b=2");
        assert_eq!(get(&p, "HTTP_ACCEPT"), "x, y");
    }

    #[test]
    fn non_utf8_header_values_pass_as_bytes() {
        let p = build_with("GET", "/", &[("x-data", b"caf\xe9")], 0);
        assert_eq!(p.get("HTTP_X_DATA").unwrap(), b"caf\xe9");
    }

    #[test]
    fn http2_authority_becomes_http_host() {
        let p = build_with("GET", "http://example.org:8443/x?y=1", &[], 0);
        assert_eq!(get(&p, "HTTP_HOST"), "example.org:8443");
        assert_eq!(get(&p, "SERVER_NAME"), "example.org");
        assert_eq!(get(&p, "REQUEST_URI"), "/x?y=1");
    }

    #[test]
    fn server_name_forms() {
        let p = build_with("GET", "/", &[("host", b"[::1]:8080")], 0);
        assert_eq!(get(&p, "SERVER_NAME"), "::1");
        let p = build_with("GET", "/", &[("host", b"plain")], 0);
        assert_eq!(get(&p, "SERVER_NAME"), "plain");
        let p = build_with("GET", "/", &[("host", b"bad name\"<")], 0);
        assert_eq!(get(&p, "SERVER_NAME"), "127.0.0.1");
        let p = build_with("GET", "/", &[], 0);
        assert_eq!(get(&p, "SERVER_NAME"), "127.0.0.1");
    }

    #[test]
    fn config_params_override() {
        let method = Method::GET;
        let uri: Uri = "/".parse().unwrap();
        let headers = HeaderMap::new();
        let req = RequestInfo {
            method: &method,
            uri: &uri,
            version: Version::HTTP_10,
            headers: &headers,
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            local_addr: "127.0.0.1:2".parse().unwrap(),
            content_length: 0,
            https: true,
            server_software: "x",
        };
        let p = build(
            &req,
            &target(),
            &[
                ("SCRIPT_FILENAME".into(), "/other.php".into()),
                ("APP_ENV".into(), "prod".into()),
            ],
        );
        assert_eq!(get(&p, "SCRIPT_FILENAME"), "/other.php");
        assert_eq!(get(&p, "APP_ENV"), "prod");
        assert_eq!(get(&p, "HTTPS"), "on");
        assert_eq!(get(&p, "SERVER_PROTOCOL"), "HTTP/1.0");
    }

    fn names(p: &Params) -> Vec<String> {
        p.iter()
            .map(|(n, _)| String::from_utf8(n.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn interleaved_repeated_headers_give_one_variable_each() {
        let p = build_with(
            "GET",
            "/",
            &[
                ("cookie", b"a=1"),
                ("accept", b"x"),
                ("x-skip_me", b"1"),
                ("cookie", b"b=2"),
                ("accept", b"y"),
                ("x-skip_me", b"2"),
                ("cookie", b"c=3"),
                ("proxy", b"http://evil"),
                ("proxy", b"http://evil2"),
            ],
            0,
        );
        assert_eq!(get(&p, "HTTP_COOKIE"), "a=1; b=2; c=3");
        assert_eq!(get(&p, "HTTP_ACCEPT"), "x, y");
        let http: Vec<String> = names(&p)
            .into_iter()
            .filter(|n| n.starts_with("HTTP_"))
            .collect();
        // In the order the names were first given, once each.
        assert_eq!(http, ["HTTP_COOKIE", "HTTP_ACCEPT"]);
    }

    #[test]
    fn config_params_replace_in_place_and_the_last_of_a_repeated_name_wins() {
        let method = Method::GET;
        let uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("client.example"));
        let req = RequestInfo {
            method: &method,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &headers,
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            local_addr: "127.0.0.1:2".parse().unwrap(),
            content_length: 0,
            https: false,
            server_software: "x",
        };
        let plain = build(&req, &target(), &[]);
        let extra = [
            ("HTTP_HOST".into(), "configured.example".into()),
            ("APP_ENV".into(), "dev".into()),
            ("REMOTE_PORT".into(), "9".into()),
            ("APP_ENV".into(), "prod".into()),
        ];
        let p = build(&req, &target(), &extra);
        assert_eq!(get(&p, "HTTP_HOST"), "configured.example");
        assert_eq!(get(&p, "REMOTE_PORT"), "9");
        assert_eq!(get(&p, "APP_ENV"), "prod");
        // Replaced variables keep their place; new ones come last, once.
        let mut expected = names(&plain);
        expected.push("APP_ENV".into());
        assert_eq!(names(&p), expected);
    }

    #[test]
    fn filter_and_plugin_params_replace_configured_ones_in_place() {
        let req_uri: Uri = "/".parse().unwrap();
        let headers = HeaderMap::new();
        let req = RequestInfo {
            method: &Method::GET,
            uri: &req_uri,
            version: Version::HTTP_11,
            headers: &headers,
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            local_addr: "127.0.0.1:2".parse().unwrap(),
            content_length: 0,
            https: false,
            server_software: "x",
        };
        let extra = [("TENANT".into(), "configured".into())];
        let mut p = build(&req, &target(), &extra);
        let before = names(&p);
        let given: [(&str, &[u8]); 2] = [("TENANT", b"from-filter"), ("REMOTE_USER", b"alice")];
        add_from_filters(&mut p, given.into_iter());
        assert_eq!(get(&p, "TENANT"), "from-filter");
        // What an env injector does (`plugin::Chain::inject_env`).
        p.set(b"TENANT", b"from-plugin");
        p.set("REMOTE_USER", "bob");
        p.set("PLUGIN_ONLY", b"\xff");
        assert_eq!(get(&p, "TENANT"), "from-plugin");
        assert_eq!(get(&p, "REMOTE_USER"), "bob");
        assert_eq!(p.get("PLUGIN_ONLY"), Some(&b"\xff"[..]));
        let mut expected = before;
        expected.extend(["REMOTE_USER".into(), "PLUGIN_ONLY".into()]);
        assert_eq!(names(&p), expected);
        assert_eq!(p.len(), expected.len());
    }

    #[test]
    fn replaced_values_leave_no_trace_in_equality_or_iteration() {
        let mut a = Params::new();
        a.set("A", "1");
        a.set("B", "2");
        a.set("A", "one");
        let mut b = Params::new();
        b.set("A", "one");
        b.set("B", "2");
        assert_eq!(a, b);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [(&b"A"[..], &b"one"[..]), (b"B", b"2")]
        );
        assert_eq!(format!("{a:?}"), r#"{"A": "one", "B": "2"}"#);
        assert!(Params::new().is_empty());
    }

    #[test]
    fn addresses_and_numbers_read_as_display_gives_them() {
        for addr in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.100.9:8080",
            "[::1]:1",
            "[2001:db8::8:800:200c:417a]:443",
            "[::ffff:192.0.2.1]:80",
            "[fe80::1]:22",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            put_ip(&mut out, addr.ip());
            assert_eq!(out, addr.ip().to_string().as_bytes());
            out.clear();
            put_decimal(&mut out, u64::from(addr.port()));
            assert_eq!(out, addr.port().to_string().as_bytes());
        }
        for n in [0, 7, 10, 99, 1234, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn encoded_len_bound_holds_the_encoded_pairs() {
        let p = build_with(
            "GET",
            "/sub/info.php/x/y?q=1",
            &[("host", b"example.org"), ("x-long", &[b'v'; 300])],
            0,
        );
        let encoded: usize = p
            .iter()
            .map(|(n, v)| crate::fcgi::proto::pair_len(n, v))
            .sum();
        assert!(encoded <= p.encoded_len_bound());
    }
}
