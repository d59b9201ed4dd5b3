//! Where a configuration value came from, and errors that say so.
//!
//! [`ConfigError`] names the file, line, column and key of what is wrong;
//! [`Source`] turns a position in the text into those and resolves
//! relative paths against the config file's folder. Loading and conversion
//! both use it; it knows nothing of either.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

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

impl<'a> Source<'a> {
    pub(super) fn new(text: &'a str, file: Option<&'a Path>, base: PathBuf) -> Source<'a> {
        Source { text, file, base }
    }

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
    pub(super) fn key_at(&self, offset: usize) -> Option<String> {
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
pub(super) fn clean(path: &Path) -> PathBuf {
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
