//! Parsing and validation: TOML text → [`Config`](super::Config).
//! (Stub: filled in by the config work.)

use std::path::{Path, PathBuf};

use super::Config;

/// A configuration error, naming file, line and key where known.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
}

/// Reads, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        message: format!("{}: {e}", path.display()),
    })?;
    load_str(&text, Some(path))
}

/// Parses and validates config text; `source` is used for messages and to
/// resolve relative paths (its folder).
pub fn load_str(_text: &str, _source: Option<&Path>) -> Result<Config, ConfigError> {
    Err(ConfigError {
        message: "not implemented".into(),
    })
}

/// Finds the program a `command` names: a path with a `/` is taken as is, a
/// bare name is searched on the gateway's `PATH`. Must be an executable file.
pub fn resolve_command(command: &Path) -> Result<PathBuf, ConfigError> {
    Ok(command.to_path_buf())
}

pub(super) fn quickstart() -> Result<Config, ConfigError> {
    load_str("", None)
}
