//! Rapid-fail protection (IIS rapidFailsPerMinute): instance failures are
//! counted over a sliding minute; too many take the app offline for the
//! rest of that minute, after which a single probe instance must serve a
//! request before the app is back in service.
//!
//! What protection is for is a crash loop: processes that cannot start, or
//! die with no request in flight. A process that dies serving a request,
//! or answers garbage, is not reported here (see `lease`): a request of
//! death must cost that request only, never the app.
//!
//! An operator can take an app offline by hand (`POST /apps/NAME/offline`)
//! and bring it back (`POST /apps/NAME/online`, which also ends a rapid-fail
//! pause at once). Offline by hand refuses requests as a rapid-fail pause
//! does (503 with Retry-After) and stops no process: idle ones stay warm
//! (until `idle_timeout`) so that the app serves at once when it is back.
//!
//! This file judges failures and the offline state; it does not decide
//! what is a failure (the spawn path and the exit judgement report them)
//! nor start or retire instances.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{Grant, Inner, Pool, PoolError, State};

impl Pool {
    /// Takes the app offline by hand (`online = false`) or brings it back
    /// (which also ends a rapid-fail pause). False if it already was so.
    pub fn set_online(&self, online: bool) -> bool {
        let mut st = self.inner.lock();
        if online {
            self.inner.bring_online(&mut st)
        } else {
            self.inner.take_offline(&mut st)
        }
    }
}

/// How long failures count against `rapid_fails_per_minute`.
const RAPID_FAIL_WINDOW: Duration = Duration::from_secs(60);
/// The Retry-After of an app taken offline by hand: when it comes back is
/// the operator's decision, so a client is told to look again in a minute.
pub(super) const MANUAL_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Inner {
    /// Refuses while the app is offline; brings it back, on probation, once
    /// the minute is over.
    pub(super) fn check_offline(&self, st: &mut State) -> Result<(), PoolError> {
        if st.manual_offline.is_some() {
            return Err(PoolError::TakenOffline);
        }
        let Some(until) = st.offline_until else {
            return Ok(());
        };
        let now = Instant::now();
        if now < until {
            return Err(PoolError::Offline {
                failures: st.failures.len(),
                retry_after: until - now,
            });
        }
        st.offline_until = None;
        st.failures.clear();
        st.probing = true;
        info!(app = %self.name, "rapid-fail pause over; starting one probe instance");
        Ok(())
    }

    /// Takes the app offline by hand: requests are refused from now on,
    /// those waiting included. False if it was already.
    pub(super) fn take_offline(&self, st: &mut State) -> bool {
        if st.manual_offline.is_some() {
            return false;
        }
        st.manual_offline = Some(std::time::SystemTime::now());
        warn!(app = %self.name, "taken offline on the admin listener: requests get 503 until POST /apps/NAME/online");
        for waiter in st.waiters.drain(..) {
            let _ = waiter.send(Grant::Offline);
        }
        true
    }

    /// Brings the app back: ends an offline by hand and a rapid-fail pause
    /// (its failures are forgotten, no probe: the operator vouches for it).
    /// False if it was not offline.
    pub(super) fn bring_online(self: &Arc<Self>, st: &mut State) -> bool {
        let was = st.manual_offline.take().is_some() | st.offline_until.take().is_some();
        if was {
            st.failures.clear();
            st.probing = false;
            info!(app = %self.name, "back online (asked on the admin listener)");
            self.keep_min_instances(st);
        }
        was
    }

    /// How many instances may run now: one while probing after an offline spell.
    pub(super) fn spawn_limit(&self, st: &State) -> u32 {
        if st.probing { 1 } else { st.limit }
    }

    /// Counts a failure of an instance (a start that failed, a death with no
    /// request in flight) and takes the app offline after too many in a
    /// minute.
    pub(super) fn record_failure(&self, st: &mut State, pid: Option<u32>, what: &str) {
        let now = Instant::now();
        while st
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RAPID_FAIL_WINDOW)
        {
            st.failures.pop_front();
        }
        st.failures.push_back(now);
        st.record.rapid_fails_total += 1;
        let count = st.failures.len();
        warn!(app = %self.name, pid, failures = count, limit = self.rapid_fails, "instance failure: {what}");
        if st.offline_until.is_none() && (st.probing || count >= self.rapid_fails) {
            let first = st.failures.front().copied().unwrap_or(now);
            let until = if st.probing {
                now + RAPID_FAIL_WINDOW
            } else {
                first + RAPID_FAIL_WINDOW
            };
            st.offline_until = Some(until);
            st.probing = false;
            error!(
                app = %self.name,
                failures = count,
                offline_for = ?until.saturating_duration_since(now),
                "app failed {count} times within a minute: taking it offline (rapid_fails_per_minute); no process is started until then"
            );
            // Requests already waiting get the 503 now.
            for waiter in st.waiters.drain(..) {
                let _ = waiter.send(Grant::Offline);
            }
        }
    }
}
