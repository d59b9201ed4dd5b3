//! The security rules of shared/reference.md, one test each.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::util::*;
use serde_json::Value;

fn raw_get(gw: &Gateway, target: &str) -> Response {
    send_raw(
        gw.addr(),
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        false,
    )
}

#[test]
fn httpoxy_proxy_header_never_becomes_http_proxy() {
    let gw = Gateway::start(&php_config(""));
    let v = request(
        gw.addr(),
        "GET",
        "/server.php",
        &[("Proxy", "http://evil.example:8080")],
        b"",
    )
    .json();
    assert_eq!(v["HTTP_PROXY"], Value::Null);
    assert_eq!(v["getenv_HTTP_PROXY"], false);
}

#[test]
fn header_names_with_underscores_are_dropped() {
    let gw = Gateway::start(&php_config(""));
    let v = request(
        gw.addr(),
        "GET",
        "/server.php",
        &[("X-Remote_User", "admin")],
        b"",
    )
    .json();
    assert_eq!(v["HTTP_X_REMOTE_USER"], Value::Null);
    let v = request(
        gw.addr(),
        "GET",
        "/server.php",
        &[("X-Remote-User", "bob")],
        b"",
    )
    .json();
    assert_eq!(v["HTTP_X_REMOTE_USER"], "bob");
}

#[test]
fn control_characters_in_the_path_are_400() {
    let gw = Gateway::start(&php_config(""));
    for target in [
        "/server.php%0a",
        "/a%0d.php",
        "/server.php%00.jpg",
        "/x%0a/server.php",
    ] {
        let r = raw_get(&gw, target);
        assert_eq!(r.status, 400, "{target}");
    }
    assert!(
        gw.wait_for_log("control character", std::time::Duration::from_secs(5)),
        "no log line names the cause"
    );
}

#[test]
fn traversal_never_leaves_the_root() {
    let gw = Gateway::start(&php_config(""));
    for target in [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/a/..%2f..%2f..%2fetc/passwd",
        "/%252e%252e/etc/passwd",
        "/dir/.%2e/.%2e/.%2e/etc/passwd",
        "/..%5c..%5cetc/passwd",
    ] {
        let r = raw_get(&gw, target);
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.status);
        assert!(!r.text().contains("root:"), "{target} leaked /etc/passwd");
    }
}

#[test]
fn image_with_php_path_info_is_never_run() {
    let gw = Gateway::start(&php_config(""));
    let r = gw.get("/uploads/x.jpg/y.php");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("PWNED"));
    // The image itself is a static file, never given to PHP.
    let r = gw.get("/uploads/x.jpg");
    assert_eq!(r.text(), "<?php echo \"PWNED\";\n");
    assert!(gw.children().is_empty(), "PHP was started for an image");
}

#[test]
fn query_string_never_becomes_argv() {
    let gw = Gateway::start(&php_config(""));
    // CVE-2012-1823: php-cgi?-s would print the source.
    let r = gw.get("/server.php?-s");
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("<?php"), "PHP source was shown");
    let v = r.json();
    assert_eq!(v["argv"], Value::Null);
    let r = gw.get("/server.php?-d+auto_prepend_file%3d/etc/passwd");
    assert!(!r.text().contains("root:"));
}

#[test]
fn clients_cannot_set_php_value() {
    let gw = Gateway::start(&php_config(""));
    let r = request(
        gw.addr(),
        "GET",
        "/server.php",
        &[("PHP-Value", "auto_prepend_file=/etc/passwd")],
        b"",
    );
    assert!(
        !r.text().contains("root:"),
        "PHP_VALUE from a header took effect"
    );
    let v = r.json();
    assert_eq!(v["PHP_VALUE"], Value::Null);
    assert_eq!(v["prepend"], "");
    assert_eq!(v["HTTP_PHP_VALUE"], "auto_prepend_file=/etc/passwd");
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let gw = Gateway::start(&php_config(""));
    let raw = b"POST /body.php HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let r = send_raw(gw.addr(), raw, false);
    assert_eq!(r.status, 400);
    assert!(
        gw.wait_for_log(
            "both Content-Length and Transfer-Encoding",
            std::time::Duration::from_secs(5)
        ),
        "no log line names the cause"
    );
    // The other order too.
    let raw = b"POST /body.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n";
    assert_eq!(send_raw(gw.addr(), raw, false).status, 400);
}

#[test]
fn conflicting_content_lengths_are_400() {
    let gw = Gateway::start(&php_config(""));
    let raw = b"POST /body.php HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde";
    assert_eq!(send_raw(gw.addr(), raw, false).status, 400);
}

#[test]
fn framing_check_follows_keep_alive_requests() {
    // A clean request with a body, then a smuggling attempt on the same connection.
    let gw = Gateway::start(&php_config(""));
    let mut stream = connect(gw.addr());
    stream
        .write_all(b"POST /body.php HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /pid.php HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let first = read_response(&mut reader, false).unwrap();
    assert_eq!(first.status, 200);
    assert!(first.text().starts_with("len=3 "));
    let second = read_response(&mut reader, false).unwrap();
    assert_eq!(second.status, 400);
}

#[test]
fn slow_headers_are_cut_off() {
    let config = php_config("").replace(
        "root = \"www\"",
        "root = \"www\"\nheader_read_timeout = \"2s\"",
    );
    let gw = Gateway::start(&config);
    let mut stream = connect(gw.addr());
    stream
        .write_all(b"GET /pid.php HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The gateway closes the connection (with or without a 408): read_to_end returns.
    let _ = stream.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "connection held for {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(1500),
        "closed too early: {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}
