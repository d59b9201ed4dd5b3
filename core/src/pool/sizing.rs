//! Automatic sizing (`max_instances = 0`): every few seconds while there
//! is traffic, the pool's limit grows when requests queued and the CPU has
//! room, and shrinks by one when the pool was mostly idle. The load of a
//! window is gathered by the pool as it serves ([`Window`]).
//!
//! This file decides the limit; it does not own the timer (the maintenance
//! task calls [`Inner::resize`]) nor start processes itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::{Inner, State};
use crate::config::{self, AppSettings};

/// Load seen by a pool during one automatic-sizing window.
#[derive(Debug, Default)]
pub(super) struct Window {
    pub(super) requests: u64,
    pub(super) waited: u64,
    pub(super) wait_total: Duration,
    pub(super) peak_busy: u32,
}

/// How often automatic sizing decides (while there is traffic).
pub(super) const AUTO_INTERVAL: Duration = Duration::from_secs(2);
/// Average queue wait in a window above which automatic sizing grows the pool.
const AUTO_GROW_WAIT: Duration = Duration::from_millis(20);
/// CPU use above which growing would not help.
const AUTO_CPU_BUSY: f64 = 0.9;

/// The limit a pool starts with: `max_instances`, or under automatic
/// sizing one instance per CPU, within the ceiling.
pub(super) fn initial_limit(app: &AppSettings) -> u32 {
    if app.max_instances == 0 {
        config::cpu_count().clamp(1, app.max_instances_auto_ceiling.max(1))
    } else {
        app.max_instances
    }
}

/// Clock ticks per second of /proc CPU times (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// CPU time (user + system, in clock ticks) a process has used so far.
fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces): utime is the
    // 12th and stime the 13th of them.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Whole-machine CPU counters from /proc/stat (busy, total jiffies).
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuSample {
    busy: u64,
    total: u64,
}

impl CpuSample {
    pub(super) fn read() -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = fields.iter().sum();
        // idle + iowait are not busy.
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        Some(CpuSample {
            busy: total - idle,
            total,
        })
    }

    /// Busy fraction since `earlier`.
    fn busy_since(&self, earlier: &CpuSample) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

impl Inner {
    /// Automatic sizing (`max_instances = 0`): one decision per window.
    /// Grow when requests queued noticeably and the CPU has room; shrink by
    /// one when nobody waited and at most half the instances were busy.
    pub(super) fn resize(
        self: &Arc<Self>,
        st: &mut State,
        ceiling: u32,
        cpu: &mut (Option<CpuSample>, HashMap<u32, u64>),
    ) {
        let window = std::mem::take(&mut st.window);
        let now_cpu = CpuSample::read();
        let busy = match (&now_cpu, cpu.0.as_ref()) {
            (Some(now), Some(before)) => now.busy_since(before),
            _ => 0.0,
        };
        cpu.0 = now_cpu;
        let avg_wait = if window.waited > 0 {
            window.wait_total / window.waited as u32
        } else {
            Duration::ZERO
        };
        // CPU the pool's own processes used per process: processes that
        // mostly wait (I/O, a database) are helped by more of them even on
        // a busy machine; CPU-bound ones on a saturated machine are not.
        let ticks_now: HashMap<u32, u64> = st
            .processes
            .values()
            .map(|t| (t.process.pid(), process_ticks(t.process.pid())))
            .collect();
        let used: u64 = ticks_now
            .iter()
            .map(|(pid, t)| t.saturating_sub(cpu.1.get(pid).copied().unwrap_or(0)))
            .sum();
        let per_process =
            used as f64 / (CLOCK_TICKS * AUTO_INTERVAL.as_secs_f64() * f64::from(st.live.max(1)));
        cpu.1 = ticks_now;
        let has_room = busy < AUTO_CPU_BUSY || per_process < 0.5;
        let floor = self.min_instances.max(1);
        let old = st.limit;
        if window.waited > 0 && avg_wait >= AUTO_GROW_WAIT && has_room && old < ceiling {
            st.limit = (old + (old / 4).max(1)).min(ceiling);
            info!(app = %self.name, from = old, to = st.limit, queued = window.waited, avg_wait = ?avg_wait, machine_cpu = format!("{:.0}%", busy * 100.0), process_cpu = format!("{:.0}%", per_process * 100.0), "automatic sizing: growing the pool");
            // Waiters can use the new room at once.
            self.start_for_waiters(st);
        } else if window.waited == 0 && window.peak_busy * 2 <= old && old > floor {
            st.limit = old - 1;
            info!(app = %self.name, from = old, to = st.limit, peak_busy = window.peak_busy, "automatic sizing: shrinking the pool");
            while st.live > st.limit && !st.idle.is_empty() {
                let instance = st.idle.remove(0);
                self.retire(st, instance);
            }
        }
        if window.requests == 0 && st.limit <= floor {
            // At rest: no more ticks until traffic comes back.
            st.auto_ticking = false;
        }
    }
}
