//! Handler mappings: which app, or the static file server, takes a request.
//!
//! IIS style: apps are tried in config order and the first whose `handles`
//! pattern matches the (decoded, normalised) path and whose `verbs` allow
//! the method takes it; `resource_type` then says whether the mapped script
//! must exist. What no app takes is a static file under `server.root` (with
//! index documents), or an app's `fallback` front controller, or 404.
//!
//! This module decides; it builds no response and reads no file contents
//! (only `metadata`). See `path.rs` for decoding and normalisation.

mod path;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::Method;

pub use path::{PathError, normalize_path};

use crate::cgi::ScriptTarget;
use crate::config::{AppSettings, HandlerPattern, ResourceType, ServerSettings, Verbs};

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A regular file under `server.root`, for GET or HEAD.
    Static {
        file: PathBuf,
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
    verbs: Verbs,
    resource_type: ResourceType,
    fallback: Option<String>,
    root: PathBuf,
}

/// The handler mappings of a gateway, built once from the config.
#[derive(Debug)]
pub struct Router {
    /// URL prefix (ending in `/`) → folder served as static files, ahead of
    /// every mapping (a launcher's `static_dirs`, e.g. Django's STATIC_URL).
    mounts: Vec<(String, PathBuf)>,
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
    pub fn new(server: &ServerSettings, apps: &[AppSettings]) -> Router {
        Router {
            mounts: apps
                .iter()
                .flat_map(|a| a.static_dirs.iter().cloned())
                .collect(),
            mappings: apps
                .iter()
                .map(|a| Mapping {
                    app: Arc::from(a.name.as_str()),
                    handles: a.handles.clone(),
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
        for (prefix, dir) in &self.mounts {
            if let Some(rest) = path.strip_prefix(prefix.as_str()) {
                let file = join(dir, &format!("/{rest}"));
                return Ok(if !file.is_file() {
                    Route::NotFound
                } else if method == Method::GET || method == Method::HEAD {
                    Route::Static { file }
                } else {
                    Route::MethodNotAllowed {
                        allow: vec![Method::GET, Method::HEAD],
                    }
                });
            }
        }
        match self.match_apps(method, &path) {
            Matched::App(app, target) => return Ok(Route::App { app, target }),
            Matched::NotFound => return Ok(Route::NotFound),
            Matched::MethodNotAllowed(allow) => return Ok(Route::MethodNotAllowed { allow }),
            Matched::None => {}
        }
        let on_disk = join(&self.root, &path);
        match std::fs::metadata(&on_disk) {
            Ok(meta) if meta.is_dir() => {
                if !path.ends_with('/') {
                    return Ok(Route::AddSlash {
                        location: format!("{raw_path}/"),
                    });
                }
                for name in &self.index {
                    let candidate = format!("{path}{name}");
                    if join(&self.root, &candidate).is_file() {
                        return Ok(self.route_index(method, &candidate));
                    }
                }
                Ok(self.fallback(method).unwrap_or(Route::NotFound))
            }
            Ok(meta) if meta.is_file() => {
                if method == Method::GET || method == Method::HEAD {
                    Ok(Route::Static { file: on_disk })
                } else {
                    Ok(Route::MethodNotAllowed {
                        allow: vec![Method::GET, Method::HEAD],
                    })
                }
            }
            _ => Ok(self.fallback(method).unwrap_or(Route::NotFound)),
        }
    }

    /// An index document found for a directory: mapped apps first, else static.
    fn route_index(&self, method: &Method, path: &str) -> Route {
        match self.match_apps(method, path) {
            Matched::App(app, target) => Route::App { app, target },
            Matched::NotFound => Route::NotFound,
            Matched::MethodNotAllowed(allow) => Route::MethodNotAllowed { allow },
            Matched::None if method == Method::GET || method == Method::HEAD => Route::Static {
                file: join(&self.root, path),
            },
            Matched::None => Route::MethodNotAllowed {
                allow: vec![Method::GET, Method::HEAD],
            },
        }
    }

    fn match_apps(&self, method: &Method, path: &str) -> Matched {
        let mut refused: Vec<Method> = Vec::new();
        let mut pattern_matched = false;
        for mapping in &self.mappings {
            let Some((script_name, path_info)) =
                mapping.handles.iter().find_map(|p| split(p, path))
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

/// Splits `path` into (SCRIPT_NAME, PATH_INFO) if `pattern` matches it.
/// Plain byte comparison only (the CVE-2019-11043 lesson: no regex).
fn split<'p>(pattern: &HandlerPattern, path: &'p str) -> Option<(&'p str, &'p str)> {
    match pattern {
        HandlerPattern::Any => Some((path, "")),
        HandlerPattern::Exact(p) => (path == p).then_some((path, "")),
        HandlerPattern::Prefix(p) => {
            if path == p {
                Some((path, ""))
            } else if path.len() > p.len()
                && path.starts_with(p.as_str())
                && path.as_bytes()[p.len()] == b'/'
            {
                Some(path.split_at(p.len()))
            } else {
                None
            }
        }
        HandlerPattern::Extension(ext) => {
            // The first segment whose name ends in `.ext` (ASCII case-insensitive,
            // so `X.PHP` is never served as source) is the script.
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
    }
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
            plugin_cache_dir: None,
            plugins: vec![],
        }
    }

    fn app(root: &Path, handles: Vec<HandlerPattern>) -> AppSettings {
        AppSettings {
            name: "php".into(),
            command: "php-cgi".into(),
            args: vec![],
            working_dir: None,
            root: root.to_path_buf(),
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
        }
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
        let router = Router::new(&server(dir.path()), &[app(dir.path(), php())]);
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
        let router = Router::new(&server(dir.path()), &[app(dir.path(), php())]);
        let (_, t) = app_route(router.route(&Method::GET, "/X.PHP").unwrap());
        assert_eq!(t.script_name, "/X.PHP");
        assert_eq!(
            router.route(&Method::GET, "/a.php.txt").unwrap(),
            Route::Static {
                file: dir.path().join("a.php.txt")
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
        let router = Router::new(&server(dir.path()), &[app(dir.path(), php())]);
        assert_eq!(
            router.route(&Method::GET, "/uploads/x.jpg/y.php").unwrap(),
            Route::NotFound
        );
        assert_eq!(
            router.route(&Method::GET, "/uploads/x.jpg").unwrap(),
            Route::Static {
                file: dir.path().join("uploads/x.jpg")
            }
        );
    }

    #[test]
    fn prefix_exact_and_any() {
        let dir = site();
        let mut a = app(dir.path(), vec![HandlerPattern::Prefix("/app".into())]);
        a.resource_type = ResourceType::Unspecified;
        let router = Router::new(&server(dir.path()), &[a]);
        let (_, t) = app_route(router.route(&Method::GET, "/app/x/y").unwrap());
        assert_eq!(
            (t.script_name.as_str(), t.path_info.as_str()),
            ("/app", "/x/y")
        );
        let (_, t) = app_route(router.route(&Method::GET, "/app").unwrap());
        assert_eq!((t.script_name.as_str(), t.path_info.as_str()), ("/app", ""));
        assert!(!matches!(
            router.route(&Method::GET, "/apple").unwrap(),
            Route::App { .. }
        ));

        let mut root_app = app(dir.path(), vec![HandlerPattern::Prefix(String::new())]);
        root_app.resource_type = ResourceType::Unspecified;
        let router = Router::new(&server(dir.path()), &[root_app]);
        let (_, t) = app_route(router.route(&Method::POST, "/any/where").unwrap());
        assert_eq!(
            (t.script_name.as_str(), t.path_info.as_str()),
            ("", "/any/where")
        );

        let mut exact = app(dir.path(), vec![HandlerPattern::Exact("/status".into())]);
        exact.resource_type = ResourceType::Unspecified;
        exact.name = "exact".into();
        let mut any = app(dir.path(), vec![HandlerPattern::Any]);
        any.resource_type = ResourceType::Unspecified;
        any.name = "any".into();
        let router = Router::new(&server(dir.path()), &[exact, any]);
        assert_eq!(
            &*app_route(router.route(&Method::GET, "/status").unwrap()).0,
            "exact"
        );
        let (app_name, t) = app_route(router.route(&Method::GET, "/status/x").unwrap());
        assert_eq!(&*app_name, "any");
        assert_eq!(t.script_name, "/status/x");
    }

    #[test]
    fn first_match_wins() {
        let dir = site();
        let first = app(dir.path(), php());
        let mut second = app(dir.path(), vec![HandlerPattern::Any]);
        second.resource_type = ResourceType::Unspecified;
        second.name = "second".into();
        let router = Router::new(&server(dir.path()), &[first, second]);
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
        let router = Router::new(&server(dir.path()), &[post_only]);
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
        let router = Router::new(&server(dir.path()), &[post_only, get_app]);
        assert_eq!(
            &*app_route(router.route(&Method::GET, "/index.php").unwrap()).0,
            "get"
        );
    }

    #[test]
    fn resource_types() {
        let dir = site();
        let mut a = app(dir.path(), vec![HandlerPattern::Prefix("/sub".into())]);
        a.resource_type = ResourceType::Directory;
        let router = Router::new(&server(dir.path()), std::slice::from_ref(&a));
        assert!(matches!(
            router.route(&Method::GET, "/sub/x").unwrap(),
            Route::App { .. }
        ));
        a.handles = vec![HandlerPattern::Prefix("/nope".into())];
        let router = Router::new(&server(dir.path()), std::slice::from_ref(&a));
        assert_eq!(
            router.route(&Method::GET, "/nope/x").unwrap(),
            Route::NotFound
        );
        a.resource_type = ResourceType::Either;
        a.handles = vec![HandlerPattern::Exact("/static.css".into())];
        let router = Router::new(&server(dir.path()), std::slice::from_ref(&a));
        assert!(matches!(
            router.route(&Method::GET, "/static.css").unwrap(),
            Route::App { .. }
        ));
        a.resource_type = ResourceType::File;
        a.handles = vec![HandlerPattern::Exact("/sub".into())];
        let router = Router::new(&server(dir.path()), std::slice::from_ref(&a));
        assert_eq!(router.route(&Method::GET, "/sub").unwrap(), Route::NotFound);
    }

    #[test]
    fn fallback_front_controller() {
        let dir = site();
        let mut a = app(dir.path(), php());
        a.fallback = Some("/front.php".into());
        let router = Router::new(&server(dir.path()), &[a]);
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
        let router = Router::new(&server(dir.path()), &[app(dir.path(), php())]);
        let (_, t) = app_route(router.route(&Method::GET, "/").unwrap());
        assert_eq!(t.script_name, "/index.php");
        assert_eq!(t.document_uri, "/index.php");
        assert_eq!(
            router.route(&Method::GET, "/sub/").unwrap(),
            Route::Static {
                file: dir.path().join("sub/index.html")
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
        let router = Router::new(&server(dir.path()), &[]);
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
        let router = Router::new(&server(dir.path()), &[app(dir.path(), php())]);
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
