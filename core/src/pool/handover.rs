//! Handing an app over from one pool to another on a configuration reload:
//! the new pool is warmed up (its processes started and ready) before it
//! takes requests, and the old one drains (its requests finish) before its
//! processes are stopped. Nothing here decides *whether* an app changed;
//! that is the reload's business (`crate::reload`).

use std::time::Duration;

use tokio::time::{Instant, sleep};
use tracing::{info, warn};

use super::Pool;

/// How often a handover looks at the pools: starts and drains take tens of
/// milliseconds at best, so polling costs nothing that matters.
const POLL: Duration = Duration::from_millis(20);

/// Why a new pool could not take over.
#[derive(Debug, thiserror::Error)]
pub enum WarmUpError {
    #[error("its processes cannot be started: {0}")]
    Unavailable(String),
    #[error("its processes failed to start ({failures} failures; see the log above)")]
    Failing { failures: usize },
    #[error("{ready} of {wanted} processes were ready after {waited:?}")]
    TooSlow {
        ready: u32,
        wanted: u32,
        waited: Duration,
    },
}

impl Pool {
    /// Starts processes until `wanted` run (at most the pool's limit) and
    /// waits until they are ready, for at most `deadline`. A start that
    /// fails ends the wait at once: the old pool keeps serving.
    pub async fn warm_up(&self, wanted: u32, deadline: Duration) -> Result<(), WarmUpError> {
        let inner = &self.inner;
        if let Err(reason) = &inner.spec {
            return Err(WarmUpError::Unavailable(reason.clone()));
        }
        let wanted = {
            let mut st = inner.lock();
            let wanted = wanted.min(st.limit);
            while st.live < wanted {
                inner.start_in_background(&mut st);
            }
            wanted
        };
        let since = Instant::now();
        loop {
            let (ready, failures) = {
                let st = inner.lock();
                (st.live - st.starting, st.failures.len())
            };
            if failures > 0 {
                return Err(WarmUpError::Failing { failures });
            }
            if ready >= wanted {
                return Ok(());
            }
            if since.elapsed() >= deadline {
                return Err(WarmUpError::TooSlow {
                    ready,
                    wanted,
                    waited: deadline,
                });
            }
            sleep(POLL).await;
        }
    }

    /// Processes running or starting (for sizing a replacement pool).
    pub fn running(&self) -> u32 {
        self.inner.lock().live
    }

    /// Whether `other` is this very pool (kept across a reload).
    pub fn same(&self, other: &Pool) -> bool {
        std::sync::Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Lets the requests this pool is serving or queueing finish (at most
    /// `timeout`), then stops its processes. Requests that come after the
    /// handover never reach it: the caller has already put its successor
    /// in its place.
    pub async fn drain(&self, timeout: Duration) {
        let inner = &self.inner;
        let since = Instant::now();
        loop {
            let (busy, waiting) = {
                let st = inner.lock();
                let busy = st.live - st.starting - st.idle.len() as u32;
                (busy, st.waiters.iter().filter(|w| !w.is_closed()).count())
            };
            if busy == 0 && waiting == 0 {
                break;
            }
            if since.elapsed() >= timeout {
                warn!(app = %inner.name, busy, waiting, ?timeout, "old pool still busy after shutdown_timeout; stopping it anyway");
                break;
            }
            sleep(POLL).await;
        }
        info!(app = %inner.name, "old pool drained");
        self.shutdown().await;
    }
}
