//! The gateway's own log: `tracing` lines on stderr, text or JSON, filtered
//! by `FASTGATE_LOG`. Text is coloured only for a person at a terminal: a
//! log written to a file, a pipe or the journal gets no ANSI escape codes,
//! and `NO_COLOR` (https://no-color.org, any non-empty value) turns colour
//! off everywhere. The access log is `access_log`'s, never coloured.

use std::ffi::OsStr;
use std::io::IsTerminal;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Installs the log for the whole process: call once, at start.
pub fn init(format: Format) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FASTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        Format::Text => builder.init(),
        Format::Json => builder.json().init(),
    }
}

/// Whether text lines get colour: only on a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(true, Some(OsStr::new("0"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new(""))));
    }
}
