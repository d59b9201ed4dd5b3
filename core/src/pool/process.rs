//! Starting and supervising one app process.
//!
//! Each process gets its own listening socket as fd 0
//! (`FCGI_LISTENSOCK_FILENO`), which is how php-cgi, libfcgi programs and
//! fcgiwrap expect to be started. A supervisor task owns the child: it
//! reaps it (no zombies), logs how it ended, and is the only place that
//! signals it, so a signal can never hit a recycled pid.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::Protocol;
use crate::fcgi::client::Connection;

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
}

/// A request to the supervisor.
#[derive(Debug, Clone, Copy)]
enum Control {
    /// Stop the process: SIGTERM and wait `grace`, then SIGKILL; with a
    /// zero grace, SIGKILL at once.
    Terminate { grace: Duration },
}

/// The gateway's handle on a running process. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Process {
    pid: u32,
    commands: mpsc::UnboundedSender<Control>,
    exited: watch::Receiver<Option<ExitStatus>>,
    /// Set once a failure of this process has been counted (rapid-fail
    /// protection), so the exchange and the supervisor never count it twice.
    failure_counted: Arc<AtomicBool>,
}

/// How a process ended, as the supervisor saw it.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub status: ExitStatus,
    /// The gateway asked it to stop (timeout, recycling, shutdown...).
    pub requested: bool,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process has exited (and been reaped).
    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Asks the supervisor to stop the process (SIGTERM and `grace`, then SIGKILL; SIGKILL at once with a zero grace).
    pub fn terminate(&self, grace: Duration) {
        // A closed channel means the supervisor is gone: the process already exited.
        let _ = self.commands.send(Control::Terminate { grace });
    }

    /// Marks a failure of this process as counted; false if it already was.
    pub fn count_failure_once(&self) -> bool {
        !self.failure_counted.swap(true, Ordering::AcqRel)
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
    /// terminate request, as a real app that obeys SIGTERM would.
    pub(super) fn stand_in(pid: u32, on_exit: impl FnOnce(Exit) + Send + 'static) -> Process {
        use std::os::unix::process::ExitStatusExt;
        let (commands, mut command_rx) = mpsc::unbounded_channel();
        let (exited_tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            // None: every handle is gone without a stop; nothing to report.
            if command_rx.recv().await.is_some() {
                let status = ExitStatus::from_raw(0);
                let _ = exited_tx.send(Some(status));
                on_exit(Exit {
                    status,
                    requested: true,
                });
            }
        });
        Process {
            pid,
            commands,
            exited,
            failure_counted: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Starts one process listening on a fresh socket and connects to it.
/// `on_exit` runs in the supervisor after the process was reaped.
pub async fn spawn(
    spec: &ProcessSpec,
    instance_id: u64,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> io::Result<(Process, Connection)> {
    let (listener, endpoint) = listen(spec, instance_id)?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::from(listener))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let spawned = command.spawn();
    // Our copy of the listening socket goes with `command`: from here on only
    // the child holds it, so its death resets pending connections.
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            endpoint.remove();
            return Err(e);
        }
    };
    let pid = child.id().unwrap_or_default();
    forward_output(child.stdout.take(), &spec.app, pid, "stdout");
    forward_output(child.stderr.take(), &spec.app, pid, "stderr");

    let (commands, command_rx) = mpsc::unbounded_channel();
    let (exited_tx, exited) = watch::channel(None);
    tokio::spawn(supervise(
        child,
        spec.app.clone(),
        pid,
        command_rx,
        exited_tx,
        on_exit,
    ));
    let process = Process {
        pid,
        commands,
        exited,
        failure_counted: Arc::new(AtomicBool::new(false)),
    };

    let connection = endpoint.connect().await;
    // Once connected nobody needs the path: unlinking it means no other
    // local process can ever reach the app's socket.
    endpoint.remove();
    match connection {
        Ok(conn) => Ok((process, conn)),
        Err(e) => {
            process.terminate(Duration::ZERO);
            Err(e)
        }
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
            let path = spec.socket_dir.join(format!("{instance_id}.sock"));
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
    app: Arc<str>,
    pid: u32,
    mut commands: mpsc::UnboundedReceiver<Control>,
    exited: watch::Sender<Option<ExitStatus>>,
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
                    let _ = child.start_kill();
                }
                Control::Terminate { grace } => {
                    requested = true;
                    if deadline.is_none() {
                        if let Some(id) = child.id() {
                            let _ = kill(Pid::from_raw(id as i32), Signal::SIGTERM);
                        }
                        deadline = Some(tokio::time::Instant::now() + grace);
                    }
                }
            },
            () = kill_at => {
                warn!(app = %app, pid, "process ignored SIGTERM; sending SIGKILL");
                let _ = child.start_kill();
                deadline = None;
            }
        }
    };
    match status {
        Ok(status) => {
            log_exit(&app, pid, status);
            let _ = exited.send(Some(status));
            on_exit(Exit { status, requested });
        }
        Err(e) => {
            // wait() only fails if the child was already reaped elsewhere.
            warn!(app = %app, pid, error = %e, "could not wait for the process");
            let status = std::os::unix::process::ExitStatusExt::from_raw(0);
            let _ = exited.send(Some(status));
            on_exit(Exit { status, requested });
        }
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
