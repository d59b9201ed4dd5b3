//! Conversion and validation: the raw tables of [`super::raw`] → the typed
//! settings of [`super`].
//!
//! Defaults are applied here, values are checked, relative paths resolved,
//! and every error points at the key that caused it. This module does not
//! read files or parse TOML (that is `load`) and does not look for programs
//! (that is `command`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::load::Source;
use super::parse::{
    parse_duration, parse_fallback, parse_listen, parse_on_error, parse_pattern, parse_protocol,
    parse_resource_type, parse_size, parse_stderr_mode, parse_verb,
};
use super::raw::{RawApp, RawConfig, RawPlugin, RawServer};
use super::{
    AccessLog, AppConfig, Config, ConfigError, LauncherRef, OnError, PluginConfig, PluginKind,
    Protocol, ResourceType, ServerConfig, StderrMode, Verbs, cpu_count, defaults,
};

mod section;

use section::Section;

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
    let t = Section::new(src, "server.".to_string());
    let listen = match raw.listen.as_ref() {
        Some(listen) => t.read(listen, "listen", parse_listen)?,
        None => vec![
            defaults::LISTEN
                .parse()
                .map_err(|_| t.error(None, "listen", "bad default"))?,
        ],
    };
    let root = raw.root.map_or_else(|| src.base.clone(), |r| src.path(&r));
    let max_response_header_size = t.size(
        raw.max_response_header_size.as_ref(),
        "max_response_header_size",
        defaults::MAX_RESPONSE_HEADER_SIZE as u64,
    )?;
    Ok(ServerConfig {
        listen,
        root,
        index: raw
            .index
            .unwrap_or_else(|| vec!["index.php".to_string(), "index.html".to_string()]),
        max_body_size: t.size(
            raw.max_body_size.as_ref(),
            "max_body_size",
            defaults::MAX_BODY_SIZE,
        )?,
        body_buffer_size: t.size(
            raw.body_buffer_size.as_ref(),
            "body_buffer_size",
            defaults::BODY_BUFFER_SIZE,
        )?,
        max_response_header_size: usize::try_from(max_response_header_size)
            .unwrap_or(usize::MAX)
            .max(1024),
        header_read_timeout: t.timeout(
            raw.header_read_timeout.as_ref(),
            "header_read_timeout",
            defaults::HEADER_READ_TIMEOUT,
        )?,
        body_read_timeout: t.timeout(
            raw.body_read_timeout.as_ref(),
            "body_read_timeout",
            defaults::BODY_READ_TIMEOUT,
        )?,
        shutdown_timeout: t.duration(
            raw.shutdown_timeout.as_ref(),
            "shutdown_timeout",
            defaults::SHUTDOWN_TIMEOUT,
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
    let name = table_name(raw.name.as_ref(), "app", span.clone(), index, src)?;
    let t = Section::new(src, format!("app \"{name}\": "));
    let launcher = raw.launcher.as_ref().map(|l| LauncherRef {
        plugin: l.get_ref().clone(),
        options_json: table_json(raw.options.clone()),
        command_given: raw.command.is_some(),
        handles_given: raw.handles.is_some(),
        resource_type_given: raw.resource_type.is_some(),
        request_timeout_given: raw.request_timeout.is_some(),
    });
    if raw.options.is_some() && launcher.is_none() {
        return Err(t.error(
            Some(span),
            "options",
            "[app.options] is for a launcher's settings; this app has no `launcher`",
        ));
    }
    let command = match raw.command {
        Some(command) => command,
        // A launcher will say what to run.
        None if launcher.is_some() => Spanned::new(span.clone(), String::new()),
        None => {
            return Err(t.error(
                Some(span),
                "command",
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
            return Err(t.error(Some(command.span()), "command", "must not be empty"));
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
            return Err(t.error(
                Some(span),
                "handles",
                "missing key `handles` (e.g. [\"*.php\"])",
            ));
        }
    };
    if handles.get_ref().is_empty() && launcher.as_ref().is_none_or(|l| l.handles_given) {
        return Err(t.error(
            Some(handles.span()),
            "handles",
            "needs at least one pattern",
        ));
    }
    let handles = handles
        .get_ref()
        .iter()
        .map(|p| t.read(p, "handles", |p| parse_pattern(p)))
        .collect::<Result<Vec<_>, _>>()?;
    let verbs = match raw.verbs {
        None => Verbs::Any,
        Some(list) if list.iter().any(|v| v.get_ref() == "*") => Verbs::Any,
        Some(list) => Verbs::List(
            list.iter()
                .map(|v| t.read(v, "verbs", |v| parse_verb(v)))
                .collect::<Result<_, _>>()?,
        ),
    };
    let resource_type = t.read_or(
        raw.resource_type.as_ref(),
        "resource_type",
        ResourceType::File,
        |v| parse_resource_type(v),
    )?;
    let fallback = t.read_or(raw.fallback.as_ref(), "fallback", None, |v| {
        parse_fallback(v).map(Some)
    })?;
    let max_instances = t.count(
        raw.max_instances.as_ref(),
        "max_instances",
        defaults::MAX_INSTANCES as u64,
        0,
    )?;
    let ceiling = raw.max_instances_auto_ceiling.as_ref();
    let max_instances_auto_ceiling = t.count(
        ceiling,
        "max_instances_auto_ceiling",
        4 * cpu_count() as u64,
        1,
    )?;
    if max_instances != 0
        && let Some(ceiling) = ceiling
    {
        return Err(t.error(
            Some(ceiling.span()),
            "max_instances_auto_ceiling",
            "only applies with max_instances = 0 (automatic sizing)",
        ));
    }
    // With automatic sizing the bound that matters is the ceiling.
    let upper = if max_instances == 0 {
        max_instances_auto_ceiling
    } else {
        max_instances
    };
    let min = raw.min_instances.as_ref();
    let min_instances = t.count(min, "min_instances", defaults::MIN_INSTANCES as u64, 0)?;
    if min_instances > upper {
        return Err(t.error(
            min.map(Spanned::span),
            "min_instances",
            format!("{min_instances} is more than max_instances ({upper})"),
        ));
    }
    let instance_max_requests = t.count(
        raw.instance_max_requests.as_ref(),
        "instance_max_requests",
        defaults::INSTANCE_MAX_REQUESTS,
        1,
    )?;
    let queue_length = t.count(
        raw.queue_length.as_ref(),
        "queue_length",
        defaults::QUEUE_LENGTH as u64,
        0,
    )?;
    let protocol = t.read_or(raw.protocol.as_ref(), "protocol", Protocol::Unix, |v| {
        parse_protocol(v)
    })?;
    let signal_before_terminate = t.duration(
        raw.signal_before_terminate.as_ref(),
        "signal_before_terminate",
        defaults::SIGNAL_BEFORE_TERMINATE,
    )?;
    let request_timeout = t.timeout(
        raw.request_timeout.as_ref(),
        "request_timeout",
        defaults::REQUEST_TIMEOUT,
    )?;
    let activity_timeout = t.timeout(
        raw.activity_timeout.as_ref(),
        "activity_timeout",
        defaults::ACTIVITY_TIMEOUT,
    )?;
    let idle_timeout = t.timeout(
        raw.idle_timeout.as_ref(),
        "idle_timeout",
        defaults::IDLE_TIMEOUT,
    )?;
    let rapid_fails_per_minute = t.count(
        raw.rapid_fails_per_minute.as_ref(),
        "rapid_fails_per_minute",
        defaults::RAPID_FAILS_PER_MINUTE as u64,
        1,
    )?;
    let stderr_mode = t.read_or(
        raw.stderr_mode.as_ref(),
        "stderr_mode",
        StderrMode::ReturnStderrIn500,
        |v| parse_stderr_mode(v),
    )?;
    let response_buffer_limit = t.size(
        raw.response_buffer_limit.as_ref(),
        "response_buffer_limit",
        defaults::RESPONSE_BUFFER_LIMIT,
    )?;
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
            "app \"{name}\": PHP_FCGI_MAX_REQUESTS ({php_max}) is lower than instance_max_requests ({instance_max_requests}): \
             php-cgi would exit on its own first, so instances are recycled after {php_max} requests",
        ));
    }
    let root = raw
        .root
        .map_or_else(|| server.root.clone(), |r| src.path(&r));
    if !root.is_dir() && root != server.root {
        warnings.push(format!(
            "app \"{name}\": root {} is not a directory",
            root.display()
        ));
    }
    let app = AppConfig {
        name,
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
    name: Option<&Spanned<String>>,
    table: &str,
    span: Range<usize>,
    index: usize,
    src: &Source<'_>,
) -> Result<String, ConfigError> {
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
    Ok(name.get_ref().clone())
}

/// A TOML table handed to a plugin (`config`, `[app.options]`) as JSON
/// text; `{}` when absent.
fn table_json(table: Option<toml::Table>) -> String {
    serde_json::to_string(&table.unwrap_or_default()).unwrap_or_else(|_| "{}".to_string())
}

fn convert_plugin(
    raw: RawPlugin,
    span: Range<usize>,
    index: usize,
    src: &Source<'_>,
) -> Result<PluginConfig, ConfigError> {
    let name = table_name(raw.name.as_ref(), "plugin", span.clone(), index, src)?;
    let t = Section::new(src, format!("plugin \"{name}\": "));
    let Some(path) = raw.path else {
        return Err(t.error(
            Some(span),
            "path",
            "missing key `path` (a .wasm component or a native .so library)",
        ));
    };
    let file = src.path(path.get_ref());
    let kind = match file.extension().and_then(|e| e.to_str()) {
        Some("wasm") => PluginKind::Wasm,
        _ => PluginKind::Native,
    };
    let on_error = t.read_or(
        raw.on_error.as_ref(),
        "on_error",
        OnError::FailClosed,
        |v| parse_on_error(v),
    )?;
    // Worded differently from the apps' timeouts; kept as users know it.
    let timeout = t.read_or(
        raw.timeout.as_ref(),
        "timeout",
        defaults::PLUGIN_TIMEOUT,
        |v| match parse_duration(v)? {
            d if d.is_zero() => Err("must be more than 0".to_string()),
            d => Ok(d),
        },
    )?;
    let memory_limit = t.read_or(
        raw.memory_limit.as_ref(),
        "memory_limit",
        defaults::PLUGIN_MEMORY_LIMIT,
        |v| match parse_size(v)? {
            n if n < 1024 * 1024 => Err(
                "must be at least 1 MiB (a component needs room for its stack and data)"
                    .to_string(),
            ),
            n => Ok(n),
        },
    )?;
    let instances = t.count(
        raw.instances.as_ref(),
        "instances",
        2 * cpu_count() as u64,
        1,
    )?;
    Ok(PluginConfig {
        name,
        path: file,
        kind,
        config_json: table_json(raw.config),
        on_error,
        timeout,
        memory_limit,
        instances: usize::try_from(instances).unwrap_or(usize::MAX),
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
