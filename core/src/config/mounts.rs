//! Where things live in the URL space: each app's mount, and the static
//! folders, checked against the apps as they will run.
//!
//! The file alone cannot settle these: a launcher may propose an app's
//! `handles`, its `resource_type` and static folders after the file is
//! read. So the checks here run on the resolved apps (at start and in
//! `fastgate check`), and conversion runs the same mount check early, with
//! the line, where the file alone decides. This module reads no file and
//! sees no request.

use std::path::PathBuf;

use super::parse::parse_static_url;
use super::{
    AppKey, AppSettings, Config, ConfigError, HandlerPattern, ResourceType, StaticSettings,
};

/// A static folder as it will be served: a `[[static]]` table, a
/// launcher's proposal (Django's `static_url`), or a launcher's folder
/// with the headers a `[[static]]` table of the same `url` adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticFolder {
    /// The URL prefix, ending in `/`.
    pub url: String,
    /// The folder its files come from.
    pub dir: PathBuf,
    /// `Cache-Control` for its files (only ever from the file).
    pub cache_control: Option<String>,
    /// A `[[static]]` table names this URL.
    pub in_file: bool,
    /// The app whose launcher proposed this URL, and that launcher.
    pub proposed_by: Option<(String, String)>,
}

/// A mount as the file writes it: `/` for the site root.
pub(crate) fn mount_text(mount: &str) -> &str {
    if mount.is_empty() { "/" } else { mount }
}

/// Is the URL path `path` the mount itself or below it?
fn under(mount: &str, path: &str) -> bool {
    mount.is_empty()
        || path
            .strip_prefix(mount)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Why `handles` cannot be served at `mount`, if they cannot: a pattern
/// outside the mount, or a file script that would be the root folder.
pub(super) fn mount_problem(
    mount: &str,
    handles: &[HandlerPattern],
    resource_type: ResourceType,
) -> Option<String> {
    outside_mount(mount, handles).or_else(|| file_at_root(mount, handles, resource_type))
}

/// A `/prefix/*` or `/exact` pattern gives the app `SCRIPT_NAME` = the
/// mount and `PATH_INFO` = the rest, so it must lie under the mount.
/// `*.ext` and `*` are name patterns, like IIS's `path`: they name their
/// own script and are not concerned.
pub(super) fn outside_mount(mount: &str, handles: &[HandlerPattern]) -> Option<String> {
    let shown = mount_text(mount);
    handles.iter().find_map(|pattern| match pattern {
        HandlerPattern::Prefix(p) | HandlerPattern::Exact(p) if !under(mount, p) => Some(format!(
            "handles \"{pattern}\" is not under mount \"{shown}\": SCRIPT_NAME is the mount and PATH_INFO the rest of the path, so every \"/prefix/*\" and \"/exact\" pattern must lie under it (set mount to their common prefix, or \"/\" for the site root)"
        )),
        _ => None,
    })
}

/// The script of a `/prefix/*` or `/exact` pattern is `root` + mount: at
/// the site root that is the root folder, which `resource_type = "file"`
/// can never accept (every request would be a 404).
pub(super) fn file_at_root(
    mount: &str,
    handles: &[HandlerPattern],
    resource_type: ResourceType,
) -> Option<String> {
    if !mount.is_empty() || resource_type != ResourceType::File {
        return None;
    }
    let (pattern, fixed) = handles.iter().find_map(|p| match p {
        HandlerPattern::Prefix(fixed) | HandlerPattern::Exact(fixed) => Some((p, fixed.as_str())),
        HandlerPattern::Any | HandlerPattern::Extension(_) => None,
    })?;
    let suggestion = if fixed.is_empty() || fixed == "/" {
        "/app"
    } else {
        fixed
    };
    Some(format!(
        "handles \"{pattern}\" with resource_type = \"file\" at the site root (the default mount) would take the root folder for the script and answer 404 to every request: set mount = \"{suggestion}\" (the script is then root + mount), or resource_type = \"unspecified\" for an app that routes itself"
    ))
}

/// What is wrong with the apps' mounts and the static folders once the
/// launchers have proposed their settings (`apps` as resolved; `config`
/// for its `[[static]]` tables and its file): one error each, naming the key.
pub fn check_mappings(config: &Config, apps: &[AppSettings]) -> Vec<ConfigError> {
    let error = |key: String, message: String| ConfigError {
        file: config.source.clone(),
        line: None,
        column: None,
        key: Some(key),
        message,
    };
    let mut problems = Vec::new();
    for app in apps {
        if let Some(problem) = mount_problem(&app.mount, &app.handles, app.resource_type) {
            problems.push(error(
                format!("app \"{}\": mount", app.name),
                format!(
                    "{problem} [handles: {}, resource_type: {}]",
                    app.origins.origin(AppKey::Handles),
                    app.origins.origin(AppKey::ResourceType)
                ),
            ));
        }
    }
    let statics = &config.static_folders;
    for s in statics.iter().filter(|s| s.dir.is_none()) {
        if !proposals(apps).any(|(url, _, _)| url == s.url) {
            problems.push(error(
                format!("static \"{}\": dir", s.url),
                format!(
                    "missing; a [[static]] table may leave out its folder only to add cache_control to the folder a launcher proposes at the same url, and no launcher proposes {:?}",
                    s.url
                ),
            ));
        }
    }
    let mut seen: Vec<(&str, &PathBuf, &AppSettings)> = Vec::new();
    for (url, dir, app) in proposals(apps) {
        // A launcher's URL is held to what a [[static]] table may say: not
        // "/" (the whole site, which would hide every app).
        if let Err(message) = parse_static_url(url).and_then(|u| {
            (u == url)
                .then_some(())
                .ok_or_else(|| format!("{url:?} must end with '/'"))
        }) {
            problems.push(error(
                format!("static \"{url}\""),
                format!(
                    "proposed by the launcher of app \"{}\": {message}",
                    app.name
                ),
            ));
            continue;
        }
        if statics.iter().any(|s| s.url == url) {
            continue;
        }
        match seen.iter().find(|(u, _, _)| *u == url) {
            Some((_, first_dir, first)) if *first_dir != dir => problems.push(error(
                format!("static \"{url}\""),
                format!(
                    "proposed by the launchers of apps \"{}\" and \"{}\" with different folders: add a [[static]] table with url = \"{url}\" and the dir to serve",
                    first.name, app.name
                ),
            )),
            Some(_) => {}
            None => seen.push((url, dir, app)),
        }
    }
    problems
}

/// Every static folder the gateway serves: the file's `[[static]]` tables
/// first (a table wins over a launcher's proposal of the same `url`, and
/// takes its folder when it names none), then the launchers' proposals.
/// Tables left without a folder are skipped ([`check_mappings`] reports them).
pub fn static_folders(statics: &[StaticSettings], apps: &[AppSettings]) -> Vec<StaticFolder> {
    let mut folders: Vec<StaticFolder> = Vec::new();
    for s in statics {
        let proposal = proposals(apps).find(|(url, _, _)| *url == s.url);
        let Some(dir) = s
            .dir
            .clone()
            .or_else(|| proposal.map(|(_, d, _)| d.clone()))
        else {
            continue;
        };
        folders.push(StaticFolder {
            url: s.url.clone(),
            dir,
            cache_control: s.cache_control.clone(),
            in_file: true,
            proposed_by: proposal.map(|(_, _, app)| proposer(app)),
        });
    }
    for (url, dir, app) in proposals(apps) {
        if folders.iter().any(|f| f.url == url) {
            continue;
        }
        folders.push(StaticFolder {
            url: url.to_string(),
            dir: dir.clone(),
            cache_control: None,
            in_file: false,
            proposed_by: Some(proposer(app)),
        });
    }
    folders
}

/// Every launcher's proposed folder: (url, folder, app), in app order.
fn proposals(apps: &[AppSettings]) -> impl Iterator<Item = (&str, &PathBuf, &AppSettings)> {
    apps.iter().flat_map(|app| {
        app.static_dirs
            .iter()
            .map(move |(url, dir)| (url.as_str(), dir, app))
    })
}

/// (app name, launcher name) of a proposal.
fn proposer(app: &AppSettings) -> (String, String) {
    let launcher = app.launcher.as_ref().map_or("", |l| l.plugin.as_str());
    (app.name.clone(), launcher.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::parse_pattern;
    use crate::config::test_support::load;

    fn patterns(list: &[&str]) -> Vec<HandlerPattern> {
        list.iter().map(|p| parse_pattern(p).unwrap()).collect()
    }

    #[test]
    fn patterns_must_lie_under_the_mount() {
        let ok = |mount: &str, list: &[&str], rt| mount_problem(mount, &patterns(list), rt);
        let u = ResourceType::Unspecified;
        assert_eq!(ok("", &["/admin/*", "/static/*"], u), None);
        assert_eq!(ok("/trac", &["/trac/*", "/trac", "/trac/x"], u), None);
        assert_eq!(ok("/trac", &["*.php"], ResourceType::File), None);
        assert!(
            ok("/trac", &["/tracker/*"], u)
                .unwrap()
                .contains("not under mount")
        );
        assert!(ok("/trac", &["/*"], u).unwrap().contains("\"/*\""));
        assert!(ok("/trac", &["/other"], u).is_some());
        // Name patterns name their script: the mount is not theirs.
        assert_eq!(ok("/trac", &["*", "*.cgi"], ResourceType::File), None);
        assert_eq!(ok("", &["*"], ResourceType::File), None);
    }

    #[test]
    fn a_file_script_cannot_be_the_site_root() {
        let problem = mount_problem("", &patterns(&["/git/*"]), ResourceType::File).unwrap();
        assert!(problem.contains("set mount = \"/git\""), "{problem}");
        assert!(mount_problem("/git", &patterns(&["/git/*"]), ResourceType::File).is_none());
        assert!(mount_problem("", &patterns(&["/git/*"]), ResourceType::Either).is_none());
        assert!(mount_problem("", &patterns(&["*.php"]), ResourceType::File).is_none());
    }

    fn with_proposal(url: &str, dir: &str) -> AppSettings {
        let mut app = load("[[app]]\nname = \"site\"\nlauncher = \"django\"\n")
            .unwrap()
            .apps
            .remove(0);
        app.static_dirs = vec![(url.to_string(), PathBuf::from(dir))];
        app
    }

    /// An empty config file with these `[[static]]` tables.
    fn config(statics: &[StaticSettings]) -> Config {
        let mut config = load("").unwrap();
        config.static_folders = statics.to_vec();
        config
    }

    fn table(url: &str, dir: Option<&str>, cache: Option<&str>) -> StaticSettings {
        StaticSettings {
            url: url.into(),
            dir: dir.map(PathBuf::from),
            cache_control: cache.map(String::from),
        }
    }

    #[test]
    fn the_file_adds_headers_to_a_launchers_folder_or_replaces_it() {
        let apps = [with_proposal("/static/", "/srv/static")];
        let folders = static_folders(&[table("/static/", None, Some("max-age=60"))], &apps);
        assert_eq!(
            folders,
            [StaticFolder {
                url: "/static/".into(),
                dir: "/srv/static".into(),
                cache_control: Some("max-age=60".into()),
                in_file: true,
                proposed_by: Some(("site".into(), "django".into())),
            }]
        );
        let folders = static_folders(&[table("/static/", Some("/elsewhere"), None)], &apps);
        assert_eq!(folders.len(), 1);
        assert_eq!(folders[0].dir, PathBuf::from("/elsewhere"));
        let folders = static_folders(&[table("/media/", Some("/srv/media"), None)], &apps);
        let urls: Vec<&str> = folders.iter().map(|f| f.url.as_str()).collect();
        assert_eq!(urls, ["/media/", "/static/"]);
        assert!(!folders[1].in_file);
        assert!(check_mappings(&config(&[table("/static/", None, None)]), &apps).is_empty());
    }

    #[test]
    fn a_table_without_a_folder_needs_a_launchers_proposal() {
        let problems = check_mappings(&config(&[table("/media/", None, Some("max-age=1"))]), &[]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key.as_deref(), Some("static \"/media/\": dir"));
        assert!(
            problems[0]
                .to_string()
                .starts_with("/etc/fg/fastgate.toml: static \"/media/\": dir: missing;"),
            "{}",
            problems[0]
        );
        assert!(static_folders(&[table("/media/", None, None)], &[]).is_empty());
    }

    #[test]
    fn a_launcher_may_not_take_the_whole_site() {
        let problems = check_mappings(&config(&[]), &[with_proposal("/", "/srv")]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .message
                .starts_with("proposed by the launcher of app \"site\": \"/\" is the whole site"),
            "{problems:?}"
        );
    }

    #[test]
    fn two_launchers_at_one_url_need_the_file_to_choose() {
        let a = with_proposal("/static/", "/a");
        let mut b = with_proposal("/static/", "/b");
        b.name = "other".into();
        let problems = check_mappings(&config(&[]), &[a.clone(), b.clone()]);
        assert!(
            problems[0].message.contains("apps \"site\" and \"other\""),
            "{problems:?}"
        );
        assert!(
            check_mappings(&config(&[table("/static/", Some("/c"), None)]), &[a, b]).is_empty()
        );
    }

    #[test]
    fn a_launchers_handles_are_checked_against_the_files_mount() {
        let mut app = load("[[app]]\nname = \"site\"\nlauncher = \"django\"\nmount = \"/trac\"\n")
            .unwrap()
            .apps
            .remove(0);
        // What the django launcher proposes.
        app.handles = patterns(&["/*"]);
        app.resource_type = ResourceType::Unspecified;
        app.origins.set_by_launcher(AppKey::Handles, "django");
        let problems = check_mappings(&config(&[]), &[app]);
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(
            text.contains("app \"site\": mount: handles \"/*\" is not under mount \"/trac\""),
            "{text}"
        );
        assert!(text.contains("handles: launcher \"django\""), "{text}");
    }
}
