//! Issue 15, isolation: the user an app runs as (`user`, `group`, the
//! unprivileged default of a root gateway), its private runtime folder, its
//! limits (`rlimit_*`), and what it leaves behind (the gateway is a child
//! subreaper: escaped children are stopped and reaped). CI runs as root,
//! so the users are switched for real; as another user the tests that need
//! root say so and return.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{Uid, User};

use crate::util::*;

fn as_root() -> bool {
    if Uid::effective().is_root() {
        return true;
    }
    eprintln!("skipped: needs root (CI runs the suite as root)");
    false
}

/// The user a root gateway gives an app without `user`.
fn default_user() -> User {
    ["www-data", "nobody"]
        .iter()
        .find_map(|n| User::from_name(n).ok().flatten())
        .expect("www-data or nobody")
}

/// A field of /proc/PID/status (`Uid`, `Gid`, `Groups`).
fn status_field(pid: u32, name: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The app process that served `path` (its pid in the answer).
fn served_by(gw: &Gateway, path: &str) -> u32 {
    let r = gw.get(path);
    assert_eq!(r.status, 200, "{}", r.text());
    pid_of(&r.text()).expect("pid in the answer")
}

/// Pids of processes whose command line is exactly `argv`.
fn running(argv: &[&str]) -> Vec<u32> {
    let want = argv.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes())
                && process_alive(*pid)
        })
        .collect()
}

fn write_script(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn cgi_config(app_extra: &str) -> String {
    let app_lines = format!("handles = [\"*.sh\"]\ninherit_env = [\"PATH\"]\n{app_extra}");
    launcher_site("cgi", "cgi", &app_lines, "")
}

#[test]
fn issue15_a_root_gateway_runs_apps_as_the_unprivileged_default_in_a_private_folder() {
    if !as_root() {
        return;
    }
    let user = default_user();
    let config = php_config("").replace("[server]\n", "[server]\nruntime_dir = \"run\"\n");
    let gw = Gateway::start(&config);
    let pid = served_by(&gw, "/pid.php");
    let uid = user.uid.as_raw().to_string();
    let gid = user.gid.as_raw().to_string();
    let uids = status_field(pid, "Uid");
    assert!(
        uids.split_whitespace().all(|u| u == uid),
        "Uid {uids}, want {uid}"
    );
    assert!(
        status_field(pid, "Gid")
            .split_whitespace()
            .all(|g| g == gid)
    );
    // No supplementary groups of root's are kept.
    assert_eq!(status_field(pid, "Groups"), "");
    // Its folder: its own, 0700; the folder above lets it pass, no more.
    let run = gw.dir_path().join("run");
    let own = std::fs::metadata(run.join("php")).expect("app folder");
    assert_eq!((own.uid(), own.mode() & 0o777), (user.uid.as_raw(), 0o700));
    assert_eq!(
        std::fs::metadata(&run).expect("runtime dir").mode() & 0o777,
        0o711
    );
    assert!(
        gw.logs().contains(&format!("runs_as=\"{}:", user.name)),
        "the start log names the user:\n{}",
        gw.logs()
    );
}

#[test]
fn issue15_user_root_is_explicit_and_warned() {
    if !as_root() {
        return;
    }
    let gw = Gateway::start(&php_config("user = \"root\"\n"));
    let pid = served_by(&gw, "/pid.php");
    assert!(
        status_field(pid, "Uid").starts_with("0\t") || status_field(pid, "Uid").starts_with("0 ")
    );
    assert!(gw.logs().contains("app runs as root"), "{}", gw.logs());
}

#[test]
fn issue15_user_and_group_by_number_and_in_check() {
    if !as_root() {
        return;
    }
    let nobody = User::from_name("nobody").ok().flatten().expect("nobody");
    let config = php_config(&format!("user = {}\ngroup = 0\n", nobody.uid));
    let (ok, out, err) = check_config(&config);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!(
            "runs as               nobody:root (uid {}, gid 0)",
            nobody.uid
        )),
        "{out}"
    );
    let gw = Gateway::start(&config);
    let pid = served_by(&gw, "/pid.php");
    assert!(status_field(pid, "Uid").starts_with(&nobody.uid.to_string()));
    assert!(status_field(pid, "Gid").starts_with('0'));
}

#[test]
fn issue15_an_unknown_user_is_a_check_error_at_its_line() {
    let config = php_config("user = \"no-such-user-fg15\"\n");
    let line = config
        .lines()
        .position(|l| l.starts_with("user ="))
        .expect("user line")
        + 1;
    let (ok, out, err) = check_config(&config);
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!(
            "fastgate.toml:{line}:8: app \"php\": user: no such user: \"no-such-user-fg15\""
        )),
        "{err}"
    );
    let err = serve_must_fail(&config);
    assert!(err.contains("no such user"), "{err}");
}

#[test]
fn issue15_the_default_user_must_reach_the_app_root_or_the_start_is_refused() {
    if !as_root() {
        return;
    }
    // A 0700 folder (a home like /root): the default user cannot enter it.
    let hidden = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(hidden.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let root = hidden.path().join("www");
    std::fs::create_dir(&root).expect("www");
    let config = php_config(&format!("root = \"{}\"\n", root.display()));
    let (ok, out, err) = check_config(&config);
    assert!(!ok, "{out}{err}");
    assert!(err.contains("app \"php\": user:"), "{err}");
    assert!(
        err.contains(&format!("cannot use {}", hidden.path().display())),
        "{err}"
    );
    let err = serve_must_fail(&config);
    assert!(err.contains("no search (x) permission"), "{err}");
    // Saying so explicitly is allowed.
    let (ok, out, err) = check_config(&php_config(&format!(
        "root = \"{}\"\nuser = \"root\"\n",
        root.display()
    )));
    assert!(ok, "{out}{err}");
}

/// /proc/PID/limits: the soft and hard values of one limit.
fn limit(pid: u32, name: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} in {text}"));
    let mut values = line[name.len()..].split_whitespace();
    (
        values.next().unwrap_or_default().to_string(),
        values.next().unwrap_or_default().to_string(),
    )
}

#[test]
fn issue15_rlimits_are_set_on_the_app_process() {
    let config = php_config(
        "rlimit_nofile = 200\nrlimit_as = \"2GiB\"\nrlimit_cpu = \"60s\"\nrlimit_nproc = 500\n",
    );
    let (ok, out, err) = check_config(&config);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("rlimits               nofile=200 as=2147483648 bytes cpu=60s nproc=500"),
        "{out}"
    );
    let gw = Gateway::start(&config);
    let pid = served_by(&gw, "/pid.php");
    assert_eq!(limit(pid, "Max open files"), ("200".into(), "200".into()));
    assert_eq!(
        limit(pid, "Max address space"),
        ("2147483648".into(), "2147483648".into())
    );
    assert_eq!(limit(pid, "Max cpu time"), ("60".into(), "61".into()));
    assert_eq!(limit(pid, "Max processes"), ("500".into(), "500".into()));
    // The program itself runs (prlimit execs it: the same pid).
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert!(comm.starts_with("php"), "{comm}");
}

#[test]
fn issue15_a_cgi_script_burning_cpu_is_killed_at_rlimit_cpu() {
    let started = Instant::now();
    let gw = Gateway::start_with(&cgi_config("rlimit_cpu = 1\n"), |dir| {
        write_script(
            &dir.join("www/cgi-bin"),
            "burn.sh",
            "#!/bin/sh\nwhile :; do :; done\n",
        );
    });
    let r = gw.get("/cgi-bin/burn.sh");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        gw.wait_for_log(
            "CGI script killed at its CPU limit (rlimit_cpu)",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    gw.assert_no_zombies();
}

/// `name=<pid>` in an answer.
fn pid_named(text: &str, name: &str) -> u32 {
    text.split(&format!("{name}="))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {text:?}"))
}

/// Waits until `pid` has exited and been reaped (a zombie still counts
/// as exited for `process_alive`, so /proc must forget it too).
fn wait_reaped(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn issue15_a_cgi_scripts_escaped_child_is_stopped_and_reaped() {
    // `setsid` leaves the script's process group and session; the script
    // answers and exits at once, so the sleep is handed to the gateway.
    let gw = Gateway::start_with(&cgi_config(""), |dir| {
        write_script(
            &dir.join("www/cgi-bin"),
            "escape.sh",
            "#!/bin/sh\nsetsid sleep 317 </dev/null >/dev/null 2>&1 &\nprintf 'Content-Type: text/plain\\r\\n\\r\\nchild=%s\\n' $!\n",
        );
    });
    let r = gw.get("/cgi-bin/escape.sh");
    assert_eq!(r.status, 200, "{}", r.text());
    let child = pid_named(&r.text(), "child");
    assert!(
        wait_reaped(child, Duration::from_secs(10)),
        "the escaped sleep {child} survived its request:\n{}",
        gw.logs()
    );
    assert!(
        gw.wait_for_log("a process left its app", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    assert!(running(&["sleep", "317"]).is_empty());
    gw.assert_no_zombies();
}

#[test]
fn issue15_a_php_apps_double_forked_child_is_stopped_and_its_group_goes_with_the_gateway() {
    let gw = Gateway::start_with(&php_config(""), |dir| {
        std::fs::write(
            dir.join("www/escape.php"),
            "<?php\n// A double fork out of the group, and a child left in it.\n\
             $out = exec('setsid sleep 318 </dev/null >/dev/null 2>&1 & echo $!');\n\
             $kept = exec('sleep 319 </dev/null >/dev/null 2>&1 & echo $!');\n\
             echo 'pid=' . getmypid() . \" escaped=$out kept=$kept\\n\";\n",
        )
        .expect("write escape.php");
    });
    let r = gw.get("/escape.php");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let (php, escaped, kept) = (
        pid_named(&text, "pid"),
        pid_named(&text, "escaped"),
        pid_named(&text, "kept"),
    );
    assert!(
        wait_reaped(escaped, Duration::from_secs(10)),
        "the double-forked sleep {escaped} survived:\n{}",
        gw.logs()
    );
    // The one in php-cgi's own group lives as long as its instance does.
    assert!(process_alive(kept), "{text}");
    assert!(process_alive(php));
    gw.assert_no_zombies();
    let mut gw = gw;
    gw.signal(Signal::SIGTERM);
    assert!(
        gw.wait_exit(Duration::from_secs(20)).is_some(),
        "{}",
        gw.logs()
    );
    assert!(
        wait_reaped(kept, Duration::from_secs(5)),
        "a child in the instance's group survived the gateway"
    );
}

#[test]
fn issue15_a_gateway_that_is_not_root_cannot_switch_users() {
    if !as_root() {
        return;
    }
    use std::os::unix::process::CommandExt;
    let nobody = User::from_name("nobody").ok().flatten().expect("nobody");
    let dir = site(&php_config("user = \"www-data\"\n"));
    let check = |dir: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fastgate"))
            .env("PATH", app_path())
            .arg("check")
            .arg(dir.join("fastgate.toml"))
            .uid(nobody.uid.as_raw())
            .gid(nobody.gid.as_raw())
            .output()
            .expect("run fastgate check as nobody");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = check(dir.path());
    assert!(!ok, "{out}");
    assert!(
        err.contains("app \"php\": user: fastgate runs as nobody")
            && err.contains("cannot start apps as www-data"),
        "{err}"
    );
    // Without `user`, the apps run as the gateway's own user.
    let dir = site(&php_config(""));
    let (ok, out, err) = check(dir.path());
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("runs as               nobody:") && out.contains("(the gateway's own user)"),
        "{out}"
    );
}
