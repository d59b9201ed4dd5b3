//! Conversion and validation: the raw tables of [`super::raw`] → the typed
//! settings of [`super`].
//!
//! Defaults are applied here, values are checked, relative paths resolved,
//! and every error points at the key that caused it. This module does not
//! read files or parse TOML (that is `load`) and does not look for programs
//! (that is `command`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use toml::Spanned;

use super::load::Source;
use super::parse::{parse_duration, parse_pattern, parse_resource_type, parse_size};
use super::raw::{OneOrMany, RawApp, RawConfig, RawPlugin, RawServer, Scalar};
use super::{
    AccessLog, AppConfig, Config, ConfigError, LauncherRef, OnError, PluginConfig, PluginKind,
    Protocol, ResourceType, ServerConfig, StderrMode, Verbs, cpu_count, defaults,
};

pub(super) fn convert(raw: RawConfig, src: &Source<'_>) -> Result<Config, ConfigError> {
    let mut plugins: Vec<PluginConfig> = Vec::with_capacity(raw.plugin.len());
    for (i, raw_plugin) in raw.plugin.into_iter().enumerate() {
        let span = raw_plugin.span();
        let plugin = convert_plugin(raw_plugin.into_inner(), span.clone(), i, src)?;
        if plugins.iter().any(|p| p.name == plugin.name) {
            return Err(src.error(
                Some(span),
                Some(format!("plugin \"{}\": name", plugin.name)),
                "duplicate plugin name",
            ));
        }
        plugins.push(plugin);
    }
    let plugin_ref = |name: &Spanned<String>, key: String| -> Result<String, ConfigError> {
        if plugins.iter().any(|p| &p.name == name.get_ref()) {
            Ok(name.get_ref().clone())
        } else {
            let known: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
            Err(src.error(
                Some(name.span()),
                Some(key),
                if known.is_empty() {
                    format!("no [[plugin]] named {:?} (there are none)", name.get_ref())
                } else {
                    format!(
                        "no [[plugin]] named {:?} (known: {})",
                        name.get_ref(),
                        known.join(", ")
                    )
                },
            ))
        }
    };
    let mut raw_server = raw.server.unwrap_or_default();
    let server_plugins = raw_server
        .plugins
        .take()
        .unwrap_or_default()
        .iter()
        .map(|n| plugin_ref(n, "server.plugins".to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut server = convert_server(raw_server, src)?;
    server.plugins = server_plugins;
    let mut apps = Vec::with_capacity(raw.app.len());
    let mut command_lines = Vec::with_capacity(raw.app.len());
    let mut warnings = Vec::new();
    for (i, raw_app) in raw.app.into_iter().enumerate() {
        let span = raw_app.span();
        let mut raw_app = raw_app.into_inner();
        let app_name = raw_app
            .name
            .as_ref()
            .map_or_else(|| format!("#{}", i + 1), |n| n.get_ref().clone());
        let app_plugins = raw_app
            .plugins
            .take()
            .unwrap_or_default()
            .iter()
            .map(|n| plugin_ref(n, format!("app \"{app_name}\": plugins")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(launcher) = &raw_app.launcher
            && !super::BUILTIN_LAUNCHERS.contains(&launcher.get_ref().as_str())
        {
            plugin_ref(launcher, format!("app \"{app_name}\": launcher")).map_err(|mut e| {
                e.message.push_str(&format!(
                    "; built-in launchers: {}",
                    super::BUILTIN_LAUNCHERS.join(", ")
                ));
                e
            })?;
        }
        let (mut app, command_line) =
            convert_app(raw_app, span.clone(), i, &server, src, &mut warnings)?;
        if let Some(first) = apps.iter().position(|a: &AppConfig| a.name == app.name) {
            return Err(src.error(
                Some(span),
                Some(format!("app \"{}\": name", app.name)),
                format!(
                    "duplicate app name (apps {} and {} share it)",
                    first + 1,
                    i + 1
                ),
            ));
        }
        app.plugins = app_plugins;
        apps.push(app);
        command_lines.push(command_line);
    }
    if !server.root.is_dir() {
        warnings.push(format!(
            "server root {} is not a directory",
            server.root.display()
        ));
    }
    Ok(Config {
        source: src.file.map(Path::to_path_buf),
        base_dir: src.base.clone(),
        server,
        apps,
        plugins,
        warnings,
        command_lines,
    })
}

fn convert_server(raw: RawServer, src: &Source<'_>) -> Result<ServerConfig, ConfigError> {
    let key = |k: &str| Some(format!("server.{k}"));
    let listen = match raw.listen {
        None => vec![
            defaults::LISTEN
                .parse()
                .map_err(|_| src.error(None, key("listen"), "bad default"))?,
        ],
        Some(spanned) => {
            let span = spanned.span();
            let list = match spanned.into_inner() {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(list) => list,
            };
            if list.is_empty() {
                return Err(src.error(Some(span), key("listen"), "needs at least one address"));
            }
            list.iter()
                .map(|a| {
                    a.parse::<SocketAddr>().map_err(|_| {
                        src.error(
                            Some(span.clone()),
                            key("listen"),
                            format!("{a:?} is not an IP:port address (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let root = raw.root.map_or_else(|| src.base.clone(), |r| src.path(&r));
    let size = |v: Option<Spanned<Scalar>>, name: &str, default: u64| match v {
        None => Ok(default),
        Some(v) => parse_size(v.get_ref()).map_err(|m| src.error(Some(v.span()), key(name), m)),
    };
    let duration =
        |v: Option<Spanned<Scalar>>, name: &str, default: Duration, allow_zero: bool| match v {
            None => Ok(default),
            Some(v) => {
                let d = parse_duration(v.get_ref())
                    .map_err(|m| src.error(Some(v.span()), key(name), m))?;
                if d.is_zero() && !allow_zero {
                    return Err(src.error(Some(v.span()), key(name), "must be longer than zero"));
                }
                Ok(d)
            }
        };
    let max_response_header_size = size(
        raw.max_response_header_size,
        "max_response_header_size",
        defaults::MAX_RESPONSE_HEADER_SIZE as u64,
    )?;
    Ok(ServerConfig {
        listen,
        root,
        index: raw
            .index
            .unwrap_or_else(|| vec!["index.php".to_string(), "index.html".to_string()]),
        max_body_size: size(raw.max_body_size, "max_body_size", defaults::MAX_BODY_SIZE)?,
        body_buffer_size: size(
            raw.body_buffer_size,
            "body_buffer_size",
            defaults::BODY_BUFFER_SIZE,
        )?,
        max_response_header_size: usize::try_from(max_response_header_size)
            .unwrap_or(usize::MAX)
            .max(1024),
        header_read_timeout: duration(
            raw.header_read_timeout,
            "header_read_timeout",
            defaults::HEADER_READ_TIMEOUT,
            false,
        )?,
        body_read_timeout: duration(
            raw.body_read_timeout,
            "body_read_timeout",
            defaults::BODY_READ_TIMEOUT,
            false,
        )?,
        shutdown_timeout: duration(
            raw.shutdown_timeout,
            "shutdown_timeout",
            defaults::SHUTDOWN_TIMEOUT,
            true,
        )?,
        access_log: match raw.access_log.as_deref() {
            None | Some("stdout") => AccessLog::Stdout,
            Some("off") => AccessLog::Off,
            Some(path) => AccessLog::File(src.path(path)),
        },
        runtime_dir: raw.runtime_dir.map(|d| src.path(&d)),
        plugins: Vec::new(),
    })
}

fn convert_app(
    raw: RawApp,
    span: Range<usize>,
    index: usize,
    server: &ServerConfig,
    src: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Result<(AppConfig, Option<usize>), ConfigError> {
    let name = table_name(raw.name, "app", span.clone(), index, src)?;
    let app_key = |k: &str| Some(format!("app \"{}\": {k}", name.get_ref()));
    let launcher = raw.launcher.as_ref().map(|l| LauncherRef {
        plugin: l.get_ref().clone(),
        options_json: serde_json::to_string(&raw.options.clone().unwrap_or_default())
            .unwrap_or_else(|_| "{}".to_string()),
        command_given: raw.command.is_some(),
        handles_given: raw.handles.is_some(),
        resource_type_given: raw.resource_type.is_some(),
        request_timeout_given: raw.request_timeout.is_some(),
    });
    if raw.options.is_some() && launcher.is_none() {
        return Err(src.error(
            Some(span),
            app_key("options"),
            "[app.options] is for a launcher's settings; this app has no `launcher`",
        ));
    }
    let command = match raw.command {
        Some(command) => command,
        // A launcher will say what to run.
        None if launcher.is_some() => Spanned::new(span.clone(), String::new()),
        None => {
            return Err(src.error(
                Some(span),
                app_key("command"),
                "missing key `command` (the program to run, IIS fullPath), or a `launcher`",
            ));
        }
    };
    let command_line = Some(src.position(command.span().start).0);
    let command_path = if launcher.is_some() && command.get_ref().is_empty() {
        PathBuf::new()
    } else {
        let c = command.get_ref();
        if c.is_empty() {
            return Err(src.error(
                Some(command.span()),
                app_key("command"),
                "must not be empty",
            ));
        }
        if c.contains('/') {
            src.path(c)
        } else {
            PathBuf::from(c)
        }
    };
    let handles = match raw.handles {
        Some(handles) => handles,
        // The launcher proposes the mapping.
        None if launcher.is_some() => Spanned::new(span.clone(), Vec::new()),
        None => {
            return Err(src.error(
                Some(span),
                app_key("handles"),
                "missing key `handles` (e.g. [\"*.php\"])",
            ));
        }
    };
    if handles.get_ref().is_empty() && launcher.as_ref().is_none_or(|l| l.handles_given) {
        return Err(src.error(
            Some(handles.span()),
            app_key("handles"),
            "needs at least one pattern",
        ));
    }
    let handles = handles
        .into_inner()
        .into_iter()
        .map(|p| {
            parse_pattern(p.get_ref()).map_err(|m| src.error(Some(p.span()), app_key("handles"), m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verbs = match raw.verbs {
        None => Verbs::Any,
        Some(list) if list.iter().any(|v| v.get_ref() == "*") => Verbs::Any,
        Some(list) => Verbs::List(
            list.iter()
                .map(|v| {
                    let upper = v.get_ref().to_ascii_uppercase();
                    Method::from_bytes(upper.as_bytes())
                        .ok()
                        .filter(|_| {
                            !upper.is_empty() && upper.bytes().all(|b| b.is_ascii_uppercase())
                        })
                        .ok_or_else(|| {
                            src.error(
                                Some(v.span()),
                                app_key("verbs"),
                                format!("{:?} is not an HTTP method", v.get_ref()),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let resource_type = match raw.resource_type {
        None => ResourceType::File,
        Some(v) => parse_resource_type(v.get_ref())
            .map_err(|m| src.error(Some(v.span()), app_key("resource_type"), m))?,
    };
    let fallback = match raw.fallback {
        None => None,
        Some(v) if v.get_ref().starts_with('/') && !v.get_ref().split('/').any(|s| s == "..") => {
            Some(v.into_inner())
        }
        Some(v) => {
            return Err(src.error(
                Some(v.span()),
                app_key("fallback"),
                "must be a URL path starting with '/' (e.g. \"/index.php\")",
            ));
        }
    };
    let int =
        |v: Option<Spanned<i64>>, k: &str, default: u64, min: u64| -> Result<u64, ConfigError> {
            match v {
                None => Ok(default),
                Some(v) if *v.get_ref() >= 0 && (*v.get_ref() as u64) >= min => {
                    Ok(*v.get_ref() as u64)
                }
                Some(v) => Err(src.error(
                    Some(v.span()),
                    app_key(k),
                    format!("must be at least {min}"),
                )),
            }
        };
    let max_span = raw.max_instances.as_ref().map(Spanned::span);
    let max_instances = int(
        raw.max_instances,
        "max_instances",
        defaults::MAX_INSTANCES as u64,
        0,
    )?;
    let ceiling_span = raw.max_instances_auto_ceiling.as_ref().map(Spanned::span);
    let max_instances_auto_ceiling = int(
        raw.max_instances_auto_ceiling,
        "max_instances_auto_ceiling",
        4 * super::cpu_count() as u64,
        1,
    )?;
    if max_instances != 0 && ceiling_span.is_some() {
        return Err(src.error(
            ceiling_span,
            app_key("max_instances_auto_ceiling"),
            "only applies with max_instances = 0 (automatic sizing)",
        ));
    }
    // With automatic sizing the bound that matters is the ceiling.
    let upper = if max_instances == 0 {
        max_instances_auto_ceiling
    } else {
        max_instances
    };
    let min_span = raw.min_instances.as_ref().map(Spanned::span);
    let min_instances = int(
        raw.min_instances,
        "min_instances",
        defaults::MIN_INSTANCES as u64,
        0,
    )?;
    if min_instances > upper {
        let _ = max_span;
        return Err(src.error(
            min_span,
            app_key("min_instances"),
            format!("{min_instances} is more than max_instances ({upper})"),
        ));
    }
    let instance_max_requests = int(
        raw.instance_max_requests,
        "instance_max_requests",
        defaults::INSTANCE_MAX_REQUESTS,
        1,
    )?;
    let queue_length = int(
        raw.queue_length,
        "queue_length",
        defaults::QUEUE_LENGTH as u64,
        0,
    )?;
    let protocol = match raw.protocol {
        None => Protocol::Unix,
        Some(v) => match v.get_ref().as_str() {
            "unix" => Protocol::Unix,
            "tcp" => Protocol::Tcp,
            other => {
                return Err(src.error(
                    Some(v.span()),
                    app_key("protocol"),
                    format!("{other:?}: expected unix or tcp"),
                ));
            }
        },
    };
    let signal_before_terminate = match raw.signal_before_terminate {
        None => defaults::SIGNAL_BEFORE_TERMINATE,
        Some(v) => parse_duration(v.get_ref())
            .map_err(|m| src.error(Some(v.span()), app_key("signal_before_terminate"), m))?,
    };
    let timeout = |v: Option<Spanned<Scalar>>,
                   k: &str,
                   default: Duration|
     -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) => {
                let d = parse_duration(v.get_ref())
                    .map_err(|m| src.error(Some(v.span()), app_key(k), m))?;
                if d.is_zero() {
                    return Err(src.error(Some(v.span()), app_key(k), "must be longer than zero"));
                }
                Ok(d)
            }
        }
    };
    let request_timeout = timeout(
        raw.request_timeout,
        "request_timeout",
        defaults::REQUEST_TIMEOUT,
    )?;
    let activity_timeout = timeout(
        raw.activity_timeout,
        "activity_timeout",
        defaults::ACTIVITY_TIMEOUT,
    )?;
    let idle_timeout = timeout(raw.idle_timeout, "idle_timeout", defaults::IDLE_TIMEOUT)?;
    let rapid_fails_per_minute = int(
        raw.rapid_fails_per_minute,
        "rapid_fails_per_minute",
        defaults::RAPID_FAILS_PER_MINUTE as u64,
        1,
    )?;
    let stderr_mode = match raw.stderr_mode {
        None => StderrMode::ReturnStderrIn500,
        Some(v) => match v.get_ref().as_str() {
            "return-stderr-in-500" => StderrMode::ReturnStderrIn500,
            "return-generic-500" => StderrMode::ReturnGeneric500,
            "ignore-and-return-200" => StderrMode::IgnoreAndReturn200,
            "terminate-process" => StderrMode::TerminateProcess,
            other => {
                return Err(src.error(
                    Some(v.span()),
                    app_key("stderr_mode"),
                    format!(
                        "{other:?}: expected return-stderr-in-500, return-generic-500, ignore-and-return-200 or terminate-process"
                    ),
                ));
            }
        },
    };
    let response_buffer_limit = match raw.response_buffer_limit {
        None => defaults::RESPONSE_BUFFER_LIMIT,
        Some(v) => parse_size(v.get_ref())
            .map_err(|m| src.error(Some(v.span()), app_key("response_buffer_limit"), m))?,
    };
    let env: BTreeMap<String, String> = raw
        .env
        .into_iter()
        .map(|(k, v)| (k, v.into_string()))
        .collect();
    if let Some(php_max) = env
        .get("PHP_FCGI_MAX_REQUESTS")
        .and_then(|v| v.trim().parse::<u64>().ok())
        && php_max > 0
        && php_max < instance_max_requests
    {
        warnings.push(format!(
            "app \"{}\": PHP_FCGI_MAX_REQUESTS ({php_max}) is lower than instance_max_requests ({instance_max_requests}): \
             php-cgi would exit on its own first, so instances are recycled after {php_max} requests",
            name.get_ref()
        ));
    }
    let root = raw
        .root
        .map_or_else(|| server.root.clone(), |r| src.path(&r));
    if !root.is_dir() && root != server.root {
        warnings.push(format!(
            "app \"{}\": root {} is not a directory",
            name.get_ref(),
            root.display()
        ));
    }
    let app = AppConfig {
        name: name.into_inner(),
        command: command_path,
        args: raw.args,
        working_dir: raw.working_dir.map(|d| src.path(&d)),
        root,
        handles,
        verbs,
        resource_type,
        fallback,
        max_instances: u32::try_from(max_instances).unwrap_or(u32::MAX),
        max_instances_auto_ceiling: u32::try_from(max_instances_auto_ceiling).unwrap_or(u32::MAX),
        min_instances: u32::try_from(min_instances).unwrap_or(u32::MAX),
        instance_max_requests,
        queue_length: usize::try_from(queue_length).unwrap_or(usize::MAX),
        protocol,
        env,
        inherit_env: raw.inherit_env,
        params: raw
            .params
            .into_iter()
            .map(|(k, v)| (k, v.into_string()))
            .collect(),
        signal_before_terminate,
        request_timeout,
        activity_timeout,
        idle_timeout,
        rapid_fails_per_minute: u32::try_from(rapid_fails_per_minute).unwrap_or(u32::MAX),
        stderr_mode,
        monitor_changes_to: raw.monitor_changes_to.iter().map(|p| src.path(p)).collect(),
        response_buffer_limit,
        plugins: Vec::new(),
        launcher,
        runtime_files: Vec::new(),
        static_dirs: Vec::new(),
        cgi: None,
    };
    Ok((app, command_line))
}

/// The `name` of an `[[app]]` or `[[plugin]]`: present, and letters,
/// digits, `-` and `_` only (it appears in logs, metrics and references).
fn table_name(
    name: Option<Spanned<String>>,
    table: &str,
    span: Range<usize>,
    index: usize,
    src: &Source<'_>,
) -> Result<Spanned<String>, ConfigError> {
    let Some(name) = name else {
        return Err(src.error(
            Some(span),
            Some(format!("{table} #{}", index + 1)),
            "missing key `name`",
        ));
    };
    let valid = !name.get_ref().is_empty()
        && name
            .get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(src.error(
            Some(name.span()),
            Some(format!("{table} \"{}\": name", name.get_ref())),
            "use letters, digits, '-' and '_' only",
        ));
    }
    Ok(name)
}

fn convert_plugin(
    raw: RawPlugin,
    span: Range<usize>,
    index: usize,
    src: &Source<'_>,
) -> Result<PluginConfig, ConfigError> {
    let name = table_name(raw.name, "plugin", span.clone(), index, src)?;
    let key = |k: &str| Some(format!("plugin \"{}\": {k}", name.get_ref()));
    let Some(path) = raw.path else {
        return Err(src.error(
            Some(span),
            key("path"),
            "missing key `path` (a .wasm component or a native .so library)",
        ));
    };
    let file = src.path(path.get_ref());
    let kind = match file.extension().and_then(|e| e.to_str()) {
        Some("wasm") => PluginKind::Wasm,
        _ => PluginKind::Native,
    };
    let on_error = match raw.on_error {
        None => OnError::FailClosed,
        Some(v) => match v.get_ref().as_str() {
            "fail-closed" => OnError::FailClosed,
            "fail-open" => OnError::FailOpen,
            other => {
                return Err(src.error(
                    Some(v.span()),
                    key("on_error"),
                    format!("{other:?}: expected \"fail-closed\" or \"fail-open\""),
                ));
            }
        },
    };
    let timeout = match raw.timeout {
        None => defaults::PLUGIN_TIMEOUT,
        Some(v) => {
            let d = parse_duration(v.get_ref())
                .map_err(|m| src.error(Some(v.span()), key("timeout"), m))?;
            if d.is_zero() {
                return Err(src.error(Some(v.span()), key("timeout"), "must be more than 0"));
            }
            d
        }
    };
    let memory_limit = match raw.memory_limit {
        None => defaults::PLUGIN_MEMORY_LIMIT,
        Some(v) => {
            let n = parse_size(v.get_ref())
                .map_err(|m| src.error(Some(v.span()), key("memory_limit"), m))?;
            if n < 1024 * 1024 {
                return Err(src.error(
                    Some(v.span()),
                    key("memory_limit"),
                    "must be at least 1 MiB (a component needs room for its stack and data)",
                ));
            }
            n
        }
    };
    let instances = match raw.instances {
        None => 2 * cpu_count() as usize,
        Some(v) if *v.get_ref() >= 1 => *v.get_ref() as usize,
        Some(v) => return Err(src.error(Some(v.span()), key("instances"), "must be at least 1")),
    };
    Ok(PluginConfig {
        name: name.into_inner(),
        path: file,
        kind,
        config_json: serde_json::to_string(&raw.config.unwrap_or_default())
            .unwrap_or_else(|_| "{}".to_string()),
        on_error,
        timeout,
        memory_limit,
        instances,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use http::Method;

    use super::super::{AccessLog, Protocol, ResourceType, Verbs};
    use crate::config::load::tests::{MINIMAL, load};

    #[test]
    fn defaults_are_the_iis_ones() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(
            c.server.listen,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.server.root, PathBuf::from("/etc/fg"));
        assert_eq!(c.server.index, ["index.php", "index.html"]);
        assert_eq!(c.server.max_body_size, 100 * 1024 * 1024);
        assert_eq!(c.server.max_response_header_size, 64 * 1024);
        assert_eq!(c.server.access_log, AccessLog::Stdout);
        let a = &c.apps[0];
        assert_eq!(a.max_instances, 4);
        assert_eq!(a.min_instances, 0);
        assert_eq!(a.instance_max_requests, 200);
        assert_eq!(a.queue_length, 1000);
        assert_eq!(a.protocol, Protocol::Unix);
        assert_eq!(a.resource_type, ResourceType::File);
        assert_eq!(a.verbs, Verbs::Any);
        assert_eq!(a.command, PathBuf::from("php-cgi"));
        assert_eq!(a.root, PathBuf::from("/etc/fg"));
        assert_eq!(a.signal_before_terminate, Duration::ZERO);
        assert_eq!(c.command_lines, vec![Some(3)]);
    }

    #[test]
    fn durations_and_sizes() {
        for (text, secs) in [
            ("\"90s\"", 90),
            ("\"5m\"", 300),
            ("90", 90),
            ("\"1h 30m\"", 5400),
            ("\"45\"", 45),
        ] {
            let c = load(&format!("[server]\nheader_read_timeout = {text}\n")).unwrap();
            assert_eq!(
                c.server.header_read_timeout,
                Duration::from_secs(secs),
                "{text}"
            );
        }
        let e = load("[server]\nbody_read_timeout = \"abc\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.key.as_deref(), Some("server.body_read_timeout"));
        for (text, bytes) in [
            ("1024", 1024),
            ("\"64KiB\"", 65536),
            ("\"10MiB\"", 10 << 20),
            ("\"1GiB\"", 1 << 30),
            ("\"2MB\"", 2_000_000),
            ("\"8k\"", 8192),
        ] {
            let c = load(&format!("[server]\nmax_body_size = {text}\n")).unwrap();
            assert_eq!(c.server.max_body_size, bytes, "{text}");
        }
        let e = load("[server]\nmax_body_size = \"12 parsecs\"\n").unwrap_err();
        assert!(e.message.contains("unit"), "{e}");
        let e = load("[server]\nheader_read_timeout = 0\n").unwrap_err();
        assert!(e.message.contains("zero"), "{e}");
    }

    #[test]
    fn listen_forms() {
        let c = load("[server]\nlisten = [\"127.0.0.1:0\", \"[::1]:8081\"]\n").unwrap();
        assert_eq!(c.server.listen.len(), 2);
        let e = load("[server]\n\nlisten = \"localhost\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key.as_deref(), Some("server.listen"));
    }

    #[test]
    fn verbs_are_upper_cased_and_checked() {
        let c = load(&format!("{MINIMAL}verbs = [\"get\", \"POST\"]\n")).unwrap();
        assert_eq!(
            c.apps[0].verbs,
            Verbs::List(vec![Method::GET, Method::POST])
        );
        let e = load(&format!("{MINIMAL}verbs = [\"GE T\"]\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("app \"php\": verbs"));
    }

    #[test]
    fn semantic_errors_have_lines() {
        let e = load(&format!("{MINIMAL}max_instances = 2\nmin_instances = 5\n")).unwrap_err();
        assert_eq!(e.line, Some(6));
        assert_eq!(e.key.as_deref(), Some("app \"php\": min_instances"));
        // 0 is automatic sizing; its ceiling only makes sense with it.
        let c = load(&format!(
            "{MINIMAL}max_instances = 0\nmax_instances_auto_ceiling = 6\n"
        ))
        .unwrap();
        assert_eq!(
            (
                c.apps[0].max_instances,
                c.apps[0].max_instances_auto_ceiling
            ),
            (0, 6)
        );
        let e = load(&format!(
            "{MINIMAL}max_instances = 2\nmax_instances_auto_ceiling = 6\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(6));
        let e = load(&format!("{MINIMAL}request_timeout = \"0s\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        let e = load(&format!("{MINIMAL}stderr_mode = \"loud\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        let e = load(&format!("{MINIMAL}fallback = \"index.php\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        let e = load("[[app]]\nname = \"php\"\ncommand = \"x\"\nhandles = [\"*.php\", \"nope\"]\n")
            .unwrap_err();
        assert_eq!(e.line, Some(4));
        let e = load(&format!("{MINIMAL}{MINIMAL}")).unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
        let e = load("[[app]]\ncommand = \"x\"\n").unwrap_err();
        assert!(e.message.contains("name"), "{e}");
    }

    #[test]
    fn env_params_and_warnings() {
        let c = load(&format!(
            "{MINIMAL}instance_max_requests = 500\n[app.env]\nPHP_FCGI_MAX_REQUESTS = 100\nFLAG = true\n[app.params]\nAPP_ENV = \"prod\"\n"
        ))
        .unwrap();
        assert_eq!(c.apps[0].env["PHP_FCGI_MAX_REQUESTS"], "100");
        assert_eq!(c.apps[0].env["FLAG"], "true");
        assert_eq!(
            c.apps[0].params,
            vec![("APP_ENV".to_string(), "prod".to_string())]
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("PHP_FCGI_MAX_REQUESTS")),
            "{:?}",
            c.warnings
        );
    }
}
