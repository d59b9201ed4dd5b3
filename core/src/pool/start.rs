//! Background starts: the pool, not a request, decides when a process is
//! started, and a process that becomes ready serves whoever is at the head
//! of the queue then (or becomes idle). First free wins: a waiting request
//! takes the first instance that frees up, old or new, as php-fpm's
//! children do by accepting from one socket.
//!
//! A start is wanted when requests wait beyond the starts already in
//! flight and the pool is below its limit. With nothing running, it begins
//! at once (nobody else can serve). With instances running, it begins only
//! for requests that have waited [`START_HOLD_OFF`] each: a busy
//! instance that finishes within that time serves them, and sequential
//! requests that arrive while the previous one is finishing never start a
//! process they do not need.
//!
//! This file decides and runs starts; how a process is started is
//! `spawn.rs`/`process.rs`, and the slot accounting rules are the pool's.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info};

use super::{Grant, Inner, Instance, PoolError, Process, StartError, State, Tracked};

/// How long requests wait for a running instance to free up before the
/// pool starts another process for them (when one is running already).
/// Short next to a process start (a Django import takes a second), long
/// next to the tail of a request (a framework's work after its answer).
pub(super) const START_HOLD_OFF: Duration = Duration::from_millis(100);

impl Inner {
    /// Requests waiting that no start in flight will serve.
    fn unmet_demand(st: &State) -> usize {
        let waiting = st.waiters.iter().filter(|w| !w.is_closed()).count();
        waiting.saturating_sub(st.starting as usize)
    }

    /// The queue or the pool changed: starts processes for waiting requests
    /// now if nothing is running, or after [`START_HOLD_OFF`] otherwise.
    pub(super) fn demand_changed(self: &Arc<Self>, st: &mut State) {
        // The queue is scanned last: a pool at its limit (the busy case,
        // where every request queues) never pays for it.
        if st.closed || st.offline_until.is_some() || st.live >= self.spawn_limit(st) {
            return;
        }
        if Self::unmet_demand(st) == 0 {
            return;
        }
        if st.live == st.starting {
            self.start_for_waiters(st);
        } else if !st.start_scheduled {
            st.start_scheduled = true;
            tokio::spawn(start_after_hold_off(Arc::downgrade(self)));
        }
    }

    /// Starts one process per waiting request not yet covered by a start
    /// in flight, within the limit.
    pub(super) fn start_for_waiters(self: &Arc<Self>, st: &mut State) {
        self.start_up_to(st, Self::unmet_demand(st));
    }

    /// Starts up to `wanted` processes, within the limit.
    fn start_up_to(self: &Arc<Self>, st: &mut State, mut wanted: usize) {
        if st.closed || st.offline_until.is_some() {
            return;
        }
        while wanted > 0 && st.live < self.spawn_limit(st) {
            self.start_in_background(st);
            wanted -= 1;
        }
    }

    /// Starts processes for the requests that have waited
    /// [`START_HOLD_OFF`] and that no start in flight will serve. Returns
    /// when to look again, while others wait less and the pool has room.
    fn start_for_overdue(self: &Arc<Self>, st: &mut State) -> Option<Instant> {
        if st.closed || st.offline_until.is_some() {
            return None;
        }
        let now = Instant::now();
        let mut overdue: usize = 0;
        let mut next: Option<Instant> = None;
        for waiter in st.waiters.iter().filter(|w| !w.is_closed()) {
            let due = waiter.since + START_HOLD_OFF;
            if due <= now {
                overdue += 1;
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        self.start_up_to(st, overdue.saturating_sub(st.starting as usize));
        next.filter(|_| st.live < self.spawn_limit(st))
    }

    /// Reserves a slot and starts a process in it on its own task. No
    /// request is bound to it: once ready it goes to the head of the queue
    /// then, or becomes idle.
    pub(super) fn start_in_background(self: &Arc<Self>, st: &mut State) {
        self.start_slot(st, None);
    }

    /// [`start_in_background`](Self::start_in_background), for a process
    /// that replaces instance `replaces` when it is ready.
    pub(super) fn start_slot(self: &Arc<Self>, st: &mut State, replaces: Option<u64>) {
        if self.spec.is_err() {
            return;
        }
        st.live += 1;
        st.starting += 1;
        if replaces.is_some() {
            st.replacements_starting += 1;
        }
        let slot = StartSlot {
            inner: self.clone(),
            replaces,
            done: false,
        };
        tokio::spawn(slot.run());
    }

    /// A process of a start is running (not ready yet): it is recorded so
    /// that shutdown stops it too, and stopped at once if the pool closed
    /// while it was being spawned.
    fn track(&self, id: u64, process: &Process) {
        let mut st = self.lock();
        let generation = st.generation;
        st.processes.insert(
            id,
            Tracked {
                process: process.clone(),
                generation,
                ready: false,
                retired: false,
                started: Instant::now(),
                stop_reason: None,
            },
        );
        st.record.spawns += 1;
        if st.closed {
            process.terminate(Duration::ZERO);
        }
    }

    /// Starts a process; the caller holds its slot.
    async fn start_process(self: &Arc<Self>) -> Result<Instance, StartError> {
        let spec = match &self.spec {
            Ok(spec) => spec,
            Err(reason) => return Err(std::io::Error::other(reason.clone()).into()),
        };
        let id = super::NEXT_INSTANCE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let weak = Arc::downgrade(self);
        let tracker = weak.clone();
        let (process, conn) = self
            .spawner
            .spawn(
                spec,
                id,
                Box::new(move |process: &Process| {
                    if let Some(inner) = tracker.upgrade() {
                        inner.track(id, process);
                    }
                }),
                Box::new(move |exit| super::on_exit(&weak, id, exit)),
            )
            .await?;
        if let Some(exit) = process.exit() {
            // It accepted, then died at once: still a start that failed.
            return Err(StartError::Exited {
                pid: process.pid(),
                how: exit.describe(),
            });
        }
        Ok(Instance {
            id,
            process,
            conn,
            served: 0,
            replace_at: super::recycle::jittered(self.max_requests),
            generation: 0,
            idle_since: Instant::now(),
        })
    }

    /// A process is ready (under the lock): it is recorded, then serves the
    /// head of the queue or becomes idle.
    fn start_succeeded(
        self: &Arc<Self>,
        st: &mut State,
        mut instance: Instance,
        replaces: Option<u64>,
    ) {
        if st.closed {
            instance.process.terminate(std::time::Duration::ZERO);
            st.live -= 1;
            return;
        }
        // From here on its exit is judged by `on_exit` (or by the request
        // holding it); before, as a failed start. It belongs to the
        // generation it was spawned in: a change while it started may
        // have come too late for it.
        instance.generation = st.generation;
        if let Some(tracked) = st.processes.get_mut(&instance.id) {
            tracked.ready = true;
            instance.generation = tracked.generation;
        }
        info!(app = %self.name, pid = instance.process.pid(), live = st.live, "instance started");
        self.hand_over(st, Grant::Instance(instance));
        if let Some(old) = replaces {
            self.replacement_ready(st, old);
        }
    }

    /// A start failed (under the lock): it counts for rapid-fail
    /// protection and its slot is given back. The head of the queue fails
    /// with it only when nothing else is running or starting that could
    /// serve it; otherwise it keeps waiting for a running instance, and no
    /// new start is tried until demand changes again (no retry loop).
    fn start_failed(self: &Arc<Self>, st: &mut State, source: StartError, replaces: Option<u64>) {
        st.live -= 1;
        if let Some(old) = replaces {
            // The old instance keeps serving; it is tried again later.
            st.replacing.remove(&old);
        }
        if st.closed {
            // Stopped by the shutdown while it started: not a failure.
            debug!(app = %self.name, error = %source, "a start ended by the shutdown");
            return;
        }
        if let Ok(spec) = &self.spec {
            error!(app = %self.name, program = %spec.program.display(), error = %source, "could not start a process");
        }
        let what = format!("could not start a process: {source}");
        let running = st.live - st.starting;
        let fail_head = running == 0 && Self::unmet_demand(st) > 0;
        if fail_head {
            // Before the failure is recorded: the request whose start it
            // was learns why (a bad gateway), the others that it went
            // offline, if it did.
            let mut grant = Grant::Failed(PoolError::Spawn { source });
            while let Some(waiter) = st.waiters.pop_front() {
                match waiter.send(grant) {
                    Ok(()) => break,
                    Err(returned) => grant = returned,
                }
            }
        }
        self.record_failure(st, None, &what);
        if fail_head {
            // The next request's own attempt, as if it had been alone.
            self.demand_changed(st);
        } else if st.waiters.is_empty() {
            self.keep_min_instances(st);
        }
    }

    /// Starts a spare process when fewer than `min_instances` exist.
    pub(super) fn keep_min_instances(self: &Arc<Self>, st: &mut State) {
        if !st.closed && st.offline_until.is_none() && st.live < self.min_instances {
            self.start_in_background(st);
        }
    }
}

/// The slot of a start in flight. It is given back exactly once: by the
/// start's outcome, or, if the task is dropped before (runtime stopping),
/// by its drop.
struct StartSlot {
    inner: Arc<Inner>,
    /// The instance this start replaces, if it is a replacement.
    replaces: Option<u64>,
    done: bool,
}

impl StartSlot {
    async fn run(mut self) {
        let started = self.inner.start_process().await;
        let inner = self.inner.clone();
        let mut st = inner.lock();
        self.end(&mut st);
        match started {
            Ok(instance) => inner.start_succeeded(&mut st, instance, self.replaces),
            Err(source) => inner.start_failed(&mut st, source, self.replaces),
        }
    }

    /// The start is over (under the lock): it no longer counts as starting.
    fn end(&mut self, st: &mut State) {
        st.starting -= 1;
        if self.replaces.is_some() {
            st.replacements_starting -= 1;
        }
        self.done = true;
    }
}

impl Drop for StartSlot {
    fn drop(&mut self) {
        if !self.done {
            let inner = self.inner.clone();
            let mut st = inner.lock();
            self.end(&mut st);
            st.live -= 1;
            if let Some(old) = self.replaces {
                st.replacing.remove(&old);
            }
        }
    }
}

/// Starts processes for the requests still waiting after the hold-off,
/// each request's own: one that came in just before the timer fires has
/// its own hold-off before a process is started for it.
async fn start_after_hold_off(pool: Weak<Inner>) {
    let mut at = Instant::now() + START_HOLD_OFF;
    loop {
        tokio::time::sleep_until(at).await;
        let Some(inner) = pool.upgrade() else { return };
        let mut st = inner.lock();
        match inner.start_for_overdue(&mut st) {
            Some(next) => at = next,
            None => {
                st.start_scheduled = false;
                return;
            }
        }
    }
}
