//! Handler mappings: which app, or the static file server, takes a request.
//!
//! IIS style: apps are tried in config order and the first whose `handles`
//! pattern matches the (decoded, normalised) path and whose `verbs` allow
//! the method takes it; `resource_type` then says whether the mapped script
//! must exist. What no app takes is a static file under `server.root` (with
//! index documents), or an app's `fallback` front controller, or 404.
//! Static folders (`[[static]]`, a launcher's `static_dirs`) come first:
//! under their URL prefix only their folder answers.
//!
//! Where a request goes and what the app is told are two things: the name
//! patterns `*.ext` and `*` name their script (`SCRIPT_NAME` up to the
//! script, the rest in `PATH_INFO`); for the URL patterns `/prefix/*` and
//! `/exact` the app lives at its `mount` (`SCRIPT_NAME` = the mount,
//! `PATH_INFO` = the rest of the path),
//! so `handles = ["/admin/*"]` on a Django app at the site root gives it
//! `PATH_INFO = /admin/login/`, as Django's own URLs expect.
//!
//! This module decides; it builds no response and reads no file contents
//! (only `metadata`). See `path.rs` for decoding and normalisation.

mod path;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{HeaderValue, Method};

pub use path::{PathError, normalize_path};

use crate::cgi::ScriptTarget;
use crate::config::{
    AppSettings, HandlerPattern, ResourceType, ServerSettings, StaticFolder, Verbs,
};

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A regular file under `server.root` or a static folder, for GET or
    /// HEAD, with the folder's `Cache-Control` if it has one.
    Static {
        file: PathBuf,
        cache_control: Option<HeaderValue>,
    },
    /// A directory asked for without its trailing `/`: 301 to `location`
    /// (the path as received plus `/`; the caller adds the query).
    AddSlash {
        location: String,
    },
    /// Run a script of the app named `app`.
    App {
        app: Arc<str>,
        target: ScriptTarget,
    },
    /// A file in the static folder at `url` that the `*.ext` pattern of
    /// `app` names: a script, so never sent as a file (its source), and
    /// not run either (scripts run from the app's root).
    ScriptInStaticFolder {
        app: Arc<str>,
        url: String,
    },
    /// A mapping matches the path but not the method. Never falls through
    /// to static files: a POST-only `*.php` must not leak source on GET.
    MethodNotAllowed {
        allow: Vec<Method>,
    },
    NotFound,
}

#[derive(Debug)]
struct Mapping {
    app: Arc<str>,
    handles: Vec<HandlerPattern>,
    /// `SCRIPT_NAME` for every pattern but `*.ext` (`""`: the site root).
    mount: String,
    verbs: Verbs,
    resource_type: ResourceType,
    fallback: Option<String>,
    root: PathBuf,
}

/// A URL prefix (ending in `/`) served from a folder.
#[derive(Debug)]
struct Folder {
    url: String,
    dir: PathBuf,
    cache_control: Option<HeaderValue>,
}

/// The handler mappings of a gateway, built once from the config.
#[derive(Debug)]
pub struct Router {
    /// Static folders, ahead of every mapping; the longest prefix first,
    /// so `/static/admin/` wins over `/static/`.
    folders: Vec<Folder>,
    mappings: Vec<Mapping>,
    root: PathBuf,
    index: Vec<String>,
}

/// What matching a path against the mappings found.
enum Matched {
    App(Arc<str>, ScriptTarget),
    NotFound,
    MethodNotAllowed(Vec<Method>),
    /// No mapping's pattern matches.
    None,
}

impl Router {
    /// The mappings of `apps` (as resolved with their launchers) and the
    /// static folders (`config::static_folders`).
    pub fn new(server: &ServerSettings, apps: &[AppSettings], folders: &[StaticFolder]) -> Router {
        let mut folders: Vec<Folder> = folders
            .iter()
            .map(|f| Folder {
                url: f.url.clone(),
                dir: f.dir.clone(),
                // Checked when the config was read.
                cache_control: f
                    .cache_control
                    .as_deref()
                    .and_then(|v| HeaderValue::from_str(v).ok()),
            })
            .collect();
        folders.sort_by_key(|f| std::cmp::Reverse(f.url.len()));
        Router {
            folders,
            mappings: apps
                .iter()
                .map(|a| Mapping {
                    app: Arc::from(a.name.as_str()),
                    handles: a.handles.clone(),
                    mount: a.mount.clone(),
                    verbs: a.verbs.clone(),
                    resource_type: a.resource_type,
                    fallback: a.fallback.clone(),
                    root: a.root.clone(),
                })
                .collect(),
            root: server.root.clone(),
            index: server.index.clone(),
        }
    }

    /// Routes a request. `raw_path` is the URI path as received.
    pub fn route(&self, method: &Method, raw_path: &str) -> Result<Route, PathError> {
        let path = normalize_path(raw_path)?;
        Ok(self.route_normalized(method, raw_path, &path))
    }

    /// [`route`](Self::route) for a caller that normalised `raw_path`
    /// already (`path`) and keeps it for the app: the hot path decodes a
    /// path once.
    pub fn route_normalized(&self, method: &Method, raw_path: &str, path: &str) -> Route {
        if let Some(route) = self.route_folder(method, path) {
            return route;
        }
        match self.match_apps(method, path) {
            Matched::App(app, target) => return Route::App { app, target },
            Matched::NotFound => return Route::NotFound,
            Matched::MethodNotAllowed(allow) => return Route::MethodNotAllowed { allow },
            Matched::None => {}
        }
        let on_disk = join(&self.root, path);
        match std::fs::metadata(&on_disk) {
            Ok(meta) if meta.is_dir() => {
                if !path.ends_with('/') {
                    return Route::AddSlash {
                        location: format!("{raw_path}/"),
                    };
                }
                for name in &self.index {
                    let candidate = format!("{path}{name}");
                    if join(&self.root, &candidate).is_file() {
                        return self.route_index(method, &candidate);
                    }
                }
                self.fallback(method).unwrap_or(Route::NotFound)
            }
            Ok(meta) if meta.is_file() => static_file(method, on_disk, None),
            _ => self.fallback(method).unwrap_or(Route::NotFound),
        }
    }

    /// A path under a static folder: its file or nothing (no index
    /// documents, no listings, no app). The normalised path has no `..`
    /// left, so the file is always inside the folder.
    fn route_folder(&self, method: &Method, path: &str) -> Option<Route> {
        let folder = self
            .folders
            .iter()
            .find(|f| path.starts_with(f.url.as_str()))?;
        let file = join(&folder.dir, &path[folder.url.len() - 1..]);
        if !file.is_file() {
            return Some(Route::NotFound);
        }
        if let Some(app) = self.script_app(path) {
            return Some(Route::ScriptInStaticFolder {
                app,
                url: folder.url.clone(),
            });
        }
        Some(static_file(method, file, folder.cache_control.clone()))
    }

    /// The first app whose `*.ext` pattern names `path` as a script.
    fn script_app(&self, path: &str) -> Option<Arc<str>> {
        self.mappings.iter().find_map(|m| {
            m.handles
                .iter()
                .any(|p| matches!(p, HandlerPattern::Extension(_)) && split(p, "", path).is_some())
                .then(|| m.app.clone())
        })
    }

    /// An index document found for a directory: mapped apps first, else static.
    fn route_index(&self, method: &Method, path: &str) -> Route {
        match self.match_apps(method, path) {
            Matched::App(app, target) => Route::App { app, target },
            Matched::NotFound => Route::NotFound,
            Matched::MethodNotAllowed(allow) => Route::MethodNotAllowed { allow },
            Matched::None => static_file(method, join(&self.root, path), None),
        }
    }

    fn match_apps(&self, method: &Method, path: &str) -> Matched {
        let mut refused: Vec<Method> = Vec::new();
        let mut pattern_matched = false;
        for mapping in &self.mappings {
            let Some((script_name, path_info)) = mapping
                .handles
                .iter()
                .find_map(|p| split(p, &mapping.mount, path))
            else {
                continue;
            };
            pattern_matched = true;
            if !mapping.verbs.allows(method) {
                if let Verbs::List(list) = &mapping.verbs {
                    for m in list {
                        if !refused.contains(m) {
                            refused.push(m.clone());
                        }
                    }
                }
                continue;
            }
            let script_filename = join(&mapping.root, script_name);
            let exists = match mapping.resource_type {
                ResourceType::Unspecified => true,
                ResourceType::File => script_filename.is_file(),
                ResourceType::Directory => script_filename.is_dir(),
                ResourceType::Either => script_filename.exists(),
            };
            if exists {
                return Matched::App(
                    mapping.app.clone(),
                    ScriptTarget {
                        script_name: script_name.to_string(),
                        path_info: path_info.to_string(),
                        script_filename,
                        document_root: mapping.root.clone(),
                        document_uri: path.to_string(),
                    },
                );
            }
            return match mapping.fallback_target(method) {
                Some(target) => Matched::App(mapping.app.clone(), target),
                None => Matched::NotFound,
            };
        }
        if pattern_matched && !refused.is_empty() {
            Matched::MethodNotAllowed(refused)
        } else {
            Matched::None
        }
    }

    /// The first app's front controller that takes this method.
    fn fallback(&self, method: &Method) -> Option<Route> {
        self.mappings.iter().find_map(|m| {
            m.fallback_target(method).map(|target| Route::App {
                app: m.app.clone(),
                target,
            })
        })
    }
}

/// A file found for a request: served for GET and HEAD, 405 otherwise.
fn static_file(method: &Method, file: PathBuf, cache_control: Option<HeaderValue>) -> Route {
    if method == Method::GET || method == Method::HEAD {
        Route::Static {
            file,
            cache_control,
        }
    } else {
        Route::MethodNotAllowed {
            allow: vec![Method::GET, Method::HEAD],
        }
    }
}

impl Mapping {
    fn fallback_target(&self, method: &Method) -> Option<ScriptTarget> {
        let fallback = self.fallback.as_ref()?;
        if !self.verbs.allows(method) {
            return None;
        }
        let script_filename = join(&self.root, fallback);
        if !script_filename.is_file() {
            return None;
        }
        Some(ScriptTarget {
            script_name: fallback.clone(),
            path_info: String::new(),
            script_filename,
            document_root: self.root.clone(),
            document_uri: fallback.clone(),
        })
    }
}

/// `root` + a normalised URL path (which cannot contain `..`).
fn join(root: &Path, url_path: &str) -> PathBuf {
    let relative = url_path.trim_start_matches('/');
    if relative.is_empty() {
        root.to_path_buf()
    } else {
        root.join(relative)
    }
}

/// Splits `path` into (SCRIPT_NAME, PATH_INFO) if `pattern` matches it:
/// at the script for the name patterns `*.ext` and `*`, at `mount` for the
/// URL patterns `/prefix/*` and `/exact`.
/// Plain byte comparison only (the CVE-2019-11043 lesson: no regex).
fn split<'p>(pattern: &HandlerPattern, mount: &str, path: &'p str) -> Option<(&'p str, &'p str)> {
    let matched = match pattern {
        HandlerPattern::Extension(ext) => return split_at_script(ext, path),
        // Any file, named by the whole path (IIS `path="*"`).
        HandlerPattern::Any => return Some((path, "")),
        HandlerPattern::Exact(p) => path == p,
        HandlerPattern::Prefix(p) => {
            path == p
                || (path.len() > p.len()
                    && path.starts_with(p.as_str())
                    && path.as_bytes()[p.len()] == b'/')
        }
    };
    if !matched {
        return None;
    }
    // The config checks that every such pattern lies under the mount; a
    // path outside it (which that check rules out) matches nothing.
    let rest = path.strip_prefix(mount)?;
    (rest.is_empty() || rest.starts_with('/')).then(|| path.split_at(mount.len()))
}

/// The first segment whose name ends in `.ext` (ASCII case-insensitive, so
/// `X.PHP` is never served as source) is the script.
fn split_at_script<'p>(ext: &str, path: &'p str) -> Option<(&'p str, &'p str)> {
    let mut start = 1;
    for segment in path[1..].split('/') {
        let end = start + segment.len();
        let suffix_len = ext.len() + 1;
        if segment.len() > suffix_len {
            let tail = &segment.as_bytes()[segment.len() - suffix_len..];
            if tail[0] == b'.' && tail[1..].eq_ignore_ascii_case(ext.as_bytes()) {
                return Some(path.split_at(end));
            }
        }
        start = end + 1;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{AccessLogTarget, Protocol};
    use std::time::Duration;

    fn server(root: &Path) -> ServerSettings {
        ServerSettings {
            listen: vec![],
            root: root.to_path_buf(),
            index: vec!["index.php".into(), "index.html".into()],
            max_body_size: 0,
            body_buffer_size: 0,
            max_response_header_size: 0,
            header_read_timeout: Duration::ZERO,
            head_limits: Default::default(),
            body_read_timeout: Duration::ZERO,
            shutdown_timeout: Duration::ZERO,
            send_timeout: Duration::from_secs(60),
            access_log: AccessLogTarget::Off,
            runtime_dir: None,
            runtime_dir_line: None,
            error_details: crate::config::ErrorDetails::Local,
            plugin_cache_dir: None,
            plugins: vec![],
            max_connections: None,
            static_file_io: crate::config::StaticFileIo::Inline,
            worker_threads: None,
        }
    }

    fn app(root: &Path, handles: Vec<HandlerPattern>) -> AppSettings {
        AppSettings {
            name: "php".into(),
            command: "php-cgi".into(),
            args: vec![],
            working_dir: None,
            root: root.to_path_buf(),
            mount: String::new(),
            handles,
            verbs: Verbs::Any,
            resource_type: ResourceType::File,
            fallback: None,
            max_instances: 1,
            max_instances_auto_ceiling: 8,
            min_instances: 0,
            instance_max_requests: 1,
            queue_length: 1,
            protocol: Protocol::Unix,
            env: Default::default(),
            inherit_env: vec![],
            params: vec![],
            signal_before_terminate: Duration::ZERO,
            request_timeout: Duration::from_secs(90),
            slow_request_timeout: None,
            instance_max_memory: None,
            activity_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            rapid_fails_per_minute: 10,
            stderr_mode: crate::config::StderrMode::ReturnStderrIn500,
            monitor_changes_to: vec![],
            response_buffer_limit: 0,
            response_buffering: true,
            response_memory_buffer: 256 * 1024,
            max_temp_file_size: 1 << 30,
            plugins: vec![],
            launcher: None,
            origins: Default::default(),
            runtime_files: vec![],
            runtime_dirs: vec![],
            static_dirs: vec![],
            cgi: None,
            command_line: None,
            run_as: Default::default(),
            rlimits: Default::default(),
        }
    }

    fn router_for(root: &Path, apps: &[AppSettings]) -> Router {
        Router::new(&server(root), apps, &[])
    }

    fn php() -> Vec<HandlerPattern> {
        vec![HandlerPattern::Extension("php".into())]
    }

    /// A site: index.php at the root, sub/info.php, sub/index.html,
    /// uploads/x.jpg, a.php.txt, X.PHP, static.css.
    fn site() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, body) in [
            ("index.php", "<?php"),
            ("sub/info.php", "<?php"),
            ("sub/index.html", "<p>"),
            ("uploads/x.jpg", "<?php echo 'PWNED';"),
            ("a.php.txt", "text"),
            ("X.PHP", "<?php"),
            ("static.css", "p{}"),
            ("front.php", "<?php"),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        std::fs::create_dir_all(root.join("empty")).unwrap();
        dir
    }

    fn app_route(route: Route) -> (Arc<str>, ScriptTarget) {
        match route {
            Route::App { app, target } => (app, target),
            other => panic!("expected an app route, got {other:?}"),
        }
    }

    #[test]
    fn extension_mapping_splits_path_info() {
        let dir = site();
        let router = router_for(dir.path(), &[app(dir.path(), php())]);
        let (app, t) = app_route(router.route(&Method::GET, "/sub/info.php/x/y").unwrap());
        assert_eq!(&*app, "php");
        assert_eq!(t.script_name, "/sub/info.php");
        assert_eq!(t.path_info, "/x/y");
        assert_eq!(t.script_filename, dir.path().join("sub/info.php"));
        assert_eq!(t.document_root, dir.path());
        assert_eq!(t.document_uri, "/sub/info.php/x/y");
        let (_, t) = app_route(router.route(&Method::GET, "/sub/info.php/").unwrap());
        assert_eq!(t.path_info, "/");
    }

    #[test]
    fn extension_is_case_insensitive_and_must_end_the_segment() {
        let dir = site();
        let router = router_for(dir.path(), &[app(dir.path(), php())]);
        let (_, t) = app_route(router.route(&Method::GET, "/X.PHP").unwrap());
        assert_eq!(t.script_name, "/X.PHP");
        assert_eq!(
            router.route(&Method::GET, "/a.php.txt").unwrap(),
            Route::Static {
                file: dir.path().join("a.php.txt"),
                cache_control: None
            }
        );
        // ".php" alone is not a script name.
        assert_eq!(
            router.route(&Method::GET, "/.php").unwrap(),
            Route::NotFound
        );
    }

    #[test]
    fn image_with_php_suffix_is_never_run() {
        let dir = site();
        let router = router_for(dir.path(), &[app(dir.path(), php())]);
        assert_eq!(
            router.route(&Method::GET, "/uploads/x.jpg/y.php").unwrap(),
            Route::NotFound
        );
        assert_eq!(
            router.route(&Method::GET, "/uploads/x.jpg").unwrap(),
            Route::Static {
                file: dir.path().join("uploads/x.jpg"),
                cache_control: None
            }
        );
    }

    fn pair(t: &ScriptTarget) -> (&str, &str) {
        (t.script_name.as_str(), t.path_info.as_str())
    }

    #[test]
    fn url_patterns_split_at_the_mount() {
        let dir = site();
        // The default mount, the site root: the app sees the whole path.
        let mut a = app(dir.path(), vec![HandlerPattern::Prefix("/app".into())]);
        a.resource_type = ResourceType::Unspecified;
        let router = router_for(dir.path(), std::slice::from_ref(&a));
        let (_, t) = app_route(router.route(&Method::GET, "/app/x/y").unwrap());
        assert_eq!(pair(&t), ("", "/app/x/y"));
        assert_eq!(t.script_filename, dir.path());
        assert_eq!(t.document_uri, "/app/x/y");
        assert!(!matches!(
            router.route(&Method::GET, "/apple").unwrap(),
            Route::App { .. }
        ));
        // Mounted at the prefix: SCRIPT_NAME is the mount.
        a.mount = "/app".into();
        let router = router_for(dir.path(), &[a]);
        let (_, t) = app_route(router.route(&Method::GET, "/app/x/y").unwrap());
        assert_eq!(pair(&t), ("/app", "/x/y"));
        assert_eq!(t.script_filename, dir.path().join("app"));
        let (_, t) = app_route(router.route(&Method::GET, "/app").unwrap());
        assert_eq!(pair(&t), ("/app", ""));
        let (_, t) = app_route(router.route(&Method::GET, "/app/").unwrap());
        assert_eq!(pair(&t), ("/app", "/"));

        let mut root_app = app(dir.path(), vec![HandlerPattern::Prefix(String::new())]);
        root_app.resource_type = ResourceType::Unspecified;
        let router = router_for(dir.path(), &[root_app]);
        let (_, t) = app_route(router.route(&Method::POST, "/any/where").unwrap());
        assert_eq!(pair(&t), ("", "/any/where"));

        let mut exact = app(dir.path(), vec![HandlerPattern::Exact("/status".into())]);
        exact.resource_type = ResourceType::Unspecified;
        exact.name = "exact".into();
        let mut any = app(dir.path(), vec![HandlerPattern::Any]);
        any.resource_type = ResourceType::Unspecified;
        any.name = "any".into();
        let router = router_for(dir.path(), &[exact, any]);
        let (app_name, t) = app_route(router.route(&Method::GET, "/status").unwrap());
        assert_eq!((&*app_name, pair(&t)), ("exact", ("", "/status")));
        // `*` names any file by its whole path, as before.
        let (app_name, t) = app_route(router.route(&Method::GET, "/status/x").unwrap());
        assert_eq!((&*app_name, pair(&t)), ("any", ("/status/x", "")));
    }

    #[test]
    fn extension_patterns_ignore_the_mount() {
        let dir = site();
        let mut a = app(
            dir.path(),
            vec![
                HandlerPattern::Prefix("/sub/api".into()),
                HandlerPattern::Extension("php".into()),
            ],
        );
        a.mount = "/sub".into();
        a.resource_type = ResourceType::Either;
        let router = router_for(dir.path(), &[a]);
        let (_, t) = app_route(router.route(&Method::GET, "/sub/info.php/x").unwrap());
        assert_eq!(pair(&t), ("/sub/info.php", "/x"));
        assert_eq!(t.script_filename, dir.path().join("sub/info.php"));
        let (_, t) = app_route(router.route(&Method::GET, "/sub/api/v1").unwrap());
        assert_eq!(pair(&t), ("/sub", "/api/v1"));
        assert_eq!(t.script_filename, dir.path().join("sub"));
    }

    #[test]
    fn a_path_outside_the_mount_matches_nothing() {
        // Refused by the config; the router still never panics on it.
        let dir = site();
        let mut a = app(dir.path(), vec![HandlerPattern::Prefix("/app".into())]);
        a.mount = "/elsewhere".into();
        a.resource_type = ResourceType::Unspecified;
        let router = router_for(dir.path(), &[a]);
        assert_eq!(
            router.route(&Method::GET, "/app/x").unwrap(),
            Route::NotFound
        );
    }

    fn folder(url: &str, dir: &Path, cache_control: Option<&str>) -> StaticFolder {
        StaticFolder {
            url: url.into(),
            dir: dir.to_path_buf(),
            cache_control: cache_control.map(String::from),
            in_file: true,
            proposed_by: None,
        }
    }

    #[test]
    fn static_folders_come_first_and_keep_to_their_folder() {
        let dir = site();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("img")).unwrap();
        std::fs::write(outside.path().join("img/a.png"), "png").unwrap();
        std::fs::write(outside.path().join("plugin.php"), "<?php").unwrap();
        let mut django = app(dir.path(), vec![HandlerPattern::Prefix(String::new())]);
        django.resource_type = ResourceType::Unspecified;
        django.name = "django".into();
        let apps = [app(dir.path(), php()), django];
        let folders = [
            folder("/media/", outside.path(), Some("max-age=60")),
            folder("/media/img/", dir.path(), None),
        ];
        let router = Router::new(&server(dir.path()), &apps, &folders);
        assert_eq!(
            router.route(&Method::HEAD, "/media/img/a.png").unwrap(),
            Route::NotFound,
            "the longest prefix wins: /media/img/ is the fixtures' root"
        );
        let router = Router::new(&server(dir.path()), &apps, &folders[..1]);
        assert_eq!(
            router.route(&Method::GET, "/media/img/a.png").unwrap(),
            Route::Static {
                file: outside.path().join("img/a.png"),
                cache_control: Some(HeaderValue::from_static("max-age=60")),
            }
        );
        // Missing files and folders are 404s, not the app's.
        for path in ["/media/nothing", "/media/img/", "/media/"] {
            assert_eq!(
                router.route(&Method::GET, path).unwrap(),
                Route::NotFound,
                "{path}"
            );
        }
        assert_eq!(
            router.route(&Method::POST, "/media/img/a.png").unwrap(),
            Route::MethodNotAllowed {
                allow: vec![Method::GET, Method::HEAD]
            }
        );
        // A script an app maps is never served as a file from a folder.
        assert_eq!(
            router.route(&Method::GET, "/media/plugin.php").unwrap(),
            Route::ScriptInStaticFolder {
                app: Arc::from("php"),
                url: "/media/".into()
            }
        );
        // `..` cannot leave the folder: it is resolved before the prefix is seen.
        assert!(matches!(
            router.route(&Method::GET, "/media/../index.php").unwrap(),
            Route::App { .. }
        ));
        assert_eq!(
            router.route(&Method::GET, "/media/../../etc/passwd"),
            Err(PathError::Traversal)
        );
        // Outside the prefix, the mapping as before.
        assert_eq!(
            &*app_route(router.route(&Method::GET, "/mediax").unwrap()).0,
            "django"
        );
    }

    #[test]
    fn first_match_wins() {
        let dir = site();
        let first = app(dir.path(), php());
        let mut second = app(dir.path(), vec![HandlerPattern::Any]);
        second.resource_type = ResourceType::Unspecified;
        second.name = "second".into();
        let router = router_for(dir.path(), &[first, second]);
        assert_eq!(
            &*app_route(router.route(&Method::GET, "/index.php").unwrap()).0,
            "php"
        );
        assert_eq!(
            &*app_route(router.route(&Method::GET, "/static.css").unwrap()).0,
            "second"
        );
    }

    #[test]
    fn verbs_give_405_never_static_source() {
        let dir = site();
        let mut post_only = app(dir.path(), php());
        post_only.verbs = Verbs::List(vec![Method::POST]);
        let router = router_for(dir.path(), &[post_only]);
        assert_eq!(
            router.route(&Method::GET, "/index.php").unwrap(),
            Route::MethodNotAllowed {
                allow: vec![Method::POST]
            }
        );
        assert!(matches!(
            router.route(&Method::POST, "/index.php").unwrap(),
            Route::App { .. }
        ));
        // A later app that takes the method wins.
        let mut post_only = app(dir.path(), php());
        post_only.verbs = Verbs::List(vec![Method::POST]);
        let mut get_app = app(dir.path(), php());
        get_app.name = "get".into();
        let router = router_for(dir.path(), &[post_only, get_app]);
        assert_eq!(
            &*app_route(router.route(&Method::GET, "/index.php").unwrap()).0,
            "get"
        );
    }

    #[test]
    fn resource_types_check_root_plus_mount() {
        let dir = site();
        let mut a = app(dir.path(), vec![HandlerPattern::Prefix("/sub".into())]);
        a.resource_type = ResourceType::Directory;
        a.mount = "/sub".into();
        let router = router_for(dir.path(), std::slice::from_ref(&a));
        assert!(matches!(
            router.route(&Method::GET, "/sub/x").unwrap(),
            Route::App { .. }
        ));
        a.handles = vec![HandlerPattern::Prefix("/nope".into())];
        a.mount = "/nope".into();
        let router = router_for(dir.path(), std::slice::from_ref(&a));
        assert_eq!(
            router.route(&Method::GET, "/nope/x").unwrap(),
            Route::NotFound
        );
        a.resource_type = ResourceType::Either;
        a.handles = vec![HandlerPattern::Exact("/static.css".into())];
        a.mount = "/static.css".into();
        let router = router_for(dir.path(), std::slice::from_ref(&a));
        assert!(matches!(
            router.route(&Method::GET, "/static.css").unwrap(),
            Route::App { .. }
        ));
        a.resource_type = ResourceType::File;
        a.handles = vec![HandlerPattern::Exact("/sub".into())];
        a.mount = "/sub".into();
        let router = router_for(dir.path(), std::slice::from_ref(&a));
        assert_eq!(router.route(&Method::GET, "/sub").unwrap(), Route::NotFound);
    }

    #[test]
    fn fallback_front_controller() {
        let dir = site();
        let mut a = app(dir.path(), php());
        a.fallback = Some("/front.php".into());
        let router = router_for(dir.path(), &[a]);
        // A missing script of the mapping.
        let (_, t) = app_route(router.route(&Method::GET, "/missing.php").unwrap());
        assert_eq!(t.script_name, "/front.php");
        assert_eq!(t.path_info, "");
        // An unmapped path with no file.
        let (_, t) = app_route(router.route(&Method::POST, "/any/path").unwrap());
        assert_eq!(t.script_filename, dir.path().join("front.php"));
        assert_eq!(t.document_uri, "/front.php");
        // Existing static files still win.
        assert!(matches!(
            router.route(&Method::GET, "/static.css").unwrap(),
            Route::Static { .. }
        ));
    }

    #[test]
    fn index_documents_and_directories() {
        let dir = site();
        let router = router_for(dir.path(), &[app(dir.path(), php())]);
        let (_, t) = app_route(router.route(&Method::GET, "/").unwrap());
        assert_eq!(t.script_name, "/index.php");
        assert_eq!(t.document_uri, "/index.php");
        assert_eq!(
            router.route(&Method::GET, "/sub/").unwrap(),
            Route::Static {
                file: dir.path().join("sub/index.html"),
                cache_control: None
            }
        );
        assert_eq!(
            router.route(&Method::GET, "/s%75b").unwrap(),
            Route::AddSlash {
                location: "/s%75b/".into()
            }
        );
        assert_eq!(
            router.route(&Method::GET, "/empty/").unwrap(),
            Route::NotFound
        );
    }

    #[test]
    fn static_files_only_for_get_and_head() {
        let dir = site();
        let router = router_for(dir.path(), &[]);
        assert!(matches!(
            router.route(&Method::HEAD, "/static.css").unwrap(),
            Route::Static { .. }
        ));
        assert_eq!(
            router.route(&Method::POST, "/static.css").unwrap(),
            Route::MethodNotAllowed {
                allow: vec![Method::GET, Method::HEAD]
            }
        );
        assert_eq!(
            router.route(&Method::GET, "/nothing").unwrap(),
            Route::NotFound
        );
    }

    #[test]
    fn bad_paths_are_errors() {
        let dir = site();
        let router = router_for(dir.path(), &[app(dir.path(), php())]);
        assert_eq!(
            router.route(&Method::GET, "/../etc/passwd"),
            Err(PathError::Traversal)
        );
        assert_eq!(
            router.route(&Method::GET, "/a%0a.php"),
            Err(PathError::ControlChar)
        );
    }
}
