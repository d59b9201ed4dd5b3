//! Request head limits at the front (issue 11): a head with a header line,
//! a header count, a whole size or a URI beyond `[server]` max_header_line,
//! max_headers, max_request_head or max_uri_length is answered 431 or 414
//! before any app sees it, so a hostile client cannot crash or offline an
//! app with it; and what does reach an app fits php-cgi's FastCGI reader.

use std::collections::BTreeSet;
use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::util::*;

/// The PHP site (two instances at most) with `server_lines` in `[server]`.
fn php_site(server_lines: &str) -> String {
    php_config("").replacen(
        "root = \"www\"\n",
        &format!("root = \"www\"\n{server_lines}\n"),
        1,
    )
}

/// A GET of `path` with `headers`, as bytes (keep-alive: no `Connection`).
fn head(path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw.into_bytes()
}

fn long_header_line() -> Vec<u8> {
    head("/pid.php", &[("X-Big".to_string(), "a".repeat(100 * 1024))])
}

fn many_headers() -> Vec<u8> {
    let headers: Vec<_> = (0..2000)
        .map(|i| (format!("X-H{i}"), "v".to_string()))
        .collect();
    head("/pid.php", &headers)
}

fn long_uri() -> Vec<u8> {
    head(&format!("/pid.php?q={}", "u".repeat(10 * 1024)), &[])
}

/// Writes `bytes` on `stream` from another thread (the gateway stops
/// reading a head it refuses, so the write may not finish before the
/// answer comes) and reads one response.
fn exchange_on(
    stream: &std::net::TcpStream,
    bytes: Vec<u8>,
) -> (Response, BufReader<std::net::TcpStream>) {
    let mut writer = stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let response = read_response(&mut reader, false).expect("read response");
    sender.join().unwrap();
    (response, reader)
}

/// Sends `bytes` on a new connection and reads one response.
fn send(addr: SocketAddr, bytes: Vec<u8>) -> Response {
    exchange_on(&connect(addr), bytes).0
}

/// The pids of the gateway's php-cgi processes.
fn php_pids(gw: &Gateway) -> BTreeSet<u32> {
    gw.children()
        .into_iter()
        .filter(|c| c.1.starts_with("php"))
        .map(|c| c.0)
        .collect()
}

/// Starts both instances of the PHP app (two requests at once) and returns
/// their pids.
fn start_two_instances(gw: &Gateway) -> BTreeSet<u32> {
    let addr = gw.addr();
    let slow: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/pid.php?sleep=300", &[], b"")))
        .collect();
    let responses: Vec<Response> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(responses.iter().all(|r| r.status == 200), "{}", gw.logs());
    let pids = distinct_pids(&responses);
    assert_eq!(pids.len(), 2, "{}", gw.logs());
    pids.into_iter().collect()
}

/// The refusal names the limit, the size seen and the key that raises it.
fn assert_logged(gw: &Gateway, key: &str, seen: &str) {
    assert!(
        gw.wait_for_log(key, Duration::from_secs(5)),
        "no log line names {key}:\n{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains(key))
        .expect("log line naming the key");
    assert!(line.contains(seen), "{line}");
    assert!(line.contains(&format!("[server] {key}")), "{line}");
}

#[test]
fn long_header_line_is_431_at_the_front() {
    let gw = Gateway::start(&php_site(""));
    let r = send(gw.addr(), long_header_line());
    assert_eq!(r.status, 431, "{}", gw.logs());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.text().contains("max_header_line"), "{}", r.text());
    assert_logged(&gw, "max_header_line", "8192");
    assert!(
        php_pids(&gw).is_empty(),
        "an instance was started for a refused head"
    );
    assert!(gw.wait_for_access("\" 431 ", Duration::from_secs(5)));
}

#[test]
fn two_thousand_headers_are_431() {
    let gw = Gateway::start(&php_site(""));
    let r = send(gw.addr(), many_headers());
    assert_eq!(r.status, 431, "{}", gw.logs());
    assert_eq!(r.header("connection"), Some("close"));
    assert_logged(&gw, "max_headers", "100");
    assert!(php_pids(&gw).is_empty());
}

#[test]
fn long_uri_is_414() {
    let gw = Gateway::start(&php_site(""));
    let r = send(gw.addr(), long_uri());
    assert_eq!(r.status, 414, "{}", gw.logs());
    assert_eq!(r.header("connection"), Some("close"));
    assert_logged(&gw, "max_uri_length", "8192");
    assert!(php_pids(&gw).is_empty());
}

#[test]
fn head_over_max_request_head_is_431() {
    let gw = Gateway::start(&php_site(""));
    let headers: Vec<_> = (0..6)
        .map(|i| (format!("X-Part-{i}"), "p".repeat(6000)))
        .collect();
    let r = send(gw.addr(), head("/pid.php", &headers));
    assert_eq!(r.status, 431, "{}", gw.logs());
    assert_logged(&gw, "max_request_head", "32768");
    assert!(php_pids(&gw).is_empty());
}

/// A head that never ends is refused once it passes max_request_head, not
/// after header_read_timeout, and the gateway reads no further.
#[test]
fn unfinished_head_is_refused_as_soon_as_it_passes_the_limit() {
    let gw = Gateway::start(&php_site("max_request_head = \"16KiB\""));
    let mut stream = connect(gw.addr());
    let mut raw = b"GET /pid.php HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..40 {
        raw.extend_from_slice(format!("X-Line-{i}: {}\r\n", "l".repeat(1000)).as_bytes());
    }
    // No empty line: the head is never complete, and the connection stays open.
    stream.write_all(&raw).unwrap();
    let started = Instant::now();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.status, 431);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_logged(&gw, "max_request_head", "16384");
}

/// 100 hostile heads cost the app nothing: the same processes before and
/// after, no failure counted, and normal requests still served.
#[test]
fn hundred_oversized_heads_leave_the_app_untouched() {
    let gw = Gateway::start(&php_site(""));
    let before = start_two_instances(&gw);
    assert_eq!(php_pids(&gw), before);
    for i in 0..100 {
        let (bytes, status) = match i % 3 {
            0 => (long_header_line(), 431),
            1 => (many_headers(), 431),
            _ => (long_uri(), 414),
        };
        let r = send(gw.addr(), bytes);
        assert_eq!(r.status, status, "request {i}: {}", gw.logs());
    }
    assert_eq!(php_pids(&gw), before, "{}", gw.logs());
    let r = gw.get("/pid.php");
    assert_eq!(r.status, 200, "{}", gw.logs());
    assert!(before.contains(&pid_of(&r.text()).unwrap()));
    assert_eq!(php_pids(&gw), before);
    let logs = gw.logs();
    assert!(!logs.contains("instance failure"), "{logs}");
    assert!(!logs.contains("offline"), "{logs}");
}

#[test]
fn raised_max_header_line_lets_a_long_header_reach_php() {
    let gw = Gateway::start(&php_site("max_header_line = \"24KiB\""));
    let value = "b".repeat(20 * 1024);
    let r = send(
        gw.addr(),
        head(
            "/headers.php?h=HTTP_X_BIG",
            &[("X-Big".to_string(), value.clone())],
        ),
    );
    assert_eq!(r.status, 200, "{}", gw.logs());
    let seen = &r.json()["headers"]["HTTP_X_BIG"];
    assert_eq!(seen["len"], 20 * 1024);
    assert_eq!(
        seen["crc"],
        format!("{:08x}", crc32(value.as_bytes())),
        "{}",
        r.text()
    );
    // Still refused above the raised limit, and the log names the key.
    let r = send(
        gw.addr(),
        head("/pid.php", &[("X-Big".to_string(), "c".repeat(40 * 1024))]),
    );
    assert_eq!(r.status, 431);
    assert_logged(&gw, "max_header_line", "24576");
}

/// On a keep-alive connection, a refused head ends the connection after its
/// answer (cleanly: the client reads the end, not a reset).
#[test]
fn keep_alive_connection_is_closed_after_an_oversized_head() {
    let gw = Gateway::start(&php_site(""));
    let stream = connect(gw.addr());
    let (r, _) = exchange_on(&stream, head("/pid.php", &[]));
    assert_eq!(r.status, 200, "{}", gw.logs());
    assert_ne!(r.header("connection"), Some("close"));
    let (r, mut reader) = exchange_on(&stream, long_header_line());
    assert_eq!(r.status, 431, "{}", gw.logs());
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    let read = reader.read_to_end(&mut rest);
    assert!(
        matches!(read, Ok(0)),
        "connection not closed cleanly: {read:?} {rest:?}"
    );
}

/// PARAMS records: many headers that together need several records reach
/// php-cgi whole (no pair is cut across two records).
#[test]
fn params_spanning_several_records_reach_php_whole() {
    let gw = Gateway::start(&php_site("max_request_head = \"256KiB\""));
    let headers: Vec<_> = (0..24)
        .map(|i| (format!("X-Part-{i}"), format!("{i:02}").repeat(2000)))
        .collect();
    let names: Vec<String> = (0..24).map(|i| format!("HTTP_X_PART_{i}")).collect();
    let r = send(
        gw.addr(),
        head(&format!("/headers.php?h={}", names.join(",")), &headers),
    );
    assert_eq!(r.status, 200, "{}", gw.logs());
    let json = r.json();
    for (name, (_, value)) in names.iter().zip(&headers) {
        assert_eq!(json["headers"][name]["len"], 4000, "{name}: {json}");
        assert_eq!(
            json["headers"][name]["crc"],
            format!("{:08x}", crc32(value.as_bytes()))
        );
    }
    assert!(!gw.logs().contains("instance failure"), "{}", gw.logs());
}

/// A parameter that cannot fit in one FastCGI record (a header allowed by
/// raised front limits, or repeated Cookie lines joined into one) is
/// refused with 431 before an instance is used; the app is untouched.
#[test]
fn parameter_too_large_for_a_record_is_refused_not_split() {
    let gw = Gateway::start(&php_site(
        "max_header_line = \"128KiB\"\nmax_request_head = \"256KiB\"",
    ));
    let before = start_two_instances(&gw);
    let r = send(
        gw.addr(),
        head("/pid.php", &[("X-Big".to_string(), "a".repeat(100 * 1024))]),
    );
    assert_eq!(r.status, 431, "{}", gw.logs());
    assert!(
        gw.wait_for_log("HTTP_X_BIG", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let cookies: Vec<_> = (0..12)
        .map(|i| ("Cookie".to_string(), format!("c{i}={}", "k".repeat(6000))))
        .collect();
    let r = send(gw.addr(), head("/pid.php", &cookies));
    assert_eq!(r.status, 431, "{}", gw.logs());
    assert!(gw.wait_for_log("HTTP_COOKIE", Duration::from_secs(5)));
    let r = gw.get("/pid.php");
    assert_eq!(r.status, 200);
    assert_eq!(php_pids(&gw), before, "{}", gw.logs());
    assert!(!gw.logs().contains("instance failure"), "{}", gw.logs());
}

/// A head that arrives in the same read as the end of a chunked body is
/// checked like any other (it used to go to hyper unchecked). The chunk is
/// longer than the guard's first read, so its end comes in a later one.
#[test]
fn head_after_a_chunked_body_in_the_same_read_is_checked() {
    let gw = Gateway::start(&php_site(""));
    let mut bytes =
        b"POST /body.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5000\r\n"
            .to_vec();
    bytes.extend(payload(0x5000));
    bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    bytes.extend(head(
        "/headers.php?h=HTTP_X_BIG",
        &[("X-Big".to_string(), "d".repeat(20 * 1024))],
    ));
    let stream = connect(gw.addr());
    let (first, mut reader) = exchange_on(&stream, bytes);
    assert_eq!(first.status, 200, "{}", gw.logs());
    assert!(first.text().starts_with("len=20480 "), "{}", first.text());
    let second = read_response(&mut reader, false).unwrap();
    assert_eq!(second.status, 431, "{}", second.text());
    assert_logged(&gw, "max_header_line", "8192");
}

/// One h2c (prior knowledge) GET of `path` with an `X-Big` header of `len`
/// bytes: the status and the body.
fn h2c_get(addr: SocketAddr, path: &str, len: usize) -> (u16, Vec<u8>) {
    let request = http::Request::get(format!("http://{addr}{path}"))
        .header("x-big", "e".repeat(len))
        .body(())
        .unwrap();
    h2c(addr, request)
}

/// h2c has the same limits as HTTP/1: hyper's HTTP/2 header list limit
/// (16 KiB of its own) no longer answers first, so a 20 KB header within a
/// raised max_header_line reaches PHP, and one beyond it is refused by our
/// check, whose log line names the key.
#[test]
fn h2c_requests_have_the_same_head_limits() {
    let gw = Gateway::start(&php_site("max_header_line = \"24KiB\""));
    let (status, body) = h2c_get(gw.addr(), "/headers.php?h=HTTP_X_BIG", 20 * 1024);
    assert_eq!(status, 200, "{}", gw.logs());
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["headers"]["HTTP_X_BIG"]["len"], 20 * 1024);
    let (status, _) = h2c_get(gw.addr(), "/pid.php", 28 * 1024);
    assert_eq!(status, 431, "{}", gw.logs());
    assert_logged(&gw, "max_header_line", "24576");
    let (status, _) = h2c_get(gw.addr(), &format!("/pid.php?q={}", "u".repeat(9000)), 0);
    assert_eq!(status, 414, "{}", gw.logs());
    assert_logged(&gw, "max_uri_length", "8192");
}
