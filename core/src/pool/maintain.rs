//! Idle maintenance: the pool's background task that stops instances idle
//! longer than `idle_timeout` (down to `min_instances`) and, under
//! automatic sizing, runs the sizing decision on its interval.
//!
//! This file owns the task's sleeping and waking only; what sizing decides
//! is in `sizing.rs`, and how an instance is retired is the pool's.

use std::collections::HashMap;
use std::sync::Weak;

use tokio::time::Instant;
use tracing::info;

use super::Inner;
use super::sizing::{AUTO_INTERVAL, CpuSample};

/// Stops instances idle longer than `idle_timeout` (down to
/// `min_instances`). Sleeps until the next deadline, or until woken: a pool
/// at rest costs nothing.
pub(super) async fn maintain(pool: Weak<Inner>) {
    let mut last_eval: Option<Instant> = None;
    let mut cpu = (CpuSample::read(), HashMap::new());
    loop {
        let (next, notified) = {
            let Some(inner) = pool.upgrade() else { return };
            let mut st = inner.lock();
            if st.closed {
                return;
            }
            let now = Instant::now();
            // `idle` is a stack: the longest idle instance is at the bottom.
            while st.live > inner.min_instances
                && st
                    .idle
                    .first()
                    .is_some_and(|i| now.duration_since(i.idle_since) >= inner.idle_timeout)
            {
                let instance = st.idle.remove(0);
                info!(app = %inner.name, pid = instance.process.pid(), idle_timeout = ?inner.idle_timeout, "stopping idle instance");
                Inner::note_stop(&mut st, instance.id, super::ExitReason::IdleTimeout);
                inner.retire(&mut st, instance);
            }
            let mut next = if st.live > inner.min_instances {
                st.idle.first().map(|i| i.idle_since + inner.idle_timeout)
            } else {
                None
            };
            if let Some(ceiling) = inner.auto_ceiling
                && st.auto_ticking
            {
                let due = *last_eval.get_or_insert(now) + AUTO_INTERVAL;
                if now >= due {
                    inner.resize(&mut st, ceiling, &mut cpu);
                    last_eval = Some(now);
                }
                if st.auto_ticking {
                    let at = last_eval.unwrap_or(now) + AUTO_INTERVAL;
                    next = Some(next.map_or(at, |n| n.min(at)));
                } else {
                    last_eval = None;
                }
            }
            drop(st);
            // Registered before the lock is released would be ideal; a
            // wake-up that slips in between only delays one check.
            let inner2 = inner.clone();
            (next, async move { inner2.maintenance.notified().await })
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = notified => {}
                }
            }
            None => notified.await,
        }
    }
}
