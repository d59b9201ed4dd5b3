//! A plugin built with fastgate-sdk 0.1 (tests/compat/sdk-0.1: contract
//! 0.1.0, native ABI 1), for the tests that the gateway still loads such
//! plugins, both builds. It uses every hook of that contract:
//!
//! - request filter: paths under `/admin` are refused (403), matched on
//!   `path`, which the gateway gives 0.1 plugins decoded and normalised
//!   too; a query with `old=head` answers the head as the plugin saw it,
//!   one field per line; `/old/ping` answers `pong from 0.1`;
//!   `/old/<rest>` is rewritten to `/<rest>`; `/old-log` logs through the
//!   host, then continues;
//! - response filter: `x-contract: 0.1.0` on every response;
//! - env injector: `OLD_PLUGIN=0.1.0` for the app;
//! - launcher: the suite's FastCGI test program (tests/fixtures/fcgi_app.py)
//!   for `/py/*`, with `--exit-after` the `instance_max_requests` a 0.1
//!   launcher is told (a plain number: the file's, or the gateway's
//!   default), so a test can read it back from the process's command line.

use fastgate_sdk::{
    AppConfig, Capabilities, Decision, Header, HeaderChanges, Level, MappingDefaults, Pairs, Param,
    Plugin, RequestHead, Response, Rewrite, RuntimeFile, SpawnSpec, export_plugin, log,
};

struct Old;

impl Plugin for Old {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(Old)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::REQUEST_FILTER
            .with(Capabilities::RESPONSE_FILTER)
            .with(Capabilities::INJECT_ENV)
            .with(Capabilities::LAUNCHER)
    }

    fn on_request(&self, request: &RequestHead<'_>) -> Decision {
        if request.query.split('&').any(|p| p == "old=head") {
            let seen = format!(
                "method={}\npath={}\nquery={}\nversion={}\napp={}\n",
                request.method, request.path, request.query, request.version, request.app
            );
            return Decision::Respond(Response::text(200, seen));
        }
        if request.path == "/admin" || request.path.starts_with("/admin/") {
            return Decision::Deny(403);
        }
        if request.path == "/old/ping" {
            return Decision::Respond(Response::text(200, "pong from 0.1"));
        }
        if request.path == "/old-log" {
            log(Level::Warn, "a 0.1 plugin logs through the host");
            return Decision::Continue;
        }
        if let Some(rest) = request.path.strip_prefix("/old/") {
            return Decision::Rewrite(Rewrite {
                path: Some(format!("/{rest}")),
                set_headers: Vec::new(),
                remove_headers: Vec::new(),
            });
        }
        Decision::Continue
    }

    fn on_response(&self, _status: u16, _headers: &Pairs<'_>) -> HeaderChanges {
        HeaderChanges {
            set: vec![Header::new("x-contract", "0.1.0")],
            ..HeaderChanges::default()
        }
    }

    fn inject_env(&self, _request: &RequestHead<'_>, _params: &Pairs<'_>) -> Vec<Param> {
        vec![Param::new("OLD_PLUGIN", "0.1.0")]
    }

    fn launch(&self, app: &AppConfig) -> Result<SpawnSpec, String> {
        Ok(SpawnSpec {
            command: app.command.clone().unwrap_or_else(|| "python3".to_string()),
            args: vec![
                "{runtime_dir}/fcgi_app.py".to_string(),
                "--exit-after".to_string(),
                app.instance_max_requests.to_string(),
            ],
            env: vec![(
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            )],
            files: vec![RuntimeFile {
                name: "fcgi_app.py".to_string(),
                contents: include_bytes!("../../../fixtures/fcgi_app.py").to_vec(),
                executable: false,
            }],
            mapping: MappingDefaults {
                handles: vec!["/py/*".to_string()],
                resource_type: Some("unspecified".to_string()),
                ..MappingDefaults::default()
            },
            ..SpawnSpec::default()
        })
    }
}

export_plugin!(Old);
