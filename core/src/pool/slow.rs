//! The slow-request log: a request still running after
//! `slow_request_timeout` is logged once, with what its process is doing
//! (read from /proc by `inspect`), and an app that can show its own stack
//! (the WSGI bridge) is asked for it by a signal. The stack comes back as
//! FCGI_STDERR of the running request, opened by [`STACK_MARKER`]; the
//! exchange logs it rather than taking it for the app's stderr output (so
//! `stderr_mode` never fails or kills a request for it).
//!
//! An app says it understands the signal with `FASTGATE_STACK_SIGNAL` in
//! its environment (the django launcher sets it; the bridge reads it):
//! no other app is ever sent one, since most programs (php-cgi) die of
//! SIGUSR1. The same signal goes out when `request_timeout` stops a
//! request, and the exchange waits [`STACK_WAIT`] for the stack first.
//!
//! The timer itself is the exchange's (`exchange.rs`, `next_event`): one
//! deadline beside its own, no task and no timer when the key is off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;
use tracing::warn;

use super::Process;
use super::exchange::Caller;
use super::inspect;

/// How a stack written on request begins (the bridge writes it so).
pub const STACK_MARKER: &[u8] = b"fastgate: Python stack of the running request";
/// How long a timed-out request's process is given to send its stack
/// before it is stopped.
pub const STACK_WAIT: Duration = Duration::from_millis(200);
/// The environment variable by which an app says which signal makes it
/// write its stack.
pub const STACK_SIGNAL_ENV: &str = "FASTGATE_STACK_SIGNAL";

/// The signal an app's environment names for its stack (`SIGUSR1`,
/// `USR1`, `SIGUSR2` or `USR2`; empty, `none` or `off` for none). Any other value is refused with a warning:
/// a signal the app does not handle would kill it.
pub fn stack_signal(env: &BTreeMap<String, String>, app: &str) -> Option<Signal> {
    let value = env.get(STACK_SIGNAL_ENV)?;
    match value.trim().trim_start_matches("SIG") {
        // The way to turn a launcher's setting off in [app.env].
        "" | "none" | "off" => None,
        "USR1" => Some(Signal::SIGUSR1),
        "USR2" => Some(Signal::SIGUSR2),
        _ => {
            warn!(app = %app, "{STACK_SIGNAL_ENV} = {value:?} is not SIGUSR1 or SIGUSR2; no stack will be asked for (set it in [app.env], or remove it)");
            None
        }
    }
}

/// The slow-request deadline of one request, until it fires.
pub struct SlowWatch {
    pub at: Instant,
    started: Instant,
    after: Duration,
    app: Arc<str>,
    uri: Arc<str>,
    caller: Caller,
    process: Process,
    stack_signal: Option<Signal>,
}

impl SlowWatch {
    pub fn new(
        after: Duration,
        app: Arc<str>,
        uri: Arc<str>,
        caller: Caller,
        process: Process,
        stack_signal: Option<Signal>,
    ) -> SlowWatch {
        let started = Instant::now();
        SlowWatch {
            at: started + after,
            started,
            after,
            app,
            uri,
            caller,
            process,
            stack_signal,
        }
    }

    /// Logs the slow request with what its process is doing, and asks for
    /// its stack when it can give one. Returns whether a stack was asked for.
    pub async fn fire(self) -> bool {
        let pid = self.process.pid();
        // /proc reads are system calls (net/tcp may be long): off the runtime.
        let activity = tokio::task::spawn_blocking(move || inspect::inspect(pid))
            .await
            .unwrap_or_default();
        warn!(
            app = %self.app,
            pid,
            method = %self.caller.method,
            uri = %self.uri,
            client = %self.caller.client,
            elapsed = ?self.started.elapsed(),
            "slow request: running for more than {} (slow_request_timeout); the process is {}",
            humantime::format_duration(self.after),
            activity.describe()
        );
        match self.stack_signal {
            Some(signal) => {
                self.process.signal(signal);
                true
            }
            None => false,
        }
    }
}

/// Whether an FCGI_STDERR record is the stack the gateway asked for.
pub fn is_stack(asked: bool, data: &[u8]) -> bool {
    asked && data.starts_with(STACK_MARKER)
}

/// Logs a stack the app sent on request.
pub fn log_stack(app: &str, pid: u32, uri: &str, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    warn!(app = %app, pid, uri = %uri, "{}", text.trim_end());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_apps_that_name_a_user_signal_get_one() {
        let env = |v: &str| BTreeMap::from([(STACK_SIGNAL_ENV.to_string(), v.to_string())]);
        assert_eq!(stack_signal(&BTreeMap::new(), "a"), None);
        assert_eq!(stack_signal(&env("SIGUSR1"), "a"), Some(Signal::SIGUSR1));
        assert_eq!(stack_signal(&env("USR2"), "a"), Some(Signal::SIGUSR2));
        assert_eq!(stack_signal(&env("SIGKILL"), "a"), None);
        assert_eq!(stack_signal(&env("9"), "a"), None);
        assert_eq!(stack_signal(&env("off"), "a"), None);
    }

    #[test]
    fn a_stack_is_recognised_only_when_asked_for() {
        let stack = b"fastgate: Python stack of the running request (pid 7):\n  File ...";
        assert!(is_stack(true, stack));
        assert!(!is_stack(false, stack));
        assert!(!is_stack(true, b"PHP Warning: ..."));
    }
}
