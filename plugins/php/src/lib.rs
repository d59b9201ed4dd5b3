//! The PHP launcher: `launcher = "php"` on an `[[app]]` starts `php-cgi`
//! pools the way PHP expects to run under FastCGI.
//!
//! - `php-cgi` (or the app's `command`), with `-c <php_ini>` when the
//!   `php_ini` option is set;
//! - `PHP_FCGI_CHILDREN=0` (the gateway's pool is the process manager, not
//!   php-cgi's own forking) and `PHP_FCGI_MAX_REQUESTS` no lower than the
//!   app's `instance_max_requests` (php-cgi would otherwise exit before the
//!   gateway recycles it);
//! - `REDIRECT_STATUS=200` (php-cgi's `cgi.force_redirect` check);
//! - handles `*.php` with `resource_type = "file"`: only existing scripts
//!   run, the defence against `/uploads/x.jpg/y.php` (the app's own
//!   `handles` and `resource_type` win);
//! - `front_controller = true`: requests for paths where no file exists go
//!   to `/index.php` (or `index`), as WordPress, Laravel and Symfony need.
//!
//! Options (`[app.options]`): `php_ini`, `front_controller`, `index`.

use fastgate_sdk::{AppConfig, Capabilities, MappingDefaults, Plugin, SpawnSpec, parse_config};
use serde::Deserialize;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    /// A php.ini to use (`php-cgi -c`).
    php_ini: Option<String>,
    /// Send requests for missing files to the front controller.
    #[serde(default)]
    front_controller: bool,
    /// The front controller (default `/index.php`).
    index: Option<String>,
}

/// The launcher; it has no settings of its own beyond each app's options.
#[derive(Debug)]
pub struct PhpLauncher;

impl Plugin for PhpLauncher {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(PhpLauncher)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LAUNCHER
    }

    fn launch(&self, app: &AppConfig) -> Result<SpawnSpec, String> {
        let options: Options = parse_config(&app.options)?;
        let mut args = Vec::new();
        if let Some(ini) = &options.php_ini {
            if ini.is_empty() {
                return Err("php_ini must name a file".to_string());
            }
            args.push("-c".to_string());
            args.push(app.path(ini));
        }
        // Never lower than the pool's recycling point; 0 (unlimited) stays 0.
        let configured = app
            .env
            .iter()
            .find(|(k, _)| k == "PHP_FCGI_MAX_REQUESTS")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok());
        let max_requests = match configured {
            Some(n) if app.instance_max_requests != 0 && n != 0 => n.max(app.instance_max_requests),
            Some(n) if app.instance_max_requests == 0 => n,
            _ => app.instance_max_requests,
        };
        let fallback = if options.front_controller {
            let index = options.index.unwrap_or_else(|| "/index.php".to_string());
            if !index.starts_with('/') || !index.ends_with(".php") {
                return Err(format!(
                    "index must be a path like \"/index.php\", not {index:?}"
                ));
            }
            Some(index)
        } else if options.index.is_some() {
            return Err("index is only used with front_controller = true".to_string());
        } else {
            None
        };
        Ok(SpawnSpec {
            command: app.command.clone().unwrap_or_else(|| "php-cgi".to_string()),
            args,
            env: vec![
                ("PHP_FCGI_CHILDREN".to_string(), "0".to_string()),
                (
                    "PHP_FCGI_MAX_REQUESTS".to_string(),
                    max_requests.to_string(),
                ),
            ],
            params: vec![("REDIRECT_STATUS".to_string(), "200".to_string())],
            mapping: MappingDefaults {
                handles: vec!["*.php".to_string()],
                resource_type: Some("file".to_string()),
                fallback,
                static_dirs: Vec::new(),
            },
            ..SpawnSpec::default()
        })
    }
}

#[cfg(not(feature = "builtin"))]
fastgate_sdk::export_plugin!(PhpLauncher);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn app(options: &str, env: &[(&str, &str)], max: u64) -> AppConfig {
        AppConfig {
            name: "php".into(),
            options: options.into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            instance_max_requests: max,
            ..AppConfig::default()
        }
    }

    fn env_of(spec: &SpawnSpec, name: &str) -> String {
        spec.env.iter().find(|(k, _)| k == name).unwrap().1.clone()
    }

    #[test]
    fn php_cgi_with_the_fastcgi_environment() {
        let spec = PhpLauncher.launch(&app("{}", &[], 200)).unwrap();
        assert_eq!(spec.command, "php-cgi");
        assert!(spec.args.is_empty());
        assert_eq!(env_of(&spec, "PHP_FCGI_CHILDREN"), "0");
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "200");
        assert_eq!(spec.mapping.handles, ["*.php"]);
        assert_eq!(spec.mapping.resource_type.as_deref(), Some("file"));
        assert_eq!(spec.mapping.fallback, None);
    }

    #[test]
    fn max_requests_never_lower_than_the_pool() {
        let spec = PhpLauncher
            .launch(&app("{}", &[("PHP_FCGI_MAX_REQUESTS", "50")], 500))
            .unwrap();
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "500");
        let spec = PhpLauncher
            .launch(&app("{}", &[("PHP_FCGI_MAX_REQUESTS", "9000")], 500))
            .unwrap();
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "9000");
        let spec = PhpLauncher.launch(&app("{}", &[], 0)).unwrap();
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "0");
    }

    #[test]
    fn options() {
        let spec = PhpLauncher
            .launch(&app(
                r#"{"php_ini": "/etc/php.ini", "front_controller": true}"#,
                &[],
                1,
            ))
            .unwrap();
        assert_eq!(spec.args, ["-c", "/etc/php.ini"]);
        assert_eq!(spec.mapping.fallback.as_deref(), Some("/index.php"));
        let err = PhpLauncher
            .launch(&app(r#"{"php_inii": "x"}"#, &[], 1))
            .unwrap_err();
        assert!(err.contains("unknown field `php_inii`"), "{err}");
        assert!(
            PhpLauncher
                .launch(&app(r#"{"index": "/app.php"}"#, &[], 1))
                .is_err()
        );
    }
}
