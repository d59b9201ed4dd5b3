//! Reloading the configuration without dropping a request (SIGHUP, or
//! `POST /reload` on the admin listener).
//!
//! A reload reads and validates the file exactly as a start does (plugins
//! loaded, launchers resolved, mappings checked); on any error the running
//! configuration keeps serving and the error is logged and returned. Then:
//!
//! 1. new listen addresses are bound (all or nothing);
//! 2. the apps are made again: an app whose processes would be the same
//!    (`app::same_processes`) keeps its pool, others get a new one, which
//!    is warmed up (as many ready processes as the old one ran, at least
//!    one) before it takes a request; if it cannot start, the reload is
//!    undone and the old pools serve on;
//! 3. the new [`Site`] (router, apps, plugins, access log) is swapped in:
//!    requests that started before go on with the old one;
//! 4. listeners no longer configured are closed;
//! 5. the pools nobody uses any more drain in the background: once the
//!    requests of the old site are done, their busy processes finish, then
//!    they stop (at most `shutdown_timeout` each wait).
//!
//! Kept until a restart (and said so in the log): `[server] runtime_dir`,
//! `[server] worker_threads` and `[admin]`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, sleep};
use tracing::{error, info, warn};

use crate::access_log::AccessLog;
use crate::app::{App, Apps};
use crate::config::{self, Config, ConfigError};
use crate::http::{Gateway, Listeners, ServeError, Site};
use crate::metrics::Metrics;
use crate::plugin;
use crate::pool::{Pool, WarmUpError};
use crate::route::Router;
use crate::service;

/// Why a reload was refused; the running configuration serves on.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", .0.join("; "))]
    Plugins(Vec<String>),
    #[error("{}", .0.join("; "))]
    Mappings(Vec<String>),
    #[error(transparent)]
    Listen(#[from] ServeError),
    #[error("cannot open the access log: {0}")]
    AccessLog(#[source] std::io::Error),
    #[error("app \"{app}\": its new processes did not start: {source}")]
    WarmUp {
        app: String,
        #[source]
        source: WarmUpError,
    },
}

/// What a reload changed, by app name.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReloadReport {
    /// Apps that kept their processes.
    pub kept: Vec<String>,
    /// Apps whose processes were replaced (new ones started first).
    pub restarted: Vec<String>,
    pub added: Vec<String>,
    /// Apps whose processes drain and stop.
    pub removed: Vec<String>,
    /// Where the gateway listens now.
    pub listening: Vec<String>,
    /// Settings that changed but apply only after a restart.
    pub need_restart: Vec<String>,
}

/// The running gateway's parts a reload replaces.
pub struct Reloader {
    gateway: Arc<Gateway>,
    listeners: Arc<Listeners>,
    metrics: Arc<Metrics>,
    runtime_dir: PathBuf,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
    /// The old pools still draining (the task, and its pools), awaited
    /// when the gateway stops.
    draining: std::sync::Mutex<Vec<(tokio::task::JoinHandle<()>, Vec<Pool>)>>,
}

impl Reloader {
    pub fn new(
        gateway: Arc<Gateway>,
        listeners: Arc<Listeners>,
        metrics: Arc<Metrics>,
        runtime_dir: PathBuf,
    ) -> Reloader {
        Reloader {
            gateway,
            listeners,
            metrics,
            runtime_dir,
            busy: tokio::sync::Mutex::new(()),
            draining: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Waits until the pools earlier reloads retired have stopped, for at
    /// most `timeout`; then stops those left at once (the gateway is
    /// stopping: none of their processes may outlive it).
    pub async fn finish_drains(&self, timeout: Duration) {
        let draining =
            std::mem::take(&mut *self.draining.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = Instant::now() + timeout;
        for (mut task, pools) in draining {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                for pool in pools {
                    pool.shutdown().await;
                }
            }
        }
    }

    /// The gateway whose site a reload replaces.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// The apps serving now (for status pages and metrics): the current
    /// site's.
    pub fn apps(&self) -> Arc<Apps> {
        self.gateway.site().apps().clone()
    }

    /// Reads the configuration again and applies it; on an error the
    /// running one keeps serving. Tells systemd (RELOADING, then READY)
    /// and logs the outcome either way.
    pub async fn reload(&self, asked_by: &str) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.busy.lock().await;
        info!(asked_by, "reloading the configuration");
        service::reloading();
        let outcome = self.apply().await;
        let addrs = self.listeners.addrs();
        match &outcome {
            Ok(report) => {
                info!(
                    kept = ?report.kept,
                    restarted = ?report.restarted,
                    added = ?report.added,
                    removed = ?report.removed,
                    "configuration reloaded"
                );
                for setting in &report.need_restart {
                    warn!("{setting}: changed in the file, applies after a restart");
                }
                service::ready(&addrs);
            }
            Err(e) => {
                error!(error = %crate::error::chain(e), "reload refused; the running configuration keeps serving");
                service::ready(&addrs);
                service::status("reload refused; serving the previous configuration");
            }
        }
        outcome
    }

    async fn apply(&self) -> Result<ReloadReport, ReloadError> {
        let old = self.gateway.site();
        // Reading the file and loading the plugins (compiling wasm takes a
        // fraction of a second) block: off the runtime's worker threads,
        // which keep serving meanwhile.
        let source = old.config().clone();
        let (config, prepared) = tokio::task::spawn_blocking(move || {
            let config = read(&source)?;
            let prepared = plugin::prepare(&config).map_err(ReloadError::Plugins)?;
            Ok::<_, ReloadError>((config, prepared))
        })
        .await
        .map_err(|e| ReloadError::Plugins(vec![format!("loading the plugins failed: {e}")]))??;
        let mut report = ReloadReport {
            need_restart: need_restart(old.config(), &config),
            ..ReloadReport::default()
        };
        let mut problems = config::check_mappings(&config, &prepared.apps);
        problems.extend(config::check_access(&config, &prepared.apps));
        if !problems.is_empty() {
            return Err(ReloadError::Mappings(
                problems.iter().map(ToString::to_string).collect(),
            ));
        }
        crate::check::socket_paths(&config, &prepared.apps, &self.runtime_dir)?;
        let bound = self.listeners.bind_new(&config.server.listen).await?;
        let access_log =
            AccessLog::open(&config.server.access_log).map_err(ReloadError::AccessLog)?;
        let folders = config::static_folders(&config.static_folders, &prepared.apps);
        let router = Router::new(&config.server, &prepared.apps, &folders);
        let apps = Arc::new(Apps::new(
            &config.server,
            prepared.apps,
            &self.runtime_dir,
            &prepared.plugins,
            Some(old.apps()),
        ));
        self.start_new_pools(old.apps(), &apps, &mut report).await?;

        let listen = config.server.listen.clone();
        let config = Arc::new(config);
        let drain_timeout = config.server.shutdown_timeout;
        let site = Site::new(config, router, apps.clone(), access_log, &prepared.plugins);
        let old = self.gateway.replace(site);
        self.metrics.update(&apps, &prepared.plugins);
        self.listeners.switch_to(&listen, bound);
        report.listening = self
            .listeners
            .addrs()
            .iter()
            .map(ToString::to_string)
            .collect();

        let retired: Vec<(String, Pool)> = old
            .apps()
            .iter()
            .filter(|o| !apps.iter().any(|n| n.shares_runner(o)))
            .filter_map(|o| Some((o.name().to_string(), o.pool()?.clone())))
            .collect();
        report.removed = old
            .apps()
            .iter()
            .filter(|o| apps.get(o.name()).is_none())
            .map(|o| o.name().to_string())
            .collect();
        let pools = retired.iter().map(|(_, pool)| pool.clone()).collect();
        let task = tokio::spawn(drain(old, retired, drain_timeout));
        let mut draining = self.draining.lock().unwrap_or_else(|p| p.into_inner());
        draining.retain(|(t, _)| !t.is_finished());
        draining.push((task, pools));
        Ok(report)
    }

    /// Starts the pools the reload made (new apps, changed apps), and
    /// warms up each changed app's before it takes over; undoes them all
    /// if one cannot start.
    async fn start_new_pools(
        &self,
        old: &Apps,
        new: &Apps,
        report: &mut ReloadReport,
    ) -> Result<(), ReloadError> {
        let mut started: Vec<&Pool> = Vec::new();
        for app in new.iter() {
            let name = app.name().to_string();
            let Some(previous) = old.get(app.name()) else {
                if let Some(pool) = app.pool() {
                    pool.start();
                    started.push(pool);
                }
                report.added.push(name);
                continue;
            };
            if app.shares_runner(previous) {
                report.kept.push(name);
                continue;
            }
            report.restarted.push(name.clone());
            let Some(pool) = app.pool() else { continue };
            pool.start();
            started.push(pool);
            if let Err(source) = warm_up(app, previous).await {
                for pool in started {
                    pool.shutdown().await;
                }
                return Err(ReloadError::WarmUp { app: name, source });
            }
        }
        Ok(())
    }
}

/// The new pool of a changed app runs as many ready processes as the old
/// one did (at least one, which also proves the new settings start), for
/// at most the app's `activity_timeout`.
async fn warm_up(app: &App, previous: &App) -> Result<(), WarmUpError> {
    let Some(pool) = app.pool() else {
        return Ok(());
    };
    let wanted = previous.pool().map_or(1, Pool::running).max(1);
    pool.warm_up(wanted, app.settings().activity_timeout).await
}

/// The configuration again, from the file the running one came from.
fn read(running: &Config) -> Result<Config, ConfigError> {
    let config = match &running.source {
        Some(path) => config::load_file(path)?,
        None => Config::quickstart()?,
    };
    for warning in &config.warnings {
        warn!("{warning}");
    }
    Ok(config)
}

/// Settings a reload does not apply, when they changed.
fn need_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    if old.server.runtime_dir != new.server.runtime_dir {
        keys.push("[server] runtime_dir".to_string());
    }
    if old.server.worker_threads != new.server.worker_threads {
        keys.push("[server] worker_threads".to_string());
    }
    let admin = |c: &Config| c.admin.as_ref().map(|a| (a.listen, a.token_file.clone()));
    if admin(old) != admin(new) {
        keys.push("[admin]".to_string());
    }
    keys
}

/// Once no request is served with the old site any more, lets the
/// retired pools finish the requests they have (at most `timeout`) and
/// stops them.
///
/// Waiting for the old site has no deadline of its own: a request that
/// holds it (a slow upload, say) may still ask one of these pools for a
/// process, and stopping them under it would fail it. Every request ends
/// within its own timeouts (`body_read_timeout`, `request_timeout`, and at
/// the gateway's stop, `shutdown_timeout`), so the wait does too.
async fn drain(old: Arc<Site>, retired: Vec<(String, Pool)>, timeout: Duration) {
    if retired.is_empty() {
        return;
    }
    let since = Instant::now();
    let mut told = false;
    // The gateway no longer hands the old site out: what holds it are the
    // requests that started with it.
    while Arc::strong_count(&old) > 1 {
        if !told && since.elapsed() >= timeout {
            told = true;
            info!(apps = ?retired.iter().map(|(app, _)| app).collect::<Vec<_>>(), "requests of the previous configuration still running after shutdown_timeout; its processes stay until they end");
        }
        sleep(Duration::from_millis(20)).await;
    }
    drop(old);
    for (app, pool) in retired {
        info!(app, "stopping the processes of the previous configuration");
        pool.drain(timeout).await;
    }
}
