//! Loading: a config file or text → [`Config`], and what its errors say.
//!
//! The text is deserialised into the raw tables of [`super::raw`] (which keep
//! the position of every value that gets checked), then handed to
//! [`super::convert`]. This module owns [`ConfigError`] and [`Source`], which
//! turns a position into file, line, column and key, and resolves relative
//! paths. It does not check values or apply defaults (that is `convert`).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::Config;
use super::convert::convert;
use super::raw::RawConfig;

/// A configuration error: where it is (file, line, column, key) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key, with its app for `[[app]]` keys: `app "php": max_instances`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
            if let Some(line) = self.line {
                write!(f, "{line}:")?;
                if let Some(column) = self.column {
                    write!(f, "{column}:")?;
                }
            }
            f.write_str(" ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where we are while converting: the text (for line numbers) and the file.
pub(super) struct Source<'a> {
    text: &'a str,
    pub(super) file: Option<&'a Path>,
    /// Folder that relative paths resolve against.
    pub(super) base: PathBuf,
}

impl Source<'_> {
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column)
    }

    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = self.position(span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            file: self.file.map(Path::to_path_buf),
            line,
            column,
            key,
            message: message.into(),
        }
    }

    /// The key written on the line at `offset` (`key = value`), if any.
    fn key_at(&self, offset: usize) -> Option<String> {
        let start = self.text[..offset.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next()?;
        let (key, _) = line.split_once('=')?;
        let key = key.trim().trim_matches('"');
        (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
    }

    /// A path from the file: relative ones resolve against the config's
    /// folder; `.` and `..` are resolved lexically (php-cgi refuses script
    /// paths that contain `..`).
    pub(super) fn path(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            clean(p)
        } else {
            clean(&self.base.join(p))
        }
    }
}

/// Resolves `.` and `..` components without touching the filesystem.
fn clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

// ---- entry points ----

/// Reads, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: Some(path.to_path_buf()),
        line: None,
        column: None,
        key: None,
        message: format!("cannot read the config file: {e}"),
    })?;
    load_str(&text, Some(path))
}

/// Parses and validates config text; `source` names the file in messages and
/// its folder is where relative paths resolve (the current folder without one).
pub fn load_str(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
    let folder = source
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = clean(&std::path::absolute(&folder).unwrap_or(folder));
    let src = Source {
        text,
        file: source,
        base,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let key = e.span().and_then(|s| src.key_at(s.start));
        src.error(e.span(), key, e.message().trim().to_string())
    })?;
    convert(raw, &src)
}

/// The built-in quickstart: `examples/quickstart/fastgate.toml`, with paths
/// resolved in the source tree.
pub(super) fn quickstart() -> Result<Config, ConfigError> {
    const TEXT: &str = include_str!("../../../examples/quickstart/fastgate.toml");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("/"));
    load_str(TEXT, Some(&repo.join("examples/quickstart/fastgate.toml")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::*;
    use crate::config::{AccessLogTarget, render_summary};

    /// Loads `text` as `/etc/fg/fastgate.toml` (the tests of every part of
    /// the configuration use it).
    pub(in crate::config) fn load(text: &str) -> Result<Config, ConfigError> {
        load_str(text, Some(Path::new("/etc/fg/fastgate.toml")))
    }

    pub(in crate::config) const MINIMAL: &str =
        "[[app]]\nname = \"php\"\ncommand = \"php-cgi\"\nhandles = [\"*.php\"]\n";

    #[test]
    fn unknown_keys_name_key_and_line() {
        let e = load("bogus = 1\n").unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        assert_eq!(e.line, Some(1));
        let e = load("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 2\n").unwrap_err();
        assert!(e.message.contains("lisen"), "{e}");
        assert_eq!(e.line, Some(3));
        let e = load(&format!("{MINIMAL}max_instance = 3\n")).unwrap_err();
        assert!(e.message.contains("max_instance"), "{e}");
        assert_eq!(e.line, Some(5));
        assert!(e.to_string().starts_with("/etc/fg/fastgate.toml:5:"), "{e}");
    }

    #[test]
    fn type_errors_name_the_key() {
        let e = load(&format!("{MINIMAL}max_instances = \"x\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("max_instances"));
        assert!(e.to_string().contains("fastgate.toml:5:"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let c = load(
            "[server]\nroot = \"www\"\naccess_log = \"logs/access.log\"\n[[app]]\nname = \"a\"\ncommand = \"bin/app\"\nhandles = [\"*\"]\nroot = \"/abs\"\n",
        )
        .unwrap();
        assert_eq!(c.server.root, PathBuf::from("/etc/fg/www"));
        assert_eq!(
            c.server.access_log,
            AccessLogTarget::File(PathBuf::from("/etc/fg/logs/access.log"))
        );
        assert_eq!(c.apps[0].command, PathBuf::from("/etc/fg/bin/app"));
        assert_eq!(c.apps[0].root, PathBuf::from("/abs"));
        let c = load("[server]\nroot = \"../site/./www/\"\n").unwrap();
        assert_eq!(c.server.root, PathBuf::from("/etc/site/www"));
    }

    #[test]
    fn quickstart_loads() {
        let c = Config::quickstart().unwrap();
        assert_eq!(c.apps[0].name, "php");
        assert!(c.server.root.ends_with("examples/quickstart/www"));
        assert!(c.server.root.join("index.html").is_file());
        assert!(render_summary(&c).contains("app \"php\""));
    }
}
