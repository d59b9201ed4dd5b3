//! Forwarding one request to an app pool and streaming its answer back.
//!
//! Each request to an app runs in its own task, which owns the lease on the
//! instance from the first byte written to `END_REQUEST`. The HTTP side
//! only holds the receiving ends of two channels (the response head, then
//! the body), so a client that disconnects never leaves an instance in an
//! unknown state: the task finishes the exchange, drains what is left, and
//! gives the instance back clean.
//!
//! No replay: a request goes to another instance only when it provably
//! never reached the first, i.e. its connection was seen closed before any
//! byte of the request was written, or the very first write failed (the
//! app exited between requests). Once a byte is written the request is
//! never sent again, whatever its method: a process that dies then gives
//! that request a 502 naming how it died (a request crash).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::slow::{self, SlowWatch};
use super::{CurrentRequest, Exit, Lease, Pool, PoolError};
use crate::body::RequestBody;
use crate::cgi::answer::{Answer, AnswerError};
use crate::cgi::params::Params;
use crate::cgi::response::{HeadError, ResponseHead, parse_head, take_accel_buffering};
use crate::config::StderrMode;
use crate::fcgi::client::{ClientError, Event, Exchange, RequestParams};
use crate::fcgi::proto::ParamsError;
use crate::spool::{BodySender, Outlet, SpoolLimits};

/// How many times a request is sent to another instance when the one it got
/// turned out to be gone before any byte of it was written.
const STALE_RETRIES: usize = 2;
/// How long to wait for the supervisor to reap a process whose connection
/// broke mid-request, to tell the client how it died. A process killed by a
/// signal is reaped within milliseconds; one that only closed its
/// connection is stopped after this.
const CRASH_REAP_WAIT: Duration = Duration::from_millis(250);
/// Chunks of response body in flight between the app task and the client
/// (each up to a FastCGI record, 64 KiB): few, since a client that falls
/// behind is spooled and each held chunk is memory per slow client.
const BODY_CHANNEL: usize = 4;
/// Most stderr text kept per request for the log.
const STDERR_KEEP: usize = 16 * 1024;

/// Why forwarding failed: no instance could be had, or the one that ran
/// the request gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// The request's parameters cannot be sent (refused before any
    /// instance was used).
    #[error(transparent)]
    Params(#[from] ParamsError),
}

/// ExchangeLimits applied to one exchange (per app).
#[derive(Debug, Clone, Copy)]
pub struct ExchangeLimits {
    pub max_header_size: usize,
    pub request_timeout: Duration,
    pub activity_timeout: Duration,
    pub stderr_mode: StderrMode,
    pub response_buffer_limit: u64,
    /// `response_buffering`: spool for a client that falls behind.
    pub buffering: bool,
    pub spool: SpoolLimits,
    /// `slow_request_timeout` (`slow.rs`).
    pub slow_request_timeout: Option<Duration>,
    /// The signal that makes the app write its stack (`slow.rs`).
    pub stack_signal: Option<nix::sys::signal::Signal>,
}

impl ExchangeLimits {
    pub fn of(app: &crate::config::AppSettings, max_header_size: usize) -> ExchangeLimits {
        ExchangeLimits {
            max_header_size,
            request_timeout: app.request_timeout,
            activity_timeout: app.activity_timeout,
            stderr_mode: app.stderr_mode,
            response_buffer_limit: app.response_buffer_limit,
            buffering: app.response_buffering,
            spool: SpoolLimits {
                memory: usize::try_from(app.response_memory_buffer).unwrap_or(usize::MAX),
                file: app.max_temp_file_size,
            },
            slow_request_timeout: app.slow_request_timeout,
            stack_signal: slow::stack_signal(&app.env, &app.name),
        }
    }
}

/// Sends one request to `pool` and waits for the response head.
pub async fn forward(
    pool: &Pool,
    params: Params,
    body: Arc<RequestBody>,
    uri: Arc<str>,
    caller: Caller,
    limits: ExchangeLimits,
) -> Result<Answer, ExchangeError> {
    let params = RequestParams::encode_sized(params.iter(), params.encoded_len_bound())?;
    let (head_tx, head_rx) = oneshot::channel();
    let (body_tx, body_rx) = mpsc::channel(BODY_CHANNEL);
    let task = ExchangeTask {
        pool: pool.clone(),
        params,
        body,
        uri,
        caller,
        limits,
    };
    tokio::spawn(task.run(head_tx, body_tx));
    match head_rx.await {
        Ok(Ok((head, pid))) => Ok(Answer {
            head,
            pid,
            body: body_rx,
        }),
        Ok(Err(e)) => Err(e),
        // The task ends without answering only if the runtime is going away.
        Err(_) => Err(ExchangeError::Pool(PoolError::ShuttingDown)),
    }
}

type HeadSender = oneshot::Sender<Result<(ResponseHead, u32), ExchangeError>>;

struct ExchangeTask {
    pool: Pool,
    params: RequestParams,
    body: Arc<RequestBody>,
    uri: Arc<str>,
    /// Who asked: the status page's current request, the slow-request log.
    caller: Caller,
    limits: ExchangeLimits,
}

/// Who asked, for the status page's "current request" of a process.
#[derive(Debug, Clone)]
pub struct Caller {
    /// A standard method is cloned without allocating.
    pub method: http::Method,
    /// The client's address (`ip:port`).
    pub client: Arc<str>,
}

/// What becomes of the instance when an exchange ends: applied to the
/// lease in one place, after the connection is let go and stderr logged.
/// None of these counts for rapid-fail protection: the request was in
/// flight (see `pool::lease`).
enum Release {
    /// END_REQUEST arrived; `clean`: the request was fully written too.
    Finish { clean: bool },
    /// The connection broke mid-request: the process may have died
    /// (`settle` finds out, and makes it a `Crash` or a `Broken`).
    Fail(String),
    /// The process died while serving the request: a request crash.
    Crash(Exit),
    /// It broke the protocol or sent a malformed head: it is replaced.
    Broken(String),
    /// A timeout or `stderr_mode = terminate-process`.
    Terminate(&'static str),
    /// It was gone before the request reached it.
    Discard,
}

impl Release {
    /// After a connection failure: the process may have died when the
    /// connection broke (`settle` finds out); a protocol error is the
    /// process's own doing.
    fn after(source: &ClientError) -> Release {
        if source.is_peer_gone() {
            Release::Fail(source.to_string())
        } else {
            Release::Broken(source.to_string())
        }
    }

    fn apply(self, lease: Lease) {
        match self {
            Release::Finish { clean } => lease.finish(clean),
            Release::Fail(what) | Release::Broken(what) => lease.fail(&what),
            Release::Crash(exit) => lease.crash(exit),
            Release::Terminate(why) => lease.terminate(why),
            Release::Discard => lease.discard(),
        }
    }
}

/// A broken connection mid-request: waits briefly for the process to be
/// reaped. If it died, that is a request crash and the client is told how
/// it died; if it lives on, it broke the protocol and is replaced.
async fn settle(lease: &Lease, release: Release, after: After) -> (Release, After) {
    let Release::Fail(what) = release else {
        return (release, after);
    };
    match lease.exit_within(CRASH_REAP_WAIT).await {
        Some(exit) if !exit.requested => {
            let after = after.crashed(lease.pid(), &exit);
            (Release::Crash(exit), after)
        }
        _ => (Release::Broken(what), after),
    }
}

/// How the first phase of an exchange (until the response is committed)
/// ended.
enum Uncommitted {
    /// The whole response arrived (END_REQUEST) before it was committed.
    Ended {
        head: Option<ResponseHead>,
        buffered: Vec<Bytes>,
        /// `stderr_mode` turns this response into a 500.
        stderr_fails: bool,
        clean: bool,
    },
    /// The head is parsed and `response_buffer_limit` bytes are buffered:
    /// the head goes out and the rest streams.
    Committed {
        head: ResponseHead,
        buffered: Vec<Bytes>,
        /// Spool for a slow client (`response_buffering`, or the app's
        /// `X-Accel-Buffering`).
        buffering: bool,
    },
    /// The request failed before the client saw anything.
    Failed {
        release: Release,
        error: AnswerError,
    },
    /// The reused instance was gone before it read anything.
    Stale,
}

/// The response as it arrives before it is committed: the head being
/// parsed, then the body chunks after it.
#[derive(Default)]
struct Building {
    head_buf: BytesMut,
    head: Option<ResponseHead>,
    buffered: Vec<Bytes>,
    buffered_len: u64,
    /// What the app asked for with `X-Accel-Buffering` (removed from the
    /// response, as nginx does).
    buffering: Option<bool>,
}

impl Building {
    /// Takes FCGI_STDOUT bytes: into the head until it is complete, then
    /// into the buffered body.
    fn push(&mut self, data: Bytes, max_header_size: usize) -> Result<(), HeadError> {
        if self.head.is_some() {
            self.buffer(data);
            return Ok(());
        }
        self.head_buf.extend_from_slice(&data);
        if let Some((mut head, body_start)) = parse_head(&self.head_buf, max_header_size)? {
            self.buffering = take_accel_buffering(&mut head.headers);
            let rest = self.head_buf.split_off(body_start).freeze();
            if !rest.is_empty() {
                self.buffer(rest);
            }
            self.head = Some(head);
        }
        Ok(())
    }

    fn buffer(&mut self, data: Bytes) {
        self.buffered_len += data.len() as u64;
        self.buffered.push(data);
    }
}

/// The state of one exchange that its phases share.
struct Conversation<'e, 'c, B> {
    exchange: &'e mut Exchange<'c, B>,
    stderr: StderrLog,
    deadline: Instant,
    limits: ExchangeLimits,
    pid: u32,
    /// Until it fires, the slow-request deadline (`slow.rs`).
    slow: Option<SlowWatch>,
    /// The process (for the stack signal) and the request's URI.
    process: super::Process,
    uri: Arc<str>,
    /// A stack was asked for: FCGI_STDERR that opens with the marker is it.
    stack_asked: bool,
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
                    let _ = returned.send(Err(ExchangeError::Pool(PoolError::Unavailable {
                        reason: "instances keep closing their connections".into(),
                    })));
                    return;
                }
            }
        }
    }

    /// Runs the request on one instance, from the first byte written to
    /// END_REQUEST. Whatever happens, the connection is let go, stderr
    /// logged and the lease released in one place, before the client hears
    /// of the outcome: a finished instance is free before its client can
    /// send the next request.
    async fn exchange(
        &self,
        mut lease: Lease,
        head_tx: HeadSender,
        body_tx: &BodySender,
    ) -> Outcome {
        let app = lease.app().clone();
        let pid = lease.pid();
        let process = lease.process().clone();
        lease.serving(CurrentRequest {
            method: self.caller.method.clone(),
            uri: self.uri.clone(),
            client: self.caller.client.clone(),
            since: Instant::now(),
        });
        let reader = match self.body.reader().await {
            Ok(reader) => reader,
            Err(e) => {
                lease.finish(true);
                let _ = head_tx.send(Err(AnswerError::body(pid, e).into()));
                return Outcome::Done;
            }
        };
        let mut exchange =
            Exchange::start(lease.connection(), &self.params, reader, self.body.len());
        let slow = self.limits.slow_request_timeout.map(|after| {
            SlowWatch::new(
                after,
                app.clone(),
                self.uri.clone(),
                self.caller.clone(),
                process.clone(),
                self.limits.stack_signal,
            )
        });
        let mut talk = Conversation {
            exchange: &mut exchange,
            stderr: StderrLog::default(),
            deadline: Instant::now() + self.limits.request_timeout,
            limits: self.limits,
            pid,
            slow,
            process,
            uri: self.uri.clone(),
            stack_asked: false,
        };
        let (release, after) = talk.converse(head_tx, body_tx, &app).await;
        let mut stderr = std::mem::take(&mut talk.stderr);
        drop(exchange);
        stderr.flush(&app, pid, &self.uri);
        let (release, after) = settle(&lease, release, after).await;
        if matches!(release, Release::Discard) {
            warn!(app = %app, pid, uri = %self.uri, "instance was gone before the request reached it (its connection was closed before any byte was written); the request goes to another instance");
        }
        release.apply(lease);
        match after {
            After::Retry(head_tx) => return Outcome::Stale(head_tx),
            After::Answer {
                result,
                buffered,
                head_tx,
            } => deliver(result, buffered, head_tx, body_tx).await,
            After::Streamed { abort, outlet } => {
                let result = match abort {
                    Some(abort) => {
                        warn!(app = %app, pid, uri = %self.uri, "aborting a response in the middle: {abort}");
                        Err(format!("app {app} (pid {pid}): {abort}"))
                    }
                    None => Ok(()),
                };
                outlet.finish(result).await;
            }
        }
        Outcome::Done
    }
}

/// What is left to do once the instance is released.
enum After {
    /// Retry on another instance: the request never reached this one.
    Retry(HeadSender),
    /// Tell the client: the head (or the error), then the buffered body.
    Answer {
        result: Result<(ResponseHead, u32), AnswerError>,
        buffered: Vec<Bytes>,
        head_tx: HeadSender,
    },
    /// The head went out and the body streamed (or is still spooled); abort
    /// it for this reason.
    Streamed {
        abort: Option<String>,
        outlet: Outlet,
    },
}

impl After {
    /// The process died while serving the request: the client's error (or
    /// the reason the body is aborted) says how.
    fn crashed(self, pid: u32, exit: &Exit) -> After {
        let how = exit.describe();
        match self {
            After::Answer {
                result: Err(_),
                buffered,
                head_tx,
            } => After::Answer {
                result: Err(AnswerError::died(pid, how)),
                buffered,
                head_tx,
            },
            After::Streamed {
                abort: Some(_),
                outlet,
            } => After::Streamed {
                abort: Some(format!(
                    "the process died while serving the request ({how})"
                )),
                outlet,
            },
            other => other,
        }
    }
}

/// Hands a response that ended before it was committed to the client: the
/// head (or the error), then the buffered body.
async fn deliver(
    result: Result<(ResponseHead, u32), AnswerError>,
    buffered: Vec<Bytes>,
    head_tx: HeadSender,
    body_tx: &BodySender,
) {
    let delivered = result.is_ok();
    if head_tx.send(result.map_err(Into::into)).is_ok() && delivered {
        for chunk in buffered {
            if body_tx.send(Ok(chunk)).await.is_err() {
                break;
            }
        }
    }
}

impl<B: tokio::io::AsyncRead + Unpin> Conversation<'_, '_, B> {
    /// Both phases: what becomes of the instance, and what is left to
    /// tell the client once it is released.
    async fn converse(
        &mut self,
        head_tx: HeadSender,
        body_tx: &BodySender,
        app: &str,
    ) -> (Release, After) {
        let pid = self.pid;
        match self.until_committed(app).await {
            Uncommitted::Stale => (Release::Discard, After::Retry(head_tx)),
            Uncommitted::Failed { release, error } => (
                release,
                After::Answer {
                    result: Err(error),
                    buffered: Vec::new(),
                    head_tx,
                },
            ),
            Uncommitted::Ended {
                head,
                buffered,
                stderr_fails,
                clean,
            } => {
                let result = if stderr_fails {
                    let text = (self.limits.stderr_mode == StderrMode::ReturnStderrIn500)
                        .then(|| self.stderr.text());
                    Err(AnswerError::stderr(pid, text))
                } else {
                    head.map(|head| (head, pid))
                        .ok_or_else(|| AnswerError::no_head(pid))
                };
                (
                    Release::Finish { clean },
                    After::Answer {
                        result,
                        buffered,
                        head_tx,
                    },
                )
            }
            // Committed: the head goes out, then the body streams with
            // backpressure from the client; failures can only abort it now.
            Uncommitted::Committed {
                head,
                buffered,
                buffering,
            } => {
                let mut outlet = if head_tx.send(Ok((head, pid))).is_err() {
                    Outlet::Gone
                } else {
                    Outlet::new(body_tx.clone(), buffering.then_some(self.limits.spool))
                };
                let (release, abort) = self.stream(buffered, &mut outlet, app).await;
                (release, After::Streamed { abort, outlet })
            }
        }
    }

    /// Phase 1: until the response is committed, i.e. its head is parsed
    /// and `response_buffer_limit` bytes of body are buffered (or the
    /// response ended). Until then every failure is a clean error response.
    async fn until_committed(&mut self, app: &str) -> Uncommitted {
        let pid = self.pid;
        let mut response = Building::default();
        // stderr_mode asks for a 500: drain to END_REQUEST, then answer.
        let mut stderr_fails = false;
        loop {
            if !stderr_fails
                && response.buffered_len >= self.limits.response_buffer_limit
                && let Some(head) = response.head.take()
            {
                return Uncommitted::Committed {
                    head,
                    buffered: response.buffered,
                    buffering: response.buffering.unwrap_or(self.limits.buffering),
                };
            }
            match self.next_event().await {
                Ok(Event::Stdout(_)) if stderr_fails => {}
                Ok(Event::Stdout(data)) => {
                    if let Err(source) = response.push(data, self.limits.max_header_size) {
                        return Uncommitted::Failed {
                            release: Release::Broken(format!("malformed response head: {source}")),
                            error: AnswerError::head(pid, source),
                        };
                    }
                }
                Ok(Event::Stderr(data)) if self.is_stack(&data) => {
                    slow::log_stack(app, pid, &self.uri, &data)
                }
                Ok(Event::Stderr(data)) => {
                    self.stderr.push(&data);
                    match self.limits.stderr_mode {
                        StderrMode::IgnoreAndReturn200 => {}
                        StderrMode::ReturnStderrIn500 | StderrMode::ReturnGeneric500 => {
                            stderr_fails = true
                        }
                        StderrMode::TerminateProcess => {
                            return Uncommitted::Failed {
                                release: Release::Terminate(STDERR_TERMINATES),
                                error: AnswerError::stderr(pid, None),
                            };
                        }
                    }
                }
                Ok(Event::End { .. }) => {
                    return Uncommitted::Ended {
                        head: response.head,
                        buffered: response.buffered,
                        stderr_fails,
                        clean: self.exchange.stdin_complete(),
                    };
                }
                Err(Failure::Timeout { which, after }) => {
                    self.last_words(app).await;
                    return Uncommitted::Failed {
                        release: Release::Terminate(which),
                        error: AnswerError::timeout(pid, which, after),
                    };
                }
                // No replay: only a request of which no byte was written
                // may go to another instance.
                Err(Failure::Client(e)) if !self.exchange.wrote_any() && e.is_peer_gone() => {
                    return Uncommitted::Stale;
                }
                Err(Failure::Client(source)) => {
                    return Uncommitted::Failed {
                        release: Release::after(&source),
                        error: AnswerError::connection(pid, source),
                    };
                }
            }
        }
    }

    /// Phase 2: the head is out; the buffered chunks and the rest of the
    /// body go to the client through `outlet`, at the app's speed when it
    /// spools. Returns what becomes of the instance, and why the response
    /// must be aborted, if it must.
    async fn stream(
        &mut self,
        buffered: Vec<Bytes>,
        outlet: &mut Outlet,
        app: &str,
    ) -> (Release, Option<String>) {
        for chunk in buffered {
            outlet.send(chunk, app, self.pid).await;
        }
        loop {
            match self.next_event().await {
                Ok(Event::Stdout(data)) => outlet.send(data, app, self.pid).await,
                Ok(Event::Stderr(data)) if self.is_stack(&data) => {
                    slow::log_stack(app, self.pid, &self.uri, &data)
                }
                Ok(Event::Stderr(data)) => {
                    self.stderr.push(&data);
                    if self.limits.stderr_mode == StderrMode::TerminateProcess {
                        return (
                            Release::Terminate(STDERR_TERMINATES),
                            Some("it wrote to FCGI_STDERR after the response head was sent".into()),
                        );
                    }
                }
                Ok(Event::End { .. }) => {
                    let clean = self.exchange.stdin_complete();
                    return (Release::Finish { clean }, None);
                }
                Err(Failure::Timeout { which, after }) => {
                    self.last_words(app).await;
                    return (
                        Release::Terminate(which),
                        Some(format!("no answer within {after:?} ({which})")),
                    );
                }
                Err(Failure::Client(source)) => {
                    return (Release::after(&source), Some(source.to_string()));
                }
            }
        }
    }

    /// The next event of the exchange, within `activity_timeout` and what
    /// is left of `request_timeout`. The slow-request deadline, while it
    /// has not fired, shares the one timer: when it comes first, the
    /// request is logged and the wait goes on (the event future is kept,
    /// so nothing read is lost).
    async fn next_event(&mut self) -> Result<Event, Failure> {
        let limits = &self.limits;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let (wait, which, after) = if remaining <= limits.activity_timeout {
            (remaining, "request_timeout", limits.request_timeout)
        } else {
            (
                limits.activity_timeout,
                "activity_timeout",
                limits.activity_timeout,
            )
        };
        let give_up = Instant::now() + wait;
        let event = self.exchange.next_event();
        tokio::pin!(event);
        loop {
            let slow_at = self.slow.as_ref().map(|s| s.at).filter(|at| *at < give_up);
            tokio::select! {
                result = &mut event => return result.map_err(Failure::Client),
                () = tokio::time::sleep_until(slow_at.unwrap_or(give_up)) => {
                    if slow_at.is_none() {
                        return Err(Failure::Timeout { which, after });
                    }
                    if let Some(watch) = self.slow.take() {
                        self.stack_asked |= watch.fire().await;
                    }
                }
            }
        }
    }

    /// Whether an FCGI_STDERR record is the stack the gateway asked for.
    fn is_stack(&self, data: &[u8]) -> bool {
        slow::is_stack(self.stack_asked, data)
    }

    /// A timeout stops the request: an app that can show its stack is
    /// asked for it, and given [`slow::STACK_WAIT`] to send it, so the log
    /// says where the request was when it was stopped.
    async fn last_words(&mut self, app: &str) {
        let Some(signal) = self.limits.stack_signal else {
            return;
        };
        self.process.signal(signal);
        self.stack_asked = true;
        let until = Instant::now() + slow::STACK_WAIT;
        loop {
            match tokio::time::timeout_at(until, self.exchange.next_event()).await {
                Ok(Ok(Event::Stderr(data))) if self.is_stack(&data) => {
                    slow::log_stack(app, self.pid, &self.uri, &data);
                    return;
                }
                Ok(Ok(Event::Stderr(data))) => self.stderr.push(&data),
                Ok(Ok(Event::Stdout(_))) => {}
                _ => return,
            }
        }
    }
}

/// Why an instance is stopped after writing to FCGI_STDERR.
const STDERR_TERMINATES: &str = "it wrote to FCGI_STDERR (stderr_mode = terminate-process)";

/// Why waiting for the app's next event failed.
enum Failure {
    Client(ClientError),
    Timeout {
        which: &'static str,
        after: Duration,
    },
}

enum Outcome {
    Done,
    /// The instance was dead before the request reached it: try another.
    Stale(HeadSender),
}

/// FCGI_STDERR text of one request, logged once at the end of it.
#[derive(Debug, Default)]
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
