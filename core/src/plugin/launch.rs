//! Launchers: plugins that describe how to start an app.
//!
//! For every `[[app]]` with `launcher = "..."`, the launcher's `launch` hook
//! gets the app's settings and returns a spawn spec. This module validates
//! the spec and resolves the app as it will run: a copy of what the file
//! says, with the launcher's proposals where the user set nothing. The
//! validated [`Config`] is left as the file says; the app module holds the
//! resolved settings, and the pool spawns and supervises the processes
//! exactly as for any other app. What the user wrote in fastgate.toml wins
//! over the launcher's proposals (`env` entries, `working_dir`, `handles`,
//! `resource_type`, `fallback`, `params`, `request_timeout`,
//! `instance_max_requests`, `min_instances`, `stderr_mode`); the app's
//! [`Origins`] record which values the launcher set, for `fastgate check`.
//! A launcher's required paths are checked here, so a missing one stops the
//! start and fails `fastgate check` alike.

use fastgate_sdk as sdk;

use super::{PluginError, Plugins};
#[cfg(doc)]
use crate::config::Origins;
use crate::config::{
    AppFile, AppKey, AppSettings, CgiSettings, Config, LauncherRef, StderrMode, parse_fallback,
    parse_pattern, parse_resource_type, resolve_command,
};

/// Why an app's launcher could not describe it.
#[derive(Debug, thiserror::Error)]
#[error("app \"{app}\": launcher \"{launcher}\": {reason}")]
pub struct LaunchError {
    pub app: String,
    pub launcher: String,
    pub reason: String,
}

/// Every app as it will run, in the file's order: its launcher's spawn
/// spec, validated and merged with what the user wrote. Every app is tried,
/// so that `fastgate check` lists every problem at once.
pub fn resolve(config: &Config, plugins: &Plugins) -> Result<Vec<AppSettings>, Vec<LaunchError>> {
    let root = config.server.root.display().to_string();
    // Relative paths in options resolve like the file's own.
    let config_dir = config.base_dir.display().to_string();
    let mut errors = Vec::new();
    let mut apps = Vec::with_capacity(config.apps.len());
    for file_app in &config.apps {
        let mut app = file_app.clone();
        if let Some(launcher) = &file_app.launcher
            && let Err(reason) = launch(&mut app, launcher, plugins, &root, &config_dir)
        {
            errors.push(LaunchError {
                app: app.name.clone(),
                launcher: launcher.plugin.clone(),
                reason,
            });
        }
        apps.push(app);
    }
    if errors.is_empty() {
        Ok(apps)
    } else {
        Err(errors)
    }
}

/// One app: its launcher's spec, validated and merged into its settings.
fn launch(
    app: &mut AppSettings,
    launcher: &LauncherRef,
    plugins: &Plugins,
    root: &str,
    config_dir: &str,
) -> Result<(), String> {
    let plugin = plugins
        .get(&launcher.plugin)
        .ok_or_else(|| "no such plugin".to_string())?;
    let input = sdk::AppConfig {
        name: app.name.clone(),
        options: launcher.options_json.clone(),
        command: app
            .origins
            .in_file(AppKey::Command)
            .then(|| app.command.display().to_string()),
        args: app.args.clone(),
        env: app
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        root: root.to_string(),
        instance_max_requests: app
            .origins
            .in_file(AppKey::InstanceMaxRequests)
            .then_some(app.instance_max_requests),
        config_dir: config_dir.to_string(),
    };
    let spec = match plugin.launch(&input) {
        Ok(answer) => answer?,
        Err(PluginError::Missing(_)) => return Err("this plugin is not a launcher".to_string()),
        Err(e) => return Err(e.to_string()),
    };
    let required = spec.required_paths.clone();
    fold(app, &launcher.plugin, spec)?;
    check_required(&required)?;
    // An app started by a launcher refuses to start without its program (a
    // hand-configured app is served as 503 instead): the launcher was asked
    // for by name, so a missing program is a setup error, and the message
    // says what to install.
    match app.command_to_check() {
        Some(command) => resolve_command(command).map(drop).map_err(|e| e.message),
        None => Ok(()),
    }
}

/// Validates a spec and merges it into the app's config.
fn fold(app: &mut AppSettings, launcher: &str, spec: sdk::SpawnSpec) -> Result<(), String> {
    validate(&spec)?;
    merge_process(app, launcher, &spec);
    merge_pool(app, launcher, &spec.pool)?;
    merge_mapping(app, launcher, spec)
}

/// Refuses to go on without a path the launcher said the app needs,
/// naming the path and what it is for (the caller adds app and launcher).
fn check_required(required: &[sdk::RequiredPath]) -> Result<(), String> {
    for r in required {
        let path = std::path::Path::new(&r.path);
        if !path.is_absolute() {
            return Err(format!(
                "required path {:?} ({}) must be absolute",
                r.path, r.purpose
            ));
        }
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("{} ({}) does not exist", r.path, r.purpose));
            }
            Err(e) => return Err(format!("{} ({}): {e}", r.path, r.purpose)),
        }
    }
    Ok(())
}

/// A name for the app's runtime directory: one plain name, never a path.
fn plain_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(format!("{what} name {name:?} must be a plain file name"));
    }
    Ok(())
}

/// Refuses what a launcher must not propose: no command (outside CGI),
/// runtime file or folder names that are paths (or name one thing twice),
/// bad environment names, static prefixes or folders that could escape.
fn validate(spec: &sdk::SpawnSpec) -> Result<(), String> {
    let cgi = spec.protocol == sdk::AppProtocol::Cgi;
    // For CGI, the command is the interpreter, or empty: run the script.
    if spec.command.is_empty() && !cgi {
        return Err("the spawn spec has no command".to_string());
    }
    let mut names = std::collections::HashSet::new();
    let files = spec.files.iter().map(|f| ("runtime file", &f.name));
    let dirs = spec.dirs.iter().map(|d| ("runtime folder", d));
    for (what, name) in files.chain(dirs) {
        plain_name(what, name)?;
        if !names.insert(name) {
            return Err(format!("{what} name {name:?} is given twice"));
        }
    }
    for (name, _) in &spec.env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!("bad environment variable name {name:?}"));
        }
    }
    for (prefix, dir) in &spec.mapping.static_dirs {
        if !prefix.starts_with('/')
            || !prefix.ends_with('/')
            || prefix.split('/').any(|s| s == "..")
        {
            return Err(format!(
                "static URL prefix {prefix:?} must start and end with '/' and have no '..'"
            ));
        }
        if !std::path::Path::new(dir).is_absolute() {
            return Err(format!("static folder {dir:?} must be an absolute path"));
        }
    }
    Ok(())
}

/// The process side of a spec: what runs, with which environment and
/// files. The user's settings win.
fn merge_process(app: &mut AppSettings, launcher: &str, spec: &sdk::SpawnSpec) {
    if spec.protocol == sdk::AppProtocol::Cgi {
        app.cgi = Some(CgiSettings {
            interpreter: (!spec.command.is_empty()).then(|| spec.command.clone().into()),
        });
    }
    if !app.origins.in_file(AppKey::RequestTimeout)
        && let Some(ms) = spec.request_timeout_ms
    {
        app.request_timeout = std::time::Duration::from_millis(ms.max(1));
        app.origins
            .set_by_launcher(AppKey::RequestTimeout, launcher);
    }
    // The launcher was given the file's command, and runs it.
    app.command = spec.command.clone().into();
    app.origins.set_by_launcher(AppKey::Command, launcher);
    app.args = spec.args.clone();
    // The user's [app.env] wins over the launcher's.
    for (name, value) in &spec.env {
        app.env.entry(name.clone()).or_insert_with(|| value.clone());
    }
    if app.working_dir.is_none() {
        app.working_dir = spec.working_dir.clone().map(Into::into);
    }
    app.static_dirs = spec
        .mapping
        .static_dirs
        .iter()
        .map(|(prefix, dir)| (prefix.clone(), dir.into()))
        .collect();
    app.runtime_files = spec
        .files
        .iter()
        .map(|f| AppFile {
            name: f.name.clone(),
            contents: f.contents.clone(),
            executable: f.executable,
        })
        .collect();
    app.runtime_dirs = spec.dirs.clone();
}

/// The pool side of a spec: the launcher's proposals where the file set
/// nothing, checked as the file's own values are.
fn merge_pool(
    app: &mut AppSettings,
    launcher: &str,
    pool: &sdk::PoolDefaults,
) -> Result<(), String> {
    if !app.origins.in_file(AppKey::InstanceMaxRequests)
        && let Some(n) = pool.instance_max_requests
    {
        if n == 0 {
            return Err(
                "proposes instance_max_requests = 0; it must be at least 1 (set instance_max_requests in the [[app]])"
                    .to_string(),
            );
        }
        app.instance_max_requests = n;
        app.origins
            .set_by_launcher(AppKey::InstanceMaxRequests, launcher);
    }
    if !app.origins.in_file(AppKey::MinInstances)
        && let Some(n) = pool.min_instances
    {
        // With automatic sizing the bound that matters is the ceiling.
        let (upper, key) = if app.max_instances == 0 {
            (app.max_instances_auto_ceiling, "max_instances_auto_ceiling")
        } else {
            (app.max_instances, "max_instances")
        };
        if n > upper {
            return Err(format!(
                "proposes min_instances = {n}, more than {key} ({upper}); set min_instances in the [[app]]"
            ));
        }
        app.min_instances = n;
        app.origins.set_by_launcher(AppKey::MinInstances, launcher);
    }
    if !app.origins.in_file(AppKey::StderrMode)
        && let Some(mode) = pool.stderr_mode
    {
        app.stderr_mode = match mode {
            sdk::StderrMode::ReturnStderrIn500 => StderrMode::ReturnStderrIn500,
            sdk::StderrMode::ReturnGeneric500 => StderrMode::ReturnGeneric500,
            sdk::StderrMode::IgnoreAndReturn200 => StderrMode::IgnoreAndReturn200,
            sdk::StderrMode::TerminateProcess => StderrMode::TerminateProcess,
        };
        app.origins.set_by_launcher(AppKey::StderrMode, launcher);
    }
    Ok(())
}

/// The mapping side of a spec: parameters, handles, resource type,
/// fallback. The user's settings win.
fn merge_mapping(
    app: &mut AppSettings,
    launcher: &str,
    spec: sdk::SpawnSpec,
) -> Result<(), String> {
    // Launcher params first: the user's [app.params] come later and win.
    let mut params = spec.params;
    params.append(&mut app.params);
    app.params = params;
    if !app.origins.in_file(AppKey::Handles) {
        app.handles = spec
            .mapping
            .handles
            .iter()
            .map(|p| parse_pattern(p).map_err(|m| format!("handles {p:?}: {m}")))
            .collect::<Result<_, _>>()?;
        if app.handles.is_empty() {
            return Err("neither the app nor the launcher gives `handles`".to_string());
        }
        app.origins.set_by_launcher(AppKey::Handles, launcher);
    }
    if !app.origins.in_file(AppKey::ResourceType)
        && let Some(t) = &spec.mapping.resource_type
    {
        app.resource_type = parse_resource_type(t)?;
        app.origins.set_by_launcher(AppKey::ResourceType, launcher);
    }
    if !app.origins.in_file(AppKey::Fallback)
        && let Some(f) = spec.mapping.fallback
    {
        app.fallback = Some(parse_fallback(&f).map_err(|m| format!("fallback {f:?} {m}"))?);
        app.origins.set_by_launcher(AppKey::Fallback, launcher);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use fastgate_sdk as sdk;

    use super::fold;
    use crate::config::test_support::load;
    use crate::config::{AppKey, AppSettings, HandlerPattern, Origin, ResourceType, StderrMode};

    /// The one app of a file whose `[[app]]` is `name = "site"`, a
    /// launcher (a built-in's name; the tests fold the spec of a launcher
    /// called `x`) and then `extra`.
    fn app(extra: &str) -> AppSettings {
        let text = format!("[[app]]\nname = \"site\"\nlauncher = \"cgi\"\n{extra}\n");
        load(&text).unwrap().apps.remove(0)
    }

    /// A spec that proposes something for every key it can.
    fn spec() -> sdk::SpawnSpec {
        sdk::SpawnSpec {
            command: "php-cgi".into(),
            mapping: sdk::MappingDefaults {
                handles: vec!["*.php".into()],
                resource_type: Some("either".into()),
                fallback: Some("/index.php".into()),
                static_dirs: vec![],
            },
            request_timeout_ms: Some(5_000),
            pool: sdk::PoolDefaults {
                instance_max_requests: Some(10_000),
                min_instances: Some(1),
                stderr_mode: Some(sdk::StderrMode::IgnoreAndReturn200),
            },
            dirs: vec!["opcache".into()],
            ..sdk::SpawnSpec::default()
        }
    }

    fn launcher() -> Origin {
        Origin::Launcher("x".into())
    }

    #[test]
    fn proposals_apply_where_the_file_is_silent() {
        let mut app = app("max_instances = 2");
        fold(&mut app, "x", spec()).unwrap();
        assert_eq!(app.instance_max_requests, 10_000);
        assert_eq!(app.min_instances, 1);
        assert_eq!(app.request_timeout, Duration::from_secs(5));
        assert_eq!(app.handles, [HandlerPattern::Extension("php".into())]);
        assert_eq!(app.resource_type, ResourceType::Either);
        assert_eq!(app.fallback.as_deref(), Some("/index.php"));
        assert_eq!(app.runtime_dirs, ["opcache"]);
        assert_eq!(app.stderr_mode, StderrMode::IgnoreAndReturn200);
        let o = &app.origins;
        for key in [
            AppKey::Command,
            AppKey::Handles,
            AppKey::ResourceType,
            AppKey::Fallback,
            AppKey::MinInstances,
            AppKey::InstanceMaxRequests,
            AppKey::RequestTimeout,
            AppKey::StderrMode,
        ] {
            assert_eq!(o.origin(key), launcher(), "{}", key.name());
        }
        assert_eq!(o.origin(AppKey::MaxInstances), Origin::File);
        for key in [
            AppKey::QueueLength,
            AppKey::ActivityTimeout,
            AppKey::IdleTimeout,
        ] {
            assert_eq!(o.origin(key), Origin::Default, "{}", key.name());
        }
    }

    #[test]
    fn the_file_wins_over_every_proposal() {
        let mut app = app(
            "command = \"/usr/bin/php-cgi8.2\"\nhandles = [\"/app/*\"]\nresource_type = \"unspecified\"\nfallback = \"/app.php\"\n\
             instance_max_requests = 700\nmin_instances = 0\nrequest_timeout = \"90s\"\n\
             stderr_mode = \"return-generic-500\"",
        );
        fold(&mut app, "x", spec()).unwrap();
        assert_eq!(app.instance_max_requests, 700);
        assert_eq!(app.min_instances, 0);
        assert_eq!(app.request_timeout, Duration::from_secs(90));
        assert_eq!(app.handles, [HandlerPattern::Prefix("/app".into())]);
        assert_eq!(app.resource_type, ResourceType::Unspecified);
        assert_eq!(app.fallback.as_deref(), Some("/app.php"));
        assert_eq!(app.stderr_mode, StderrMode::ReturnGeneric500);
        for key in [
            AppKey::Command,
            AppKey::Handles,
            AppKey::ResourceType,
            AppKey::Fallback,
            AppKey::MinInstances,
            AppKey::InstanceMaxRequests,
            AppKey::RequestTimeout,
            AppKey::StderrMode,
        ] {
            assert_eq!(app.origins.origin(key), Origin::File, "{}", key.name());
        }
    }

    #[test]
    fn no_proposal_leaves_the_default() {
        let mut app = app("");
        let spec = sdk::SpawnSpec {
            pool: sdk::PoolDefaults::default(),
            request_timeout_ms: None,
            dirs: vec![],
            ..spec()
        };
        fold(&mut app, "x", spec).unwrap();
        assert_eq!(app.instance_max_requests, 200);
        assert_eq!(app.min_instances, 0);
        assert_eq!(
            app.origins.origin(AppKey::InstanceMaxRequests),
            Origin::Default
        );
        assert_eq!(app.origins.origin(AppKey::MinInstances), Origin::Default);
        assert_eq!(app.origins.origin(AppKey::RequestTimeout), Origin::Default);
        assert_eq!(app.origins.origin(AppKey::StderrMode), Origin::Default);
    }

    #[test]
    fn required_paths_must_exist_and_be_absolute() {
        use super::check_required;
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().display().to_string();
        assert!(check_required(&[sdk::RequiredPath::new(&here, "a folder")]).is_ok());
        let missing = format!("{here}/manage.py");
        let err = check_required(&[
            sdk::RequiredPath::new(&here, "a folder"),
            sdk::RequiredPath::new(&missing, "the project's manage.py"),
        ])
        .unwrap_err();
        assert!(
            err.contains(&missing) && err.contains("(the project's manage.py)"),
            "{err}"
        );
        let err = check_required(&[sdk::RequiredPath::new("site/php.ini", "the php_ini option")])
            .unwrap_err();
        assert!(err.contains("must be absolute"), "{err}");
    }

    #[test]
    fn bad_pool_proposals_name_the_key() {
        let propose = |extra: &str, pool: sdk::PoolDefaults| {
            fold(&mut app(extra), "x", sdk::SpawnSpec { pool, ..spec() })
        };
        let err = propose(
            "",
            sdk::PoolDefaults {
                instance_max_requests: Some(0),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("instance_max_requests = 0"), "{err}");
        let min = |n| sdk::PoolDefaults {
            min_instances: Some(n),
            ..Default::default()
        };
        let err = propose("max_instances = 2", min(3)).unwrap_err();
        assert!(
            err.contains("min_instances = 3") && err.contains("max_instances (2)"),
            "{err}"
        );
        assert!(propose("max_instances = 2", min(2)).is_ok());
        // Automatic sizing: the ceiling bounds it.
        let auto = "max_instances = 0\nmax_instances_auto_ceiling = 3";
        let err = propose(auto, min(4)).unwrap_err();
        assert!(err.contains("max_instances_auto_ceiling (3)"), "{err}");
        assert!(propose(auto, min(3)).is_ok());
        // A file value is not checked against the proposal: it wins.
        assert!(propose("max_instances = 2\nmin_instances = 1", min(9)).is_ok());
    }

    #[test]
    fn runtime_folders_are_plain_names_given_once() {
        let with_dirs = |dirs: &[&str]| {
            let spec = sdk::SpawnSpec {
                dirs: dirs.iter().map(ToString::to_string).collect(),
                files: vec![sdk::RuntimeFile {
                    name: "bridge.py".into(),
                    contents: vec![],
                    executable: false,
                }],
                ..spec()
            };
            fold(&mut app(""), "x", spec)
        };
        assert!(with_dirs(&["opcache", "cache"]).is_ok());
        for bad in ["", ".", "..", "a/b", "/tmp", "x\0"] {
            let err = with_dirs(&[bad]).unwrap_err();
            assert!(err.contains("runtime folder name"), "{bad:?}: {err}");
        }
        let err = with_dirs(&["cache", "cache"]).unwrap_err();
        assert!(err.contains("given twice"), "{err}");
        let err = with_dirs(&["bridge.py"]).unwrap_err();
        assert!(err.contains("given twice"), "{err}");
    }
}
