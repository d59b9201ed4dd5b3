//! FastCGI protocol edge cases, against a small Python FastCGI app
//! (tests/fixtures/fcgi_app.py) and php-cgi.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::util::*;

/// A config running the test app (tests/fixtures/fcgi_app.py) at `/py/*`:
/// the path after `/py` picks its behaviour.
fn python_app(app_extra: &str) -> String {
    test_app_config(&[], &format!("max_instances = 1\n{app_extra}"))
}

#[test]
fn empty_stdout_record_does_not_end_the_response() {
    let gw = Gateway::start(&python_app(""));
    for _ in 0..3 {
        let r = gw.get("/py/empty-stdout");
        assert_eq!(r.status, 200, "{}", gw.logs());
        assert_eq!(r.text(), "first part, second part\n");
    }
    // One process served all three over its kept connection. (The access
    // log is read from the gateway's stdout by a thread: wait for it.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.access_log().lines().count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = gw.access_log();
    let pids: std::collections::HashSet<&str> =
        log.lines().filter_map(|l| l.split("pid=").nth(1)).collect();
    assert_eq!(pids.len(), 1, "{log}");
}

#[test]
fn malformed_records_are_502_and_the_instance_is_discarded() {
    let gw = Gateway::start(&python_app(""));
    let r = gw.get("/py/garbage");
    assert_eq!(r.status, 502);
    assert!(
        gw.wait_for_log("unsupported FastCGI version", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let first = gw.access_log();
    let r = gw.get("/py/garbage");
    assert_eq!(r.status, 502);
    // A new process each time: the broken one was not reused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.access_log().lines().count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = gw.access_log();
    let pids: Vec<&str> = log.lines().filter_map(|l| l.split("pid=").nth(1)).collect();
    assert_eq!(pids.len(), 2, "{first}{log}");
    assert_ne!(pids[0], pids[1]);
    gw.assert_no_zombies();
}

#[test]
fn fcgi_stderr_is_logged_with_app_pid_and_uri() {
    let gw = Gateway::start(&python_app("stderr_mode = \"ignore-and-return-200\""));
    let r = gw.get("/py/stderr");
    assert_eq!(r.status, 200);
    assert!(gw.wait_for_log("app error: <b>bad</b> & worse", Duration::from_secs(5)));
    let line = gw
        .logs()
        .lines()
        .find(|l| l.contains("app error: <b>bad</b> & worse"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("app=py") && line.contains("pid=") && line.contains("uri=/py/stderr"),
        "{line}"
    );
}

#[test]
fn process_stdout_and_stderr_reach_the_log() {
    // php-cgi sends error_log() text as FCGI_STDERR: keep the 200 here.
    let gw = Gateway::start(&php_config("stderr_mode = \"ignore-and-return-200\""));
    assert_eq!(gw.get("/stderr.php").text(), "done\n");
    assert!(
        gw.wait_for_log("line on the process stderr", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let line = gw
        .logs()
        .lines()
        .find(|l| l.contains("line on the process stderr"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("app=php") && line.contains("pid=") && line.contains("stream=\"stderr\""),
        "{line}"
    );
}

#[test]
fn oversized_response_header_is_502_with_a_clear_log_line() {
    let gw = Gateway::start(&php_config(""));
    let r = gw.get("/bigheader.php");
    assert_eq!(r.status, 502);
    assert!(
        gw.wait_for_log(
            "response header block larger than 65536 bytes",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    // Raising the limit makes it work.
    let config = php_config("").replace(
        "root = \"www\"",
        "root = \"www\"\nmax_response_header_size = \"128KiB\"",
    );
    let gw = Gateway::start(&config);
    let r = gw.get("/bigheader.php");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-big").map(str::len), Some(70000));
}

#[test]
fn min_instances_are_started_eagerly() {
    let gw = Gateway::start(&php_config("min_instances = 2"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw
        .children()
        .iter()
        .filter(|c| c.1.starts_with("php"))
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "children: {:?}", gw.children());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gw.access_log().is_empty());
}

#[test]
fn slow_request_bodies_are_cut_off() {
    let config = php_config("").replace(
        "root = \"www\"",
        "root = \"www\"\nbody_read_timeout = \"1s\"",
    );
    let gw = Gateway::start(&config);
    let mut stream = connect(gw.addr());
    stream
        .write_all(b"POST /body.php HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .unwrap();
    let started = Instant::now();
    let mut reader = std::io::BufReader::new(stream);
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(gw.wait_for_log("body_read_timeout", Duration::from_secs(5)));
    assert!(
        gw.children().is_empty(),
        "an instance was leased for an incomplete body"
    );
}
