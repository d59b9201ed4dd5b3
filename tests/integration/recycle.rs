//! Issue 12, recycling without a gap: an instance due for replacement (its
//! recycle point, or a `monitor_changes_to` change) keeps serving until its
//! replacement is ready, and a recycle rolls through the pool. The app is
//! the WSGI fixture that takes a second to import, so that any request
//! made to wait for a process start shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::first_free::{slow_import_site, wait_started};
use crate::util::*;

/// Instances ready to serve after each line of the log that says one is
/// ready or one has exited: the pool as its log tells it, line by line.
fn ready_over_time(logs: &str) -> Vec<i64> {
    let mut ready = 0;
    let mut out = Vec::new();
    for line in logs.lines() {
        if line.contains("instance started") {
            ready += 1;
        } else if ["process exited", "process killed", "process ended"]
            .iter()
            .any(|exit| line.contains(exit))
        {
            ready -= 1;
        } else {
            continue;
        }
        out.push(ready);
    }
    out
}

#[test]
fn instance_max_requests_never_takes_capacity_away_under_load() {
    let gw = Gateway::start(&slow_import_site(
        "min_instances = 4\nmax_instances = 4\ninstance_max_requests = 100",
    ));
    wait_started(&gw, 4, Duration::from_secs(60));
    let addr = gw.addr();
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut took = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < 2000 {
                    let sent = Instant::now();
                    let r = request(addr, "GET", "/work?ms=10", &[], b"");
                    assert_eq!(r.status, 200, "{}", r.text());
                    took.push(sent.elapsed());
                }
                took
            })
        })
        .collect();
    let mut took: Vec<Duration> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    took.sort();
    let median = took[took.len() / 2];
    let slowest = *took.last().unwrap();
    let logs = gw.logs();
    let replaced = logs.matches("its replacement is ready").count();
    eprintln!(
        "2000 requests: median {median:?}, p99 {:?}, slowest {slowest:?}; {replaced} instances replaced",
        took[took.len() * 99 / 100]
    );
    // Each start takes a second: a request that waited for one shows. The
    // bound is 10x the median (the issue's), but never under 600 ms: on a
    // machine loaded by other tests a 13 ms median makes 130 ms, which a
    // scheduling hiccup can pass; a wait for a start (over 1 s) cannot.
    let bound = (median * 10).max(Duration::from_millis(600));
    assert!(
        slowest <= bound,
        "a request took {slowest:?}, over {bound:?} (median {median:?})\n{logs}"
    );
    assert!(replaced >= 2, "too few recycles to judge:\n{logs}");
    let ready = ready_over_time(&logs);
    let after_start = &ready[4..];
    assert!(
        after_start.iter().all(|&n| n >= 3),
        "fewer than 3 instances ready at some point: {ready:?}\n{logs}"
    );
}

#[test]
fn a_watched_file_changing_under_load_rolls_through_the_pool_without_a_dip() {
    let gw = Gateway::start_with(
        &slow_import_site(
            "min_instances = 4\nmax_instances = 4\ninstance_max_requests = 100000\nmonitor_changes_to = [\"deploy.txt\"]",
        ),
        |dir| std::fs::write(dir.join("deploy.txt"), "v1\n").unwrap(),
    );
    wait_started(&gw, 4, Duration::from_secs(60));
    let addr = gw.addr();
    let began = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut done = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = request(addr, "GET", "/work?ms=10", &[], b"");
                    done.push((began.elapsed(), r.status));
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let touched = began.elapsed();
    std::fs::write(gw.dir_path().join("deploy.txt"), "v2\n").unwrap();
    let rolled = gw.wait_for_log("recycle complete", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let done: Vec<(Duration, u16)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let logs = gw.logs();
    let failed = done.iter().filter(|(_, status)| *status != 200).count();
    assert_eq!(failed, 0, "{failed} requests failed during the recycle");
    // Requests completed in each whole second of the run.
    let seconds = done.iter().map(|(t, _)| t.as_secs()).max().unwrap_or(0);
    let curve: Vec<usize> = (0..seconds)
        .map(|s| done.iter().filter(|(t, _)| t.as_secs() == s).count())
        .collect();
    eprintln!("requests per second (change at {touched:?}): {curve:?}");
    // Steady state: the whole seconds before the change, past the first.
    let steady = curve[1..touched.as_secs() as usize].iter().sum::<usize>()
        / (touched.as_secs() as usize - 1);
    assert!(
        curve[1..].iter().all(|&n| n * 2 >= steady),
        "throughput fell below half of {steady}/s: {curve:?}\n{logs}"
    );
    assert!(rolled, "the recycle never completed:\n{logs}");
    // Each of the four was replaced before it stopped.
    assert_eq!(
        logs.matches("its replacement is ready").count(),
        4,
        "{logs}"
    );
    let ready = ready_over_time(&logs);
    assert!(ready[4..].iter().all(|&n| n >= 4), "{ready:?}\n{logs}");
}

#[test]
fn stopping_the_gateway_while_processes_start_leaves_none_behind() {
    let mut gw = Gateway::start(&slow_import_site("min_instances = 4\nmax_instances = 4"));
    // Every process spawned and still importing (a second each).
    let spawned = "process started; waiting for it";
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.logs().matches(spawned).count() < 4 {
        assert!(Instant::now() < deadline, "not spawned:\n{}", gw.logs());
        std::thread::sleep(Duration::from_millis(5));
    }
    let pids: Vec<u32> = gw
        .logs()
        .lines()
        .filter(|l| l.contains(spawned))
        .filter_map(|l| {
            l.split("pid=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(pids.len(), 4, "{}", gw.logs());
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        gw.wait_exit(Duration::from_secs(20)).is_some(),
        "the gateway did not stop"
    );
    let alive: Vec<u32> = pids.into_iter().filter(|&pid| process_alive(pid)).collect();
    assert!(
        alive.is_empty(),
        "processes left running: {alive:?}\n{}",
        gw.logs()
    );
    // Starts the shutdown ended are no failures of the app.
    assert!(
        !gw.logs().contains("could not start a process"),
        "{}",
        gw.logs()
    );
}
