//! The RFC 3875 CGI runner: one process per request.
//!
//! The script is `execve`d directly (or its configured interpreter with the
//! script as the only argument), never through a shell, with an explicit
//! environment made of the request's CGI variables and nothing of the
//! gateway's own; the query string never becomes argv (CVE-2012-1823). The
//! request body goes to stdin; stdout is parsed like a FastCGI app's output
//! (`Status`, `Location`, headers, then the body, streamed); scripts named
//! `nph-*` write a whole HTTP response head themselves; stderr goes to the
//! log. Each process runs in its own process group, so a timeout kills the
//! script and everything it started. The number of scripts running at once
//! is bounded like a pool (`max_instances`, a FIFO queue of
//! `queue_length`, 503 beyond it).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use http::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::answer::{Answer, AnswerError};
use super::params::Params;
use super::response::{HeadError, ResponseHead, ResponseKind, parse_head, take_accel_buffering};
use crate::body::RequestBody;
use crate::config::{AppSettings, CgiSettings, Rlimits, RunAs};
use crate::isolate;
use crate::spool::{Outlet, SpoolLimits};

/// One CGI app: its limits and its interpreter.
#[derive(Debug)]
pub struct CgiApp {
    name: Arc<str>,
    interpreter: Option<PathBuf>,
    /// The app's `env` (and `inherit_env`), under the request's variables.
    env: Vec<(String, String)>,
    slots: Arc<Semaphore>,
    max: usize,
    waiting: AtomicUsize,
    queue_length: usize,
    timeout: Duration,
    max_header_size: usize,
    /// `response_buffering` and the spool's limits, for a slow client.
    buffering: bool,
    spool: SpoolLimits,
    /// Who scripts run as, their limits and the `prlimit` that sets them.
    run_as: RunAs,
    rlimits: Rlimits,
    prlimit: Option<PathBuf>,
}

impl CgiApp {
    /// The runner of `app`: its interpreter, the environment its pool's
    /// processes would get (`inherit_env`, then `[app.env]`), its
    /// `max_instances`, `queue_length` and `request_timeout`.
    pub fn new(app: &AppSettings, cgi: &CgiSettings, max_header_size: usize) -> CgiApp {
        let max = app.max_instances.max(1) as usize;
        let mut env = app.inherited_env();
        env.extend(app.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        CgiApp {
            name: Arc::from(app.name.as_str()),
            interpreter: cgi.interpreter.clone(),
            env: env.into_iter().collect(),
            slots: Arc::new(Semaphore::new(max)),
            max,
            waiting: AtomicUsize::new(0),
            queue_length: app.queue_length,
            timeout: app.request_timeout,
            max_header_size,
            buffering: app.response_buffering,
            spool: SpoolLimits {
                memory: usize::try_from(app.response_memory_buffer).unwrap_or(usize::MAX),
                file: app.max_temp_file_size,
            },
            run_as: app.run_as.clone(),
            rlimits: app.rlimits.clone(),
            prlimit: isolate::prlimit_for(&app.rlimits),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `script` for one request and waits for its response head.
    pub async fn run(
        &self,
        script: &Path,
        params: Params,
        body: Arc<RequestBody>,
        uri: &str,
    ) -> Result<Answer, AnswerError> {
        let permit = self.slot().await?;
        let deadline = Instant::now() + self.timeout;
        let (mut child, tracked) = isolate::spawn(&mut self.command(script, &params))
            .map_err(|source| AnswerError::exec(script.to_path_buf(), source))?;
        let pid = child.id().unwrap_or(0);
        debug!(app = %self.name, pid, script = %script.display(), "CGI script started");

        // The body goes in while the response comes out: a script may
        // answer before it has read everything.
        if let Some(mut stdin) = child.stdin.take() {
            tokio::spawn(async move {
                if let Ok(mut reader) = body.reader().await {
                    let _ = tokio::io::copy(&mut reader, &mut stdin).await;
                }
                let _ = stdin.shutdown().await;
            });
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, self.name.clone(), pid, Arc::from(uri)));
        }
        let Some(stdout) = child.stdout.take() else {
            return Err(AnswerError::no_head(pid));
        };
        let mut script_run = Script {
            app: self.name.clone(),
            child,
            pid,
            deadline,
            stdout,
            permit,
            _tracked: tracked,
        };
        let nph = script
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("nph-"));
        let (mut head, rest) = match script_run.read_head(nph, self.max_header_size).await {
            Ok(read) => read,
            Err(HeadFailure::Head(source)) => {
                script_run.kill().await;
                return Err(AnswerError::head(pid, source));
            }
            Err(HeadFailure::Ended) => {
                tokio::spawn(script_run.finish());
                return Err(AnswerError::no_head(pid));
            }
            Err(HeadFailure::Timeout) => {
                script_run.kill().await;
                warn!(app = %self.name, pid, "CGI script killed at its timeout");
                return Err(AnswerError::timeout(pid, "cgi_timeout", self.timeout));
            }
        };
        let (tx, rx) = mpsc::channel(BODY_CHANNEL);
        // A script, like a pool instance, is not held by a slow client: its
        // output is spooled once the client falls behind.
        let buffering = take_accel_buffering(&mut head.headers).unwrap_or(self.buffering);
        let outlet = Outlet::new(tx, buffering.then_some(self.spool));
        tokio::spawn(script_run.stream_body(rest, outlet));
        Ok(Answer {
            head,
            pid,
            body: rx,
        })
    }

    /// The script's command: `execve`d directly (or through the
    /// interpreter) with an explicit environment, in its own process group,
    /// as the app's user, with its limits.
    fn command(&self, script: &Path, params: &Params) -> Command {
        let (program, args) = match &self.interpreter {
            Some(interpreter) => (interpreter.as_path(), vec![script]),
            None => (script, vec![]),
        };
        let mut command = isolate::command(
            program,
            &args,
            &self.run_as,
            &self.rlimits,
            self.prlimit.as_deref(),
        );
        command.env_clear();
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        for (name, value) in params.iter() {
            // Names that cannot be environment variables are left out.
            if !name.is_empty()
                && !name.contains(&b'=')
                && !name.contains(&0)
                && !value.contains(&0)
            {
                command.env(OsStr::from_bytes(name), OsStr::from_bytes(value));
            }
        }
        if let Some(dir) = script.parent() {
            command.current_dir(dir);
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Waits for one of the `max_instances` slots, first come first served.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, AnswerError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.queue_length {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(AnswerError::queue_full(self.max, waiting));
        }
        let permit = self.slots.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| AnswerError::queue_full(self.max, waiting))
    }
}

/// Logs a script's stderr line by line, tagged with app, pid and URI.
async fn log_stderr(stderr: ChildStderr, app: Arc<str>, pid: u32, uri: Arc<str>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        info!(app = %app, pid, uri = %uri, stream = "stderr", "{line}");
    }
}

/// Why no response head came from a script.
enum HeadFailure {
    Head(HeadError),
    /// Its output ended (or failed) first.
    Ended,
    Timeout,
}

/// A running script: its process, its output and the slot it holds, which
/// is given back when this is dropped.
struct Script {
    app: Arc<str>,
    child: Child,
    pid: u32,
    deadline: Instant,
    stdout: ChildStdout,
    permit: OwnedSemaphorePermit,
    /// Keeps the reaper off the script until it is reaped (or handed to
    /// tokio, which kills and reaps a dropped child).
    _tracked: isolate::Tracked,
}

impl Script {
    /// Reads until a whole response head is parsed; returns it with the
    /// body bytes that came along.
    async fn read_head(
        &mut self,
        nph: bool,
        limit: usize,
    ) -> Result<(ResponseHead, BytesMut), HeadFailure> {
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            let parsed = if nph {
                parse_nph_head(&buf, limit)
            } else {
                parse_head(&buf, limit)
            };
            match parsed {
                Ok(Some((head, used))) => {
                    let _ = buf.split_to(used);
                    return Ok((head, buf));
                }
                Ok(None) => {}
                Err(source) => return Err(HeadFailure::Head(source)),
            }
            match tokio::time::timeout_at(self.deadline, self.stdout.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadFailure::Ended),
                Ok(Ok(_)) => {}
                Err(_) => return Err(HeadFailure::Timeout),
            }
        }
    }

    /// Streams the rest of the output to `tx`, until it ends, the client
    /// goes away (the script is killed) or the deadline passes.
    async fn stream_body(mut self, first: BytesMut, mut outlet: Outlet) {
        let (app, pid) = (self.app.clone(), self.pid);
        if !first.is_empty() {
            outlet.send(first.freeze(), &app, pid).await;
        }
        loop {
            if matches!(outlet, Outlet::Gone) {
                // The client went away.
                self.kill().await;
                return;
            }
            let mut chunk = BytesMut::with_capacity(16 * 1024);
            match tokio::time::timeout_at(self.deadline, self.stdout.read_buf(&mut chunk)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) => outlet.send(chunk.freeze(), &app, pid).await,
                Ok(Err(e)) => {
                    outlet.finish(Err(e.to_string())).await;
                    self.finish().await;
                    return;
                }
                Err(_) => {
                    warn!(app = %self.app, pid = self.pid, "CGI script killed at its timeout (response cut off)");
                    self.kill().await;
                    outlet.finish(Err("CGI timeout".into())).await;
                    return;
                }
            }
        }
        // The response ends with the output, whether or not the script has
        // exited yet.
        outlet.finish(Ok(())).await;
        self.finish().await;
    }

    async fn kill(&mut self) {
        kill(&mut self.child, self.pid).await;
    }

    /// Waits for a script whose output has ended to exit, until its
    /// deadline: a script that closes its output and lingers is killed then
    /// (with its process group), so it holds its slot no longer than
    /// `cgi_timeout`.
    async fn finish(mut self) {
        let waited = tokio::time::timeout_at(self.deadline, self.child.wait()).await;
        if let Ok(Ok(status)) = waited {
            log_signal(&self.app, self.pid, status);
        }
        if waited.is_err() {
            warn!(
                app = %self.app,
                pid = self.pid,
                "CGI script still running at its timeout after its output ended: killed"
            );
            self.kill().await;
        }
        drop(self.permit);
    }
}

/// Logs a script killed by a signal; a CPU limit says so (SIGXCPU at
/// `rlimit_cpu`, SIGKILL a second later).
fn log_signal(app: &str, pid: u32, status: std::process::ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    let Some(signal) = status.signal() else {
        return;
    };
    let name = nix::sys::signal::Signal::try_from(signal).map_or("unknown", |s| s.as_str());
    if signal == nix::libc::SIGXCPU {
        warn!(app = %app, pid, signal = name, "CGI script killed at its CPU limit (rlimit_cpu)");
    } else {
        info!(app = %app, pid, signal = name, "CGI script killed by a signal");
    }
}

/// Chunks of output in flight to the client before a slow one is spooled.
const BODY_CHANNEL: usize = 4;

/// Kills the script's whole process group and reaps it.
async fn kill(child: &mut Child, pid: u32) {
    if pid != 0 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill().await;
}

/// An NPH script's head: `HTTP/1.x NNN reason`, then headers. The gateway
/// still frames the response itself (keep-alive, chunking); the status
/// line's code is kept, and no `Location` rewriting happens.
fn parse_nph_head(buf: &[u8], limit: usize) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let Some(line_end) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limit {
            return Err(HeadError::TooLarge { limit });
        }
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[..line_end]);
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(HeadError::Malformed(format!("NPH status line {line:?}")));
    };
    let status = code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| HeadError::Malformed(format!("NPH status line {line:?}")))?;
    let rest = &buf[line_end + 1..];
    Ok(parse_head(rest, limit)?.map(|(mut head, used)| {
        head.status = status;
        head.kind = ResponseKind::Document;
        (head, line_end + 1 + used)
    }))
}
