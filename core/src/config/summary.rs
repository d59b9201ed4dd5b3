//! The readable summary `fastgate check` prints: the server, each app's
//! pool and mapping, and the warnings.
//!
//! It only formats an already validated [`Config`]; it checks nothing and
//! does not look at the machine (that is `command`).

use std::fmt::Write;

use http::Method;

use super::{AppSettings, Config, HandlerPattern, ServerSettings, Verbs};

/// A readable summary of a configuration, for `fastgate check`.
pub fn render_summary(config: &Config) -> String {
    let mut out = String::new();
    render_server(&mut out, &config.server);
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
        "limits      max_body_size {} bytes, max_response_header_size {} bytes, header_read_timeout {}, body_read_timeout {}, send_timeout {}",
        s.max_body_size,
        s.max_response_header_size,
        humantime::format_duration(s.header_read_timeout),
        humantime::format_duration(s.body_read_timeout),
        humantime::format_duration(s.send_timeout)
    );
    let h = &s.head_limits;
    let _ = writeln!(
        out,
        "head limits max_header_line {} bytes, max_request_head {} bytes, max_headers {}, max_uri_length {} bytes",
        h.max_header_line, h.max_request_head, h.max_headers, h.max_uri_length
    );
}

/// An app: its process pool first, then what it handles and runs with.
fn render_app(out: &mut String, app: &AppSettings) {
    let _ = writeln!(out, "\napp \"{}\"", app.name);
    let mut command = app.command.display().to_string();
    for arg in &app.args {
        command.push(' ');
        command.push_str(arg);
    }
    let _ = writeln!(out, "  command               {command}");
    let _ = writeln!(out, "  protocol              {:?}", app.protocol);
    if app.max_instances == 0 {
        let _ = writeln!(
            out,
            "  instances             {} to {} (automatic sizing, max_instances = 0)",
            app.min_instances, app.max_instances_auto_ceiling
        );
    } else {
        let _ = writeln!(
            out,
            "  instances             {} to {}",
            app.min_instances, app.max_instances
        );
    }
    let _ = writeln!(out, "  instance_max_requests {}", app.instance_max_requests);
    let _ = writeln!(out, "  queue_length          {}", app.queue_length);
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
    render_mapping(out, app);
    render_environment(out, app);
}

fn render_mapping(out: &mut String, app: &AppSettings) {
    let handles: Vec<String> = app.handles.iter().map(pattern_text).collect();
    let _ = writeln!(out, "  handles               {}", handles.join(", "));
    let verbs = match &app.verbs {
        Verbs::Any => "*".to_string(),
        Verbs::List(list) => list
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let _ = writeln!(out, "  verbs                 {verbs}");
    let _ = writeln!(out, "  resource_type         {:?}", app.resource_type);
    let _ = writeln!(out, "  root                  {}", app.root.display());
    if let Some(fallback) = &app.fallback {
        let _ = writeln!(out, "  fallback              {fallback}");
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

/// A handler pattern as it is written in the file.
fn pattern_text(pattern: &HandlerPattern) -> String {
    match pattern {
        HandlerPattern::Extension(e) => format!("*.{e}"),
        HandlerPattern::Prefix(p) => format!("{p}/*"),
        HandlerPattern::Exact(p) => p.clone(),
        HandlerPattern::Any => "*".into(),
    }
}
