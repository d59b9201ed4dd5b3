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
    let gw = Gateway::start(&with_admin("max_instances = 2", ""));
    // The crash first: the instance that served the rest stays idle.
    assert_eq!(gw.get("/py/crash").status, 502);
    for _ in 0..3 {
        assert_eq!(gw.get("/py/hello").status, 200);
    }
    assert_eq!(gw.get("/missing.html").status, 404);
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
    ] {
        assert!(
            samples.lines().any(|l| l == expected),
            "no {expected:?} in\n{samples}"
        );
    }
}
