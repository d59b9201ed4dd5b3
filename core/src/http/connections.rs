//! The client connection limit, `[server] max_connections`: what it is
//! (set, or derived from the open-file limit), the count of open client
//! connections (from accept to close, idle keep-alive ones included), and
//! the refusal past it.
//!
//! A connection over the limit is still accepted, so that the client learns
//! why: it gets a fixed `503` with `Retry-After` and `Connection: close`,
//! written without hyper, and the connection ends within a second. At most
//! [`REFUSING_AT_ONCE`] refusals are in progress at a time (each holds a
//! file descriptor for that second); past that, in a flood, a connection is
//! closed at once without an answer. The log says so at most once every
//! [`LOG_EVERY`], with how many were refused. The admin listener is not
//! counted: it stays reachable when the public side is full.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::warn;

/// The automatic limit never goes above this: on a small box, ten thousand
/// open connections are already more than its apps can serve, and each
/// holds memory (hyper's buffers, a spooled response).
pub const AUTO_CEILING: usize = 10_000;
/// File descriptors left for everything that is not a client connection:
/// listeners, the apps' sockets and pipes, log files, plugins.
const FD_HEADROOM: u64 = 256;
/// File descriptors a client connection may hold at once: its socket, and
/// a spooled response, a spilled request body or an app socket.
const FDS_PER_CONNECTION: u64 = 2;
/// The smallest automatic limit, whatever the open-file limit says.
const AUTO_FLOOR: usize = 16;
/// Refusals in progress at once; past that a connection is closed unanswered.
const REFUSING_AT_ONCE: usize = 64;
/// How long a refusal may take: its answer, then reading and dropping
/// what the client sends (so that the close does not reset the
/// connection before the client has read the answer).
const REFUSAL_TIME: Duration = Duration::from_secs(1);
const REFUSAL_DRAIN: usize = 64 * 1024;
/// At most one log line about refused connections this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 46\r\n\
\r\n\
503 Service Unavailable: too many connections\n";

/// The connection limit in force, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimit {
    pub max: usize,
    /// Derived from the open-file limit (`max_connections` not set).
    pub auto: bool,
    /// The gateway's soft RLIMIT_NOFILE, when it could be read.
    pub nofile: Option<u64>,
}

impl ConnectionLimit {
    /// `configured` (`None`: automatic) against the open-file limit
    /// `nofile`: automatic is what the descriptors can carry
    /// ([`fd_budget`]), at most [`AUTO_CEILING`].
    pub fn resolve(configured: Option<usize>, nofile: Option<u64>) -> ConnectionLimit {
        let max = match configured {
            Some(n) => n,
            None => nofile.map_or(AUTO_CEILING, |n| {
                fd_budget(n).clamp(AUTO_FLOOR, AUTO_CEILING)
            }),
        };
        ConnectionLimit {
            max,
            auto: configured.is_none(),
            nofile,
        }
    }

    /// The limit as the gateway's own: resolved against its RLIMIT_NOFILE.
    pub fn of_this_process(configured: Option<usize>) -> ConnectionLimit {
        ConnectionLimit::resolve(configured, nofile_soft())
    }

    /// A set limit the open-file limit cannot carry: past it, accept fails
    /// (EMFILE) before the limit answers.
    pub fn over_budget(&self) -> Option<usize> {
        let budget = fd_budget(self.nofile?);
        (!self.auto && self.max > budget).then_some(budget)
    }

    /// One line for `fastgate check` and the start log.
    pub fn describe(&self) -> String {
        let nofile = self
            .nofile
            .map_or_else(|| "unknown".to_string(), |n| n.to_string());
        if self.auto {
            format!(
                "max_connections {} (automatic: open-file limit {nofile}, less {FD_HEADROOM}, halved, at most {AUTO_CEILING})",
                self.max
            )
        } else {
            format!(
                "max_connections {} (file; open-file limit {nofile})",
                self.max
            )
        }
    }
}

/// How many client connections `nofile` descriptors can carry.
pub fn fd_budget(nofile: u64) -> usize {
    let budget = nofile.saturating_sub(FD_HEADROOM) / FDS_PER_CONNECTION;
    usize::try_from(budget).unwrap_or(usize::MAX)
}

/// The soft open-file limit of this process, from `/proc/self/limits`.
fn nofile_soft() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_nofile(&limits)
}

fn parse_nofile(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// The open client connections, and the refusals past the limit.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicUsize,
    refusing: AtomicUsize,
    /// Refused since the last log line.
    refused: AtomicU64,
    /// Refused since the start (for `/status` and `/metrics`).
    refused_total: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

/// One open client connection: counted until dropped (when the connection's
/// task ends, however it ends).
#[derive(Debug)]
pub struct Open(Arc<Connections>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    /// Counts a new connection in, unless `max` are open already.
    pub fn try_open(self: &Arc<Self>, max: usize) -> Option<Open> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Open(self.clone()))
    }

    /// Open client connections now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Connections refused past the limit since the start.
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    /// Refuses a connection over `max`: the 503 in a task of its own, or,
    /// when too many refusals are in progress already, a close at once.
    pub fn refuse(self: &Arc<Self>, stream: TcpStream, max: usize) {
        self.refused_total.fetch_add(1, Ordering::Relaxed);
        self.log_refusal(max);
        let busy = self
            .refusing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < REFUSING_AT_ONCE).then_some(n + 1)
            })
            .is_err();
        if busy {
            drop(stream);
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_TIME, answer_refused(stream)).await;
            this.refusing.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Counts a refusal and logs, at most once every [`LOG_EVERY`], how
    /// many there were.
    fn log_refusal(&self, max: usize) {
        let refused = self.refused.fetch_add(1, Ordering::AcqRel) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
            return;
        }
        *last = Some(now);
        self.refused.fetch_sub(refused, Ordering::AcqRel);
        warn!(
            refused,
            open = self.open(),
            max_connections = max,
            "client connections refused with 503: max_connections reached ([server] max_connections raises it; at most one such line every {}s)",
            LOG_EVERY.as_secs()
        );
    }
}

/// Writes the 503, closes the sending side, and reads what the client
/// sends until it closes (bounded by the caller's timeout).
async fn answer_refused(mut stream: TcpStream) -> std::io::Result<()> {
    stream.write_all(REFUSAL).await?;
    stream.shutdown().await?;
    let mut buf = [0u8; 4096];
    let mut left = REFUSAL_DRAIN;
    while left > 0 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        left = left.saturating_sub(n);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
    }

    #[test]
    fn the_automatic_limit_follows_the_open_file_limit() {
        let auto = |nofile| ConnectionLimit::resolve(None, nofile).max;
        assert_eq!(auto(Some(1024)), 384);
        assert_eq!(auto(Some(20_000)), 9872);
        assert_eq!(auto(Some(1_048_576)), AUTO_CEILING);
        assert_eq!(auto(Some(u64::MAX)), AUTO_CEILING);
        assert_eq!(auto(Some(100)), AUTO_FLOOR);
        assert_eq!(auto(None), AUTO_CEILING);
        let set = ConnectionLimit::resolve(Some(5000), Some(1024));
        assert_eq!((set.max, set.auto), (5000, false));
        assert_eq!(set.over_budget(), Some(384));
        assert_eq!(
            ConnectionLimit::resolve(Some(100), Some(1024)).over_budget(),
            None
        );
        assert_eq!(
            ConnectionLimit::resolve(None, Some(1024)).over_budget(),
            None
        );
    }

    #[test]
    fn the_soft_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max processes             63431                63431                processes \n\
Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile(limits), Some(1024));
        assert_eq!(
            parse_nofile(
                "Max open files            unlimited            unlimited            files\n"
            ),
            Some(u64::MAX)
        );
        assert_eq!(parse_nofile(""), None);
        assert!(nofile_soft().is_some());
    }

    #[test]
    fn connections_are_counted_until_dropped() {
        let connections = Arc::new(Connections::default());
        let a = connections.try_open(2).unwrap();
        let _b = connections.try_open(2).unwrap();
        assert!(connections.try_open(2).is_none());
        assert_eq!(connections.open(), 2);
        drop(a);
        assert_eq!(connections.open(), 1);
        assert!(connections.try_open(2).is_some());
    }
}
