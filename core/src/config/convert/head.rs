//! The request head limits of `[server]`: `max_header_line`,
//! `max_request_head`, `max_headers` and `max_uri_length`.
//!
//! Each is read with the section's readers, then checked against the others
//! (a line or a URI can never be longer than the whole head, so a limit
//! above `max_request_head` would never be the one that answers) and
//! against what the HTTP/1 parser underneath can carry.

use toml::Spanned;

use super::section::Section;
use crate::config::raw::{RawServer, Scalar};
use crate::config::{ConfigError, HeadLimits, defaults};

/// The smallest line, head or URI limit: below it ordinary browser requests
/// would be refused.
const MIN_SIZE: u64 = 1024;
/// hyper refuses a longer request target itself (414), whatever we allow.
const PARSER_MAX_URI: u64 = 65534;

/// `[server]`'s head limits, checked.
pub(super) fn head_limits(raw: &RawServer, t: &Section<'_>) -> Result<HeadLimits, ConfigError> {
    let size = |value: Option<&Spanned<Scalar>>, key: &str, default: usize, max: u64| {
        let n = t.size(value, key, default as u64)?;
        if n < MIN_SIZE || n > max {
            let span = value.map(Spanned::span);
            return Err(t.error(
                span,
                key,
                format!("must be between {MIN_SIZE} and {max} bytes, not {n}"),
            ));
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    };
    let limits = HeadLimits {
        max_header_line: size(
            raw.max_header_line.as_ref(),
            "max_header_line",
            defaults::MAX_HEADER_LINE,
            u64::from(u32::MAX),
        )?,
        max_request_head: size(
            raw.max_request_head.as_ref(),
            "max_request_head",
            defaults::MAX_REQUEST_HEAD,
            u64::from(u32::MAX),
        )?,
        max_headers: usize::try_from(t.count(
            raw.max_headers.as_ref(),
            "max_headers",
            defaults::MAX_HEADERS as u64,
            1,
        )?)
        .unwrap_or(usize::MAX),
        max_uri_length: size(
            raw.max_uri_length.as_ref(),
            "max_uri_length",
            defaults::MAX_URI_LENGTH,
            PARSER_MAX_URI,
        )?,
    };
    for (value, key, n) in [
        (
            &raw.max_header_line,
            "max_header_line",
            limits.max_header_line,
        ),
        (&raw.max_uri_length, "max_uri_length", limits.max_uri_length),
    ] {
        if n > limits.max_request_head {
            return Err(t.error(
                value.as_ref().map(Spanned::span),
                key,
                format!(
                    "{n} bytes is more than max_request_head ({} bytes), which bounds the whole head: raise max_request_head too",
                    limits.max_request_head
                ),
            ));
        }
    }
    Ok(limits)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::HeadLimits;
    use crate::config::test_support::{MINIMAL, load};

    #[test]
    fn defaults_are_nginx_and_apache_sized() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(
            c.server.head_limits,
            HeadLimits {
                max_header_line: 8192,
                max_request_head: 32768,
                max_headers: 100,
                max_uri_length: 8192,
            }
        );
    }

    #[test]
    fn limits_are_read_and_checked() {
        let c = load(
            "[server]\nmax_header_line = \"16KiB\"\nmax_request_head = \"64KiB\"\nmax_headers = 200\nmax_uri_length = 4096\n",
        )
        .unwrap();
        assert_eq!(c.server.head_limits.max_header_line, 16384);
        assert_eq!(c.server.head_limits.max_request_head, 65536);
        assert_eq!(c.server.head_limits.max_headers, 200);
        assert_eq!(c.server.head_limits.max_uri_length, 4096);

        let e = load("[server]\nmax_headers = 0\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.max_headers"));
        let e = load("[server]\n\nmax_header_line = 10\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.max_header_line"));
        assert_eq!(e.line, Some(3));
        let e = load("[server]\nmax_uri_length = \"100KiB\"\nmax_request_head = \"1MiB\"\n")
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.max_uri_length"));
        assert!(e.message.contains("65534"), "{e}");
    }

    #[test]
    fn a_line_longer_than_the_head_is_an_error() {
        let e = load("[server]\nmax_header_line = \"64KiB\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.max_header_line"));
        assert!(e.message.contains("max_request_head"), "{e}");
        let c = load("[server]\nmax_header_line = \"64KiB\"\nmax_request_head = \"64KiB\"\n");
        assert!(c.is_ok());
    }
}
