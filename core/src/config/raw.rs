//! The file format as serde reads it: one raw struct per TOML table.
//!
//! Every value that conversion checks keeps its position (`toml::Spanned`),
//! so that an error can name its line and column. Unknown keys are refused
//! here (`deny_unknown_fields`). This module owns only the shape of the
//! text; it does not check values, apply defaults or resolve paths (that is
//! `convert`).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file: `[server]`, every `[[static]]`, `[[app]]` and `[[plugin]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: Option<RawServer>,
    #[serde(default, rename = "static")]
    pub(super) static_folders: Vec<Spanned<RawStatic>>,
    #[serde(default)]
    pub(super) app: Vec<Spanned<RawApp>>,
    #[serde(default)]
    pub(super) plugin: Vec<Spanned<RawPlugin>>,
    pub(super) admin: Option<Spanned<RawAdmin>>,
}

/// `[admin]`: the operator's listener.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
}

/// One `[[static]]`: a URL prefix served from a folder.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatic {
    pub(super) url: Option<Spanned<String>>,
    pub(super) dir: Option<Spanned<String>>,
    pub(super) cache_control: Option<Spanned<String>>,
}

/// One `[[plugin]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    pub(super) name: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) config: Option<toml::Table>,
    pub(super) on_error: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<Scalar>>,
    pub(super) memory_limit: Option<Spanned<Scalar>>,
    pub(super) instances: Option<Spanned<i64>>,
}

/// `[server]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<OneOrMany>>,
    pub(super) root: Option<String>,
    pub(super) index: Option<Vec<String>>,
    pub(super) max_body_size: Option<Spanned<Scalar>>,
    pub(super) body_buffer_size: Option<Spanned<Scalar>>,
    pub(super) max_response_header_size: Option<Spanned<Scalar>>,
    pub(super) header_read_timeout: Option<Spanned<Scalar>>,
    pub(super) max_header_line: Option<Spanned<Scalar>>,
    pub(super) max_request_head: Option<Spanned<Scalar>>,
    pub(super) max_headers: Option<Spanned<i64>>,
    pub(super) max_uri_length: Option<Spanned<Scalar>>,
    pub(super) body_read_timeout: Option<Spanned<Scalar>>,
    pub(super) shutdown_timeout: Option<Spanned<Scalar>>,
    pub(super) send_timeout: Option<Spanned<Scalar>>,
    pub(super) access_log: Option<String>,
    pub(super) runtime_dir: Option<Spanned<String>>,
    pub(super) plugin_cache_dir: Option<String>,
    pub(super) plugins: Option<Vec<Spanned<String>>>,
    pub(super) error_details: Option<Spanned<String>>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) static_file_io: Option<Spanned<String>>,
    pub(super) worker_threads: Option<Spanned<i64>>,
}

/// One `[[app]]`, with `[app.env]`, `[app.params]` and `[app.options]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) name: Option<Spanned<String>>,
    pub(super) command: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) args: Vec<String>,
    pub(super) working_dir: Option<String>,
    pub(super) root: Option<String>,
    pub(super) mount: Option<Spanned<String>>,
    pub(super) handles: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) verbs: Option<Vec<Spanned<String>>>,
    pub(super) resource_type: Option<Spanned<String>>,
    pub(super) fallback: Option<Spanned<String>>,
    pub(super) max_instances: Option<Spanned<i64>>,
    pub(super) max_instances_auto_ceiling: Option<Spanned<i64>>,
    pub(super) min_instances: Option<Spanned<i64>>,
    pub(super) instance_max_requests: Option<Spanned<i64>>,
    pub(super) queue_length: Option<Spanned<i64>>,
    pub(super) protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) inherit_env: Vec<String>,
    pub(super) signal_before_terminate: Option<Spanned<Scalar>>,
    pub(super) request_timeout: Option<Spanned<Scalar>>,
    pub(super) slow_request_timeout: Option<Spanned<Scalar>>,
    pub(super) instance_max_memory: Option<Spanned<Scalar>>,
    pub(super) activity_timeout: Option<Spanned<Scalar>>,
    pub(super) idle_timeout: Option<Spanned<Scalar>>,
    pub(super) rapid_fails_per_minute: Option<Spanned<i64>>,
    pub(super) stderr_mode: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) monitor_changes_to: Vec<String>,
    pub(super) response_buffer_limit: Option<Spanned<Scalar>>,
    pub(super) response_buffering: Option<bool>,
    pub(super) response_memory_buffer: Option<Spanned<Scalar>>,
    pub(super) max_temp_file_size: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, EnvValue>,
    #[serde(default)]
    pub(super) params: BTreeMap<String, EnvValue>,
    pub(super) plugins: Option<Vec<Spanned<String>>>,
    pub(super) launcher: Option<Spanned<String>>,
    pub(super) options: Option<toml::Table>,
    /// A name or a numeric id.
    pub(super) user: Option<Spanned<Scalar>>,
    pub(super) group: Option<Spanned<Scalar>>,
    pub(super) rlimit_nofile: Option<Spanned<i64>>,
    pub(super) rlimit_as: Option<Spanned<Scalar>>,
    pub(super) rlimit_cpu: Option<Spanned<Scalar>>,
    pub(super) rlimit_nproc: Option<Spanned<i64>>,
}

/// `listen`: one address or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A size or duration: a bare integer or a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Int(i64),
    Str(String),
}

/// `[app.env]` / `[app.params]` values: strings, or numbers and booleans
/// written without quotes.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum EnvValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl EnvValue {
    pub(super) fn into_string(self) -> String {
        match self {
            EnvValue::Str(s) => s,
            EnvValue::Int(i) => i.to_string(),
            EnvValue::Float(f) => f.to_string(),
            EnvValue::Bool(b) => b.to_string(),
        }
    }
}
