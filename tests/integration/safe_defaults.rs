//! Issue 13, defaults that do not hurt: no default shows server-side text
//! (an app's stderr, paths, pids, exit statuses) to a remote client
//! (`[server] error_details`, IIS's detailed-errors-for-local-requests
//! rule); `fastgate check` prints the settings that matter and refuses a
//! `runtime_dir` too long for a Unix socket; it lists each plugin, and a
//! server-wide env injector runs for every app request; plugin config
//! errors point at their `[[plugin]]` table; logs on a pipe carry no ANSI
//! colour codes.
//!
//! The tests connect from 127.0.0.1, a local client: the remote case is
//! tested with `error_details = "never"`, which gives every client the page
//! a remote one gets by default (the rule that tells them apart is a unit
//! test of `ErrorDetails::shown_to`).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;



#[test]
fn logs_on_a_pipe_have_no_colour_codes() {
    // As a service manager or `2> file` runs it: stderr is not a terminal,
    // and NO_COLOR is not set.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let file = dir.path().join("fastgate.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\naccess_log = \"off\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastgate"))
        .arg("serve")
        .arg(&file)
        .env_remove("NO_COLOR")
        .env("FASTGATE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = Pid::from_raw(child.id() as i32);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    while !seen.contains("listening") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => break,
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
    assert!(seen.contains("listening"), "{seen}");
    assert!(!seen.contains('\x1b'), "ANSI codes in {seen:?}");
    assert!(seen.contains("listening addr=127.0.0.1:"), "{seen}");
}
