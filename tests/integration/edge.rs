//! The HTTP edge, answered as nginx 1.22 answers the same raw requests
//! (issue 15): unknown transfer codings, the framing guard's promise in
//! every order and situation, CONNECT, asterisk-form, HTTP/0.9, the
//! connection closed after a 400, the absolute-form target's authority.

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use crate::util::*;

/// The smuggling pattern, sent as the second request of a connection: it
/// must be refused, never served.
const SMUGGLE: &[u8] = b"POST /body.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n";

/// What came back on one connection: the responses in order, and whether
/// the gateway closed it (rather than leaving it open for more).
struct Exchange {
    responses: Vec<Response>,
    closed: bool,
    took: Duration,
}

impl Exchange {
    fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }
}

/// Writes `bytes` on one keep-alive connection and reads every response
/// until the gateway closes it or nothing more comes for `quiet`.
fn exchange(gw: &Gateway, bytes: &[u8], quiet: Duration) -> Exchange {
    let started = Instant::now();
    let mut stream = connect(gw.addr());
    stream.set_read_timeout(Some(quiet)).unwrap();
    // The gateway may close before reading everything: a write error is fine.
    let _ = stream.write_all(bytes);
    let mut reader = BufReader::new(stream);
    let mut responses = Vec::new();
    let closed = loop {
        match read_response(&mut reader, false) {
            Ok(r) => responses.push(r),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            // End of input (an empty status line) or a reset: closed.
            Err(_) => break true,
        }
    };
    Exchange {
        responses,
        closed,
        took: started.elapsed(),
    }
}

fn joined(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn unknown_transfer_codings_are_501_and_closed() {
    let gw = Gateway::start(&php_config(""));
    for te in [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: ,chunked\r\n",
    ] {
        let raw = format!(
            "POST /body.php HTTP/1.1\r\nHost: x\r\n{te}\r\n5\r\nhello\r\n0\r\n\r\nGET /pid.php HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let x = exchange(&gw, raw.as_bytes(), Duration::from_secs(5));
        assert_eq!(x.statuses(), [501], "{te:?}");
        assert_eq!(x.responses[0].header("connection"), Some("close"), "{te:?}");
        assert!(x.closed, "{te:?}: connection left open");
    }
    assert!(
        gw.wait_for_log("unknown Transfer-Encoding", Duration::from_secs(5)),
        "no log line names the cause: {}",
        gw.logs()
    );
    // `chunked` alone, in any case, is served.
    let raw = b"POST /body.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let r = send_raw(gw.addr(), raw, false);
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("len=5 "), "{}", r.text());
}

#[test]
fn invalid_content_lengths_are_400_and_closed() {
    let gw = Gateway::start(&php_config(""));
    for cl in ["+5", "5, 5", "", "-5", "0x5", "5 5", "５"] {
        let raw =
            format!("POST /body.php HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\nhello");
        let x = exchange(
            &gw,
            &joined(&[raw.as_bytes(), SMUGGLE]),
            Duration::from_secs(5),
        );
        assert_eq!(x.statuses(), [400], "Content-Length: {cl:?}");
        assert!(x.closed, "{cl:?}: connection left open");
    }
    assert!(
        gw.wait_for_log("invalid Content-Length", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

/// Each situation that once let the next request past the guard: the
/// smuggling pattern after it on the same connection is never served.
#[test]
fn content_length_with_transfer_encoding_is_refused_in_every_situation() {
    let gw = Gateway::start(&php_config(""));
    let situations: &[(&str, &[u8], &[u16])] = &[
        (
            "TE before an invalid Content-Length",
            b"POST /body.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: +5\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "Upgrade",
            b"GET /pid.php HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            &[200, 400],
        ),
        (
            "h2c Upgrade",
            b"GET /pid.php HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            &[200, 400],
        ),
        (
            "CONNECT",
            b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
            &[400],
        ),
        (
            "TE: identity, chunked",
            b"GET /pid.php HTTP/1.1\r\nHost: x\r\nTE: identity, chunked\r\n\r\n",
            &[200, 400],
        ),
        (
            "Transfer-Encoding: identity, chunked",
            b"POST /body.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
            &[501],
        ),
        (
            "a malformed head",
            b"GET /pid.php HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
            &[400],
        ),
    ];
    for (what, first, expect) in situations {
        let x = exchange(&gw, &joined(&[first, SMUGGLE]), Duration::from_secs(5));
        assert_eq!(x.statuses(), *expect, "after {what}");
        assert!(x.closed, "after {what}: connection left open");
        assert!(
            !x.responses.iter().any(|r| r.text().starts_with("len=")),
            "after {what}: the smuggled request reached body.php"
        );
    }
}

#[test]
fn content_length_with_transfer_encoding_in_a_large_head_is_refused() {
    // Distinct names: one repeated header would be joined into one FastCGI
    // parameter, too large for a record (431 from the app, not the guard).
    let filler: String = (0..17)
        .map(|i| format!("X-Fill-{i}: {}\r\n", "f".repeat(4000)))
        .collect();
    let smuggle_big = format!(
        "POST /body.php HTTP/1.1\r\nHost: x\r\n{filler}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
    );
    assert!(smuggle_big.len() > 64 * 1024);
    // Over the default max_request_head: refused on size, never served.
    let gw = Gateway::start(&php_config(""));
    let x = exchange(&gw, smuggle_big.as_bytes(), Duration::from_secs(5));
    assert_eq!(x.statuses(), [431]);
    assert!(x.closed);
    drop(gw);
    // Within a raised max_request_head: refused on framing, after a clean
    // large request on the same connection.
    let config = php_config("").replace(
        "root = \"www\"",
        "root = \"www\"\nmax_request_head = \"128KiB\"\nmax_header_line = \"8KiB\"",
    );
    let gw = Gateway::start(&config);
    let clean = format!("GET /pid.php HTTP/1.1\r\nHost: x\r\n{filler}\r\n");
    let x = exchange(
        &gw,
        &joined(&[clean.as_bytes(), smuggle_big.as_bytes()]),
        Duration::from_secs(5),
    );
    assert_eq!(x.statuses(), [200, 400]);
    assert!(x.closed);
    assert!(
        gw.wait_for_log(
            "both Content-Length and Transfer-Encoding",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
}

#[test]
fn connect_and_asterisk_form_are_400_and_closed() {
    let gw = Gateway::start(&php_config(""));
    for line in [
        "CONNECT example.org:443 HTTP/1.1",
        "GET * HTTP/1.1",
        "OPTIONS * HTTP/1.1",
        "POST * HTTP/1.1",
    ] {
        let raw = format!("{line}\r\nHost: x\r\n\r\nGET /pid.php HTTP/1.1\r\nHost: x\r\n\r\n");
        let x = exchange(&gw, raw.as_bytes(), Duration::from_secs(5));
        assert_eq!(x.statuses(), [400], "{line}");
        assert_eq!(x.responses[0].header("connection"), Some("close"), "{line}");
        assert!(x.closed, "{line}: connection left open");
    }
}

#[test]
fn http_0_9_request_lines_are_refused_at_once() {
    // header_read_timeout stays at its 30 s default: the refusal must not wait for it.
    let gw = Gateway::start(&php_config(""));
    for raw in [&b"GET /\r\n"[..], b"GET /pid.php\n", b"POST /body.php\r\n"] {
        let x = exchange(&gw, raw, Duration::from_secs(10));
        assert!(x.closed, "{raw:?}: connection held");
        assert!(
            x.took < Duration::from_secs(5),
            "{raw:?}: took {:?}",
            x.took
        );
        assert_eq!(x.statuses(), [400], "{raw:?}");
    }
}

#[test]
fn every_400_the_gateway_makes_closes_the_connection() {
    let gw = Gateway::start(&php_config(""));
    // A path the gateway refuses (traversal), then a clean request: not served.
    let raw = b"GET /a/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\nGET /pid.php HTTP/1.1\r\nHost: x\r\n\r\n";
    let x = exchange(&gw, raw, Duration::from_secs(5));
    assert_eq!(x.statuses(), [400]);
    assert_eq!(x.responses[0].header("connection"), Some("close"));
    assert!(x.closed, "connection left open after a 400");
    // A body the gateway never reads (the path is refused first): the
    // answer still arrives, and the connection ends.
    let mut raw =
        b"POST /a/%2e%2e/%2e%2e/x.php HTTP/1.1\r\nHost: x\r\nContent-Length: 400000\r\n\r\n"
            .to_vec();
    raw.extend(std::iter::repeat_n(b'b', 400_000));
    for _ in 0..3 {
        let x = exchange(&gw, &raw, Duration::from_secs(5));
        assert_eq!(x.statuses(), [400]);
        assert!(x.closed);
    }
    // An app's own 400 leaves the connection as the app's response has it.
    let raw = b"GET /status.php?code=400 HTTP/1.1\r\nHost: x\r\n\r\nGET /pid.php HTTP/1.1\r\nHost: x\r\n\r\n";
    let x = exchange(&gw, raw, Duration::from_secs(2));
    assert_eq!(x.statuses(), [400, 200]);
}

fn host_page(dir: &std::path::Path) {
    std::fs::write(
        dir.join("www/host.php"),
        "<?php header('Content-Type: application/json'); echo json_encode(['HTTP_HOST' => $_SERVER['HTTP_HOST'] ?? null, 'SERVER_NAME' => $_SERVER['SERVER_NAME'] ?? null, 'REQUEST_URI' => $_SERVER['REQUEST_URI'] ?? null, 'QUERY_STRING' => $_SERVER['QUERY_STRING'] ?? null, 'SCRIPT_NAME' => $_SERVER['SCRIPT_NAME'] ?? null]);\n",
    )
    .unwrap();
}

#[test]
fn absolute_form_target_authority_wins_over_host() {
    let gw = Gateway::start_with(&php_config(""), host_page);
    let r = send_raw(
        gw.addr(),
        b"GET http://a.example/host.php?q=1 HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        false,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["HTTP_HOST"], "a.example", "{v}");
    assert_eq!(v["SERVER_NAME"], "a.example", "{v}");
    assert_eq!(v["REQUEST_URI"], "/host.php?q=1", "{v}");
    assert_eq!(v["QUERY_STRING"], "q=1", "{v}");
    assert_eq!(v["SCRIPT_NAME"], "/host.php", "{v}");
    let r = send_raw(
        gw.addr(),
        b"GET http://a.example:8080/host.php HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        false,
    );
    let v = r.json();
    assert_eq!(v["HTTP_HOST"], "a.example:8080", "{v}");
    assert_eq!(v["SERVER_NAME"], "a.example", "{v}");
    assert_eq!(v["REQUEST_URI"], "/host.php", "{v}");
    // Userinfo in the target is refused (RFC 9110 §4.2.4).
    let r = send_raw(
        gw.addr(),
        b"GET http://user:pw@a.example/host.php HTTP/1.1\r\nHost: b.example\r\n\r\n",
        false,
    );
    assert_eq!(r.status, 400);
}

#[test]
fn plugins_see_the_absolute_form_authority() {
    let plugin = format!(
        r#"[[plugin]]
name = "tenant"
path = "{}"
config = {{ header = "host", default = "none" }}
"#,
        plugin_file("examples/tenant-env", PluginBuild::Native)
    );
    let config = format!("{}\n{plugin}", php_config("plugins = [\"tenant\"]\n"));
    let gw = Gateway::start(&config);
    let r = send_raw(
        gw.addr(),
        b"GET http://tenanta/env.php HTTP/1.1\r\nHost: tenantb\r\nConnection: close\r\n\r\n",
        false,
    );
    let v = r.json();
    assert_eq!(v["TENANT"], "tenanta", "{v}");
    assert_eq!(v["REQUEST_URI"], "/env.php", "{v}");
}

/// A keep-alive connection that has had one answer and now idles.
fn idle_connection(gw: &Gateway) -> BufReader<std::net::TcpStream> {
    let mut stream = connect(gw.addr());
    stream
        .write_all(b"GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.status, 200);
    reader
}

#[test]
fn max_connections_refuses_past_the_limit_with_503() {
    let config = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        php_config("").replace("root = \"www\"", "root = \"www\"\nmax_connections = 5")
    );
    let gw = Gateway::start(&config);
    assert!(
        gw.wait_for_log("max_connections 5 (file", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let mut idle: Vec<_> = (0..5).map(|_| idle_connection(&gw)).collect();
    // The sixth: answered at once, and closed.
    for _ in 0..3 {
        let started = Instant::now();
        let x = exchange(
            &gw,
            b"GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(5),
        );
        assert_eq!(x.statuses(), [503]);
        let r = &x.responses[0];
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(r.header("retry-after"), Some("5"));
        assert!(r.text().contains("too many connections"), "{}", r.text());
        assert!(x.closed);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // One log line for the three, naming the key.
    assert!(gw.wait_for_log("[server] max_connections raises it", Duration::from_secs(5)));
    let lines = gw.logs().matches("max_connections reached").count();
    assert_eq!(lines, 1, "{}", gw.logs());
    // The admin listener is not counted, and it says what the front sees.
    let admin = crate::admin::admin_addr(&gw);
    let status = request(admin, "GET", "/status", &[], b"");
    assert_eq!(status.status, 200);
    let status = status.json();
    assert_eq!(status["connections"]["open"], 5, "{status}");
    assert_eq!(status["connections"]["refused"], 3, "{status}");
    let metrics = request(admin, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("fastgate_connections_open 5\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fastgate_connections_refused_total 3\n"),
        "{metrics}"
    );
    // The idle connections still work.
    let reader = &mut idle[0];
    reader
        .get_mut()
        .write_all(b"GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(reader, false).unwrap().status, 200);
    // Closing one lets a new one in (once the gateway has seen the close).
    drop(idle.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let x = exchange(
            &gw,
            b"GET /page.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        if x.statuses() == [200] {
            break;
        }
        assert_eq!(x.statuses(), [503]);
        assert!(Instant::now() < deadline, "no room after a close");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn check_shows_the_connection_limit() {
    let (ok, stdout, stderr) = check_config(&php_config(""));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("max_connections "), "{stdout}");
    assert!(stdout.contains("(automatic: open-file limit"), "{stdout}");
    let config = php_config("").replace("root = \"www\"", "root = \"www\"\nmax_connections = 64");
    let (ok, stdout, _) = check_config(&config);
    assert!(ok);
    assert!(stdout.contains("max_connections 64 (file"), "{stdout}");
    let config = php_config("").replace("root = \"www\"", "root = \"www\"\nmax_connections = -1");
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(stderr.contains("max_connections"), "{stderr}");
}

/// An app cannot switch protocols: its 101 is a bad answer (502), and the
/// connection goes on as HTTP/1.1, still guarded.
#[test]
fn an_apps_101_is_a_502_and_nothing_is_upgraded() {
    let gw = Gateway::start_with(&php_config(""), |dir| {
        std::fs::write(
            dir.join("www/switch.php"),
            "<?php header('Status: 101 Switching Protocols'); header('Upgrade: websocket'); echo 'raw';\n",
        )
        .unwrap();
    });
    let first =
        b"GET /switch.php HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let x = exchange(&gw, &joined(&[first, SMUGGLE]), Duration::from_secs(5));
    assert_eq!(x.statuses(), [502, 400]);
    assert!(x.closed);
}

/// HTTP/2 carries the same rules: `:authority` wins over a `host` field,
/// CONNECT is refused.
#[test]
fn h2c_requests_follow_the_same_edge_rules() {
    let gw = Gateway::start_with(&php_config(""), host_page);
    let request = http::Request::get("http://a.example/host.php?q=1")
        .header("host", "b.example")
        .body(())
        .unwrap();
    let (status, body) = h2c(gw.addr(), request);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["HTTP_HOST"], "a.example", "{v}");
    assert_eq!(v["SERVER_NAME"], "a.example", "{v}");
    assert_eq!(v["REQUEST_URI"], "/host.php?q=1", "{v}");
    let connect = http::Request::builder()
        .method("CONNECT")
        .uri("example.org:443")
        .body(())
        .unwrap();
    let (status, body) = h2c(gw.addr(), connect);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}

/// A client that connects and sends nothing is closed after
/// `header_read_timeout`, as one that stops halfway through its head is:
/// it held one of `max_connections` until the gateway stopped.
#[test]
fn a_connection_that_sends_nothing_is_closed_after_header_read_timeout() {
    let gw = Gateway::start(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nheader_read_timeout = \"1s\"\nmax_connections = 16\n",
    );
    let mut silent = connect(gw.addr());
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap_or(0);
    let took = started.elapsed();
    assert_eq!(n, 0, "the gateway sent {:?}", &buf[..n]);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    // The gateway still serves.
    assert_eq!(gw.get("/page.html").status, 200);
}

/// A refused or failed request's log line names its method, client and URI
/// itself: the per-request span that used to add them is at debug level
/// (formatting it for every request cost a tenth of the gateway's work).
#[test]
fn a_refused_request_is_logged_with_its_method_client_and_uri() {
    let gw = Gateway::start("[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n");
    assert_eq!(gw.get("/no-such-page.html").status, 404);
    assert!(
        gw.wait_for_log("request refused", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("request refused"))
        .unwrap_or_default();
    for field in [
        "status=404",
        "method=GET",
        "client=127.0.0.1:",
        "uri=/no-such-page.html",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}
