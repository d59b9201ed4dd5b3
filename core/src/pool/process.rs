//! Starting and supervising one app process.
//!
//! Each process gets its own listening socket as fd 0
//! (`FCGI_LISTENSOCK_FILENO`), which is how php-cgi, libfcgi programs and
//! fcgiwrap expect to be started. A process has started once it has
//! accepted the gateway's connection: one that exits before that failed to
//! start (a crash loop, for rapid-fail protection), one that exits later
//! died idle or while serving a request. A supervisor task owns the child:
//! it reaps it (no zombies), logs how it ended, and is the only place that
//! signals it, so a signal can never hit a recycled pid.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::{Protocol, Rlimits, RunAs};
use crate::fcgi::client::Connection;
use crate::isolate::{self, Tracked};

/// Everything needed to start processes of one app, resolved once.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub app: Arc<str>,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    pub protocol: Protocol,
    /// Private (0700) folder for this app's sockets.
    pub socket_dir: PathBuf,
    /// How long a new process may take to accept its connection
    /// (`activity_timeout`: the longest silence allowed from an app).
    pub startup_timeout: Duration,
    /// Who the processes run as (`user`, `group`).
    pub run_as: RunAs,
    /// Their limits (`rlimit_*`), and the `prlimit` that sets them.
    pub rlimits: Rlimits,
    pub prlimit: Option<PathBuf>,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Creating the socket, running the program or connecting failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// It ran, then exited before it accepted its connection.
    #[error(
        "the process (pid {pid}) exited during start-up, before accepting a connection ({how})"
    )]
    Exited { pid: u32, how: String },
    /// It ran, but did not accept its connection in time; it was killed.
    #[error(
        "the process (pid {pid}) did not accept a connection within {after:?} (activity_timeout); killed"
    )]
    NoAccept { pid: u32, after: Duration },
}

impl StartError {
    /// A process ran and failed, as opposed to one that could not be run.
    pub fn is_startup_failure(&self) -> bool {
        !matches!(self, StartError::Io(_))
    }
}

/// A request to the supervisor.
#[derive(Debug, Clone, Copy)]
enum Control {
    /// Stop the process: SIGTERM and wait `grace`, then SIGKILL; with a
    /// zero grace, SIGKILL at once.
    Terminate { grace: Duration },
    /// Send it this signal (a stack dump on request: `slow.rs`).
    Signal(Signal),
    /// A unit test's stand-in process dies on its own with this status.
    #[cfg(test)]
    Die(ExitStatus),
}

/// The gateway's handle on a running process. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Process {
    pid: u32,
    commands: mpsc::UnboundedSender<Control>,
    exited: watch::Receiver<Option<Exit>>,
    life: Arc<Life>,
}

/// What the pool knows of a process between requests, shared by its
/// handles. The pool changes it under its lock, so the supervisor's report
/// of an exit and the end of a request never judge one exit twice.
#[derive(Debug, Default)]
struct Life {
    /// A request holds the process: an exit now is that request's to judge.
    serving: AtomicBool,
    /// Requests it completed.
    served: AtomicU64,
    /// Its exit was judged (a request crash, a failure counted for
    /// rapid-fail protection, or a clean exit).
    judged: AtomicBool,
    /// The request it serves, for the status page: written by the request
    /// once it holds the process, cleared when it lets go; a lock of its
    /// own, so that neither side ever waits on the pool's.
    current: std::sync::Mutex<Option<super::CurrentRequest>>,
}

/// How a process ended, as the supervisor saw it.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub status: ExitStatus,
    /// The gateway asked it to stop (timeout, recycling, shutdown...).
    pub requested: bool,
}

impl Exit {
    /// How it ended, for people: "exit status 3", "killed by SIGKILL".
    pub fn describe(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => match Signal::try_from(signal) {
                Ok(signal) => format!("killed by {}", signal.as_str()),
                Err(_) => format!("killed by signal {signal}"),
            },
            (None, None) => "ended".to_string(),
        }
    }
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process has exited (and been reaped).
    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// How it exited, once it has (and been reaped).
    pub fn exit(&self) -> Option<Exit> {
        *self.exited.borrow()
    }

    /// Waits at most `limit` for the process to be reaped: after its
    /// connection broke, to learn how it ended.
    pub async fn exit_within(&self, limit: Duration) -> Option<Exit> {
        let _ = tokio::time::timeout(limit, self.wait()).await;
        self.exit()
    }

    /// A request holds the process (`true`) or gave it back.
    pub fn set_serving(&self, serving: bool) {
        self.life.serving.store(serving, Ordering::Release);
        if !serving {
            *self.current_slot() = None;
        }
    }

    /// The request the process serves now (as its lease recorded it).
    pub fn current(&self) -> Option<super::CurrentRequest> {
        self.current_slot().clone()
    }

    /// Records the request the process serves (cleared when it is let go).
    pub(super) fn set_current(&self, request: super::CurrentRequest) {
        *self.current_slot() = Some(request);
    }

    fn current_slot(&self) -> std::sync::MutexGuard<'_, Option<super::CurrentRequest>> {
        // Only a copy of request labels lives under it: a panic elsewhere
        // cannot leave it half-written.
        self.life
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a request holds the process.
    pub fn is_serving(&self) -> bool {
        self.life.serving.load(Ordering::Acquire)
    }

    /// The process completed a request.
    pub fn mark_served(&self) {
        self.life.served.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether it ever completed a request.
    pub fn has_served(&self) -> bool {
        self.served() > 0
    }

    /// How many requests it completed.
    pub fn served(&self) -> u64 {
        self.life.served.load(Ordering::Acquire)
    }

    /// Asks the supervisor to stop the process (SIGTERM and `grace`, then SIGKILL; SIGKILL at once with a zero grace).
    pub fn terminate(&self, grace: Duration) {
        // A closed channel means the supervisor is gone: the process already exited.
        let _ = self.commands.send(Control::Terminate { grace });
    }

    /// Asks the supervisor to send the process `signal` (the only place
    /// that signals it, so never a recycled pid).
    pub fn signal(&self, signal: Signal) {
        let _ = self.commands.send(Control::Signal(signal));
    }

    /// Claims the judgement of this process's exit (or of its failure):
    /// true the first time only, so the exchange and the supervisor never
    /// count one process twice.
    pub fn claim_exit(&self) -> bool {
        !self.life.judged.swap(true, Ordering::AcqRel)
    }

    /// Waits until the process has exited.
    pub async fn wait(&self) {
        let mut exited = self.exited.clone();
        // An error means the supervisor ended, which it only does after the exit.
        let _ = exited.wait_for(|status| status.is_some()).await;
    }
}

#[cfg(test)]
impl Process {
    /// A process that is not there, for the pool's unit tests. Its stand-in
    /// supervisor reports a requested, successful exit at the first
    /// terminate request, as a real app that obeys SIGTERM would, or the
    /// death [`die`](Self::die) asks for.
    pub(super) fn stand_in(pid: u32, on_exit: impl FnOnce(Exit) + Send + 'static) -> Process {
        use std::os::unix::process::ExitStatusExt;
        let (commands, mut command_rx) = mpsc::unbounded_channel();
        let (exited_tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            // None: every handle is gone without a stop; nothing to report.
            let exit = loop {
                match command_rx.recv().await {
                    None => return,
                    Some(Control::Signal(_)) => {}
                    Some(Control::Terminate { .. }) => {
                        break Exit {
                            status: ExitStatus::from_raw(0),
                            requested: true,
                        };
                    }
                    Some(Control::Die(status)) => {
                        break Exit {
                            status,
                            requested: false,
                        };
                    }
                }
            };
            let _ = exited_tx.send(Some(exit));
            on_exit(exit);
        });
        Process {
            pid,
            commands,
            exited,
            life: Arc::default(),
        }
    }

    /// Makes a stand-in process die on its own: a raw wait status (a
    /// signal number, or an exit code shifted left by 8).
    pub(super) fn die(&self, raw_status: i32) {
        use std::os::unix::process::ExitStatusExt;
        let _ = self
            .commands
            .send(Control::Die(ExitStatus::from_raw(raw_status)));
    }
}

/// Starts one process listening on a fresh socket, connects to it, and
/// waits until the process has accepted the connection (its start-up is
/// over). `on_spawned` is told of the process as soon as it runs (so the
/// pool can stop it while it starts); `on_exit` runs in the supervisor
/// after the process was reaped.
pub async fn spawn(
    spec: &ProcessSpec,
    instance_id: u64,
    on_spawned: impl FnOnce(&Process),
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> Result<(Process, Connection), StartError> {
    let (listener, endpoint) = listen(spec, instance_id)?;
    // Our copy tells when the process accepts (see `accepted`); it is
    // dropped when spawn returns, so from then on only the child holds the
    // listening socket and its death resets pending connections.
    let watched = match listener.try_clone() {
        Ok(fd) => fd,
        Err(e) => {
            endpoint.remove();
            return Err(e.into());
        }
    };
    let child = match run(spec, listener) {
        Ok(started) => started,
        Err(e) => {
            endpoint.remove();
            return Err(e.into());
        }
    };
    let process = supervised(child, &spec.app, on_exit);
    on_spawned(&process);
    let pid = process.pid;
    debug!(app = %spec.app, pid, "process started; waiting for it to accept its connection");

    let connection = endpoint.connect().await;
    // Once connected nobody needs the path: unlinking it means no other
    // local process can ever reach the app's socket.
    endpoint.remove();
    let conn = match connection {
        Ok(conn) => conn,
        Err(e) => {
            process.terminate(Duration::ZERO);
            return Err(e.into());
        }
    };
    match accepted(&watched, &process, spec.startup_timeout).await {
        Accept::Accepted => Ok((process, conn)),
        Accept::Exited(exit) => Err(StartError::Exited {
            pid,
            how: exit.describe(),
        }),
        Accept::TimedOut => {
            process.terminate(Duration::ZERO);
            Err(StartError::NoAccept {
                pid,
                after: spec.startup_timeout,
            })
        }
    }
}

/// Runs the program with `listener` as its fd 0 and a clean environment,
/// as the app's user, limited, in a process group of its own.
fn run(spec: &ProcessSpec, listener: OwnedFd) -> io::Result<(Child, Tracked)> {
    let mut command = isolate::command(
        &spec.program,
        &spec.args,
        &spec.run_as,
        &spec.rlimits,
        spec.prlimit.as_deref(),
    );
    command
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::from(listener))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    isolate::spawn(&mut command)
}

/// Hands a running child to its supervisor task (and its output to the
/// log); returns the gateway's handle on it.
fn supervised(
    (mut child, tracked): (Child, Tracked),
    app: &Arc<str>,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> Process {
    let pid = child.id().unwrap_or_default();
    forward_output(child.stdout.take(), app, pid, "stdout");
    forward_output(child.stderr.take(), app, pid, "stderr");
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (exited_tx, exited) = watch::channel(None);
    tokio::spawn(supervise(
        child,
        tracked,
        app.clone(),
        pid,
        command_rx,
        exited_tx,
        on_exit,
    ));
    Process {
        pid,
        commands,
        exited,
        life: Arc::default(),
    }
}

/// How a new process's start-up ended.
enum Accept {
    Accepted,
    Exited(Exit),
    TimedOut,
}

/// Waits until the process has accepted the gateway's connection: its
/// listening socket (of which `listener` is our copy) no longer holds a
/// pending connection. No event says that a queue became empty, so it is
/// polled, at short intervals first: php-cgi accepts within milliseconds,
/// an interpreter loading a framework within seconds.
async fn accepted(listener: &OwnedFd, process: &Process, limit: Duration) -> Accept {
    const FIRST_PAUSE: Duration = Duration::from_millis(1);
    const LONGEST_PAUSE: Duration = Duration::from_millis(4);
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = FIRST_PAUSE;
    loop {
        if !has_pending_connection(listener) {
            return Accept::Accepted;
        }
        if let Some(exit) = process.exit() {
            return Accept::Exited(exit);
        }
        if tokio::time::Instant::now() >= deadline {
            return Accept::TimedOut;
        }
        tokio::select! {
            () = process.wait() => {}
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Whether a listening socket has a connection waiting to be accepted.
/// If it cannot be asked, the process is taken as started (as before this
/// check existed): a request then finds out.
fn has_pending_connection(listener: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN)),
        _ => false,
    }
}

/// Where the gateway connects to reach a new process.
enum Endpoint {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

impl Endpoint {
    async fn connect(&self) -> io::Result<Connection> {
        match self {
            Endpoint::Unix(path) => Connection::connect_unix(path).await,
            Endpoint::Tcp(addr) => Connection::connect_tcp(*addr).await,
        }
    }

    fn remove(&self) {
        if let Endpoint::Unix(path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates the listening socket a new process inherits as fd 0.
fn listen(spec: &ProcessSpec, instance_id: u64) -> io::Result<(OwnedFd, Endpoint)> {
    match spec.protocol {
        Protocol::Unix => {
            let path = super::socket::socket_path(&spec.socket_dir, instance_id);
            let _ = std::fs::remove_file(&path);
            let listener = std::os::unix::net::UnixListener::bind(&path)?;
            Ok((OwnedFd::from(listener), Endpoint::Unix(path)))
        }
        Protocol::Tcp => {
            let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
            let addr = listener.local_addr()?;
            Ok((OwnedFd::from(listener), Endpoint::Tcp(addr)))
        }
    }
}

/// Copies a process's stdout or stderr to the gateway log, line by line.
fn forward_output(
    stream: Option<impl AsyncRead + Unpin + Send + 'static>,
    app: &Arc<str>,
    pid: u32,
    name: &'static str,
) {
    let Some(stream) = stream else { return };
    let app = app.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    info!(target: "fastgate::app", app = %app, pid, stream = name, "{line}")
                }
                Ok(None) => break,
                // Not UTF-8: log what we can rather than losing the stream.
                Err(e) => {
                    warn!(target: "fastgate::app", app = %app, pid, stream = name, error = %e, "unreadable output line");
                    break;
                }
            }
        }
    });
}

/// Owns the child until it has exited: reaps it, applies termination
/// requests, reports the exit.
async fn supervise(
    mut child: Child,
    tracked: Tracked,
    app: Arc<str>,
    pid: u32,
    mut commands: mpsc::UnboundedReceiver<Control>,
    exited: watch::Sender<Option<Exit>>,
    on_exit: impl FnOnce(Exit),
) {
    let mut deadline: Option<tokio::time::Instant> = None;
    // Only a stop we signalled counts as requested: a process that had
    // already died on its own when asked to stop did not die of our doing.
    let mut requested = false;
    let status = loop {
        let kill_at = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status,
            Some(command) = commands.recv() => match command {
                _ if matches!(child.try_wait(), Ok(Some(_))) => {}
                Control::Terminate { grace } if grace.is_zero() => {
                    requested = true;
                    kill_group(&mut child, Signal::SIGKILL);
                }
                Control::Terminate { grace } => {
                    requested = true;
                    if deadline.is_none() {
                        kill_group(&mut child, Signal::SIGTERM);
                        deadline = Some(tokio::time::Instant::now() + grace);
                    }
                }
                Control::Signal(signal) => {
                    if let Some(id) = child.id() {
                        let _ = kill(Pid::from_raw(id as i32), signal);
                    }
                }
                #[cfg(test)]
                Control::Die(_) => {}
            },
            () = kill_at => {
                warn!(app = %app, pid, "process ignored SIGTERM; sending SIGKILL");
                kill_group(&mut child, Signal::SIGKILL);
                deadline = None;
            }
        }
    };
    let status = status.unwrap_or_else(|e| {
        // wait() only fails if the child was already reaped elsewhere.
        warn!(app = %app, pid, error = %e, "could not wait for the process");
        std::os::unix::process::ExitStatusExt::from_raw(0)
    });
    // Reaped: from now on a process the app left behind is the reaper's.
    drop(tracked);
    log_exit(&app, pid, status);
    let exit = Exit { status, requested };
    let _ = exited.send(Some(exit));
    on_exit(exit);
}

/// Signals the process's whole group (it leads one: `isolate::command`),
/// so that what it started stops with it. Only called before the process
/// is reaped, while its pid (and so its group id) cannot be reused.
fn kill_group(child: &mut Child, signal: Signal) {
    if let Some(id) = child.id() {
        let pid = Pid::from_raw(id as i32);
        if nix::sys::signal::killpg(pid, signal).is_err() {
            let _ = kill(pid, signal);
        }
    } else if signal == Signal::SIGKILL {
        let _ = child.start_kill();
    }
}

fn log_exit(app: &str, pid: u32, status: ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => debug!(app = %app, pid, "process exited"),
        (Some(code), _) => info!(app = %app, pid, code, "process exited with an error code"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal)
                .map(|s| s.as_str())
                .unwrap_or("unknown");
            info!(app = %app, pid, signal = name, "process killed by a signal")
        }
        (None, None) => info!(app = %app, pid, "process ended"),
    }
}

/// Creates a private (0700) directory.
pub fn private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}
