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
//! `resource_type`, `fallback`, `params`).

use fastgate_sdk as sdk;

use super::{PluginError, Plugins};
use crate::config::{
    AppFile, AppSettings, CgiSettings, Config, LauncherRef, parse_fallback, parse_pattern,
    parse_resource_type, resolve_command,
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
        command: launcher
            .command_given
            .then(|| app.command.display().to_string()),
        args: app.args.clone(),
        env: app
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        root: root.to_string(),
        instance_max_requests: app.instance_max_requests,
        config_dir: config_dir.to_string(),
    };
    let spec = match plugin.launch(&input) {
        Ok(answer) => answer?,
        Err(PluginError::Missing(_)) => return Err("this plugin is not a launcher".to_string()),
        Err(e) => return Err(e.to_string()),
    };
    fold(app, launcher, spec)?;
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
fn fold(app: &mut AppSettings, launcher: &LauncherRef, spec: sdk::SpawnSpec) -> Result<(), String> {
    validate(&spec)?;
    merge_process(app, launcher, &spec);
    merge_mapping(app, launcher, spec)
}

/// Refuses what a launcher must not propose: no command (outside CGI),
/// runtime file names that are paths, bad environment names, static
/// prefixes or folders that could escape.
fn validate(spec: &sdk::SpawnSpec) -> Result<(), String> {
    let cgi = spec.protocol == sdk::AppProtocol::Cgi;
    // For CGI, the command is the interpreter, or empty: run the script.
    if spec.command.is_empty() && !cgi {
        return Err("the spawn spec has no command".to_string());
    }
    for file in &spec.files {
        if file.name.is_empty()
            || file.name == "."
            || file.name == ".."
            || file.name.contains('/')
            || file.name.contains('\0')
        {
            return Err(format!(
                "runtime file name {:?} must be a plain file name",
                file.name
            ));
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
fn merge_process(app: &mut AppSettings, launcher: &LauncherRef, spec: &sdk::SpawnSpec) {
    if spec.protocol == sdk::AppProtocol::Cgi {
        app.cgi = Some(CgiSettings {
            interpreter: (!spec.command.is_empty()).then(|| spec.command.clone().into()),
        });
    }
    if !launcher.request_timeout_given
        && let Some(ms) = spec.request_timeout_ms
    {
        app.request_timeout = std::time::Duration::from_millis(ms.max(1));
    }
    app.command = spec.command.clone().into();
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
}

/// The mapping side of a spec: parameters, handles, resource type,
/// fallback. The user's settings win.
fn merge_mapping(
    app: &mut AppSettings,
    launcher: &LauncherRef,
    spec: sdk::SpawnSpec,
) -> Result<(), String> {
    // Launcher params first: the user's [app.params] come later and win.
    let mut params = spec.params;
    params.append(&mut app.params);
    app.params = params;
    if !launcher.handles_given {
        app.handles = spec
            .mapping
            .handles
            .iter()
            .map(|p| parse_pattern(p).map_err(|m| format!("handles {p:?}: {m}")))
            .collect::<Result<_, _>>()?;
        if app.handles.is_empty() {
            return Err("neither the app nor the launcher gives `handles`".to_string());
        }
    }
    if !launcher.resource_type_given
        && let Some(t) = &spec.mapping.resource_type
    {
        app.resource_type = parse_resource_type(t)?;
    }
    if app.fallback.is_none()
        && let Some(f) = spec.mapping.fallback
    {
        app.fallback = Some(parse_fallback(&f).map_err(|m| format!("fallback {f:?} {m}"))?);
    }
    Ok(())
}
