//! Issue 14, reloading the configuration (SIGHUP, `POST /reload` on the
//! admin listener) without dropping a request: under continuous load on
//! keep-alive and new connections, changed apps get new processes started
//! before the old ones drain, unchanged apps keep theirs, a removed app's
//! request in flight finishes, a changed listen address binds the new one
//! before closing the old, and a bad configuration (unreadable, or whose
//! app cannot start) leaves the running one serving and says why.

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::admin::admin_addr;
use crate::util::*;

/// A PHP app whose processes carry `SITE_VERSION = version` in their
/// environment, and an admin listener; `more` is appended (more apps).
fn versioned(listen: &str, version: u32, app_extra: &str, more: &str) -> String {
    format!(
        r#"[server]
listen = "{listen}"
root = "www"

[admin]
listen = "127.0.0.1:0"

[[app]]
name = "php"
command = "{php}"
handles = ["*.php"]
max_instances = 2
{app_extra}
[app.env]
PHP_FCGI_CHILDREN = "0"
PHP_FCGI_MAX_REQUESTS = "10000"
SITE_VERSION = "{version}"
{more}"#,
        php = php_cgi(),
    )
}

fn write_config(gw: &Gateway, text: &str) {
    std::fs::write(gw.dir_path().join("fastgate.toml"), text).expect("write config");
}

/// Waits for the `n`th line containing `needle`.
fn wait_for_nth(gw: &Gateway, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while gw.logs().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} #{n}:\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reload_by_post(gw: &Gateway) -> Response {
    request(admin_addr(gw), "POST", "/reload", &[], b"")
}

/// What one client loop saw.
#[derive(Default)]
struct Seen {
    ok: usize,
    failures: Vec<String>,
    versions: BTreeSet<String>,
}

impl Seen {
    fn record(&mut self, outcome: Result<Response, String>) {
        match outcome {
            Ok(r) if r.status == 200 && r.text().starts_with("version=") => {
                self.ok += 1;
                let version = r.text().split_whitespace().next().unwrap_or("").to_string();
                self.versions.insert(version);
            }
            Ok(r) => self.failures.push(format!("{} {}", r.status, r.text())),
            Err(e) => self.failures.push(e),
        }
    }
}

fn one_request(
    stream: &mut BufReader<TcpStream>,
    addr: SocketAddr,
    close: bool,
) -> Result<Response, String> {
    let connection = if close { "close" } else { "keep-alive" };
    let raw = format!(
        "GET /version.php?sleep=10 HTTP/1.1\r\nHost: {addr}\r\nConnection: {connection}\r\n\r\n"
    );
    stream
        .get_mut()
        .write_all(raw.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    read_response(stream, false).map_err(|e| format!("read: {e}"))
}

fn open(addr: SocketAddr) -> Result<BufReader<TcpStream>, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    Ok(BufReader::new(stream))
}

/// Client loops until `stop` (at most `limit` requests each): half of them
/// on one keep-alive connection, half on a new connection per request.
fn load(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    limit: usize,
) -> Vec<std::thread::JoinHandle<Seen>> {
    (0..4)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let keep_alive = i % 2 == 0;
                let mut seen = Seen::default();
                let mut conn = None;
                for _ in 0..limit {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let outcome = if keep_alive {
                        if conn.is_none() {
                            conn = Some(open(addr));
                        }
                        match conn.as_mut().map(|c| c.as_mut().map_err(|e| e.clone())) {
                            Some(Ok(stream)) => one_request(stream, addr, false),
                            Some(Err(e)) => Err(e),
                            None => Err("no connection".into()),
                        }
                    } else {
                        open(addr).and_then(|mut s| one_request(&mut s, addr, true))
                    };
                    if outcome.is_err() {
                        conn = None;
                    }
                    seen.record(outcome);
                }
                seen
            })
        })
        .collect()
}

#[test]
fn a_reload_under_load_fails_no_request() {
    let gw = Gateway::start(&versioned("127.0.0.1:0", 1, "min_instances = 2\n", ""));
    assert!(gw.get("/version.php").text().starts_with("version=1"));
    let first_pids = pids(&gw);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(gw.addr(), stop.clone(), 20_000);
    std::thread::sleep(Duration::from_millis(500));

    // 1: SIGHUP with a changed environment: new processes for the app.
    write_config(&gw, &versioned("127.0.0.1:0", 2, "min_instances = 2\n", ""));
    gw.signal(Signal::SIGHUP);
    wait_for_nth(&gw, "configuration reloaded", 1);
    std::thread::sleep(Duration::from_millis(500));

    // 2: POST /reload, changing it again and adding a mapping.
    write_config(&gw, &versioned("127.0.0.1:0", 3, "min_instances = 2\n", ""));
    let answer = reload_by_post(&gw);
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), gw.logs());
    let report = answer.json();
    assert_eq!(report["restarted"], serde_json::json!(["php"]), "{report}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);

    let mut total = Seen::default();
    for client in clients {
        let seen = client.join().expect("client thread");
        total.ok += seen.ok;
        total.failures.extend(seen.failures);
        total.versions.extend(seen.versions);
    }
    assert!(
        total.failures.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        total.failures.len(),
        total.ok + total.failures.len(),
        &total.failures[..total.failures.len().min(5)],
        gw.logs()
    );
    assert!(total.ok > 100, "only {} requests", total.ok);
    eprintln!("requests: {}", total.ok);
    let all: Vec<_> = total.versions.iter().map(String::as_str).collect();
    assert_eq!(all, ["version=1", "version=2", "version=3"]);
    // New requests see the last configuration; the first processes are gone.
    assert!(gw.get("/version.php").text().starts_with("version=3"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while first_pids.iter().any(|pid| process_alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "old processes left:\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gw.assert_no_zombies();
}

/// The pids of the php app's processes, from /status.
fn pids(gw: &Gateway) -> Vec<u32> {
    let status = request(admin_addr(gw), "GET", "/status", &[], b"").json();
    status["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .filter(|a| a["name"] == "php")
        .flat_map(|a| a["processes"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["pid"].as_u64().map(|p| p as u32))
        .collect()
}

#[test]
fn unchanged_apps_keep_their_processes_and_mappings_change() {
    let py = fixtures()
        .join("fcgi_app.py")
        .canonicalize()
        .expect("fcgi_app.py");
    let py_app = |version: u32| {
        format!(
            r#"
[[app]]
name = "py"
command = "python3"
args = [{py:?}]
handles = ["/py/*"]
mount = "/py"
resource_type = "unspecified"
inherit_env = ["PATH"]
[app.env]
PY_VERSION = "{version}"
"#
        )
    };
    let gw = Gateway::start(&versioned("127.0.0.1:0", 1, "", &py_app(1)));
    let php_pid = pid_of(&gw.get("/version.php").text()).expect("php pid");
    let py_before = gw.get("/py/pid").text();

    // Only the py app's environment changes; php gets a request
    // parameter more (per request: its processes stay).
    write_config(
        &gw,
        &versioned(
            "127.0.0.1:0",
            1,
            "",
            &format!("[app.params]\nGREETING = \"hi\"\n{}", py_app(2)),
        ),
    );
    let answer = reload_by_post(&gw);
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), gw.logs());
    let report = answer.json();
    assert_eq!(report["kept"], serde_json::json!(["php"]), "{report}");
    assert_eq!(report["restarted"], serde_json::json!(["py"]), "{report}");
    let php = gw.get("/version.php").text();
    assert_eq!(pid_of(&php), Some(php_pid), "php kept its process: {php}");
    assert!(
        php.contains("greeting=hi"),
        "the new parameter applies: {php}"
    );
    assert_ne!(gw.get("/py/pid").text(), py_before, "py got a new process");
}

#[test]
fn a_bad_configuration_is_refused_and_the_running_one_serves_on() {
    let gw = Gateway::start(&versioned("127.0.0.1:0", 1, "min_instances = 1\n", ""));
    let pid = pid_of(&gw.get("/version.php").text()).expect("pid");

    // Not TOML: SIGHUP logs why; POST answers 422 with the same cause.
    write_config(&gw, "[server\nlisten = ");
    gw.signal(Signal::SIGHUP);
    wait_for_nth(&gw, "reload refused", 1);
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains("reload refused")).unwrap();
    assert!(line.contains("fastgate.toml"), "{line}");
    let answer = reload_by_post(&gw);
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(
        answer.text().contains("fastgate.toml:1"),
        "{}",
        answer.text()
    );
    assert_eq!(pid_of(&gw.get("/version.php").text()), Some(pid));

    // Valid, but the app's new command cannot start: nothing is swapped.
    write_config(
        &gw,
        &versioned("127.0.0.1:0", 2, "min_instances = 1\n", "").replace(&php_cgi(), "/bin/false"),
    );
    let answer = reload_by_post(&gw);
    assert_eq!(answer.status, 422, "{}\n{}", answer.text(), gw.logs());
    assert!(answer.text().contains("app \"php\""), "{}", answer.text());
    let r = gw.get("/version.php");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("version=1"), "{}", r.text());
    assert_eq!(pid_of(&r.text()), Some(pid));

    // A good file after the bad ones applies.
    write_config(&gw, &versioned("127.0.0.1:0", 2, "min_instances = 1\n", ""));
    assert_eq!(reload_by_post(&gw).status, 200, "{}", gw.logs());
    assert!(gw.get("/version.php").text().starts_with("version=2"));
    gw.assert_no_zombies();
}

/// A free loopback port, for a listen address that must be known in advance.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn a_new_listen_address_is_bound_before_the_old_one_closes() {
    let first: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::start(&versioned(&first.to_string(), 1, "", ""));
    assert_eq!(gw.addr(), first);
    // A keep-alive connection made before the reload.
    let mut kept = open(first).expect("connect");
    assert_eq!(one_request(&mut kept, first, false).unwrap().status, 200);

    let second: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    write_config(&gw, &versioned(&second.to_string(), 1, "", ""));
    let report = reload_by_post(&gw).json();
    assert_eq!(
        report["listening"],
        serde_json::json!([second.to_string()]),
        "{report}"
    );
    assert_eq!(request(second, "GET", "/version.php", &[], b"").status, 200);
    assert!(
        TcpStream::connect(first).is_err(),
        "the old address still accepts"
    );
    // The connection accepted before goes on.
    assert_eq!(one_request(&mut kept, first, false).unwrap().status, 200);

    // An address that cannot be bound: refused, nothing closed.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    write_config(&gw, &versioned(&taken_addr.to_string(), 1, "", ""));
    let answer = reload_by_post(&gw);
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(
        answer.text().contains(&taken_addr.to_string()),
        "{}",
        answer.text()
    );
    assert_eq!(request(second, "GET", "/version.php", &[], b"").status, 200);
}

#[test]
fn a_removed_app_finishes_its_request_in_flight_then_stops() {
    let gw = Gateway::start(&versioned("127.0.0.1:0", 1, "", ""));
    let pid = pid_of(&gw.get("/version.php").text()).expect("pid");
    let addr = gw.addr();
    let slow =
        std::thread::spawn(move || request(addr, "GET", "/version.php?sleep=1500", &[], b""));
    std::thread::sleep(Duration::from_millis(300));

    // The app is gone from the file: a static site remains.
    let without_app = versioned("127.0.0.1:0", 1, "", "");
    let static_only = &without_app[..without_app.find("[[app]]").unwrap()];
    write_config(&gw, static_only);
    let answer = reload_by_post(&gw);
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), gw.logs());
    assert_eq!(answer.json()["removed"], serde_json::json!(["php"]));
    // New requests no longer reach it (no mapping for .php: a static file).
    assert_ne!(
        gw.get("/version.php").text().split_whitespace().next(),
        Some("version=1")
    );

    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "{}", gw.logs());
    assert_eq!(pid_of(&r.text()), Some(pid));
    let deadline = Instant::now() + Duration::from_secs(20);
    while process_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "removed app's process left:\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gw.assert_no_zombies();
}

/// Kept across reloads only where it is harmless: the access log is
/// reopened (logrotate's `postrotate` may reload).
#[test]
fn the_access_log_is_reopened() {
    let dir_config = |name: &str| {
        versioned("127.0.0.1:0", 1, "", "").replacen(
            "root = \"www\"\n",
            &format!("root = \"www\"\naccess_log = \"{name}\"\n"),
            1,
        )
    };
    let gw = Gateway::start(&dir_config("access.log"));
    assert_eq!(gw.get("/version.php").status, 200);
    let log = gw.dir_path().join("access.log");
    let rotated = gw.dir_path().join("access.log.1");
    wait_until(|| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("/version.php")
    });
    std::fs::rename(&log, &rotated).unwrap();
    assert_eq!(reload_by_post(&gw).status, 200, "{}", gw.logs());
    assert_eq!(gw.get("/page.html").status, 200);
    wait_until(|| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("/page.html")
    });
    assert!(
        !std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("/page.html")
    );
}

fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Plugins are loaded again: a changed `config` applies to the apps that
/// use them, whose processes stay; a plugin refusing its new config
/// refuses the reload.
#[test]
fn plugins_are_reloaded_with_their_new_config() {
    let with_tenant = |default: &str| {
        let plugin = format!(
            "[[plugin]]\nname = \"tenant\"\npath = \"{}\"\nconfig = {{ header = \"x-tenant\", default = \"{default}\" }}\n",
            plugin_file("examples/tenant-env", PluginBuild::Wasm)
        );
        versioned("127.0.0.1:0", 1, "plugins = [\"tenant\"]\n", &plugin)
    };
    let gw = Gateway::start(&with_tenant("public"));
    let env = gw.get("/env.php").json();
    assert_eq!(env["TENANT"], "public", "{env}");
    let pid = pid_of(&gw.get("/version.php").text());

    write_config(&gw, &with_tenant("private"));
    let answer = reload_by_post(&gw);
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), gw.logs());
    assert_eq!(answer.json()["kept"], serde_json::json!(["php"]));
    let env = gw.get("/env.php").json();
    assert_eq!(env["TENANT"], "private", "{env}");
    assert_eq!(pid_of(&gw.get("/version.php").text()), pid);

    // A plugin whose init refuses its config.
    let refused = format!(
        "{}\n[[plugin]]\nname = \"guard\"\npath = \"{}\"\nconfig = {{ deny_status = 200 }}\n",
        with_tenant("other"),
        plugin_file("examples/path-filter", PluginBuild::Wasm)
    );
    write_config(&gw, &refused);
    let answer = reload_by_post(&gw);
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(
        answer.text().contains("plugin \"guard\""),
        "{}",
        answer.text()
    );
    assert_eq!(gw.get("/env.php").json()["TENANT"], "private");
}

/// An app a reload adds has its series in /metrics and its counters in
/// /status from its first request.
#[test]
fn an_app_added_by_a_reload_is_counted() {
    let py = fixtures()
        .join("fcgi_app.py")
        .canonicalize()
        .expect("fcgi_app.py");
    let gw = Gateway::start(&versioned("127.0.0.1:0", 1, "", ""));
    let py_app = format!(
        "\n[[app]]\nname = \"py\"\ncommand = \"python3\"\nargs = [{py:?}]\nhandles = [\"/py/*\"]\nmount = \"/py\"\nresource_type = \"unspecified\"\ninherit_env = [\"PATH\"]\n"
    );
    write_config(&gw, &versioned("127.0.0.1:0", 1, "", &py_app));
    let answer = reload_by_post(&gw);
    assert_eq!(
        answer.json()["added"],
        serde_json::json!(["py"]),
        "{}",
        answer.text()
    );
    assert_eq!(gw.get("/py/hello").status, 200);
    assert_eq!(gw.get("/py/crash").status, 502);

    let metrics = request(admin_addr(&gw), "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("fastgate_requests_total{app=\"py\",code=\"2xx\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fastgate_failed_requests_total{app=\"py\",cause=\"crash\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fastgate_queue_wait_seconds_count{app=\"py\"}"),
        "{metrics}"
    );
    let status = request(admin_addr(&gw), "GET", "/status", &[], b"").json();
    let py = status["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "py")
        .cloned()
        .unwrap_or_else(|| panic!("no py in {status}"));
    assert_eq!(py["responses"]["2xx"], 1, "{status}");
    assert_eq!(py["failures"]["crash"], 1, "{status}");
}

/// A request still reading its body when a reload retires its app's pool
/// keeps that pool until it is done, however long past shutdown_timeout
/// (its own timeouts bound it): stopping the pool under it would fail it.
#[test]
fn a_slow_upload_across_a_reload_is_served_by_its_own_configuration() {
    let config = |version| {
        versioned("127.0.0.1:0", version, "min_instances = 1\n", "").replacen(
            "root = \"www\"\n",
            "root = \"www\"\nshutdown_timeout = \"1s\"\n",
            1,
        )
    };
    let gw = Gateway::start(&config(1));
    let mut upload = open(gw.addr()).expect("connect");
    let head = format!(
        "POST /version.php HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n12345",
        gw.addr()
    );
    upload.get_mut().write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    write_config(&gw, &config(2));
    let answer = reload_by_post(&gw);
    assert_eq!(
        answer.json()["restarted"],
        serde_json::json!(["php"]),
        "{}",
        answer.text()
    );
    assert!(gw.get("/version.php").text().starts_with("version=2"));
    // Past the old configuration's shutdown_timeout.
    std::thread::sleep(Duration::from_millis(1600));
    upload.get_mut().write_all(b"67890").unwrap();
    let r = read_response(&mut upload, false).expect("response");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert!(r.text().starts_with("version=1"), "{}", r.text());
    assert!(
        gw.wait_for_log(
            "stopping the processes of the previous configuration",
            Duration::from_secs(10)
        ),
        "{}",
        gw.logs()
    );
}
