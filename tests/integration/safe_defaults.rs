//! Issue 13, defaults that do not hurt: no default shows server-side text
//! (an app's stderr, paths, pids, exit statuses) to a remote client
//! (`[server] error_details`, IIS's detailed-errors-for-local-requests
//! rule); `fastgate check` prints the settings that matter and refuses a
//! `runtime_dir` too long for a Unix socket; it lists each plugin, and a
//! server-wide env injector runs for every app request; plugin config
//! errors point at their `[[plugin]]` table; logs on a pipe carry no ANSI
//! colour codes.
//!
//! The tests connect from 127.0.0.1, a local client: the remote case is
//! tested with `error_details = "never"`, which gives every client the page
//! a remote one gets by default (the rule that tells them apart is a unit
//! test of `ErrorDetails::shown_to`).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::util::*;

const BOTH: [PluginBuild; 2] = [PluginBuild::Wasm, PluginBuild::Native];

/// A PHP script that logs a server path through `error_log()`, which
/// php-cgi sends as FCGI_STDERR: with the IIS default stderr_mode the page
/// becomes a 500 made of that text.
const LEAK_PHP: &str =
    "<?php error_log('cannot open ' . __FILE__ . ' <secret>'); echo \"page\\n\";\n";

/// `php_config` with lines added to `[server]`.
fn php_server_config(server_extra: &str, app_extra: &str) -> String {
    php_config(app_extra).replacen(
        "root = \"www\"\n",
        &format!("root = \"www\"\n{server_extra}\n"),
        1,
    )
}

fn start_leaky(server_extra: &str) -> Gateway {
    Gateway::start_with(&php_server_config(server_extra, ""), |dir| {
        std::fs::write(dir.join("www/leak.php"), LEAK_PHP).unwrap()
    })
}

#[test]
fn php_stderr_reaches_a_local_client_by_default_and_never_with_error_details_never() {
    // Default (`local`): the client on 127.0.0.1 gets the text, escaped.
    let gw = start_leaky("");
    let r = gw.get("/leak.php");
    assert_eq!(r.status, 500, "{}", r.text());
    let www = gw.dir_path().join("www/leak.php").display().to_string();
    assert!(r.text().contains(&www), "{}", r.text());
    assert!(r.text().contains("&lt;secret&gt;"), "{}", r.text());
    drop(gw);

    // `never`: what a remote client gets by default. A generic page, no
    // path, no app, no pid; the log keeps it all, with app, pid and URI.
    let gw = start_leaky("error_details = \"never\"");
    let www = gw.dir_path().join("www/leak.php").display().to_string();
    let r = gw.get("/leak.php");
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "500 Internal Server Error\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(
        gw.wait_for_log("<secret>", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains("<secret>")).unwrap();
    assert!(line.contains(&www), "{line}");
    assert!(
        line.contains("app=php") && line.contains("pid=") && line.contains("uri=/leak.php"),
        "{line}"
    );
}

#[test]
fn a_crash_shows_its_pid_and_exit_status_to_local_clients_only() {
    let gw = Gateway::start(&test_app_config(&[], ""));
    let r = gw.get("/py/crash");
    assert_eq!(r.status, 502);
    let text = r.text();
    assert!(text.starts_with("502 Bad Gateway (app \"py\")\n"), "{text}");
    assert!(
        text.contains("(pid ")
            && text.contains("the process died while serving the request (exit status 3)"),
        "{text}"
    );
    drop(gw);

    let gw = Gateway::start(&test_app_config(&[], "").replacen(
        "root = \"www\"\n",
        "root = \"www\"\nerror_details = \"never\"\n",
        1,
    ));
    let r = gw.get("/py/crash");
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "502 Bad Gateway\n");
    assert!(
        gw.wait_for_log("died", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // What was wrong with the request itself is still said.
    let r = gw.get("/%00.php");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("control character"), "{}", r.text());
}

#[test]
fn a_bad_error_details_value_names_its_key_and_line() {
    let config = php_server_config("error_details = \"detailed\"", "");
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("fastgate.toml:4:") && stderr.contains("server.error_details"),
        "{stderr}"
    );
}

#[test]
fn check_prints_stderr_mode_monitored_files_error_details_and_sockets() {
    let config = php_server_config(
        "runtime_dir = \"run\"",
        "stderr_mode = \"ignore-and-return-200\"\nmonitor_changes_to = [\"www/page.html\"]",
    );
    let (ok, stdout, stderr) = check_config(&config);
    assert!(ok, "{stderr}\n{stdout}");
    assert!(
        stdout.contains("error_details local: an error's detail"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  stderr_mode           ignore-and-return-200 (file)\n"),
        "{stdout}"
    );
    let monitored = stdout
        .lines()
        .find(|l| l.starts_with("  monitor_changes_to"))
        .unwrap();
    assert!(monitored.ends_with("/www/page.html"), "{monitored}");
    let runtime = stdout
        .lines()
        .find(|l| l.starts_with("runtime_dir "))
        .unwrap();
    assert!(runtime.ends_with("/run (file)"), "{runtime}\n{stdout}");
    let sockets = stdout
        .lines()
        .find(|l| l.starts_with("  app \"php\" sockets "))
        .unwrap();
    assert!(
        sockets.contains("/run/php/<instance>.sock, at most ")
            && sockets.ends_with(" of 107 bytes"),
        "{sockets}"
    );
    // Without runtime_dir: a fresh folder in TMPDIR, and the default origin.
    let (ok, stdout, _) = check_config(&php_config(""));
    assert!(ok);
    assert!(
        stdout.contains("runtime_dir a new private folder ")
            && stdout.contains("fastgate-XXXXXX (default)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  stderr_mode           return-stderr-in-500 (default)\n"),
        "{stdout}"
    );
}

#[test]
fn a_runtime_dir_too_long_for_a_unix_socket_is_refused_by_check_and_serve() {
    // 100 bytes of folder + "/php/" + a 20-digit instance id + ".sock".
    let long = format!("/tmp/{}", "r".repeat(95));
    let config = php_server_config(&format!("runtime_dir = \"{long}\""), "");
    let (ok, stdout, stderr) = check_config(&config);
    assert!(!ok, "{stdout}");
    for needed in [
        "fastgate.toml:4: server.runtime_dir: ",
        "(130 bytes)",
        "at most 107 bytes",
        "at most 77 bytes",
    ] {
        assert!(stderr.contains(needed), "{needed:?} in {stderr}");
    }
    let stderr = serve_must_fail(&config);
    assert!(
        stderr.contains("server.runtime_dir") && stderr.contains("(130 bytes)"),
        "{stderr}"
    );
    assert!(!std::path::Path::new(&long).exists());
    // Not set: the folder serve would make in a long TMPDIR is refused too,
    // and a TCP app has no socket to fit.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let file = dir.path().join("fastgate.toml");
    for (config, refused) in [
        (php_config(""), true),
        (php_config("protocol = \"tcp\""), false),
    ] {
        std::fs::write(&file, config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_fastgate"))
            .arg("check")
            .arg(&file)
            .env("TMPDIR", &long)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), !refused, "{stderr}");
        if refused {
            assert!(
                stderr.contains("server.runtime_dir: not set")
                    && stderr.contains("TMPDIR")
                    && stderr.contains("set runtime_dir to a shorter folder"),
                "{stderr}"
            );
        }
    }
}

fn tenant(build: PluginBuild, config: &str) -> String {
    format!(
        "[[plugin]]\nname = \"tenant\"\npath = \"{}\"\nconfig = {{ {config} }}\n",
        plugin_file("examples/tenant-env", build)
    )
}

/// `php_config` with `[server] plugins` and `[[plugin]]` tables appended.
fn with_plugins(server_plugins: &str, app_extra: &str, plugins: &str) -> String {
    let base = php_server_config(&format!("plugins = [{server_plugins}]"), app_extra);
    format!("{base}\n{plugins}")
}

#[test]
fn a_server_wide_env_injector_runs_for_every_app_request_in_both_builds() {
    for build in BOTH {
        let config = with_plugins(
            "\"tenant\"",
            "",
            &tenant(build, "header = \"x-tenant\", default = \"public\""),
        );
        let gw = Gateway::start(&config);
        let env = request(gw.addr(), "GET", "/env.php", &[("X-Tenant", "acme")], b"").json();
        assert_eq!(env["TENANT"], "acme", "{build:?}: {env}");
        assert_eq!(env["TENANT_SOURCE"], "header", "{build:?}: {env}");
        let env = gw.get("/env.php").json();
        assert_eq!(env["TENANT"], "public", "{build:?}: {env}");
        // Static files reach no app, and no injector.
        assert_eq!(gw.get("/page.html").status, 200);
    }
}

#[test]
fn check_lists_each_plugin_with_its_kind_capabilities_and_places() {
    let guard = format!(
        "[[plugin]]\nname = \"guard\"\npath = \"{}\"\nconfig = {{ deny_paths = [\"/admin\"] }}\n",
        plugin_file("examples/path-filter", PluginBuild::Wasm)
    );
    let native = plugin_file("examples/tenant-env", PluginBuild::Native);
    let config = with_plugins(
        "\"guard\", \"tenant\"",
        "plugins = [\"tenant\"]",
        &format!(
            "{guard}\n{}\n[[app]]\nname = \"site\"\nlauncher = \"php\"\nroot = \"www/sub\"\nhandles = [\"*.phtml\"]\n",
            tenant(PluginBuild::Native, "default = \"public\"")
        ),
    );
    let (ok, stdout, stderr) = check_config(&config);
    assert!(ok, "{stderr}\n{stdout}");
    for block in [
        format!(
            "plugin \"guard\"\n  kind                  wasm ({})\n  capabilities          request_filter\n  listed in             [server] plugins\n",
            // As the config shows paths: `..` resolved.
            std::path::Path::new(&plugin_file("examples/path-filter", PluginBuild::Wasm))
                .canonicalize()
                .unwrap()
                .display()
        ),
        format!(
            "plugin \"tenant\"\n  kind                  native ({native})\n  capabilities          inject_env\n  listed in             [server] plugins, app \"php\" plugins\n"
        ),
        "plugin \"php\"\n  kind                  built-in\n  capabilities          launcher\n  listed in             launcher of app \"site\"\n".to_string(),
    ] {
        assert!(stdout.contains(&block), "{block}\nnot in\n{stdout}");
    }
    // Built-in launchers nobody uses are not listed.
    assert!(!stdout.contains("plugin \"django\""), "{stdout}");

    // A launcher listed as a filter is never called there: a warning.
    let launcher = format!(
        "[[plugin]]\nname = \"my-php\"\npath = \"{}\"\n",
        plugin_file("plugins/php", PluginBuild::Native)
    );
    let (ok, stdout, stderr) = check_config(&with_plugins("\"my-php\"", "", &launcher));
    assert!(ok, "{stderr}\n{stdout}");
    assert!(
        stdout.contains(
            "warning: plugin \"my-php\" is listed in [server] plugins but has no hook that runs there (its capabilities: launcher)"
        ),
        "{stdout}"
    );
}

#[test]
fn a_plugin_refusing_its_config_is_pointed_at_by_file_and_line() {
    for build in BOTH {
        let config = with_plugins(
            "\"tenant\"",
            "",
            &tenant(build, "default = \"x\", param = \"HTTP_TENANT\""),
        );
        let line = config.lines().position(|l| l == "[[plugin]]").unwrap() + 1;
        let at = format!("fastgate.toml:{line}: plugin \"tenant\": ");
        let (ok, _, stderr) = check_config(&config);
        assert!(!ok);
        assert!(
            stderr.contains(&at) && stderr.contains("must not start with HTTP_"),
            "{build:?}: {at:?} in {stderr}"
        );
        let stderr = serve_must_fail(&config);
        assert!(stderr.contains(&at), "{build:?}: {at:?} in {stderr}");
    }
}

#[test]
fn logs_on_a_pipe_have_no_colour_codes() {
    // As a service manager or `2> file` runs it: stderr is not a terminal,
    // and NO_COLOR is not set.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let file = dir.path().join("fastgate.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\naccess_log = \"off\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastgate"))
        .arg("serve")
        .arg(&file)
        .env_remove("NO_COLOR")
        .env("FASTGATE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = Pid::from_raw(child.id() as i32);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    while !seen.contains("listening") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => break,
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
    assert!(seen.contains("listening"), "{seen}");
    assert!(!seen.contains('\x1b'), "ANSI codes in {seen:?}");
    assert!(seen.contains("listening addr=127.0.0.1:"), "{seen}");
}
