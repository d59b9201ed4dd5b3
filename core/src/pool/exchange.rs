//! Forwarding one request to an app pool and streaming its answer back.
//!
//! Each request to an app runs in its own task, which owns the lease on the
//! instance from the first byte written to `END_REQUEST`. The HTTP side
//! only holds the receiving ends of two channels (the response head, then
//! the body), so a client that disconnects never leaves an instance in an
//! unknown state: the task finishes the exchange, drains what is left, and
//! gives the instance back clean.
//!
//! An instance found dead when the request is written (the app exited
//! between requests, e.g. php-cgi after `PHP_FCGI_MAX_REQUESTS`) is replaced
//! and the request retried on another instance: the request cannot have run.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::body::RequestBody;
use crate::cgi::params::Params;
use crate::cgi::response::{HeadError, ResponseHead, parse_head};
use crate::config::StderrMode;
use crate::fcgi::client::{ClientError, Event, Exchange};
use super::{Lease, Pool, PoolError};

/// How many times a request is retried on a fresh instance when the one it
/// got turned out to be dead before reading anything.
const STALE_RETRIES: usize = 2;
/// Chunks of response body in flight between the app task and the client.
const BODY_CHANNEL: usize = 8;
/// Most stderr text kept per request for the log.
const STDERR_KEEP: usize = 16 * 1024;

/// Why forwarding failed. Mapped to a status in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("app {app} (pid {pid}): {source}")]
    Connection {
        app: Arc<str>,
        pid: u32,
        #[source]
        source: ClientError,
    },
    #[error("app {app} (pid {pid}): {source}")]
    Head {
        app: Arc<str>,
        pid: u32,
        #[source]
        source: HeadError,
    },
    #[error("app {app} (pid {pid}) ended the request without a complete response header")]
    NoHead { app: Arc<str>, pid: u32 },
    #[error("reading the buffered request body failed: {0}")]
    Body(#[source] std::io::Error),
    #[error("app {app} (pid {pid}): no answer within {after:?} ({which}); instance terminated")]
    Timeout {
        app: Arc<str>,
        pid: u32,
        which: &'static str,
        after: Duration,
    },
    #[error("app {app} (pid {pid}) wrote to FCGI_STDERR (stderr_mode)")]
    Stderr {
        app: Arc<str>,
        pid: u32,
        /// The text for the response body (return-stderr-in-500), else none.
        text: Option<String>,
    },
}

/// Limits applied to one exchange (per app).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_size: usize,
    pub request_timeout: Duration,
    pub activity_timeout: Duration,
    pub stderr_mode: StderrMode,
    pub response_buffer_limit: u64,
}

impl Limits {
    pub fn of(app: &crate::config::AppConfig, max_header_size: usize) -> Limits {
        Limits {
            max_header_size,
            request_timeout: app.request_timeout,
            activity_timeout: app.activity_timeout,
            stderr_mode: app.stderr_mode,
            response_buffer_limit: app.response_buffer_limit,
        }
    }
}

/// A response whose head has arrived; the body keeps streaming in.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub head: ResponseHead,
    pub pid: u32,
    /// Body chunks; an `Err` means the app failed mid-body (the HTTP
    /// response must then be aborted, not ended cleanly).
    pub body: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

/// Sends one request to `pool` and waits for the response head.
pub async fn forward(
    pool: &Pool,
    params: Params,
    body: Arc<RequestBody>,
    uri: Arc<str>,
    limits: Limits,
) -> Result<UpstreamResponse, UpstreamError> {
    let (head_tx, head_rx) = oneshot::channel();
    let (body_tx, body_rx) = mpsc::channel(BODY_CHANNEL);
    let task = ExchangeTask {
        pool: pool.clone(),
        params,
        body,
        uri,
        limits,
    };
    tokio::spawn(task.run(head_tx, body_tx));
    match head_rx.await {
        Ok(Ok((head, pid))) => Ok(UpstreamResponse {
            head,
            pid,
            body: body_rx,
        }),
        Ok(Err(e)) => Err(e),
        // The task ends without answering only if the runtime is going away.
        Err(_) => Err(UpstreamError::Pool(PoolError::ShuttingDown {
            app: Arc::from(pool.name()),
        })),
    }
}

type HeadSender = oneshot::Sender<Result<(ResponseHead, u32), UpstreamError>>;
type BodySender = mpsc::Sender<Result<Bytes, std::io::Error>>;

struct ExchangeTask {
    pool: Pool,
    params: Params,
    body: Arc<RequestBody>,
    uri: Arc<str>,
    limits: Limits,
}

impl ExchangeTask {
    async fn run(self, mut head_tx: HeadSender, body_tx: BodySender) {
        let mut attempt = 0;
        loop {
            // A client that leaves while queued gives its place up.
            let lease = tokio::select! {
                lease = self.pool.acquire() => lease,
                () = head_tx.closed() => return,
            };
            let lease = match lease {
                Ok(lease) => lease,
                Err(e) => {
                    let _ = head_tx.send(Err(e.into()));
                    return;
                }
            };
            match self.exchange(lease, head_tx, &body_tx).await {
                Outcome::Done => return,
                Outcome::Stale(returned) if attempt < STALE_RETRIES => {
                    attempt += 1;
                    head_tx = returned;
                }
                Outcome::Stale(returned) => {
                    let _ = returned.send(Err(UpstreamError::Pool(PoolError::Unavailable {
                        app: Arc::from(self.pool.name()),
                        reason: "instances keep closing their connections".into(),
                    })));
                    return;
                }
            }
        }
    }

    /// Runs the request on one instance, from the first byte written to
    /// END_REQUEST.
    async fn exchange(
        &self,
        mut lease: Lease,
        head_tx: HeadSender,
        body_tx: &BodySender,
    ) -> Outcome {
        let app = lease.app().clone();
        let pid = lease.pid();
        let reused = lease.is_reused();
        let limits = self.limits;
        let reader = match self.body.reader().await {
            Ok(reader) => reader,
            Err(e) => {
                lease.finish(true);
                let _ = head_tx.send(Err(UpstreamError::Body(e)));
                return Outcome::Done;
            }
        };
        let mut stderr = StderrLog::default();
        let deadline = Instant::now() + limits.request_timeout;
        let mut exchange = Exchange::start(
            lease.connection(),
            self.params.iter(),
            reader,
            self.body.len(),
        );

        // Phase 1: until the response is committed, i.e. its head is parsed
        // and `response_buffer_limit` bytes of body are buffered (or the
        // response ended). Until then every failure is a clean error response.
        let mut head_buf = BytesMut::new();
        let mut head: Option<ResponseHead> = None;
        let mut buffered: Vec<Bytes> = Vec::new();
        let mut buffered_len = 0u64;
        // stderr_mode asks for a 500: drain to END_REQUEST, then answer.
        let mut stderr_fails = false;
        let ended = loop {
            if head.is_some() && !stderr_fails && buffered_len >= limits.response_buffer_limit {
                break false;
            }
            let event = next_event(&mut exchange, deadline, &limits).await;
            match event {
                Ok(Event::Stdout(_)) if stderr_fails => {}
                Ok(Event::Stdout(data)) if head.is_some() => {
                    buffered_len += data.len() as u64;
                    buffered.push(data);
                }
                Ok(Event::Stdout(data)) => {
                    head_buf.extend_from_slice(&data);
                    match parse_head(&head_buf, limits.max_header_size) {
                        Ok(Some((parsed, body_start))) => {
                            let rest = head_buf.split_off(body_start).freeze();
                            if !rest.is_empty() {
                                buffered_len += rest.len() as u64;
                                buffered.push(rest);
                            }
                            head = Some(parsed);
                        }
                        Ok(None) => {}
                        Err(source) => {
                            drop(exchange);
                            stderr.flush(&app, pid, &self.uri);
                            lease.fail("malformed response head");
                            let _ = head_tx.send(Err(UpstreamError::Head { app, pid, source }));
                            return Outcome::Done;
                        }
                    }
                }
                Ok(Event::Stderr(data)) => {
                    stderr.push(&data);
                    match limits.stderr_mode {
                        StderrMode::IgnoreAndReturn200 => {}
                        StderrMode::ReturnStderrIn500 | StderrMode::ReturnGeneric500 => {
                            stderr_fails = true
                        }
                        StderrMode::TerminateProcess => {
                            drop(exchange);
                            stderr.flush(&app, pid, &self.uri);
                            lease.terminate(
                                "it wrote to FCGI_STDERR (stderr_mode = terminate-process)",
                            );
                            let _ = head_tx.send(Err(UpstreamError::Stderr {
                                app,
                                pid,
                                text: None,
                            }));
                            return Outcome::Done;
                        }
                    }
                }
                Ok(Event::End { .. }) => break true,
                Err(Failure::Timeout { which, after }) => {
                    drop(exchange);
                    stderr.flush(&app, pid, &self.uri);
                    lease.terminate(which);
                    let _ = head_tx.send(Err(UpstreamError::Timeout {
                        app,
                        pid,
                        which,
                        after,
                    }));
                    return Outcome::Done;
                }
                Err(Failure::Client(e))
                    if reused
                        && head_buf.is_empty()
                        && head.is_none()
                        && stderr.is_empty()
                        && e.is_peer_gone() =>
                {
                    debug!(app = %app, pid, error = %e, "instance was gone before the request; retrying on another");
                    drop(exchange);
                    lease.discard();
                    return Outcome::Stale(head_tx);
                }
                Err(Failure::Client(source)) => {
                    drop(exchange);
                    stderr.flush(&app, pid, &self.uri);
                    lease.fail(&source.to_string());
                    let _ = head_tx.send(Err(UpstreamError::Connection { app, pid, source }));
                    return Outcome::Done;
                }
            }
        };
        if ended {
            let clean = exchange.stdin_complete();
            drop(exchange);
            let text = (stderr_fails && limits.stderr_mode == StderrMode::ReturnStderrIn500)
                .then(|| stderr.text());
            stderr.flush(&app, pid, &self.uri);
            lease.finish(clean);
            let result = match head {
                _ if stderr_fails => Err(UpstreamError::Stderr { app, pid, text }),
                Some(head) => Ok((head, pid)),
                None => Err(UpstreamError::NoHead { app, pid }),
            };
            let delivered = result.is_ok();
            if head_tx.send(result).is_ok() && delivered {
                for chunk in buffered {
                    if body_tx.send(Ok(chunk)).await.is_err() {
                        break;
                    }
                }
            }
            return Outcome::Done;
        }

        // Phase 2: committed. The head goes out, then the body streams with
        // backpressure from the client; failures can only abort it now.
        let Some(head) = head else {
            return Outcome::Done;
        };
        let mut client_gone = head_tx.send(Ok((head, pid))).is_err();
        for chunk in buffered {
            if !client_gone && body_tx.send(Ok(chunk)).await.is_err() {
                client_gone = true;
            }
        }
        loop {
            let abort = match next_event(&mut exchange, deadline, &limits).await {
                Ok(Event::Stdout(data)) => {
                    if !client_gone && body_tx.send(Ok(data)).await.is_err() {
                        debug!(app = %app, pid, "client went away; draining the rest of the response");
                        client_gone = true;
                    }
                    continue;
                }
                Ok(Event::Stderr(data)) => {
                    stderr.push(&data);
                    if limits.stderr_mode != StderrMode::TerminateProcess {
                        continue;
                    }
                    drop(exchange);
                    stderr.flush(&app, pid, &self.uri);
                    lease.terminate("it wrote to FCGI_STDERR (stderr_mode = terminate-process)");
                    "it wrote to FCGI_STDERR after the response head was sent".to_string()
                }
                Ok(Event::End { .. }) => {
                    let clean = exchange.stdin_complete();
                    drop(exchange);
                    stderr.flush(&app, pid, &self.uri);
                    lease.finish(clean);
                    return Outcome::Done;
                }
                Err(Failure::Timeout { which, after }) => {
                    drop(exchange);
                    stderr.flush(&app, pid, &self.uri);
                    lease.terminate(which);
                    format!("no answer within {after:?} ({which})")
                }
                Err(Failure::Client(source)) => {
                    drop(exchange);
                    stderr.flush(&app, pid, &self.uri);
                    lease.fail(&source.to_string());
                    source.to_string()
                }
            };
            warn!(app = %app, pid, uri = %self.uri, "aborting a response in the middle: {abort}");
            let _ = body_tx
                .send(Err(std::io::Error::other(format!(
                    "app {app} (pid {pid}): {abort}"
                ))))
                .await;
            return Outcome::Done;
        }
    }
}

/// Why waiting for the app's next event failed.
enum Failure {
    Client(ClientError),
    Timeout {
        which: &'static str,
        after: Duration,
    },
}

/// The next event of the exchange, within `activity_timeout` and what is
/// left of `request_timeout`.
async fn next_event<B: tokio::io::AsyncRead + Unpin>(
    exchange: &mut Exchange<'_, B>,
    deadline: Instant,
    limits: &Limits,
) -> Result<Event, Failure> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let (wait, which, after) = if remaining <= limits.activity_timeout {
        (remaining, "request_timeout", limits.request_timeout)
    } else {
        (
            limits.activity_timeout,
            "activity_timeout",
            limits.activity_timeout,
        )
    };
    match tokio::time::timeout(wait, exchange.next_event()).await {
        Ok(result) => result.map_err(Failure::Client),
        Err(_) => Err(Failure::Timeout { which, after }),
    }
}

enum Outcome {
    Done,
    /// The instance was dead before the request reached it: try another.
    Stale(HeadSender),
}

/// FCGI_STDERR text of one request, logged once at the end of it.
#[derive(Default)]
struct StderrLog {
    text: Vec<u8>,
    dropped: usize,
}

impl StderrLog {
    fn push(&mut self, data: &[u8]) {
        let room = STDERR_KEEP.saturating_sub(self.text.len());
        let take = room.min(data.len());
        self.text.extend_from_slice(&data[..take]);
        self.dropped += data.len() - take;
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty() && self.dropped == 0
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }

    fn flush(&mut self, app: &str, pid: u32, uri: &str) {
        if self.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.text);
        warn!(
            app = %app,
            pid,
            uri = %uri,
            truncated = self.dropped,
            "app wrote to FCGI_STDERR: {}",
            text.trim_end()
        );
        self.text.clear();
        self.dropped = 0;
    }
}
