//! The Python launcher (`launcher = "django"`) and its WSGI-to-FastCGI
//! bridge, with a plain WSGI app (tests/fixtures/wsgi) and python3.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

fn wsgi_dir() -> String {
    fixtures()
        .join("wsgi")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// A site whose one app is a WSGI app started by the django launcher.
fn wsgi_config(app_extra: &str, options: &str) -> String {
    launcher_site(
        "py",
        "django",
        &format!("max_instances = 1\n{app_extra}"),
        options,
    )
}

#[test]
fn a_wsgi_app_runs_through_the_bridge() {
    let marker = tempfile::NamedTempFile::new().unwrap();
    give_to_apps(marker.path());
    // stderr_mode as the file sets it: the launcher proposes
    // ignore-and-return-200 (plugin_contract.rs tests that one).
    let config = wsgi_config(
        &format!(
            "stderr_mode = \"return-stderr-in-500\"\n[app.env]\nFASTGATE_WSGI_VALIDATE = \"1\"\nCLOSE_MARKER = {:?}\n",
            marker.path().display().to_string()
        ),
        &format!(
            "wsgi_handler = \"hello_wsgi.application\"\npython_path = {:?}\nstatic_url = \"/static/\"\nstatic_root = {:?}",
            wsgi_dir(),
            fixtures()
                .join("www")
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        ),
    );
    let gw = Gateway::start(&config);
    // The environ, under wsgiref.validate (which raises on any violation).
    let r = request(
        gw.addr(),
        "POST",
        "/env?x=1",
        &[("Content-Type", "text/plain"), ("X-Test", "yes")],
        b"the body",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    let env = r.json();
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["PATH_INFO"], "/env");
    assert_eq!(env["QUERY_STRING"], "x=1");
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(env["CONTENT_LENGTH"], "8");
    assert_eq!(env["HTTP_X_TEST"], "yes");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["body"], "the body");
    // A streamed iterable, and its close() was called.
    let r = gw.get("/stream");
    assert_eq!(r.text(), "one two three\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(marker.path()).unwrap() != "closed\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "close() was not called"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A Python exception: its traceback goes to FCGI_STDERR, so
    // return-stderr-in-500 gives a 500 with the text (escaped) and the log
    // has it.
    let r = gw.get("/error");
    assert_eq!(r.status, 500);
    assert!(
        r.text().contains("ValueError: boom from the app &lt;b&gt;"),
        "{}",
        r.text()
    );
    assert!(gw.wait_for_log("Traceback (most recent call last)", Duration::from_secs(5)));
    // Static files under static_url come from static_root, not the app.
    let r = gw.get("/static/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        std::fs::read(fixtures().join("www/style.css")).unwrap()
    );
    assert_eq!(gw.get("/static/missing.css").status, 404);
    // One process served it all, one request at a time.
    let pids: Vec<_> = gw
        .children()
        .into_iter()
        .filter(|c| c.1.starts_with("python"))
        .collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    gw.assert_no_zombies();
}

#[test]
fn the_old_environment_variables_work_as_written() {
    let dir = wsgi_dir();
    for (handler, expect) in [
        ("hello_wsgi.App", "hello from a class instance"),
        ("hello_wsgi.make_app()", "hello from wsgi pid="),
    ] {
        // No options at all: WSGI_HANDLER and PYTHON_PATH in [app.env], as
        // with wfastcgi under IIS.
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n[[app]]\nname = \"py\"\nlauncher = \"django\"\n[app.env]\nWSGI_HANDLER = {handler:?}\nPYTHON_PATH = {dir:?}\n"
        );
        let gw = Gateway::start(&config);
        let r = gw.get("/anything");
        assert_eq!(r.status, 200, "{handler}: {}\n{}", r.text(), gw.logs());
        assert!(r.text().starts_with(expect), "{handler}: {}", r.text());
    }
}

#[test]
fn an_app_that_cannot_be_imported_is_a_500_with_its_traceback_then_offline() {
    let config = wsgi_config(
        "rapid_fails_per_minute = 3\nmax_instances = 1",
        &format!(
            "wsgi_handler = \"broken_wsgi.application\"\npython_path = {:?}",
            wsgi_dir()
        ),
    )
    .replace("max_instances = 1\nrapid", "rapid");
    let gw = Gateway::start(&config);
    let r = gw.get("/");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        gw.wait_for_log("SyntaxError", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // Each bridge exits after answering; the third failure takes the app
    // offline: 503, and no more processes.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(gw.get("/").status);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}\n{}", gw.logs());
    // The bridge answers, then exits: a fourth process may be started while
    // the third one's exit is being reaped, never more.
    let started = gw.logs().matches("instance started").count();
    assert!(started <= 4, "{started} processes started:\n{}", gw.logs());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(gw.logs().matches("instance started").count(), started);
    gw.assert_no_zombies();
}

/// FastCGI record bytes.
fn record(rtype: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let mut out = vec![1, rtype];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
    out
}

/// The bridge started by hand on a socket of our own, as the gateway
/// starts it (the listening socket as fd 0): its folder, socket and process.
fn start_bridge() -> (tempfile::TempDir, std::path::PathBuf, std::process::Child) {
    let dir = tempfile::tempdir().unwrap();
    let bridge = dir.path().join("wsgi_bridge.py");
    std::fs::copy(
        fixtures().join("../../plugins/django/src/wsgi_bridge.py"),
        &bridge,
    )
    .unwrap();
    let socket = dir.path().join("s");
    let listener = UnixListener::bind(&socket).unwrap();
    let child = Command::new("python3")
        .arg(&bridge)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("WSGI_HANDLER", "hello_wsgi.application")
        .env("PYTHONPATH", wsgi_dir())
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)))
        .spawn()
        .unwrap();
    (dir, socket, child)
}

/// Waits (at most 5 s) for the bridge to exit, and checks it exited 0.
fn assert_exits_cleanly(child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn the_bridge_answers_get_values_and_finishes_a_request_on_sigterm() {
    let (_dir, socket, mut child) = start_bridge();
    let mut conn = UnixStream::connect(&socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // FCGI_GET_VALUES with the three standard names.
    let mut query = Vec::new();
    for name in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"] {
        query.extend_from_slice(&[name.len() as u8, 0]);
        query.extend_from_slice(name.as_bytes());
    }
    conn.write_all(&record(9, 0, &query)).unwrap();
    let mut head = [0u8; 8];
    conn.read_exact(&mut head).unwrap();
    assert_eq!(head[1], 10, "GET_VALUES_RESULT");
    let len = u16::from_be_bytes([head[4], head[5]]) as usize + head[6] as usize;
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).unwrap();
    // Name-value pairs with one-byte lengths (all short here).
    let body = &body[..u16::from_be_bytes([head[4], head[5]]) as usize];
    let mut values = std::collections::HashMap::new();
    let mut i = 0;
    while i < body.len() {
        let (n, v) = (body[i] as usize, body[i + 1] as usize);
        let name = String::from_utf8_lossy(&body[i + 2..i + 2 + n]).into_owned();
        let value = String::from_utf8_lossy(&body[i + 2 + n..i + 2 + n + v]).into_owned();
        values.insert(name, value);
        i += 2 + n + v;
    }
    assert_eq!(values["FCGI_MAX_CONNS"], "1");
    assert_eq!(values["FCGI_MAX_REQS"], "1");
    assert_eq!(values["FCGI_MPXS_CONNS"], "0");
    // SIGTERM during a request: the request finishes, then the bridge exits 0.
    let mut params = Vec::new();
    for (name, value) in [
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/slow"),
        ("SCRIPT_NAME", ""),
    ] {
        params.extend_from_slice(&[name.len() as u8, value.len() as u8]);
        params.extend_from_slice(name.as_bytes());
        params.extend_from_slice(value.as_bytes());
    }
    let mut req = record(1, 1, &[0, 1, 1, 0, 0, 0, 0, 0]); // BEGIN_REQUEST, responder, KEEP_CONN
    req.extend(record(4, 1, &params));
    req.extend(record(4, 1, b""));
    req.extend(record(5, 1, b""));
    conn.write_all(&req).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut stdout = Vec::new();
    loop {
        let mut head = [0u8; 8];
        conn.read_exact(&mut head).unwrap();
        let len = u16::from_be_bytes([head[4], head[5]]) as usize + head[6] as usize;
        let mut content = vec![0u8; len];
        conn.read_exact(&mut content).unwrap();
        match head[1] {
            6 => stdout.extend_from_slice(&content[..len - head[6] as usize]),
            3 => break, // END_REQUEST
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&stdout);
    assert!(
        text.contains("Status: 200 OK") && text.ends_with("slow done\n"),
        "{text}"
    );
    drop(conn);
    assert_exits_cleanly(&mut child);
}

#[test]
fn the_bridge_exits_on_sigterm_between_requests() {
    let (_dir, _socket, mut child) = start_bridge();
    std::thread::sleep(Duration::from_millis(300));
    // SIGTERM between requests: a clean exit.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_exits_cleanly(&mut child);
}

/// The `[[app]]` line of an app run from the Django virtualenv: it is made
/// from a Python under /root (pyenv), which the default app user of a root
/// gateway cannot run, so these apps say they run as root.
pub(crate) const VENV_USER: &str = "user = \"root\"\n";

/// The Django virtualenv tests/run.sh creates, or a loud failure.
pub(crate) fn django_venv() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/django-venv");
    let venv = venv.canonicalize().unwrap_or(venv);
    let ok = Command::new(venv.join("bin/python"))
        .args(["-c", "import django"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "Django is not installed in {}: run tests/run.sh (it creates that virtualenv)",
        venv.display()
    );
    venv
}

/// A fresh `startproject` site with the admin, a migrated sqlite database,
/// collected static files and a superuser.
pub(crate) fn django_site(venv: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(venv.join("bin/python"))
            .args(args)
            .current_dir(dir.path())
            .env("DJANGO_SUPERUSER_PASSWORD", "s3cret-Pass-42")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-m", "django", "startproject", "mysite", "."]);
    let settings = dir.path().join("mysite/settings.py");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text = text.replace("ALLOWED_HOSTS = []", "ALLOWED_HOSTS = ['127.0.0.1']");
    text.push_str("\nSTATIC_ROOT = BASE_DIR / 'static'\n");
    std::fs::write(&settings, text).unwrap();
    run(&["manage.py", "migrate", "--noinput"]);
    run(&["manage.py", "collectstatic", "--noinput"]);
    run(&[
        "manage.py",
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.invalid",
    ]);
    dir
}

/// The value of cookie `name` among the response's Set-Cookie headers.
fn cookie(r: &Response, name: &str) -> String {
    r.headers_all("set-cookie")
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie: {:?}", r.headers_all("set-cookie")))
        .to_string()
}

#[test]
fn django_admin_login_through_the_launcher() {
    let venv = django_venv();
    let site = django_site(&venv);
    let root = site.path().display().to_string();
    let config = wsgi_config(
        &format!("max_instances = 2\n{VENV_USER}"),
        &format!(
            "wsgi_handler = \"mysite.wsgi.application\"\ndjango_settings_module = \"mysite.settings\"\npython_path = {root:?}\nvirtualenv = {:?}\nstatic_url = \"/static/\"\nstatic_root = {:?}",
            venv.display().to_string(),
            format!("{root}/static")
        ),
    )
    .replace("max_instances = 1\nmax_instances = 2", "max_instances = 2");
    let gw = Gateway::start(&config);
    // The login page renders, with its CSS served by the gateway.
    let login = gw.get("/admin/login/?next=/admin/");
    assert_eq!(login.status, 200, "{}\n{}", login.text(), gw.logs());
    let page = login.text();
    assert!(page.contains("/static/admin/css/base.css"), "{page}");
    let css = gw.get("/static/admin/css/base.css");
    assert_eq!(css.status, 200);
    assert!(
        css.header("content-type")
            .unwrap_or("")
            .starts_with("text/css")
    );
    // POST the form with its CSRF token.
    let csrf_cookie = cookie(&login, "csrftoken");
    let token = page
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf token in the form");
    let body = format!(
        "csrfmiddlewaretoken={token}&username=admin&password=s3cret-Pass-42&next=%2Fadmin%2F"
    );
    let r = request(
        gw.addr(),
        "POST",
        "/admin/login/?next=/admin/",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("csrftoken={csrf_cookie}")),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 302, "{}\n{}", r.text(), gw.logs());
    assert_eq!(r.header("location"), Some("/admin/"));
    let session = cookie(&r, "sessionid");
    let r = request(
        gw.addr(),
        "GET",
        "/admin/",
        &[(
            "Cookie",
            &format!("csrftoken={csrf_cookie}; sessionid={session}"),
        )],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Site administration"), "{}", r.text());
    gw.assert_no_zombies();
}

#[test]
fn django_the_old_way_wsgihandler_class_and_environment_variables() {
    let venv = django_venv();
    let site = django_site(&venv);
    // The seed's table, as written: WSGI_HANDLER names the handler class,
    // DJANGO_SETTINGS_MODULE and PYTHON_PATH come from the environment.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n[[app]]\nname = \"site\"\nlauncher = \"django\"\ncommand = {:?}\n{VENV_USER}[app.env]\nWSGI_HANDLER = \"django.core.handlers.wsgi.WSGIHandler\"\nDJANGO_SETTINGS_MODULE = \"mysite.settings\"\nPYTHON_PATH = {:?}\n",
        venv.join("bin/python").display().to_string(),
        site.path().display().to_string()
    );
    let gw = Gateway::start(&config);
    let r = gw.get("/admin/login/");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert!(r.text().contains("csrfmiddlewaretoken"));
}

#[test]
fn a_django_site_with_a_syntax_error_is_a_500_with_its_traceback_then_offline() {
    let venv = django_venv();
    let site = django_site(&venv);
    let settings = site.path().join("mysite/settings.py");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str("\ndef broken(:\n");
    std::fs::write(&settings, text).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n[[app]]\nname = \"site\"\nlauncher = \"django\"\nmax_instances = 1\nrapid_fails_per_minute = 2\n{VENV_USER}[app.options]\nwsgi_handler = \"mysite.wsgi.application\"\ndjango_settings_module = \"mysite.settings\"\npython_path = {:?}\nvirtualenv = {:?}\n",
        site.path().display().to_string(),
        venv.display().to_string()
    );
    let gw = Gateway::start(&config);
    let r = gw.get("/admin/login/");
    assert_eq!(r.status, 500);
    assert!(
        gw.wait_for_log("SyntaxError: invalid syntax", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let mut last = 0;
    for _ in 0..6 {
        last = gw.get("/admin/login/").status;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last, 503, "{}", gw.logs());
    gw.assert_no_zombies();
}
