//! Issue 13, plugins: what a plugin written from docs/plugins.md alone ran
//! into. Filters see the path the router maps (decoded, normalised) and the
//! raw one beside it; a request filter hands the app parameters; launchers
//! propose `stderr_mode` and name files that must exist; plugins built for
//! contract 0.1.0 (native ABI 1) keep loading. Each test drives the real
//! binary with the plugins built both ways.

use crate::util::*;

const BOTH: [PluginBuild; 2] = [PluginBuild::Wasm, PluginBuild::Native];

/// A PHP site with `plugin` listed in `[server] plugins`.
fn server_filtered(plugin: &str, name: &str) -> String {
    let base = php_config("").replacen(
        "root = \"www\"\n",
        &format!("root = \"www\"\nplugins = [\"{name}\"]\n"),
        1,
    );
    format!("{base}\n{plugin}")
}

fn deny_admin(build: PluginBuild) -> String {
    format!(
        "[[plugin]]\nname = \"guard\"\npath = \"{}\"\nconfig = {{ deny_paths = [\"/admin\"] }}\n",
        plugin_file("examples/path-filter", build)
    )
}

/// `www/admin/x.php`, which says so when it runs.
fn with_admin_script(dir: &std::path::Path) {
    let admin = dir.join("www/admin");
    std::fs::create_dir_all(&admin).unwrap();
    std::fs::write(admin.join("x.php"), "<?php echo 'admin ran';").unwrap();
}

#[test]
fn issue_13_encoded_or_unnormalised_paths_do_not_pass_a_path_filter() {
    for build in BOTH {
        let gw = Gateway::start_with(
            &server_filtered(&deny_admin(build), "guard"),
            with_admin_script,
        );
        for path in [
            "/admin/x.php",
            "/%61dmin/x.php",
            "//admin/x.php",
            "/a/../admin/x.php",
            "/./admin/x.php",
            "/admin%2fx.php",
        ] {
            let r = gw.get(path);
            assert_eq!(r.status, 403, "{build:?} {path}: {}", r.text());
            assert!(!r.text().contains("admin ran"), "{build:?} {path}");
        }
        // What the filter does not deny still runs.
        assert_eq!(gw.get("/index.php").status, 200, "{build:?}");
        assert_eq!(
            gw.get("/administrator.html").status,
            403,
            "{build:?}: a prefix"
        );
    }
}

/// The server-wide misbehave plugin of `build` on the PHP site, with
/// `app_extra` in the app's table.
fn php_with_misbehave(build: PluginBuild, app_extra: &str) -> String {
    let plugin = format!(
        "[[plugin]]\nname = \"m\"\npath = \"{}\"\n",
        plugin_file("tests/plugins/misbehave", build)
    );
    let base = php_config(app_extra).replacen(
        "root = \"www\"\n",
        "root = \"www\"\nplugins = [\"m\"]\n",
        1,
    );
    format!("{base}\n{plugin}")
}

#[test]
fn a_plugin_sees_the_mapped_path_and_the_raw_one() {
    for build in BOTH {
        let gw = Gateway::start(&php_with_misbehave(build, ""));
        let seen = gw.get("/a/..//%69ndex.php?misbehave=head").text();
        assert!(seen.contains("\npath=/index.php\n"), "{build:?}: {seen}");
        assert!(
            seen.contains("\nraw_path=/a/..//%69ndex.php\n"),
            "{build:?}: {seen}"
        );
        // A path the router refuses reaches no filter: the router's 400.
        let r = gw.get("/../etc/passwd?misbehave=head");
        assert_eq!(r.status, 400, "{build:?}: {}", r.text());
        assert!(!r.text().contains("raw_path="), "{build:?}");
    }
}

#[test]
fn a_request_filter_gives_the_app_parameters_through_fastcgi() {
    for build in BOTH {
        let gw = Gateway::start(&php_with_misbehave(
            build,
            "[app.params]\nREMOTE_USER = \"nobody\"\nAUTH_TYPE = \"none\"\n",
        ));
        // Continue with parameters: they reach php-cgi, and win over the
        // app's own [app.params] of the same name.
        let env = gw.get("/env.php?misbehave=user").json();
        assert_eq!(env["REMOTE_USER"], "alice", "{build:?}: {env}");
        assert_eq!(env["AUTH_TYPE"], "Bearer", "{build:?}: {env}");
        // Without them, the app's own values.
        let env = gw.get("/env.php").json();
        assert_eq!(env["REMOTE_USER"], "nobody", "{build:?}: {env}");
        // A rewrite with parameters: the token header is gone, the user is
        // there.
        let env = request(
            gw.addr(),
            "GET",
            "/env.php?misbehave=user-rewrite",
            &[("Authorization", "Bearer s3cret")],
            b"",
        )
        .json();
        assert_eq!(env["REMOTE_USER"], "bob", "{build:?}: {env}");
        assert_eq!(
            env["HTTP_AUTHORIZATION"],
            serde_json::Value::Null,
            "{build:?}"
        );
        // A name the gateway sets is refused: 500 (fail-closed), logged
        // naming the plugin and the parameter; the app never runs with it.
        let r = gw.get("/env.php?misbehave=forge");
        assert_eq!(r.status, 500, "{build:?}: {}", r.text());
        assert!(!r.text().contains("/etc/passwd"), "{build:?}");
        assert!(
            gw.wait_for_log(
                "parameter \"SCRIPT_FILENAME\" is set by the gateway",
                std::time::Duration::from_secs(5)
            ),
            "{build:?}: {}",
            gw.logs()
        );
        let logs = gw.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("SCRIPT_FILENAME"))
            .unwrap();
        assert!(
            line.contains("plugin \"m\"") && line.contains("on_request"),
            "{line}"
        );
        // Static files ignore the parameters.
        assert_eq!(gw.get("/page.html?misbehave=user").status, 200);
    }
    // As the app's own filter, after the mapping, too.
    let config = format!(
        "{}\n[[plugin]]\nname = \"m\"\npath = \"{}\"\n",
        php_config("plugins = [\"m\"]"),
        plugin_file("tests/plugins/misbehave", PluginBuild::Native)
    );
    let gw = Gateway::start(&config);
    let env = gw.get("/env.php?misbehave=user").json();
    assert_eq!(env["REMOTE_USER"], "alice", "{env}");
}

#[test]
fn a_request_filter_gives_the_app_parameters_through_cgi() {
    for build in BOTH {
        let config = format!(
            "{}\n[[plugin]]\nname = \"m\"\npath = \"{}\"\n",
            launcher_site(
                "cgi",
                "cgi",
                "handles = [\"*.sh\"]\ninherit_env = [\"PATH\"]",
                ""
            )
            .replacen("root = \"www\"\n", "root = \"www\"\nplugins = [\"m\"]\n", 1),
            plugin_file("tests/plugins/misbehave", build)
        );
        let gw = Gateway::start(&config);
        let text = gw.get("/cgi-bin/env.sh?misbehave=user").text();
        assert!(text.contains("\nREMOTE_USER=alice\n"), "{build:?}: {text}");
        assert!(text.contains("\nAUTH_TYPE=Bearer\n"), "{build:?}: {text}");
        let text = gw.get("/cgi-bin/env.sh").text();
        assert!(text.contains("\nREMOTE_USER=unset\n"), "{build:?}: {text}");
        assert_eq!(gw.get("/cgi-bin/env.sh?misbehave=forge").status, 500);
        gw.assert_no_zombies();
    }
}

/// The `stderr_mode` line of `fastgate check`'s summary.
fn stderr_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with("stderr_mode"))
        .unwrap_or_else(|| panic!("no stderr_mode in\n{stdout}"))
}

#[test]
fn the_php_launcher_proposes_ignoring_stderr_and_the_file_wins() {
    php_cgi();
    let site = |app_lines: &str| launcher_site("php", "php", app_lines, "");
    let (ok, stdout, stderr) = check_config(&site(""));
    assert!(ok, "{stderr}");
    assert_eq!(
        stderr_line(&stdout).split_whitespace().collect::<Vec<_>>(),
        [
            "stderr_mode",
            "ignore-and-return-200",
            "(launcher",
            "\"php\")"
        ]
    );
    // A PHP warning on FCGI_STDERR: the page is served, the text logged.
    let gw = Gateway::start(&site(""));
    let r = gw.get("/stderr.php");
    assert_eq!((r.status, r.text().as_str()), (200, "done\n"));
    assert!(
        gw.wait_for_log(
            "message through error_log",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    drop(gw);
    // The file's value wins.
    let own = "stderr_mode = \"return-generic-500\"";
    let (ok, stdout, stderr) = check_config(&site(own));
    assert!(ok, "{stderr}");
    assert!(
        stderr_line(&stdout).ends_with("return-generic-500 (file)"),
        "{stdout}"
    );
    let gw = Gateway::start(&site(own));
    assert_eq!(gw.get("/stderr.php").status, 500);
}

fn wsgi_site(options: &str) -> String {
    let wsgi = fixtures().join("wsgi").canonicalize().unwrap();
    launcher_site(
        "py",
        "django",
        "max_instances = 1",
        &format!(
            "wsgi_handler = \"hello_wsgi.application\"\npython_path = {:?}\n{options}",
            wsgi.display().to_string()
        ),
    )
}

#[test]
fn the_django_launcher_proposes_ignoring_stderr() {
    let (ok, stdout, stderr) = check_config(&wsgi_site(""));
    assert!(ok, "{stderr}");
    assert!(
        stderr_line(&stdout).ends_with("ignore-and-return-200 (launcher \"django\")"),
        "{stdout}"
    );
    // The app writes to wsgi.errors (FCGI_STDERR): served, and logged.
    let gw = Gateway::start(&wsgi_site(""));
    let r = gw.get("/log");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "logged\n"),
        "{}",
        gw.logs()
    );
    assert!(gw.wait_for_log("a note from the app", std::time::Duration::from_secs(5)));
    // An exception: the bridge's own 500, the traceback only in the log.
    let r = gw.get("/error");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("ValueError"), "{}", r.text());
    assert!(gw.wait_for_log("ValueError: boom", std::time::Duration::from_secs(5)));
}

#[test]
fn a_launchers_required_paths_are_checked_at_start_and_by_check() {
    // The django launcher: a python_path folder that is not there.
    let config = launcher_site(
        "site",
        "django",
        "",
        "wsgi_handler = \"mysite.wsgi.application\"\npython_path = \"mysite-missing\"",
    );
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    for part in [
        "app \"site\": launcher \"django\"",
        "/mysite-missing (a python_path folder) does not exist",
    ] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
    let stderr = serve_must_fail(&config);
    assert!(
        stderr.contains("(a python_path folder) does not exist"),
        "{stderr}"
    );
    // The php launcher: its php_ini.
    let config = launcher_site("php", "php", "", "php_ini = \"conf/php.ini\"");
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("app \"php\": launcher \"php\"")
            && stderr.contains("/conf/php.ini (the php_ini option) does not exist"),
        "{stderr}"
    );
    // A plugin launcher, both builds: what it requires, it gets checked.
    for build in BOTH {
        let config = |required: &str| {
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n[[plugin]]\nname = \"m\"\npath = \"{}\"\n[[app]]\nname = \"py\"\nlauncher = \"m\"\n[app.options]\nrequired = [{required:?}]\nstderr_mode = \"terminate-process\"\n",
                plugin_file("tests/plugins/misbehave", build)
            )
        };
        let (ok, _, stderr) = check_config(&config("www/nope.py"));
        assert!(!ok, "{build:?}");
        assert!(
            stderr.contains("app \"py\": launcher \"m\"")
                && stderr.contains("/www/nope.py (the required option) does not exist"),
            "{build:?}: {stderr}"
        );
        let (ok, stdout, stderr) = check_config(&config("www/index.php"));
        assert!(ok, "{build:?}: {stderr}");
        assert!(
            stderr_line(&stdout).ends_with("terminate-process (launcher \"m\")"),
            "{build:?}: {stdout}"
        );
    }
}

// Contract 0.1.0: tests/compat/sdk01-plugin, built with the pinned
// fastgate-sdk 0.1 (native ABI 1).

fn old_plugin(build: PluginBuild) -> String {
    format!(
        "[[plugin]]\nname = \"old\"\npath = \"{}\"\n",
        plugin_file("tests/compat/sdk01-plugin", build)
    )
}

#[test]
fn a_contract_0_1_filter_keeps_loading_beside_0_2_plugins() {
    for build in BOTH {
        // A 0.1 plugin and a 0.2 one in one chain.
        let config = format!(
            "{}\n{}{}",
            php_config("plugins = [\"old\"]").replacen(
                "root = \"www\"\n",
                "root = \"www\"\nplugins = [\"old\", \"guard\"]\n",
                1
            ),
            old_plugin(build),
            deny_admin(build).replace("\"/admin\"", "\"/private\"")
        );
        let gw = Gateway::start_with(&config, with_admin_script);
        // Its filter: refusals on the mapped path (0.1 plugins get it too),
        // answers, rewrites; the 0.2 filter after it still runs.
        for path in ["/admin/x.php", "/%61dmin/x.php", "//admin/x.php"] {
            assert_eq!(gw.get(path).status, 403, "{build:?} {path}");
        }
        assert_eq!(gw.get("/private/x").status, 403, "{build:?}");
        let r = gw.get("/old/ping");
        assert_eq!((r.status, r.text().as_str()), (200, "pong from 0.1"));
        let seen = gw.get("/a/../index.php?old=head").text();
        assert!(seen.contains("\npath=/index.php\n"), "{build:?}: {seen}");
        // Its response filter, its env injection (as the app's plugin).
        let r = gw.get("/old/env.php");
        assert_eq!(r.status, 200, "{build:?}: {}", r.text());
        assert_eq!(r.header("x-contract"), Some("0.1.0"), "{build:?}");
        let env = r.json();
        assert_eq!(env["SCRIPT_NAME"], "/env.php", "{build:?}: {env}");
        assert_eq!(env["OLD_PLUGIN"], "0.1.0", "{build:?}: {env}");
        // Its log lines reach the gateway's log, with its name.
        assert_eq!(gw.get("/old-log").status, 404);
        assert!(
            gw.wait_for_log(
                "a 0.1 plugin logs through the host",
                std::time::Duration::from_secs(5)
            ),
            "{build:?}: {}",
            gw.logs()
        );
        let logs = gw.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("a 0.1 plugin logs"))
            .unwrap();
        assert!(line.contains("plugin=\"old\""), "{build:?}: {line}");
    }
}

#[test]
fn a_contract_0_1_launcher_is_told_the_pool_value_and_starts_its_app() {
    for build in BOTH {
        for (app_lines, told) in [("", "200"), ("instance_max_requests = 7", "7")] {
            let config = format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n{}\n[[app]]\nname = \"py\"\nlauncher = \"old\"\nmax_instances = 1\n{app_lines}\n",
                old_plugin(build)
            );
            let (ok, _, stderr) = check_config(&config);
            assert!(ok, "{build:?}: {stderr}");
            let gw = Gateway::start(&config);
            let r = gw.get("/py/hello");
            assert_eq!(r.status, 200, "{build:?}: {}", r.text());
            let pid = pid_of(&r.text()).unwrap();
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
            assert!(
                cmdline.ends_with(&format!("/py/fcgi_app.py\0--exit-after\0{told}\0")),
                "{build:?}: {cmdline:?}"
            );
            gw.assert_no_zombies();
        }
    }
}
