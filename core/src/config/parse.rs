//! Value parsers: the text of one setting → its typed value.
//!
//! Each takes the value as written and returns the value or the message
//! for the error (without position or key: the caller adds those). They
//! are shared by the config file and by launchers, which propose handler
//! patterns and resource types of their own. This module knows nothing of
//! files, tables or defaults.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;

use super::raw::{OneOrMany, Scalar};
use super::{
    ErrorDetails, HandlerPattern, OnError, Protocol, ResourceType, StaticFileIo, StderrMode,
};

/// `*.php`, `/prefix/*`, `/*`, `*`, `/exact/path`.
pub fn parse_pattern(p: &str) -> Result<HandlerPattern, String> {
    let bad = || {
        format!(
            "{p:?} is not a handler pattern: use \"*.ext\", \"/prefix/*\", \"/exact/path\" or \"*\""
        )
    };
    if p == "*" {
        return Ok(HandlerPattern::Any);
    }
    if let Some(ext) = p.strip_prefix("*.") {
        if !ext.is_empty()
            && ext
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Ok(HandlerPattern::Extension(ext.to_ascii_lowercase()));
        }
        return Err(bad());
    }
    if !p.starts_with('/') || p.contains("//") || p.split('/').any(|s| s == ".." || s == ".") {
        return Err(bad());
    }
    if let Some(prefix) = p.strip_suffix("/*") {
        if prefix.contains('*') {
            return Err(bad());
        }
        return Ok(HandlerPattern::Prefix(prefix.to_string()));
    }
    if p.contains('*') {
        return Err(bad());
    }
    Ok(HandlerPattern::Exact(p.trim_end_matches('/').to_string()).normalize_root())
}

/// A handler pattern as it is written in the file.
impl std::fmt::Display for HandlerPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerPattern::Extension(e) => write!(f, "*.{e}"),
            HandlerPattern::Prefix(p) => write!(f, "{p}/*"),
            HandlerPattern::Exact(p) => f.write_str(p),
            HandlerPattern::Any => f.write_str("*"),
        }
    }
}

impl HandlerPattern {
    /// `"/"` as an exact pattern means the root path itself.
    fn normalize_root(self) -> HandlerPattern {
        match self {
            HandlerPattern::Exact(p) if p.is_empty() => HandlerPattern::Exact("/".into()),
            other => other,
        }
    }
}

/// Sizes: an integer number of bytes, or a number with a unit: `k`/`KiB`
/// (1024), `m`/`MiB`, `g`/`GiB`, `KB` (1000), `MB`, `GB`, `B`.
pub(super) fn parse_size(v: &Scalar) -> Result<u64, String> {
    let text = match v {
        Scalar::Int(n) if *n >= 0 => return Ok(*n as u64),
        Scalar::Int(_) => return Err("must not be negative".into()),
        Scalar::Str(s) => s.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a size (e.g. 1048576, \"512KiB\", \"100MiB\", \"1GiB\")")
    })?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown size unit (use B, KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Durations: a bare integer number of seconds, or humantime text ("90s", "5m", "1h 30m").
pub(super) fn parse_duration(v: &Scalar) -> Result<Duration, String> {
    match v {
        Scalar::Int(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
        Scalar::Int(_) => Err("must not be negative".into()),
        Scalar::Str(s) => {
            let s = s.trim();
            if let Ok(secs) = s.parse::<u64>() {
                return Ok(Duration::from_secs(secs));
            }
            humantime::parse_duration(s).map_err(|e| {
                format!("{s:?} is not a duration ({e}; e.g. \"90s\", \"5m\", \"1h 30m\")")
            })
        }
    }
}

/// `file`, `directory`, `either`, `unspecified`.
pub fn parse_resource_type(s: &str) -> Result<ResourceType, String> {
    match s {
        "file" => Ok(ResourceType::File),
        "directory" => Ok(ResourceType::Directory),
        "either" => Ok(ResourceType::Either),
        "unspecified" => Ok(ResourceType::Unspecified),
        other => Err(format!(
            "{other:?}: expected file, directory, either or unspecified"
        )),
    }
}

/// `listen`: one `IP:port` address or a list of them (not empty).
pub(super) fn parse_listen(v: &OneOrMany) -> Result<Vec<SocketAddr>, String> {
    let list = match v {
        OneOrMany::One(s) => std::slice::from_ref(s),
        OneOrMany::Many(list) => list.as_slice(),
    };
    if list.is_empty() {
        return Err("needs at least one address".into());
    }
    list.iter()
        .map(|a| {
            a.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "{a:?} is not an IP:port address (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")"
                )
            })
        })
        .collect()
}

/// An HTTP method in any case (`get` → GET); letters only.
pub(super) fn parse_verb(s: &str) -> Result<Method, String> {
    let upper = s.to_ascii_uppercase();
    Method::from_bytes(upper.as_bytes())
        .ok()
        .filter(|_| !upper.is_empty() && upper.bytes().all(|b| b.is_ascii_uppercase()))
        .ok_or_else(|| format!("{s:?} is not an HTTP method"))
}

/// `fallback`: a URL path from the root, without `..` segments.
pub fn parse_fallback(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.split('/').any(|segment| segment == "..") {
        Ok(s.to_string())
    } else {
        Err("must be a URL path starting with '/' (e.g. \"/index.php\")".into())
    }
}

/// A URL path as a mount or a static folder's `url` is written: decoded
/// (no `%`), absolute, no empty, `.` or `..` segment, no control
/// character, and none of `*`, `?`, `#` (they would never match a
/// normalised request path, or mean something they do not here).
fn plain_url_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err("must start with '/'".into());
    }
    let inner = s.strip_suffix('/').unwrap_or(s);
    if inner
        .split('/')
        .skip(1)
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("must not have empty, '.' or '..' segments".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || matches!(c, '*' | '?' | '#' | '%'))
    {
        return Err(format!(
            "must not contain {c:?} (write the path decoded, without wildcards)"
        ));
    }
    Ok(())
}

/// `mount`: where an app lives in the URL space (IIS's application path,
/// WSGI's `SCRIPT_NAME`). `"/"` (or `""`) is the site root, stored as the
/// empty string; anything else is `/a/b`, without a trailing `/`.
pub fn parse_mount(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "/" {
        return Ok(String::new());
    }
    plain_url_path(s).map_err(|m| format!("{s:?} {m}"))?;
    if s.ends_with('/') {
        return Err(format!(
            "{s:?} must not end with '/' (write {:?}; \"/\" is the site root)",
            s.trim_end_matches('/')
        ));
    }
    Ok(s.to_string())
}

/// A `[[static]]` `url`: a folder-like URL prefix, stored with its
/// trailing `/` (`/wp-content` and `/wp-content/` are the same folder).
/// Not `/` itself: the site root is `[server] root`.
pub(super) fn parse_static_url(s: &str) -> Result<String, String> {
    plain_url_path(s).map_err(|m| format!("{s:?} {m}"))?;
    if s == "/" {
        return Err(
            "\"/\" is the whole site: serve it from [server] root, and give [[static]] a prefix such as \"/media/\"".into(),
        );
    }
    Ok(if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    })
}

/// `cache_control`: sent as it is, so it must be a valid header value.
pub(super) fn parse_cache_control(s: &str) -> Result<String, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err("must not be empty (leave the key out for no Cache-Control)".into());
    }
    http::HeaderValue::from_str(trimmed)
        .map(|_| trimmed.to_string())
        .map_err(|_| format!("{s:?} is not a valid header value (visible ASCII only)"))
}

/// `unix` or `tcp`.
pub(super) fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "unix" => Ok(Protocol::Unix),
        "tcp" => Ok(Protocol::Tcp),
        other => Err(format!("{other:?}: expected unix or tcp")),
    }
}

/// IIS stderrMode, spelt in kebab case.
pub(super) fn parse_stderr_mode(s: &str) -> Result<StderrMode, String> {
    match s {
        "return-stderr-in-500" => Ok(StderrMode::ReturnStderrIn500),
        "return-generic-500" => Ok(StderrMode::ReturnGeneric500),
        "ignore-and-return-200" => Ok(StderrMode::IgnoreAndReturn200),
        "terminate-process" => Ok(StderrMode::TerminateProcess),
        other => Err(format!(
            "{other:?}: expected return-stderr-in-500, return-generic-500, ignore-and-return-200 or terminate-process"
        )),
    }
}

/// `[server] error_details`: `local`, `always` or `never`.
pub(super) fn parse_error_details(s: &str) -> Result<ErrorDetails, String> {
    match s {
        "local" => Ok(ErrorDetails::Local),
        "always" => Ok(ErrorDetails::Always),
        "never" => Ok(ErrorDetails::Never),
        other => Err(format!(
            "{other:?}: expected \"local\" (details for loopback clients only), \"always\" or \"never\""
        )),
    }
}

/// `static_file_io`: `inline` or `threads`.
pub(super) fn parse_static_file_io(s: &str) -> Result<StaticFileIo, String> {
    match s {
        "inline" => Ok(StaticFileIo::Inline),
        "threads" => Ok(StaticFileIo::Threads),
        other => Err(format!(
            "{other:?}: expected \"inline\" (read on the connection's thread) or \"threads\" (on a thread pool, for slow or network file systems)"
        )),
    }
}

/// A plugin's `on_error`: `fail-closed` or `fail-open`.
pub(super) fn parse_on_error(s: &str) -> Result<OnError, String> {
    match s {
        "fail-closed" => Ok(OnError::FailClosed),
        "fail-open" => Ok(OnError::FailOpen),
        other => Err(format!(
            "{other:?}: expected \"fail-closed\" or \"fail-open\""
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(
            parse_pattern("*.PHP"),
            Ok(HandlerPattern::Extension("php".into()))
        );
        assert_eq!(
            parse_pattern("/app/*"),
            Ok(HandlerPattern::Prefix("/app".into()))
        );
        assert_eq!(
            parse_pattern("/*"),
            Ok(HandlerPattern::Prefix(String::new()))
        );
        assert_eq!(parse_pattern("*"), Ok(HandlerPattern::Any));
        assert_eq!(
            parse_pattern("/status"),
            Ok(HandlerPattern::Exact("/status".into()))
        );
        for bad in ["foo", "*.", "/a/*/b", "**", "/a/../b", "*.p/hp"] {
            assert!(parse_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts() {
        assert_eq!(parse_mount("/"), Ok(String::new()));
        assert_eq!(parse_mount(""), Ok(String::new()));
        assert_eq!(parse_mount("/trac"), Ok("/trac".into()));
        assert_eq!(parse_mount("/a/b"), Ok("/a/b".into()));
        for bad in [
            "trac", "/trac/", "/a//b", "/a/../b", "/./a", "/a/*", "/a%20b", "/a?b", "/a\nb",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad:?}");
        }
        assert!(parse_mount("/trac/").unwrap_err().contains("\"/trac\""));
    }

    #[test]
    fn static_urls_and_cache_control() {
        assert_eq!(parse_static_url("/media"), Ok("/media/".into()));
        assert_eq!(parse_static_url("/wp-content/"), Ok("/wp-content/".into()));
        for bad in ["/", "media/", "/a/../b/", "//a/", "/a/%2e%2e/"] {
            assert!(parse_static_url(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_cache_control(" public, max-age=3600 "),
            Ok("public, max-age=3600".into())
        );
        assert!(parse_cache_control("").is_err());
        assert!(parse_cache_control("max-age=1\r\nX-Evil: 1").is_err());
    }

    #[test]
    fn error_details_shows_detail_to_loopback_clients_by_default() {
        use std::net::IpAddr;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(parse_error_details("local"), Ok(ErrorDetails::Local));
        assert_eq!(parse_error_details("never"), Ok(ErrorDetails::Never));
        assert_eq!(parse_error_details("always"), Ok(ErrorDetails::Always));
        assert!(parse_error_details("detailed").is_err());
        let local = ErrorDetails::Local;
        for loopback in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(local.shown_to(ip(loopback)), "{loopback}");
            assert!(!ErrorDetails::Never.shown_to(ip(loopback)), "{loopback}");
        }
        for remote in [
            "192.0.2.2",
            "10.0.0.1",
            "::ffff:192.0.2.2",
            "2001:db8::1",
            "0.0.0.0",
        ] {
            assert!(!local.shown_to(ip(remote)), "{remote}");
            assert!(ErrorDetails::Always.shown_to(ip(remote)), "{remote}");
        }
    }
}
