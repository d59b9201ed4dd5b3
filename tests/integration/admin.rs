//! Issue 14, the admin listener (`[admin]`): `/ping`, `/status` (JSON and
//! text) from the pools' own snapshots, a bearer token from a file, and an
//! answer while every instance of an app is busy and requests queue.

use std::time::{Duration, Instant};

use crate::util::*;

/// The test app with an admin listener on an ephemeral port (and these
/// extra `[admin]` lines).
fn with_admin(app_extra: &str, admin_extra: &str) -> String {
    format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin_extra}\n",
        test_app_config(&[], app_extra)
    )
}

/// The admin listener's address, from the log.
pub(crate) fn admin_addr(gw: &Gateway) -> std::net::SocketAddr {
    assert!(
        gw.wait_for_log("admin listener", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains("admin listener")).unwrap();
    line.split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

fn admin_get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Response {
    request(admin_addr(gw), "GET", path, headers, b"")
}

#[test]
fn ping_and_status_describe_the_pools() {
    let gw = Gateway::start(&with_admin("max_instances = 2\nmin_instances = 1", ""));
    let ping = admin_get(&gw, "/ping", &[]);
    assert_eq!((ping.status, ping.text()), (200, "pong\n".to_string()));
    // The public listener knows nothing of it.
    assert_eq!(gw.get("/ping").status, 404);
    assert_eq!(gw.get("/py/hello").status, 200);
    let r = admin_get(&gw, "/status", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let status: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    let app = &status["apps"][0];
    assert_eq!(app["name"], "py");
    assert_eq!(app["state"], "running");
    assert_eq!(app["max_instances"], 2);
    assert_eq!(app["instances"]["total"], 1, "{status}");
    assert_eq!(app["instances"]["idle"], 1, "{status}");
    let process = &app["processes"][0];
    assert_eq!(process["state"], "idle");
    assert_eq!(process["requests"], 1);
    // A python process: several MiB resident.
    assert!(process["rss_kib"].as_u64().unwrap() > 1024, "{status}");
    let pid = process["pid"].as_u64().unwrap() as u32;
    assert!(gw.children().iter().any(|c| c.0 == pid), "{status}");
    assert_eq!(app["responses"]["2xx"], 1, "{status}");
    assert_eq!(app["responses"]["5xx"], 0, "{status}");
    let text = admin_get(&gw, "/status?format=text", &[]).text();
    assert!(
        text.contains("responses 1xx 0, 2xx 1, 3xx 0, 4xx 0, 5xx 0"),
        "{text}"
    );
    assert!(text.contains("app py: running"), "{text}");
    assert!(text.contains(&format!("pid {pid:>7}  idle")), "{text}");
    assert_eq!(admin_get(&gw, "/nothing", &[]).status, 404);
    let post = request(admin_addr(&gw), "POST", "/status", &[], b"");
    assert_eq!(
        (post.status, post.header("allow")),
        (405, Some("GET, HEAD"))
    );
}

#[test]
fn status_answers_while_every_instance_is_busy() {
    let gw = Gateway::start(&with_admin("max_instances = 1\nqueue_length = 10", ""));
    let addr = gw.addr();
    let busy: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/py/sleep/2000", &[], b"")))
        .collect();
    // One serving, two queued: the admin still answers at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let asked = Instant::now();
        let r = admin_get(&gw, "/status", &[]);
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "the admin waited"
        );
        let status: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
        if status["apps"][0]["queue"]["waiting"] == 2 {
            break status;
        }
        assert!(Instant::now() < deadline, "never saw the queue: {status}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let app = &status["apps"][0];
    assert_eq!(app["instances"]["busy"], 1, "{status}");
    assert!(app["queue"]["most"].as_u64().unwrap() >= 2, "{status}");
    for request in busy {
        assert_eq!(request.join().unwrap().status, 200);
    }
}

#[test]
fn a_token_file_guards_every_admin_request() {
    let gw = Gateway::start_with(&with_admin("", "token_file = \"admin.token\""), |dir| {
        std::fs::write(dir.join("admin.token"), "s3cret-token\n").unwrap()
    });
    let none = admin_get(&gw, "/ping", &[]);
    assert_eq!(
        (none.status, none.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    assert_eq!(
        admin_get(&gw, "/status", &[("Authorization", "Bearer wrong")]).status,
        401
    );
    let ok = admin_get(&gw, "/ping", &[("Authorization", "Bearer s3cret-token")]);
    assert_eq!((ok.status, ok.text()), (200, "pong\n".to_string()));
}

#[test]
fn the_admin_listener_never_shares_the_public_address() {
    let config = "[server]\nlisten = \"127.0.0.1:18999\"\nroot = \"www\"\n[admin]\nlisten = \"0.0.0.0:18999\"\n";
    let (ok, stdout, _) = check_config(&with_admin("", "token_file = \"t\""));
    assert!(ok);
    assert!(
        stdout.contains("admin       127.0.0.1:0 (bearer token from"),
        "{stdout}"
    );
    let (ok, _, stderr) = check_config(config);
    assert!(!ok);
    assert!(
        stderr.contains("admin.listen") && stderr.contains("port of its own"),
        "{stderr}"
    );
    // A token file that cannot be read stops the start, naming the key.
    let stderr = serve_must_fail(&with_admin("", "token_file = \"missing.token\""));
    assert!(
        stderr.contains("token_file") && stderr.contains("missing.token"),
        "{stderr}"
    );
}

#[test]
fn recycle_on_the_admin_listener_replaces_every_process() {
    let gw = Gateway::start(&with_admin("max_instances = 2\nmin_instances = 2", ""));
    let pids = |gw: &Gateway| -> Vec<u64> {
        let status: serde_json::Value =
            serde_json::from_str(&admin_get(gw, "/status", &[]).text()).unwrap();
        status["apps"][0]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["state"] == "idle")
            .map(|p| p["pid"].as_u64().unwrap())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids(&gw).len() < 2 {
        assert!(Instant::now() < deadline, "two instances never idle");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = pids(&gw);
    let addr = admin_addr(&gw);
    assert_eq!(
        request(addr, "GET", "/apps/py/recycle", &[], b"").status,
        405
    );
    assert_eq!(
        request(addr, "POST", "/apps/nope/recycle", &[], b"").status,
        404
    );
    assert_eq!(
        request(addr, "POST", "/apps/py/recycle", &[], b"").status,
        202
    );
    assert!(
        gw.wait_for_log("recycle complete", Duration::from_secs(20)),
        "{}",
        gw.logs()
    );
    let after = pids(&gw);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    assert_eq!(gw.get("/py/hello").status, 200);
    // Both old ones were reaped as recycled.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&admin_get(&gw, "/status", &[]).text()).unwrap();
        let app = &status["apps"][0];
        if app["exits"]["recycled"] == 2 {
            assert_eq!(app["last_exit"]["reason"], "recycled", "{status}");
            assert!(before.contains(&app["last_exit"]["pid"].as_u64().unwrap()));
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses OpenMetrics text with Prometheus's own parser (the
/// `prometheus_client` package, installed by tests/run.sh) and prints each
/// sample as `name{labels} value`.
fn parse_openmetrics(text: &str) -> String {
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/django-venv/bin/python");
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families\nfor family in text_string_to_metric_families(sys.stdin.read()):\n    for s in family.samples:\n        labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n        print(f'{s.name}{{{labels}}} {s.value}')\n";
    let mut child = std::process::Command::new(&venv)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (tests/run.sh installs prometheus_client)",
                venv.display()
            )
        });
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid OpenMetrics:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn metrics_are_valid_openmetrics_and_count_what_happened() {
    // A server plugin (misbehave: it panics on /misbehave/panic) for the
    // plugin families.
    let config = with_admin("max_instances = 2", "").replacen(
        "root = \"www\"\n",
        "root = \"www\"\nplugins = [\"m\"]\n",
        1,
    ) + &format!(
        "[[plugin]]\nname = \"m\"\npath = \"{}\"\n",
        plugin_file("tests/plugins/misbehave", PluginBuild::Wasm)
    );
    let gw = Gateway::start(&config);
    // The crash first: the instance that served the rest stays idle.
    assert_eq!(gw.get("/py/crash").status, 502);
    for _ in 0..3 {
        assert_eq!(gw.get("/py/hello").status, 200);
    }
    assert_eq!(gw.get("/missing.html").status, 404);
    assert_eq!(gw.get("/misbehave/panic").status, 500);
    let r = admin_get(&gw, "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.header("content-type")
    );
    let samples = parse_openmetrics(&r.text());
    for expected in [
        "fastgate_requests_total{app=py,code=2xx} 3",
        "fastgate_requests_total{app=py,code=5xx} 1",
        "fastgate_requests_total{app=-,code=4xx} 1",
        "fastgate_response_head_seconds_count{app=py} 4",
        "fastgate_instances{app=py,state=idle} 1",
        "fastgate_queue_waiting{app=py} 0",
        "fastgate_request_crashes_total{app=py} 1",
        "fastgate_requests_total{app=-,code=5xx} 1",
        "fastgate_failed_requests_total{app=py,cause=crash} 1",
        "fastgate_failed_requests_total{app=py,cause=timeout} 0",
        // Two processes: the one that crashed, and the one that served.
        "fastgate_process_spawns_total{app=py} 2",
        "fastgate_process_exits_total{app=py,reason=crashed} 1",
        // Four leases: none waited more than the first bucket... all of
        // them count.
        "fastgate_queue_wait_seconds_count{app=py} 4",
        // Every request went through the server plugin: six calls, one
        // failed.
        "fastgate_plugin_calls_total{hook=on_request,plugin=m} 6",
        "fastgate_plugin_errors_total{hook=on_request,plugin=m} 1",
        "fastgate_plugin_call_seconds_count{hook=on_request,plugin=m} 6",
    ] {
        assert!(
            samples.lines().any(|l| l == expected),
            "no {expected:?} in\n{samples}"
        );
    } // A python process: several MiB resident.
    let rss = samples
        .lines()
        .find_map(|l| l.strip_prefix("fastgate_instance_resident_memory_bytes{app=py} "))
        .unwrap_or_else(|| panic!("no resident memory in\n{samples}"));
    assert!(rss.parse::<f64>().unwrap() > 1024.0 * 1024.0, "{rss}");
}

/// `/status` as JSON.
fn status_json(gw: &Gateway) -> serde_json::Value {
    serde_json::from_str(&admin_get(gw, "/status", &[]).text()).unwrap()
}

#[test]
fn status_shows_the_current_request_uptime_failures_and_exits() {
    let gw = Gateway::start(&with_admin("max_instances = 2\nmin_instances = 1", ""));
    let addr = gw.addr();
    let slow =
        std::thread::spawn(move || request(addr, "GET", "/py/sleep/1500?x=%3Cb%3E", &[], b""));
    // The busy process shows what it serves, recorded when it was leased.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, current) = loop {
        let status = status_json(&gw);
        let busy = status["apps"][0]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["state"] == "busy")
            .cloned();
        if let Some(p) = busy
            && !p["current"].is_null()
        {
            break (status, p["current"].clone());
        }
        assert!(Instant::now() < deadline, "never saw it busy: {status}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(current["method"], "GET", "{status}");
    assert_eq!(current["uri"], "/py/sleep/1500?x=%3Cb%3E", "{status}");
    assert!(
        current["client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{status}"
    );
    assert!(
        current["running_seconds"].as_f64().unwrap() < 1.5,
        "{status}"
    );
    let text = admin_get(&gw, "/status?format=text", &[]).text();
    assert!(text.contains("GET /py/sleep/1500"), "{text}");
    assert_eq!(slow.join().unwrap().status, 200);
    // Released: no current request any more.
    let status = status_json(&gw);
    for p in status["apps"][0]["processes"].as_array().unwrap() {
        assert!(p["current"].is_null(), "{status}");
        assert!(p["uptime_seconds"].as_u64().is_some(), "{status}");
    }

    // A crash: a 5xx by cause, and the last exit says how and why.
    assert_eq!(gw.get("/py/crash").status, 502);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = status_json(&gw);
        if status["apps"][0]["last_exit"]["reason"] == "crashed" {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit recorded: {status}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let app = &status["apps"][0];
    assert_eq!(app["last_exit"]["status"], "exit status 3", "{status}");
    assert!(app["last_exit"]["at"].as_f64().unwrap() > 1.0e9, "{status}");
    assert_eq!(app["exits"]["crashed"], 1, "{status}");
    assert_eq!(app["failures"]["crash"], 1, "{status}");
    assert_eq!(app["failures"]["timeout"], 0, "{status}");
    assert_eq!(app["rapid_fails"]["last_minute"], 0, "{status}");
    // min_instances = 1: a replacement is spawned after the exit is
    // recorded (soon, not at once).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status_json(&gw);
        if status["apps"][0]["spawns"].as_u64().unwrap() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no replacement spawned: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // stderr_mode's default turns stderr output into a 500.
    assert_eq!(gw.get("/py/stderr").status, 500);
    let status = status_json(&gw);
    assert_eq!(status["apps"][0]["failures"]["stderr"], 1, "{status}");
    assert_eq!(status["apps"][0]["responses"]["5xx"], 2, "{status}");
}

#[test]
fn a_request_timeout_is_a_5xx_by_timeout_and_its_process_exit_says_so() {
    let gw = Gateway::start(&with_admin(
        "max_instances = 1\nrequest_timeout = \"1s\"",
        "",
    ));
    assert_eq!(gw.get("/py/sleep/5000").status, 504);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = status_json(&gw);
        if !status["apps"][0]["last_exit"].is_null() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit recorded: {status}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let app = &status["apps"][0];
    assert_eq!(app["last_exit"]["reason"], "request_timeout", "{status}");
    assert_eq!(app["exits"]["request_timeout"], 1, "{status}");
    assert_eq!(app["failures"]["timeout"], 1, "{status}");
}

#[test]
fn an_app_taken_offline_by_hand_answers_503_until_it_is_back_online() {
    let gw = Gateway::start(&with_admin("min_instances = 1", ""));
    let admin = admin_addr(&gw);
    assert_eq!(gw.get("/py/hello").status, 200);
    assert_eq!(
        request(admin, "GET", "/apps/py/offline", &[], b"").status,
        405
    );
    assert_eq!(
        request(admin, "POST", "/apps/py/nothing", &[], b"").status,
        404
    );
    assert_eq!(
        request(admin, "POST", "/apps/nope/offline", &[], b"").status,
        404
    );
    let r = request(admin, "POST", "/apps/py/offline", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.get("/py/hello");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("60")));
    let status = status_json(&gw);
    let app = &status["apps"][0];
    assert_eq!(app["state"], "offline", "{status}");
    assert_eq!(app["offline"]["kind"], "manual", "{status}");
    assert!(app["offline"]["until"].is_null(), "{status}");
    assert_eq!(app["failures"]["offline"], 1, "{status}");
    // No process was stopped for it.
    assert_eq!(app["instances"]["idle"], 1, "{status}");
    let text = admin_get(&gw, "/status?format=text", &[]).text();
    assert!(
        text.contains("taken offline on the admin listener"),
        "{text}"
    );
    assert!(gw.logs().contains("taken offline on the admin listener"));
    let r = request(admin, "POST", "/apps/py/online", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(gw.get("/py/hello").status, 200);
    let status = status_json(&gw);
    assert_eq!(status["apps"][0]["state"], "running", "{status}");
    assert!(status["apps"][0]["offline"].is_null(), "{status}");
}

#[test]
fn a_full_queue_and_a_failed_start_are_5xx_by_their_cause() {
    let gw = Gateway::start(&with_admin("max_instances = 1\nqueue_length = 0", ""));
    let addr = gw.addr();
    let busy = std::thread::spawn(move || request(addr, "GET", "/py/sleep/1500", &[], b""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_json(&gw)["apps"][0]["instances"]["busy"] != 1 {
        assert!(Instant::now() < deadline, "never busy");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(gw.get("/py/hello").status, 503);
    assert_eq!(busy.join().unwrap().status, 200);
    let status = status_json(&gw);
    assert_eq!(status["apps"][0]["failures"]["queue_full"], 1, "{status}");

    // A program that exits at once: its start fails, counted for rapid
    // fails too.
    let config = with_admin("", "").replace("command = \"python3\"", "command = \"false\"");
    let gw = Gateway::start(&config);
    assert_eq!(gw.get("/py/hello").status, 502);
    let status = status_json(&gw);
    let app = &status["apps"][0];
    assert_eq!(app["failures"]["spawn_failure"], 1, "{status}");
    assert_eq!(app["rapid_fails"]["last_minute"], 1, "{status}");
    assert_eq!(app["rapid_fails"]["total"], 1, "{status}");
}
