//! Finding the real programs the tests drive (php-cgi, fcgiwrap) on this
//! machine. It does not build configs around them (that is `site`), and a
//! missing program is a loud failure, never a skipped test.

use std::path::PathBuf;

/// php-cgi, or a loud failure: these tests never skip silently.
pub fn php_cgi() -> String {
    find_program("php-cgi", &["/usr/bin/php-cgi"]).expect(
        "php-cgi is not installed: run tests/run.sh (it installs it) or apt-get install php-cgi",
    )
}

/// fcgiwrap, or a loud failure.
pub fn fcgiwrap() -> String {
    find_program("fcgiwrap", &["/usr/sbin/fcgiwrap", "/usr/bin/fcgiwrap"]).expect(
        "fcgiwrap is not installed: run tests/run.sh (it installs it) or apt-get install fcgiwrap",
    )
}

fn find_program(name: &str, fallbacks: &[&str]) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}
