//! Process pools with IIS FastCGI semantics.
//!
//! A [`Pool`] runs the processes of one `[[app]]`. Each process (an
//! instance) serves **exactly one request at a time**; a request leases an
//! instance, uses its FastCGI connection, and gives it back. When every
//! instance is busy, requests wait in a fair FIFO queue and take the first
//! instance that frees up, old or new (first free wins); the pool starts
//! processes in the background for them (`start.rs`). Beyond `queue_length`
//! waiting (not counting those a start will serve) they are refused at once.
//!
//! Accounting rule: `live` counts instances that exist or are being started.
//! A slot is taken before a start and given back exactly once, when its
//! instance is retired or its start fails; guards ([`Lease`], `Waiting`,
//! the start's slot) make sure a dropped future never leaks a slot or
//! orphans a process.
//!
//! Failures are judged by when they happen. A process that cannot start,
//! or dies with no request in flight (starting, idle), is a crash loop in
//! the making and counts for `rapid_fails_per_minute`; one that dies while
//! serving a request (a request crash) or answers garbage costs that
//! request only: it is replaced and counted apart, and never takes the
//! app offline.
//!
//! This module does not know HTTP or CGI: it hands out connections.
//!
//! This file keeps the pool, its state and the slot accounting (acquire,
//! release, retire, hand-over, exits). Around it: `lease.rs` (leases and
//! what a waiting request is granted), `start.rs` (when and how the pool
//! starts processes), `rapid_fail.rs`, `sizing.rs`
//! (automatic sizing), `maintain.rs` (idle timeouts), `watch.rs`
//! (`monitor_changes_to`), `spawn.rs` (how processes are started),
//! `socket.rs` (where instances listen), `process.rs` (one process and
//! its supervisor), `slow.rs` (the slow-request log), `inspect.rs`
//! (what a process is doing and its memory, from /proc) and `handover.rs`
//! (warming up and draining pools on a reload).

pub mod exchange;
mod handover;
mod inspect;
mod lease;
mod maintain;
mod process;
mod rapid_fail;
mod recycle;
mod sizing;
mod slow;
pub mod socket;
mod spawn;
mod start;
mod status;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod watch;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::{self, AppSettings};
use crate::fcgi::client::Connection;
pub use handover::WarmUpError;
pub use lease::Lease;
use lease::{Grant, Waiter, Waiting};
use maintain::maintain;
pub use process::{Exit, Process, ProcessSpec, StartError, private_dir};
use recycle::{Replacing, Tracked};
use sizing::{Window, initial_limit};
use spawn::{ProcessSpawner, Spawner, spawn_spec};
use status::Record;
pub use status::{
    CurrentRequest, ExitReason, InstanceInfo, InstanceState, LastExit, Offline, PoolSnapshot,
};
use watch::watch_files;

/// Why a pool could not lease an instance. The app is named by the app
/// layer's error, which wraps this one.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// `queue_length` requests are already waiting.
    #[error("all {max_instances} instances busy and the queue is full ({queue_length} waiting)")]
    QueueFull {
        max_instances: u32,
        queue_length: usize,
    },
    /// The app cannot run at all (e.g. its command is missing).
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    /// Starting a process failed: it could not be run, or it ran and
    /// exited (or hung) before accepting its connection.
    #[error("could not start a process")]
    Spawn {
        #[source]
        source: StartError,
    },
    /// The gateway is stopping.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// An operator took the app offline (`POST /apps/NAME/offline`).
    #[error("taken offline on the admin listener (POST /apps/NAME/online brings it back)")]
    TakenOffline,
    /// Too many instance failures within a minute (rapid_fails_per_minute).
    #[error(
        "offline for {retry_after:?} after {failures} failures within a minute (rapid_fails_per_minute)"
    )]
    Offline {
        failures: usize,
        retry_after: Duration,
    },
}

impl PoolError {
    /// How long a client should wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PoolError::Offline { retry_after, .. } => Some(*retry_after),
            PoolError::TakenOffline => Some(rapid_fail::MANUAL_RETRY_AFTER),
            _ => None,
        }
    }

    /// The process started for this request ran and failed before it
    /// accepted the request: the app is broken (a bad gateway), rather
    /// than busy or stopped.
    pub fn is_start_failure(&self) -> bool {
        matches!(self, PoolError::Spawn { source } if source.is_startup_failure())
    }
}

/// One running process and the gateway's connection to it.
struct Instance {
    id: u64,
    process: Process,
    conn: Connection,
    /// Requests completed on this instance.
    served: u64,
    /// Its own recycle point: `instance_max_requests` less up to a tenth,
    /// so that instances started together do not all recycle together.
    /// From there on it is due for replacement (`recycle.rs`).
    replace_at: u64,
    /// The pool generation it was started in (see `monitor_changes_to`).
    generation: u64,
    /// When it last became idle.
    idle_since: Instant,
}

impl Instance {
    fn is_usable(&mut self) -> bool {
        !self.process.has_exited() && self.conn.is_reusable()
    }
}

struct State {
    idle: Vec<Instance>,
    /// Instances alive or being started.
    live: u32,
    /// Of `live`, processes being started in the background (no request
    /// is bound to them).
    starting: u32,
    /// A start is scheduled for after the hold-off (see `start.rs`).
    start_scheduled: bool,
    waiters: VecDeque<Waiter>,
    /// The most requests seen waiting at once (for the status page).
    most_waiting: usize,
    /// Every process not yet reaped (for shutdown), with its generation.
    processes: HashMap<u64, Tracked>,
    /// Instances due for replacement whose replacement is starting or
    /// ready (see `recycle.rs`).
    replacing: HashMap<u64, Replacing>,
    /// Replacement starts in flight.
    replacements_starting: u32,
    /// A recycle is rolling through the pool (for its closing log line).
    rolling: bool,
    closed: bool,
    /// Bumped when the pool is recycled (a monitored file changed): older
    /// instances are replaced, one after another.
    generation: u64,
    /// Instance failures of the last minute (rapid-fail protection): starts
    /// that failed and deaths with no request in flight.
    failures: VecDeque<Instant>,
    /// Processes that died while serving a request, since the pool began
    /// (never counted in `failures`).
    request_crashes: u64,
    /// Instances replaced after a protocol error or a malformed response
    /// head, since the pool began (never counted in `failures`).
    bad_answers: u64,
    /// Offline until then after too many failures.
    offline_until: Option<Instant>,
    /// Taken offline by an operator (`POST /apps/NAME/offline`), since then.
    manual_offline: Option<std::time::SystemTime>,
    /// Spawns, exits and failures since the start, for the status page.
    record: Record,
    /// Back from offline: one probe instance until a request succeeds.
    probing: bool,
    /// The most instances allowed now: `max_instances`, or the current
    /// decision of automatic sizing.
    limit: u32,
    /// What automatic sizing looks at, since its last decision.
    window: Window,
    /// Automatic sizing has a tick scheduled (only while there is traffic).
    auto_ticking: bool,
}

/// Instance ids, unique in the gateway's lifetime across every pool: an
/// app's pools before and after a reload share the app's socket folder,
/// and an instance's socket is named by its id.
static NEXT_INSTANCE_ID: AtomicU64 = AtomicU64::new(1);

struct Inner {
    name: Arc<str>,
    /// How to start processes, or why they cannot be started.
    spec: Result<ProcessSpec, String>,
    /// What starts them: real processes, or a unit test's stand-in.
    spawner: Arc<dyn Spawner>,
    /// `Some(ceiling)` with `max_instances = 0`.
    auto_ceiling: Option<u32>,
    min_instances: u32,
    max_requests: u64,
    /// The program's own request limit (php-cgi's PHP_FCGI_MAX_REQUESTS):
    /// an instance never serves past it, replaced or not.
    program_limit: Option<u64>,
    /// `instance_max_memory` in KiB (`recycle.rs`).
    max_memory_kib: Option<u64>,
    queue_length: usize,
    grace: Duration,
    idle_timeout: Duration,
    rapid_fails: usize,
    monitored: Vec<PathBuf>,
    state: Mutex<State>,
    /// Wakes the maintenance task (idle timeouts) when there is new work.
    maintenance: Notify,
    /// How long requests waited for an instance (`fastgate_queue_wait_seconds`):
    /// `prometheus-client`'s histogram itself, which the metrics encode.
    wait_seconds: Histogram,
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
    /// The most instances allowed now (moves with automatic sizing).
    pub limit: u32,
    pub live: u32,
    /// Of `live`, processes being started (not ready to serve yet).
    pub starting: u32,
    pub idle: usize,
    pub waiting: usize,
    /// Processes that died while serving a request, since the start.
    pub request_crashes: u64,
    /// Instances replaced for a protocol error or a malformed head.
    pub bad_answers: u64,
}

impl Pool {
    /// Creates the pool of `app`. Nothing is started until [`start`](Self::start)
    /// or the first request. An app whose command cannot be found still gets
    /// a pool: it answers every request with [`PoolError::Unavailable`].
    pub fn new(app: &AppSettings, runtime_dir: &Path) -> Pool {
        Pool::with_spawner(app, runtime_dir, Arc::new(ProcessSpawner))
    }

    /// [`new`](Self::new), starting processes with `spawner`.
    fn with_spawner(app: &AppSettings, runtime_dir: &Path, spawner: Arc<dyn Spawner>) -> Pool {
        let name: Arc<str> = Arc::from(app.name.as_str());
        let spec = spawn_spec(app, runtime_dir, &name);
        if let Err(reason) = &spec {
            error!(app = %name, "{reason}");
        }
        Pool {
            inner: Arc::new(Inner {
                name,
                spec,
                spawner,
                auto_ceiling: (app.max_instances == 0)
                    .then_some(app.max_instances_auto_ceiling.max(1)),
                min_instances: app
                    .min_instances
                    .min(initial_limit(app).max(app.min_instances)),
                max_requests: app.effective_max_requests(),
                program_limit: config::php_fcgi_max_requests(&app.env),
                max_memory_kib: app.instance_max_memory.map(|bytes| bytes.div_ceil(1024)),
                queue_length: app.queue_length,
                grace: app.signal_before_terminate,
                idle_timeout: app.idle_timeout,
                rapid_fails: app.rapid_fails_per_minute.max(1) as usize,
                monitored: app.monitor_changes_to.clone(),
                state: Mutex::new(State {
                    idle: Vec::new(),
                    live: 0,
                    starting: 0,
                    start_scheduled: false,
                    waiters: VecDeque::new(),
                    most_waiting: 0,
                    processes: HashMap::new(),
                    replacing: HashMap::new(),
                    replacements_starting: 0,
                    rolling: false,
                    closed: false,
                    generation: 0,
                    failures: VecDeque::new(),
                    request_crashes: 0,
                    bad_answers: 0,
                    offline_until: None,
                    manual_offline: None,
                    record: Record::default(),
                    probing: false,
                    limit: initial_limit(app),
                    window: Window::default(),
                    auto_ticking: false,
                }),
                maintenance: Notify::new(),
                // 0.1 ms to about 26 s.
                wait_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Starts the `min_instances` processes and the pool's background
    /// tasks (idle timeouts; watching `monitor_changes_to`).
    pub fn start(&self) {
        if self.inner.spec.is_ok() {
            let mut st = self.inner.lock();
            while st.live < self.inner.min_instances.min(st.limit) {
                self.inner.start_in_background(&mut st);
            }
        }
        tokio::spawn(maintain(Arc::downgrade(&self.inner)));
        if !self.inner.monitored.is_empty() {
            tokio::spawn(watch_files(Arc::downgrade(&self.inner)));
        }
    }

    /// Replaces every instance, rolling through the pool: each one keeps
    /// serving until its replacement is ready (see `recycle.rs`).
    pub fn recycle(&self, reason: &str) {
        self.inner.recycle(reason);
    }

    /// How long its requests waited for an instance (for the metrics).
    pub fn wait_seconds(&self) -> &Histogram {
        &self.inner.wait_seconds
    }

    pub fn status(&self) -> PoolStatus {
        let st = self.inner.lock();
        PoolStatus {
            limit: st.limit,
            live: st.live,
            starting: st.starting,
            idle: st.idle.len(),
            waiting: st.waiters.iter().filter(|w| !w.is_closed()).count(),
            request_crashes: st.request_crashes,
            bad_answers: st.bad_answers,
        }
    }

    /// Leases an instance: an idle one, or the first one that frees up
    /// (an old one finishing a request, or a new one the pool started)
    /// after waiting in the FIFO queue. The request never waits for a
    /// process of its own: starting processes is the pool's decision.
    pub async fn acquire(&self) -> Result<Lease, PoolError> {
        let inner = &self.inner;
        let mut waiting = {
            let mut st = inner.lock();
            if let Some(instance) = inner.take_idle(&mut st)? {
                drop(st);
                inner.wait_seconds.observe(0.0);
                return Ok(Lease::new(inner.clone(), instance));
            }
            // Requests a start (in flight, or still allowed) will serve do
            // not count against queue_length, as they never did.
            let room = inner.spawn_limit(&st).saturating_sub(st.live);
            let capacity = inner.queue_length + (st.starting + room) as usize;
            if st.waiters.len() >= capacity && {
                // Clients that left while queued hold no place: a burst of
                // abandoned requests must not turn the next ones away.
                st.waiters.retain(|waiter| !waiter.is_closed());
                st.waiters.len() >= capacity
            } {
                return Err(PoolError::QueueFull {
                    max_instances: st.limit,
                    queue_length: inner.queue_length,
                });
            }
            st.window.peak_busy = st.window.peak_busy.max(st.live - st.starting + 1);
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(Waiter::new(tx));
            st.most_waiting = st.most_waiting.max(st.waiters.len());
            inner.demand_changed(&mut st);
            Waiting::new(inner.clone(), rx)
        };
        let since = Instant::now();
        let grant = waiting.wait().await?;
        let waited = since.elapsed();
        {
            let mut st = inner.lock();
            st.window.waited += 1;
            st.window.wait_total += waited;
        }
        inner.wait_seconds.observe(waited.as_secs_f64());
        match grant {
            Grant::Instance(instance) => Ok(Lease::new(inner.clone(), instance)),
            Grant::Failed(error) => Err(error),
            Grant::Offline => Err(inner
                .check_offline(&mut inner.lock())
                .err()
                .unwrap_or_else(|| inner.shutting_down())),
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
            inner.maintenance.notify_one();
            // Dropping the senders wakes every waiter with "shutting down".
            st.waiters.clear();
            let idle = std::mem::take(&mut st.idle);
            st.live -= idle.len() as u32;
            drop(idle);
            st.processes.values().map(|t| t.process.clone()).collect()
        };
        if processes.is_empty() {
            return;
        }
        info!(app = %inner.name, count = processes.len(), "stopping processes");
        for process in &processes {
            process.terminate(inner.grace);
        }
        // Waited for one after the other: they were all told to stop
        // already, so this takes as long as the slowest.
        let all_exited = async {
            for process in &processes {
                process.wait().await;
            }
        };
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
        PoolError::ShuttingDown
    }

    /// The checks every request passes, then an idle instance if there is
    /// a usable one (outdated or dead ones found on the way are retired).
    fn take_idle(self: &Arc<Self>, st: &mut State) -> Result<Option<Instance>, PoolError> {
        if st.closed {
            return Err(self.shutting_down());
        }
        if let Err(reason) = &self.spec {
            return Err(PoolError::Unavailable {
                reason: reason.clone(),
            });
        }
        self.check_offline(st)?;
        st.window.requests += 1;
        if self.auto_ceiling.is_some() && !st.auto_ticking {
            st.auto_ticking = true;
            self.maintenance.notify_one();
        }
        // An outdated instance still serves until its replacement is ready.
        while let Some(mut instance) = st.idle.pop() {
            let pid = instance.process.pid();
            if instance.is_usable() {
                let busy = st.live - st.starting - st.idle.len() as u32;
                st.window.peak_busy = st.window.peak_busy.max(busy);
                return Ok(Some(instance));
            } else {
                // Nothing was written to it: the request goes elsewhere.
                warn!(app = %self.name, pid, "instance was gone before the request reached it (it closed its connection while idle); the request goes to another instance");
            }
            self.retire(st, instance);
        }
        Ok(None)
    }

    /// Gives an instance back after a request. One due for replacement
    /// gets its replacement started and keeps serving until it is ready.
    fn release(self: &Arc<Self>, mut instance: Instance, reusable: bool) {
        instance.served += 1;
        instance.process.mark_served();
        // Before the lock: it may read /proc.
        self.check_memory(&mut instance);
        let mut st = self.lock();
        self.end_request(&mut st, &instance.process);
        let pid = instance.process.pid();
        if !st.closed && self.is_due(&st, &instance) {
            self.replace(&mut st, instance.id);
        }

        if st.closed || instance.process.has_exited() {
            self.retire(&mut st, instance);
        } else if !reusable {
            debug!(app = %self.name, pid, "connection not reusable; retiring instance");
            Self::note_stop(&mut st, instance.id, ExitReason::Stopped);
            self.retire(&mut st, instance);
        } else if self
            .program_limit
            .is_some_and(|limit| instance.served >= limit)
        {
            info!(app = %self.name, pid, requests = instance.served, "instance reached PHP_FCGI_MAX_REQUESTS (it would exit on its own); recycling");
            Self::note_stop(&mut st, instance.id, ExitReason::Recycled);
            self.retire(&mut st, instance);
        } else if st.replacing.get(&instance.id) == Some(&Replacing::Ready) {
            info!(app = %self.name, pid, requests = instance.served, "its replacement is ready; retiring instance");
            Self::note_stop(&mut st, instance.id, ExitReason::Recycled);
            self.retire(&mut st, instance);
        } else {
            if st.probing {
                info!(app = %self.name, pid, "probe instance served a request; app back in service");
                st.probing = false;
            }
            instance.idle_since = Instant::now();
            self.hand_over(&mut st, Grant::Instance(instance));
        }
    }

    /// Terminates an instance and frees its slot.
    fn retire(self: &Arc<Self>, st: &mut State, instance: Instance) {
        instance.process.terminate(self.grace);
        st.replacing.remove(&instance.id);
        if let Some(tracked) = st.processes.get_mut(&instance.id) {
            tracked.retired = true;
        }
        drop(instance.conn);
        self.free_slot(st);
    }

    /// A slot was given back: the pool may start a process in it for the
    /// requests waiting, and `min_instances` is kept.
    fn free_slot(self: &Arc<Self>, st: &mut State) {
        st.live -= 1;
        if st.closed || st.offline_until.is_some() {
            return;
        }
        self.demand_changed(st);
        self.keep_min_instances(st);
    }

    /// Gives `grant` to the first waiter still waiting; with none, an
    /// instance becomes idle.
    fn hand_over(self: &Arc<Self>, st: &mut State, mut grant: Grant) {
        while let Some(waiter) = st.waiters.pop_front() {
            match waiter.send(grant) {
                Ok(()) => return,
                Err(returned) => grant = returned,
            }
        }
        match grant {
            Grant::Instance(instance) if !st.closed => {
                if st.idle.is_empty() {
                    // The earliest idle deadline may have changed.
                    self.maintenance.notify_one();
                }
                st.idle.push(instance);
            }
            Grant::Instance(instance) => self.retire(st, instance),
            Grant::Failed(_) | Grant::Offline => {}
        }
    }
}

/// Runs in a process's supervisor once it has been reaped.
fn on_exit(pool: &Weak<Inner>, id: u64, exit: Exit) {
    let Some(inner) = pool.upgrade() else { return };
    let mut st = inner.lock();
    // Not recorded: it never started (its failed start was counted), or
    // the pool is gone.
    let Some(tracked) = st.processes.remove(&id) else {
        return;
    };
    inner.record_exit(&mut st, &tracked, &exit);
    inner.note_gone(&mut st, id);
    if !tracked.ready {
        // Died while starting: the start counts it as a failed start.
        return;
    }
    let process = tracked.process;
    // A request holds it: the request judges the exit when it ends
    // (`end_request`), a crash of its own or an exit after its answer.
    if !process.is_serving() {
        inner.judge_exit(&mut st, &process, exit);
    }
    // An idle instance that died is dropped now rather than at the next
    // request, so its slot serves waiters and min_instances at once.
    if let Some(pos) = st.idle.iter().position(|i| i.id == id) {
        let instance = st.idle.remove(pos);
        debug!(app = %inner.name, pid = instance.process.pid(), "idle instance exited");
        drop(instance);
        inner.free_slot(&mut st);
    }
}

impl Inner {
    /// A request let go of `process` (under the lock): an exit the
    /// supervisor left to the request, because it came while the request
    /// held the process, is judged now as one with no request in flight.
    fn end_request(&self, st: &mut State, process: &Process) {
        process.set_serving(false);
        if let Some(exit) = process.exit() {
            self.judge_exit(st, process, exit);
        }
    }

    /// Judges an exit with no request in flight (idle, or just after an
    /// answer): unless the gateway asked for it, or the process left
    /// cleanly after serving (php-cgi after PHP_FCGI_MAX_REQUESTS), it is
    /// a failure for rapid-fail protection.
    fn judge_exit(&self, st: &mut State, process: &Process, exit: Exit) {
        if exit.requested || st.closed || !process.claim_exit() {
            return;
        }
        if exit.status.success() && process.has_served() {
            debug!(app = %self.name, pid = process.pid(), "process left on its own after serving");
            return;
        }
        let what = format!(
            "the process exited with no request in flight ({})",
            exit.describe()
        );
        self.record_failure(st, Some(process.pid()), &what);
    }
}
