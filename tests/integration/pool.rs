//! Pool behaviour: one request per process, limits, recycling, replacement.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::*;

#[test]
fn hundred_concurrent_requests_on_two_instances() {
    let gw = Gateway::start(&php_config(""));
    let addr = gw.addr();
    let threads: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| request(addr, "GET", "/pid.php?sleep=20", &[], b""))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let responses: Vec<Response> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(responses.len(), 100);
    assert!(responses.iter().all(|r| r.status == 200), "not all 200");
    let pids = distinct_pids(&responses);
    assert!(!pids.is_empty() && pids.len() <= 2, "pids: {pids:?}");
    gw.assert_no_zombies();
}

#[test]
fn instance_max_requests_recycles() {
    let gw = Gateway::start(&php_config("instance_max_requests = 5\nmax_instances = 1"));
    let responses: Vec<Response> = (0..5).map(|_| gw.get("/pid.php")).collect();
    // Due after 5: its replacement starts, and takes over once ready.
    assert!(gw.wait_for_log("its replacement is ready", Duration::from_secs(10)));
    let after: Vec<Response> = (0..5).map(|_| gw.get("/pid.php")).collect();
    assert!(responses.iter().chain(&after).all(|r| r.status == 200));
    let first: HashSet<u32> = distinct_pids(&responses);
    let second: HashSet<u32> = distinct_pids(&after);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(first, second);
    gw.assert_no_zombies();
}

#[test]
fn php_fcgi_max_requests_below_instance_max_requests_fails_nothing() {
    // php-cgi exits on its own after 3 requests: the pool must recycle first.
    let config = php_config("max_instances = 1").replace(
        "PHP_FCGI_MAX_REQUESTS = \"10000\"",
        "PHP_FCGI_MAX_REQUESTS = \"3\"",
    );
    let gw = Gateway::start(&config);
    let responses: Vec<Response> = (0..10).map(|_| gw.get("/pid.php")).collect();
    assert!(
        responses.iter().all(|r| r.status == 200),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(distinct_pids(&responses).len(), 4);
}

/// Kills a process with SIGKILL and waits until it is dead (its sockets
/// closed), so that the next request finds it gone: one written to it
/// before the kill took effect would be that request's crash (issue 11).
fn kill_and_wait(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "{pid} survived SIGKILL");
        std::thread::yield_now();
    }
}

#[test]
fn killing_an_idle_php_process_fails_no_request() {
    let gw = Gateway::start(&php_config("max_instances = 1"));
    let pid = pid_of(&gw.get("/pid.php").text()).unwrap();
    kill_and_wait(pid);
    let responses: Vec<Response> = (0..10).map(|_| gw.get("/pid.php")).collect();
    assert!(responses.iter().all(|r| r.status == 200));
    let pids = distinct_pids(&responses);
    assert!(!pids.contains(&pid), "the killed pid served again");
    gw.assert_no_zombies();
}

#[test]
fn killing_idle_process_right_before_the_request_fails_nothing() {
    // No pause between the death and the request: the closed connection is
    // seen before the request is written, and the request goes to another
    // instance. (A kill that lands after the request was written is that
    // request's crash: a 502, never a second run; see crash.rs.)
    let gw = Gateway::start(&php_config("max_instances = 1"));
    for _ in 0..5 {
        let pid = pid_of(&gw.get("/pid.php").text()).unwrap();
        kill_and_wait(pid);
        let r = gw.get("/pid.php");
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[test]
fn process_dying_mid_request_is_502_for_that_request_only() {
    let gw = Gateway::start(&php_config("max_instances = 1"));
    let r = gw.get("/kill.php");
    assert_eq!(r.status, 502);
    assert!(
        gw.wait_for_log("app php", std::time::Duration::from_secs(5)),
        "no log line names the app"
    );
    assert_eq!(gw.get("/pid.php").status, 200);
    gw.assert_no_zombies();
}

#[test]
fn full_queue_is_503_with_retry_after_at_once() {
    let gw = Gateway::start(&php_config("max_instances = 1\nqueue_length = 0"));
    let addr = gw.addr();
    let slow = std::thread::spawn(move || request(addr, "GET", "/pid.php?sleep=1500", &[], b""));
    // Wait until the slow request holds the only instance.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.access_log().is_empty() || gw.children().is_empty() {
        assert!(Instant::now() < deadline, "the slow request never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let r = gw.get("/pid.php");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "503 was not immediate"
    );
    assert!(
        gw.wait_for_log("queue is full", std::time::Duration::from_secs(5)),
        "no log line names the cause"
    );
    assert_eq!(slow.join().unwrap().status, 200);
}

#[test]
fn tcp_protocol_works() {
    let gw = Gateway::start(&php_config("protocol = \"tcp\""));
    let r = gw.get("/pid.php");
    assert_eq!(r.status, 200);
    assert!(pid_of(&r.text()).is_some());
}

#[test]
fn missing_command_answers_503_and_names_the_package() {
    let config = php_config("").replace(&php_cgi(), "/nonexistent/php-cgi");
    let gw = Gateway::start(&config);
    let r = gw.get("/pid.php");
    assert_eq!(r.status, 503);
    assert!(
        gw.wait_for_log("apt-get install php-cgi", std::time::Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // Static files still work.
    assert_eq!(gw.get("/page.html").status, 200);
}
