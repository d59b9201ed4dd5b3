//! Plugins: the same SDK plugin built as a wasm component and as a native
//! library, filters and env injection end to end through php-cgi, and the
//! host's defences against plugins that loop, hoard memory, trap or panic.

use std::time::Duration;

use crate::util::*;

const BOTH: [PluginBuild; 2] = [PluginBuild::Wasm, PluginBuild::Native];

/// A PHP site with one server-wide plugin and one app plugin section.
fn config_with(plugins: &str, server_plugins: &str, app_extra: &str) -> String {
    let base = php_config(app_extra);
    let base = base.replacen(
        "root = \"www\"\n",
        &format!("root = \"www\"\nplugins = [{server_plugins}]\n"),
        1,
    );
    format!("{base}\n{plugins}")
}

fn path_filter(build: PluginBuild) -> String {
    format!(
        r#"[[plugin]]
name = "guard"
path = "{}"
config = {{ deny_paths = ["/admin"], deny_user_agents = ["BadBot"], deny_header_values = ["<script"], respond = {{ "/ping" = "pong" }}, rewrite = {{ "/old/" = "/" }}, response_headers = {{ "x-guard" = "on" }} }}
"#,
        plugin_file("examples/path-filter", build)
    )
}

/// One observation: status, body, and the header the response filter adds.
fn observe(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
    let r = request(gw.addr(), "GET", path, headers, b"");
    (r.status, r.text(), r.header("x-guard").map(str::to_string))
}

#[test]
fn filter_decisions_are_identical_in_wasm_and_native_builds() {
    let mut results = Vec::new();
    for build in BOTH {
        let gw = Gateway::start(&config_with(&path_filter(build), "\"guard\"", ""));
        let seen = vec![
            // continue
            observe(&gw, "/page.html", &[]),
            // deny by path, by user agent, by a value in any header
            observe(&gw, "/admin/index.php", &[]),
            observe(
                &gw,
                "/page.html",
                &[("User-Agent", "Mozilla/5.0 badbot/2.1")],
            ),
            observe(&gw, "/page.html", &[("X-Note", "a<script>b")]),
            // respond without the app
            observe(&gw, "/ping", &[]),
            // rewrite: /old/env.php runs /env.php, which sees the original path
            observe(&gw, "/old/env.php?x=1", &[]),
        ];
        let (status, _, guard) = &seen[0];
        assert_eq!((*status, guard.as_deref()), (200, Some("on")), "{build:?}");
        for denied in &seen[1..4] {
            assert_eq!(denied.0, 403, "{build:?}: {denied:?}");
            assert_eq!(
                denied.2.as_deref(),
                Some("on"),
                "response filter runs on denials too"
            );
        }
        assert_eq!((seen[4].0, seen[4].1.as_str()), (200, "pong"), "{build:?}");
        let (status, body, _) = &seen[5];
        assert_eq!(*status, 200, "{build:?}: {body}");
        let env: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(env["SCRIPT_NAME"], "/env.php", "{body}");
        assert_eq!(env["REQUEST_URI"], "/env.php?x=1", "{body}");
        assert_eq!(env["HTTP_X_ORIGINAL_PATH"], "/old/env.php", "{body}");
        gw.assert_no_zombies();
        results.push(seen);
    }
    assert_eq!(
        results[0], results[1],
        "wasm and native builds answered differently"
    );
}

#[test]
fn deny_by_client_address() {
    let plugin = format!(
        r#"[[plugin]]
name = "guard"
path = "{}"
config = {{ deny_clients = ["127.0.0.1"], deny_status = 451 }}
"#,
        plugin_file("examples/path-filter", PluginBuild::Wasm)
    );
    let gw = Gateway::start(&config_with(&plugin, "\"guard\"", ""));
    assert_eq!(gw.get("/page.html").status, 451);
    assert!(
        gw.wait_for_log("refused client 127.0.0.1", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains("refused client")).unwrap();
    assert!(line.contains("plugin=\"guard\""), "{line}");
}

#[test]
fn env_injection_reaches_php_in_both_builds() {
    for build in BOTH {
        let plugin = format!(
            r#"[[plugin]]
name = "tenant"
path = "{}"
config = {{ header = "x-tenant", default = "public" }}
"#,
            plugin_file("examples/tenant-env", build)
        );
        let gw = Gateway::start(&config_with(&plugin, "", "plugins = [\"tenant\"]\n"));
        let env = request(gw.addr(), "GET", "/env.php", &[("X-Tenant", "acme")], b"").json();
        assert_eq!(env["TENANT"], "acme", "{build:?}: {env}");
        assert_eq!(env["TENANT_SOURCE"], "header", "{build:?}");
        let env = gw.get("/env.php").json();
        assert_eq!(env["TENANT"], "public", "{build:?}: {env}");
        assert_eq!(env["TENANT_SOURCE"], "default", "{build:?}");
        // Client input that is not a plain name never reaches the app.
        let env = request(gw.addr(), "GET", "/env.php", &[("X-Tenant", "a;b")], b"").json();
        assert_eq!(env["TENANT"], "public", "{build:?}: {env}");
        // Static files do not go through the app's plugins.
        assert_eq!(gw.get("/page.html").status, 200);
    }
}

#[test]
fn init_errors_surface_in_check_and_stop_the_start() {
    for build in BOTH {
        let bad = format!(
            r#"[[plugin]]
name = "guard"
path = "{}"
config = {{ deny_status = 200 }}
"#,
            plugin_file("examples/path-filter", build)
        );
        let config = config_with(&bad, "\"guard\"", "");
        let (ok, _, stderr) = check_config(&config);
        assert!(!ok);
        assert!(
            stderr.contains("plugin \"guard\"")
                && stderr.contains("deny_status must be a 4xx or 5xx"),
            "{build:?}: {stderr}"
        );
        let stderr = serve_must_fail(&config);
        assert!(stderr.contains("deny_status must be"), "{stderr}");

        let typo = bad.replace("deny_status = 200", "deny_pahts = [\"/x\"]");
        let (ok, _, stderr) = check_config(&config_with(&typo, "\"guard\"", ""));
        assert!(!ok);
        assert!(
            stderr.contains("unknown field `deny_pahts`"),
            "{build:?}: {stderr}"
        );
    }
    // A plugin name that does not exist is a config error with a line.
    let (ok, _, stderr) = check_config(&config_with("", "\"nope\"", ""));
    assert!(!ok);
    assert!(
        stderr.contains("fastgate.toml:4:") && stderr.contains("no [[plugin]] named \"nope\""),
        "{stderr}"
    );
}

#[test]
fn a_plugin_sees_every_field_of_the_request_head_in_both_builds() {
    for build in BOTH {
        // As a server filter: before mapping, so no app yet.
        let gw = Gateway::start(&config_with(&misbehave(build, ""), "\"m\"", ""));
        let r = request(
            gw.addr(),
            "POST",
            "/some/p%41th?a=1&misbehave=head",
            &[("X-Probe", "one two"), ("Cookie", "k=v")],
            b"body",
        );
        assert_eq!(r.status, 200, "{build:?}: {}", r.text());
        let seen = r.text();
        let server = gw.addr().to_string();
        for line in [
            "method=POST",
            "path=/some/pAth\n",
            "raw_path=/some/p%41th\n",
            "query=a=1&misbehave=head",
            "version=HTTP/1.1",
            "client=127.0.0.1:",
            &format!("server={server}"),
            "app=\n",
            "x-probe: one two",
            "cookie: k=v",
        ] {
            assert!(
                seen.contains(line),
                "{build:?}: {line:?} missing in\n{seen}"
            );
        }
        // As the app's filter: after mapping, with the app's name.
        let gw = Gateway::start(&config_with(
            &misbehave(build, ""),
            "",
            "plugins = [\"m\"]\n",
        ));
        let seen = gw.get("/index.php?misbehave=head").text();
        assert!(seen.contains("app=php\n"), "{build:?}: {seen}");
        assert!(seen.contains("path=/index.php\n"), "{build:?}: {seen}");
    }
}

fn misbehave(build: PluginBuild, extra: &str) -> String {
    format!(
        "[[plugin]]\nname = \"m\"\npath = \"{}\"\n{extra}\n",
        plugin_file("tests/plugins/misbehave", build)
    )
}

#[test]
fn an_infinite_loop_costs_its_request_the_deadline_and_nothing_more() {
    let gw = Gateway::start(&config_with(
        &misbehave(PluginBuild::Wasm, "timeout = \"50ms\""),
        "\"m\"",
        "",
    ));
    let r = gw.get("/misbehave/loop");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        gw.wait_for_log("deadline of 50ms", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // The gateway goes on serving, through the same plugin.
    for _ in 0..5 {
        assert_eq!(gw.get("/page.html").status, 200);
    }
    assert_eq!(gw.get("/index.php").status, 200);

    // fail-open: the request goes on as if the plugin had said continue
    // (to a 404: nothing is at that path).
    let gw = Gateway::start(&config_with(
        &misbehave(
            PluginBuild::Wasm,
            "timeout = \"50ms\"\non_error = \"fail-open\"",
        ),
        "\"m\"",
        "",
    ));
    assert_eq!(gw.get("/misbehave/loop").status, 404);
    assert!(
        gw.wait_for_log("on_error = fail-open", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

#[test]
fn a_memory_bomb_is_capped() {
    let gw = Gateway::start(&config_with(
        &misbehave(
            PluginBuild::Wasm,
            "memory_limit = \"16MiB\"\ntimeout = \"5s\"",
        ),
        "\"m\"",
        "",
    ));
    let before = gw.peak_rss_kib();
    let r = gw.get("/misbehave/bomb");
    assert_eq!(r.status, 500);
    assert!(
        gw.wait_for_log("memory limit of 16777216 bytes", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // The hoard never got past the cap (plus slack for the gateway itself).
    let grew_kib = gw.peak_rss_kib().saturating_sub(before);
    assert!(grew_kib < 64 * 1024, "gateway grew by {grew_kib} KiB");
    assert_eq!(gw.get("/page.html").status, 200);
}

/// `id=<instance> count=<n>` from the misbehave plugin.
fn instance_count(gw: &Gateway) -> (String, u64) {
    let text = gw.get("/misbehave/count").text();
    let (id, count) = text.split_once(' ').unwrap_or_else(|| panic!("{text}"));
    (
        id.trim_start_matches("id=").to_string(),
        count.trim_start_matches("count=").parse().unwrap(),
    )
}

#[test]
fn a_trapped_instance_is_replaced_never_reused() {
    let gw = Gateway::start(&config_with(&misbehave(PluginBuild::Wasm, ""), "\"m\"", ""));
    // Warm instances are reused: counts grow.
    let mut seen = std::collections::HashMap::new();
    for _ in 0..10 {
        let (id, count) = instance_count(&gw);
        let last = seen.insert(id, count).unwrap_or(0);
        assert!(count > last, "an instance's count went back");
    }
    assert!(
        seen.values().any(|&c| c > 1),
        "no instance was reused: {seen:?}"
    );
    for (trap, message) in [
        ("/misbehave/trap", "traps now"),
        ("/misbehave/panic", "misbehaving on purpose"),
    ] {
        let before = gw.logs().matches(message).count();
        assert_eq!(gw.get(trap).status, 500);
        assert!(
            gw.wait_for_log(
                "wasm instance discarded after a trap",
                Duration::from_secs(5)
            ),
            "{}",
            gw.logs()
        );
        // A panic in a wasm plugin is a trap too; its message reaches the log.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while gw.logs().matches(message).count() == before {
            assert!(std::time::Instant::now() < deadline, "{}", gw.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The instance that trapped (its id is in the log) never answers again.
    let logs = gw.logs();
    let trapped = logs
        .lines()
        .find_map(|l| l.split("instance ").nth(1)?.split(" traps now").next())
        .unwrap()
        .to_string();
    for _ in 0..20 {
        let (id, _) = instance_count(&gw);
        assert_ne!(id, trapped, "a trapped instance was reused");
    }
    assert_eq!(gw.get("/page.html").status, 200);
}

#[test]
fn a_native_panic_does_not_crash_the_gateway() {
    let gw = Gateway::start(&config_with(
        &misbehave(PluginBuild::Native, ""),
        "\"m\"",
        "",
    ));
    for _ in 0..3 {
        let r = gw.get("/misbehave/panic");
        assert_eq!(r.status, 500, "{}", r.text());
    }
    assert!(
        gw.wait_for_log(
            "plugin panicked: misbehaving on purpose",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    // Same process, still serving, plugin still working.
    assert_eq!(gw.get("/page.html").status, 200);
    assert_eq!(gw.get("/misbehave/count").status, 200);
    assert_eq!(gw.get("/index.php").status, 200);
}

#[test]
fn plugin_log_lines_carry_the_plugin_name() {
    for build in BOTH {
        let gw = Gateway::start(&config_with(&misbehave(build, ""), "\"m\"", ""));
        assert_eq!(gw.get("/misbehave/log").status, 404);
        assert!(
            gw.wait_for_log(
                "misbehave says hello through the host",
                Duration::from_secs(5)
            ),
            "{build:?}: {}",
            gw.logs()
        );
        let line = gw
            .logs()
            .lines()
            .find(|l| l.contains("says hello"))
            .unwrap()
            .to_string();
        assert!(
            line.contains("WARN") && line.contains("plugin=\"m\""),
            "{build:?}: {line}"
        );
    }
}

#[test]
fn a_native_library_with_another_abi_is_refused_at_start() {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nplugins = [\"old\"]\n[[plugin]]\nname = \"old\"\npath = \"{}\"\n",
        plugin_file("tests/plugins/bad-abi", PluginBuild::Native)
    );
    let stderr = serve_must_fail(&config);
    assert!(
        stderr.contains("plugin \"old\"")
            && stderr.contains("built for plugin ABI 999")
            && stderr.contains("this gateway speaks ABI 2"),
        "{stderr}"
    );
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok && stderr.contains("ABI 999"), "{stderr}");
    // Not a plugin at all: a clear message too.
    let stderr = serve_must_fail(&config.replace(".so", ".so.missing"));
    assert!(stderr.contains("cannot load"), "{stderr}");
}

/// The smallest component that says which contract it was built for: it
/// imports `fastgate:plugin/types@0.3.0` (an empty instance type), as a
/// plugin built with a future fastgate-sdk 0.3 would.
fn component_of_contract_0_3() -> Vec<u8> {
    let name = b"fastgate:plugin/types@0.3.0";
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    // Type section: one instance type with no declarations.
    bytes.extend_from_slice(&[7, 3, 1, 0x42, 0]);
    // Import section: that name, as an instance of type 0.
    let mut import = vec![1, 0, name.len() as u8];
    import.extend_from_slice(name);
    import.extend_from_slice(&[5, 0]);
    bytes.extend_from_slice(&[10, import.len() as u8]);
    bytes.extend_from_slice(&import);
    bytes
}

#[test]
fn a_wasm_plugin_built_for_another_contract_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.wasm");
    std::fs::write(&path, component_of_contract_0_3()).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nplugins = [\"old\"]\n[[plugin]]\nname = \"old\"\npath = {:?}\n",
        path.display().to_string()
    );
    let stderr = serve_must_fail(&config);
    assert!(
        stderr.contains("plugin \"old\"")
            && stderr.contains("built for fastgate:plugin@0.3.0")
            && stderr.contains("this gateway speaks fastgate:plugin@0.2.0 and @0.1.0")
            && stderr.contains("rebuild it against fastgate-sdk 0.2.0"),
        "{stderr}"
    );
}

/// A site whose app `py` is started by the misbehave launcher (which maps
/// `/py/*`; the app is mounted there), with its runtime directory at
/// `run/`, and `options` in `[app.options]`.
fn launched_by_misbehave(build: PluginBuild, app_lines: &str, options: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nruntime_dir = \"run\"\n{}\n[[app]]\nname = \"py\"\nlauncher = \"m\"\nmount = \"/py\"\n{app_lines}\n[app.options]\n{options}\n",
        misbehave(build, "")
    )
}

#[test]
fn a_launchers_pool_proposals_and_folders_reach_the_pool_from_both_builds() {
    use std::os::unix::fs::PermissionsExt;
    for build in BOTH {
        let config = launched_by_misbehave(
            build,
            "max_instances = 2",
            "min_instances = 1\ninstance_max_requests = 50\ndirs = [\"cache\", \"tmp\"]",
        );
        let (ok, stdout, stderr) = check_config(&config);
        assert!(ok, "{build:?}: {stderr}");
        for line in [
            "  min_instances         1 (launcher \"m\")\n",
            "  instance_max_requests 50 (launcher \"m\")\n",
            "  max_instances         2 (file)\n",
        ] {
            assert!(stdout.contains(line), "{build:?}: {line:?} in\n{stdout}");
        }
        let gw = Gateway::start(&config);
        // min_instances = 1: a process before any request.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !gw.logs().contains("instance started") {
            assert!(
                std::time::Instant::now() < deadline,
                "{build:?}: nothing started\n{}",
                gw.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The folders exist, private, beside the launcher's file.
        let app_dir = gw.dir_path().join("run/py");
        assert!(app_dir.join("fcgi_app.py").is_file(), "{build:?}");
        for dir in ["cache", "tmp"] {
            let meta = std::fs::metadata(app_dir.join(dir)).unwrap();
            assert!(meta.is_dir(), "{build:?}: {dir}");
            assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{build:?}: {dir}");
        }
    }
}

#[test]
fn a_bad_pool_proposal_stops_the_start_naming_the_launcher_and_the_key() {
    for (app_lines, options, expect) in [
        (
            "max_instances = 2",
            "min_instances = 3",
            "min_instances = 3, more than max_instances (2)",
        ),
        (
            "max_instances = 0\nmax_instances_auto_ceiling = 2",
            "min_instances = 3",
            "min_instances = 3, more than max_instances_auto_ceiling (2)",
        ),
        ("", "instance_max_requests = 0", "instance_max_requests = 0"),
        ("", "dirs = [\"../up\"]", "runtime folder name \"../up\""),
    ] {
        let config = launched_by_misbehave(PluginBuild::Native, app_lines, options);
        let stderr = serve_must_fail(&config);
        assert!(
            stderr.contains("app \"py\": launcher \"m\"") && stderr.contains(expect),
            "{options}: {stderr}"
        );
        let (ok, _, stderr) = check_config(&config);
        assert!(!ok && stderr.contains(expect), "{options}: {stderr}");
    }
    // The file's own value is not the launcher's to check: it wins.
    let config = launched_by_misbehave(
        PluginBuild::Native,
        "max_instances = 2\nmin_instances = 0",
        "min_instances = 3",
    );
    let (ok, stdout, stderr) = check_config(&config);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("  min_instances         0 (file)\n"),
        "{stdout}"
    );
}

#[test]
fn a_launcher_plugin_describes_the_app_the_pool_runs() {
    for build in BOTH {
        let config = format!(
            r#"[server]
listen = "127.0.0.1:0"
root = "www"
{}
[[app]]
name = "py"
launcher = "m"
mount = "/py"
max_instances = 1
[app.options]
args = ["--exit-after", "1000"]
"#,
            misbehave(build, "")
        );
        let gw = Gateway::start(&config);
        let r = gw.get("/py/hello");
        assert_eq!(r.status, 200, "{build:?}: {}", r.text());
        assert!(r.text().starts_with("hello pid="), "{}", r.text());
        // The launcher's file is in the app's private runtime directory,
        // and the process runs it from there.
        let pid = pid_of(&r.text()).unwrap();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            cmdline.contains("/py/fcgi_app.py\0--exit-after\x001000"),
            "{cmdline:?}"
        );
        // Mapping defaults came from the launcher: /py/* only.
        assert_eq!(gw.get("/other").status, 404);
        gw.assert_no_zombies();
    }
    // The launcher validates its options: a typo is a check error.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n{}\n[[app]]\nname = \"py\"\nlauncher = \"m\"\n[app.options]\nargz = []\n",
        misbehave(PluginBuild::Wasm, "")
    );
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("app \"py\": launcher \"m\"") && stderr.contains("unknown field `argz`"),
        "{stderr}"
    );
}

#[test]
fn a_wasm_plugin_has_no_environment_files_or_network() {
    let gw = Gateway::start(&config_with(&misbehave(PluginBuild::Wasm, ""), "\"m\"", ""));
    // The gateway runs with PATH, HOME, ... set; the plugin sees none.
    assert_eq!(gw.get("/misbehave/env").text(), "env=0");
    for (path, import) in [
        ("/misbehave/file", "wasi:filesystem"),
        ("/misbehave/net", "wasi:sockets"),
    ] {
        assert_eq!(gw.get(path).status, 500, "{path}");
        assert!(
            gw.wait_for_log(import, Duration::from_secs(5)),
            "{path}: {}",
            gw.logs()
        );
    }
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("wasi:filesystem"))
        .unwrap();
    assert!(line.contains("which plugins do not have"), "{line}");
    // The gateway goes on, with fresh instances.
    assert_eq!(gw.get("/misbehave/env").text(), "env=0");
}
