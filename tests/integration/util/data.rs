//! Test data and what the fixtures answer about it: deterministic payloads,
//! CRC-32, the `pid=` markers of the PHP fixtures and the multipart upload to
//! upload.php. Sending goes through `client`; this file only shapes bytes.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::client::{Response, post};

/// The distinct values of a PHP `pid=NNN` marker in responses.
pub fn distinct_pids(responses: &[Response]) -> HashSet<u32> {
    responses.iter().filter_map(|r| pid_of(&r.text())).collect()
}

pub fn pid_of(text: &str) -> Option<u32> {
    text.split("pid=")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// CRC-32 (IEEE), to compare with PHP's `hash('crc32b', ...)`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Deterministic test data.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// POSTs a multipart form to upload.php: a `field=value` field and `file`
/// as the upload `file`.
pub fn post_upload(addr: SocketAddr, file: &[u8]) -> Response {
    let boundary = "fastgateBoundary7MA4YWxk";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    post(
        addr,
        "/upload.php",
        &format!("multipart/form-data; boundary={boundary}"),
        &body,
    )
}

/// What upload.php answers for [`post_upload`] of `file`.
pub fn upload_report(file: &[u8]) -> String {
    format!(
        "file error=0 size={} crc={:08x}\nfield=value\n",
        file.len(),
        crc32(file)
    )
}
