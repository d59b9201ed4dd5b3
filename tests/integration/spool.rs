//! Response spooling: an app's response is read at the app's speed, so a
//! slow or stalled client never holds a single-request process; memory
//! stays bounded (the rest goes to a temporary file); `send_timeout` drops a
//! client that takes nothing; `X-Accel-Buffering: no` streams.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::util::*;

/// A client with a tiny receive window that sends a request, reads the
/// response head and the first bytes of the body, then stops reading.
struct StalledReader {
    reader: BufReader<TcpStream>,
    status: u16,
    chunked: bool,
    /// The raw bytes of the body read so far.
    read: Vec<u8>,
}

impl StalledReader {
    fn start(addr: SocketAddr, path: &str) -> StalledReader {
        let stream = small_window_connect(addr);
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut reader = BufReader::with_capacity(64, stream);
        write!(
            reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let head = read_response(&mut reader, true).unwrap();
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let mut read = vec![0u8; 100];
        reader.read_exact(&mut read).unwrap();
        StalledReader {
            reader,
            status: head.status,
            chunked,
            read,
        }
    }

    /// Reads the rest: the status and the whole body (unchunked).
    fn resume(mut self) -> (u16, Vec<u8>) {
        self.reader.read_to_end(&mut self.read).unwrap();
        let body = if self.chunked {
            dechunk(&self.read)
        } else {
            self.read
        };
        (self.status, body)
    }
}

/// A loopback connection with a 4 KiB receive buffer, so the kernel
/// cannot take a large response in the client's place.
fn small_window_connect(addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, connect, setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 loopback expected")
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4)).unwrap();
    TcpStream::from(fd)
}

/// The data of a chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("size line");
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// big.php's body: 64 KiB chunks of "0123456789abcdef".
fn big_body_is_intact(body: &[u8], mib: usize) -> bool {
    body.len() == mib << 20 && body.chunks(16).all(|c| c == b"0123456789abcdef")
}

#[test]
fn stalled_readers_do_not_hold_instances_and_get_their_whole_response() {
    let gw = Gateway::start(&php_config("max_instances = 2"));
    let addr = gw.addr();
    let stalled: Vec<StalledReader> = (0..4)
        .map(|_| StalledReader::start(addr, "/big.php?mib=8"))
        .collect();
    let started = Instant::now();
    let next = gw.get("/pid.php");
    assert_eq!(next.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a fifth request waited {:?} behind stalled readers",
        started.elapsed()
    );
    for reader in stalled {
        let (status, body) = reader.resume();
        assert_eq!(status, 200);
        assert!(big_body_is_intact(&body, 8), "body of {} bytes", body.len());
    }
}

#[test]
fn twenty_stalled_readers_of_16_mib_keep_the_gateway_small() {
    let gw = Gateway::start(&php_config("max_instances = 2"));
    let addr = gw.addr();
    let stalled: Vec<StalledReader> = (0..20)
        .map(|_| StalledReader::start(addr, "/big.php?mib=16"))
        .collect();
    // Every response is spooled once the instances are free again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while gw.get("/pid.php").status != 200 {
        assert!(Instant::now() < deadline);
    }
    let peak = gw.peak_rss_kib();
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} KiB with 20 stalled readers"
    );
    for reader in stalled {
        let (status, body) = reader.resume();
        assert_eq!(status, 200);
        assert!(
            big_body_is_intact(&body, 16),
            "body of {} bytes",
            body.len()
        );
    }
}

#[test]
fn x_accel_buffering_no_streams_at_the_clients_speed_and_is_removed() {
    let gw = Gateway::start(&php_config("max_instances = 1"));
    let addr = gw.addr();
    // 16 MiB in 64 KiB lines (more than the socket buffers take),
    // unbuffered: a stalled client holds the one instance, as it would
    // behind nginx's `fastcgi_buffering off`.
    let stalled = StalledReader::start(addr, "/stream.php?accel=no&chunks=256&ms=0&kib=64");
    let started = Instant::now();
    let mut waiting = connect(addr);
    write!(
        waiting,
        "GET /pid.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        waiting.read(&mut byte).is_err(),
        "the one instance was free while a streaming response was stalled"
    );
    let (status, body) = stalled.resume();
    assert_eq!(status, 200);
    assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), 256);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let next = read_response(&mut BufReader::new(waiting), false).unwrap();
    assert_eq!(next.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(1500));

    let r = gw.get("/stream.php?accel=no&chunks=2&ms=0");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-accel-buffering"), None);
}

#[test]
fn a_page_that_flushes_reaches_the_client_before_it_ends() {
    let gw = Gateway::start(&php_config(""));
    for query in ["chunks=5&ms=300", "chunks=5&ms=300&accel=no"] {
        let mut stream = connect(gw.addr());
        write!(
            stream,
            "GET /stream.php?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let started = Instant::now();
        let mut reader = BufReader::new(stream);
        let head = read_response(&mut reader, true).unwrap();
        assert_eq!(head.status, 200);
        // Chunked framing: a size line, then the first line of the page.
        let mut line = String::new();
        while !line.starts_with("chunk 0") {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        let first = started.elapsed();
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        let all = started.elapsed();
        assert!(rest.contains("chunk 4"), "{query}: {rest}");
        // Five lines 300 ms apart: streamed, the first arrives 1.2 s before
        // the last; buffered to the end, together with it.
        assert!(
            all >= Duration::from_millis(1200) && all - first >= Duration::from_millis(800),
            "{query}: first chunk after {first:?}, whole page after {all:?}"
        );
    }
}

#[test]
fn send_timeout_drops_a_client_that_takes_nothing() {
    let config = php_config("max_instances = 1")
        .replace("root = \"www\"", "root = \"www\"\nsend_timeout = \"2s\"");
    let gw = Gateway::start(&config);
    let stalled = StalledReader::start(gw.addr(), "/big.php?mib=8");
    assert!(
        gw.wait_for_log("send_timeout", Duration::from_secs(10)),
        "no send_timeout line:\n{}",
        gw.logs()
    );
    // Resuming finds the connection closed long before 8 MiB.
    let mut reader = stalled.reader;
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(
        rest.len() + stalled.read.len() < 8 << 20,
        "the whole response arrived after send_timeout"
    );
    // The instance was never held: the app still answers.
    assert_eq!(gw.get("/pid.php").status, 200);
}

#[test]
fn a_stalled_reader_does_not_hold_a_cgi_slot() {
    let app_lines = "handles = [\"*.sh\"]\ninherit_env = [\"PATH\"]\nmax_instances = 1\n";
    let gw = Gateway::start(&launcher_site("cgi", "cgi", app_lines, ""));
    let stalled = StalledReader::start(gw.addr(), "/cgi-bin/big.sh?mib=8");
    let started = Instant::now();
    let next = gw.get("/cgi-bin/hello.sh?x=1");
    assert_eq!(next.status, 200, "{}", next.text());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the next script waited {:?} for the one CGI slot",
        started.elapsed()
    );
    let (status, body) = stalled.resume();
    assert_eq!(status, 200);
    assert!(
        body.len() == 8 << 20 && body.iter().all(|&b| b == b'x'),
        "body of {} bytes",
        body.len()
    );
}
