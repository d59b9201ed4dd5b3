//! An example fastgate filter, built as a wasm component or a native
//! library from this one source:
//!
//! ```sh
//! cargo build -p path-filter --release --target wasm32-wasip2   # target/wasm32-wasip2/release/path_filter.wasm
//! cargo build -p path-filter --release                          # target/release/libpath_filter.so
//! ```
//!
//! ```toml
//! [[plugin]]
//! name = "guard"
//! path = "target/wasm32-wasip2/release/path_filter.wasm"
//! config = { deny_paths = ["/admin"], deny_user_agents = ["BadBot"], respond = { "/ping" = "pong" } }
//! [server]
//! plugins = ["guard"]
//! ```
//!
//! Paths are matched on `RequestHead::path`, the decoded and normalised
//! path the gateway maps: `/%61dmin/x.php`, `//admin/x.php` and
//! `/a/../admin/x.php` are all `/admin/x.php` there, so none of them gets
//! past `deny_paths = ["/admin"]`. The path as the client sent it is
//! `raw_path`; it is only passed on (`x-original-path`), never matched.

use std::collections::BTreeMap;

use fastgate_sdk::{
    Capabilities, Decision, Header, HeaderChanges, Level, Pairs, Plugin, RequestHead, Response,
    Rewrite, encode_path, export_plugin, log, parse_config,
};
use serde::Deserialize;

/// The plugin's `config` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Path prefixes refused with `deny_status` (matched on the decoded,
    /// normalised path).
    #[serde(default)]
    deny_paths: Vec<String>,
    /// User-Agent substrings (case-insensitive) refused with `deny_status`.
    #[serde(default)]
    deny_user_agents: Vec<String>,
    /// Client IP addresses refused with `deny_status`.
    #[serde(default)]
    deny_clients: Vec<String>,
    /// Substrings refused in any header value (every header is inspected).
    #[serde(default)]
    deny_header_values: Vec<String>,
    /// The status for refused requests (default 403).
    #[serde(default = "forbidden")]
    deny_status: u16,
    /// Exact path → a 200 text/plain answer, without the app.
    #[serde(default)]
    respond: BTreeMap<String, String>,
    /// Path prefix → replacement prefix; the original path (as the client
    /// sent it) goes on in the `x-original-path` request header.
    #[serde(default)]
    rewrite: BTreeMap<String, String>,
    /// Headers added to every response.
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
}

fn forbidden() -> u16 {
    403
}

struct PathFilter {
    config: Config,
    /// Lower-cased once, compared case-insensitively.
    user_agents: Vec<String>,
    /// `deny_header_values`, searched for together.
    header_values: Needles,
}

impl Plugin for PathFilter {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = parse_config(config)?;
        if !(400..=599).contains(&config.deny_status) {
            return Err(format!(
                "deny_status must be a 4xx or 5xx status, not {}",
                config.deny_status
            ));
        }
        if let Some(bad) = config
            .rewrite
            .keys()
            .chain(config.rewrite.values())
            .find(|p| !p.starts_with('/'))
        {
            return Err(format!("rewrite paths must start with '/': {bad:?}"));
        }
        let user_agents = config
            .deny_user_agents
            .iter()
            .map(|u| u.to_ascii_lowercase())
            .collect();
        let header_values = Needles::new(&config.deny_header_values);
        Ok(PathFilter {
            config,
            user_agents,
            header_values,
        })
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::REQUEST_FILTER;
        if self.config.response_headers.is_empty() {
            caps
        } else {
            caps.with(Capabilities::RESPONSE_FILTER)
        }
    }

    fn on_request(&self, request: &RequestHead<'_>) -> Decision {
        let c = &self.config;
        let deny = Decision::Deny(c.deny_status);
        if c.deny_paths
            .iter()
            .any(|p| request.path.starts_with(p.as_str()))
        {
            return deny;
        }
        if c.deny_clients.iter().any(|ip| ip == request.client_ip()) {
            log(
                Level::Info,
                &format!("refused client {}", request.client_ip()),
            );
            return deny;
        }
        for (name, value) in request.headers {
            if name == "user-agent"
                && self
                    .user_agents
                    .iter()
                    .any(|u| contains_ignore_case(value, u.as_bytes()))
            {
                return deny;
            }
            if self.header_values.found_in(value) {
                return deny;
            }
        }
        if let Some(text) = c.respond.get(request.path) {
            return Decision::Respond(Response::text(200, text.clone()));
        }
        for (from, to) in &c.rewrite {
            if let Some(rest) = request.path.strip_prefix(from.as_str()) {
                // A rewrite's path is a URI path: the decoded one is
                // encoded again (a `%` or `?` in a name stays in the name).
                return Decision::Rewrite(Rewrite {
                    path: Some(encode_path(&format!("{to}{rest}"))),
                    set_headers: vec![Header::new("x-original-path", request.raw_path)],
                    ..Rewrite::default()
                });
            }
        }
        Decision::Continue
    }

    fn on_response(&self, _status: u16, _headers: &Pairs<'_>) -> HeaderChanges {
        HeaderChanges {
            set: self
                .config
                .response_headers
                .iter()
                .map(|(k, v)| Header::new(k.as_str(), v.as_str()))
                .collect(),
            ..HeaderChanges::default()
        }
    }
}

/// Substrings searched for together in one pass over a text: memchr finds
/// the places where one of them may start (by its first byte), a comparison
/// confirms. Plugins run on every request, so this matters more than it
/// seems: one pass per header value instead of one per value and needle.
struct Needles {
    /// The distinct first bytes of `needles`.
    firsts: Vec<u8>,
    needles: Vec<Vec<u8>>,
}

impl Needles {
    fn new(needles: &[String]) -> Needles {
        let needles: Vec<Vec<u8>> = needles
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| n.as_bytes().to_vec())
            .collect();
        let mut firsts: Vec<u8> = needles.iter().map(|n| n[0]).collect();
        firsts.sort_unstable();
        firsts.dedup();
        Needles { firsts, needles }
    }

    fn found_in(&self, text: &[u8]) -> bool {
        let starts_here = |at: usize| self.needles.iter().any(|n| text[at..].starts_with(n));
        match *self.firsts.as_slice() {
            [] => false,
            [a] => memchr::memchr_iter(a, text).any(starts_here),
            [a, b] => memchr::memchr2_iter(a, b, text).any(starts_here),
            [a, b, c] => memchr::memchr3_iter(a, b, c, text).any(starts_here),
            _ => self
                .needles
                .iter()
                .any(|n| memchr::memmem::find(text, n).is_some()),
        }
    }
}

/// Whether `needle` (already lower-case) occurs in `haystack`, ASCII
/// case-insensitively: memchr finds the candidates for the first byte, a
/// comparison confirms them (no allocation; plugins run on every request).
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    let mut from = 0;
    while let Some(found) = memchr::memchr2(first, first.to_ascii_uppercase(), &haystack[from..]) {
        let at = from + found;
        match haystack.get(at..at + needle.len()) {
            Some(candidate) if candidate.eq_ignore_ascii_case(needle) => return true,
            Some(_) => from = at + 1,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_needles() {
        assert!(contains_ignore_case(b"Mozilla BadBot/1", b"badbot"));
        assert!(contains_ignore_case(b"BADBOT", b"badbot"));
        assert!(!contains_ignore_case(b"Mozilla BadBo", b"badbot"));
        assert!(!contains_ignore_case(b"b", b"badbot"));
        assert!(!contains_ignore_case(b"abc", b""));
        let needles =
            |list: &[&str]| Needles::new(&list.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        for list in [
            &["<script", "../"][..],
            &["<script", "../", "%00", "\\x"][..],
        ] {
            let n = needles(list);
            assert!(n.found_in(b"a<script>"));
            assert!(n.found_in(b"/x/../etc"));
            assert!(!n.found_in(b"a<scrip ./. .."));
        }
        assert!(!needles(&[""]).found_in(b"anything"));
    }
}

export_plugin!(PathFilter);
