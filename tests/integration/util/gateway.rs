//! The running gateway: a real `fastgate serve` in its own process group,
//! its logs drained as they come, signals, its children and memory. Dropping
//! it stops the gateway and everything it started. The site it serves is
//! `site`'s, the requests it answers are `client`'s.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::client::{Response, request};
use super::procs::children_of;
use super::site::{app_path, site};

/// A running gateway. Dropping it stops the gateway and everything it started.
pub struct Gateway {
    _dir: tempfile::TempDir,
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl Gateway {
    /// Starts a gateway on `config` with the fixtures copied to `www/`.
    pub fn start(config: &str) -> Gateway {
        Self::start_with(config, |_| {})
    }

    /// Like `start`, after `prepare` has added files to the temp dir.
    pub fn start_with(config: &str, prepare: impl FnOnce(&Path)) -> Gateway {
        let dir = site(config);
        prepare(dir.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_fastgate"))
            .arg("serve")
            .arg(dir.path().join("fastgate.toml"))
            .env("FASTGATE_LOG", "info,fastgate=debug")
            .env("PATH", app_path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start fastgate");
        let pid = child.id();
        let stderr = drain(child.stderr.take().expect("stderr"), "fastgate");
        let stdout = drain(child.stdout.take().expect("stdout"), "access");
        let mut gateway = Gateway {
            _dir: dir,
            child: Some(child),
            pid,
            addr: "127.0.0.1:1".parse().expect("addr"),
            stderr,
            stdout,
        };
        gateway.addr = gateway.wait_listening();
        gateway
    }

    fn wait_listening(&mut self) -> SocketAddr {
        // Generous: a debug build compiling a wasm plugin on a loaded 2-core
        // machine has taken over 20 s to start (readiness, not a timing).
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(addr) = self.logs().lines().find_map(|l| {
                let rest = l.split("listening addr=").nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            }) {
                return addr;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "fastgate exited before listening ({status}):\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "fastgate did not start listening:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The test's temp dir (config, `www/`, anything the test put there).
    pub fn dir_path(&self) -> &Path {
        self._dir.path()
    }

    /// Everything the gateway logged (stderr).
    pub fn logs(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// The access log (stdout).
    pub fn access_log(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until the access log contains `needle` (lines are written
    /// when a response's body is done, just after the client has it).
    pub fn wait_for_access(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.access_log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid as i32), signal).expect("signal fastgate");
    }

    /// Waits for the gateway to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The gateway's children: (pid, command name, state letter).
    pub fn children(&self) -> Vec<(u32, String, char)> {
        children_of(self.pid)
    }

    /// How many file descriptors the gateway holds open (/proc/PID/fd).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("proc fd")
            .count()
    }

    /// Fails if a child of the gateway is a zombie (exited, not reaped).
    pub fn assert_no_zombies(&self) {
        // Reaping is asynchronous: give the supervisor a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let zombies: Vec<_> = self.children().into_iter().filter(|c| c.2 == 'Z').collect();
            if zombies.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "zombie children: {zombies:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The peak resident memory of the gateway (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// The resident memory of the gateway now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the gateway or its apps goes with the group.
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        let _ = child.wait();
    }
}

/// Collects a child's output line by line as it comes, echoing each line to
/// the test's stderr under `tag` so a failing test shows what happened.
fn drain(stream: impl Read + Send + 'static, tag: &'static str) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    let sink = buffer.clone();
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).into_owned();
            eprintln!("[{tag}] {line}");
            let mut b = sink.lock().expect("lock");
            b.push_str(&line);
            b.push('\n');
        }
    });
    buffer
}
