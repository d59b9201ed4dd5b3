//! What an app process is allowed, and what may outlive it: the user and
//! limits a command is started with, the process group of each process,
//! and the reaping of everything an app leaves behind.
//!
//! Both spawners (a pool's `process::spawn`, the CGI runner) build their
//! command with [`command`] and start it with [`spawn`]. The user switch is
//! std's (`setgid`, `setgroups(0)`, `setuid` in the child); the limits are
//! set by util-linux's `prlimit`, which the command runs through: it sets
//! them on itself and `exec`s the app's program, so the program starts
//! limited and every process it starts inherits them (no `unsafe`
//! `pre_exec`, no change to the gateway's own limits). Each process leads
//! its own process group, which is what a stop signals.
//!
//! The gateway is a child subreaper ([`become_subreaper`]): a process whose
//! parent dies (a CGI script's `setsid cmd &`, a double fork) is handed to
//! the gateway, not to PID 1. [`Reaper`] finds those among the gateway's
//! children (`/proc/self/task/*/children`), reaps the dead ones and stops
//! the living: SIGTERM, then SIGKILL after [`ESCAPEE_GRACE`]. One that
//! stays in the process group of a running process is left alone until that
//! process is stopped (its group with it). A tracked child (one [`spawn`]
//! started, whose owner waits for it) is never touched: it is registered
//! under the same lock the reaper decides under, before anything could see
//! it. At the gateway's stop, [`Reaper::stop_all`] ends whatever is left.
//! So every child the gateway starts goes through [`spawn`]: one started
//! any other way would be taken for an escaped process and stopped.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tracing::{debug, info, warn};

use crate::config::{Rlimits, RunAs};

/// How long an escaped process has between SIGTERM and SIGKILL.
pub const ESCAPEE_GRACE: Duration = Duration::from_secs(2);

/// How often the gateway's children are looked at without a SIGCHLD (a
/// double fork hands the grandchild over without one).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Tracked children: pid → how many owners wait for it (a pid reused
/// between an owner's reap and its untracking counts twice, briefly).
static TRACKED: Mutex<BTreeMap<u32, u32>> = Mutex::new(BTreeMap::new());

fn tracked() -> std::sync::MutexGuard<'static, BTreeMap<u32, u32>> {
    // Only pids live under it: a panic cannot leave it half-changed.
    TRACKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// A command that runs `program` with `args` as `run_as`, limited by
/// `rlimits` (through `prlimit`, at `prlimit` resolved on PATH), in a
/// process group of its own.
pub fn command(
    program: &Path,
    args: &[impl AsRef<std::ffi::OsStr>],
    run_as: &RunAs,
    rlimits: &Rlimits,
    prlimit: Option<&Path>,
) -> Command {
    let mut command = match prlimit.filter(|_| !rlimits.is_empty()) {
        Some(prlimit) => {
            let mut c = Command::new(prlimit);
            c.args(rlimits.prlimit_args()).arg("--").arg(program);
            c
        }
        None => Command::new(program),
    };
    command.args(args);
    if let Some((uid, gid)) = run_as.switch_to() {
        // std drops the supplementary groups (setgroups(0)) when it
        // switches the uid as root.
        command.uid(uid).gid(gid);
    }
    command.process_group(0);
    command
}

/// `prlimit` on PATH, when `rlimits` needs it (`fastgate check` has said
/// when it is missing).
pub fn prlimit_for(rlimits: &Rlimits) -> Option<PathBuf> {
    if rlimits.is_empty() {
        return None;
    }
    crate::config::resolve_command(Path::new(crate::config::users::PRLIMIT)).ok()
}

/// Starts `command` and tracks its pid until the returned guard is dropped
/// (once its owner has waited for it, or handed it to tokio to reap).
pub fn spawn(command: &mut Command) -> io::Result<(Child, Tracked)> {
    let mut tracked = tracked();
    let child = command.spawn()?;
    let pid = child.id().unwrap_or(0);
    *tracked.entry(pid).or_default() += 1;
    Ok((child, Tracked { pid }))
}

/// A tracked child: the reaper leaves it alone while this lives.
#[derive(Debug)]
pub struct Tracked {
    pid: u32,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut tracked = tracked();
        if let Some(owners) = tracked.get_mut(&self.pid) {
            *owners -= 1;
            if *owners == 0 {
                tracked.remove(&self.pid);
            }
        }
    }
}

/// Gives `path` to the user an app runs as (a no-op when it runs as the
/// gateway's own user): its private folder and the files in it.
pub fn give_to(path: &Path, run_as: &RunAs) -> io::Result<()> {
    if run_as.switch_to().is_none() {
        return Ok(());
    }
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(run_as.uid)),
        Some(nix::unistd::Gid::from_raw(run_as.gid)),
    )
    .map_err(io::Error::from)
}

/// Lets other users pass through the folder that holds the apps' private
/// folders (0711, no listing), when the gateway is root and its apps may
/// run as others: each app's own folder stays 0700.
pub fn open_runtime_root(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o711))
}

/// Makes the gateway the reaper of every orphaned descendant.
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        warn!(error = %e, "cannot become a child subreaper: processes that leave their app are left to PID 1");
    }
}

/// A child of the gateway as /proc shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChildState {
    pid: u32,
    zombie: bool,
    pgid: u32,
}

/// Parses `/proc/PID/stat`: the state and the process group (fields 3 and
/// 5; the command in field 2 may hold spaces and parentheses).
fn parse_stat(pid: u32, stat: &str) -> Option<ChildState> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(ChildState {
        pid,
        zombie: state == "Z" || state == "X",
        pgid,
    })
}

/// The gateway's children (every thread's: an orphan is handed to one of
/// them).
fn children() -> Vec<ChildState> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(pid, &stat)
        })
        .collect()
}

/// Finds, reaps and stops the processes that escaped their app.
#[derive(Debug, Default)]
pub struct Reaper {
    /// Escaped processes sent SIGTERM, and when.
    warned: HashMap<u32, Instant>,
}

impl Reaper {
    /// Runs until the gateway stops: a sweep at every SIGCHLD (at most
    /// every 100 ms) and every [`SWEEP_EVERY`].
    pub fn spawn() -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigchld = signal(SignalKind::child()).ok();
        tokio::spawn(async move {
            let mut reaper = Reaper::default();
            loop {
                let chld = async {
                    match sigchld.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = chld => {}
                    () = tokio::time::sleep(SWEEP_EVERY) => {}
                }
                reaper.sweep(false);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    /// One look at the gateway's children: reaps dead escapees, stops live
    /// ones (`all`: also those in a running process's group). Returns how
    /// many untracked children are left.
    pub fn sweep(&mut self, all: bool) -> usize {
        let tracked = tracked();
        let mut left = 0;
        for child in children() {
            if tracked.contains_key(&child.pid) {
                continue;
            }
            if child.zombie {
                let _ = waitpid(Pid::from_raw(child.pid as i32), Some(WaitPidFlag::WNOHANG));
                self.warned.remove(&child.pid);
                debug!(pid = child.pid, "reaped a process that had left its app");
                continue;
            }
            left += 1;
            // In the group of a running instance: stopped with it.
            if !all && tracked.contains_key(&child.pgid) {
                continue;
            }
            self.stop(child.pid);
        }
        left
    }

    /// SIGTERM the first time an escapee is seen, SIGKILL once its grace
    /// is over. It is our child, not reaped yet: its pid cannot be reused.
    fn stop(&mut self, pid: u32) {
        let target = Pid::from_raw(pid as i32);
        match self.warned.get(&pid) {
            None => {
                info!(
                    pid,
                    "a process left its app (its parent is gone): sending SIGTERM"
                );
                let _ = kill(target, Signal::SIGTERM);
                self.warned.insert(pid, Instant::now());
            }
            Some(since) if since.elapsed() >= ESCAPEE_GRACE => {
                warn!(
                    pid,
                    "a process that left its app ignored SIGTERM: sending SIGKILL"
                );
                let _ = kill(target, Signal::SIGKILL);
            }
            Some(_) => {}
        }
    }

    /// At the gateway's stop, once the apps are stopped: every process
    /// still under the gateway gets SIGTERM, SIGKILL after the grace, and
    /// is reaped (its own children, handed over as it dies, too).
    pub async fn stop_all(&mut self) {
        let deadline = Instant::now() + ESCAPEE_GRACE + Duration::from_secs(1);
        while self.sweep(true) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command() {
        let stat = "4242 (php (cgi) x) S 1 4240 4240 0 -1 4194560 93 0";
        assert_eq!(
            parse_stat(4242, stat),
            Some(ChildState {
                pid: 4242,
                zombie: false,
                pgid: 4240
            })
        );
        let z = parse_stat(7, "7 (sleep) Z 1 7 7 0").unwrap();
        assert!(z.zombie);
        assert_eq!(parse_stat(7, "garbage"), None);
    }

    #[test]
    fn limits_run_through_prlimit_before_the_program() {
        let rlimits = Rlimits {
            nofile: Some(32),
            ..Rlimits::default()
        };
        let run_as = RunAs::gateway();
        let c = command(
            Path::new("/usr/bin/php-cgi"),
            &["-c", "x"],
            &run_as,
            &rlimits,
            Some(Path::new("/usr/bin/prlimit")),
        );
        let std = c.as_std();
        assert_eq!(std.get_program(), "/usr/bin/prlimit");
        let args: Vec<_> = std.get_args().collect();
        assert_eq!(
            args,
            ["--nofile=32:32", "--", "/usr/bin/php-cgi", "-c", "x"]
        );
        let c = command(
            Path::new("/bin/app"),
            &[] as &[&str],
            &run_as,
            &Rlimits::default(),
            None,
        );
        assert_eq!(c.as_std().get_program(), "/bin/app");
    }
}
