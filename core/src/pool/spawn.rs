//! How a pool starts its processes: the [`ProcessSpec`] resolved once from
//! the app's config (the program on PATH, the clean environment, the
//! private socket folder and a launcher's runtime files), the [`Spawner`]
//! a pool starts them with, and the `instance_max_requests` a pool really
//! applies.
//!
//! This file prepares; starting and supervising a process is `process.rs`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use super::process::{self, Exit, Process, ProcessSpec, StartError, private_dir};
use crate::config::{self, AppSettings};
use crate::fcgi::client::Connection;

/// Runs in a process's supervisor once the process has been reaped.
pub(super) type OnExit = Box<dyn FnOnce(Exit) + Send>;

/// Told of a process as soon as it runs, before it is ready.
pub(super) type OnSpawned = Box<dyn FnOnce(&Process) + Send>;

/// A started instance (its process and the connection to it), once ready.
pub(super) type Started<'a> =
    Pin<Box<dyn Future<Output = Result<(Process, Connection), StartError>> + Send + 'a>>;

/// Starts the process of one instance. A pool holds one: [`ProcessSpawner`]
/// in the gateway; the pool's unit tests put a stand-in here to check the
/// slot accounting without app processes. Called once per spawn, never per
/// request.
pub(super) trait Spawner: Send + Sync {
    fn spawn<'a>(
        &'a self,
        spec: &'a ProcessSpec,
        instance_id: u64,
        on_spawned: OnSpawned,
        on_exit: OnExit,
    ) -> Started<'a>;
}

/// Starts real app processes ([`process::spawn`]).
pub(super) struct ProcessSpawner;

impl Spawner for ProcessSpawner {
    fn spawn<'a>(
        &'a self,
        spec: &'a ProcessSpec,
        instance_id: u64,
        on_spawned: OnSpawned,
        on_exit: OnExit,
    ) -> Started<'a> {
        Box::pin(process::spawn(spec, instance_id, on_spawned, on_exit))
    }
}

/// Resolves what a pool needs to start processes: the program on PATH, the
/// clean environment, the private socket folder (owned by the app's user:
/// its runtime files are the app's to read, and no other app's user can
/// reach its sockets).
pub(super) fn spawn_spec(
    app: &AppSettings,
    runtime_dir: &Path,
    name: &Arc<str>,
) -> Result<ProcessSpec, String> {
    let socket_dir = super::socket::socket_dir(runtime_dir, &app.name);
    private_dir(&socket_dir).map_err(|e| format!("cannot create {}: {e}", socket_dir.display()))?;
    let give = |path: &Path| {
        crate::isolate::give_to(path, &app.run_as)
            .map_err(|e| format!("cannot give {} to {}: {e}", path.display(), app.run_as.user))
    };
    give(&socket_dir)?;
    // A launcher's `{runtime_dir}` placeholder: the app's private folder,
    // where its runtime files are written.
    let dir_text = socket_dir.display().to_string();
    let subst = |s: &str| s.replace("{runtime_dir}", &dir_text);
    for file in &app.runtime_files {
        write_runtime_file(&socket_dir, file)
            .map_err(|e| format!("cannot write runtime file {}: {e}", file.name))?;
        give(&socket_dir.join(&file.name))?;
    }
    // A launcher's folders (a cache its processes share): private like the
    // runtime directory, kept across restarts of the gateway when that
    // directory is (`runtime_dir`).
    for dir in &app.runtime_dirs {
        let path = socket_dir.join(dir);
        private_dir(&path)
            .map_err(|e| format!("cannot create runtime folder {}: {e}", path.display()))?;
        give(&path)?;
    }
    let command = PathBuf::from(subst(&app.command.to_string_lossy()));
    let program = config::resolve_command(&command).map_err(|e| e.to_string())?;
    let mut env = app.inherited_env();
    env.extend(app.env.iter().map(|(k, v)| (k.clone(), subst(v))));
    let working_dir: PathBuf = app.working_dir.as_ref().map_or_else(
        || app.root.clone(),
        |d| PathBuf::from(subst(&d.to_string_lossy())),
    );
    Ok(ProcessSpec {
        app: name.clone(),
        program,
        args: app.args.iter().map(|a| subst(a)).collect(),
        env,
        working_dir,
        protocol: app.protocol,
        socket_dir,
        startup_timeout: app.activity_timeout,
        run_as: app.run_as.clone(),
        rlimits: app.rlimits.clone(),
        prlimit: crate::isolate::prlimit_for(&app.rlimits),
    })
}

/// Writes a launcher's file into the app's private folder (0600, or 0700
/// when executable), replacing an older one.
fn write_runtime_file(dir: &Path, file: &config::AppFile) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join(&file.name);
    let mode = if file.executable { 0o700 } else { 0o600 };
    let _ = std::fs::remove_file(&path);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)?;
    std::io::Write::write_all(&mut out, &file.contents)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
}
