//! An example fastgate environment injector: gives the app a `TENANT`
//! FastCGI parameter (name configurable) from a request header, or a
//! default. Usually built as a native library:
//!
//! ```sh
//! cargo build -p tenant-env --release    # target/release/libtenant_env.so
//! ```
//!
//! ```toml
//! [[plugin]]
//! name = "tenant"
//! path = "target/release/libtenant_env.so"
//! config = { header = "x-tenant", param = "TENANT", default = "public" }
//! [[app]]
//! plugins = ["tenant"]
//! ```

use fastgate_sdk::{Capabilities, Pairs, Param, Plugin, RequestHead, export_plugin, parse_config};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The request header to read (default `x-tenant`).
    #[serde(default = "default_header")]
    header: String,
    /// The parameter the app gets (default `TENANT`).
    #[serde(default = "default_param")]
    param: String,
    /// The value when the header is missing or not a plain name.
    default: String,
}

fn default_header() -> String {
    "x-tenant".to_string()
}

fn default_param() -> String {
    "TENANT".to_string()
}

struct TenantEnv(Config);

impl Plugin for TenantEnv {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = parse_config(config)?;
        if config.param.is_empty() || config.param.starts_with("HTTP_") {
            return Err(format!(
                "param {:?} must be non-empty and must not start with HTTP_ (those come from clients)",
                config.param
            ));
        }
        Ok(TenantEnv(config))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::INJECT_ENV
    }

    fn inject_env(&self, request: &RequestHead<'_>, _params: &Pairs<'_>) -> Vec<Param> {
        // Only plain names reach the app: a header is client input.
        let from_header = request.header(&self.0.header).filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        });
        let (value, source) = match from_header {
            Some(v) => (v.to_vec(), "header"),
            None => (self.0.default.clone().into_bytes(), "default"),
        };
        vec![
            Param::new(self.0.param.as_str(), value),
            Param::new(format!("{}_SOURCE", self.0.param), source),
        ]
    }
}

export_plugin!(TenantEnv);
