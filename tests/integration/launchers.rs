//! Framework launchers: `launcher = "php"` (built in, and the same plugin
//! loaded as a wasm component) starting real php-cgi pools.

use std::time::Duration;

use crate::util::*;

/// A site whose one app is started by `launcher`, with extra app lines and
/// `[app.options]` lines.
fn launcher_config(launcher: &str, app_extra: &str, options: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"

[[app]]
name = "php"
launcher = "{launcher}"
max_instances = 2
{app_extra}
[app.options]
{options}
"#
    )
}

/// The environment of a process, from /proc.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn php_children(gw: &Gateway) -> Vec<u32> {
    gw.children()
        .into_iter()
        .filter(|c| c.1.starts_with("php"))
        .map(|c| c.0)
        .collect()
}

#[test]
fn php_launcher_runs_php_cgi_with_its_environment_and_mapping() {
    php_cgi();
    let gw = Gateway::start(&launcher_config("php", "instance_max_requests = 700", ""));
    let r = gw.get("/sub/info.php/x/y?q=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let info = r.json();
    assert_eq!(info["SCRIPT_NAME"], "/sub/info.php");
    assert_eq!(info["PATH_INFO"], "/x/y");
    assert_eq!(info["REQUEST_URI"], "/sub/info.php/x/y?q=1");
    // php-cgi got the FastCGI environment from the launcher.
    let pid = php_children(&gw)[0];
    let env = environ(pid);
    assert!(env.contains(&"PHP_FCGI_CHILDREN=0".to_string()), "{env:?}");
    assert!(
        env.contains(&"PHP_FCGI_MAX_REQUESTS=700".to_string()),
        "{env:?}"
    );
    // resource_type = file: a script that does not exist is a 404, and an
    // image with a .php suffix after it never runs as PHP.
    assert_eq!(gw.get("/nope.php").status, 404);
    assert_eq!(gw.get("/uploads/x.jpg/y.php").status, 404);
    // Static files are still the gateway's.
    assert_eq!(gw.get("/style.css").status, 200);
    gw.assert_no_zombies();
}

#[test]
fn php_launcher_options_front_controller_and_php_ini() {
    php_cgi();
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("php.ini");
    let prepend = dir.path().join("prepend.php");
    std::fs::write(&prepend, "<?php\n").unwrap();
    std::fs::write(&ini, format!("auto_prepend_file = {}\n", prepend.display())).unwrap();
    let config = launcher_config(
        "php",
        "",
        &format!(
            "front_controller = true\nphp_ini = {:?}",
            ini.display().to_string()
        ),
    );
    let gw = Gateway::start(&config);
    let r = gw.get("/any/path?x=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "front controller: /any/path?x=1\n");
    // php.ini from the option (php-cgi -c).
    let info = gw.get("/server.php").json();
    assert_eq!(info["prepend"], prepend.display().to_string(), "{info}");
}

#[test]
fn launcher_errors_stop_the_start_with_a_clear_message() {
    // A typo in [app.options] is the launcher's error, shown by check and serve.
    let stderr = serve_must_fail(&launcher_config("php", "", "front_controler = true"));
    assert!(
        stderr.contains("app \"php\": launcher \"php\"")
            && stderr.contains("unknown field `front_controler`"),
        "{stderr}"
    );
    // php-cgi missing: the gateway refuses to start and names the package.
    let stderr = serve_must_fail(&launcher_config(
        "php",
        "command = \"/nonexistent/bin/php-cgi\"",
        "",
    ));
    assert!(
        stderr.contains("/nonexistent/bin/php-cgi") && stderr.contains("apt-get install php-cgi"),
        "{stderr}"
    );
    // An unknown launcher names the built-ins.
    let stderr = serve_must_fail(&launcher_config("perl", "", ""));
    assert!(stderr.contains("built-in launchers: php"), "{stderr}");
}

#[test]
fn the_php_launcher_works_the_same_as_a_wasm_component() {
    php_cgi();
    let config = format!(
        "{}\n[[plugin]]\nname = \"php-wasm\"\npath = \"{}\"\n",
        launcher_config(
            "php-wasm",
            "instance_max_requests = 300",
            "front_controller = true"
        ),
        plugin_file("plugins/php", PluginBuild::Wasm)
    );
    let gw = Gateway::start(&config);
    assert!(
        gw.wait_for_log(
            "plugin loaded plugin=php-wasm kind=Wasm",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    assert_eq!(gw.get("/any/path").text(), "front controller: /any/path\n");
    let info = gw.get("/sub/info.php/x").json();
    assert_eq!(info["PATH_INFO"], "/x");
    let env = environ(php_children(&gw)[0]);
    assert!(
        env.contains(&"PHP_FCGI_MAX_REQUESTS=300".to_string()),
        "{env:?}"
    );
}
