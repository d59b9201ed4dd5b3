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

use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;

use http::{HeaderMap, Method, Uri, Version, header};

use super::ScriptTarget;

/// The CGI variables of one request, in order. Names and values are bytes:
/// header values need not be UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable, replacing one of the same name in place.
    pub fn set(&mut self, name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        let value = value.into();
        match self.pairs.iter_mut().find(|(n, _)| *n == name) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
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
    let mut p = Params {
        pairs: Vec::with_capacity(32 + req.headers.len()),
    };
    let query = req.uri.query().unwrap_or("");
    let request_uri = match req.uri.query() {
        Some(q) => format!("{}?{q}", req.uri.path()),
        None => req.uri.path().to_string(),
    };
    p.set("GATEWAY_INTERFACE", "CGI/1.1");
    p.set("SERVER_SOFTWARE", req.server_software);
    p.set("SERVER_NAME", server_name(req));
    p.set("SERVER_ADDR", req.local_addr.ip().to_string());
    p.set("SERVER_PORT", req.local_addr.port().to_string());
    p.set("SERVER_PROTOCOL", protocol(req.version));
    p.set("REQUEST_METHOD", req.method.as_str());
    p.set("REQUEST_URI", request_uri);
    p.set("REQUEST_SCHEME", if req.https { "https" } else { "http" });
    if req.https {
        // PHP treats any non-empty HTTPS as on: set it only when it is.
        p.set("HTTPS", "on");
    }
    p.set("QUERY_STRING", query);
    p.set("SCRIPT_NAME", target.script_name.as_str());
    p.set(
        "SCRIPT_FILENAME",
        target.script_filename.as_os_str().as_bytes(),
    );
    p.set("PATH_INFO", target.path_info.as_str());
    if !target.path_info.is_empty() {
        let mut translated = target.document_root.as_os_str().as_bytes().to_vec();
        translated.extend_from_slice(target.path_info.as_bytes());
        p.set("PATH_TRANSLATED", translated);
    }
    p.set("DOCUMENT_ROOT", target.document_root.as_os_str().as_bytes());
    p.set("DOCUMENT_URI", target.document_uri.as_str());
    p.set(
        "CONTENT_TYPE",
        req.headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default(),
    );
    // Like nginx: the length when there is a body (or one was announced),
    // else empty. The body is buffered, so this is always the real length.
    let announced = req.headers.contains_key(header::CONTENT_LENGTH)
        || req.headers.contains_key(header::TRANSFER_ENCODING);
    p.set(
        "CONTENT_LENGTH",
        if req.content_length > 0 || announced {
            req.content_length.to_string()
        } else {
            String::new()
        },
    );
    p.set("REMOTE_ADDR", req.remote_addr.ip().to_string());
    p.set("REMOTE_PORT", req.remote_addr.port().to_string());
    // php-cgi's cgi.force_redirect refuses to run without it.
    p.set("REDIRECT_STATUS", "200");
    add_headers(&mut p, req.headers);
    // HTTP/2 carries the host as `:authority`, not as a Host header; apps
    // (PHP's $_SERVER['HTTP_HOST']) expect it as HTTP_HOST, as nginx gives it.
    if !req.headers.contains_key(header::HOST)
        && let Some(authority) = req.uri.authority()
    {
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        p.set("HTTP_HOST", host);
    }
    for (name, value) in extra {
        p.set(name.as_str(), value.as_str());
    }
    p
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

/// `SERVER_NAME`: the Host header without its port, else the local address.
fn server_name(req: &RequestInfo<'_>) -> String {
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host());
    if let Some(host) = host {
        let name = if let Some(rest) = host.strip_prefix('[') {
            // [v6]:port → v6
            rest.split(']').next().unwrap_or("")
        } else {
            host.rsplit_once(':').map_or(host, |(name, _)| name)
        };
        if !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
        {
            return name.to_string();
        }
    }
    req.local_addr.ip().to_string()
}

/// Headers that CGI variables already carry, and headers never passed.
fn skipped(name: &str) -> bool {
    matches!(name, "content-type" | "content-length" | "proxy")
}

/// `HTTP_*` variables from the request headers (see the module docs).
fn add_headers(p: &mut Params, headers: &HeaderMap) {
    for name in headers.keys() {
        let name_str = name.as_str();
        if skipped(name_str)
            || !name_str
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            continue;
        }
        let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
        let mut value = Vec::new();
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(separator);
            }
            value.extend_from_slice(v.as_bytes());
        }
        let mut var = Vec::with_capacity(5 + name_str.len());
        var.extend_from_slice(b"HTTP_");
        var.extend(name_str.bytes().map(|b| {
            if b == b'-' {
                b'_'
            } else {
                b.to_ascii_uppercase()
            }
        }));
        p.set(var, value);
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
}
