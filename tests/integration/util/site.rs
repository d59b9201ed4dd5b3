//! A test's site: the fixtures, the temp dir they are copied to, the config
//! builders, and one-shot runs of the binary on a config (`fastgate check`,
//! a `fastgate serve` that must refuse it). A gateway that keeps running is
//! `gateway`'s.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::programs::php_cgi;

/// The folder with the PHP scripts and CGI scripts the tests use.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A temp dir with the fixtures copied to `www/` and `config` as
/// `fastgate.toml`.
pub fn site(config: &str) -> tempfile::TempDir {
    let dir = readable_tempdir();
    copy_dir(&fixtures().join("www"), &dir.path().join("www"));
    std::fs::write(dir.path().join("fastgate.toml"), config).expect("write config");
    dir
}

/// A temp dir others may read, as a site's folder is: tempfile makes
/// 0700 folders, which the unprivileged user a root gateway runs its apps
/// as by default could not enter (and the gateway would refuse to start).
pub fn readable_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    dir
}

/// Gives `path` (and everything under it) to the user a root gateway runs
/// apps as by default, as an administrator gives an app the folders it
/// writes to. Nothing to do when the tests do not run as root.
pub fn give_to_apps(path: &Path) {
    use nix::unistd::{Uid, User, chown};
    if !Uid::effective().is_root() {
        return;
    }
    let user = ["www-data", "nobody"]
        .iter()
        .find_map(|n| User::from_name(n).ok().flatten())
        .expect("www-data or nobody");
    chown(path, Some(user.uid), Some(user.gid)).expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir").flatten() {
            give_to_apps(&entry.path());
        }
    }
}

/// The gateway's PATH in tests: this machine's, without the folders that
/// other users cannot enter (a root user's `~/.pyenv/shims`). A root
/// gateway runs its apps as an unprivileged user, which could not run a
/// `python3` found there; a server's PATH holds system folders only.
pub fn app_path() -> String {
    use std::os::unix::fs::MetadataExt;
    let path = std::env::var("PATH").unwrap_or_default();
    let open = |dir: &Path| {
        dir.ancestors()
            .all(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0))
    };
    std::env::split_paths(&path)
        .filter(|dir| open(dir))
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Copies the folder `from` to `to`, with everything under it.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixtures") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture");
        }
    }
}

/// A config for a PHP app over `www/` (the fixtures), with extra lines
/// appended to the `[[app]]` table.
pub fn php_config(app_extra: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"

[[app]]
name = "php"
command = "{php}"
handles = ["*.php"]
{max_instances}{app_extra}
[app.env]
PHP_FCGI_CHILDREN = "0"
PHP_FCGI_MAX_REQUESTS = "10000"
"#,
        php = php_cgi(),
        max_instances = if app_extra.contains("max_instances") {
            ""
        } else {
            "max_instances = 2\n"
        },
    )
}

/// A site whose one app `name` is started by `launcher`: `app_lines` go
/// into its `[[app]]` table, `options` into `[app.options]`.
pub fn launcher_site(name: &str, launcher: &str, app_lines: &str, options: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"

[[app]]
name = "{name}"
launcher = "{launcher}"
{app_lines}
[app.options]
{options}
"#
    )
}

/// A config running the project's FastCGI test program
/// (tests/fixtures/fcgi_app.py, with `args`) for every path under `/py/`,
/// mounted there (the program reads its command from PATH_INFO).
pub fn test_app_config(args: &[&str], app_extra: &str) -> String {
    let script = fixtures()
        .join("fcgi_app.py")
        .canonicalize()
        .expect("fcgi_app.py");
    let mut all = vec![format!("{:?}", script.display().to_string())];
    all.extend(args.iter().map(|a| format!("{a:?}")));
    format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"
[[app]]
name = "py"
command = "python3"
args = [{}]
handles = ["/py/*"]
mount = "/py"
resource_type = "unspecified"
inherit_env = ["PATH"]
{app_extra}
"#,
        all.join(", ")
    )
}

/// `fastgate check` on a config in a temp dir with the fixtures.
pub fn check_config(config: &str) -> (bool, String, String) {
    let dir = site(config);
    let out = Command::new(env!("CARGO_BIN_EXE_fastgate"))
        .env("PATH", app_path())
        .arg("check")
        .arg(dir.path().join("fastgate.toml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `fastgate serve` on a config that must not start; returns stderr.
pub fn serve_must_fail(config: &str) -> String {
    let dir = readable_tempdir();
    std::fs::create_dir(dir.path().join("www")).expect("www");
    let path = dir.path().join("fastgate.toml");
    std::fs::write(&path, config).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastgate"))
        .env("PATH", app_path())
        .arg("serve")
        .arg(&path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start fastgate");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            panic!("fastgate started although it should have refused the config");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "fastgate exited 0:\n{stderr}");
    stderr
}
