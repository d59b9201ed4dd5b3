//! Process pools with IIS FastCGI semantics.
//!
//! A [`Pool`] runs the processes of one `[[app]]`. Each process (an
//! instance) serves **exactly one request at a time**; a request leases an
//! instance, uses its FastCGI connection, and gives it back. When every
//! instance is busy and `max_instances` are running, requests wait in a fair
//! FIFO queue of at most `queue_length`; beyond that they are refused at once.
//!
//! Accounting rule: `live` counts instances that exist or are being started.
//! A slot is taken before a spawn and given back exactly once, when its
//! instance is retired or its spawn fails; guards ([`Lease`], [`Waiting`])
//! make sure a dropped future never leaks a slot or orphans a process.
//!
//! This module does not know HTTP or CGI: it hands out connections.

mod process;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::config::{self, AppConfig};
use crate::fcgi::client::Connection;
pub use process::{Process, SpawnSpec, private_dir};

/// Why a pool could not lease an instance.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// `queue_length` requests are already waiting.
    #[error(
        "app {app}: all {max_instances} instances busy and the queue is full ({queue_length} waiting)"
    )]
    QueueFull {
        app: Arc<str>,
        max_instances: u32,
        queue_length: usize,
    },
    /// The app cannot run at all (e.g. its command is missing).
    #[error("app {app} is unavailable: {reason}")]
    Unavailable { app: Arc<str>, reason: String },
    /// Starting a process failed.
    #[error("app {app}: could not start a process: {source}")]
    Spawn {
        app: Arc<str>,
        #[source]
        source: io::Error,
    },
    /// The gateway is stopping.
    #[error("app {app}: the gateway is shutting down")]
    ShuttingDown { app: Arc<str> },
}

/// One running process and the gateway's connection to it.
struct Instance {
    id: u64,
    process: Process,
    conn: Connection,
    /// Requests completed on this instance.
    served: u64,
}

impl Instance {
    fn is_usable(&mut self) -> bool {
        !self.process.has_exited() && self.conn.is_reusable()
    }
}

/// What a waiting request is handed.
enum Grant {
    /// An idle instance.
    Instance(Instance),
    /// A reserved slot: the waiter starts the instance itself.
    Spawn,
}

struct State {
    idle: Vec<Instance>,
    /// Instances alive or being started.
    live: u32,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    /// Every process not yet reaped, for shutdown.
    processes: HashMap<u64, Process>,
    closed: bool,
}

struct Inner {
    name: Arc<str>,
    /// How to start processes, or why they cannot be started.
    spec: Result<SpawnSpec, String>,
    max_instances: u32,
    min_instances: u32,
    max_requests: u64,
    queue_length: usize,
    grace: Duration,
    next_id: AtomicU64,
    state: Mutex<State>,
}

/// The process pool of one app. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("app", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// A snapshot of a pool, for logs and status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    pub live: u32,
    pub idle: usize,
    pub waiting: usize,
}

impl Pool {
    /// Creates the pool of `app`. Nothing is started until [`start`](Self::start)
    /// or the first request. An app whose command cannot be found still gets
    /// a pool: it answers every request with [`PoolError::Unavailable`].
    pub fn new(app: &AppConfig, runtime_dir: &Path) -> Pool {
        let name: Arc<str> = Arc::from(app.name.as_str());
        let spec = spawn_spec(app, runtime_dir, &name);
        if let Err(reason) = &spec {
            error!(app = %name, "{reason}");
        }
        Pool {
            inner: Arc::new(Inner {
                name,
                spec,
                max_instances: app.max_instances.max(1),
                min_instances: app.min_instances.min(app.max_instances),
                max_requests: effective_max_requests(app),
                queue_length: app.queue_length,
                grace: app.signal_before_terminate,
                next_id: AtomicU64::new(1),
                state: Mutex::new(State {
                    idle: Vec::new(),
                    live: 0,
                    waiters: VecDeque::new(),
                    processes: HashMap::new(),
                    closed: false,
                }),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Starts the `min_instances` processes.
    pub fn start(&self) {
        for _ in 0..self.inner.min_instances {
            self.inner.clone().spawn_spare();
        }
    }

    pub fn status(&self) -> PoolStatus {
        let st = self.inner.lock();
        PoolStatus {
            live: st.live,
            idle: st.idle.len(),
            waiting: st.waiters.len(),
        }
    }

    /// Leases an instance: an idle one, a new one (below `max_instances`),
    /// or the next one freed after waiting in the queue.
    pub async fn acquire(&self) -> Result<Lease, PoolError> {
        let inner = &self.inner;
        let waiting = {
            let mut st = inner.lock();
            if st.closed {
                return Err(inner.shutting_down());
            }
            if let Err(reason) = &inner.spec {
                return Err(PoolError::Unavailable {
                    app: inner.name.clone(),
                    reason: reason.clone(),
                });
            }
            while let Some(mut instance) = st.idle.pop() {
                if instance.is_usable() {
                    return Ok(Lease::new(inner.clone(), instance));
                }
                debug!(app = %inner.name, pid = instance.process.pid(), "idle instance is gone; discarding it");
                inner.retire(&mut st, instance);
            }
            if st.live < inner.max_instances {
                st.live += 1;
                None
            } else if st.waiters.len() >= inner.queue_length {
                return Err(PoolError::QueueFull {
                    app: inner.name.clone(),
                    max_instances: inner.max_instances,
                    queue_length: inner.queue_length,
                });
            } else {
                let (tx, rx) = oneshot::channel();
                st.waiters.push_back(tx);
                Some(Waiting {
                    inner: inner.clone(),
                    rx: Some(rx),
                })
            }
        };
        let grant = match waiting {
            None => Grant::Spawn,
            Some(mut waiting) => waiting.wait().await?,
        };
        match grant {
            Grant::Instance(instance) => Ok(Lease::new(inner.clone(), instance)),
            Grant::Spawn => inner
                .clone()
                .spawn_reserved()
                .await
                .map(|i| Lease::new(inner.clone(), i)),
        }
    }

    /// Stops the pool: refuses new requests and terminates every process
    /// (SIGTERM + `signal_before_terminate`, then SIGKILL), waiting until
    /// all of them have been reaped.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let processes: Vec<Process> = {
            let mut st = inner.lock();
            st.closed = true;
            // Dropping the senders wakes every waiter with "shutting down".
            st.waiters.clear();
            let idle = std::mem::take(&mut st.idle);
            st.live -= idle.len() as u32;
            drop(idle);
            st.processes.values().cloned().collect()
        };
        if processes.is_empty() {
            return;
        }
        info!(app = %inner.name, count = processes.len(), "stopping processes");
        for process in &processes {
            process.terminate(inner.grace);
        }
        let all_exited = futures_join_all(processes.iter().map(|p| p.wait()));
        // The supervisor escalates to SIGKILL after the grace period; the
        // extra margin only guards against a process stuck in the kernel.
        if tokio::time::timeout(inner.grace + Duration::from_secs(5), all_exited)
            .await
            .is_err()
        {
            warn!(app = %inner.name, "some processes did not exit in time");
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in
        // a way that matters more than stopping to serve: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn shutting_down(&self) -> PoolError {
        PoolError::ShuttingDown {
            app: self.name.clone(),
        }
    }

    /// Starts a process in a slot already counted in `live`. On failure the
    /// slot is given back.
    async fn spawn_reserved(self: Arc<Self>) -> Result<Instance, PoolError> {
        let spec = match &self.spec {
            Ok(spec) => spec,
            Err(reason) => {
                self.free_slot(&mut self.lock());
                return Err(PoolError::Unavailable {
                    app: self.name.clone(),
                    reason: reason.clone(),
                });
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let weak = Arc::downgrade(&self);
        match process::spawn(spec, id, move |_status| on_exit(&weak, id)).await {
            Ok((process, conn)) => {
                let mut st = self.lock();
                if st.closed {
                    process.terminate(Duration::ZERO);
                    st.live -= 1;
                    return Err(self.shutting_down());
                }
                // The process may already have exited and run on_exit; then it
                // must not be recorded (the connection will show it's gone).
                if !process.has_exited() {
                    st.processes.insert(id, process.clone());
                }
                info!(app = %self.name, pid = process.pid(), live = st.live, "instance started");
                Ok(Instance {
                    id,
                    process,
                    conn,
                    served: 0,
                })
            }
            Err(source) => {
                error!(app = %self.name, program = %spec.program.display(), error = %source, "could not start a process");
                self.free_slot(&mut self.lock());
                Err(PoolError::Spawn {
                    app: self.name.clone(),
                    source,
                })
            }
        }
    }

    /// Starts a process in the background and puts it in the idle set (or
    /// hands it to a waiter), to keep `min_instances` running.
    fn spawn_spare(self: Arc<Self>) {
        {
            let mut st = self.lock();
            if st.closed || st.live >= self.max_instances {
                return;
            }
            st.live += 1;
        }
        tokio::spawn(async move {
            if let Ok(instance) = self.clone().spawn_reserved().await {
                let mut st = self.lock();
                self.hand_over(&mut st, Grant::Instance(instance));
            }
        });
    }

    /// Gives an instance back after a request.
    fn release(self: &Arc<Self>, mut instance: Instance, reusable: bool) {
        instance.served += 1;
        let mut st = self.lock();
        if st.closed {
            self.retire(&mut st, instance);
        } else if !reusable {
            debug!(app = %self.name, pid = instance.process.pid(), "connection not reusable; retiring instance");
            self.retire(&mut st, instance);
        } else if instance.served >= self.max_requests {
            info!(app = %self.name, pid = instance.process.pid(), requests = instance.served, "instance reached instance_max_requests; recycling");
            self.retire(&mut st, instance);
        } else {
            self.hand_over(&mut st, Grant::Instance(instance));
        }
    }

    /// Terminates an instance and frees its slot.
    fn retire(self: &Arc<Self>, st: &mut State, instance: Instance) {
        instance.process.terminate(self.grace);
        drop(instance.conn);
        self.free_slot(st);
    }

    /// A slot was given back: a waiter may start a process in it, and
    /// `min_instances` is kept.
    fn free_slot(self: &Arc<Self>, st: &mut State) {
        st.live -= 1;
        if st.closed {
            return;
        }
        if !st.waiters.is_empty() {
            st.live += 1;
            self.hand_over(st, Grant::Spawn);
        } else if st.live < self.min_instances {
            let inner = self.clone();
            // Spawned outside the lock: spawn_spare takes it itself.
            tokio::spawn(async move { inner.spawn_spare() });
        }
    }

    /// Gives `grant` to the first waiter still waiting; with none, an
    /// instance becomes idle and a reserved slot is returned.
    fn hand_over(self: &Arc<Self>, st: &mut State, mut grant: Grant) {
        while let Some(waiter) = st.waiters.pop_front() {
            match waiter.send(grant) {
                Ok(()) => return,
                Err(returned) => grant = returned,
            }
        }
        match grant {
            Grant::Instance(instance) if !st.closed => st.idle.push(instance),
            Grant::Instance(instance) => self.retire(st, instance),
            Grant::Spawn => st.live -= 1,
        }
    }
}

/// Runs in a process's supervisor once it has been reaped.
fn on_exit(pool: &Weak<Inner>, id: u64) {
    let Some(inner) = pool.upgrade() else { return };
    let mut st = inner.lock();
    st.processes.remove(&id);
    // An idle instance that died is dropped now rather than at the next
    // request, so its slot serves waiters and min_instances at once.
    if let Some(pos) = st.idle.iter().position(|i| i.id == id) {
        let instance = st.idle.swap_remove(pos);
        debug!(app = %inner.name, pid = instance.process.pid(), "idle instance exited");
        drop(instance);
        inner.free_slot(&mut st);
    }
}

/// A request waiting in the queue. If it is dropped (client gone), whatever
/// it was granted in the meantime goes back to the pool.
struct Waiting {
    inner: Arc<Inner>,
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Waiting {
    async fn wait(&mut self) -> Result<Grant, PoolError> {
        let rx = self.rx.as_mut().expect("waited once");
        let result = rx.await;
        self.rx = None;
        result.map_err(|_| self.inner.shutting_down())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        rx.close();
        if let Ok(grant) = rx.try_recv() {
            let mut st = self.inner.lock();
            match grant {
                Grant::Spawn => self.inner.free_slot(&mut st),
                grant => self.inner.hand_over(&mut st, grant),
            }
        }
    }
}

/// An instance leased for one request. Give it back with
/// [`finish`](Self::finish); dropping a lease mid-request terminates the
/// instance, since its connection is in an unknown state.
pub struct Lease {
    inner: Arc<Inner>,
    instance: Option<Instance>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Lease {
    fn new(inner: Arc<Inner>, instance: Instance) -> Lease {
        Lease {
            inner,
            instance: Some(instance),
        }
    }

    fn instance(&self) -> &Instance {
        self.instance
            .as_ref()
            .expect("lease holds its instance until consumed")
    }

    /// The pid of the leased process.
    pub fn pid(&self) -> u32 {
        self.instance().process.pid()
    }

    /// The app's name.
    pub fn app(&self) -> &Arc<str> {
        &self.inner.name
    }

    /// Whether the instance served requests before: only then can a dead
    /// connection be a stale one (the app exited between requests), which
    /// is safe to retry on another instance.
    pub fn is_reused(&self) -> bool {
        self.instance().served > 0
    }

    /// The FastCGI connection to the instance.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self
            .instance
            .as_mut()
            .expect("lease holds its instance until consumed")
            .conn
    }

    /// The request is complete. `reusable`: the connection is in a clean
    /// state (END_REQUEST seen, request fully written).
    pub fn finish(mut self, reusable: bool) {
        if let Some(instance) = self.instance.take() {
            self.inner.release(instance, reusable);
        }
    }

    /// The instance is broken (protocol error, died): terminate it.
    pub fn discard(mut self) {
        if let Some(instance) = self.instance.take() {
            let mut st = self.inner.lock();
            self.inner.retire(&mut st, instance);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            debug!(app = %self.inner.name, pid = instance.process.pid(), "request abandoned mid-flight; retiring instance");
            let mut st = self.inner.lock();
            self.inner.retire(&mut st, instance);
        }
    }
}

/// Resolves what a pool needs to start processes: the program on PATH, the
/// clean environment, the private socket folder.
fn spawn_spec(app: &AppConfig, runtime_dir: &Path, name: &Arc<str>) -> Result<SpawnSpec, String> {
    let program = config::resolve_command(&app.command).map_err(|e| e.to_string())?;
    let socket_dir = runtime_dir.join(&app.name);
    private_dir(&socket_dir).map_err(|e| format!("cannot create {}: {e}", socket_dir.display()))?;
    let mut env = std::collections::BTreeMap::new();
    for key in &app.inherit_env {
        if let Some(value) = std::env::var_os(key).and_then(|v| v.into_string().ok()) {
            env.insert(key.clone(), value);
        }
    }
    env.extend(app.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let working_dir: PathBuf = app.working_dir.clone().unwrap_or_else(|| app.root.clone());
    Ok(SpawnSpec {
        app: name.clone(),
        program,
        args: app.args.clone(),
        env,
        working_dir,
        protocol: app.protocol,
        socket_dir,
    })
}

/// php-cgi exits on its own after `PHP_FCGI_MAX_REQUESTS` requests; sending
/// it one more would fail. Recycle no later than that.
fn effective_max_requests(app: &AppConfig) -> u64 {
    let php_limit = app
        .env
        .get("PHP_FCGI_MAX_REQUESTS")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0);
    match php_limit {
        Some(limit) => app.instance_max_requests.min(limit),
        None => app.instance_max_requests,
    }
}

/// Awaits every future (no extra dependency for one call site).
async fn futures_join_all<F: std::future::Future<Output = ()>>(
    futures: impl IntoIterator<Item = F>,
) {
    for future in futures {
        future.await;
    }
}
