//! Running under systemd: the test plays the service manager. It binds the
//! datagram socket that `NOTIFY_SOCKET` names (a path, or an abstract
//! `@name`), starts the real binary serving real php-cgi, and reads what the
//! gateway says: READY=1 once the port answers, STOPPING=1 on SIGTERM,
//! WATCHDOG=1 when `WATCHDOG_USEC` asks for it. Without a socket, or with
//! one nobody listens on, the gateway serves as before. With stderr being
//! the journal (`JOURNAL_STREAM`), log lines carry no timestamp.

use std::ffi::OsString;
use std::fs::File;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::util::*;

/// Generous: a debug build on a loaded 2-core machine starts slowly.
const START: Duration = Duration::from_secs(90);

/// A `fastgate serve` started with the environment systemd would give it,
/// its stderr in a file. Dropping it kills its process group.
struct Service {
    dir: tempfile::TempDir,
    child: Child,
}

impl Service {
    fn start(env: &[(&str, OsString)]) -> Service {
        Self::start_logging(env, |_| Vec::new())
    }

    /// Like `start`; `more_env` sees the stderr file before the start (for
    /// `JOURNAL_STREAM`, which names it).
    fn start_logging(
        env: &[(&str, OsString)],
        more_env: impl FnOnce(&File) -> Vec<(&'static str, OsString)>,
    ) -> Service {
        let dir = site(&php_config("min_instances = 1\n"));
        let stderr = File::create(dir.path().join("stderr.log")).expect("stderr file");
        let extra = more_env(&stderr);
        let child = Command::new(env!("CARGO_BIN_EXE_fastgate"))
            .arg("serve")
            .arg(dir.path().join("fastgate.toml"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env("FASTGATE_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("start fastgate");
        Service { dir, child }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The address from the "listening" log line.
    fn wait_listening(&mut self) -> SocketAddr {
        let deadline = Instant::now() + START;
        loop {
            if let Some(addr) = self.logs().lines().find_map(|l| {
                let rest = l.split("listening addr=").nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            }) {
                return addr;
            }
            assert!(
                self.child.try_wait().expect("wait").is_none(),
                "fastgate exited:\n{}",
                self.logs()
            );
            assert!(Instant::now() < deadline, "not listening:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&mut self) -> ExitStatus {
        kill(Pid::from_raw(self.pid()), Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The service manager's end: a datagram socket the test reads.
struct Manager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    name: OsString,
}

impl Manager {
    fn at_path() -> Manager {
        let dir = tempfile::tempdir().expect("temp dir");
        let path: PathBuf = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Manager {
            socket,
            _dir: dir,
            name: path.into_os_string(),
        }
    }

    fn abstract_name() -> Manager {
        let name = format!(
            "fastgate-test-notify-{}-{:?}",
            std::process::id(),
            Instant::now()
        )
        .replace([' ', '{', '}', ':', ','], "");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind abstract socket");
        Manager {
            socket,
            _dir: tempfile::tempdir().expect("temp dir"),
            name: OsString::from(format!("@{name}")),
        }
    }

    /// The next datagram that contains `needle`, within `timeout`.
    fn wait_for(&self, needle: &str, timeout: Duration, service: &Service) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {needle} from the gateway:\n{}",
                service.logs()
            );
            self.socket
                .set_read_timeout(Some(left.min(Duration::from_millis(500))))
                .expect("timeout");
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if message.lines().any(|l| l == needle) {
                    return message;
                }
            }
        }
    }
}

/// The address in "STATUS=serving on ADDR".
fn served_addr(message: &str) -> SocketAddr {
    message
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=serving on "))
        .and_then(|rest| rest.split(", ").next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address in {message:?}"))
}

fn ready_then_stopping(manager: &Manager) {
    let mut service = Service::start(&[("NOTIFY_SOCKET", manager.name.clone())]);
    let ready = manager.wait_for("READY=1", START, &service);
    // The port answers the moment READY=1 arrives, with the app behind it.
    let addr = served_addr(&ready);
    let response = request(addr, "GET", "/index.php", &[], b"");
    assert_eq!(response.status, 200, "{}", service.logs());

    kill(Pid::from_raw(service.pid()), Signal::SIGTERM).expect("SIGTERM");
    let stopping = manager.wait_for("STOPPING=1", Duration::from_secs(10), &service);
    assert!(stopping.contains("STATUS=draining"), "{stopping:?}");
    assert!(service.terminate().success(), "{}", service.logs());
}

#[test]
fn ready_when_the_port_answers_and_stopping_on_sigterm() {
    ready_then_stopping(&Manager::at_path());
}

#[test]
fn abstract_notify_socket_names_work() {
    ready_then_stopping(&Manager::abstract_name());
}

/// `Type=notify-reload`: SIGHUP gives RELOADING=1 with the monotonic time,
/// then READY=1 once the new configuration serves; a refused reload ends
/// with READY=1 too (the old configuration serves) and says so in STATUS.
#[test]
fn a_reload_says_reloading_then_ready() {
    let manager = Manager::at_path();
    let service = Service::start(&[("NOTIFY_SOCKET", manager.name.clone())]);
    let ready = manager.wait_for("READY=1", START, &service);
    let addr = served_addr(&ready);
    kill(Pid::from_raw(service.pid()), Signal::SIGHUP).expect("SIGHUP");
    let reloading = manager.wait_for("RELOADING=1", Duration::from_secs(10), &service);
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    manager.wait_for("READY=1", Duration::from_secs(30), &service);
    assert_eq!(request(addr, "GET", "/index.php", &[], b"").status, 200);

    std::fs::write(service.dir.path().join("fastgate.toml"), "not = [toml").unwrap();
    kill(Pid::from_raw(service.pid()), Signal::SIGHUP).expect("SIGHUP");
    manager.wait_for("RELOADING=1", Duration::from_secs(10), &service);
    manager.wait_for("READY=1", Duration::from_secs(30), &service);
    let status = manager.wait_for(
        "STATUS=reload refused; serving the previous configuration",
        Duration::from_secs(10),
        &service,
    );
    assert!(!status.is_empty());
    assert_eq!(request(addr, "GET", "/index.php", &[], b"").status, 200);
}

#[test]
fn watchdog_is_pinged_at_half_the_interval() {
    let manager = Manager::at_path();
    let mut service = Service::start(&[
        ("NOTIFY_SOCKET", manager.name.clone()),
        ("WATCHDOG_USEC", OsString::from("400000")),
    ]);
    manager.wait_for("READY=1", START, &service);
    // Three pings at 200 ms come well within 5 s, even on a loaded machine.
    let started = Instant::now();
    for _ in 0..3 {
        manager.wait_for("WATCHDOG=1", Duration::from_secs(5), &service);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(service.terminate().success(), "{}", service.logs());
}

#[test]
fn without_a_notify_socket_the_gateway_serves_as_before() {
    let mut service = Service::start(&[]);
    let addr = service.wait_listening();
    assert_eq!(request(addr, "GET", "/index.php", &[], b"").status, 200);
    assert!(service.terminate().success(), "{}", service.logs());
}

#[test]
fn an_unreachable_notify_socket_is_logged_once_and_serving_goes_on() {
    let missing = Path::new("/nonexistent-fastgate-test/notify.sock");
    let mut service = Service::start(&[
        ("NOTIFY_SOCKET", missing.as_os_str().to_owned()),
        ("WATCHDOG_USEC", OsString::from("100000")),
    ]);
    let addr = service.wait_listening();
    assert_eq!(request(addr, "GET", "/index.php", &[], b"").status, 200);
    assert!(service.terminate().success(), "{}", service.logs());
    let logs = service.logs();
    assert_eq!(
        logs.matches("cannot notify the service manager (NOTIFY_SOCKET)")
            .count(),
        1,
        "{logs}"
    );
}

/// `JOURNAL_STREAM` naming `file`, as systemd names the journal's stream.
fn journal_stream(file: &File) -> OsString {
    let meta = file.metadata().expect("stat");
    OsString::from(format!("{}:{}", meta.dev(), meta.ino()))
}

fn first_listening_line(service: &mut Service) -> String {
    service.wait_listening();
    let logs = service.logs();
    logs.lines()
        .find(|l| l.contains("listening addr="))
        .expect("listening line")
        .to_owned()
}

#[test]
fn journal_lines_have_no_timestamp() {
    let mut journal = Service::start_logging(&[], |f| vec![("JOURNAL_STREAM", journal_stream(f))]);
    let line = first_listening_line(&mut journal);
    assert!(line.trim_start().starts_with("INFO"), "{line:?}");

    // Inherited from a parent whose stderr was the journal, but ours is a
    // file: the timestamp stays.
    let mut inherited =
        Service::start_logging(&[("JOURNAL_STREAM", OsString::from("1:1"))], |_| Vec::new());
    let line = first_listening_line(&mut inherited);
    assert!(line.starts_with("20"), "{line:?}");
}
