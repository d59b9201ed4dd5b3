//! Starting and stopping: graceful shutdown, keep-alive.

use std::io::{BufReader, Write};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::*;

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let mut gw = Gateway::start(&php_config(""));
    let addr = gw.addr();
    let slow = std::thread::spawn(move || request(addr, "GET", "/pid.php?sleep=2000", &[], b""));
    assert!(
        gw.wait_for_log("instance started", Duration::from_secs(10)),
        "PHP never started"
    );
    std::thread::sleep(Duration::from_millis(300));
    gw.signal(Signal::SIGTERM);
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    let pid = pid_of(&r.text()).unwrap();
    let status = gw
        .wait_exit(Duration::from_secs(15))
        .expect("gateway did not exit");
    assert!(status.success(), "exit status {status}");
    assert!(!process_alive(pid), "php-cgi {pid} outlived the gateway");
    assert!(gw.logs().contains("signal=\"SIGTERM\""));
}

#[test]
fn new_connections_are_refused_while_draining() {
    let mut gw = Gateway::start(&php_config(""));
    let addr = gw.addr();
    let slow = std::thread::spawn(move || request(addr, "GET", "/pid.php?sleep=1500", &[], b""));
    assert!(gw.wait_for_log("instance started", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(200));
    gw.signal(Signal::SIGTERM);
    assert!(gw.wait_for_log("no longer accepting", Duration::from_secs(5)));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after SIGTERM"
    );
    assert_eq!(slow.join().unwrap().status, 200);
    assert!(gw.wait_exit(Duration::from_secs(15)).is_some());
}

#[test]
fn keep_alive_connection_serves_several_requests() {
    let gw = Gateway::start(&php_config(""));
    let mut stream = connect(gw.addr());
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for path in ["/pid.php", "/page.html", "/server.php?x=1"] {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(r.status, 200, "{path}");
    }
}

#[test]
fn access_log_names_app_and_pid() {
    let gw = Gateway::start(&php_config(""));
    let pid = pid_of(&gw.get("/pid.php?x=1").text()).unwrap();
    gw.get("/page.html");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while gw.access_log().lines().count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = gw.access_log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
    assert!(
        lines[0].contains("\"GET /pid.php?x=1 HTTP/1.1\" 200 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(&format!("app=php pid={pid}")),
        "{}",
        lines[0]
    );
    assert!(lines[1].ends_with("app=- pid=-"), "{}", lines[1]);
}

/// The access log is written in batches (every 50 ms at most), and a stop
/// right after a burst loses no line: the writer drains before it ends.
#[test]
fn the_access_log_keeps_every_line_through_a_stop() {
    let mut gw = Gateway::start(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\naccess_log = \"access.log\"\n",
    );
    let addr = gw.addr();
    let mut conn = connect(addr);
    for i in 0..300 {
        conn.write_all(format!("GET /page.html?n={i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(&conn);
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    }
    gw.signal(Signal::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(15)).is_some());
    let log = std::fs::read_to_string(gw.dir_path().join("access.log")).unwrap();
    assert_eq!(log.lines().count(), 300, "{log}");
    assert!(log.lines().last().unwrap().contains("/page.html?n=299"));
}
