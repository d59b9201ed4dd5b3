//! Leases and the queue's side of a request: what a waiting request is
//! granted ([`Grant`]), the guard that gives a grant back when a waiting
//! request is dropped ([`Waiting`]), and the [`Lease`] a request holds
//! while it uses an instance.
//!
//! This file does not decide who gets what (that is the slot accounting
//! in the pool itself); it only makes sure nothing handed out is lost.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{CurrentRequest, Exit, ExitReason, Inner, Instance, PoolError};
use crate::fcgi::client::Connection;

/// What a waiting request is handed.
pub(super) enum Grant {
    /// An instance that became free: an old one that finished a request,
    /// or a new one that just became ready. Never one still starting.
    Instance(Instance),
    /// No instance could serve it: the start it waited for failed and
    /// nothing else was running or starting for it.
    Failed(PoolError),
    /// The app went offline while the request waited.
    Offline,
}

/// The queue's end of a waiting request: where its grant goes, and since
/// when it waits (for the start hold-off, `start.rs`).
pub(super) struct Waiter {
    tx: oneshot::Sender<Grant>,
    pub(super) since: Instant,
}

impl Waiter {
    pub(super) fn new(tx: oneshot::Sender<Grant>) -> Waiter {
        Waiter {
            tx,
            since: Instant::now(),
        }
    }

    /// The request is gone (its client left).
    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Hands `grant` over, or gives it back when the request is gone.
    // The grant comes back by value, as from the oneshot it wraps: boxing
    // it would cost an allocation per hand-over for a rare case.
    #[allow(clippy::result_large_err)]
    pub(super) fn send(self, grant: Grant) -> Result<(), Grant> {
        self.tx.send(grant)
    }
}

/// A request waiting in the queue. If it is dropped (client gone), whatever
/// it was granted in the meantime goes back to the pool.
pub(super) struct Waiting {
    inner: Arc<Inner>,
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Waiting {
    pub(super) fn new(inner: Arc<Inner>, rx: oneshot::Receiver<Grant>) -> Waiting {
        Waiting {
            inner,
            rx: Some(rx),
        }
    }

    pub(super) async fn wait(&mut self) -> Result<Grant, PoolError> {
        let rx = self.rx.as_mut().expect("waited once");
        let result = rx.await;
        self.rx = None;
        result.map_err(|_| self.inner.shutting_down())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        rx.close();
        if let Ok(grant) = rx.try_recv() {
            let mut st = self.inner.lock();
            match grant {
                Grant::Instance(instance) => {
                    self.inner.hand_over(&mut st, Grant::Instance(instance))
                }
                Grant::Failed(_) | Grant::Offline => {}
            }
        }
    }
}

/// An instance leased for one request. Give it back with
/// [`finish`](Self::finish); dropping a lease mid-request terminates the
/// instance, since its connection is in an unknown state. While it is held
/// the process is serving: its exit is the request's to judge.
pub struct Lease {
    inner: Arc<Inner>,
    instance: Option<Instance>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Lease {
    pub(super) fn new(inner: Arc<Inner>, instance: Instance) -> Lease {
        instance.process.set_serving(true);
        Lease {
            inner,
            instance: Some(instance),
        }
    }

    fn instance(&self) -> &Instance {
        self.instance
            .as_ref()
            .expect("lease holds its instance until consumed")
    }

    /// The pid of the leased process.
    pub fn pid(&self) -> u32 {
        self.instance().process.pid()
    }

    /// The leased process.
    pub(super) fn process(&self) -> &super::Process {
        &self.instance().process
    }

    /// The app's name.
    pub fn app(&self) -> &Arc<str> {
        &self.inner.name
    }

    /// Records the request the instance serves, for the status page
    /// (cleared when the lease lets it go).
    pub fn serving(&self, request: CurrentRequest) {
        self.instance().process.set_current(request);
    }

    /// Whether the instance served requests before.
    pub fn is_reused(&self) -> bool {
        self.instance().served > 0
    }

    /// The FastCGI connection to the instance.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self
            .instance
            .as_mut()
            .expect("lease holds its instance until consumed")
            .conn
    }

    /// The request is complete. `reusable`: the connection is in a clean
    /// state (END_REQUEST seen, request fully written).
    pub fn finish(mut self, reusable: bool) {
        if let Some(instance) = self.instance.take() {
            self.inner.release(instance, reusable);
        }
    }

    /// Waits at most `limit` for the leased process to be reaped, to learn
    /// how it ended (after its connection broke mid-request).
    pub async fn exit_within(&self, limit: std::time::Duration) -> Option<Exit> {
        self.instance().process.exit_within(limit).await
    }

    /// The instance was found gone before the request reached it (it
    /// exited between requests): let it go. An exit is judged as one with
    /// no request in flight, which it was.
    pub fn discard(mut self) {
        if let Some(instance) = self.instance.take() {
            let mut st = self.inner.lock();
            self.inner.end_request(&mut st, &instance.process);
            self.inner.retire(&mut st, instance);
        }
    }

    /// The process died while serving the request (a request crash): it is
    /// replaced and counted apart, never for `rapid_fails_per_minute`, so a
    /// request that kills its process costs that request only.
    pub fn crash(mut self, exit: Exit) {
        if let Some(instance) = self.instance.take() {
            let mut st = self.inner.lock();
            let process = &instance.process;
            process.set_serving(false);
            Inner::note_stop(&mut st, instance.id, ExitReason::Crashed);
            if process.claim_exit() {
                st.request_crashes += 1;
                warn!(
                    app = %self.inner.name,
                    pid = process.pid(),
                    request_crashes = st.request_crashes,
                    "request crash: the process died while serving a request ({}); replacing it (not counted for rapid_fails_per_minute)",
                    exit.describe()
                );
            }
            self.inner.retire(&mut st, instance);
        }
    }

    /// The instance failed the request without dying (it broke the
    /// protocol, sent a malformed head, or closed the connection early):
    /// it is stopped and replaced, counted apart from rapid-fail failures.
    pub fn fail(mut self, what: &str) {
        if let Some(instance) = self.instance.take() {
            let mut st = self.inner.lock();
            let process = &instance.process;
            process.set_serving(false);
            Inner::note_stop(&mut st, instance.id, ExitReason::BadAnswer);
            if process.claim_exit() {
                st.bad_answers += 1;
                warn!(
                    app = %self.inner.name,
                    pid = process.pid(),
                    bad_answers = st.bad_answers,
                    "instance failed a request: {what}; replacing it (not counted for rapid_fails_per_minute)"
                );
            }
            self.inner.retire(&mut st, instance);
        }
    }

    /// Stops the instance (a timeout, `stderr_mode = terminate-process`):
    /// SIGTERM and `signal_before_terminate`, or SIGKILL at once.
    pub fn terminate(self, why: &str) {
        info!(app = %self.inner.name, pid = self.pid(), "terminating instance: {why}");
        if let Some(instance) = &self.instance {
            Inner::note_stop(
                &mut self.inner.lock(),
                instance.id,
                ExitReason::of_termination(why),
            );
        }
        self.discard();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            debug!(app = %self.inner.name, pid = instance.process.pid(), "request abandoned mid-flight; retiring instance");
            let mut st = self.inner.lock();
            Inner::note_stop(&mut st, instance.id, ExitReason::Abandoned);
            self.inner.end_request(&mut st, &instance.process);
            self.inner.retire(&mut st, instance);
        }
    }
}
