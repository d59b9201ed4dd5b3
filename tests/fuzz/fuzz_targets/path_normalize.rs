//! Request-path decoding and normalisation (`route::normalize_path`): never
//! a panic; a path it accepts is absolute, has no `.`/`..`/empty segments,
//! no control characters, and normalises to itself once re-encoded.
#![no_main]

use fastgate::route::normalize_path;
use libfuzzer_sys::fuzz_target;

/// Percent-encodes what would be decoded again (`%`), so that a normalised
/// path can be fed back as a raw one.
fn reencode(path: &str) -> String {
    path.replace('%', "%25")
}

fuzz_target!(|input: &[u8]| {
    let Ok(raw) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(path) = normalize_path(raw) else {
        return;
    };
    assert!(path.starts_with('/'), "{path:?} is not absolute");
    assert!(!path.bytes().any(|b| b < 0x20 || b == 0x7f), "{path:?}");
    let inner = path.strip_prefix('/').unwrap_or(&path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if !inner.is_empty() {
        for segment in inner.split('/') {
            assert!(
                !matches!(segment, "" | "." | ".."),
                "{raw:?} gave {path:?} with segment {segment:?}"
            );
        }
    }
    assert_eq!(
        normalize_path(&reencode(&path)).as_deref(),
        Ok(path.as_str())
    );
});
