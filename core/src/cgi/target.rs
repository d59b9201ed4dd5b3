//! The script a request runs: what the router decided about the path, in
//! the terms the CGI variables need (`SCRIPT_NAME`, `PATH_INFO`,
//! `SCRIPT_FILENAME`, ...). The router fills it in; [`super::params`] and
//! the CGI runner read it. It holds no request data of its own.

use std::path::PathBuf;

/// The script a request runs, as decided by the mapping: everything the CGI
/// variables need to know about the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTarget {
    /// `SCRIPT_NAME`: the URL path of the script for `*.ext` and `*`
    /// mappings (`/a/info.php`); the app's `mount` for `/prefix/*` and
    /// `/exact` mappings (empty at the site root, the default).
    pub script_name: String,
    /// `PATH_INFO`: the rest of the decoded path after `script_name` (may be empty).
    pub path_info: String,
    /// `SCRIPT_FILENAME`: the script on disk (`root` + `script_name`; for a
    /// mounted app, `root` + mount, which both runners agree on: the CGI
    /// runner executes it, a FastCGI app is told it).
    pub script_filename: PathBuf,
    /// `DOCUMENT_ROOT`: the app's root folder.
    pub document_root: PathBuf,
    /// `DOCUMENT_URI`: the decoded, normalised path that was routed (after
    /// index-document resolution, e.g. `/index.php` for `/`).
    pub document_uri: String,
}
