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

use crate::util::*;


/// A PHP script that logs a server path through `error_log()`, which
/// php-cgi sends as FCGI_STDERR: with the IIS default stderr_mode the page
/// becomes a 500 made of that text.
const LEAK_PHP: &str =
    "<?php error_log('cannot open ' . __FILE__ . ' <secret>'); echo \"page\\n\";\n";

/// `php_config` with lines added to `[server]`.
fn php_server_config(server_extra: &str, app_extra: &str) -> String {
    php_config(app_extra).replacen(
        "root = \"www\"\n",
        &format!("root = \"www\"\n{server_extra}\n"),
        1,
    )
}

fn start_leaky(server_extra: &str) -> Gateway {
    Gateway::start_with(&php_server_config(server_extra, ""), |dir| {
        std::fs::write(dir.join("www/leak.php"), LEAK_PHP).unwrap()
    })
}

#[test]
fn php_stderr_reaches_a_local_client_by_default_and_never_with_error_details_never() {
    // Default (`local`): the client on 127.0.0.1 gets the text, escaped.
    let gw = start_leaky("");
    let r = gw.get("/leak.php");
    assert_eq!(r.status, 500, "{}", r.text());
    let www = gw.dir_path().join("www/leak.php").display().to_string();
    assert!(r.text().contains(&www), "{}", r.text());
    assert!(r.text().contains("&lt;secret&gt;"), "{}", r.text());
    drop(gw);

    // `never`: what a remote client gets by default. A generic page, no
    // path, no app, no pid; the log keeps it all, with app, pid and URI.
    let gw = start_leaky("error_details = \"never\"");
    let www = gw.dir_path().join("www/leak.php").display().to_string();
    let r = gw.get("/leak.php");
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "500 Internal Server Error\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(
        gw.wait_for_log("<secret>", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains("<secret>")).unwrap();
    assert!(line.contains(&www), "{line}");
    assert!(
        line.contains("app=php") && line.contains("pid=") && line.contains("uri=/leak.php"),
        "{line}"
    );
}

#[test]
fn a_crash_shows_its_pid_and_exit_status_to_local_clients_only() {
    let gw = Gateway::start(&test_app_config(&[], ""));
    let r = gw.get("/py/crash");
    assert_eq!(r.status, 502);
    let text = r.text();
    assert!(text.starts_with("502 Bad Gateway (app \"py\")\n"), "{text}");
    assert!(
        text.contains("(pid ")
            && text.contains("the process died while serving the request (exit status 3)"),
        "{text}"
    );
    drop(gw);

    let gw = Gateway::start(&test_app_config(&[], "").replacen(
        "root = \"www\"\n",
        "root = \"www\"\nerror_details = \"never\"\n",
        1,
    ));
    let r = gw.get("/py/crash");
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "502 Bad Gateway\n");
    assert!(
        gw.wait_for_log("died", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // What was wrong with the request itself is still said.
    let r = gw.get("/%00.php");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("control character"), "{}", r.text());
}

#[test]
fn a_bad_error_details_value_names_its_key_and_line() {
    let config = php_server_config("error_details = \"detailed\"", "");
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("fastgate.toml:4:") && stderr.contains("server.error_details"),
        "{stderr}"
    );
}

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
