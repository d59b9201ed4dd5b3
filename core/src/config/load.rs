//! Loading: a config file or text → [`Config`].
//!
//! The text is deserialised into the raw tables of [`super::raw`] (which keep
//! the position of every value that gets checked), then handed to
//! [`super::convert`]. Errors and positions are [`super::source`]'s. This
//! module does not check values or apply defaults (that is `convert`).

use std::path::{Path, PathBuf};

use super::Config;
use super::convert::convert;
use super::raw::RawConfig;
use super::source::{ConfigError, Source, clean};

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
    let src = Source::new(text, source, base);
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
    let mut config = load_str(TEXT, Some(&repo.join("examples/quickstart/fastgate.toml")))?;
    super::users::quickstart_fallback(&mut config);
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::test_support::{MINIMAL, load};
    use crate::config::{AccessLogTarget, render_summary};

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
