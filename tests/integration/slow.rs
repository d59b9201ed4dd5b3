//! Slow requests and memory (issue 14): `slow_request_timeout` logs a
//! request once with what its process is doing (read from /proc) and, for
//! the WSGI bridge, its Python stack, which `request_timeout` also gets
//! before it stops a request; `instance_max_memory` recycles a process
//! after the request during which it went over.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::util::*;

/// A PHP script that connects to `?port=` on loopback and waits up to 3 s
/// for an answer that never comes (a database that hangs).
const BLOCKED_PHP: &str = r#"<?php
$s = fsockopen('127.0.0.1', (int)$_GET['port'], $errno, $errstr, 5);
stream_set_timeout($s, 3);
$got = fread($s, 100);
echo "pid=" . getmypid() . "\n";
"#;

/// Keeps 64 MiB until the end of the request.
const BIG_PHP: &str = r#"<?php
$GLOBALS['kept'] = str_repeat('x', 64 * 1024 * 1024);
echo "pid=" . getmypid() . "\n";
"#;

/// A listener that accepts connections and never answers, held open while
/// the guard lives.
struct Silent {
    addr: std::net::SocketAddr,
    _accepted: std::sync::mpsc::Receiver<std::net::TcpStream>,
}

fn silent_listener() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if tx.send(stream).is_err() {
                return;
            }
        }
    });
    Silent {
        addr,
        _accepted: rx,
    }
}

fn slow_lines(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.contains("slow request:"))
        .collect()
}

#[test]
fn a_php_request_blocked_on_a_socket_is_logged_once_with_its_peer() {
    let db = silent_listener();
    let config = php_config("slow_request_timeout = \"1s\"\n");
    let gw = Gateway::start_with(&config, |dir| {
        std::fs::write(dir.join("www/blocked.php"), BLOCKED_PHP).unwrap();
    });
    let path = format!("/blocked.php?port={}", db.addr.port());
    let started = Instant::now();
    let r = gw.get(&path);
    // fread gives up after its own 3 s: the request ran past the 1 s mark.
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert!(started.elapsed() >= Duration::from_secs(3));
    let pid = pid_of(&r.text()).unwrap();
    let logs = gw.logs();
    let lines = slow_lines(&logs);
    assert_eq!(lines.len(), 1, "logged once:\n{logs}");
    let line = lines[0];
    for needle in [
        "app=php".to_string(),
        format!("pid={pid}"),
        "method=GET".to_string(),
        format!("uri={path}"),
        "client=127.0.0.1:".to_string(),
        "elapsed=1".to_string(),
        "slow_request_timeout".to_string(),
        db.addr.to_string(),
    ] {
        assert!(line.contains(&needle), "{needle:?} in {line}");
    }
    // PHP waits for the socket in poll() (or, elsewhere, in a read).
    assert!(
        ["poll()", "read()", "recvfrom()"]
            .iter()
            .any(|call| line.contains(&format!("blocked in {call}"))),
        "{line}"
    );
    assert!(
        line.contains(&format!("a TCP connection to {}", db.addr)),
        "the fd it waits on is named: {line}"
    );
}

#[test]
fn without_the_key_nothing_is_logged() {
    let config = php_config("");
    let gw = Gateway::start(&config);
    let r = gw.get("/pid.php?sleep=1200");
    assert_eq!(r.status, 200);
    assert!(slow_lines(&gw.logs()).is_empty(), "{}", gw.logs());
}

#[test]
fn an_instance_over_instance_max_memory_is_replaced_and_a_small_one_is_not() {
    let config = php_config("max_instances = 1\ninstance_max_memory = \"48MiB\"\n");
    let gw = Gateway::start_with(&config, |dir| {
        std::fs::write(dir.join("www/big.php"), BIG_PHP).unwrap();
    });
    let first = pid_of(&gw.get("/pid.php").text()).unwrap();
    for _ in 0..3 {
        assert_eq!(pid_of(&gw.get("/pid.php").text()), Some(first));
    }
    assert!(!gw.logs().contains("instance_max_memory"), "{}", gw.logs());
    let r = gw.get("/big.php");
    assert_eq!(r.status, 200, "{}", gw.logs());
    let big = pid_of(&r.text()).unwrap();
    assert_eq!(big, first);
    assert!(
        gw.wait_for_log("went over instance_max_memory", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let line = gw
        .logs()
        .lines()
        .find(|l| l.contains("went over instance_max_memory"))
        .unwrap()
        .to_string();
    assert!(line.contains(&format!("pid={big}")), "{line}");
    assert!(line.contains("limit_kib=49152"), "{line}");
    // Replacement first: the next requests are served, and soon by another
    // process.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.get("/pid.php");
        assert_eq!(r.status, 200);
        if pid_of(&r.text()) != Some(big) {
            break;
        }
        assert!(Instant::now() < deadline, "not replaced:\n{}", gw.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the old one is stopped, not left running beside it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.children().iter().any(|c| c.0 == big) {
        assert!(Instant::now() < deadline, "{big} still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wsgi_site(app_lines: &str) -> String {
    let dir = fixtures()
        .join("wsgi")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    launcher_site(
        "py",
        "django",
        &format!("max_instances = 1\n{app_lines}"),
        &format!("wsgi_handler = \"slow_wsgi.application\"\npython_path = {dir:?}"),
    )
}

/// The line index in `logs` of the first line containing `needle`.
fn line_of(logs: &str, needle: &str) -> Option<usize> {
    logs.lines().position(|l| l.contains(needle))
}

#[test]
fn a_slow_wsgi_request_logs_its_python_stack() {
    // terminate-process: were the stack taken for stderr output, it would
    // kill the process and fail the request.
    let gw = Gateway::start(&wsgi_site(
        "slow_request_timeout = \"1s\"\nstderr_mode = \"terminate-process\"\n",
    ));
    let r = gw.get("/?sleep=2");
    // The view resumes after the stack was written: the answer is whole.
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert!(r.text().starts_with("report done"), "{}", r.text());
    assert!(
        gw.wait_for_log("wait_for_the_database", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    assert_eq!(slow_lines(&logs).len(), 1, "{logs}");
    assert!(
        slow_lines(&logs)[0].contains("blocked in"),
        "{}",
        slow_lines(&logs)[0]
    );
    let stack = line_of(&logs, "fastgate: Python stack of the running request").unwrap();
    let text: Vec<&str> = logs.lines().skip(stack).take(12).collect();
    let text = text.join("\n");
    assert!(text.contains("render_report"), "{text}");
    assert!(text.contains("time.sleep(seconds)"), "{text}");
    // Logged as the stack, not as the app's stderr output.
    assert!(!logs.contains("app wrote to FCGI_STDERR"), "{logs}");
}

#[test]
fn a_timed_out_wsgi_request_shows_its_stack_before_it_is_stopped() {
    let gw = Gateway::start(&wsgi_site("request_timeout = \"1s\"\n"));
    let r = gw.get("/?sleep=30");
    assert_eq!(r.status, 504, "{}\n{}", r.text(), gw.logs());
    // The gateway's log is read by another thread: the 504 can come first.
    gw.wait_for_log("terminating instance", Duration::from_secs(5));
    let logs = gw.logs();
    let stack = line_of(&logs, "fastgate: Python stack of the running request")
        .unwrap_or_else(|| panic!("no stack:\n{logs}"));
    let stopped = line_of(&logs, "terminating instance").unwrap();
    assert!(stack < stopped, "{logs}");
    assert!(
        logs.lines()
            .skip(stack)
            .take(12)
            .any(|l| l.contains("wait_for_the_database")),
        "{logs}"
    );
}

#[test]
fn check_shows_the_keys_and_names_a_bad_value() {
    let (ok, stdout, stderr) = check_config(&php_config(
        "slow_request_timeout = \"5s\"\ninstance_max_memory = \"256MiB\"\n",
    ));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("slow_request_timeout  5s (file)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "instance_max_memory   268435456 bytes (256 MiB) of peak resident memory (file)"
        ),
        "{stdout}"
    );
    let (ok, stdout, _) = check_config(&php_config(""));
    assert!(ok);
    assert!(
        stdout.contains("slow_request_timeout  off (default)"),
        "{stdout}"
    );
    let config = php_config("slow_request_timeout = \"soon\"\n");
    let line = config
        .lines()
        .position(|l| l.starts_with("slow_request_timeout"))
        .unwrap()
        + 1;
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("fastgate.toml:{line}:"))
            && stderr.contains("slow_request_timeout"),
        "{stderr}"
    );
    // A slow mark at or past request_timeout can never fire: a warning.
    let (ok, stdout, stderr) = check_config(&php_config("slow_request_timeout = \"90s\"\n"));
    assert!(ok, "{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("is not shorter than request_timeout"),
        "{stdout}{stderr}"
    );
    let (ok, _, stderr) = check_config(&php_config("instance_max_memory = \"lots\"\n"));
    assert!(!ok);
    assert!(stderr.contains("instance_max_memory"), "{stderr}");
}
