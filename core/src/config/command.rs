//! The programs apps run: finding a `command` on `PATH`, and what to
//! install when it is missing (Debian package hints).
//!
//! Loading a config never looks for programs: `fastgate check`, launchers
//! and pool start-up call these when they need the answer. This module
//! reads the file system and `PATH`; it does not run anything.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// Finds the program a `command` names: a path with a `/` is taken as is, a
/// bare name is searched on the gateway's `PATH`. It must be an executable file.
pub fn resolve_command(command: &Path) -> Result<PathBuf, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let hint = install_hint(command)
        .map(|h| format!("; {h}"))
        .unwrap_or_default();
    let fail = |message: String| ConfigError {
        file: None,
        line: None,
        column: None,
        key: None,
        message,
    };
    if command.as_os_str().as_encoded_bytes().contains(&b'/') {
        if executable(command) {
            return Ok(command.to_path_buf());
        }
        let why = if command.exists() {
            "is not an executable file"
        } else {
            "does not exist"
        };
        return Err(fail(format!("command {} {why}{hint}", command.display())));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(command);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(fail(format!(
        "command {} was not found on PATH{hint}",
        command.display()
    )))
}

/// What to install when a well-known command is missing.
pub fn install_hint(command: &Path) -> Option<&'static str> {
    let name = command.file_name()?.to_str()?;
    if name.starts_with("php-cgi") {
        Some("install the Debian package php-cgi (apt-get install php-cgi)")
    } else if name == "fcgiwrap" {
        Some("install the Debian package fcgiwrap (apt-get install fcgiwrap)")
    } else if name.starts_with("python3") {
        Some("install the Debian package python3 (apt-get install python3)")
    } else {
        None
    }
}

/// Every app whose command cannot be run, as errors pointing at its `command` key.
pub fn check_commands(config: &Config) -> Vec<ConfigError> {
    config
        .apps
        .iter()
        .filter_map(|app| {
            resolve_command(app.command_to_check()?)
                .err()
                .map(|e| ConfigError {
                    file: config.source.clone(),
                    line: app.command_line,
                    column: None,
                    key: Some(format!("app \"{}\": command", app.name)),
                    message: e.message,
                })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::test_support::load;

    #[test]
    fn commands_are_resolved_with_hints() {
        assert!(resolve_command(Path::new("sh")).unwrap().is_absolute());
        let e = resolve_command(Path::new("no-such-cmd-xyz")).unwrap_err();
        assert!(e.message.contains("no-such-cmd-xyz"), "{e}");
        let e = resolve_command(Path::new("/nonexistent/php-cgi")).unwrap_err();
        assert!(e.message.contains("apt-get install php-cgi"), "{e}");
        let c = load("[[app]]\nname = \"x\"\n\ncommand = \"no-such-cmd-xyz\"\nhandles = [\"*\"]\n")
            .unwrap();
        let problems = check_commands(&c);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(4));
        assert!(
            problems[0]
                .to_string()
                .contains("fastgate.toml:4: app \"x\": command"),
            "{}",
            problems[0]
        );
    }
}
