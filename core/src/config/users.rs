//! Who an app's processes run as (`user`, `group`) and what the kernel
//! limits them to (`rlimit_*`): resolved once, when the file is read.
//!
//! A gateway that runs as root never starts an app as root unless the file
//! says `user = "root"`: an app without `user` runs as the unprivileged
//! default ([`default_user`]: `www-data`, else `nobody`), as nginx's and
//! Apache's workers do. A gateway that is not root cannot switch users, so
//! there `user` and `group` may only name its own. Whether the user can
//! reach the app's files ([`check_access`]) is checked once the launchers
//! have said what runs, by `fastgate check` and at start, from the modes
//! on disk: a pure decision ([`permits`]) over `stat` results. This module
//! does not switch users or set limits; the spawners do (`crate::isolate`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use super::{AppSettings, Config, ConfigError};

/// The users an app runs as by default when the gateway is root, in order
/// of preference: Debian's web user, then the traditional unprivileged one.
pub const DEFAULT_USERS: &[&str] = &["www-data", "nobody"];

/// Who an app's processes run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
    /// Where the choice came from.
    pub origin: RunAsOrigin,
    /// The line of the `user` key (else of the `[[app]]` table), for errors.
    pub line: Option<usize>,
}

/// Why an app runs as the user it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAsOrigin {
    /// `user` / `group` in the file.
    Configured,
    /// The gateway is root and the file names no user: [`default_user`].
    Default,
    /// The gateway is not root: its own user, nothing to switch.
    Gateway,
    /// The built-in quickstart, whose checkout the default user cannot
    /// read: the gateway's own user, with a warning.
    QuickstartFallback,
}

impl Default for RunAs {
    /// The gateway's own user (unit tests' hand-made settings).
    fn default() -> RunAs {
        RunAs::gateway()
    }
}

impl RunAs {
    /// The gateway's own effective user and group.
    pub fn gateway() -> RunAs {
        let (uid, gid) = (Uid::effective(), Gid::effective());
        RunAs {
            user: user_name(uid),
            uid: uid.as_raw(),
            group: group_name(gid),
            gid: gid.as_raw(),
            origin: RunAsOrigin::Gateway,
            line: None,
        }
    }

    /// The uid and gid the spawner must switch to, when they differ from
    /// the gateway's own (only possible, and only asked, as root).
    pub fn switch_to(&self) -> Option<(u32, u32)> {
        let own = (Uid::effective().as_raw(), Gid::effective().as_raw());
        ((self.uid, self.gid) != own).then_some((self.uid, self.gid))
    }

    /// `www-data:www-data (default)`, for `fastgate check` and the log.
    pub fn describe(&self) -> String {
        let how = match self.origin {
            RunAsOrigin::Configured => "",
            RunAsOrigin::Default => " (default for a gateway run as root)",
            RunAsOrigin::Gateway => " (the gateway's own user)",
            RunAsOrigin::QuickstartFallback => " (quickstart: the default user cannot read it)",
        };
        format!(
            "{}:{} (uid {}, gid {}){how}",
            self.user, self.group, self.uid, self.gid
        )
    }
}

/// Per-app resource limits, each applied as soft and hard limit before the
/// app's program runs. `None`: inherited from the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rlimits {
    /// `rlimit_nofile`: open files (RLIMIT_NOFILE).
    pub nofile: Option<u64>,
    /// `rlimit_as`: address space in bytes (RLIMIT_AS).
    pub address_space: Option<u64>,
    /// `rlimit_cpu`: CPU seconds (RLIMIT_CPU): SIGXCPU then, SIGKILL a
    /// second later.
    pub cpu_seconds: Option<u64>,
    /// `rlimit_nproc`: processes of the app's user (RLIMIT_NPROC).
    pub nproc: Option<u64>,
}

impl Rlimits {
    pub fn is_empty(&self) -> bool {
        *self == Rlimits::default()
    }

    /// `prlimit(1)` options for the set limits (`--nofile=N:N`...).
    pub fn prlimit_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut both = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                args.push(format!("--{name}={v}:{v}"));
            }
        };
        both("nofile", self.nofile);
        both("as", self.address_space);
        both("nproc", self.nproc);
        if let Some(cpu) = self.cpu_seconds {
            // The soft limit sends SIGXCPU; the hard one, a second later,
            // SIGKILL for a program that catches SIGXCPU.
            args.push(format!("--cpu={cpu}:{}", cpu.saturating_add(1)));
        }
        args
    }

    /// `nofile=1024 as=512MiB cpu=10s`, for `fastgate check`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.nofile {
            parts.push(format!("nofile={v}"));
        }
        if let Some(v) = self.address_space {
            parts.push(format!("as={v} bytes"));
        }
        if let Some(v) = self.cpu_seconds {
            parts.push(format!("cpu={v}s"));
        }
        if let Some(v) = self.nproc {
            parts.push(format!("nproc={v}"));
        }
        if parts.is_empty() {
            "none (inherited)".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// A user or group as the file gives it: a name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Name(String),
    Number(u32),
}

/// The default user of an app when the gateway runs as root: the first of
/// [`DEFAULT_USERS`] that exists.
pub fn default_user() -> Option<User> {
    DEFAULT_USERS
        .iter()
        .find_map(|name| User::from_name(name).ok().flatten())
}

/// Resolves `user` and `group` (either may be absent) for a gateway whose
/// effective uid is `euid`. Errors name the key (`Err((key, message))`).
pub fn resolve(
    user: Option<&Id>,
    group: Option<&Id>,
    euid: Uid,
) -> Result<RunAs, (&'static str, String)> {
    let as_root = euid.is_root();
    let found = match user {
        Some(id) => Some(lookup_user(id).map_err(|m| ("user", m))?),
        None if as_root => Some(default_user().ok_or((
            "user",
            format!(
                "none of the default users ({}) exists; set `user`",
                DEFAULT_USERS.join(", ")
            ),
        ))?),
        None => None,
    };
    let gateway = RunAs::gateway();
    let (user_name, uid, primary) = match &found {
        Some(u) => (u.name.clone(), u.uid.as_raw(), u.gid.as_raw()),
        None => (gateway.user.clone(), gateway.uid, gateway.gid),
    };
    let (group_name, gid) = match group {
        Some(id) => lookup_group(id).map_err(|m| ("group", m))?,
        None => (group_name(Gid::from_raw(primary)), primary),
    };
    if !as_root {
        if uid != gateway.uid {
            return Err((
                "user",
                format!(
                    "fastgate runs as {} (uid {}), not root: it cannot start apps as {user_name}; \
                     remove `user` or start fastgate as root",
                    gateway.user, gateway.uid
                ),
            ));
        }
        if gid != gateway.gid {
            return Err((
                "group",
                format!(
                    "fastgate runs with group {} (gid {}), not as root: it cannot start apps \
                     with group {group_name}; remove `group` or start fastgate as root",
                    gateway.group, gateway.gid
                ),
            ));
        }
    }
    let origin = match (user.is_some() || group.is_some(), as_root) {
        (true, _) => RunAsOrigin::Configured,
        (false, true) => RunAsOrigin::Default,
        (false, false) => RunAsOrigin::Gateway,
    };
    Ok(RunAs {
        user: user_name,
        uid,
        group: group_name,
        gid,
        origin,
        line: None,
    })
}

fn lookup_user(id: &Id) -> Result<User, String> {
    let found = match id {
        Id::Name(name) => User::from_name(name),
        Id::Number(uid) => User::from_uid(Uid::from_raw(*uid)),
    };
    match found {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(format!("no such user: {}", show(id))),
        Err(e) => Err(format!("cannot look up user {}: {e}", show(id))),
    }
}

/// A group by name, or by number (which need not have a name).
fn lookup_group(id: &Id) -> Result<(String, u32), String> {
    match id {
        Id::Name(name) => match Group::from_name(name) {
            Ok(Some(g)) => Ok((g.name, g.gid.as_raw())),
            Ok(None) => Err(format!("no such group: {name}")),
            Err(e) => Err(format!("cannot look up group {name}: {e}")),
        },
        Id::Number(gid) => Ok((group_name(Gid::from_raw(*gid)), *gid)),
    }
}

fn show(id: &Id) -> String {
    match id {
        Id::Name(name) => format!("\"{name}\""),
        Id::Number(n) => n.to_string(),
    }
}

fn user_name(uid: Uid) -> String {
    match User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: Gid) -> String {
    match Group::from_gid(gid) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// What a process needs of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Pass through a folder (x).
    Search,
    /// List and pass through a folder (r and x): an app's `root`.
    ReadDir,
    /// Run a program (x).
    Execute,
}

/// Whether a file of `mode` owned by `owner:owner_group` grants `bits`
/// (r=4, w=2, x=1) to a process of `uid` with group `gid`. Root may do
/// anything but execute a file without any x bit, as the kernel decides.
pub fn permits(mode: u32, owner: u32, owner_group: u32, uid: u32, gid: u32, bits: u32) -> bool {
    if uid == 0 {
        return bits & 1 == 0 || mode & 0o111 != 0;
    }
    let class = if uid == owner {
        (mode >> 6) & 7
    } else if gid == owner_group {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    class & bits == bits
}

/// The first path on the way to `path` (its folders, then itself) that
/// `run_as` cannot use as `need` says, with what is missing. Paths that do
/// not exist are left to the checks that report them.
pub fn first_denied(path: &Path, run_as: &RunAs, need: Need) -> Option<(PathBuf, &'static str)> {
    let mut steps: Vec<&Path> = path.ancestors().skip(1).collect();
    steps.reverse();
    for dir in steps {
        let meta = std::fs::metadata(dir).ok()?;
        if !permits(
            meta.mode(),
            meta.uid(),
            meta.gid(),
            run_as.uid,
            run_as.gid,
            1,
        ) {
            return Some((dir.to_path_buf(), "no search (x) permission"));
        }
    }
    let meta = std::fs::metadata(path).ok()?;
    let (bits, what) = match need {
        Need::Search => (1, "no search (x) permission"),
        Need::ReadDir => (5, "no read and search (r-x) permission"),
        Need::Execute => (1, "no execute (x) permission"),
    };
    (!permits(
        meta.mode(),
        meta.uid(),
        meta.gid(),
        run_as.uid,
        run_as.gid,
        bits,
    ))
    .then(|| (path.to_path_buf(), what))
}

/// The paths an app's processes must reach: its root, its working folder,
/// its program (when it is a path).
fn needed_paths(app: &AppSettings) -> Vec<(PathBuf, Need)> {
    let mut paths = vec![(app.root.clone(), Need::ReadDir)];
    if let Some(dir) = &app.working_dir {
        paths.push((dir.clone(), Need::Search));
    }
    // A bare name is checked where PATH finds it (a root user's
    // `~/.pyenv/shims/python3` is out of another user's reach).
    if let Some(program) = app
        .command_to_check()
        .and_then(|c| super::resolve_command(c).ok())
    {
        // A link (a virtualenv's `bin/python`) runs what it points at.
        if let Ok(target) = std::fs::canonicalize(&program)
            && target != program
        {
            paths.push((target, Need::Execute));
        }
        paths.push((program, Need::Execute));
    }
    paths
}

/// Why `app`'s user cannot run it, if it cannot: the first path it cannot
/// reach.
pub fn access_problem(app: &AppSettings) -> Option<String> {
    if app.run_as.uid == 0 {
        return None;
    }
    needed_paths(app).iter().find_map(|(path, need)| {
        let (denied, what) = first_denied(path, &app.run_as, *need)?;
        let reason = if denied == *path {
            String::new()
        } else {
            format!(" (on the way to {})", path.display())
        };
        Some(format!(
            "{} cannot use {}: {what}{reason}; make it readable by that user, \
             or set `user` to one who can read it (user = \"root\" runs the app as root)",
            app.run_as.describe(),
            denied.display(),
        ))
    })
}

/// [`access_problem`] for every app, as errors at each app's `user` line:
/// what `fastgate check` and the start refuse.
/// An app with `rlimit_*` also needs util-linux's `prlimit`, which sets
/// them in the app's process before its program runs.
pub fn check_access(config: &Config, apps: &[AppSettings]) -> Vec<ConfigError> {
    let error = |app: &AppSettings, key: &str, message| ConfigError {
        file: config.source.clone(),
        line: app.run_as.line,
        column: None,
        key: Some(format!("app \"{}\": {key}", app.name)),
        message,
    };
    let mut problems = Vec::new();
    for app in apps {
        if let Some(message) = access_problem(app) {
            problems.push(error(app, "user", message));
        }
        if !app.rlimits.is_empty()
            && let Err(e) = super::resolve_command(Path::new(PRLIMIT))
        {
            problems.push(error(
                app,
                "rlimit_*",
                format!("the limits are set with util-linux's `prlimit`: {e}"),
            ));
        }
    }
    problems
}

/// The program that applies `rlimit_*` (util-linux), looked up on PATH.
pub const PRLIMIT: &str = "prlimit";

/// The built-in quickstart only: an app left to the default user that
/// cannot read the checkout (a root user's clone under /root) runs as the
/// gateway's own user instead, with a warning. A config file never gets
/// this: there the start is refused ([`check_access`]).
pub fn quickstart_fallback(config: &mut Config) {
    for app in &mut config.apps {
        if app.run_as.origin != RunAsOrigin::Default {
            continue;
        }
        if let Some(problem) = access_problem(app) {
            let own = RunAs {
                origin: RunAsOrigin::QuickstartFallback,
                line: app.run_as.line,
                ..RunAs::gateway()
            };
            config.warnings.push(format!(
                "app \"{}\": {problem}. The built-in quickstart runs it as {} instead; \
                 a config file would be refused",
                app.name, own.user
            ));
            app.run_as = own;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permission_classes_are_exclusive() {
        // Owner bits decide for the owner, even when "other" would allow.
        assert!(!permits(0o077, 33, 33, 33, 33, 4));
        assert!(permits(0o700, 33, 0, 33, 33, 7));
        assert!(permits(0o750, 0, 33, 33, 33, 5));
        assert!(!permits(0o750, 0, 33, 65534, 65534, 1));
        assert!(permits(0o711, 0, 0, 65534, 65534, 1));
        assert!(!permits(0o711, 0, 0, 65534, 65534, 4));
        // Root reads anything, but runs only what has an x bit.
        assert!(permits(0o000, 33, 33, 0, 0, 4));
        assert!(!permits(0o644, 33, 33, 0, 0, 1));
        assert!(permits(0o744, 33, 33, 0, 0, 1));
    }

    #[test]
    fn a_0700_folder_stops_another_user() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir(&www).unwrap();
        let nobody = RunAs {
            user: "nobody".into(),
            uid: 65534,
            group: "nogroup".into(),
            gid: 65534,
            origin: RunAsOrigin::Default,
            line: None,
        };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let owner = std::fs::metadata(dir.path()).unwrap().uid();
        if owner != 65534 {
            let (denied, _) = first_denied(&www, &nobody, Need::ReadDir).unwrap();
            assert_eq!(denied, dir.path());
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&www, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(first_denied(&www, &nobody, Need::ReadDir), None);
        // A path that does not exist is not this check's to report.
        assert_eq!(
            first_denied(&www.join("nope"), &nobody, Need::ReadDir),
            None
        );
    }

    #[test]
    fn prlimit_options_set_soft_and_hard() {
        let limits = Rlimits {
            nofile: Some(64),
            address_space: Some(1 << 30),
            cpu_seconds: Some(5),
            nproc: None,
        };
        assert_eq!(
            limits.prlimit_args(),
            ["--nofile=64:64", "--as=1073741824:1073741824", "--cpu=5:6"]
        );
        assert!(Rlimits::default().prlimit_args().is_empty());
        assert_eq!(Rlimits::default().describe(), "none (inherited)");
    }

    #[test]
    fn unknown_users_and_groups_are_named() {
        let root = Uid::from_raw(0);
        let e = resolve(Some(&Id::Name("no-such-user-x".into())), None, root).unwrap_err();
        assert_eq!(e.0, "user");
        assert!(e.1.contains("no such user: \"no-such-user-x\""), "{}", e.1);
        let e = resolve(None, Some(&Id::Name("no-such-group-x".into())), root).unwrap_err();
        assert_eq!(e.0, "group");
        let r = resolve(Some(&Id::Number(0)), None, root).unwrap();
        assert_eq!((r.uid, r.gid, r.origin), (0, 0, RunAsOrigin::Configured));
    }

    #[test]
    fn only_the_quickstart_falls_back_to_the_gateways_user() {
        use std::os::unix::fs::PermissionsExt;
        if !Uid::effective().is_root() {
            return;
        }
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let www = home.path().join("www");
        std::fs::create_dir(&www).unwrap();
        let text = format!(
            "[[app]]\nname = \"php\"\ncommand = \"sh\"\nhandles = [\"*.php\"]\nroot = {:?}\n",
            www.display().to_string()
        );
        let mut config = crate::config::test_support::load(&text).unwrap();
        assert_eq!(config.apps[0].run_as.origin, RunAsOrigin::Default);
        let problems = check_access(&config, &config.apps);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key.as_deref(), Some("app \"php\": user"));
        assert_eq!(problems[0].line, Some(1));
        quickstart_fallback(&mut config);
        let app = &config.apps[0];
        assert_eq!(
            (app.run_as.uid, app.run_as.origin),
            (0, RunAsOrigin::QuickstartFallback)
        );
        assert!(check_access(&config, &config.apps).is_empty());
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("a config file would be refused")),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn root_defaults_to_an_unprivileged_user() {
        let r = resolve(None, None, Uid::from_raw(0)).unwrap();
        assert_ne!(r.uid, 0);
        assert!(DEFAULT_USERS.contains(&r.user.as_str()), "{r:?}");
        assert_eq!(r.origin, RunAsOrigin::Default);
    }
}
