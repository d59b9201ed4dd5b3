//! What an idle keep-alive connection costs the gateway (issue 16): the
//! memory it holds once it has served a request and waits for the next,
//! measured as the gateway's resident memory with many of them open.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

/// Connections measured; a few more are opened first, so that what the
/// first connections of a process allocate once is not counted.
const CONNECTIONS: usize = 500;
const WARM_UP: usize = 20;
/// Bytes of resident memory an idle connection may add. The gateway held
/// 26 KiB for each (release and debug builds alike): hyper's read buffer
/// grown to 16 KiB, its write buffer holding a copy of the body, the
/// request future's slot; 13.5 KiB since (debug build), most of it the
/// page of hyper's read buffer and of its write buffer that a request
/// touches.
const MAX_PER_CONNECTION: u64 = 20 * 1024;

/// Opens a connection, gets the 4 KiB file on it, and keeps it open.
fn served_connection(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /static-4k.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let response = read_response(&mut reader, false).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 4096);
    stream
}

/// The gateway's RSS once it stops changing (the last connections may
/// still be going idle when their answers are read), within 5 s.
fn settled_rss_kib(gw: &Gateway) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = gw.rss_kib();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = gw.rss_kib();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn issue16_an_idle_keep_alive_connection_holds_little_memory() {
    let config = "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\naccess_log = \"off\"\nmax_connections = 1000\n";
    let gw = Gateway::start_with(config, |dir| {
        std::fs::write(dir.join("www/static-4k.txt"), vec![b'a'; 4096]).unwrap();
    });
    let warm: Vec<TcpStream> = (0..WARM_UP).map(|_| served_connection(gw.addr())).collect();
    let before = settled_rss_kib(&gw);
    let open: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| served_connection(gw.addr()))
        .collect();
    let after = settled_rss_kib(&gw);
    let per_connection = after.saturating_sub(before) * 1024 / CONNECTIONS as u64;
    eprintln!("{per_connection} bytes per idle connection ({before} -> {after} KiB)");
    assert!(
        per_connection <= MAX_PER_CONNECTION,
        "{per_connection} bytes per idle connection ({before} KiB before, {after} KiB with {CONNECTIONS} more)"
    );
    drop((warm, open));
}

/// The threads serving connections: `worker_threads` as written, and by
/// default half the CPUs, at least one (one thread on two CPUs spent a
/// third less CPU a request than two: docs/benchmarks.md).
#[test]
fn issue16_worker_threads_sets_the_threads_serving_connections() {
    let workers = |gw: &Gateway| {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", gw.pid())).unwrap();
        tasks
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .filter(|comm| comm.trim() == "tokio-rt-worker")
            .count()
    };
    let gw =
        Gateway::start("[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nworker_threads = 3\n");
    assert_eq!(gw.get("/page.html").status, 200);
    assert_eq!(workers(&gw), 3);
    assert!(gw.logs().contains("worker_threads=3"), "{}", gw.logs());

    let cpus = std::thread::available_parallelism().unwrap().get();
    let gw = Gateway::start("[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n");
    assert_eq!(gw.get("/page.html").status, 200);
    assert_eq!(workers(&gw), (cpus / 2).max(1), "{cpus} CPUs");

    let (ok, out, err) =
        check_config("[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nworker_threads = -1\n");
    assert!(!ok, "{out}");
    assert!(
        err.contains("fastgate.toml:4") && err.contains("worker_threads"),
        "{err}"
    );
}
