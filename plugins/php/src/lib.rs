//! The PHP launcher: `launcher = "php"` on an `[[app]]` starts `php-cgi`
//! pools the way PHP expects to run under FastCGI.
//!
//! - `php-cgi` (or the app's `command`), with `-c <php_ini>` when the
//!   `php_ini` option is set, then the app's own `args` (a user's `-d`
//!   comes after the launcher's, so it wins);
//! - `instance_max_requests = 10000` when the app does not set it: IIS's
//!   guidance for PHP, where the gateway's default (200, IIS's generic one)
//!   restarts php-cgi dozens of times a second under load;
//! - an opcache file cache in the app's private runtime directory
//!   (`-d opcache.file_cache={runtime_dir}/opcache`), so that a new php-cgi
//!   loads the scripts its predecessors compiled instead of compiling them
//!   again (each php-cgi has its own opcache memory); `opcache_file_cache =
//!   false` turns it off;
//! - `PHP_FCGI_CHILDREN=0` (the gateway's pool is the process manager, not
//!   php-cgi's own forking) and `PHP_FCGI_MAX_REQUESTS` no lower than the
//!   pool's `instance_max_requests` (php-cgi would otherwise exit before the
//!   gateway recycles it);
//! - `REDIRECT_STATUS=200` (php-cgi's `cgi.force_redirect` check);
//! - handles `*.php` with `resource_type = "file"`: only existing scripts
//!   run, the defence against `/uploads/x.jpg/y.php` (the app's own
//!   `handles` and `resource_type` win);
//! - `front_controller = true`: requests for paths where no file exists go
//!   to `/index.php` (or `index`), as WordPress, Laravel and Symfony need;
//! - `stderr_mode = "ignore-and-return-200"` unless the app sets it: a PHP
//!   warning or notice is logged with the app, pid and URI, and the page is
//!   served (IIS's default turns it into a 500 showing the text, file paths
//!   included, to any client);
//! - the `php_ini` file is required: the gateway refuses to start (and
//!   `fastgate check` fails) when it does not exist.
//!
//! Options (`[app.options]`): `php_ini`, `front_controller`, `index`,
//! `opcache_file_cache`.

use fastgate_sdk::{
    AppConfig, Capabilities, MappingDefaults, Plugin, PoolDefaults, RequiredPath, SpawnSpec,
    StderrMode, parse_config,
};
use serde::Deserialize;

/// `instance_max_requests` proposed when the app sets none: the value of
/// IIS's PHP guidance (`instanceMaxRequests` and `PHP_FCGI_MAX_REQUESTS`
/// both 10000). php-cgi is recycled to contain leaks, and PHP leaks little.
const MAX_REQUESTS: u64 = 10_000;

/// The folder of the opcache file cache in the app's runtime directory.
const OPCACHE_DIR: &str = "opcache";

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
    /// Keep compiled scripts in a file cache every php-cgi of the app
    /// shares (default true).
    #[serde(default = "yes")]
    opcache_file_cache: bool,
}

fn yes() -> bool {
    true
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
        let mut required_paths = Vec::new();
        if let Some(ini) = &options.php_ini {
            if ini.is_empty() {
                return Err("php_ini must name a file".to_string());
            }
            args.push("-c".to_string());
            args.push(app.path(ini));
            required_paths.push(RequiredPath::new(app.path(ini), "the php_ini option"));
        }
        let mut dirs = Vec::new();
        if options.opcache_file_cache {
            args.push("-d".to_string());
            args.push(format!("opcache.file_cache={{runtime_dir}}/{OPCACHE_DIR}"));
            dirs.push(OPCACHE_DIR.to_string());
        }
        // The user's arguments last: php-cgi takes the last `-d` of a name.
        args.extend(app.args.iter().cloned());
        let pool_max = app.instance_max_requests.unwrap_or(MAX_REQUESTS);
        let max_requests = php_fcgi_max_requests(&app.env, pool_max);
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
            pool: PoolDefaults {
                instance_max_requests: app.instance_max_requests.is_none().then_some(MAX_REQUESTS),
                stderr_mode: Some(StderrMode::IgnoreAndReturn200),
                ..PoolDefaults::default()
            },
            dirs,
            required_paths,
            ..SpawnSpec::default()
        })
    }
}

/// `PHP_FCGI_MAX_REQUESTS` for a pool that recycles after `pool_max`
/// requests: the app's own value, but never lower than the pool's recycling
/// point (php-cgi would exit first); 0 (unlimited) stays 0.
fn php_fcgi_max_requests(env: &[(String, String)], pool_max: u64) -> u64 {
    let configured = env
        .iter()
        .find(|(k, _)| k == "PHP_FCGI_MAX_REQUESTS")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    match configured {
        Some(n) if pool_max != 0 && n != 0 => n.max(pool_max),
        Some(n) if pool_max == 0 => n,
        _ => pool_max,
    }
}

#[cfg(not(feature = "builtin"))]
fastgate_sdk::export_plugin!(PhpLauncher);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What the gateway tells the launcher: `max` is the file's
    /// `instance_max_requests`, when it sets one.
    fn app(options: &str, env: &[(&str, &str)], max: Option<u64>) -> AppConfig {
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

    const OPCACHE_ARGS: [&str; 2] = ["-d", "opcache.file_cache={runtime_dir}/opcache"];

    #[test]
    fn php_cgi_with_the_fastcgi_environment() {
        let spec = PhpLauncher.launch(&app("{}", &[], Some(200))).unwrap();
        assert_eq!(spec.command, "php-cgi");
        assert_eq!(spec.args, OPCACHE_ARGS);
        assert_eq!(env_of(&spec, "PHP_FCGI_CHILDREN"), "0");
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "200");
        assert_eq!(spec.mapping.handles, ["*.php"]);
        assert_eq!(spec.mapping.resource_type.as_deref(), Some("file"));
        assert_eq!(spec.mapping.fallback, None);
        // The file set instance_max_requests: nothing to propose for it.
        assert_eq!(
            spec.pool,
            PoolDefaults {
                stderr_mode: Some(StderrMode::IgnoreAndReturn200),
                ..PoolDefaults::default()
            }
        );
        assert!(spec.required_paths.is_empty());
    }

    #[test]
    fn without_instance_max_requests_it_proposes_iis_php_value() {
        let spec = PhpLauncher.launch(&app("{}", &[], None)).unwrap();
        assert_eq!(spec.pool.instance_max_requests, Some(10_000));
        assert_eq!(spec.pool.min_instances, None);
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "10000");
        // The app's own PHP_FCGI_MAX_REQUESTS, never below the pool's.
        let spec = PhpLauncher
            .launch(&app("{}", &[("PHP_FCGI_MAX_REQUESTS", "500")], None))
            .unwrap();
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "10000");
    }

    #[test]
    fn max_requests_never_lower_than_the_pool() {
        let spec = PhpLauncher
            .launch(&app("{}", &[("PHP_FCGI_MAX_REQUESTS", "50")], Some(500)))
            .unwrap();
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "500");
        let spec = PhpLauncher
            .launch(&app("{}", &[("PHP_FCGI_MAX_REQUESTS", "9000")], Some(500)))
            .unwrap();
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "9000");
        let spec = PhpLauncher.launch(&app("{}", &[], Some(0))).unwrap();
        assert_eq!(env_of(&spec, "PHP_FCGI_MAX_REQUESTS"), "0");
    }

    #[test]
    fn opcache_file_cache_in_the_runtime_directory_unless_turned_off() {
        let spec = PhpLauncher.launch(&app("{}", &[], None)).unwrap();
        assert_eq!(spec.dirs, ["opcache"]);
        assert_eq!(spec.args, OPCACHE_ARGS);
        let spec = PhpLauncher
            .launch(&app(r#"{"opcache_file_cache": false}"#, &[], None))
            .unwrap();
        assert!(spec.dirs.is_empty());
        assert!(spec.args.is_empty());
        let err = PhpLauncher
            .launch(&app(r#"{"opcache_file_cache": "no"}"#, &[], None))
            .unwrap_err();
        assert!(
            err.contains("opcache_file_cache") || err.contains("boolean"),
            "{err}"
        );
    }

    #[test]
    fn the_apps_own_args_come_last() {
        let mut config = app(r#"{"php_ini": "/etc/php.ini"}"#, &[], None);
        config.args = vec!["-d".into(), "opcache.file_cache=/var/cache/php".into()];
        let spec = PhpLauncher.launch(&config).unwrap();
        assert_eq!(
            spec.args,
            [
                "-c",
                "/etc/php.ini",
                OPCACHE_ARGS[0],
                OPCACHE_ARGS[1],
                "-d",
                "opcache.file_cache=/var/cache/php"
            ]
        );
    }

    #[test]
    fn options() {
        let spec = PhpLauncher
            .launch(&app(
                r#"{"php_ini": "/etc/php.ini", "front_controller": true, "opcache_file_cache": false}"#,
                &[],
                Some(1),
            ))
            .unwrap();
        assert_eq!(spec.args, ["-c", "/etc/php.ini"]);
        assert_eq!(
            spec.required_paths,
            [RequiredPath::new("/etc/php.ini", "the php_ini option")]
        );
        assert_eq!(spec.mapping.fallback.as_deref(), Some("/index.php"));
        let err = PhpLauncher
            .launch(&app(r#"{"php_inii": "x"}"#, &[], Some(1)))
            .unwrap_err();
        assert!(err.contains("unknown field `php_inii`"), "{err}");
        assert!(
            PhpLauncher
                .launch(&app(r#"{"index": "/app.php"}"#, &[], Some(1)))
                .is_err()
        );
    }
}
