//! `fastgate import-iis`: the IIS PHP guide's site and a wfastcgi Django
//! site (tests/fixtures/iis/) become configs that `fastgate check` accepts,
//! and a broken file is refused with exit status 2 naming file and line.

use std::path::Path;
use std::process::{Command, Output};

use crate::util::*;

fn import(files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastgate"))
        .arg("import-iis")
        .args(files)
        .output()
        .unwrap()
}

/// The imported config's text; the import must succeed.
fn imported(files: &[&Path]) -> String {
    let out = import(files);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn iis_fixture(site: &str, file: &str) -> std::path::PathBuf {
    fixtures().join("iis").join(site).join(file)
}

#[test]
fn php_guide_site_imports_to_the_php_launcher_and_passes_check() {
    let toml = imported(&[
        &iis_fixture("php", "web.config"),
        &iis_fixture("php", "applicationHost.config"),
    ]);
    for expected in [
        "launcher = \"php\"",
        "# IIS: scriptProcessor = C:\\PHP\\php-cgi.exe",
        "handles = [\"*.php\"]",
        "verbs = [\"GET\", \"HEAD\", \"POST\"]",
        "resource_type = \"either\"",
        "max_instances = 8",
        "instance_max_requests = 10000",
        "activity_timeout = \"600s\"",
        "request_timeout = \"600s\"",
        "idle_timeout = \"300s\"",
        "queue_length = 1000",
        "rapid_fails_per_minute = 10",
        "stderr_mode = \"return-stderr-in-500\"",
        "signal_before_terminate = \"5s\"",
        "\"PHP_FCGI_MAX_REQUESTS\" = \"10000\"",
        "# not mapped: PHPRC = C:\\PHP",
        "# not mapped: monitorChangesTo = C:\\PHP\\php.ini",
        "# not mapped: flushNamedPipe = false",
        "# not mapped: requireAccess = Script",
        "# not mapped: handlers of other modules",
    ] {
        assert!(toml.contains(expected), "missing {expected:?} in:\n{toml}");
    }
    let (ok, stdout, stderr) = check_config(&toml);
    assert!(ok, "{stderr}\n{toml}");
    assert!(
        stdout.contains("instance_max_requests 10000 (file)"),
        "{stdout}"
    );
}

#[test]
fn imported_php_site_serves_php() {
    let toml = imported(&[
        &iis_fixture("php", "web.config"),
        &iis_fixture("php", "applicationHost.config"),
    ]);
    let toml = toml.replacen("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n", 1);
    let gw = Gateway::start(&toml);
    let r = gw.get("/index.php");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("front controller"), "{}", r.text());
}

/// PYTHONPATH is a Windows path: it becomes ".", the folder of
/// fastgate.toml (where the project is to be put), which exists, so
/// check passes; the original is kept in a comment.
#[test]
fn wfastcgi_site_imports_to_the_django_launcher_and_passes_check() {
    let toml = imported(&[&iis_fixture("django", "web.config")]);
    for expected in [
        "launcher = \"django\"",
        "# IIS: scriptProcessor = C:\\Python311\\python.exe|C:\\Python311\\Lib\\site-packages\\wfastcgi.py",
        "wsgi_handler = \"django.core.wsgi.get_wsgi_application()\"",
        "django_settings_module = \"mysite.settings\"",
        "python_path = \".\"",
        "# IIS: PYTHONPATH = C:\\inetpub\\wwwroot\\mysite",
        "# not mapped: WSGI_LOG = C:\\inetpub\\logs\\wfastcgi.log",
        "\"SITE_BANNER\" = \"imported\"",
        "# IIS: no <fastCgi><application>",
    ] {
        assert!(toml.contains(expected), "missing {expected:?} in:\n{toml}");
    }
    assert!(
        !toml.contains("\nhandles ="),
        "the launcher maps /*:\n{toml}"
    );
    let (ok, stdout, stderr) = check_config(&toml);
    assert!(ok, "{stderr}\n{toml}");
    assert!(stdout.contains("launcher \"django\""), "{stdout}");
}

#[test]
fn malformed_or_missing_file_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.config");
    std::fs::write(
        &web,
        "<configuration>\n  <system.webServer>\n    <handlers>\n  </system.webServer>\n</configuration>\n",
    )
    .unwrap();
    let out = import(&[&web]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4: invalid XML", web.display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let missing = dir.path().join("applicationHost.config");
    let out = import(&[&iis_fixture("php", "web.config"), &missing]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: cannot read the file", missing.display())),
        "{stderr}"
    );
}

/// A wfastcgi site whose PYTHONPATH is a Windows folder runs from the
/// folder of fastgate.toml once the project is put there, as documented.
#[test]
fn imported_wfastcgi_site_serves_from_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.config");
    std::fs::write(
        &web,
        r#"<configuration>
  <system.webServer><handlers>
    <add name="Python FastCGI" path="*" verb="*" modules="FastCgiModule" scriptProcessor="C:\Python311\python.exe|C:\Python311\Lib\site-packages\wfastcgi.py" resourceType="Unspecified" />
  </handlers></system.webServer>
  <appSettings>
    <add key="WSGI_HANDLER" value="hello_wsgi.application" />
    <add key="PYTHONPATH" value="C:\inetpub\wwwroot\hello" />
  </appSettings>
</configuration>"#,
    )
    .unwrap();
    let toml = imported(&[&web]);
    let toml = toml.replacen("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n", 1);
    let gw = Gateway::start_with(&toml, |site| {
        std::fs::copy(
            fixtures().join("wsgi/hello_wsgi.py"),
            site.join("hello_wsgi.py"),
        )
        .unwrap();
    });
    let r = gw.get("/any/path");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert!(r.text().contains("hello from wsgi"), "{}", r.text());
}
