//! What the pool shows of itself to an operator (the admin listener's
//! `/status`): its counters, whether it is offline, and each process with
//! its state. A snapshot taken under the pool's lock in one pass; nothing
//! here changes the pool.

use std::time::Duration;

use tokio::time::Instant;

use super::{Pool, PoolStatus};

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

/// One process of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub pid: u32,
    pub state: InstanceState,
    /// Requests it completed.
    pub requests: u64,
    /// Resident memory, from /proc (`None` once it is gone).
    pub rss_kib: Option<u64>,
}

/// A pool as an operator sees it.
#[derive(Debug, Clone)]
pub struct PoolSnapshot {
    pub status: PoolStatus,
    /// Offline after rapid failures, for this long still.
    pub offline_for: Option<Duration>,
    /// `max_instances = 0`: the limit moves with automatic sizing.
    pub automatic: bool,
    /// The most requests seen waiting at once since the start.
    pub most_waiting: usize,
    /// Every process not yet reaped, by pid.
    pub instances: Vec<InstanceInfo>,
}

/// A process's resident set size: `VmRSS` of /proc/PID/status (in kB,
/// whatever the page size).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Pool {
    /// A snapshot of the pool and its processes.
    pub fn snapshot(&self) -> PoolSnapshot {
        let status = self.status();
        let inner = &self.inner;
        let st = inner.lock();
        let now = Instant::now();
        let mut instances: Vec<InstanceInfo> = st
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
                InstanceInfo {
                    pid: tracked.process.pid(),
                    state,
                    requests: tracked.process.served(),
                    rss_kib: None,
                }
            })
            .collect();
        let offline_for = st
            .offline_until
            .map(|until| until.saturating_duration_since(now));
        let most_waiting = st.most_waiting;
        drop(st);
        // Read outside the lock: /proc reads are system calls.
        for instance in &mut instances {
            instance.rss_kib = rss_kib(instance.pid);
        }
        instances.sort_by_key(|i| i.pid);
        PoolSnapshot {
            status,
            offline_for,
            automatic: inner.auto_ceiling.is_some(),
            most_waiting,
            instances,
        }
    }
}
