//! The gateway's own log: `tracing` lines on stderr, text or JSON, filtered
//! by `FASTGATE_LOG`. Text is coloured only for a person at a terminal: a
//! log written to a file, a pipe or the journal gets no ANSI escape codes,
//! and `NO_COLOR` (https://no-color.org, any non-empty value) turns colour
//! off everywhere. When stderr is the journal (systemd sets `JOURNAL_STREAM`
//! to its device and inode), lines carry no timestamp: the journal stamps
//! every line itself. The access log is `access_log`'s, never coloured.

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
    match (format, stderr_is_journal()) {
        (Format::Text, false) => builder.init(),
        (Format::Text, true) => builder.without_time().init(),
        (Format::Json, false) => builder.json().init(),
        (Format::Json, true) => builder.json().without_time().init(),
    }
}

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` names it by
/// device and inode, and is checked against stderr because a child of the
/// service inherits the variable with a stderr of its own.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    nix::sys::stat::fstat(std::io::stderr()).is_ok_and(|stat| {
        // st_dev and st_ino are u64 on Linux; the casts are no-ops there.
        #[allow(clippy::useless_conversion)]
        let (dev, ino) = (u64::from(stat.st_dev), u64::from(stat.st_ino));
        is_journal(&stream, dev, ino)
    })
}

/// Whether `JOURNAL_STREAM` (`DEVICE:INODE`, in decimal) names the file
/// with `dev` and `ino`.
pub fn is_journal(journal_stream: &OsStr, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// Whether text lines get colour: only on a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::{colour, is_journal};
    use std::ffi::OsStr;

    #[test]
    fn journal_only_when_device_and_inode_match() {
        assert!(is_journal(OsStr::new("8:1234"), 8, 1234));
        assert!(!is_journal(OsStr::new("8:1234"), 8, 1235));
        assert!(!is_journal(OsStr::new("9:1234"), 8, 1234));
        assert!(!is_journal(OsStr::new(""), 8, 1234));
        assert!(!is_journal(OsStr::new("8-1234"), 8, 1234));
        assert!(!is_journal(OsStr::new("x:y"), 8, 1234));
    }

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
