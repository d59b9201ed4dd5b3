//! The IIS `<fastCgi><application>` settings, one or more tests each, against
//! the project's FastCGI test program (tests/fixtures/fcgi_app.py).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::util::*;

/// The pid of the access-log line for `path` (waits for it).
fn logged_pid(gw: &Gateway, path: &str) -> u32 {
    let needle = format!("\"GET {path} ");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = gw
            .access_log()
            .lines()
            .find(|l| l.contains(&needle))
            .and_then(|l| l.rsplit("pid=").next()?.parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no access-log line with a pid for {path}:\n{}",
            gw.access_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_gone(pid: u32, within: Duration) -> Duration {
    let started = Instant::now();
    while process_alive(pid) {
        assert!(
            started.elapsed() < within,
            "pid {pid} still alive after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn request_timeout_gives_504_and_kills_the_instance() {
    let gw = Gateway::start(&test_app_config(&[], "request_timeout = \"2s\""));
    let started = Instant::now();
    let r = gw.get("/py/sleep/6000");
    let waited = started.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let pid = logged_pid(&gw, "/py/sleep/6000");
    wait_gone(pid, Duration::from_secs(3));
    assert!(gw.wait_for_log("request_timeout", Duration::from_secs(5)));
    // Replaced on demand.
    assert_eq!(gw.get("/py/hello").status, 200);
    gw.assert_no_zombies();
}

#[test]
fn activity_timeout_gives_504_for_a_silent_app() {
    let config = test_app_config(&[], "activity_timeout = \"1s\"\nrequest_timeout = \"20s\"");
    let gw = Gateway::start(&config);
    let started = Instant::now();
    let r = gw.get("/py/silent/4000");
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(gw.wait_for_log("activity_timeout", Duration::from_secs(5)));
    // An app that keeps talking is not cut off by the activity timeout.
    let r = gw.get("/py/slow/5/400");
    assert_eq!(r.status, 200);
    assert_eq!(r.text().lines().count(), 5);
    gw.assert_no_zombies();
}

#[test]
fn idle_instances_are_stopped_after_idle_timeout() {
    let gw = Gateway::start(&test_app_config(
        &[],
        "idle_timeout = \"1s\"\nmax_instances = 2",
    ));
    let addr = gw.addr();
    let both: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/py/sleep/300", &[], b"")))
        .collect();
    for t in both {
        assert_eq!(t.join().unwrap().status, 200);
    }
    assert_eq!(gw.children().len(), 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.children().is_empty() {
        assert!(
            Instant::now() < deadline,
            "idle instances still running: {:?}",
            gw.children()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gw.wait_for_log("stopping idle instance", Duration::from_secs(1)));
    gw.assert_no_zombies();
}

#[test]
fn idle_timeout_keeps_min_instances() {
    let gw = Gateway::start(&test_app_config(
        &[],
        "idle_timeout = \"1s\"\nmax_instances = 2\nmin_instances = 1",
    ));
    let addr = gw.addr();
    let both: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/py/sleep/300", &[], b"")))
        .collect();
    for t in both {
        t.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(gw.children().len(), 1, "{:?}", gw.children());
}

#[test]
fn rapid_fails_take_the_app_offline_and_stop_spawning() {
    let gw = Gateway::start(&test_app_config(
        &["--fail-start"],
        "rapid_fails_per_minute = 3\nmax_instances = 1",
    ));
    let statuses: Vec<u16> = (0..8).map(|_| gw.get("/py/hello").status).collect();
    assert_eq!(&statuses[..3], [502, 502, 502], "{statuses:?}");
    assert!(statuses[3..].iter().all(|&s| s == 503), "{statuses:?}");
    let r = gw.get("/py/hello");
    assert_eq!(r.status, 503);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 60, "{retry}");
    assert!(
        r.text().contains("\"py\""),
        "body does not name the app: {}",
        r.text()
    );
    assert!(gw.wait_for_log("taking it offline", Duration::from_secs(5)));
    // None of them accepted a connection, so none became an instance.
    assert_eq!(gw.logs().matches("instance started").count(), 0);
    let spawned = gw.logs().matches("process started").count();
    assert_eq!(
        spawned,
        3,
        "processes started in the minute:\n{}",
        gw.logs()
    );
    gw.assert_no_zombies();
}

#[test]
fn stderr_mode_return_stderr_in_500() {
    let gw = Gateway::start(&test_app_config(&[], ""));
    let r = gw.get("/py/stderr");
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("app error: &lt;b&gt;bad&lt;/b&gt; &amp; worse"),
        "{}",
        r.text()
    );
    assert!(gw.wait_for_log("app error: <b>bad</b> & worse", Duration::from_secs(5)));
}

#[test]
fn stderr_mode_return_generic_500() {
    let gw = Gateway::start(&test_app_config(
        &[],
        "stderr_mode = \"return-generic-500\"",
    ));
    let r = gw.get("/py/stderr");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("app error"), "{}", r.text());
    assert!(gw.wait_for_log("app error: <b>bad</b> & worse", Duration::from_secs(5)));
}

#[test]
fn stderr_mode_ignore_and_return_200() {
    let gw = Gateway::start(&test_app_config(
        &[],
        "stderr_mode = \"ignore-and-return-200\"",
    ));
    let r = gw.get("/py/stderr");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("stderr pid="), "{}", r.text());
    assert!(gw.wait_for_log("app error: <b>bad</b> & worse", Duration::from_secs(5)));
}

#[test]
fn stderr_mode_terminate_process() {
    let gw = Gateway::start(&test_app_config(&[], "stderr_mode = \"terminate-process\""));
    let r = gw.get("/py/stderr");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("app error"));
    let pid = logged_pid(&gw, "/py/stderr");
    wait_gone(pid, Duration::from_secs(3));
    assert!(gw.wait_for_log("app error: <b>bad</b> & worse", Duration::from_secs(5)));
    gw.assert_no_zombies();
}

#[test]
fn signal_before_terminate_lets_the_app_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    give_to_apps(dir.path());
    let marker = dir.path().join("marker");
    let marker_arg = marker.display().to_string();
    let config = test_app_config(
        &["--trap-term", &marker_arg],
        "request_timeout = \"1s\"\nsignal_before_terminate = \"2s\"",
    );
    let gw = Gateway::start(&config);
    assert_eq!(gw.get("/py/sleep/5000").status, 504);
    let pid = logged_pid(&gw, "/py/sleep/5000");
    wait_gone(pid, Duration::from_secs(3));
    let text =
        std::fs::read_to_string(&marker).expect("the app wrote no marker: it got no SIGTERM");
    assert_eq!(text, format!("terminated {pid}\n"));
    gw.assert_no_zombies();
}

#[test]
fn signal_before_terminate_ends_with_sigkill() {
    let config = test_app_config(
        &["--ignore-term"],
        "request_timeout = \"1s\"\nsignal_before_terminate = \"2s\"",
    );
    let gw = Gateway::start(&config);
    assert_eq!(gw.get("/py/sleep/10000").status, 504);
    let pid = logged_pid(&gw, "/py/sleep/10000");
    let took = wait_gone(pid, Duration::from_secs(5));
    assert!(
        took >= Duration::from_millis(1500),
        "killed after {took:?}: SIGTERM was not given its 2 s"
    );
    assert!(gw.wait_for_log("ignored SIGTERM", Duration::from_secs(2)));
    gw.assert_no_zombies();
}

#[test]
fn without_signal_before_terminate_the_kill_is_immediate() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let marker_arg = marker.display().to_string();
    let gw = Gateway::start(&test_app_config(
        &["--trap-term", &marker_arg],
        "request_timeout = \"1s\"",
    ));
    assert_eq!(gw.get("/py/sleep/5000").status, 504);
    let pid = logged_pid(&gw, "/py/sleep/5000");
    wait_gone(pid, Duration::from_secs(1));
    assert!(
        !marker.exists(),
        "SIGTERM was sent although signal_before_terminate is 0"
    );
}

#[test]
fn monitor_changes_to_recycles_under_load_without_failures() {
    let gw = Gateway::start_with(
        &test_app_config(
            &[],
            "monitor_changes_to = [\"settings.ini\"]\nmax_instances = 2",
        ),
        |dir| std::fs::write(dir.join("settings.ini"), "v=1\n").unwrap(),
    );
    let watched = gw.dir_path().join("settings.ini");
    let addr = gw.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    out.push((
                        Instant::now(),
                        request(addr, "GET", "/py/sleep/20", &[], b""),
                    ));
                }
                out
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let changed_at = Instant::now();
    std::fs::write(&watched, "v=2\n").unwrap();
    assert!(gw.wait_for_log("recycling every instance", Duration::from_secs(5)));
    // Each old instance serves until its replacement is ready.
    assert!(gw.wait_for_log("recycle complete", Duration::from_secs(10)));
    let recycled_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let responses: Vec<(Instant, Response)> =
        load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(
        responses.iter().all(|(_, r)| r.status == 200),
        "a request failed during the recycle"
    );
    let before: HashSet<u32> = responses
        .iter()
        .filter(|(t, _)| *t < changed_at)
        .filter_map(|(_, r)| pid_of(&r.text()))
        .collect();
    // Requests sent once the recycle has rolled through go to new ones.
    let after: HashSet<u32> = responses
        .iter()
        .filter(|(t, _)| *t > recycled_at)
        .filter_map(|(_, r)| pid_of(&r.text()))
        .collect();
    assert!(
        !before.is_empty() && !after.is_empty(),
        "before {before:?} after {after:?}"
    );
    assert!(
        before.is_disjoint(&after),
        "old instances kept serving: before {before:?} after {after:?}"
    );
    gw.assert_no_zombies();
}

#[test]
fn response_buffer_limit_turns_late_stderr_into_a_clean_500() {
    // Streaming (the default): the head is out before the stderr arrives.
    let gw = Gateway::start(&test_app_config(&[], ""));
    let r = gw.get("/py/stderr-late");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "partial body\nrest\n");
    // Buffered: the response is still in the gateway's hands.
    let gw = Gateway::start(&test_app_config(&[], "response_buffer_limit = \"64KiB\""));
    let r = gw.get("/py/stderr-late");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("late error"), "{}", r.text());
    assert!(!r.text().contains("partial body"));
}

#[test]
fn check_rejects_zero_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fastgate.toml");
    std::fs::write(&path, test_app_config(&[], "request_timeout = 0")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fastgate"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("request_timeout") && stderr.contains("longer than zero"),
        "{stderr}"
    );
}

#[test]
fn automatic_sizing_grows_under_a_queue_and_shrinks_at_rest() {
    let gw = Gateway::start(&test_app_config(
        &[],
        "max_instances = 0\nmax_instances_auto_ceiling = 6",
    ));
    let addr = gw.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut ok = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if request(addr, "GET", "/py/sleep/100", &[], b"").status == 200 {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    // Requests queue behind the initial CPU-count instances: the pool grows.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut peak = 0;
    while peak <= cpus.min(6) {
        assert!(
            Instant::now() < deadline,
            "the pool never grew past {peak}:\n{}",
            gw.logs()
        );
        peak = peak.max(gw.children().len());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.wait_for_log("automatic sizing: growing the pool", Duration::from_secs(1)));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served: u32 = load.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(served > 0);
    // Load stops: the pool shrinks again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.children().len() >= peak {
        assert!(
            Instant::now() < deadline,
            "the pool never shrank from {peak}:\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.wait_for_log(
        "automatic sizing: shrinking the pool",
        Duration::from_secs(1)
    ));
    gw.assert_no_zombies();
}

#[test]
fn monitor_changes_to_a_directory_recycles_on_any_file_below_it() {
    let gw = Gateway::start_with(
        &test_app_config(&[], "monitor_changes_to = [\"code\"]\nmax_instances = 1"),
        |dir| {
            std::fs::create_dir_all(dir.join("code/pkg/deep")).unwrap();
            std::fs::write(dir.join("code/pkg/deep/mod.py"), "v = 1\n").unwrap();
        },
    );
    let code = gw.dir_path().join("code");
    let pid = |gw: &Gateway| pid_of(&gw.get("/py/hello").text()).unwrap();
    let first = pid(&gw);
    // A file three levels down changes: the directory's own times do not.
    std::fs::write(code.join("pkg/deep/mod.py"), "v = 2\n").unwrap();
    let changed = format!("{} changed (monitor_changes_to)", code.display());
    assert!(
        gw.wait_for_log(&changed, Duration::from_secs(5)),
        "no recycle for a file below the directory:\n{}",
        gw.logs()
    );
    assert!(gw.wait_for_log("recycle complete", Duration::from_secs(10)));
    let second = pid(&gw);
    assert_ne!(first, second, "the old instance kept serving");
    // A new file below it counts too; a burst of them recycles once.
    let recycles = |gw: &Gateway| gw.logs().matches(&changed).count();
    let seen = recycles(&gw);
    for n in 0..20 {
        std::fs::write(code.join(format!("pkg/new{n}.py")), "x = 1\n").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while recycles(&gw) == seen {
        assert!(Instant::now() < deadline, "no recycle for new files");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        recycles(&gw),
        seen + 1,
        "a burst of 20 new files recycled more than once"
    );
    let complete = |gw: &Gateway| gw.logs().matches("recycle complete").count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while complete(&gw) < 2 {
        assert!(
            Instant::now() < deadline,
            "the second recycle never completed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(pid(&gw), second);
}
