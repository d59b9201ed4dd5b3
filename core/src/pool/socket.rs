//! Where an app's instances listen: a Unix socket per instance,
//! `{runtime_dir}/{app}/{instance id}.sock`, in the app's private folder.
//!
//! This is the one place those paths are built, so that the longest one a
//! pool can ever bind is known before anything starts: a `runtime_dir` too
//! long for a Unix socket address is refused by `fastgate check` and at
//! start, instead of failing every request with "path must be shorter
//! than SUN_LEN". Pure: nothing here touches the file system.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{AppSettings, Protocol};

/// The longest path a Unix socket can be bound at: Linux's `sun_path` holds
/// 108 bytes, its terminating NUL included.
pub const MAX_SOCKET_PATH: usize = 107;

/// The private folder of an app's sockets and runtime files.
pub fn socket_dir(runtime_dir: &Path, app: &str) -> PathBuf {
    runtime_dir.join(app)
}

/// The socket of instance `id` of the app whose folder is `socket_dir`.
pub fn socket_path(socket_dir: &Path, id: u64) -> PathBuf {
    socket_dir.join(format!("{id}.sock"))
}

/// The longest socket path a pool of `app` can bind: instance ids count up
/// from 1 for as long as the gateway runs, so up to `u64::MAX` (20 digits).
pub fn longest_socket_path(runtime_dir: &Path, app: &str) -> PathBuf {
    socket_path(&socket_dir(runtime_dir, app), u64::MAX)
}

/// Whether an app's instances listen on Unix sockets (not a CGI app, which
/// has no pool, nor `protocol = "tcp"`).
pub fn uses_sockets(app: &AppSettings) -> bool {
    app.cgi.is_none() && app.protocol == Protocol::Unix
}

/// A runtime folder whose sockets could not be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    /// The app with the longest socket path.
    pub app: String,
    /// That path.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: usize,
    /// The longest runtime folder (in bytes) that every app's sockets fit.
    pub fits: usize,
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "app \"{}\" would listen at {} ({} bytes), but a Unix socket path holds at most {MAX_SOCKET_PATH} bytes (sun_path); use a folder of at most {} bytes",
            self.app,
            self.path.display(),
            self.len,
            self.fits
        )
    }
}

/// Checks that every app's longest socket path under `runtime_dir` can be
/// bound; names the app that goes furthest over when one cannot.
pub fn check_socket_paths<'a>(
    runtime_dir: &Path,
    apps: impl IntoIterator<Item = &'a AppSettings>,
) -> Result<(), TooLong> {
    let dir_len = runtime_dir.as_os_str().len();
    let longest = apps
        .into_iter()
        .filter(|app| uses_sockets(app))
        .map(|app| (app, longest_socket_path(runtime_dir, &app.name)))
        .max_by_key(|(_, path)| path.as_os_str().len());
    let Some((app, path)) = longest else {
        return Ok(());
    };
    let len = path.as_os_str().len();
    if len <= MAX_SOCKET_PATH {
        return Ok(());
    }
    Err(TooLong {
        app: app.name.clone(),
        fits: (dir_len + MAX_SOCKET_PATH).saturating_sub(len),
        len,
        path,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::test_support::{MINIMAL, load};

    fn apps(extra: &str) -> Vec<AppSettings> {
        load(&format!("{MINIMAL}{extra}")).unwrap().apps
    }

    #[test]
    fn the_longest_path_has_a_20_digit_instance_id() {
        let path = longest_socket_path(Path::new("/run/fg"), "php");
        assert_eq!(path, Path::new("/run/fg/php/18446744073709551615.sock"));
        assert_eq!(
            socket_path(&socket_dir(Path::new("/run/fg"), "php"), 7),
            Path::new("/run/fg/php/7.sock")
        );
    }

    #[test]
    fn a_runtime_dir_is_refused_exactly_past_sun_path() {
        let apps = apps("");
        // "/php/" + 20 digits + ".sock" = 30 bytes after the folder.
        let fits = "/".to_string() + &"d".repeat(MAX_SOCKET_PATH - 30 - 1);
        assert_eq!(
            longest_socket_path(Path::new(&fits), "php")
                .as_os_str()
                .len(),
            107
        );
        assert_eq!(check_socket_paths(Path::new(&fits), &apps), Ok(()));
        let over = format!("{fits}d");
        let e = check_socket_paths(Path::new(&over), &apps).unwrap_err();
        assert_eq!((e.app.as_str(), e.len, e.fits), ("php", 108, 77));
        assert!(e.to_string().contains("(108 bytes)"), "{e}");
        assert!(e.to_string().contains("at most 77 bytes"), "{e}");
    }

    #[test]
    fn tcp_apps_have_no_socket_path() {
        let long = "/".to_string() + &"d".repeat(200);
        assert!(check_socket_paths(Path::new(&long), &apps("")).is_err());
        assert_eq!(
            check_socket_paths(Path::new(&long), &apps("protocol = \"tcp\"\n")),
            Ok(())
        );
    }
}
