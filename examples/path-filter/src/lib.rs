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

use std::collections::BTreeMap;

use fastgate_sdk::{
    Capabilities, Decision, Header, HeaderChanges, Level, Pairs, Plugin, RequestHead, Response,
    Rewrite, export_plugin, log, parse_config,
};
use serde::Deserialize;

/// The plugin's `config` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Path prefixes refused with `deny_status`.
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
    /// Path prefix → replacement prefix; the original path goes on in the
    /// `x-original-path` request header.
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
        Ok(PathFilter {
            config,
            user_agents,
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
            if c.deny_header_values
                .iter()
                .any(|needle| contains(value, needle.as_bytes()))
            {
                return deny;
            }
        }
        if let Some(text) = c.respond.get(request.path) {
            return Decision::Respond(Response::text(200, text.clone()));
        }
        for (from, to) in &c.rewrite {
            if let Some(rest) = request.path.strip_prefix(from.as_str()) {
                return Decision::Rewrite(Rewrite {
                    path: Some(format!("{to}{rest}")),
                    set_headers: vec![Header::new("x-original-path", request.path)],
                    remove_headers: Vec::new(),
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

/// Whether `needle` occurs in `haystack`: a scan for the first byte, then
/// a comparison (no allocation; plugins run on every request).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle, |a, b| a == b)
}

/// The same, ASCII case-insensitively (`needle` already lower-case).
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle, |a, b| a.to_ascii_lowercase() == b)
}

fn find(haystack: &[u8], needle: &[u8], eq: impl Fn(u8, u8) -> bool) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    if needle.len() > haystack.len() {
        return false;
    }
    let last_start = haystack.len() - needle.len();
    (0..=last_start).any(|i| {
        eq(haystack[i], first)
            && haystack[i + 1..i + needle.len()]
                .iter()
                .zip(&needle[1..])
                .all(|(&a, &b)| eq(a, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_needles() {
        assert!(contains(b"a<script>", b"<script"));
        assert!(!contains(b"a<scrip", b"<script"));
        assert!(contains_ignore_case(b"Mozilla BadBot/1", b"badbot"));
        assert!(!contains(b"abc", b""));
    }
}

export_plugin!(PathFilter);
