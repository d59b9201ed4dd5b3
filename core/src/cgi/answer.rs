//! An app's answer to one request, and why an app gave none.
//!
//! A FastCGI instance of a pool and a CGI script answer in the same format
//! (a CGI response head, then the body), so both runners hand back the same
//! [`Answer`] and fail with the same [`AnswerError`]. What an error means
//! for the client (its HTTP status) is decided by the HTTP side, through
//! the `is_*` queries; the app's name and the pid are shown by the app
//! layer's error, once.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::response::{HeadError, ResponseHead};

/// A response whose head has arrived; the body keeps streaming in.
#[derive(Debug)]
pub struct Answer {
    pub head: ResponseHead,
    /// The process that answered.
    pub pid: u32,
    /// Body chunks; an `Err` means the app failed mid-body (the HTTP
    /// response must then be aborted, not ended cleanly).
    pub body: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

/// Why an app process gave no usable answer.
#[derive(Debug)]
pub struct AnswerError {
    pid: Option<u32>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The CGI runner's slots are taken and `queue_length` requests wait.
    QueueFull { max: usize, waiting: usize },
    /// A CGI script could not be started.
    Exec {
        script: PathBuf,
        source: std::io::Error,
    },
    /// `request_timeout`, `activity_timeout` or `cgi_timeout` ran out; the
    /// process was stopped.
    Timeout {
        which: &'static str,
        after: Duration,
    },
    /// The connection to the process failed (it broke the protocol, or
    /// closed the connection early).
    Connection(Box<dyn std::error::Error + Send + Sync>),
    /// The process died while serving the request; `how` names the signal
    /// or the exit status.
    Died { how: String },
    /// The response head is malformed or too large.
    Head(HeadError),
    /// The output ended before a complete response head.
    NoHead,
    /// `stderr_mode` turned output on FCGI_STDERR into an error; `text`
    /// is set for return-stderr-in-500.
    Stderr { text: Option<String> },
    /// The buffered request body could not be read back.
    Body(std::io::Error),
}

impl AnswerError {
    fn new(pid: Option<u32>, kind: Kind) -> AnswerError {
        AnswerError { pid, kind }
    }

    pub fn queue_full(max: usize, waiting: usize) -> AnswerError {
        Self::new(None, Kind::QueueFull { max, waiting })
    }

    pub fn exec(script: PathBuf, source: std::io::Error) -> AnswerError {
        Self::new(None, Kind::Exec { script, source })
    }

    pub fn timeout(pid: u32, which: &'static str, after: Duration) -> AnswerError {
        Self::new(Some(pid), Kind::Timeout { which, after })
    }

    pub fn connection(
        pid: u32,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> AnswerError {
        Self::new(Some(pid), Kind::Connection(Box::new(source)))
    }

    pub fn died(pid: u32, how: String) -> AnswerError {
        Self::new(Some(pid), Kind::Died { how })
    }

    pub fn head(pid: u32, source: HeadError) -> AnswerError {
        Self::new(Some(pid), Kind::Head(source))
    }

    pub fn no_head(pid: u32) -> AnswerError {
        Self::new(Some(pid), Kind::NoHead)
    }

    pub fn stderr(pid: u32, text: Option<String>) -> AnswerError {
        Self::new(Some(pid), Kind::Stderr { text })
    }

    pub fn body(pid: u32, source: std::io::Error) -> AnswerError {
        Self::new(Some(pid), Kind::Body(source))
    }

    /// The process the request ran on, if one was reached.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// No slot was free and the queue was full: try again later.
    pub fn is_queue_full(&self) -> bool {
        matches!(self.kind, Kind::QueueFull { .. })
    }

    /// The app took too long and was stopped.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout { .. })
    }

    /// The app answered nothing usable: it crashed, broke the protocol or
    /// sent a bad head (the gateway's "bad gateway").
    pub fn is_bad_answer(&self) -> bool {
        matches!(
            self.kind,
            Kind::Connection(_) | Kind::Died { .. } | Kind::Head(_) | Kind::NoHead
        )
    }

    /// The process died while serving the request.
    pub fn is_crash(&self) -> bool {
        matches!(self.kind, Kind::Died { .. })
    }

    /// `stderr_mode` turned the app's stderr output into the error.
    pub fn is_stderr(&self) -> bool {
        matches!(self.kind, Kind::Stderr { .. })
    }

    /// A CGI script could not be started.
    pub fn is_exec(&self) -> bool {
        matches!(self.kind, Kind::Exec { .. })
    }

    /// The text for a return-stderr-in-500 response, when there is one.
    pub fn stderr_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Stderr { text } => text.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::QueueFull { max, waiting } => write!(
                f,
                "{waiting} requests already wait for one of {max} CGI slots (queue_length)"
            ),
            Kind::Exec { script, .. } => write!(f, "cannot run {}", script.display()),
            Kind::Timeout { which, after } => {
                write!(f, "no answer within {after:?} ({which}); process killed")
            }
            Kind::Connection(_) => f.write_str("the connection to the app failed"),
            Kind::Died { how } => {
                write!(f, "the process died while serving the request ({how})")
            }
            Kind::Head(_) => f.write_str("bad response head"),
            Kind::NoHead => f.write_str("ended the request without a complete response head"),
            Kind::Stderr { .. } => f.write_str("wrote to FCGI_STDERR (stderr_mode)"),
            Kind::Body(_) => f.write_str("reading the buffered request body failed"),
        }
    }
}

impl std::error::Error for AnswerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Exec { source, .. } | Kind::Body(source) => Some(source),
            Kind::Connection(source) => Some(source.as_ref()),
            Kind::Head(source) => Some(source),
            _ => None,
        }
    }
}
