//! What the pool shows of itself to an operator (the admin listener's
//! `/status` and `/metrics`): its counters, whether it is offline and why,
//! each process with its state, uptime and current request, and how its
//! processes ended. A snapshot taken under the pool's lock in one pass;
//! nothing here changes the pool but the exit records (`record_exit`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Exit, Inner, Pool, PoolStatus, Process, State};
use crate::pool::recycle::Tracked;

/// Where one process of the pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Spawned, not accepting its connection yet.
    Starting,
    /// Ready and waiting for a request.
    Idle,
    /// Serving a request.
    Busy,
    /// Told to stop (recycled, timed out, idle too long), not reaped yet.
    Stopping,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Idle => "idle",
            InstanceState::Busy => "busy",
            InstanceState::Stopping => "stopping",
        }
    }
}

/// Why a process ended: the one list, for `/status` and the
/// `fastgate_process_exits_total{reason}` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExitReason {
    /// Replaced: `instance_max_requests`, PHP_FCGI_MAX_REQUESTS, a
    /// `monitor_changes_to` change or a recycle asked on the admin listener.
    Recycled,
    /// Idle longer than `idle_timeout`.
    IdleTimeout,
    /// Stopped after `request_timeout`.
    RequestTimeout,
    /// Stopped after `activity_timeout`.
    ActivityTimeout,
    /// Stopped for writing to stderr (`stderr_mode = terminate-process`).
    Stderr,
    /// Died on its own with a failure status or a signal.
    Crashed,
    /// Broke the protocol or sent a malformed head, and was stopped.
    BadAnswer,
    /// Its request was abandoned midway (the connection's state unknown).
    Abandoned,
    /// Left cleanly on its own (php-cgi after PHP_FCGI_MAX_REQUESTS).
    Exited,
    /// Ended before it accepted its connection.
    StartFailed,
    /// Stopped with the gateway.
    Shutdown,
    /// Stopped by the gateway for another reason (its connection was gone).
    Stopped,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Recycled => "recycled",
            ExitReason::IdleTimeout => "idle_timeout",
            ExitReason::RequestTimeout => "request_timeout",
            ExitReason::ActivityTimeout => "activity_timeout",
            ExitReason::Stderr => "stderr",
            ExitReason::Crashed => "crashed",
            ExitReason::BadAnswer => "bad_answer",
            ExitReason::Abandoned => "abandoned",
            ExitReason::Exited => "exited",
            ExitReason::StartFailed => "start_failed",
            ExitReason::Shutdown => "shutdown",
            ExitReason::Stopped => "stopped",
        }
    }

    /// The reason of a stop the exchange asked for, by the name of what
    /// ran out (`request_timeout`, `activity_timeout`) or stderr.
    pub(super) fn of_termination(why: &str) -> ExitReason {
        match why {
            "request_timeout" => ExitReason::RequestTimeout,
            "activity_timeout" => ExitReason::ActivityTimeout,
            _ => ExitReason::Stderr,
        }
    }
}

/// The request a busy process serves, as its lease recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRequest {
    pub method: http::Method,
    pub uri: Arc<str>,
    /// The client's address (`ip:port`).
    pub client: Arc<str>,
    pub since: Instant,
}

/// How the last process of a pool ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastExit {
    pub pid: u32,
    pub reason: ExitReason,
    /// "exit status 0", "killed by SIGKILL".
    pub status: String,
    pub at: SystemTime,
}

/// One process of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub pid: u32,
    pub state: InstanceState,
    /// Requests it completed.
    pub requests: u64,
    /// Resident memory, from /proc (`None` once it is gone).
    pub rss_kib: Option<u64>,
    /// Since it was spawned.
    pub uptime: Duration,
    /// What it serves now (busy processes).
    pub current: Option<CurrentRequest>,
}

/// Why a pool refuses requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offline {
    /// Taken offline on the admin listener, at that time; until it is
    /// brought back.
    Manual { since: SystemTime },
    /// After `rapid_fails_per_minute` failures, until then.
    RapidFails { until: SystemTime },
}

/// A pool as an operator sees it.
#[derive(Debug, Clone)]
pub struct PoolSnapshot {
    pub status: PoolStatus,
    pub offline: Option<Offline>,
    /// `max_instances = 0`: the limit moves with automatic sizing.
    pub automatic: bool,
    /// The most requests seen waiting at once since the start.
    pub most_waiting: usize,
    /// Failures counted for rapid-fail protection: within the last minute,
    /// and since the start.
    pub rapid_fails_last_minute: usize,
    pub rapid_fails_total: u64,
    /// Processes spawned since the start.
    pub spawns: u64,
    /// Processes reaped since the start, by why they ended.
    pub exits: BTreeMap<ExitReason, u64>,
    pub last_exit: Option<LastExit>,
    /// Every process not yet reaped, by pid.
    pub instances: Vec<InstanceInfo>,
}

/// What the pool records of its processes' lives, beside its own state.
#[derive(Debug, Default)]
pub(super) struct Record {
    pub(super) rapid_fails_total: u64,
    pub(super) spawns: u64,
    pub(super) exits: BTreeMap<ExitReason, u64>,
    pub(super) last_exit: Option<LastExit>,
}

/// A process's resident set size: `VmRSS` of /proc/PID/status (in kB,
/// whatever the page size).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Inner {
    /// Says why process `id` is being stopped, for its exit record (the
    /// first reason given wins: the cause, not the clean-up after it).
    pub(super) fn note_stop(st: &mut State, id: u64, reason: ExitReason) {
        if let Some(tracked) = st.processes.get_mut(&id) {
            tracked.stop_reason.get_or_insert(reason);
        }
    }

    /// A process was reaped (under the lock): counted by reason, and
    /// remembered as the pool's last exit.
    pub(super) fn record_exit(&self, st: &mut State, tracked: &Tracked, exit: &Exit) {
        let reason = if st.closed {
            ExitReason::Shutdown
        } else if !tracked.ready {
            ExitReason::StartFailed
        } else if let Some(reason) = tracked.stop_reason {
            reason
        } else if !exit.requested {
            if exit.status.success() {
                ExitReason::Exited
            } else {
                ExitReason::Crashed
            }
        } else {
            ExitReason::Stopped
        };
        *st.record.exits.entry(reason).or_default() += 1;
        st.record.last_exit = Some(LastExit {
            pid: tracked.process.pid(),
            reason,
            status: exit.describe(),
            at: SystemTime::now(),
        });
    }
}

impl Pool {
    /// A snapshot of the pool and its processes.
    pub fn snapshot(&self) -> PoolSnapshot {
        let status = self.status();
        let inner = &self.inner;
        let st = inner.lock();
        let now = Instant::now();
        let mut instances: Vec<(InstanceInfo, Process)> = st
            .processes
            .iter()
            .map(|(id, tracked)| {
                let state = if !tracked.ready {
                    InstanceState::Starting
                } else if tracked.retired {
                    InstanceState::Stopping
                } else if st.idle.iter().any(|i| i.id == *id) {
                    InstanceState::Idle
                } else {
                    InstanceState::Busy
                };
                let info = InstanceInfo {
                    pid: tracked.process.pid(),
                    state,
                    requests: tracked.process.served(),
                    rss_kib: None,
                    uptime: now.saturating_duration_since(tracked.started),
                    current: None,
                };
                (info, tracked.process.clone())
            })
            .collect();
        let offline = match (st.manual_offline, st.offline_until) {
            (Some(since), _) => Some(Offline::Manual { since }),
            (None, Some(until)) => Some(Offline::RapidFails {
                until: SystemTime::now() + until.saturating_duration_since(now),
            }),
            (None, None) => None,
        };
        let snapshot = PoolSnapshot {
            status,
            offline,
            automatic: inner.auto_ceiling.is_some(),
            most_waiting: st.most_waiting,
            rapid_fails_last_minute: st.failures.len(),
            rapid_fails_total: st.record.rapid_fails_total,
            spawns: st.record.spawns,
            exits: st.record.exits.clone(),
            last_exit: st.record.last_exit.clone(),
            instances: Vec::new(),
        };
        drop(st);
        // Read outside the lock: /proc reads are system calls, and the
        // current request has a lock of its own.
        for (instance, process) in &mut instances {
            instance.rss_kib = rss_kib(instance.pid);
            if instance.state == InstanceState::Busy {
                instance.current = process.current();
            }
        }
        let mut instances: Vec<InstanceInfo> = instances.into_iter().map(|(i, _)| i).collect();
        instances.sort_by_key(|i| i.pid);
        PoolSnapshot {
            instances,
            ..snapshot
        }
    }
}
