//! Request bodies: forms, multipart uploads, raw and chunked bodies, limits.

use crate::util::*;

/// What body.php answers for `body`.
fn body_report(body: &[u8]) -> String {
    format!(
        "len={} crc={:08x} content_length={}\n",
        body.len(),
        crc32(body),
        body.len()
    )
}

const UPLOAD_ARGS: &str = r#"args = ["-d", "upload_max_filesize=64M", "-d", "post_max_size=64M"]"#;

#[test]
fn multipart_upload_of_20_mib_arrives_intact() {
    let gw = Gateway::start(&php_config(UPLOAD_ARGS));
    let file = payload(20 * 1024 * 1024);
    let r = post_upload(gw.addr(), &file);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), upload_report(&file));
}

#[test]
fn raw_body_of_20_mib_arrives_intact() {
    let gw = Gateway::start(&php_config(UPLOAD_ARGS));
    let body = payload(20 * 1024 * 1024 + 7);
    let r = post(gw.addr(), "/body.php", "application/octet-stream", &body);
    assert_eq!(r.text(), body_report(&body));
}

#[test]
fn chunked_body_gets_a_content_length() {
    let gw = Gateway::start(&php_config(""));
    let body = payload(300_000);
    let mut raw = b"POST /body.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for chunk in body.chunks(70_000) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = send_raw(gw.addr(), &raw, false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), body_report(&body));
}

#[test]
fn body_over_max_body_size_is_413() {
    let config =
        php_config("").replace("root = \"www\"", "root = \"www\"\nmax_body_size = \"1MiB\"");
    let gw = Gateway::start(&config);
    let r = post(
        gw.addr(),
        "/body.php",
        "application/octet-stream",
        &payload(1024 * 1024 + 1),
    );
    assert_eq!(r.status, 413);
    assert!(
        gw.wait_for_log("max_body_size", std::time::Duration::from_secs(5)),
        "no log line names the limit"
    );
    // Exactly at the limit is fine.
    let r = post(
        gw.addr(),
        "/body.php",
        "application/octet-stream",
        &payload(1024 * 1024),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn response_of_50_mib_streams_with_bounded_memory() {
    let gw = Gateway::start(&php_config(""));
    let r = gw.get("/big.php?mib=50");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 50 * 1024 * 1024);
    let chunk = "0123456789abcdef".repeat(4096);
    let expected = chunk.as_bytes().repeat(16 * 50);
    assert!(r.body == expected, "response body differs");
    let peak = gw.peak_rss_kib();
    assert!(
        peak < 48 * 1024,
        "gateway peak RSS {peak} KiB: the response was buffered"
    );
}
