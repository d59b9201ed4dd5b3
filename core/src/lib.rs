//! fastgate: a FastCGI/CGI application gateway.
//!
//! A request travels one way through the modules:
//! [`http`] (listeners, framing, limits) → [`route`] (handler mappings) → a
//! static file, or an [`app`], which builds the CGI variables ([`cgi`])
//! and runs the request on its runner: a [`pool`] that leases one process
//! for it and speaks [`fcgi`] to it, or the CGI runner. [`config`] is
//! parsed and validated before anything starts, and again on a [`reload`],
//! which swaps what requests are served with without dropping one;
//! [`http`] maps every failure to a status. [`plugin`] runs the filters and launchers users add.
//!
//! `unsafe` is denied everywhere but in `plugin::native`, the loader of
//! native plugin libraries.
#![deny(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod app;
pub mod body;
pub mod cgi;
pub mod check;
pub mod config;
pub mod error;
pub mod fcgi;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod iis_import;
pub mod isolate;
pub mod logging;
pub mod metrics;
pub mod plugin;
pub mod pool;
pub mod reload;
pub mod route;
pub mod service;
pub mod spool;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::access_log::AccessLog;
use crate::app::Apps;
use crate::config::Config;
use crate::route::Router;

/// Why the gateway stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Serve(#[from] http::ServeError),
    #[error("cannot create the runtime directory {path}: {source}")]
    RuntimeDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the access log: {0}")]
    AccessLog(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("{}", .0.join("; "))]
    Plugins(Vec<String>),
    /// A setting that `fastgate check` refuses too (a `runtime_dir` too
    /// long for the apps' sockets).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The admin listener could not start (its address, its token).
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// Mounts or static folders that cannot work with the apps as their
    /// launchers resolved them.
    #[error("{}", .0.join("; "))]
    Mappings(Vec<String>),
}

/// Serves `config` until SIGTERM or SIGINT, then drains in-flight requests
/// (at most `shutdown_timeout`) and stops every app process. SIGHUP
/// reloads the configuration from the same file.
pub async fn serve(config: Config) -> Result<(), RunError> {
    // Installed before anything listens: a SIGHUP as soon as the port
    // answers must reload, not end the process (SIGHUP's default action).
    let handlers = Signals::install()?;
    let prepared = prepare(&config)?;
    // What an app's processes leave behind is handed to us, not to PID 1.
    isolate::become_subreaper();
    let reaper = isolate::Reaper::spawn();
    let config = Arc::new(config);
    // Sockets live in a private directory: either the configured one or a
    // fresh temporary one that is removed on exit.
    let (_temp_runtime, runtime_dir) = runtime_dir(config.server.runtime_dir.as_deref())?;
    let access_log = AccessLog::open(&config.server.access_log).map_err(RunError::AccessLog)?;
    let (listeners, accepted) = http::Listeners::bind(&config.server.listen).await?;

    // The mappings follow the apps in the file's order; each app is a pool
    // of processes, or (CGI) a process per request.
    let folders = config::static_folders(&config.static_folders, &prepared.apps);
    let router = Router::new(&config.server, &prepared.apps, &folders);
    let apps = Arc::new(Apps::new(
        &config.server,
        prepared.apps,
        &runtime_dir,
        &prepared.plugins,
        None,
    ));
    let metrics = Arc::new(metrics::Metrics::new(&apps, &prepared.plugins));
    let site = http::Site::new(
        config.clone(),
        router,
        apps.clone(),
        access_log,
        &prepared.plugins,
    );
    let gateway = Arc::new(http::Gateway::new(site, metrics.clone()));
    let reloader = Arc::new(reload::Reloader::new(
        gateway.clone(),
        listeners.clone(),
        metrics.clone(),
        runtime_dir.clone(),
    ));
    // Bound before the apps start, so that a taken admin port stops the
    // start-up before any process runs.
    let admin = match &config.admin {
        Some(settings) => Some(admin::Admin::bind(settings, reloader.clone(), metrics).await?),
        None => None,
    };
    apps.start();
    drop(apps);

    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(wait_for_signals(handlers, stop_tx, reloader.clone()));
    let admin_task = admin.map(|(admin, listener)| tokio::spawn(admin::run(admin, listener)));
    // Every listener is bound (connections queue in its backlog from now
    // on) and the pools are started: systemd may start what comes after.
    service::ready(&listeners.addrs());
    info!(
        worker_threads = config.server.worker_threads(),
        "serving (threads from worker_threads: automatic is half the CPUs)"
    );
    let watchdog = service::spawn_watchdog();
    http::run(
        gateway.clone(),
        listeners,
        accepted,
        stop_rx,
        config.server.shutdown_timeout,
    )
    .await;
    if let Some(task) = admin_task {
        task.abort();
    }
    signals.abort();

    stop_apps(&reloader, config.server.shutdown_timeout).await;
    // Every request is done: the access log's last lines are written.
    tokio::task::spawn_blocking(access_log::finish).await.ok();
    reaper.abort();
    // Whatever the apps left behind that is still running.
    isolate::Reaper::default().stop_all().await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    info!("stopped");
    Ok(())
}

/// What `serve` checks before anything starts, as `fastgate check` does:
/// the plugins load, the launchers resolve the apps, the mappings and the
/// socket paths can work, each app's user can reach its files.
fn prepare(config: &Config) -> Result<plugin::Prepared, RunError> {
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let prepared = plugin::prepare(config).map_err(RunError::Plugins)?;
    let mut problems = config::check_mappings(config, &prepared.apps);
    problems.extend(config::check_access(config, &prepared.apps));
    if !problems.is_empty() {
        return Err(RunError::Mappings(
            problems.iter().map(ToString::to_string).collect(),
        ));
    }
    check::socket_paths(config, &prepared.apps, &check::planned_runtime_dir(config))?;
    log_users(&prepared.apps);
    Ok(prepared)
}

/// Stops the apps of the last reload, and those earlier reloads retired
/// that are still draining.
async fn stop_apps(reloader: &reload::Reloader, shutdown_timeout: std::time::Duration) {
    info!("stopping app processes");
    service::status("stopping app processes");
    reloader.apps().shutdown().await;
    reloader.finish_drains(shutdown_timeout).await;
}

/// Says who each app runs as, and warns of an app that runs as root (which
/// only the file's `user = "root"`, or the quickstart's fallback, asks).
fn log_users(apps: &[config::AppSettings]) {
    for app in apps {
        let runs_as = app.run_as.describe();
        let rlimits = app.rlimits.describe();
        if app.run_as.uid == 0 {
            warn!(app = %app.name, runs_as, rlimits, "app runs as root (user = \"root\"): a bug in it is a root shell");
        } else {
            info!(app = %app.name, runs_as, rlimits, "app user");
        }
    }
}

/// SIGTERM and SIGINT stop the gateway (after the drain); SIGHUP reloads
/// the configuration, one reload at a time, each on its own task so that
/// a stop is never held up by a reload.
async fn wait_for_signals(
    Signals {
        mut term,
        mut int,
        mut hup,
    }: Signals,
    stop: watch::Sender<bool>,
    reloader: Arc<reload::Reloader>,
) {
    loop {
        tokio::select! {
            _ = term.recv() => {
                info!(signal = "SIGTERM", "shutting down");
                break;
            }
            _ = int.recv() => {
                info!(signal = "SIGINT", "shutting down");
                break;
            }
            _ = hup.recv() => {
                let reloader = reloader.clone();
                // The outcome is logged by the reload itself.
                tokio::spawn(async move { reloader.reload("SIGHUP").await });
            }
        }
    }
    service::stopping();
    let _ = stop.send(true);
}

/// The signals the gateway handles.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, RunError> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| signal(kind).map_err(RunError::Signals);
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }
}

fn runtime_dir(
    configured: Option<&Path>,
) -> Result<(Option<tempfile::TempDir>, PathBuf), RunError> {
    match configured {
        Some(path) => {
            pool::private_dir(path)
                .and_then(|()| isolate::open_runtime_root(path))
                .map_err(|source| RunError::RuntimeDir {
                    path: path.to_path_buf(),
                    source,
                })?;
            Ok((None, path.to_path_buf()))
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("fastgate-")
                .tempdir()
                .map_err(|source| RunError::RuntimeDir {
                    path: std::env::temp_dir(),
                    source,
                })?;
            let path = dir.path().to_path_buf();
            isolate::open_runtime_root(&path).map_err(|source| RunError::RuntimeDir {
                path: path.clone(),
                source,
            })?;
            Ok((Some(dir), path))
        }
    }
}
