//! Reading the values of one table of the file (`[server]`, an `[[app]]`,
//! a `[[plugin]]`): the default when a key is absent, the parsed value when
//! it is present, and an error at the value's position, under its key, when
//! it does not parse.
//!
//! One set of readers for every table, so that a size, a duration or a
//! count is checked and reported the same way wherever it appears. What a
//! value means is left to the parsers of `config::parse` and to the
//! conversion of each table.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use crate::config::ConfigError;
use crate::config::parse::{parse_duration, parse_size};
use crate::config::raw::Scalar;
use crate::config::source::Source;

/// One table while it is converted: the file it is in, and how errors name
/// its keys (`server.listen`, `app "php": handles`, `plugin "auth": timeout`).
pub(super) struct Section<'a> {
    pub(super) src: &'a Source<'a>,
    /// What comes before a key in errors: `server.`, `app "php": `.
    prefix: String,
}

impl<'a> Section<'a> {
    pub(super) fn new(src: &'a Source<'a>, prefix: String) -> Self {
        Section { src, prefix }
    }

    /// An error about `key` of this table, at `span` when it is known.
    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        self.src
            .error(span, Some(format!("{}{key}", self.prefix)), message)
    }

    /// `value` parsed by `read`, or an error at its position.
    pub(super) fn read<V, T>(
        &self,
        value: &Spanned<V>,
        key: &str,
        read: impl FnOnce(&V) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        read(value.get_ref()).map_err(|message| self.error(Some(value.span()), key, message))
    }

    /// [`Self::read`], or `default` when the key is absent.
    pub(super) fn read_or<V, T>(
        &self,
        value: Option<&Spanned<V>>,
        key: &str,
        default: T,
        read: impl FnOnce(&V) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match value {
            None => Ok(default),
            Some(value) => self.read(value, key, read),
        }
    }

    /// A size in bytes (`1048576`, `"100MiB"`).
    pub(super) fn size(
        &self,
        value: Option<&Spanned<Scalar>>,
        key: &str,
        default: u64,
    ) -> Result<u64, ConfigError> {
        self.read_or(value, key, default, parse_size)
    }

    /// A duration that may be zero (`shutdown_timeout = 0`: stop at once).
    pub(super) fn duration(
        &self,
        value: Option<&Spanned<Scalar>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.read_or(value, key, default, parse_duration)
    }

    /// A duration that must not be zero: a timeout of nothing would fail
    /// every request.
    pub(super) fn timeout(
        &self,
        value: Option<&Spanned<Scalar>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.read_or(value, key, default, |v| {
            let d = parse_duration(v)?;
            if d.is_zero() {
                return Err("must be longer than zero".into());
            }
            Ok(d)
        })
    }

    /// A whole number of at least `min`.
    pub(super) fn count(
        &self,
        value: Option<&Spanned<i64>>,
        key: &str,
        default: u64,
        min: u64,
    ) -> Result<u64, ConfigError> {
        self.read_or(value, key, default, |&n| {
            u64::try_from(n)
                .ok()
                .filter(|&n| n >= min)
                .ok_or_else(|| format!("must be at least {min}"))
        })
    }
}
