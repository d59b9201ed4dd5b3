//! The CGI fallback (`launcher = "cgi"`): RFC 3875 scripts, one process per
//! request, and the same script tree under fcgiwrap.

use std::time::{Duration, Instant};

use crate::util::*;

fn cgi_config(app_extra: &str, options: &str) -> String {
    let app_lines = format!("handles = [\"*.sh\"]\ninherit_env = [\"PATH\"]\n{app_extra}");
    launcher_site("cgi", "cgi", &app_lines, options)
}

/// `NAME=value` lines → value of `name`.
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn the_environment_follows_rfc_3875_and_the_query_never_becomes_argv() {
    let gw = Gateway::start(&cgi_config("[app.env]\nHOME = \"/nonexistent\"", ""));
    // An ISINDEX-style query (no '='): RFC 3875 §4.4 would allow argv;
    // php-cgi's CVE-2012-1823 is why the gateway never does it.
    let r = request(
        gw.addr(),
        "GET",
        "/cgi-bin/env.sh/extra/path?-s+-d+x",
        &[("X-Test", "t1"), ("Proxy", "http://evil.invalid")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(line(&text, "argc"), "0");
    assert_eq!(line(&text, "GATEWAY_INTERFACE"), "CGI/1.1");
    assert_eq!(line(&text, "SERVER_PROTOCOL"), "HTTP/1.1");
    assert_eq!(line(&text, "REQUEST_METHOD"), "GET");
    assert_eq!(line(&text, "SCRIPT_NAME"), "/cgi-bin/env.sh");
    assert_eq!(line(&text, "PATH_INFO"), "/extra/path");
    assert!(
        line(&text, "PATH_TRANSLATED").ends_with("/www/extra/path"),
        "{text}"
    );
    assert_eq!(line(&text, "QUERY_STRING"), "-s+-d+x");
    assert_eq!(line(&text, "REMOTE_ADDR"), "127.0.0.1");
    assert_eq!(line(&text, "HTTP_X_TEST"), "t1");
    // httpoxy: no HTTP_PROXY from a client's Proxy header.
    assert_eq!(line(&text, "HTTP_PROXY"), "unset");
    // The app's env and inherit_env; nothing else of the gateway's.
    assert_eq!(line(&text, "HOME"), "/nonexistent");
    assert!(line(&text, "PATH").contains("/bin"));
    // No body: CONTENT_LENGTH is NULL (RFC 3875 §4.1.2).
    assert_eq!(line(&text, "CONTENT_LENGTH"), "");
    // A process per request: three requests, three pids in the access log.
    for _ in 0..2 {
        assert_eq!(gw.get("/cgi-bin/hello.sh").status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.access_log().lines().count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pids: std::collections::HashSet<String> = gw
        .access_log()
        .lines()
        .filter_map(|l| l.split("pid=").nth(1).map(str::to_string))
        .collect();
    assert_eq!(pids.len(), 3, "{}", gw.access_log());
    gw.assert_no_zombies();
}

#[test]
fn post_bodies_statuses_redirects_and_nph() {
    let gw = Gateway::start(&cgi_config("", ""));
    let r = post(
        gw.addr(),
        "/cgi-bin/hello.sh?a=1",
        "text/plain",
        b"posted body",
    );
    assert_eq!(r.text(), "QUERY=a=1 METHOD=POST\nposted body");
    let r = gw.get("/cgi-bin/status.sh");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-from"), Some("status.sh"));
    // The script's stderr goes to the log, with the app and the URI.
    assert!(
        gw.wait_for_log("status.sh says hello on stderr", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("says hello on stderr"))
        .unwrap();
    assert!(
        line.contains("app=cgi") && line.contains("uri=/cgi-bin/status.sh"),
        "{line}"
    );
    // A local redirect is followed inside the gateway (RFC 3875 §6.2.2).
    let r = gw.get("/cgi-bin/redirect.sh");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "target reached QUERY=from=redirect\n");
    // A client redirect is a 302 (§6.2.3).
    let r = gw.get("/cgi-bin/away.sh");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("http://example.invalid/elsewhere")
    );
    // NPH: the script's own status line and headers.
    let r = gw.get("/cgi-bin/nph-hello.sh");
    assert_eq!(r.status, 203);
    assert_eq!(r.header("x-nph"), Some("yes"));
    assert_eq!(r.text(), "nph body\n");
    // A script that does not exist is a 404, never a process.
    assert_eq!(gw.get("/cgi-bin/nope.sh").status, 404);
    gw.assert_no_zombies();
}

#[test]
fn a_script_past_cgi_timeout_is_killed_with_its_children() {
    let pid_file = tempfile::NamedTempFile::new().unwrap();
    give_to_apps(pid_file.path());
    let gw = Gateway::start(&cgi_config(
        &format!(
            "[app.env]\nPID_FILE = {:?}",
            pid_file.path().display().to_string()
        ),
        "cgi_timeout = \"1s\"",
    ));
    let started = Instant::now();
    let r = gw.get("/cgi-bin/sleep.sh");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        gw.wait_for_log("killed at its timeout", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // The script's own child (sleep 30) went with its process group.
    let text = std::fs::read_to_string(pid_file.path()).unwrap();
    let child: u32 = text.trim().trim_start_matches("child=").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(child) {
        assert!(
            Instant::now() < deadline,
            "the script's child {child} survived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    gw.assert_no_zombies();
}

#[test]
fn a_script_lingering_after_its_answer_is_killed_at_cgi_timeout() {
    // One slot: the lingering script must not hold it past its timeout.
    let pid_file = tempfile::NamedTempFile::new().unwrap();
    give_to_apps(pid_file.path());
    let gw = Gateway::start(&cgi_config(
        &format!(
            "max_instances = 1\n[app.env]\nPID_FILE = {:?}",
            pid_file.path().display().to_string()
        ),
        "cgi_timeout = \"1s\"",
    ));
    // The answer ends when the script's output does, not when it exits;
    // the next request gets the slot at the lingering script's timeout.
    let started = Instant::now();
    let r = gw.get("/cgi-bin/linger.sh");
    assert_eq!((r.status, r.text().as_str()), (200, "answered\n"));
    let r = gw.get("/cgi-bin/hello.sh");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "two requests took {:?}",
        started.elapsed()
    );
    let text = std::fs::read_to_string(pid_file.path()).unwrap();
    let pid: u32 = text.trim().trim_start_matches("pid=").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "the script {pid} survived");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        gw.wait_for_log("output ended", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    gw.assert_no_zombies();
}

#[test]
fn the_same_scripts_run_unchanged_under_fcgiwrap() {
    let cgi = Gateway::start(&cgi_config("", ""));
    let fcgi = Gateway::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n[[app]]\nname = \"cgi\"\ncommand = \"{}\"\nhandles = [\"*.sh\"]\ninherit_env = [\"PATH\"]\n",
        fcgiwrap()
    ));
    for (method, path, body) in [
        ("GET", "/cgi-bin/hello.sh?x=1", &b""[..]),
        ("POST", "/cgi-bin/hello.sh", &b"some body"[..]),
        ("GET", "/cgi-bin/redirect.sh", &b""[..]),
        ("GET", "/cgi-bin/status.sh", &b""[..]),
    ] {
        let a = request(cgi.addr(), method, path, &[], body);
        let b = request(fcgi.addr(), method, path, &[], body);
        assert_eq!(
            (a.status, a.text()),
            (b.status, b.text()),
            "{method} {path}"
        );
    }
}

#[test]
fn cgi_concurrency_is_bounded_with_a_queue() {
    // One slot, no queue: a second request while the first runs gets 503.
    let gw = Gateway::start(&cgi_config(
        "max_instances = 1\nqueue_length = 0",
        "cgi_timeout = \"2s\"",
    ));
    let addr = gw.addr();
    let slow = std::thread::spawn(move || request(addr, "GET", "/cgi-bin/sleep.sh", &[], b""));
    std::thread::sleep(Duration::from_millis(300));
    let r = gw.get("/cgi-bin/hello.sh");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    let _ = slow.join();
    // The slot is free again once the slow script is gone.
    assert_eq!(gw.get("/cgi-bin/hello.sh").status, 200);
}
