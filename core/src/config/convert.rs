//! Conversion and validation: the raw tables of [`super::raw`] → the typed
//! settings of [`super`].
//!
//! Defaults are applied here, values are checked, relative paths resolved,
//! and every error points at the key that caused it. This module does not
//! read files or parse TOML (that is `load`) and does not look for programs
//! (that is `command`).

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::parse::{
    parse_duration, parse_error_details, parse_listen, parse_on_error, parse_size,
    parse_static_file_io,
};
use super::raw::{RawAdmin, RawApp, RawConfig, RawPlugin, RawServer};
use super::source::Source;
use super::{
    AccessLogTarget, AdminSettings, AppSettings, Config, ConfigError, OnError, PluginKind,
    PluginSettings, ServerSettings, cpu_count, defaults,
};

mod app;
mod head;
mod section;
mod statics;

use app::convert_app;
use head::head_limits;
use section::Section;
use statics::convert_statics;

/// The whole file: the plugins first (apps and the server refer to them by
/// name), then the server, the static folders, then every app.
pub(super) fn convert(raw: RawConfig, src: &Source<'_>) -> Result<Config, ConfigError> {
    let plugin_lines = raw
        .plugin
        .iter()
        .filter_map(|p| {
            let name = p.get_ref().name.as_ref()?.get_ref().clone();
            Some((name, src.position(p.span().start).0))
        })
        .collect();
    let plugins = convert_plugins(raw.plugin, src)?;
    let mut raw_server = raw.server.unwrap_or_default();
    let server_plugins = plugin_refs(&plugins, raw_server.plugins.take(), "server.plugins", src)?;
    let mut server = convert_server(raw_server, src)?;
    server.plugins = server_plugins;
    let mut warnings = Vec::new();
    let static_folders = convert_statics(raw.static_folders, src, &mut warnings)?;
    let apps = convert_apps(raw.app, &plugins, &server, src, &mut warnings)?;
    if !server.root.is_dir() {
        warnings.push(format!(
            "server root {} is not a directory",
            server.root.display()
        ));
    }
    let admin = match raw.admin {
        Some(table) => Some(convert_admin(table, &server, src)?),
        None => None,
    };
    Ok(Config {
        admin,
        source: src.file.map(Path::to_path_buf),
        base_dir: src.base.clone(),
        server,
        static_folders,
        apps,
        plugins,
        warnings,
        plugin_lines,
    })
}

/// `[admin]`: its address, never one the public listeners take.
fn convert_admin(
    raw: Spanned<RawAdmin>,
    server: &ServerSettings,
    src: &Source<'_>,
) -> Result<AdminSettings, ConfigError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let t = Section::new(src, "admin.".to_string());
    let Some(listen) = raw.listen else {
        return Err(t.error(
            Some(span),
            "listen",
            "missing key `listen` (e.g. \"127.0.0.1:9180\")",
        ));
    };
    let addr = t.read(&listen, "listen", |a| {
        a.parse::<SocketAddr>()
            .map_err(|_| format!("{a:?} is not an IP:port address (e.g. \"127.0.0.1:9180\")"))
    })?;
    // Port 0 (an ephemeral port, as in tests) cannot clash.
    let clash = addr.port() != 0
        && server.listen.iter().any(|public| {
            public.port() == addr.port()
                && (public.ip() == addr.ip()
                    || public.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        });
    if clash {
        return Err(t.error(
            Some(listen.span()),
            "listen",
            "the admin listener must not share an address with [server] listen: give it a port of its own",
        ));
    }
    Ok(AdminSettings {
        listen: addr,
        token_file: raw.token_file.map(|f| src.path(f.get_ref())),
    })
}

/// Every `[[plugin]]`, in file order; names are unique.
fn convert_plugins(
    raw: Vec<Spanned<RawPlugin>>,
    src: &Source<'_>,
) -> Result<Vec<PluginSettings>, ConfigError> {
    let mut plugins: Vec<PluginSettings> = Vec::with_capacity(raw.len());
    for (i, raw_plugin) in raw.into_iter().enumerate() {
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
    Ok(plugins)
}

/// Every `[[app]]` with the line of its `command`; names are unique, and
/// the plugins and launcher an app names exist.
fn convert_apps(
    raw: Vec<Spanned<RawApp>>,
    plugins: &[PluginSettings],
    server: &ServerSettings,
    src: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<AppSettings>, ConfigError> {
    let mut apps: Vec<AppSettings> = Vec::with_capacity(raw.len());
    for (i, raw_app) in raw.into_iter().enumerate() {
        let span = raw_app.span();
        let mut raw_app = raw_app.into_inner();
        // The name is checked by `convert_app`, after the references.
        let app_name = raw_app
            .name
            .as_ref()
            .map_or_else(|| format!("#{}", i + 1), |n| n.get_ref().clone());
        let key = format!("app \"{app_name}\": plugins");
        let app_plugins = plugin_refs(plugins, raw_app.plugins.take(), &key, src)?;
        if let Some(launcher) = &raw_app.launcher {
            check_launcher(plugins, launcher, &app_name, src)?;
        }
        let mut app = convert_app(raw_app, span.clone(), i, server, src, warnings)?;
        if let Some(first) = apps.iter().position(|a| a.name == app.name) {
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
    }
    Ok(apps)
}

/// `plugins = [...]` of the server or an app: names of `[[plugin]]` entries.
fn plugin_refs(
    plugins: &[PluginSettings],
    names: Option<Vec<Spanned<String>>>,
    key: &str,
    src: &Source<'_>,
) -> Result<Vec<String>, ConfigError> {
    names
        .unwrap_or_default()
        .iter()
        .map(|name| plugin_ref(plugins, name, key, src))
        .collect()
}

/// An app's `launcher`: built in, or the name of a `[[plugin]]`.
fn check_launcher(
    plugins: &[PluginSettings],
    launcher: &Spanned<String>,
    app_name: &str,
    src: &Source<'_>,
) -> Result<(), ConfigError> {
    if super::BUILTIN_LAUNCHERS.contains(&launcher.get_ref().as_str()) {
        return Ok(());
    }
    let key = format!("app \"{app_name}\": launcher");
    plugin_ref(plugins, launcher, &key, src).map_err(|mut e| {
        e.message.push_str(&format!(
            "; built-in launchers: {}",
            super::BUILTIN_LAUNCHERS.join(", ")
        ));
        e
    })?;
    Ok(())
}

/// The name of a `[[plugin]]`, or an error listing the known ones.
fn plugin_ref(
    plugins: &[PluginSettings],
    name: &Spanned<String>,
    key: &str,
    src: &Source<'_>,
) -> Result<String, ConfigError> {
    if plugins.iter().any(|p| &p.name == name.get_ref()) {
        return Ok(name.get_ref().clone());
    }
    let known: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
    let message = if known.is_empty() {
        format!("no [[plugin]] named {:?} (there are none)", name.get_ref())
    } else {
        format!(
            "no [[plugin]] named {:?} (known: {})",
            name.get_ref(),
            known.join(", ")
        )
    };
    Err(src.error(Some(name.span()), Some(key.to_string()), message))
}

/// `[server]`.
fn convert_server(raw: RawServer, src: &Source<'_>) -> Result<ServerSettings, ConfigError> {
    let t = Section::new(src, "server.".to_string());
    let listen = match raw.listen.as_ref() {
        Some(listen) => t.read(listen, "listen", parse_listen)?,
        None => vec![
            defaults::LISTEN
                .parse()
                .map_err(|_| t.error(None, "listen", "bad default"))?,
        ],
    };
    let head_limits = head_limits(&raw, &t)?;
    let root = raw.root.map_or_else(|| src.base.clone(), |r| src.path(&r));
    let max_response_header_size = t.size(
        raw.max_response_header_size.as_ref(),
        "max_response_header_size",
        defaults::MAX_RESPONSE_HEADER_SIZE as u64,
    )?;
    Ok(ServerSettings {
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
        head_limits,
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
        send_timeout: t.timeout(
            raw.send_timeout.as_ref(),
            "send_timeout",
            defaults::SEND_TIMEOUT,
        )?,
        access_log: match raw.access_log.as_deref() {
            None | Some("stdout") => AccessLogTarget::Stdout,
            Some("off") => AccessLogTarget::Off,
            Some(path) => AccessLogTarget::File(src.path(path)),
        },
        runtime_dir: raw.runtime_dir.as_ref().map(|d| src.path(d.get_ref())),
        runtime_dir_line: raw
            .runtime_dir
            .as_ref()
            .map(|d| src.position(d.span().start).0),
        error_details: t.read_or(
            raw.error_details.as_ref(),
            "error_details",
            defaults::ERROR_DETAILS,
            |v| parse_error_details(v),
        )?,
        plugin_cache_dir: match raw.plugin_cache_dir.as_deref() {
            None => default_plugin_cache_dir(),
            Some("") => None,
            Some(dir) => Some(src.path(dir)),
        },
        static_file_io: t.read_or(
            raw.static_file_io.as_ref(),
            "static_file_io",
            defaults::STATIC_FILE_IO,
            |v| parse_static_file_io(v),
        )?,
        // 0 (the default) = automatic.
        worker_threads: match t.count(raw.worker_threads.as_ref(), "worker_threads", 0, 0)? {
            0 => None,
            n => Some(usize::try_from(n).unwrap_or(usize::MAX).min(1024)),
        },
        plugins: Vec::new(),
        // 0 (the default) = automatic.
        max_connections: match t.count(raw.max_connections.as_ref(), "max_connections", 0, 0)? {
            0 => None,
            n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        },
    })
}

/// The user's cache folder for fastgate (XDG base directories), if there
/// is a home to put it in.
fn default_plugin_cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|home| home.join(".cache")))?;
    Some(base.join("fastgate"))
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

/// One `[[plugin]]` (the `index`-th, at `span`).
fn convert_plugin(
    raw: RawPlugin,
    span: Range<usize>,
    index: usize,
    src: &Source<'_>,
) -> Result<PluginSettings, ConfigError> {
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
    Ok(PluginSettings {
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

    use crate::config::test_support::{MINIMAL, load};
    use crate::config::{AccessLogTarget, Protocol, ResourceType, Verbs};

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
        assert_eq!(c.server.access_log, AccessLogTarget::Stdout);
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
        assert_eq!(c.apps[0].command_line, Some(3));
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
}
