//! Handler mappings: which app (or the static file server) takes a request.
//! (Stub: filled in by the routing work.)

use std::path::PathBuf;

/// The script a request runs, as decided by the mapping: everything the CGI
/// variables need to know about the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTarget {
    /// `SCRIPT_NAME`: the URL path of the script (`/a/info.php`; the prefix for
    /// prefix mappings; empty for an app mounted at `/*`).
    pub script_name: String,
    /// `PATH_INFO`: the rest of the decoded path after `script_name` (may be empty).
    pub path_info: String,
    /// `SCRIPT_FILENAME`: the script on disk (`root` + `script_name`).
    pub script_filename: PathBuf,
    /// `DOCUMENT_ROOT`: the app's root folder.
    pub document_root: PathBuf,
    /// `DOCUMENT_URI`: the decoded, normalised path that was routed (after
    /// index-document resolution, e.g. `/index.php` for `/`).
    pub document_uri: String,
}
