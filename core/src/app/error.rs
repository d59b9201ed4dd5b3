//! [`AppError`]: why an app could not answer a request.
//!
//! Hyper style: a public type over a private kind, asked with `is_*`
//! queries, so that the HTTP side maps it to a status without matching on
//! the layers below. It names the app and, when a process was reached, its
//! pid, once; `Display` shows one level and the cause is `source()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::cgi::answer::AnswerError;
use crate::cgi::params::{self, Origin};
use crate::fcgi::proto::ParamsError;
use crate::plugin::ChainError;
use crate::pool::PoolError;
use crate::pool::exchange::ExchangeError;

/// Why a request to an app failed on the server side: the one list, for
/// `/status` (5xx by cause) and `fastgate_failed_requests_total{cause}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// `request_timeout`, `activity_timeout` or `cgi_timeout` ran out.
    Timeout,
    /// The process died while serving the request.
    Crash,
    /// It broke the protocol, closed early or sent a bad head.
    BadAnswer,
    /// `stderr_mode` turned stderr output into a 500.
    Stderr,
    /// Every instance busy and `queue_length` requests waiting.
    QueueFull,
    /// Offline, after rapid fails or taken offline by hand.
    Offline,
    /// No process could be started for it.
    SpawnFailure,
    /// Anything else (a plugin failing closed, the gateway stopping...).
    Other,
}

impl FailureCause {
    pub const ALL: [FailureCause; 8] = [
        FailureCause::Timeout,
        FailureCause::Crash,
        FailureCause::BadAnswer,
        FailureCause::Stderr,
        FailureCause::QueueFull,
        FailureCause::Offline,
        FailureCause::SpawnFailure,
        FailureCause::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::Timeout => "timeout",
            FailureCause::Crash => "crash",
            FailureCause::BadAnswer => "bad_answer",
            FailureCause::Stderr => "stderr",
            FailureCause::QueueFull => "queue_full",
            FailureCause::Offline => "offline",
            FailureCause::SpawnFailure => "spawn_failure",
            FailureCause::Other => "other",
        }
    }
}

/// Why an app could not answer a request.
#[derive(Debug)]
pub struct AppError {
    app: Arc<str>,
    pid: Option<u32>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// No instance could be had (queue full, offline, cannot start, ...).
    Pool(PoolError),
    /// The process gave no usable answer.
    Answer(AnswerError),
    /// One of the app's plugins failed closed.
    Plugin(ChainError),
    /// The request's parameters cannot be sent to a FastCGI app (refused
    /// before any instance was used).
    Params(ParamsError),
}

impl AppError {
    pub(super) fn answer(app: &Arc<str>, error: AnswerError) -> AppError {
        AppError {
            app: app.clone(),
            pid: error.pid(),
            kind: Kind::Answer(error),
        }
    }

    pub(super) fn exchange(app: &Arc<str>, error: ExchangeError) -> AppError {
        match error {
            ExchangeError::Answer(e) => Self::answer(app, e),
            ExchangeError::Pool(e) => AppError {
                app: app.clone(),
                pid: None,
                kind: Kind::Pool(e),
            },
            ExchangeError::Params(e) => AppError {
                app: app.clone(),
                pid: None,
                kind: Kind::Params(e),
            },
        }
    }

    pub(super) fn plugin(app: &Arc<str>, error: ChainError) -> AppError {
        AppError {
            app: app.clone(),
            pid: None,
            kind: Kind::Plugin(error),
        }
    }

    pub(super) fn with_pid(mut self, pid: u32) -> AppError {
        self.pid = Some(pid);
        self
    }

    /// The app's name.
    pub fn app(&self) -> &Arc<str> {
        &self.app
    }

    /// The process the request ran on, if one was reached.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The app cannot take the request now (no instance, the queue is full,
    /// it is offline or stopping): the client may try again later.
    pub fn is_unavailable(&self) -> bool {
        match &self.kind {
            Kind::Pool(e) => !e.is_start_failure(),
            Kind::Answer(e) => e.is_queue_full(),
            Kind::Plugin(_) | Kind::Params(_) => false,
        }
    }

    /// The request's headers make a parameter too large to send (431).
    pub fn is_header_too_large(&self) -> bool {
        self.params_origin() == Some(Origin::Headers)
    }

    /// The request's URI makes a parameter too large to send (414).
    pub fn is_uri_too_long(&self) -> bool {
        self.params_origin() == Some(Origin::Uri)
    }

    fn params_origin(&self) -> Option<Origin> {
        match &self.kind {
            Kind::Params(e) => Some(params::origin(e.name())),
            _ => None,
        }
    }

    /// Offline after repeated failures (`rapid_fails_per_minute`).
    pub fn is_offline(&self) -> bool {
        matches!(self.kind, Kind::Pool(PoolError::Offline { .. }))
    }

    /// Taken offline on the admin listener.
    pub fn is_taken_offline(&self) -> bool {
        matches!(self.kind, Kind::Pool(PoolError::TakenOffline))
    }

    /// The app took too long and its process was stopped.
    pub fn is_timeout(&self) -> bool {
        matches!(&self.kind, Kind::Answer(e) if e.is_timeout())
    }

    /// The process crashed, broke the protocol or sent a bad head, or the
    /// one started for the request died before accepting it.
    pub fn is_bad_answer(&self) -> bool {
        match &self.kind {
            Kind::Answer(e) => e.is_bad_answer(),
            Kind::Pool(e) => e.is_start_failure(),
            Kind::Plugin(_) | Kind::Params(_) => false,
        }
    }

    /// Why it failed, for the status page and metrics.
    pub fn cause(&self) -> FailureCause {
        match &self.kind {
            Kind::Pool(PoolError::QueueFull { .. }) => FailureCause::QueueFull,
            Kind::Pool(PoolError::Offline { .. } | PoolError::TakenOffline) => {
                FailureCause::Offline
            }
            Kind::Pool(PoolError::Spawn { .. } | PoolError::Unavailable { .. }) => {
                FailureCause::SpawnFailure
            }
            Kind::Answer(e) if e.is_queue_full() => FailureCause::QueueFull,
            Kind::Answer(e) if e.is_timeout() => FailureCause::Timeout,
            Kind::Answer(e) if e.is_crash() => FailureCause::Crash,
            Kind::Answer(e) if e.is_bad_answer() => FailureCause::BadAnswer,
            Kind::Answer(e) if e.is_stderr() => FailureCause::Stderr,
            Kind::Answer(e) if e.is_exec() => FailureCause::SpawnFailure,
            _ => FailureCause::Other,
        }
    }

    /// How long a client should wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Pool(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The app's stderr text for a return-stderr-in-500 response.
    pub fn stderr_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Answer(e) => e.stderr_text(),
            _ => None,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "app {}", self.app)?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        match &self.kind {
            Kind::Pool(e) => write!(f, ": {e}"),
            Kind::Answer(e) => write!(f, ": {e}"),
            Kind::Plugin(e) => write!(f, ": {e}"),
            Kind::Params(e) => write!(f, ": {e}"),
        }
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Pool(e) => e.source(),
            Kind::Answer(e) => e.source(),
            Kind::Plugin(e) => std::error::Error::source(e),
            Kind::Params(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(error: ExchangeError) -> FailureCause {
        AppError::exchange(&Arc::from("a"), error).cause()
    }

    #[test]
    fn each_failure_has_its_cause() {
        let pool = |e: PoolError| of(ExchangeError::Pool(e));
        let answer = |e: AnswerError| of(ExchangeError::Answer(e));
        let queue_full = PoolError::QueueFull {
            max_instances: 1,
            queue_length: 0,
        };
        assert_eq!(pool(queue_full), FailureCause::QueueFull);
        assert_eq!(pool(PoolError::TakenOffline), FailureCause::Offline);
        let offline = PoolError::Offline {
            failures: 3,
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(pool(offline), FailureCause::Offline);
        let missing = PoolError::Unavailable {
            reason: "no such program".into(),
        };
        assert_eq!(pool(missing), FailureCause::SpawnFailure);
        assert_eq!(pool(PoolError::ShuttingDown), FailureCause::Other);
        let timeout = AnswerError::timeout(7, "request_timeout", Duration::from_secs(1));
        assert_eq!(answer(timeout), FailureCause::Timeout);
        let died = AnswerError::died(7, "killed by SIGKILL".into());
        assert_eq!(answer(died), FailureCause::Crash);
        assert_eq!(answer(AnswerError::no_head(7)), FailureCause::BadAnswer);
        assert_eq!(answer(AnswerError::stderr(7, None)), FailureCause::Stderr);
        assert_eq!(
            answer(AnswerError::queue_full(1, 1)),
            FailureCause::QueueFull
        );
        let exec = AnswerError::exec("/x.cgi".into(), std::io::ErrorKind::NotFound.into());
        assert_eq!(answer(exec), FailureCause::SpawnFailure);
    }
}
