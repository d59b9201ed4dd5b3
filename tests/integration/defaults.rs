//! Issue 12, defaults that perform: the launchers propose pool settings that
//! suit their framework where the `[[app]]` sets none (PHP
//! `instance_max_requests = 10000` and an opcache file cache, Django
//! `min_instances = 1`), the file's own values win, and `fastgate check`
//! says where each effective value came from.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::util::*;

/// A PHP site started by the php launcher, with its runtime directory at
/// `run/` in the site (so the test can look into it).
fn php_site(app_lines: &str, options: &str) -> String {
    launcher_site("php", "php", app_lines, options).replacen(
        "root = \"www\"\n",
        "root = \"www\"\nruntime_dir = \"run\"\n",
        1,
    )
}

/// `fastgate check`'s summary of a config that must pass.
fn summary(config: &str) -> String {
    let (ok, stdout, stderr) = check_config(config);
    assert!(ok, "{stderr}\n{stdout}");
    stdout
}

/// Fails unless `summary` has the line `key value (origin)`, aligned as
/// `fastgate check` prints it.
fn assert_traced(summary: &str, key: &str, value: &str, origin: &str) {
    let line = format!("  {key:<21} {value} ({origin})\n");
    assert!(summary.contains(&line), "{line:?} missing in\n{summary}");
}

/// The environment of a process, from /proc.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn children_named(gw: &Gateway, prefix: &str) -> Vec<u32> {
    gw.children()
        .into_iter()
        .filter(|c| c.1.starts_with(prefix) && c.2 != 'Z')
        .map(|c| c.0)
        .collect()
}

/// The `.bin` files under `dir`, at any depth (opcache mirrors each
/// script's path below a folder named after the PHP build).
fn bin_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(bin_files(&path));
        } else if path.extension().is_some_and(|e| e == "bin") {
            found.push(path);
        }
    }
    found
}

#[test]
fn the_php_launcher_proposes_10000_requests_and_check_says_so() {
    php_cgi();
    let config = php_site("max_instances = 2", "");
    let text = summary(&config);
    assert_traced(&text, "instance_max_requests", "10000", "launcher \"php\"");
    assert_traced(&text, "max_instances", "2", "file");
    assert_traced(&text, "min_instances", "0", "default");
    assert_traced(&text, "queue_length", "1000", "default");
    assert_traced(&text, "request_timeout", "90s", "default");
    assert_traced(&text, "handles", "*.php", "launcher \"php\"");
    assert_traced(&text, "resource_type", "file", "launcher \"php\"");
    assert_traced(&text, "fallback", "none", "default");
    assert_traced(
        &text,
        "command",
        "php-cgi -d opcache.file_cache={runtime_dir}/opcache",
        "launcher \"php\"",
    );
    // php-cgi runs with the same recycling point, so it never exits first.
    let gw = Gateway::start(&config);
    assert_eq!(gw.get("/server.php").status, 200);
    let pid = children_named(&gw, "php")[0];
    let env = environ(pid);
    assert!(
        env.contains(&"PHP_FCGI_MAX_REQUESTS=10000".to_string()),
        "{env:?}"
    );
}

#[test]
fn the_files_values_win_over_the_launchers_and_check_says_so() {
    php_cgi();
    let config = php_site(
        "max_instances = 2\ninstance_max_requests = 700\nhandles = [\"*.php\", \"*.phtml\"]\nrequest_timeout = \"75s\"",
        "front_controller = true",
    );
    let text = summary(&config);
    assert_traced(&text, "instance_max_requests", "700", "file");
    assert_traced(&text, "handles", "*.php, *.phtml", "file");
    assert_traced(&text, "request_timeout", "75s", "file");
    assert_traced(&text, "fallback", "/index.php", "launcher \"php\"");
    let gw = Gateway::start(&config);
    assert_eq!(gw.get("/server.php").status, 200);
    let env = environ(children_named(&gw, "php")[0]);
    assert!(
        env.contains(&"PHP_FCGI_MAX_REQUESTS=700".to_string()),
        "{env:?}"
    );
}

/// What `probe.php` prints: `<word> pid=<pid>`, where the word is whatever
/// the compiled script says, which is the point.
fn probe(word: &str) -> String {
    format!("<?php echo \"{word} pid=\", getmypid();\n")
}

/// Writes `www/probe.php` with `word` and a modification time an hour ago:
/// opcache does not cache a script changed within the last 2 s
/// (`opcache.file_update_protection`), and the second write must keep the
/// time of the first.
fn write_probe(site: &Path, word: &str) {
    let path = site.join("www/probe.php");
    std::fs::write(&path, probe(word)).unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let an_hour_ago = an_hour_ago
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let then = SystemTime::UNIX_EPOCH + Duration::from_secs(an_hour_ago);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(then)
        .unwrap();
}

/// Serves the probe on a php-cgi that recycles after each request, then
/// changes the script's text (same size, same time) and asks again: a new
/// php-cgi that loads the compiled script from the file cache still says
/// "old"; one that compiles the script says "new". Returns both answers and
/// the `.bin` files seen after the first request.
fn probe_twice(options: &str) -> (String, String, Vec<std::path::PathBuf>, Gateway) {
    php_cgi();
    let config = php_site("max_instances = 1\ninstance_max_requests = 1", options);
    let gw = Gateway::start_with(&config, |site| write_probe(site, "old"));
    let first = gw.get("/probe.php");
    assert_eq!(first.status, 200, "{}\n{}", first.text(), gw.logs());
    let cache = gw.dir_path().join("run/php/opcache");
    let bins = bin_files(&cache);
    write_probe(gw.dir_path(), "new");
    // Recycled after one request: the next one runs on a new php-cgi.
    let second = gw.get("/probe.php");
    assert_eq!(second.status, 200, "{}\n{}", second.text(), gw.logs());
    assert_ne!(
        pid_of(&first.text()),
        pid_of(&second.text()),
        "{} / {}",
        first.text(),
        second.text()
    );
    (first.text(), second.text(), bins, gw)
}

#[test]
fn a_new_php_cgi_loads_compiled_scripts_from_the_opcache_file_cache() {
    let (first, second, bins, gw) = probe_twice("");
    assert!(first.starts_with("old "), "{first}");
    // The first php-cgi wrote the compiled script to the app's folder...
    assert!(
        bins.iter()
            .any(|b| b.to_string_lossy().ends_with("/www/probe.php.bin")),
        "{bins:?}"
    );
    let cache = gw.dir_path().join("run/php/opcache");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    // ...and the second one ran that, not the changed text.
    assert!(second.starts_with("old "), "{second}");
}

#[test]
fn opcache_file_cache_false_leaves_no_cache() {
    let (first, second, bins, gw) = probe_twice("opcache_file_cache = false");
    assert!(first.starts_with("old "), "{first}");
    assert!(bins.is_empty(), "{bins:?}");
    assert!(!gw.dir_path().join("run/php/opcache").exists());
    // Compiled again from the text on disk.
    assert!(second.starts_with("new "), "{second}");
}

#[test]
fn opcache_is_on_and_the_users_own_d_and_php_ini_still_apply() {
    php_cgi();
    let ini_dir = tempfile::tempdir().unwrap();
    let ini = ini_dir.path().join("php.ini");
    std::fs::write(&ini, "precision = 10\n").unwrap();
    let script = "<?php echo json_encode([\
        'enabled' => opcache_get_status(false)['opcache_enabled'] ?? null,\
        'file_cache' => ini_get('opcache.file_cache'),\
        'memory_limit' => ini_get('memory_limit'),\
        'precision' => ini_get('precision')]);\n";
    let options = format!("php_ini = {:?}", ini.display().to_string());
    let start = |args: &str| {
        let config = php_site(&format!("max_instances = 1\nargs = [{args}]"), &options);
        Gateway::start_with(&config, |site| {
            std::fs::write(site.join("www/ini.php"), script).unwrap()
        })
    };
    let gw = start("\"-d\", \"memory_limit=77M\"");
    let r = gw.get("/ini.php");
    assert_eq!(r.status, 200, "{}", r.text());
    let ini_values = r.json();
    assert_eq!(ini_values["enabled"], true, "{ini_values}");
    let cache = gw.dir_path().join("run/php/opcache");
    assert_eq!(
        ini_values["file_cache"],
        cache.display().to_string(),
        "{ini_values}"
    );
    assert_eq!(ini_values["memory_limit"], "77M", "{ini_values}");
    assert_eq!(ini_values["precision"], "10", "{ini_values}");
    drop(gw);
    // The user's own `-d opcache.file_cache` comes last, and wins.
    let own = tempfile::tempdir().unwrap();
    let gw = start(&format!(
        "\"-d\", \"opcache.file_cache={}\"",
        own.path().display()
    ));
    let ini_values = gw.get("/ini.php").json();
    assert_eq!(
        ini_values["file_cache"],
        own.path().display().to_string(),
        "{ini_values}"
    );
}

/// A site whose WSGI app (tests/fixtures/wsgi/hello_wsgi.py) is started by
/// the django launcher.
fn django_site(app_lines: &str) -> String {
    let dir = fixtures().join("wsgi").canonicalize().unwrap();
    launcher_site(
        "py",
        "django",
        app_lines,
        &format!(
            "wsgi_handler = \"hello_wsgi.application\"\npython_path = {:?}",
            dir.display().to_string()
        ),
    )
}

#[test]
fn the_django_launcher_starts_one_process_before_any_request() {
    let config = django_site("max_instances = 2");
    let text = summary(&config);
    assert_traced(&text, "min_instances", "1", "launcher \"django\"");
    assert_traced(&text, "instance_max_requests", "200", "default");
    let gw = Gateway::start(&config);
    // Started with the gateway, no request needed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !gw.logs().contains("instance started") {
        assert!(
            Instant::now() < deadline,
            "no process started before the first request\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = children_named(&gw, "python");
    assert_eq!(started.len(), 1, "{started:?}");
    // And it serves the first request.
    let r = gw.get("/hello");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(pid_of(&r.text()), Some(started[0]), "{}", r.text());
}

#[test]
fn min_instances_0_in_the_file_turns_the_django_process_off() {
    let config = django_site("max_instances = 2\nmin_instances = 0");
    assert_traced(&summary(&config), "min_instances", "0", "file");
    let gw = Gateway::start(&config);
    // A min_instances start begins before the gateway listens; give one a
    // second to show, then the first request starts the first process.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert!(
            children_named(&gw, "python").is_empty(),
            "{:?}\n{}",
            gw.children(),
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gw.get("/hello").status, 200);
    assert_eq!(children_named(&gw, "python").len(), 1);
}
