//! What a static file's answer is, from the request's conditional and
//! range headers (RFC 9110 §13.2.2 and §14), decided from the file's size
//! and modification time alone: 200, 206 (one range or several), 304, 412
//! or 416. Pure, so that unit tests drive every rule; `mod.rs` opens the
//! file and writes the headers.
//!
//! The order is the RFC's: `If-Match` (else `If-Unmodified-Since`) → 412;
//! `If-None-Match` (else `If-Modified-Since`) → 304, so a matching
//! `If-Modified-Since` never wins over a non-matching `If-None-Match`;
//! then `Range`, only for GET and only when `If-Range` (if sent) still
//! holds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, header};

/// Above this many ranges in one request the `Range` field is ignored and
/// the whole file sent (RFC 9110 §14.2 allows it; it bounds the work a
/// request can ask for).
const MAX_RANGES: usize = 16;

/// Modification times this close to the epoch are not real (unset, or
/// `epoch + 1` on some systems): no `Last-Modified` then.
const MIN_VALID_MTIME: Duration = Duration::from_secs(2);

/// What identifies a version of a file: its size, modification time and
/// the entity tag made of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validators {
    pub(super) size: u64,
    /// Whole seconds since the epoch, as HTTP dates carry them.
    modified_secs: Option<u64>,
    modified: Option<SystemTime>,
    /// A strong tag, `"size-secs.nanos"` in hex, as nginx makes its own
    /// from the same two facts; strong so that `If-Range` can use it.
    pub(super) etag: Option<String>,
}

impl Validators {
    pub(super) fn new(size: u64, modified: Option<SystemTime>) -> Validators {
        let since_epoch = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .filter(|d| *d >= MIN_VALID_MTIME);
        Validators {
            size,
            modified_secs: since_epoch.map(|d| d.as_secs()),
            modified: since_epoch.and(modified),
            etag: since_epoch
                .map(|d| format!("\"{size:x}-{:x}.{:x}\"", d.as_secs(), d.subsec_nanos())),
        }
    }

    /// `Last-Modified`, as an HTTP date.
    pub(super) fn last_modified(&self) -> Option<String> {
        self.modified.map(httpdate::fmt_http_date)
    }
}

/// One satisfiable byte range: `length` bytes from `start` (never empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ByteRange {
    pub(super) start: u64,
    pub(super) length: u64,
}

impl ByteRange {
    /// The last byte's offset, as `Content-Range` writes it.
    pub(super) fn end(&self) -> u64 {
        self.start + self.length - 1
    }
}

/// The answer to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// 200, the whole file (its head only for HEAD).
    Full,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: `If-Match` or `If-Unmodified-Since` failed.
    PreconditionFailed,
    /// 206 with one range.
    Partial(ByteRange),
    /// 206 `multipart/byteranges`, the ranges in the client's order.
    Parts(Vec<ByteRange>),
    /// 416: no range of the request lies in the file.
    Unsatisfiable,
}

/// The answer for a GET or HEAD of a file with these validators.
pub(super) fn decide(method: &Method, headers: &HeaderMap, file: &Validators) -> Answer {
    let etag = file.etag.as_deref();
    if headers.contains_key(header::IF_MATCH) {
        if !tags_match(headers.get_all(header::IF_MATCH), etag, Comparison::Strong) {
            return Answer::PreconditionFailed;
        }
    } else if let (Some(since), Some(modified)) = (
        date(headers, header::IF_UNMODIFIED_SINCE),
        file.modified_secs,
    ) && modified > since
    {
        return Answer::PreconditionFailed;
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        if tags_match(
            headers.get_all(header::IF_NONE_MATCH),
            etag,
            Comparison::Weak,
        ) {
            return Answer::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (date(headers, header::IF_MODIFIED_SINCE), file.modified_secs)
        && modified <= since
    {
        return Answer::NotModified;
    }
    if method != Method::GET {
        return Answer::Full;
    }
    let mut ranges = headers.get_all(header::RANGE).iter();
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        // No Range, or several fields: ignored.
        return Answer::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && !if_range_holds(if_range, file)
    {
        return Answer::Full;
    }
    match range.to_str().map(|text| parse_ranges(text, file.size)) {
        Ok(Ranges::Satisfiable(list)) if list.len() == 1 => Answer::Partial(list[0]),
        Ok(Ranges::Satisfiable(list)) => {
            let total: u64 = list.iter().map(|r| r.length).fold(0, u64::saturating_add);
            // Overlapping or very many ranges ask for more than the file:
            // the whole file instead (Apache's CVE-2011-3192 lesson).
            if list.len() > MAX_RANGES || total > file.size {
                Answer::Full
            } else {
                Answer::Parts(list)
            }
        }
        Ok(Ranges::Unsatisfiable) => Answer::Unsatisfiable,
        Ok(Ranges::Ignored) | Err(_) => Answer::Full,
    }
}

/// How two entity tags are compared (RFC 9110 §8.8.3.2).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both strong and the same (`If-Match`, `If-Range`).
    Strong,
    /// The same, whatever their weakness (`If-None-Match`).
    Weak,
}

/// Whether a field of entity tags (`*`, or a list) matches ours.
fn tags_match<'a>(
    fields: impl IntoIterator<Item = &'a HeaderValue>,
    ours: Option<&str>,
    comparison: Comparison,
) -> bool {
    for field in fields {
        let Ok(text) = field.to_str() else { continue };
        if text.trim() == "*" {
            // Any current representation; the file exists.
            return true;
        }
        let Some(ours) = ours else { continue };
        if text
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .any(|tag| tag_matches(tag, ours, comparison))
        {
            return true;
        }
    }
    false
}

fn tag_matches(theirs: &str, ours: &str, comparison: Comparison) -> bool {
    let (their_weak, their_opaque) = match theirs.strip_prefix("W/") {
        Some(opaque) => (true, opaque),
        None => (false, theirs),
    };
    let (our_weak, our_opaque) = match ours.strip_prefix("W/") {
        Some(opaque) => (true, opaque),
        None => (false, ours),
    };
    their_opaque == our_opaque && (comparison == Comparison::Weak || (!their_weak && !our_weak))
}

/// `If-Range`: an entity tag that strongly matches ours, or exactly our
/// modification date (RFC 9110 §13.1.5).
fn if_range_holds(value: &HeaderValue, file: &Validators) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let text = text.trim();
    if text.starts_with('"') || text.starts_with("W/") {
        return file
            .etag
            .as_deref()
            .is_some_and(|ours| tag_matches(text, ours, Comparison::Strong));
    }
    match (httpdate::parse_http_date(text).ok(), file.modified_secs) {
        (Some(date), Some(modified)) => secs(date) == Some(modified),
        _ => false,
    }
}

/// An HTTP-date field as whole seconds since the epoch; an invalid date is
/// ignored, as the RFC asks.
fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?;
    secs(httpdate::parse_http_date(text.trim()).ok()?)
}

fn secs(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// A `Range` field, read against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranges {
    /// Not a valid `bytes` range set: served as if absent.
    Ignored,
    /// Valid, but no range starts inside the file.
    Unsatisfiable,
    /// The satisfiable ranges, clamped to the file, in the client's order.
    Satisfiable(Vec<ByteRange>),
}

/// `bytes=0-99`, `bytes=500-`, `bytes=-500`, and lists of them (RFC 9110
/// §14.1.2). One invalid range spec makes the whole field invalid.
fn parse_ranges(text: &str, size: u64) -> Ranges {
    let Some((unit, set)) = text.split_once('=') else {
        return Ranges::Ignored;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Ignored;
    }
    let mut specs = 0;
    let mut satisfiable = Vec::new();
    for spec in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        specs += 1;
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Ignored;
        };
        let range = if first.is_empty() {
            // The last `n` bytes.
            let Some(n) = number(last) else {
                return Ranges::Ignored;
            };
            let length = n.min(size);
            (length > 0).then_some(ByteRange {
                start: size - length,
                length,
            })
        } else {
            let Some(start) = number(first) else {
                return Ranges::Ignored;
            };
            let end = match last {
                "" => None,
                last => match number(last) {
                    Some(end) if end >= start => Some(end),
                    _ => return Ranges::Ignored,
                },
            };
            (start < size).then(|| {
                let end = end.map_or(size - 1, |end| end.min(size - 1));
                ByteRange {
                    start,
                    length: end - start + 1,
                }
            })
        };
        satisfiable.extend(range);
    }
    match (specs, satisfiable.is_empty()) {
        (0, _) => Ranges::Ignored,
        (_, true) => Ranges::Unsatisfiable,
        (_, false) => Ranges::Satisfiable(satisfiable),
    }
}

/// Decimal digits only; a number too large for u64 saturates (it is past
/// the end of any file either way).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SIZE: u64 = 1000;

    fn file() -> Validators {
        Validators::new(SIZE, Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5)))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn get(pairs: &[(&str, &str)]) -> Answer {
        decide(&Method::GET, &headers(pairs), &file())
    }

    fn range(start: u64, length: u64) -> ByteRange {
        ByteRange { start, length }
    }

    #[test]
    fn validators() {
        let v = file();
        assert_eq!(v.etag.as_deref(), Some("\"3e8-6553f100.5\""));
        assert_eq!(
            v.last_modified().as_deref(),
            Some("Tue, 14 Nov 2023 22:13:20 GMT")
        );
        let none = Validators::new(3, Some(UNIX_EPOCH + Duration::from_secs(1)));
        assert_eq!((none.etag.as_deref(), none.last_modified()), (None, None));
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let etag = file().etag.unwrap();
        let later = "Wed, 15 Nov 2023 00:00:00 GMT";
        let earlier = "Mon, 13 Nov 2023 00:00:00 GMT";
        assert_eq!(get(&[("If-None-Match", &etag)]), Answer::NotModified);
        assert_eq!(
            get(&[("If-None-Match", &format!("W/{etag}"))]),
            Answer::NotModified
        );
        assert_eq!(
            get(&[("If-None-Match", &format!("\"x\", {etag}"))]),
            Answer::NotModified
        );
        assert_eq!(get(&[("If-None-Match", "*")]), Answer::NotModified);
        assert_eq!(get(&[("If-Modified-Since", later)]), Answer::NotModified);
        assert_eq!(
            get(&[("If-Modified-Since", "Tue, 14 Nov 2023 22:13:20 GMT")]),
            Answer::NotModified
        );
        assert_eq!(get(&[("If-Modified-Since", earlier)]), Answer::Full);
        assert_eq!(get(&[("If-Modified-Since", "yesterday")]), Answer::Full);
        // A changed file: its tag no longer matches, whatever the date says.
        assert_eq!(
            get(&[("If-None-Match", "\"old\""), ("If-Modified-Since", later)]),
            Answer::Full
        );
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        let etag = file().etag.unwrap();
        assert_eq!(get(&[("If-Match", &etag)]), Answer::Full);
        assert_eq!(get(&[("If-Match", "*")]), Answer::Full);
        assert_eq!(get(&[("If-Match", "\"old\"")]), Answer::PreconditionFailed);
        // If-Match compares strongly.
        assert_eq!(
            get(&[("If-Match", &format!("W/{etag}"))]),
            Answer::PreconditionFailed
        );
        assert_eq!(
            get(&[("If-Unmodified-Since", "Mon, 13 Nov 2023 00:00:00 GMT")]),
            Answer::PreconditionFailed
        );
        assert_eq!(
            get(&[("If-Unmodified-Since", "Wed, 15 Nov 2023 00:00:00 GMT")]),
            Answer::Full
        );
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            get(&[
                ("If-Match", &etag),
                ("If-Unmodified-Since", "Mon, 13 Nov 2023 00:00:00 GMT")
            ]),
            Answer::Full
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            get(&[("Range", "bytes=0-9")]),
            Answer::Partial(range(0, 10))
        );
        assert_eq!(
            get(&[("Range", "bytes=990-")]),
            Answer::Partial(range(990, 10))
        );
        assert_eq!(
            get(&[("Range", "bytes=-10")]),
            Answer::Partial(range(990, 10))
        );
        assert_eq!(
            get(&[("Range", "bytes=-5000")]),
            Answer::Partial(range(0, SIZE))
        );
        assert_eq!(
            get(&[("Range", "bytes=990-5000")]),
            Answer::Partial(range(990, 10))
        );
        assert_eq!(
            get(&[("Range", "BYTES = 1-1")]),
            Answer::Partial(range(1, 1))
        );
        assert_eq!(
            get(&[("Range", "bytes=0-0, 10-19 ,,-1")]),
            Answer::Parts(vec![range(0, 1), range(10, 10), range(999, 1)])
        );
        // Unsatisfiable ranges are dropped; none left is 416.
        assert_eq!(
            get(&[("Range", "bytes=0-0,2000-")]),
            Answer::Partial(range(0, 1))
        );
        assert_eq!(get(&[("Range", "bytes=1000-")]), Answer::Unsatisfiable);
        assert_eq!(get(&[("Range", "bytes=-0")]), Answer::Unsatisfiable);
        assert_eq!(
            get(&[("Range", "bytes=99999999999999999999999-")]),
            Answer::Unsatisfiable
        );
        // Invalid fields are ignored.
        for bad in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=",
            "bytes=1",
            "0-1",
            "bytes=--1",
        ] {
            assert_eq!(get(&[("Range", bad)]), Answer::Full, "{bad}");
        }
        assert_eq!(
            get(&[("Range", "bytes=0-1"), ("Range", "bytes=2-3")]),
            Answer::Full
        );
        // Overlapping or too many ranges: the whole file.
        assert_eq!(get(&[("Range", "bytes=0-999,0-999")]), Answer::Full);
        let many: Vec<String> = (0..17).map(|i| format!("{i}-{i}")).collect();
        assert_eq!(
            get(&[("Range", &format!("bytes={}", many.join(",")))]),
            Answer::Full
        );
        // Only GET has ranges.
        assert_eq!(
            decide(&Method::HEAD, &headers(&[("Range", "bytes=0-9")]), &file()),
            Answer::Full
        );
        // An empty file has no byte to give.
        let empty = Validators::new(0, None);
        assert_eq!(
            decide(&Method::GET, &headers(&[("Range", "bytes=0-")]), &empty),
            Answer::Unsatisfiable
        );
    }

    #[test]
    fn if_range() {
        let etag = file().etag.unwrap();
        let date = file().last_modified().unwrap();
        for (if_range, expect) in [
            (etag.as_str(), Answer::Partial(range(0, 10))),
            (date.as_str(), Answer::Partial(range(0, 10))),
            ("\"old\"", Answer::Full),
            ("Mon, 13 Nov 2023 00:00:00 GMT", Answer::Full),
            ("garbage", Answer::Full),
        ] {
            assert_eq!(
                get(&[("Range", "bytes=0-9"), ("If-Range", if_range)]),
                expect,
                "{if_range}"
            );
        }
        // A weak tag never satisfies If-Range.
        assert_eq!(
            get(&[("Range", "bytes=0-9"), ("If-Range", &format!("W/{etag}"))]),
            Answer::Full
        );
        // Conditions come before ranges.
        assert_eq!(
            get(&[("Range", "bytes=0-9"), ("If-None-Match", &etag)]),
            Answer::NotModified
        );
    }
}
