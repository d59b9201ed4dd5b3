//! Recycling without a gap: an instance that is due for replacement (it
//! reached its recycle point, or the pool was recycled after a
//! `monitor_changes_to` change) gets its replacement started first and
//! keeps serving until the replacement is ready; only then is it retired
//! (at once if idle, after its request if busy). Capacity never drops
//! below what is in use, and a recycle rolls through the pool a few
//! instances at a time instead of stopping them all.
//!
//! Recycle points are staggered: each instance's is `instance_max_requests`
//! less a random part of up to a tenth, so instances started together do
//! not come due together. An instance never serves past the program's own
//! limit (php-cgi's `PHP_FCGI_MAX_REQUESTS`): there it is retired whether
//! or not its replacement is ready.
//!
//! A replacement takes a slot above the pool's limit while it starts (a
//! surge, at most a quarter of the running instances, at least one), so
//! that it never waits for one of the instances it is to replace. A
//! replacement that fails to start counts for rapid-fail protection like
//! any failed start; the old instance keeps serving and is tried again
//! after its next request.
//!
//! An instance whose memory went over `instance_max_memory` (uWSGI's
//! reload-on-rss) is due at once, after the request during which it did.
//! What counts is its peak resident size (`VmHWM`), not the size after the
//! request (`VmRSS`): php-cgi gives a request's memory back to the kernel
//! when the request ends, so a script that took 200 MiB leaves an RSS
//! that looks small; the peak says what the process needed, and an
//! interpreter that keeps what it took (Python) shows it in both.
//!
//! This file decides what is due and when replacements start; the slot
//! accounting and the starts themselves are the pool's (`mod.rs`,
//! `start.rs`).

use std::sync::Arc;

use tracing::{info, warn};

use super::{Inner, Instance, Process, State, inspect};

/// A process the pool started and has not reaped yet.
pub(super) struct Tracked {
    pub(super) process: Process,
    /// The pool generation it was spawned in.
    pub(super) generation: u64,
    /// It accepted its connection: an instance (before, a start whose
    /// failure the start itself judges).
    pub(super) ready: bool,
    /// It was told to stop (it may still be exiting).
    pub(super) retired: bool,
    /// When it was spawned (its uptime on the status page).
    pub(super) started: tokio::time::Instant,
    /// Why the gateway stopped it, when it did (see `status.rs`).
    pub(super) stop_reason: Option<super::ExitReason>,
}

/// Where the replacement of a due instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replacing {
    /// Being started; the old instance serves meanwhile.
    Starting,
    /// Ready and serving: the old instance is retired after its request.
    Ready,
}

impl Inner {
    /// Whether `instance` is due for replacement: it reached its recycle
    /// point, or it is older than the last recycle of the pool.
    pub(super) fn is_due(&self, st: &State, instance: &Instance) -> bool {
        instance.served >= instance.replace_at || instance.generation != st.generation
    }

    /// After a request, with `instance_max_memory` set: an instance whose
    /// peak resident memory went over it becomes due (its recycle point is
    /// now), and is replaced like any due instance. Reads /proc only when
    /// the key is set; once due, not again.
    pub(super) fn check_memory(&self, instance: &mut Instance) {
        let Some(limit) = self.max_memory_kib else {
            return;
        };
        if instance.served >= instance.replace_at {
            return;
        }
        let pid = instance.process.pid();
        let Some(memory) = inspect::memory(pid) else {
            return;
        };
        if memory.peak_kib > limit {
            warn!(
                app = %self.name,
                pid,
                peak_rss_kib = memory.peak_kib,
                rss_kib = memory.rss_kib,
                limit_kib = limit,
                requests = instance.served,
                "instance went over instance_max_memory ({} MiB of peak resident memory, limit {} MiB); recycling it (its replacement starts first)",
                memory.peak_kib / 1024,
                limit / 1024
            );
            instance.replace_at = instance.served;
        }
    }

    /// Starts the replacement of instance `id` unless one is under way or
    /// the surge allowance is used up (it is then tried again later).
    pub(super) fn replace(self: &Arc<Self>, st: &mut State, id: u64) -> bool {
        if st.closed || st.offline_until.is_some() || st.replacing.contains_key(&id) {
            return false;
        }
        let running = st.live - st.starting;
        let surge = running.div_ceil(4).max(1);
        if st.replacements_starting >= surge {
            return false;
        }
        st.replacing.insert(id, Replacing::Starting);
        self.start_slot(st, Some(id));
        true
    }

    /// Recycles the pool: every instance running now is due, and they are
    /// replaced a few at a time, each serving until its replacement is
    /// ready.
    pub(super) fn recycle(self: &Arc<Self>, reason: &str) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.generation += 1;
        st.rolling = true;
        let running = st.live - st.starting;
        info!(app = %self.name, reason, running, "recycling every instance, each replaced before it stops");
        self.roll(&mut st);
        self.check_roll_done(&mut st);
    }

    /// Starts replacements for due instances within the surge allowance:
    /// idle ones first (their served counts are known), then busy ones
    /// older than the last recycle.
    pub(super) fn roll(self: &Arc<Self>, st: &mut State) {
        let idle_due: Vec<u64> = st
            .idle
            .iter()
            .filter(|i| self.is_due(st, i))
            .map(|i| i.id)
            .collect();
        let old_busy: Vec<u64> = st
            .processes
            .iter()
            .filter(|(id, t)| {
                t.ready && !t.retired && t.generation != st.generation && !idle_due.contains(id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in idle_due.into_iter().chain(old_busy) {
            if st.replacing.contains_key(&id) {
                continue;
            }
            if !self.replace(st, id) {
                break;
            }
        }
    }

    /// The replacement of instance `old` is ready (it was handed over
    /// already): `old` is retired now if idle, else after its request;
    /// then the roll goes on.
    pub(super) fn replacement_ready(self: &Arc<Self>, st: &mut State, old: u64) {
        if let Some(pos) = st.idle.iter().position(|i| i.id == old) {
            let instance = st.idle.remove(pos);
            info!(app = %self.name, pid = instance.process.pid(), requests = instance.served, "its replacement is ready; retiring idle instance");
            Self::note_stop(st, instance.id, super::ExitReason::Recycled);
            self.retire(st, instance);
        } else if let Some(state) = st.replacing.get_mut(&old) {
            *state = Replacing::Ready;
        }
        self.roll(st);
    }

    /// Process `id` was reaped: it needs no replacement any more, and the
    /// recycle may be complete.
    pub(super) fn note_gone(&self, st: &mut State, id: u64) {
        st.replacing.remove(&id);
        self.check_roll_done(st);
    }

    /// Says when a recycle has rolled through the whole pool: no process
    /// older than it is left.
    fn check_roll_done(&self, st: &mut State) {
        if st.rolling && st.processes.values().all(|t| t.generation == st.generation) {
            st.rolling = false;
            info!(app = %self.name, "recycle complete: every instance started after it");
        }
    }
}

/// A recycle point for a new instance: `max_requests` less a random part of
/// up to a tenth of it (like gunicorn's `max_requests_jitter`), never more.
pub(super) fn jittered(max_requests: u64) -> u64 {
    use std::hash::BuildHasher;
    let spread = max_requests / 10;
    if spread == 0 {
        return max_requests;
    }
    let random = std::collections::hash_map::RandomState::new().hash_one(max_requests);
    max_requests - random % (spread + 1)
}
