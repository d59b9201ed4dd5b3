//! Issue 15, faults: FastCGI apps that misbehave (never accept, accept and
//! never answer, half a record then a stall or a close, garbage, a 64 MiB
//! header block, a close mid-body) each get their documented status within
//! the timeouts, their instance is replaced, and the gateway keeps no fd or
//! process for them; a client that leaves mid-response never leaves an
//! instance busy. The misbehaviour is the test program's
//! (tests/fixtures/fcgi_app.py), chosen by path.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::util::*;

/// Short timeouts, one instance (so "replaced" shows as a new pid and a
/// leak cannot hide behind a spare instance). `activity_timeout` also
/// bounds a start, and Python on a loaded 2-core machine can take over a
/// second to start: 3 s.
const FAULT_APP: &str = "activity_timeout = \"3s\"\nrequest_timeout = \"10s\"\nmax_instances = 1\nrapid_fails_per_minute = 1000";

/// The pid that answers `/py/hello`.
fn hello_pid(gw: &Gateway) -> u32 {
    let r = gw.get("/py/hello");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    pid_of(&r.text()).expect("pid")
}

/// The gateway's live (not zombie) children.
fn live_children(gw: &Gateway) -> usize {
    gw.children().iter().filter(|c| c.2 != 'Z').count()
}

/// Waits until the gateway holds `fds` descriptors and `children` live
/// children, as after a request in the steady state; panics with what it
/// saw at the deadline.
fn wait_steady(gw: &Gateway, fds: usize, children: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now_fds, now_children) = (gw.fd_count(), live_children(gw));
        if now_fds <= fds && now_children <= children {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leak: {now_fds} fds (steady state {fds}), {now_children} children (steady state {children}): {:?}\n{}",
            gw.children(),
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each fault that ends its request before the head is sent: (path, the
/// status, what the log says).
const FAULTS: &[(&str, u16, &str)] = &[
    (
        "/py/silent/600000",
        504,
        "no answer within 3s (activity_timeout); process killed",
    ),
    (
        "/py/half-stall",
        504,
        "no answer within 3s (activity_timeout); process killed",
    ),
    (
        "/py/half-close",
        502,
        "the app closed the connection before ending the request",
    ),
    ("/py/garbage", 502, "unsupported FastCGI version"),
    (
        "/py/huge-head/64",
        502,
        "larger than 65536 bytes (raise max_response_header_size)",
    ),
];

/// Waits for the log line of the failed request for `path` naming `cause`.
fn wait_for_failure(gw: &Gateway, path: &str, cause: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let uri = format!("uri={path} error=");
    while Instant::now() < deadline {
        if gw
            .logs()
            .lines()
            .any(|l| l.contains(&uri) && l.contains(cause))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn issue15_each_fault_gets_its_status_within_the_timeouts_and_a_new_instance() {
    let gw = Gateway::start(&test_app_config(&[], FAULT_APP));
    let mut pid = hello_pid(&gw);
    for &(path, status, cause) in FAULTS {
        let started = Instant::now();
        let r = gw.get(path);
        let took = started.elapsed();
        assert_eq!(r.status, status, "{path}: {}\n{}", r.text(), gw.logs());
        // activity_timeout is 3 s: nothing may wait for request_timeout (10 s).
        assert!(took < Duration::from_secs(6), "{path} took {took:?}");
        assert!(
            wait_for_failure(&gw, path, cause),
            "{path}: no log line naming {cause:?}\n{}",
            gw.logs()
        );
        let next = hello_pid(&gw);
        assert_ne!(next, pid, "{path}: the instance was not replaced");
        assert!(
            !process_alive(pid) || gw.children().iter().all(|c| c.0 != pid),
            "{path}: the old instance {pid} lives on"
        );
        pid = next;
    }
    gw.assert_no_zombies();
}

#[test]
fn issue15_faults_leak_no_fd_and_no_process() {
    let gw = Gateway::start(&test_app_config(&[], FAULT_APP));
    hello_pid(&gw);
    // The steady state: one instance, its connection, the listeners, logs.
    let fds = gw.fd_count();
    let children = live_children(&gw);
    for round in 0..3 {
        for &(path, status, _) in FAULTS {
            assert_eq!(gw.get(path).status, status, "round {round}: {path}");
        }
        assert!(
            close_mid_body(&gw, "/py/close-mid-body")
                .0
                .starts_with("HTTP/1.1 200")
        );
        hello_pid(&gw);
        wait_steady(&gw, fds, children);
    }
    gw.assert_no_zombies();
}

#[test]
fn issue15_an_app_that_never_accepts_leaks_nothing() {
    let gw = Gateway::start(&test_app_config(
        &["--hang-start"],
        "activity_timeout = \"1s\"\nmax_instances = 1\nrapid_fails_per_minute = 1000",
    ));
    let fds = gw.fd_count();
    for _ in 0..3 {
        let started = Instant::now();
        let r = gw.get("/py/hello");
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    assert!(gw.wait_for_log("(activity_timeout); killed", Duration::from_secs(5)));
    // Nothing of the three starts is left: no process, no socket.
    wait_steady(&gw, fds, 0);
    gw.assert_no_zombies();
}

/// Sends a GET and reads until the server closes: (the raw response, how
/// long it took).
fn close_mid_body(gw: &Gateway, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = connect(gw.addr());
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    (
        String::from_utf8_lossy(&raw).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn issue15_a_close_mid_body_cuts_the_response_off_and_replaces_the_instance() {
    let gw = Gateway::start(&test_app_config(&[], FAULT_APP));
    let pid = hello_pid(&gw);
    let (raw, took) = close_mid_body(&gw, "/py/close-mid-body");
    // The head was out: the client sees a chunked body with no last chunk,
    // so it can tell the response is incomplete.
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("first part of the body"), "{raw}");
    assert!(
        !raw.ends_with("0\r\n\r\n"),
        "a cut-off body ended cleanly: {raw:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_ne!(hello_pid(&gw), pid, "the instance was not replaced");
    gw.assert_no_zombies();
}

#[test]
fn issue15_a_close_within_the_response_buffer_is_a_clean_502() {
    let gw = Gateway::start(&test_app_config(
        &[],
        &format!("{FAULT_APP}\nresponse_buffer_limit = \"64KiB\""),
    ));
    let pid = hello_pid(&gw);
    let r = gw.get("/py/close-mid-body");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_ne!(hello_pid(&gw), pid, "the instance was not replaced");
    gw.assert_no_zombies();
}

/// Sends a GET, reads the response head, and goes away.
fn leave_after_head(gw: &Gateway, path: &str) {
    let mut stream = connect(gw.addr());
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed before the head");
        seen.push(byte[0]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"));
}

/// A client that leaves after the head of a 16 MiB answer, then one that
/// leaves while its app is still working: the same instance serves the
/// next request, as soon as the app has finished.
fn leaving_clients_leave_no_instance_busy(buffering: bool) {
    let gw = Gateway::start(&test_app_config(
        &[],
        &format!("{FAULT_APP}\nresponse_buffering = {buffering}"),
    ));
    let pid = hello_pid(&gw);
    for _ in 0..3 {
        leave_after_head(&gw, "/py/big/16384");
        let started = Instant::now();
        assert_eq!(hello_pid(&gw), pid, "the instance was replaced");
        // 16 MiB at loopback speed is well under a second; waiting for
        // send_timeout (60 s) would be the instance held for a gone client.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    // The client leaves while the app still streams (10 chunks, 100 ms apart).
    leave_after_head(&gw, "/py/slow/10/100");
    let started = Instant::now();
    assert_eq!(hello_pid(&gw), pid, "the instance was replaced");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The client leaves before the app has said anything.
    let mut stream = connect(gw.addr());
    write!(stream, "GET /py/sleep/500 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Long enough for the request to reach the app (a poll cannot see
    // that), short next to its 500 ms.
    std::thread::sleep(Duration::from_millis(100));
    drop(stream);
    let started = Instant::now();
    assert_eq!(hello_pid(&gw), pid, "the instance was replaced");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    gw.assert_no_zombies();
}

#[test]
fn issue15_a_client_leaving_mid_response_leaves_no_instance_busy_buffered() {
    leaving_clients_leave_no_instance_busy(true);
}

#[test]
fn issue15_a_client_leaving_mid_response_leaves_no_instance_busy_unbuffered() {
    leaving_clients_leave_no_instance_busy(false);
}

#[test]
fn issue15_a_stale_answer_never_reaches_the_next_client() {
    // The app answers, then sends a second answer for the same request a
    // moment later, when the gateway may already have written the next
    // request on the connection: that answer must not be taken for the
    // next client's (it would be another client's response).
    let gw = Gateway::start(&test_app_config(&[], FAULT_APP));
    for _ in 0..3 {
        let first = gw.get("/py/answer-twice/300");
        assert_eq!(first.status, 200);
        assert_eq!(first.text(), "first answer\n");
        let next = gw.get("/py/hello");
        assert!(
            !next.text().contains("stale answer"),
            "the next client got an answer meant for another request: {} {}",
            next.status,
            next.text()
        );
        // The late answer carries the previous request's id: a bad answer.
        assert_eq!(next.status, 502, "{}", next.text());
        assert!(wait_for_failure(
            &gw,
            "/py/hello",
            "unexpected record from the app"
        ));
        assert_eq!(gw.get("/py/hello").status, 200);
    }
    gw.assert_no_zombies();
}
