//! Unit tests of the pool's slot accounting: the queue, leases, recycling,
//! rapid-fail protection and `min_instances`, with a stand-in spawner and
//! no app processes. The real processes are covered by the integration
//! suite (`tests/integration`, `pool::` and `iis::`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::{UnixListener, UnixStream};

use super::spawn::{OnExit, OnSpawned, Spawner, Started};
use super::{
    CurrentRequest, ExitReason, InstanceState, Offline, Pool, PoolError, PoolStatus, Process,
    ProcessSpec, StartError,
};
use crate::config::{self, AppSettings};
use crate::fcgi::client::Connection;

/// Stand-in pids start above this (plus the instance id).
const PID_BASE: u32 = 1000;

/// Starts stand-in instances: a real FastCGI connection to a socket whose
/// other end the stand-in keeps open (so the connection stays reusable),
/// and a [`Process`] that exits only when the pool stops it.
struct StandInSpawner {
    sockets: TempDir,
    spawned: Mutex<Spawned>,
}

#[derive(Default)]
struct Spawned {
    /// Every spawn fails while set, as a missing program would.
    failing: bool,
    /// While set, a start is ready (or fails) only when the test adds a
    /// permit: a slow process start.
    gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Spawns asked for, failed ones included.
    attempts: u32,
    /// The instances started, in order.
    processes: Vec<Process>,
    /// The app ends of their connections.
    app_ends: Vec<UnixStream>,
}

impl StandInSpawner {
    fn spawned(&self) -> MutexGuard<'_, Spawned> {
        self.spawned.lock().unwrap()
    }

    fn attempts(&self) -> u32 {
        self.spawned().attempts
    }

    fn set_failing(&self, failing: bool) {
        self.spawned().failing = failing;
    }

    /// From now on, starts wait for [`open`](Self::open): slow starts.
    fn slow(&self) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        self.spawned().gate = Some(gate.clone());
        gate
    }

    /// The `n`th instance started (from 0).
    fn process(&self, n: usize) -> Process {
        self.spawned().processes[n].clone()
    }

    async fn start(
        &self,
        instance_id: u64,
        on_spawned: OnSpawned,
        on_exit: OnExit,
    ) -> Result<(Process, Connection), StartError> {
        let (failing, gate) = {
            let mut spawned = self.spawned();
            spawned.attempts += 1;
            (spawned.failing, spawned.gate.clone())
        };
        if let Some(gate) = gate {
            gate.acquire().await.unwrap().forget();
        }
        if failing {
            return Err(
                io::Error::new(io::ErrorKind::NotFound, "stand-in: no such program").into(),
            );
        }
        let path = self.sockets.path().join(format!("{instance_id}.sock"));
        let listener = UnixListener::bind(&path)?;
        let conn = Connection::connect_unix(&path).await?;
        let (app_end, _) = listener.accept().await?;
        let process = Process::stand_in(PID_BASE + instance_id as u32, on_exit);
        on_spawned(&process);
        let mut spawned = self.spawned();
        spawned.processes.push(process.clone());
        spawned.app_ends.push(app_end);
        Ok((process, conn))
    }
}

impl Spawner for StandInSpawner {
    fn spawn<'a>(
        &'a self,
        _spec: &'a ProcessSpec,
        instance_id: u64,
        on_spawned: OnSpawned,
        on_exit: OnExit,
    ) -> Started<'a> {
        Box::pin(self.start(instance_id, on_spawned, on_exit))
    }
}

/// A pool of an app with `settings` (lines of its `[[app]]` table), its
/// stand-in spawner, and the runtime folder to keep while it runs.
fn stand_in_pool(settings: &str) -> (Pool, Arc<StandInSpawner>, TempDir) {
    let text = format!(
        "[[app]]\nname = \"stand-in\"\ncommand = \"/bin/sh\"\nhandles = [\"*.t\"]\n{settings}\n"
    );
    let app: AppSettings = config::load_str(&text, None).unwrap().apps.remove(0);
    let runtime = tempfile::tempdir().unwrap();
    let spawner = Arc::new(StandInSpawner {
        sockets: tempfile::tempdir().unwrap(),
        spawned: Mutex::default(),
    });
    let pool = Pool::with_spawner(&app, runtime.path(), spawner.clone());
    (pool, spawner, runtime)
}

fn status(limit: u32, live: u32, idle: usize, waiting: usize) -> PoolStatus {
    PoolStatus {
        limit,
        live,
        starting: 0,
        idle,
        waiting,
        request_crashes: 0,
        bad_answers: 0,
    }
}

/// `status` with `n` of its live instances still starting.
fn starting(n: u32, status: PoolStatus) -> PoolStatus {
    PoolStatus {
        starting: n,
        ..status
    }
}

/// Lets background tasks (spares, stand-in supervisors) run until `done`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("still waiting for: {what}");
}

/// Awaits a queued request: a bug that never serves it fails the test
/// rather than hanging it.
async fn served<T>(request: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("a queued request was never served")
}

/// The next request's refusal, which must be the app offline after
/// `failures` failures within the minute.
async fn offline_after(pool: &Pool, failures: usize) -> PoolError {
    let refused = pool.acquire().await.unwrap_err();
    assert!(
        matches!(&refused, PoolError::Offline { failures: f, .. } if *f == failures),
        "{refused}"
    );
    refused
}

/// Polls `future` once, as a request would on its first turn.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

#[tokio::test]
async fn waiters_are_served_in_arrival_order() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1");
    let first = pool.acquire().await.unwrap();
    let pid = first.pid();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut requests = Vec::new();
    for n in 1..=3 {
        let (pool2, order) = (pool.clone(), order.clone());
        requests.push(tokio::spawn(async move {
            let lease = pool2.acquire().await.unwrap();
            order.lock().unwrap().push((n, lease.pid()));
            lease.finish(true);
        }));
        until("the request is queued", || pool.status().waiting == n).await;
    }
    first.finish(true);
    for request in requests {
        served(request).await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [(1, pid), (2, pid), (3, pid)]);
    assert_eq!(spawner.attempts(), 1);
    assert_eq!(pool.status(), status(1, 1, 1, 0));
}

#[tokio::test]
async fn a_dropped_lease_frees_its_slot() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1");
    let lease = pool.acquire().await.unwrap();
    let old = lease.pid();
    let mut waiting = Box::pin(pool.acquire());
    assert!(poll_once(&mut waiting).await.is_pending());
    // Abandoned mid-request: the instance is stopped, its slot goes to the waiter.
    drop(lease);
    let next = served(waiting).await.unwrap();
    assert_ne!(next.pid(), old);
    assert!(!next.is_reused());
    assert_eq!(spawner.attempts(), 2);
    until("the abandoned instance stopped", || {
        spawner.process(0).has_exited()
    })
    .await;
    assert_eq!(pool.status(), status(1, 1, 0, 0));
    drop(next);
    assert_eq!(pool.status(), status(1, 0, 0, 0));
}

#[tokio::test]
async fn a_dropped_waiting_request_gives_back_what_it_was_granted() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1");
    // Granted an idle instance: it becomes idle again.
    let lease = pool.acquire().await.unwrap();
    let pid = lease.pid();
    let mut waiting = Box::pin(pool.acquire());
    assert!(poll_once(&mut waiting).await.is_pending());
    lease.finish(true);
    assert_eq!(pool.status(), status(1, 1, 0, 0));
    drop(waiting);
    assert_eq!(pool.status(), status(1, 1, 1, 0));
    let lease = pool.acquire().await.unwrap();
    assert_eq!(lease.pid(), pid);
    assert!(lease.is_reused());
    // Left while the pool was starting a process for the queue: the start
    // is bound to no request, so its instance becomes idle.
    let mut waiting = Box::pin(pool.acquire());
    assert!(poll_once(&mut waiting).await.is_pending());
    drop(lease);
    assert_eq!(pool.status(), starting(1, status(1, 1, 0, 1)));
    drop(waiting);
    until("the new instance is idle", || pool.status().idle == 1).await;
    assert_eq!(pool.status(), status(1, 1, 1, 0));
    assert_eq!(spawner.attempts(), 2);
}

#[tokio::test]
async fn a_full_queue_refuses_at_once() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\nqueue_length = 2");
    let lease = pool.acquire().await.unwrap();
    let mut first = Box::pin(pool.acquire());
    let mut second = Box::pin(pool.acquire());
    assert!(poll_once(&mut first).await.is_pending());
    assert!(poll_once(&mut second).await.is_pending());
    // Refused on its first turn, without waiting.
    let Poll::Ready(Err(refused)) = poll_once(&mut Box::pin(pool.acquire())).await else {
        panic!("a request beyond queue_length was not refused at once");
    };
    assert!(
        matches!(
            refused,
            PoolError::QueueFull {
                max_instances: 1,
                queue_length: 2,
                ..
            }
        ),
        "{refused}"
    );
    assert_eq!(refused.retry_after(), None);
    assert_eq!(pool.status(), status(1, 1, 0, 2));
    // The queued requests are still served, in order.
    let pid = lease.pid();
    lease.finish(true);
    let lease = served(first).await.unwrap();
    assert_eq!(lease.pid(), pid);
    lease.finish(true);
    assert_eq!(served(second).await.unwrap().pid(), pid);
    assert_eq!(spawner.attempts(), 1);
}

#[tokio::test]
async fn an_instance_is_replaced_after_instance_max_requests_and_serves_until_then() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\ninstance_max_requests = 3");
    let gate = spawner.slow();
    gate.add_permits(1);
    let mut served = Vec::new();
    for _ in 0..3 {
        let lease = pool.acquire().await.unwrap();
        served.push((lease.pid(), lease.is_reused()));
        lease.finish(true);
    }
    let pid = spawner.process(0).pid();
    assert_eq!(served, [(pid, false), (pid, true), (pid, true)]);
    // Due: its replacement starts (above the limit) and it keeps serving.
    until("the replacement is started", || spawner.attempts() == 2).await;
    assert_eq!(pool.status(), starting(1, status(1, 2, 1, 0)));
    let lease = pool.acquire().await.unwrap();
    assert_eq!(
        lease.pid(),
        pid,
        "the old instance stopped before its replacement was ready"
    );
    // The replacement is ready while the old one is busy: it goes after its request.
    gate.add_permits(1);
    until("the replacement is idle", || pool.status().idle == 1).await;
    assert!(!spawner.process(0).has_exited());
    lease.finish(true);
    until("the old instance stopped", || {
        spawner.process(0).has_exited()
    })
    .await;
    assert_eq!(pool.status(), status(1, 1, 1, 0));
    let lease = pool.acquire().await.unwrap();
    assert_ne!(lease.pid(), pid);
    assert!(!lease.is_reused());
    assert_eq!(spawner.attempts(), 2);
}

#[tokio::test]
async fn an_idle_instance_is_retired_when_its_replacement_is_ready() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 2\ninstance_max_requests = 1");
    pool.acquire().await.unwrap().finish(true);
    until("the old instance stopped", || {
        spawner.process(0).has_exited()
    })
    .await;
    assert_eq!(pool.status(), status(2, 1, 1, 0));
    assert_eq!(spawner.attempts(), 2);
}

#[tokio::test]
async fn php_fcgi_max_requests_is_never_passed() {
    let (pool, spawner, _runtime) = stand_in_pool(
        "max_instances = 1\ninstance_max_requests = 3\n[app.env]\nPHP_FCGI_MAX_REQUESTS = \"2\"",
    );
    let gate = spawner.slow();
    gate.add_permits(1);
    for _ in 0..2 {
        pool.acquire().await.unwrap().finish(true);
    }
    // php-cgi would exit now: the instance goes, replaced or not.
    until("the old instance stopped", || {
        spawner.process(0).has_exited()
    })
    .await;
    assert_eq!(pool.status(), starting(1, status(1, 1, 0, 0)));
    gate.add_permits(1);
    let lease = served(pool.acquire()).await.unwrap();
    assert!(!lease.is_reused());
    assert_eq!(spawner.attempts(), 2);
}

#[tokio::test]
async fn a_recycle_rolls_through_the_pool_replacing_before_stopping() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 4\nmin_instances = 4");
    pool.start();
    until("four instances idle", || pool.status().idle == 4).await;
    let gate = spawner.slow();
    let busy = pool.acquire().await.unwrap();
    pool.recycle("test");
    // One replacement at a time (a quarter of four); nothing stops before.
    until("a replacement is started", || spawner.attempts() == 5).await;
    assert_eq!(pool.status(), starting(1, status(4, 5, 3, 0)));
    for n in 0..4 {
        assert!(!spawner.process(n).has_exited());
    }
    for step in 1..=3 {
        gate.add_permits(1);
        until("an old instance stopped", || {
            (0..4).filter(|&n| spawner.process(n).has_exited()).count() == step
        })
        .await;
        let status = pool.status();
        assert!(
            status.live - status.starting >= 4,
            "capacity dropped: {status:?}"
        );
    }
    // The busy one is replaced last and stops after its request.
    gate.add_permits(1);
    until("the last replacement is idle", || pool.status().idle == 4).await;
    let busy_process = spawner
        .spawned()
        .processes
        .iter()
        .find(|p| p.pid() == busy.pid())
        .cloned()
        .unwrap();
    assert!(!busy_process.has_exited());
    busy.finish(true);
    until("every old instance stopped", || {
        (0..4).all(|n| spawner.process(n).has_exited())
    })
    .await;
    assert_eq!(pool.status(), status(4, 4, 4, 0));
    assert_eq!(spawner.attempts(), 8);
}

#[tokio::test]
async fn a_replacement_that_fails_leaves_the_old_instance_serving() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\ninstance_max_requests = 2");
    let lease = pool.acquire().await.unwrap();
    let pid = lease.pid();
    lease.finish(true);
    spawner.set_failing(true);
    pool.acquire().await.unwrap().finish(true);
    until("the replacement failed", || {
        spawner.attempts() == 2 && pool.status().starting == 0
    })
    .await;
    let lease = pool.acquire().await.unwrap();
    assert_eq!(lease.pid(), pid);
    spawner.set_failing(false);
    lease.finish(true);
    until("the old instance stopped", || {
        spawner.process(0).has_exited()
    })
    .await;
    assert_eq!(pool.status(), status(1, 1, 1, 0));
    assert_eq!(spawner.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn rapid_failures_take_the_app_offline_until_a_probe_serves() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 2\nrapid_fails_per_minute = 3");
    spawner.set_failing(true);
    for _ in 0..3 {
        let error = pool.acquire().await.unwrap_err();
        assert!(matches!(error, PoolError::Spawn { .. }), "{error}");
    }
    assert_eq!(pool.status(), status(2, 0, 0, 0));
    spawner.set_failing(false);
    let offline = offline_after(&pool, 3).await;
    assert_eq!(offline.retry_after(), Some(Duration::from_secs(60)));
    tokio::time::advance(Duration::from_secs(30)).await;
    let offline = pool.acquire().await.unwrap_err();
    assert_eq!(offline.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(spawner.attempts(), 3);

    // After the minute, one probe instance, and only one, until it serves.
    tokio::time::advance(Duration::from_secs(30)).await;
    let probe = pool.acquire().await.unwrap();
    let mut waiting = Box::pin(pool.acquire());
    assert!(poll_once(&mut waiting).await.is_pending());
    assert_eq!(pool.status(), status(2, 1, 0, 1));
    let pid = probe.pid();
    probe.finish(true);
    let lease = served(waiting).await.unwrap();
    assert_eq!(lease.pid(), pid);
    // Back in service: a second instance may start.
    let second = pool.acquire().await.unwrap();
    assert_ne!(second.pid(), pid);
    assert_eq!(spawner.attempts(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_takes_the_app_offline_for_another_minute() {
    let (pool, spawner, _runtime) = stand_in_pool("rapid_fails_per_minute = 2");
    spawner.set_failing(true);
    for _ in 0..2 {
        pool.acquire().await.unwrap_err();
    }
    tokio::time::advance(Duration::from_secs(45)).await;
    let offline = pool.acquire().await.unwrap_err();
    assert_eq!(offline.retry_after(), Some(Duration::from_secs(15)));
    tokio::time::advance(Duration::from_secs(15)).await;
    let error = pool.acquire().await.unwrap_err();
    assert!(matches!(error, PoolError::Spawn { .. }), "{error}");
    let offline = offline_after(&pool, 1).await;
    assert_eq!(offline.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(spawner.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn failures_older_than_a_minute_no_longer_count() {
    let (pool, spawner, _runtime) = stand_in_pool("rapid_fails_per_minute = 3");
    spawner.set_failing(true);
    for _ in 0..2 {
        pool.acquire().await.unwrap_err();
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..2 {
        let error = pool.acquire().await.unwrap_err();
        assert!(matches!(error, PoolError::Spawn { .. }), "{error}");
    }
    assert_eq!(pool.status(), status(4, 0, 0, 0));
    // The third within the minute takes the app offline.
    let error = pool.acquire().await.unwrap_err();
    assert!(matches!(error, PoolError::Spawn { .. }), "{error}");
    offline_after(&pool, 3).await;
    assert_eq!(spawner.attempts(), 5);
}

#[tokio::test(start_paused = true)]
async fn min_instances_are_kept_running() {
    let (pool, spawner, _runtime) =
        stand_in_pool("max_instances = 4\nmin_instances = 2\nidle_timeout = 10");
    pool.start();
    until("two spare instances", || pool.status().idle == 2).await;
    assert_eq!(pool.status(), status(4, 2, 2, 0));
    assert_eq!(spawner.attempts(), 2);

    // A failed instance is replaced at once.
    pool.acquire().await.unwrap().fail("stand-in failure");
    until("a replacement", || pool.status().idle == 2).await;
    let replaced = PoolStatus {
        bad_answers: 1,
        ..status(4, 2, 2, 0)
    };
    assert_eq!(pool.status(), replaced);
    assert_eq!(spawner.attempts(), 3);

    // Idle timeouts stop instances down to min_instances, not below.
    let mut leases = Vec::new();
    for _ in 0..3 {
        leases.push(pool.acquire().await.unwrap());
    }
    assert_eq!(spawner.attempts(), 4);
    for lease in leases {
        lease.finish(true);
    }
    assert_eq!(pool.status().live, 3);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(pool.status(), replaced);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(pool.status(), replaced);
    assert_eq!(spawner.attempts(), 4);
}

#[tokio::test]
async fn requests_that_left_the_queue_do_not_fill_it() {
    let (pool, _spawner, _runtime) = stand_in_pool("max_instances = 1\nqueue_length = 2");
    let lease = pool.acquire().await.unwrap();
    // Two clients queue, then go away (their futures are dropped).
    for _ in 0..2 {
        let mut gone = Box::pin(pool.acquire());
        assert!(poll_once(&mut gone).await.is_pending());
    }
    // The queue has room again for a client that stays.
    let mut staying = Box::pin(pool.acquire());
    assert!(
        poll_once(&mut staying).await.is_pending(),
        "a request was refused for a queue of clients that had left"
    );
    assert_eq!(pool.status().waiting, 1);
    lease.finish(true);
    served(staying).await.unwrap().finish(true);
}

/// Raw wait statuses for [`Process::die`].
const KILLED: i32 = 9;
const EXIT_1: i32 = 1 << 8;
const EXIT_0: i32 = 0;

#[tokio::test]
async fn a_process_dying_while_serving_is_a_request_crash_not_a_rapid_failure() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\nrapid_fails_per_minute = 2");
    for n in 0..5 {
        let lease = pool.acquire().await.unwrap();
        spawner.process(n).die(KILLED);
        let exit = lease.exit_within(Duration::from_secs(5)).await.unwrap();
        assert_eq!(exit.describe(), "killed by SIGKILL");
        lease.crash(exit);
    }
    let status = pool.status();
    assert_eq!((status.request_crashes, status.live), (5, 0));
    // Never offline: the next request gets a fresh instance.
    pool.acquire().await.unwrap().finish(true);
    assert_eq!(spawner.attempts(), 6);
}

#[tokio::test]
async fn a_process_dying_while_idle_counts_for_rapid_fail() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\nrapid_fails_per_minute = 2");
    for n in 0..2 {
        pool.acquire().await.unwrap().finish(true);
        spawner.process(n).die(KILLED);
        until("the dead idle instance is dropped", || {
            pool.status().live == 0
        })
        .await;
    }
    offline_after(&pool, 2).await;
}

#[tokio::test]
async fn an_exit_after_the_answer_is_judged_when_the_request_ends() {
    // The bridge of an app that cannot be imported answers, then exits 1:
    // the exit may be reaped before the request ends. No request was in
    // flight any more, so it counts, once.
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\nrapid_fails_per_minute = 1");
    let lease = pool.acquire().await.unwrap();
    let process = spawner.process(0);
    process.die(EXIT_1);
    until("the exit is reaped", || process.has_exited()).await;
    lease.finish(true);
    assert_eq!(pool.status().live, 0);
    offline_after(&pool, 1).await;
}

#[tokio::test]
async fn a_clean_exit_after_serving_is_no_failure() {
    // php-cgi leaving after PHP_FCGI_MAX_REQUESTS, while idle or just as
    // its last request ends.
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\nrapid_fails_per_minute = 1");
    pool.acquire().await.unwrap().finish(true);
    spawner.process(0).die(EXIT_0);
    until("the idle instance is dropped", || pool.status().live == 0).await;
    let lease = pool.acquire().await.unwrap();
    lease.finish(true);
    let lease = pool.acquire().await.unwrap();
    let process = spawner.process(1);
    process.die(EXIT_0);
    until("the exit is reaped", || process.has_exited()).await;
    lease.finish(true);
    pool.acquire().await.unwrap().finish(true);
    assert_eq!(spawner.attempts(), 3);
}

#[tokio::test]
async fn a_bad_answer_replaces_the_instance_without_counting_for_rapid_fail() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\nrapid_fails_per_minute = 1");
    for _ in 0..3 {
        pool.acquire().await.unwrap().fail("stand-in: garbage");
    }
    pool.acquire().await.unwrap().finish(true);
    assert_eq!(pool.status().bad_answers, 3);
    assert_eq!(spawner.attempts(), 4);
}

#[tokio::test]
async fn a_discarded_instance_that_died_idle_counts_once() {
    // Found gone when the request was about to be written: it died with no
    // request in flight, which the supervisor may report before or after.
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1\nrapid_fails_per_minute = 2");
    pool.acquire().await.unwrap().finish(true);
    let lease = pool.acquire().await.unwrap();
    let process = spawner.process(0);
    process.die(KILLED);
    until("the exit is reaped", || process.has_exited()).await;
    lease.discard();
    // One failure so far: the limit of 2 is not reached.
    pool.acquire().await.unwrap().finish(true);
    spawner.process(1).die(KILLED);
    until("the dead idle instance is dropped", || {
        pool.status().live == 0
    })
    .await;
    offline_after(&pool, 2).await;
}

/// Past the hold-off after which the pool starts a process for requests
/// waiting on busy instances (tests with paused time).
async fn after_hold_off() {
    tokio::time::sleep(super::start::START_HOLD_OFF + Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn each_request_has_its_own_hold_off_before_a_start() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 2");
    let busy = pool.acquire().await.unwrap();
    // A first request waits, and is served by the busy instance 60 ms on.
    let mut first = Box::pin(pool.acquire());
    assert!(poll_once(&mut first).await.is_pending());
    tokio::time::sleep(Duration::from_millis(60)).await;
    busy.finish(true);
    let busy = served(first).await.unwrap();
    // The next comes 35 ms later, 5 ms before the first one's hold-off ends.
    tokio::time::sleep(Duration::from_millis(35)).await;
    let mut second = Box::pin(pool.acquire());
    assert!(poll_once(&mut second).await.is_pending());
    tokio::time::sleep(Duration::from_millis(10)).await;
    until("timers ran", || true).await;
    assert_eq!(
        spawner.attempts(),
        1,
        "a start for a request that waited 10 ms"
    );
    // Still waiting after its own hold-off: now a process is started.
    after_hold_off().await;
    until("a start for the queue", || spawner.attempts() == 2).await;
    served(second).await.unwrap().finish(true);
    busy.finish(true);
}

#[tokio::test(start_paused = true)]
async fn an_instance_freed_before_a_new_one_is_ready_serves_the_queue() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 2");
    let busy = pool.acquire().await.unwrap();
    let old = busy.pid();
    let gate = spawner.slow();
    let mut waiting = Box::pin(pool.acquire());
    assert!(poll_once(&mut waiting).await.is_pending());
    after_hold_off().await;
    until("a start for the queue", || spawner.attempts() == 2).await;
    assert_eq!(pool.status(), starting(1, status(2, 2, 0, 1)));
    // The busy instance frees first: the request takes it at once.
    busy.finish(true);
    let Poll::Ready(Ok(lease)) = poll_once(&mut waiting).await else {
        panic!("the request waited for the process still starting");
    };
    assert_eq!(lease.pid(), old);
    // The new process, once ready, becomes idle.
    gate.add_permits(1);
    until("the new instance is idle", || pool.status().idle == 1).await;
    assert_eq!(pool.status(), status(2, 2, 1, 0));
    lease.finish(true);
    assert_eq!(pool.status(), status(2, 2, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_process_ready_first_serves_the_head_of_the_queue() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 2");
    let busy = pool.acquire().await.unwrap();
    let gate = spawner.slow();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut requests = Vec::new();
    for n in 1..=2 {
        let (pool2, order) = (pool.clone(), order.clone());
        requests.push(tokio::spawn(async move {
            let lease = pool2.acquire().await.unwrap();
            order.lock().unwrap().push((n, lease.pid()));
            lease
        }));
        until("the request is queued", || pool.status().waiting == n).await;
    }
    after_hold_off().await;
    // One slot left below max_instances: one start for the two requests.
    until("a start for the queue", || spawner.attempts() == 2).await;
    gate.add_permits(1);
    let first = served(requests.remove(0)).await.unwrap();
    assert_ne!(first.pid(), busy.pid());
    assert_eq!(pool.status(), status(2, 2, 0, 1));
    busy.finish(true);
    let second = served(requests.remove(0)).await.unwrap();
    let pids: Vec<_> = order.lock().unwrap().clone();
    assert_eq!(pids, [(1, first.pid()), (2, second.pid())]);
    assert_eq!(spawner.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_background_start_leaves_the_queue_to_running_instances() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 2\nrapid_fails_per_minute = 2");
    let busy = pool.acquire().await.unwrap();
    let old = busy.pid();
    spawner.set_failing(true);
    let mut waiting = Box::pin(pool.acquire());
    assert!(poll_once(&mut waiting).await.is_pending());
    after_hold_off().await;
    until("the start failed", || {
        spawner.attempts() == 2 && pool.status().live == 1
    })
    .await;
    // The request still waits, for the instance that is running, and no
    // new start is tried in a loop.
    assert!(poll_once(&mut waiting).await.is_pending());
    after_hold_off().await;
    assert_eq!(spawner.attempts(), 2);
    assert_eq!(pool.status(), status(2, 1, 0, 1));
    busy.finish(true);
    let lease = served(waiting).await.unwrap();
    assert_eq!(lease.pid(), old);
    // The failure counted for rapid-fail protection: a second one within
    // the minute takes the app offline.
    let mut next = Box::pin(pool.acquire());
    assert!(poll_once(&mut next).await.is_pending());
    after_hold_off().await;
    let offline = served(next).await.unwrap_err();
    assert!(
        matches!(offline, PoolError::Offline { failures: 2, .. }),
        "{offline}"
    );
    assert_eq!(spawner.attempts(), 3);
    lease.finish(true);
    assert_eq!(pool.status(), status(2, 1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_request_leaving_while_a_start_is_in_flight_leaks_no_slot() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 2");
    let busy = pool.acquire().await.unwrap();
    // Gone before the hold-off: nothing is started.
    let mut gone = Box::pin(pool.acquire());
    assert!(poll_once(&mut gone).await.is_pending());
    drop(gone);
    after_hold_off().await;
    assert_eq!(spawner.attempts(), 1);
    assert_eq!(pool.status(), status(2, 1, 0, 0));
    // Gone while the start is in flight: the process becomes idle.
    let gate = spawner.slow();
    let mut gone = Box::pin(pool.acquire());
    assert!(poll_once(&mut gone).await.is_pending());
    after_hold_off().await;
    until("a start for the queue", || spawner.attempts() == 2).await;
    drop(gone);
    assert_eq!(pool.status(), starting(1, status(2, 2, 0, 0)));
    gate.add_permits(1);
    until("the new instance is idle", || pool.status().idle == 1).await;
    busy.finish(true);
    assert_eq!(pool.status(), status(2, 2, 2, 0));
    // Both serve again; nothing else is started.
    let (a, b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    assert_ne!(a.pid(), b.pid());
    assert_eq!(spawner.attempts(), 2);
}

#[tokio::test]
async fn with_nothing_running_a_start_begins_at_once() {
    // Cold: no instance could free up, so no hold-off (real time: a
    // hold-off would make this test wait).
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 2");
    let lease = tokio::time::timeout(Duration::from_millis(50), pool.acquire())
        .await
        .expect("a cold request waited for the hold-off")
        .unwrap();
    lease.finish(true);
    assert_eq!(spawner.attempts(), 1);
}

#[test]
fn instances_get_recycle_points_spread_over_a_tenth() {
    let points: Vec<u64> = (0..200).map(|_| super::recycle::jittered(200)).collect();
    assert!(
        points.iter().all(|&p| (180..=200).contains(&p)),
        "{points:?}"
    );
    let distinct: std::collections::HashSet<_> = points.iter().collect();
    assert!(
        distinct.len() >= 5,
        "instances would still recycle together: {distinct:?}"
    );
    // Small limits are kept exactly (nothing to spread).
    assert_eq!(super::recycle::jittered(5), 5);
}

/// A reload runs an app's old and new pools side by side in one socket
/// folder: their instances must never be given the same id (the socket's
/// name), or one pool's start could connect to the other's process.
#[tokio::test]
async fn instance_ids_are_unique_across_pools_of_an_app() {
    let (old, old_spawner, _a) = stand_in_pool("max_instances = 1\nmin_instances = 1");
    let (new, new_spawner, _b) = stand_in_pool("max_instances = 1\nmin_instances = 1");
    old.start();
    new.start();
    until("both started", || {
        old.status().idle == 1 && new.status().idle == 1
    })
    .await;
    assert_ne!(
        old_spawner.process(0).pid(),
        new_spawner.process(0).pid(),
        "the same instance id twice"
    );
}

#[tokio::test(start_paused = true)]
async fn offline_by_hand_refuses_until_online_and_online_ends_a_rapid_fail_pause() {
    let (pool, spawner, _runtime) = stand_in_pool("rapid_fails_per_minute = 2");
    let lease = pool.acquire().await.unwrap();
    let pid = lease.pid();
    lease.finish(true);
    assert!(pool.set_online(false));
    assert!(!pool.set_online(false), "offline already");
    let error = pool.acquire().await.unwrap_err();
    assert!(matches!(error, PoolError::TakenOffline), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    assert!(matches!(
        pool.snapshot().offline,
        Some(Offline::Manual { .. })
    ));
    // No process was stopped: the idle one serves as soon as it is back.
    assert!(pool.set_online(true));
    assert_eq!(pool.acquire().await.unwrap().pid(), pid);

    // A rapid-fail pause ends at once too, with no probe.
    spawner.set_failing(true);
    tokio::time::advance(Duration::from_secs(1)).await;
    let _ = pool.acquire().await;
    let _ = pool.acquire().await;
    let error = pool.acquire().await.unwrap_err();
    assert!(matches!(error, PoolError::Offline { .. }), "{error}");
    let snapshot = pool.snapshot();
    assert!(matches!(snapshot.offline, Some(Offline::RapidFails { .. })));
    assert_eq!(snapshot.rapid_fails_total, 2);
    spawner.set_failing(false);
    assert!(pool.set_online(true));
    assert!(pool.snapshot().offline.is_none());
    pool.acquire().await.unwrap().finish(true);
}

/// The pool's record of how its processes ended.
fn exits(pool: &Pool) -> Vec<(&'static str, u64)> {
    pool.snapshot()
        .exits
        .iter()
        .map(|(reason, n)| (reason.as_str(), *n))
        .collect()
}

#[tokio::test]
async fn each_exit_is_recorded_with_why_it_happened_and_the_last_one_kept() {
    let (pool, spawner, _runtime) = stand_in_pool("max_instances = 1");
    // A timeout: the exchange terminates the instance.
    pool.acquire().await.unwrap().terminate("request_timeout");
    until("reaped", || spawner.process(0).has_exited()).await;
    // A request crash: it dies on its own while serving.
    let lease = pool.acquire().await.unwrap();
    let process = spawner.process(1);
    process.die(KILLED);
    until("reaped", || process.has_exited()).await;
    lease.crash(process.exit().unwrap());
    // A bad answer.
    pool.acquire().await.unwrap().fail("stand-in: garbage");
    until("reaped", || spawner.process(2).has_exited()).await;
    assert_eq!(
        exits(&pool),
        [("request_timeout", 1), ("crashed", 1), ("bad_answer", 1)]
    );
    let snapshot = pool.snapshot();
    let last = snapshot.last_exit.unwrap();
    assert_eq!(
        (last.pid, last.reason),
        (spawner.process(2).pid(), ExitReason::BadAnswer)
    );
    assert_eq!(snapshot.spawns, 3);
}

#[tokio::test]
async fn a_busy_instance_shows_its_request_until_the_lease_lets_go() {
    let (pool, _spawner, _runtime) = stand_in_pool("max_instances = 1");
    let lease = pool.acquire().await.unwrap();
    lease.serving(CurrentRequest {
        method: http::Method::POST,
        uri: Arc::from("/upload.php?x=1"),
        client: Arc::from("192.0.2.7:40000"),
        since: tokio::time::Instant::now(),
    });
    let snapshot = pool.snapshot();
    let current = snapshot.instances[0].current.as_ref().unwrap();
    assert_eq!(
        (current.method.as_str(), &*current.uri),
        ("POST", "/upload.php?x=1")
    );
    lease.finish(true);
    let snapshot = pool.snapshot();
    assert_eq!(snapshot.instances[0].state, InstanceState::Idle);
    assert!(snapshot.instances[0].current.is_none());
    // The next lease of the same process starts with none.
    let lease = pool.acquire().await.unwrap();
    assert!(pool.snapshot().instances[0].current.is_none());
    lease.finish(true);
}
