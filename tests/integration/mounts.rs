//! Mounts (issue 13): which requests reach an app (`handles`) and where the
//! app lives (`mount`, IIS's application path, WSGI's `SCRIPT_NAME`) are two
//! settings. A prefix mapping at the default mount (the site root) gives the
//! app the whole path in `PATH_INFO`; `mount = "/trac"` gives it
//! `SCRIPT_NAME = /trac`. Real Django, the WSGI bridge, php-cgi and
//! git-http-backend (through the CGI runner).

use std::process::Command;
use std::time::Duration;

use crate::util::*;
use crate::wsgi::{django_site, django_venv};

fn wsgi_dir() -> String {
    fixtures()
        .join("wsgi")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn issue13_a_django_admin_mapped_by_prefix_is_django_at_the_site_root() {
    let venv = django_venv();
    let site = django_site(&venv);
    let root = site.path().display().to_string();
    // Only the admin and its static files: the rest of the site is not
    // Django's. Before, Django got SCRIPT_NAME=/admin, PATH_INFO=/login/
    // and answered its own 404 to /admin/login/.
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"

[[static]]
url = "/static/"
dir = "{root}/static"
cache_control = "public, max-age=3600"

[[app]]
name = "site"
launcher = "django"
handles = ["/admin/*"]
max_instances = 1
{user}
[app.options]
wsgi_handler = "mysite.wsgi.application"
django_settings_module = "mysite.settings"
python_path = {root:?}
virtualenv = {venv:?}
"#,
        venv = venv.display().to_string(),
        user = super::wsgi::VENV_USER,
    );
    let gw = Gateway::start(&config);
    let login = gw.get("/admin/login/?next=/admin/");
    assert_eq!(login.status, 200, "{}\n{}", login.text(), gw.logs());
    let page = login.text();
    assert!(page.contains("csrfmiddlewaretoken"), "{page}");
    assert!(page.contains("Django administration"), "{page}");
    // Django's own URLs work: /admin without its slash is Django's
    // APPEND_SLASH redirect, not a gateway 404.
    let r = gw.get("/admin");
    assert_eq!(r.status, 301, "{}", r.text());
    assert_eq!(r.header("location"), Some("/admin/"));
    // Its CSS comes from the static folder, with the folder's header.
    assert!(page.contains("/static/admin/css/base.css"), "{page}");
    let css = gw.get("/static/admin/css/base.css");
    assert_eq!(css.status, 200);
    assert!(
        css.header("content-type")
            .unwrap_or("")
            .starts_with("text/css")
    );
    assert_eq!(css.header("cache-control"), Some("public, max-age=3600"));
    // Anything else is not mapped to Django at all.
    let r = gw.get("/elsewhere/");
    assert_eq!(r.status, 404);
    assert!(r.text().starts_with("404 Not Found"), "{}", r.text());
    gw.assert_no_zombies();
}

/// Two WSGI apps under the django launcher: one mounted at `/trac`, one
/// mapped by an exact path at the default mount.
fn two_wsgi_apps() -> String {
    let dir = wsgi_dir();
    format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"

[[app]]
name = "trac"
launcher = "django"
handles = ["/trac/*"]
mount = "/trac"
max_instances = 1
[app.options]
wsgi_handler = "hello_wsgi.application"
python_path = {dir:?}

[[app]]
name = "root"
launcher = "django"
handles = ["/env"]
max_instances = 1
[app.options]
wsgi_handler = "hello_wsgi.application"
python_path = {dir:?}
"#
    )
}

#[test]
fn issue13_a_wsgi_app_mounted_at_trac_gets_script_name_and_path_info() {
    let config = two_wsgi_apps();
    let gw = Gateway::start(&config);
    let env = gw.get("/trac/env?x=1");
    assert_eq!(env.status, 200, "{}\n{}", env.text(), gw.logs());
    let env = env.json();
    assert_eq!(env["SCRIPT_NAME"], "/trac");
    assert_eq!(env["PATH_INFO"], "/env");
    assert_eq!(env["QUERY_STRING"], "x=1");
    // The default mount: the whole path is the app's (before, an exact
    // mapping gave SCRIPT_NAME=/env and PATH_INFO empty).
    let env = gw.get("/env").json();
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["PATH_INFO"], "/env");
    // `fastgate check` shows each app's mount and where it came from.
    let (ok, stdout, stderr) = check_config(&config);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("  mount                 /trac (file)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  mount                 / (default)\n"),
        "{stdout}"
    );
    gw.assert_no_zombies();
}

#[test]
fn issue13_a_mount_that_does_not_hold_the_handles_is_refused() {
    // In the file: the error names the line of `mount`.
    let config = two_wsgi_apps().replace("mount = \"/trac\"", "mount = \"/track\"");
    let line = config
        .lines()
        .position(|l| l == "mount = \"/track\"")
        .unwrap()
        + 1;
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("fastgate.toml:{line}:"))
            && stderr
                .contains("app \"trac\": mount: handles \"/trac/*\" is not under mount \"/track\""),
        "{stderr}"
    );
    for bad in ["\"/trac/\"", "\"trac\"", "\"/a/../trac\""] {
        let config = two_wsgi_apps().replace("mount = \"/trac\"", &format!("mount = {bad}"));
        let (ok, _, stderr) = check_config(&config);
        assert!(
            !ok && stderr.contains("app \"trac\": mount:"),
            "{bad}: {stderr}"
        );
    }
    // The launcher's own proposal (`/*`) does not fit under a mount either:
    // known only once the launcher has run, and said by check and serve.
    let config = two_wsgi_apps().replace("handles = [\"/trac/*\"]\n", "");
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("app \"trac\": mount: handles \"/*\" is not under mount \"/trac\"")
            && stderr.contains("handles: launcher \"django\""),
        "{stderr}"
    );
    let stderr = serve_must_fail(&config);
    assert!(
        stderr.contains("app \"trac\": mount: handles \"/*\""),
        "{stderr}"
    );
}

#[test]
fn issue13_php_with_a_prefix_mapping_at_the_default_mount() {
    // As in php::path_info_and_script_name_for_prefix_mappings, without
    // `mount`: php-cgi now sees the whole path in PATH_INFO.
    let config = crate::php::prefix_mapped_php("");
    let gw = Gateway::start(&config);
    let v = gw.get("/app/x/y?z=2").json();
    assert_eq!(v["SCRIPT_NAME"], "");
    assert_eq!(v["PATH_INFO"], "/app/x/y");
    assert_eq!(v["REQUEST_URI"], "/app/x/y?z=2");
    assert_eq!(v["GET"]["z"], "2");
    // Extension mappings keep naming their script, mount or not.
    let config = config.replace(
        "handles = [\"/app/*\"]",
        "handles = [\"/app/*\", \"*.php\"]\nmount = \"/app\"",
    );
    let gw = Gateway::start(&config);
    let v = gw.get("/app/x/y").json();
    assert_eq!(
        (&v["SCRIPT_NAME"], &v["PATH_INFO"]),
        (&"/app".into(), &"/x/y".into())
    );
    let v = gw.get("/sub/info.php/p").json();
    assert_eq!(v["SCRIPT_NAME"], "/sub/info.php", "{v}");
    assert_eq!(v["PATH_INFO"], "/p");
}

/// A bare repository `repo.git` with one commit, in `dir/repos`.
fn git_repos(dir: &std::path::Path) -> std::path::PathBuf {
    let git = |args: &[&str], cwd: &std::path::Path| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&["init", "-q"], &work);
    std::fs::write(work.join("README"), "served by git-http-backend\n").unwrap();
    git(&["add", "README"], &work);
    git(&["commit", "-q", "-m", "first"], &work);
    let repos = dir.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    git(&["clone", "-q", "--bare", "../work", "repo.git"], &repos);
    repos
}

const GIT_HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

fn git_config(mount: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"
[[app]]
name = "git"
launcher = "cgi"
handles = ["/git/*"]
{mount}inherit_env = ["PATH"]
[app.env]
GIT_PROJECT_ROOT = "repos"
GIT_HTTP_EXPORT_ALL = "1"
"#
    )
}

#[test]
fn issue13_git_http_backend_mounted_by_the_cgi_runner() {
    assert!(
        std::path::Path::new(GIT_HTTP_BACKEND).exists(),
        "git is not installed (apt-get install git)"
    );
    let config = git_config("mount = \"/git\"\n");
    let gw = Gateway::start_with(&config, |dir| {
        let repos = git_repos(dir);
        // git serves only repositories its user owns (safe.directory).
        give_to_apps(&repos);
        // The CGI script is root + mount: www/git is git-http-backend.
        std::os::unix::fs::symlink(GIT_HTTP_BACKEND, dir.join("www/git")).unwrap();
        // GIT_PROJECT_ROOT must be absolute for git.
        let text = std::fs::read_to_string(dir.join("fastgate.toml")).unwrap();
        let text = text.replace("\"repos\"", &format!("{:?}", repos.display().to_string()));
        std::fs::write(dir.join("fastgate.toml"), text).unwrap();
    });
    // SCRIPT_NAME=/git, PATH_INFO=/repo.git/info/refs: the repository.
    let r = gw.get("/git/repo.git/info/refs?service=git-upload-pack");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert_eq!(
        r.header("content-type"),
        Some("application/x-git-upload-pack-advertisement")
    );
    assert!(
        r.text().contains("# service=git-upload-pack"),
        "{}",
        r.text()
    );
    // A real clone over smart HTTP (GET then POST through the CGI runner).
    let into = tempfile::tempdir().unwrap();
    let out = Command::new("git")
        .args([
            "clone",
            "-q",
            &format!("http://{}/git/repo.git", gw.addr()),
            "copy",
        ])
        .current_dir(into.path())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.logs()
    );
    assert_eq!(
        std::fs::read_to_string(into.path().join("copy/README")).unwrap(),
        "served by git-http-backend\n"
    );
    assert!(
        gw.wait_for_access("\"GET /git/repo.git/info/refs", Duration::from_secs(5)),
        "{}",
        gw.access_log()
    );
    gw.assert_no_zombies();
}

#[test]
fn issue13_a_prefix_mapped_cgi_script_needs_its_mount() {
    // The cgi launcher proposes resource_type = "file": at the site root the
    // script would be the root folder. check and serve both say so.
    let config = git_config("");
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains("app \"git\": mount: handles \"/git/*\" with resource_type = \"file\"")
            && stderr.contains("set mount = \"/git\"")
            && stderr.contains("resource_type: launcher \"cgi\""),
        "{stderr}"
    );
    let stderr = serve_must_fail(&config);
    assert!(stderr.contains("set mount = \"/git\""), "{stderr}");
}
