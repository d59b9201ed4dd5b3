//! What `fastgate check` says beyond the file's own settings (those are
//! `config::render_summary`): where the apps' sockets will be on this
//! machine, and each plugin as loaded (its kind, its capabilities, where it
//! is listed). It also refuses a runtime folder too long for the apps'
//! sockets, a check `serve` makes too, before it creates anything.
//!
//! It formats and judges; it starts nothing and creates no folder.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::config::{AppSettings, Config, ConfigError, PluginKind};
use crate::http::ConnectionLimit;
use crate::plugin::Plugins;
use crate::pool::socket::{self, MAX_SOCKET_PATH};

/// Where `serve` will put the apps' sockets: the configured `runtime_dir`,
/// or (for `fastgate check`, before any exists) a stand-in for the fresh
/// folder it makes, `fastgate-` and six random characters in `TMPDIR`.
pub fn planned_runtime_dir(config: &Config) -> PathBuf {
    match &config.server.runtime_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join("fastgate-XXXXXX"),
    }
}

/// Refuses a runtime folder in which some app's socket could not be bound,
/// naming `runtime_dir` (its line when the file sets it) and the lengths.
pub fn socket_paths(
    config: &Config,
    apps: &[AppSettings],
    runtime_dir: &Path,
) -> Result<(), ConfigError> {
    let Err(too_long) = socket::check_socket_paths(runtime_dir, apps) else {
        return Ok(());
    };
    let message = match config.server.runtime_dir {
        Some(_) => format!("{} is too long: {too_long}", runtime_dir.display()),
        None => format!(
            "not set, and the private folder made in TMPDIR ({}) is too long: {too_long}; set runtime_dir to a shorter folder",
            std::env::temp_dir().display()
        ),
    };
    Err(ConfigError {
        file: config.source.clone(),
        line: config.server.runtime_dir_line,
        column: None,
        key: Some("server.runtime_dir".to_string()),
        message,
    })
}

/// The client connection limit as `serve` will have it on this machine
/// (`max_connections`, resolved against this process's open-file limit).
pub fn render_connections(config: &Config) -> String {
    let limit = ConnectionLimit::of_this_process(config.server.max_connections);
    let mut out = format!("{}\n", limit.describe());
    if let Some(budget) = limit.over_budget() {
        let _ = writeln!(
            out,
            "\nwarning: max_connections = {} is more than the open-file limit carries here ({budget} connections); raise it (LimitNOFILE=, ulimit -n) or lower max_connections",
            limit.max
        );
    }
    out
}

/// The runtime folder, and where each app's processes listen in it.
pub fn render_runtime(config: &Config, apps: &[AppSettings]) -> String {
    let dir = planned_runtime_dir(config);
    let mut out = String::new();
    let _ = match config.server.runtime_dir {
        Some(_) => writeln!(out, "\nruntime_dir {} (file)", dir.display()),
        None => writeln!(
            out,
            "\nruntime_dir a new private folder {} (default), removed at exit",
            dir.display()
        ),
    };
    for app in apps {
        let place = if app.cgi.is_some() {
            "no socket: CGI, a process per request".to_string()
        } else if !socket::uses_sockets(app) {
            "no socket: a loopback TCP port per instance (protocol tcp)".to_string()
        } else {
            let longest = socket::longest_socket_path(&dir, &app.name);
            format!(
                "sockets {}, at most {} of {MAX_SOCKET_PATH} bytes",
                socket::socket_dir(&dir, &app.name)
                    .join("<instance>.sock")
                    .display(),
                longest.as_os_str().len()
            )
        };
        let _ = writeln!(out, "  app \"{}\" {place}", app.name);
    }
    out
}

/// Each plugin: its kind, its capabilities and where it is listed. A
/// built-in launcher no app uses is left out. Plugins listed where none
/// of their hooks run are returned as warnings.
pub fn render_plugins(config: &Config, plugins: &Plugins) -> (String, Vec<String>) {
    let mut names: Vec<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
    for app in &config.apps {
        if let Some(launcher) = &app.launcher
            && !names.contains(&launcher.plugin.as_str())
        {
            names.push(&launcher.plugin);
        }
    }
    let mut out = String::new();
    let mut warnings = Vec::new();
    for name in names {
        let Some(plugin) = plugins.get(name) else {
            continue;
        };
        let kind = match config.plugins.iter().find(|p| p.name == name) {
            Some(p) if p.kind == PluginKind::Wasm => format!("wasm ({})", p.path.display()),
            Some(p) => format!("native ({})", p.path.display()),
            None => "built-in".to_string(),
        };
        let caps = &plugin.capabilities;
        let hooks: Vec<&str> = [
            (caps.request_filter, "request_filter"),
            (caps.response_filter, "response_filter"),
            (caps.inject_env, "inject_env"),
            (caps.launcher, "launcher"),
        ]
        .into_iter()
        .filter_map(|(has, hook)| has.then_some(hook))
        .collect();
        let per_request = caps.request_filter || caps.response_filter || caps.inject_env;
        let places = places(config, name);
        for place in places.iter().filter(|p| !p.starts_with("launcher")) {
            if !per_request {
                warnings.push(format!(
                    "plugin \"{name}\" is listed in {place} but has no hook that runs there (its capabilities: {})",
                    hooks.join(", ")
                ));
            }
        }
        let _ = writeln!(out, "\nplugin \"{name}\"");
        let _ = writeln!(out, "  kind                  {kind}");
        let _ = writeln!(out, "  capabilities          {}", hooks.join(", "));
        let listed = if places.is_empty() {
            "nowhere (loaded, never called)".to_string()
        } else {
            places.join(", ")
        };
        let _ = writeln!(out, "  listed in             {listed}");
    }
    (out, warnings)
}

/// Where the plugin `name` is listed: the server's plugins, apps' plugins,
/// apps' launcher.
fn places(config: &Config, name: &str) -> Vec<String> {
    let mut places = Vec::new();
    if config.server.plugins.iter().any(|p| p == name) {
        places.push("[server] plugins".to_string());
    }
    for app in &config.apps {
        if app.plugins.iter().any(|p| p == name) {
            places.push(format!("app \"{}\" plugins", app.name));
        }
        if app.launcher.as_ref().is_some_and(|l| l.plugin == name) {
            places.push(format!("launcher of app \"{}\"", app.name));
        }
    }
    places
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::test_support::{MINIMAL, load};

    #[test]
    fn a_long_runtime_dir_is_refused_at_its_line() {
        let long = "/".to_string() + &"r".repeat(100);
        let config = load(&format!("[server]\nruntime_dir = \"{long}\"\n{MINIMAL}")).unwrap();
        let e = socket_paths(&config, &config.apps, Path::new(&long)).unwrap_err();
        assert_eq!(e.line, Some(2));
        let text = e.to_string();
        assert!(
            text.starts_with("/etc/fg/fastgate.toml:2: server.runtime_dir: "),
            "{text}"
        );
        assert!(
            text.contains("(131 bytes)") && text.contains("at most 107"),
            "{text}"
        );
        let config = load(&format!("[server]\nruntime_dir = \"/run/fg\"\n{MINIMAL}")).unwrap();
        assert!(socket_paths(&config, &config.apps, Path::new("/run/fg")).is_ok());
        let text = render_runtime(&config, &config.apps);
        assert!(
            text.contains(
                "app \"php\" sockets /run/fg/php/<instance>.sock, at most 37 of 107 bytes"
            ),
            "{text}"
        );
    }
}
