//! The Python launcher: `launcher = "django"` runs any WSGI app (Django,
//! Flask, ...) through a WSGI-to-FastCGI bridge that this plugin carries
//! (`wsgi_bridge.py`) and the gateway writes into the app's runtime
//! directory. Each bridge process serves one request at a time, like
//! php-cgi.
//!
//! Options (`[app.options]`), each also accepted the old way, as the
//! environment variable of the same name in `[app.env]` (as with IIS's
//! wfastcgi):
//!
//! | option | variable | meaning |
//! |---|---|---|
//! | `wsgi_handler` | `WSGI_HANDLER` | the app, as a dotted name (`mysite.wsgi.application`) |
//! | `django_settings_module` | `DJANGO_SETTINGS_MODULE` | Django's settings module |
//! | `python_path` | `PYTHONPATH` / `PYTHON_PATH` | folders for `sys.path`, `:`-separated |
//! | `virtualenv` | — | a virtualenv whose `bin/python` runs the bridge |
//! | `static_url` + `static_root` | — | a URL prefix served by the gateway from a folder (Django's `collectstatic` output) |
//!
//! The app's `command`, when given, is the Python interpreter to use.
//!
//! Unless the app sets `min_instances`, the launcher proposes 1: a bridge
//! process starts with the gateway and imports the app then, so the first
//! request does not wait for the import (a second or more for Django).
//!
//! Unless the app sets `stderr_mode`, it proposes `ignore-and-return-200`:
//! a `logger.warning()` or a deprecation warning is logged with the app,
//! pid and URI, and the page is served (IIS's default turns it into a 500
//! showing the text to any client).
//!
//! It sets `FASTGATE_STACK_SIGNAL=SIGUSR1` (unless `[app.env]` sets it):
//! on that signal the bridge writes the Python stack of the running
//! request to FCGI_STDERR, and the gateway, which only ever signals apps
//! whose environment names a signal, sends it when a request passes
//! `slow_request_timeout` and before `request_timeout` stops one.
//!
//! The paths it can know are required (checked when the gateway starts and
//! by `fastgate check`): each `python_path` folder (the project, where
//! `manage.py` is), the `virtualenv`'s `bin/python`, and `static_root`.

use fastgate_sdk::{
    AppConfig, Capabilities, MappingDefaults, Plugin, PoolDefaults, RequiredPath, RuntimeFile,
    SpawnSpec, StderrMode, parse_config,
};
use serde::Deserialize;

/// The bridge, written to `{runtime_dir}/wsgi_bridge.py`.
const BRIDGE: &str = include_str!("wsgi_bridge.py");

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    wsgi_handler: Option<String>,
    django_settings_module: Option<String>,
    python_path: Option<String>,
    virtualenv: Option<String>,
    static_url: Option<String>,
    static_root: Option<String>,
}

/// The launcher.
#[derive(Debug)]
pub struct DjangoLauncher;

impl Plugin for DjangoLauncher {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(DjangoLauncher)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LAUNCHER
    }

    fn launch(&self, app: &AppConfig) -> Result<SpawnSpec, String> {
        let options: Options = parse_config(&app.options)?;
        let from_env = |name: &str| {
            app.env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let handler = options
            .wsgi_handler
            .clone()
            .or_else(|| from_env("WSGI_HANDLER"))
            .ok_or_else(|| {
                "no WSGI app: set the wsgi_handler option (e.g. \"mysite.wsgi.application\") or WSGI_HANDLER in [app.env]"
                    .to_string()
            })?;
        let mut env = vec![("WSGI_HANDLER".to_string(), handler)];
        let mut required = Vec::new();
        if let Some(settings) = &options.django_settings_module {
            env.push(("DJANGO_SETTINGS_MODULE".to_string(), settings.clone()));
        }
        if let Some(path) = &options.python_path {
            let folders: Vec<String> = path.split(':').map(|p| app.path(p)).collect();
            for folder in &folders {
                required.push(RequiredPath::new(folder, "a python_path folder"));
            }
            env.push(("PYTHONPATH".to_string(), folders.join(":")));
        }
        // Python writes no .pyc next to the app and flushes its output
        // (the gateway logs stdout and stderr line by line).
        env.push(("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()));
        env.push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
        // The bridge writes the running request's stack on this signal.
        env.push(("FASTGATE_STACK_SIGNAL".to_string(), "SIGUSR1".to_string()));
        let command = match (&app.command, &options.virtualenv) {
            (Some(command), _) => command.clone(),
            (None, Some(venv)) => {
                let venv = app.path(venv);
                env.push(("VIRTUAL_ENV".to_string(), venv.clone()));
                let python = format!("{}/bin/python", venv.trim_end_matches('/'));
                required.push(RequiredPath::new(&python, "the virtualenv's python"));
                python
            }
            (None, None) => "python3".to_string(),
        };
        let static_dirs = match (options.static_url, options.static_root) {
            (Some(url), Some(root)) => {
                if !url.starts_with('/') || !url.ends_with('/') {
                    return Err(format!(
                        "static_url must start and end with '/', not {url:?}"
                    ));
                }
                required.push(RequiredPath::new(app.path(&root), "the static_root folder"));
                vec![(url, app.path(&root))]
            }
            (None, None) => Vec::new(),
            _ => return Err("static_url and static_root go together".to_string()),
        };
        Ok(SpawnSpec {
            command,
            args: vec!["{runtime_dir}/wsgi_bridge.py".to_string()],
            env,
            files: vec![RuntimeFile {
                name: "wsgi_bridge.py".to_string(),
                contents: BRIDGE.as_bytes().to_vec(),
                executable: false,
            }],
            mapping: MappingDefaults {
                handles: vec!["/*".to_string()],
                resource_type: Some("unspecified".to_string()),
                fallback: None,
                static_dirs,
            },
            // One process importing the app before the first request.
            pool: PoolDefaults {
                min_instances: Some(1),
                // A warning on stderr is logged, not shown to the client.
                stderr_mode: Some(StderrMode::IgnoreAndReturn200),
                ..PoolDefaults::default()
            },
            required_paths: required,
            ..SpawnSpec::default()
        })
    }
}

#[cfg(not(feature = "builtin"))]
fastgate_sdk::export_plugin!(DjangoLauncher);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn app(options: &str, env: &[(&str, &str)]) -> AppConfig {
        AppConfig {
            name: "site".into(),
            options: options.into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..AppConfig::default()
        }
    }

    #[test]
    fn options_or_the_old_environment_variables() {
        let spec = DjangoLauncher
            .launch(&app(
                r#"{"wsgi_handler": "mysite.wsgi.application", "virtualenv": "/srv/venv/", "static_url": "/static/", "static_root": "/srv/static"}"#,
                &[],
            ))
            .unwrap();
        assert_eq!(spec.command, "/srv/venv/bin/python");
        assert_eq!(spec.args, ["{runtime_dir}/wsgi_bridge.py"]);
        assert!(
            spec.env
                .contains(&("WSGI_HANDLER".into(), "mysite.wsgi.application".into()))
        );
        assert_eq!(
            spec.mapping.static_dirs,
            [("/static/".to_string(), "/srv/static".to_string())]
        );
        assert_eq!(spec.files[0].name, "wsgi_bridge.py");
        assert_eq!(spec.pool.min_instances, Some(1));
        assert!(
            spec.env
                .contains(&("FASTGATE_STACK_SIGNAL".into(), "SIGUSR1".into()))
        );
        assert_eq!(spec.pool.instance_max_requests, None);
        assert_eq!(spec.pool.stderr_mode, Some(StderrMode::IgnoreAndReturn200));
        assert_eq!(
            spec.required_paths,
            [
                RequiredPath::new("/srv/venv/bin/python", "the virtualenv's python"),
                RequiredPath::new("/srv/static", "the static_root folder"),
            ]
        );
        let spec = DjangoLauncher
            .launch(&app(
                "{}",
                &[("WSGI_HANDLER", "django.core.handlers.wsgi.WSGIHandler")],
            ))
            .unwrap();
        assert_eq!(spec.command, "python3");
        assert!(spec.env.contains(&(
            "WSGI_HANDLER".into(),
            "django.core.handlers.wsgi.WSGIHandler".into()
        )));
        assert!(
            DjangoLauncher
                .launch(&app("{}", &[]))
                .unwrap_err()
                .contains("no WSGI app")
        );
        assert!(
            DjangoLauncher
                .launch(&app(r#"{"static_url": "/s/"}"#, &[("WSGI_HANDLER", "a.b")]))
                .is_err()
        );
        // Relative paths resolve against the config file's folder.
        let mut relative = app(
            r#"{"wsgi_handler": "m.app", "virtualenv": "venv", "python_path": "site:/abs", "static_url": "/s/", "static_root": "./site/static"}"#,
            &[],
        );
        relative.config_dir = "/etc/fg".into();
        let spec = DjangoLauncher.launch(&relative).unwrap();
        assert_eq!(spec.command, "/etc/fg/venv/bin/python");
        assert!(
            spec.env
                .contains(&("PYTHONPATH".into(), "/etc/fg/site:/abs".into()))
        );
        assert_eq!(spec.mapping.static_dirs[0].1, "/etc/fg/site/static");
        let required: Vec<&str> = spec
            .required_paths
            .iter()
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(
            required,
            [
                "/etc/fg/site",
                "/abs",
                "/etc/fg/venv/bin/python",
                "/etc/fg/site/static"
            ]
        );
    }
}
