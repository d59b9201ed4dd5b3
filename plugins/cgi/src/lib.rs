//! The CGI fallback: `launcher = "cgi"` runs RFC 3875 scripts, one process
//! per request, for the programs that only speak CGI.
//!
//! The gateway `execve`s each script (or the `interpreter`, with the script
//! as its one argument) with an explicit environment and never a shell; the
//! query string never becomes argv. Scripts named `nph-*` write their own
//! status line. A script running longer than `cgi_timeout` (IIS default:
//! 15 minutes) is killed with its whole process group and the client gets a
//! 504. The app's `max_instances` and `queue_length` bound how many scripts
//! run at once, with the same queue as a pool.
//!
//! Options (`[app.options]`): `cgi_timeout` (seconds, or text such as
//! `"30s"`, `"15m"`), `interpreter` (for scripts without a shebang line).
//! Mapping defaults: `*.cgi` with `resource_type = "file"`; give the app
//! its own `handles` for other extensions (`["*.sh", "*.py"]`).

use fastgate_sdk::{
    AppConfig, AppProtocol, Capabilities, MappingDefaults, Plugin, SpawnSpec, parse_config,
};
use serde::Deserialize;

/// IIS's CGI timeout.
const DEFAULT_TIMEOUT_SECS: u64 = 15 * 60;

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum Timeout {
    Seconds(u64),
    Text(String),
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    cgi_timeout: Option<Timeout>,
    interpreter: Option<String>,
}

/// `90`, `"90s"`, `"15m"`, `"1h"`, `"500ms"` → milliseconds.
fn millis(t: &Timeout) -> Result<u64, String> {
    let text = match t {
        Timeout::Seconds(s) => return Ok(s.saturating_mul(1000)),
        Timeout::Text(text) => text.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("cgi_timeout {text:?}: expected e.g. 30, \"30s\", \"15m\""))?;
    let factor = match unit.trim() {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("cgi_timeout {text:?}: unknown unit {other:?}")),
    };
    Ok(n.saturating_mul(factor))
}

/// The launcher.
#[derive(Debug)]
pub struct CgiLauncher;

impl Plugin for CgiLauncher {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(CgiLauncher)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LAUNCHER
    }

    fn launch(&self, app: &AppConfig) -> Result<SpawnSpec, String> {
        let options: Options = parse_config(&app.options)?;
        let timeout = match &options.cgi_timeout {
            Some(t) => millis(t)?,
            None => DEFAULT_TIMEOUT_SECS * 1000,
        };
        if timeout == 0 {
            return Err("cgi_timeout must be more than 0".to_string());
        }
        Ok(SpawnSpec {
            // Empty: each script is executed itself.
            command: options
                .interpreter
                .map(|i| if i.contains('/') { app.path(&i) } else { i })
                .or_else(|| app.command.clone())
                .unwrap_or_default(),
            protocol: AppProtocol::Cgi,
            mapping: MappingDefaults {
                handles: vec!["*.cgi".to_string()],
                resource_type: Some("file".to_string()),
                ..MappingDefaults::default()
            },
            request_timeout_ms: Some(timeout),
            ..SpawnSpec::default()
        })
    }
}

#[cfg(not(feature = "builtin"))]
fastgate_sdk::export_plugin!(CgiLauncher);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn launch(options: &str) -> Result<SpawnSpec, String> {
        CgiLauncher.launch(&AppConfig {
            options: options.into(),
            ..AppConfig::default()
        })
    }

    #[test]
    fn defaults_and_options() {
        let spec = launch("{}").unwrap();
        assert_eq!(spec.protocol, AppProtocol::Cgi);
        assert_eq!(spec.command, "");
        assert_eq!(spec.request_timeout_ms, Some(900_000));
        assert_eq!(spec.mapping.handles, ["*.cgi"]);
        let spec = launch(r#"{"cgi_timeout": "2s", "interpreter": "/usr/bin/python3"}"#).unwrap();
        assert_eq!(spec.request_timeout_ms, Some(2000));
        assert_eq!(spec.command, "/usr/bin/python3");
        assert_eq!(
            launch(r#"{"cgi_timeout": 5}"#).unwrap().request_timeout_ms,
            Some(5000)
        );
        assert!(launch(r#"{"cgi_timeout": "5 days"}"#).is_err());
        assert!(launch(r#"{"cgi_timeout": 0}"#).is_err());
        assert!(launch(r#"{"timeout": 5}"#).is_err());
    }
}
