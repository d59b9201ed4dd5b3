//! The readable summary `fastgate check` prints: the server, each app's
//! pool and mapping (each value a launcher may propose with where it came
//! from: `(file)`, `(launcher "php")` or `(default)`), and the warnings.
//!
//! It only formats an already validated [`Config`]; it checks nothing and
//! does not look at the machine (that is `command`).

use std::fmt::Write;
use std::time::Duration;

use http::Method;

use super::mounts::mount_text;
use super::{
    AppKey, AppSettings, Config, ErrorDetails, ResourceType, ServerSettings, StaticFileIo,
    StderrMode, Verbs, static_folders,
};

/// A readable summary of a configuration, for `fastgate check`.
pub fn render_summary(config: &Config) -> String {
    let mut out = String::new();
    render_server(&mut out, &config.server);
    if let Some(admin) = &config.admin {
        let _ = writeln!(
            out,
            "admin       {} ({})",
            admin.listen,
            admin.token_file.as_ref().map_or_else(
                || "no token: anyone who can connect".to_string(),
                |f| format!("bearer token from {}", f.display())
            )
        );
    }
    render_static_folders(&mut out, config);
    for app in &config.apps {
        render_app(&mut out, app);
    }
    for warning in &config.warnings {
        let _ = writeln!(out, "\nwarning: {warning}");
    }
    out
}

fn render_server(out: &mut String, s: &ServerSettings) {
    let listen: Vec<String> = s.listen.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "listen      {}", listen.join(", "));
    let _ = writeln!(out, "root        {}", s.root.display());
    let _ = writeln!(out, "index       {}", s.index.join(", "));
    let _ = writeln!(
        out,
        "threads     {} serving connections{}",
        s.worker_threads(),
        if s.worker_threads.is_some() {
            " (worker_threads)"
        } else {
            " (automatic: half the CPUs, at least 1; worker_threads)"
        }
    );
    let _ = writeln!(
        out,
        "static files read {}",
        match s.static_file_io {
            StaticFileIo::Inline => "on the connection's thread (static_file_io = \"inline\")",
            StaticFileIo::Threads => "on a thread pool (static_file_io = \"threads\")",
        }
    );
    let _ = writeln!(
        out,
        "limits      max_body_size {} bytes, max_response_header_size {} bytes, header_read_timeout {}, body_read_timeout {}, send_timeout {}",
        s.max_body_size,
        s.max_response_header_size,
        humantime::format_duration(s.header_read_timeout),
        humantime::format_duration(s.body_read_timeout),
        humantime::format_duration(s.send_timeout)
    );
    let _ = writeln!(
        out,
        "plugin cache {}",
        s.plugin_cache_dir.as_ref().map_or(
            "off (wasm plugins compiled at every start)".to_string(),
            |d| d.display().to_string()
        )
    );
    let h = &s.head_limits;
    let _ = writeln!(
        out,
        "head limits max_header_line {} bytes, max_request_head {} bytes, max_headers {}, max_uri_length {} bytes",
        h.max_header_line, h.max_request_head, h.max_headers, h.max_uri_length
    );
    let _ = writeln!(
        out,
        "error_details {}: {}",
        s.error_details.name(),
        match s.error_details {
            ErrorDetails::Local => {
                "an error's detail (an app's stderr text, the cause, the pid) in the page for loopback clients only; others get a generic page"
            }
            ErrorDetails::Always =>
                "an error's detail (an app's stderr text, the cause, the pid) in the page for every client",
            ErrorDetails::Never => "a generic page for every client; the detail is only logged",
        }
    );
}

/// Every static folder, as it will be served, with where it came from.
fn render_static_folders(out: &mut String, config: &Config) {
    for folder in static_folders(&config.static_folders, &config.apps) {
        let cache = folder
            .cache_control
            .as_deref()
            .map_or("no Cache-Control".to_string(), |v| {
                format!("Cache-Control: {v}")
            });
        let origin = match (&folder.proposed_by, folder.in_file) {
            (None, _) => "file".to_string(),
            (Some((app, launcher)), false) => format!("launcher \"{launcher}\" of app \"{app}\""),
            (Some((app, launcher)), true) => {
                format!("file, over launcher \"{launcher}\" of app \"{app}\"")
            }
        };
        let _ = writeln!(
            out,
            "static      {} -> {}, {cache} ({origin})",
            folder.url,
            folder.dir.display()
        );
    }
}

/// An app: its process pool first, then what it handles and runs with.
/// Each value a launcher may propose says where it came from: the file,
/// the launcher, or the gateway's default.
fn render_app(out: &mut String, app: &AppSettings) {
    let _ = writeln!(out, "\napp \"{}\"", app.name);
    let mut command = app.command.display().to_string();
    for arg in &app.args {
        command.push(' ');
        command.push_str(arg);
    }
    traced(out, app, AppKey::Command, command);
    let _ = writeln!(out, "  runs as               {}", app.run_as.describe());
    let _ = writeln!(out, "  rlimits               {}", app.rlimits.describe());
    let _ = writeln!(out, "  protocol              {:?}", app.protocol);
    let max_instances = if app.max_instances == 0 {
        format!(
            "0: automatic sizing, 1 to {} (max_instances_auto_ceiling)",
            app.max_instances_auto_ceiling
        )
    } else {
        app.max_instances.to_string()
    };
    traced(out, app, AppKey::MaxInstances, max_instances);
    traced(out, app, AppKey::MinInstances, app.min_instances);
    traced(
        out,
        app,
        AppKey::InstanceMaxRequests,
        app.instance_max_requests,
    );
    traced(out, app, AppKey::QueueLength, app.queue_length);
    traced(
        out,
        app,
        AppKey::RequestTimeout,
        seconds(app.request_timeout),
    );
    traced(
        out,
        app,
        AppKey::SlowRequestTimeout,
        app.slow_request_timeout
            .map_or_else(|| "off".to_string(), seconds),
    );
    traced(
        out,
        app,
        AppKey::InstanceMaxMemory,
        app.instance_max_memory.map_or_else(
            || "off".to_string(),
            |bytes| {
                format!(
                    "{bytes} bytes ({} MiB) of peak resident memory",
                    bytes >> 20
                )
            },
        ),
    );
    traced(
        out,
        app,
        AppKey::ActivityTimeout,
        seconds(app.activity_timeout),
    );
    traced(out, app, AppKey::IdleTimeout, seconds(app.idle_timeout));
    traced(
        out,
        app,
        AppKey::StderrMode,
        stderr_mode_text(app.stderr_mode),
    );
    let _ = writeln!(
        out,
        "  responses             {}",
        if app.response_buffering {
            format!(
                "read at the app's speed; for a slow client up to {} bytes in memory, then up to {} bytes in a temporary file",
                app.response_memory_buffer, app.max_temp_file_size
            )
        } else {
            "streamed at the client's speed (response_buffering = false)".to_string()
        }
    );
    let monitored: Vec<String> = app
        .monitor_changes_to
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(
        out,
        "  monitor_changes_to    {}",
        if monitored.is_empty() {
            "none".to_string()
        } else {
            monitored.join(", ")
        }
    );
    render_mapping(out, app);
    render_environment(out, app);
}

/// One line: the key, its effective value, and where that came from.
fn traced(out: &mut String, app: &AppSettings, key: AppKey, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "  {:<21} {value} ({})",
        key.name(),
        app.origins.origin(key)
    );
}

/// A duration as the file would say it: whole seconds as `90s`.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn render_mapping(out: &mut String, app: &AppSettings) {
    let handles: Vec<String> = app.handles.iter().map(ToString::to_string).collect();
    traced(out, app, AppKey::Handles, handles.join(", "));
    traced(out, app, AppKey::Mount, mount_text(&app.mount));
    let verbs = match &app.verbs {
        Verbs::Any => "*".to_string(),
        Verbs::List(list) => list
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let _ = writeln!(out, "  verbs                 {verbs}");
    traced(
        out,
        app,
        AppKey::ResourceType,
        resource_type_text(app.resource_type),
    );
    let _ = writeln!(out, "  root                  {}", app.root.display());
    traced(
        out,
        app,
        AppKey::Fallback,
        app.fallback.as_deref().unwrap_or("none"),
    );
}

/// `resource_type` as it is written in the file.
fn resource_type_text(t: ResourceType) -> &'static str {
    match t {
        ResourceType::File => "file",
        ResourceType::Directory => "directory",
        ResourceType::Either => "either",
        ResourceType::Unspecified => "unspecified",
    }
}

/// `stderr_mode` as it is written in the file.
fn stderr_mode_text(mode: StderrMode) -> &'static str {
    match mode {
        StderrMode::ReturnStderrIn500 => "return-stderr-in-500",
        StderrMode::ReturnGeneric500 => "return-generic-500",
        StderrMode::IgnoreAndReturn200 => "ignore-and-return-200",
        StderrMode::TerminateProcess => "terminate-process",
    }
}

/// `env`, `inherit_env` and `params`, each only when set.
fn render_environment(out: &mut String, app: &AppSettings) {
    if !app.env.is_empty() {
        let env: Vec<String> = app.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  env                   {}", env.join(" "));
    }
    if !app.inherit_env.is_empty() {
        let _ = writeln!(out, "  inherit_env           {}", app.inherit_env.join(" "));
    }
    if !app.params.is_empty() {
        let params: Vec<String> = app.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  params                {}", params.join(" "));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::render_summary;
    use crate::config::AppKey;
    use crate::config::test_support::{MINIMAL, load};

    #[test]
    fn each_value_says_where_it_came_from() {
        let mut c = load(&format!(
            "{MINIMAL}request_timeout = \"90s\"\nmax_instances = 0\n"
        ))
        .unwrap();
        c.apps[0].instance_max_requests = 10_000;
        c.apps[0]
            .origins
            .set_by_launcher(AppKey::InstanceMaxRequests, "php");
        // A launcher cannot override what the file set.
        c.apps[0]
            .origins
            .set_by_launcher(AppKey::RequestTimeout, "php");
        let text = render_summary(&c);
        for line in [
            "  command               php-cgi (file)\n",
            "  max_instances         0: automatic sizing, 1 to ",
            "  min_instances         0 (default)\n",
            "  instance_max_requests 10000 (launcher \"php\")\n",
            "  queue_length          1000 (default)\n",
            "  request_timeout       90s (file)\n",
            "  slow_request_timeout  off (default)\n",
            "  instance_max_memory   off (default)\n",
            "  activity_timeout      30s (default)\n",
            "  idle_timeout          300s (default)\n",
            "  stderr_mode           return-stderr-in-500 (default)\n",
            "  handles               *.php (file)\n",
            "  mount                 / (default)\n",
            "  resource_type         file (default)\n",
            "  fallback              none (default)\n",
            "  monitor_changes_to    none\n",
            "error_details local: ",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn slow_requests_and_memory_are_shown() {
        let c = load(&format!(
            "{MINIMAL}slow_request_timeout = \"5s\"\ninstance_max_memory = \"256M\"\n"
        ))
        .unwrap();
        let text = render_summary(&c);
        for line in [
            "  slow_request_timeout  5s (file)\n",
            "  instance_max_memory   268435456 bytes (256 MiB) of peak resident memory (file)\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }
}
