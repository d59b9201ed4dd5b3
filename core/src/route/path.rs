//! Request paths: decoded once, checked, normalised.
//!
//! Every lesson here is a past vulnerability: decoding twice
//! (`%252e%252e`), splitting with a regex that a `%0a` breaks
//! (CVE-2019-11043), and `..` hidden behind encodings (`.%2e`, `%2f`;
//! CVE-2021-41773). So: percent-decode exactly once, refuse control
//! characters, then resolve `.` and `..` on the decoded path, and refuse a
//! `..` that would climb above the root instead of clamping it.

/// Why a request path is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("request path is not absolute")]
    NotAbsolute,
    #[error("request path has an invalid percent-encoding")]
    BadEncoding,
    #[error("request path contains a control character (CR, LF, NUL, ...)")]
    ControlChar,
    #[error("request path is not valid UTF-8")]
    NotUtf8,
    #[error("request path escapes the document root")]
    Traversal,
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes a raw request path once and normalises it: repeated `/`
/// collapse, `.` segments go, `..` segments remove their parent, a trailing
/// `/` stays.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::BadEncoding);
            };
            decoded.push(h << 4 | l);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::ControlChar);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    let trailing_slash = decoded.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::Traversal);
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (trailing_slash && !segments.is_empty()) {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        assert_eq!(normalize_path("/"), Ok("/".into()));
        assert_eq!(normalize_path("/a/b.php"), Ok("/a/b.php".into()));
        assert_eq!(normalize_path("//a///b"), Ok("/a/b".into()));
        assert_eq!(normalize_path("/a/./b/"), Ok("/a/b/".into()));
        assert_eq!(normalize_path("/a/../b"), Ok("/b".into()));
        assert_eq!(normalize_path("/a/.."), Ok("/".into()));
        assert_eq!(normalize_path("/a%20b"), Ok("/a b".into()));
        assert_eq!(normalize_path("/caf%C3%A9"), Ok("/café".into()));
    }

    #[test]
    fn traversal_in_any_encoding() {
        for raw in [
            "/..",
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/%2e%2e/etc",
            "/a/%2e%2e/%2e%2e/x",
            "/a/..%2f..%2fetc/passwd",
            "/cgi-bin/.%2e/.%2e/.%2e/etc/passwd",
            "/a/b/../../..",
        ] {
            assert_eq!(normalize_path(raw), Err(PathError::Traversal), "{raw}");
        }
    }

    #[test]
    fn encoded_slash_is_a_separator_after_decoding() {
        assert_eq!(normalize_path("/a%2fb"), Ok("/a/b".into()));
        assert_eq!(normalize_path("/a/b%2f..%2fc"), Ok("/a/c".into()));
    }

    #[test]
    fn double_encoding_decodes_once() {
        assert_eq!(
            normalize_path("/%252e%252e/etc/passwd"),
            Ok("/%2e%2e/etc/passwd".into())
        );
    }

    #[test]
    fn control_characters_are_refused() {
        for raw in ["/a%0ab", "/a%0d", "/x.php%00.jpg", "/a%7f", "/a%09"] {
            assert_eq!(normalize_path(raw), Err(PathError::ControlChar), "{raw}");
        }
    }

    #[test]
    fn bad_encodings() {
        assert_eq!(normalize_path("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("/a%4"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("/a%"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("/%ff"), Err(PathError::NotUtf8));
        assert_eq!(normalize_path("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(normalize_path("*"), Err(PathError::NotAbsolute));
    }

    /// Percent-encodes every byte of `s` that is not unreserved, so that
    /// decoding it gives `s` back.
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// Paths made of the pieces that matter: separators, dots, encodings
    /// of both, control characters, non-ASCII, plain names.
    fn arb_raw_path() -> impl proptest::strategy::Strategy<Value = String> {
        let piece = proptest::prop_oneof![
            proptest::strategy::Just("/".to_string()),
            proptest::strategy::Just(".".to_string()),
            proptest::strategy::Just("..".to_string()),
            proptest::strategy::Just("%2e".to_string()),
            proptest::strategy::Just("%2F".to_string()),
            proptest::strategy::Just("%25".to_string()),
            proptest::strategy::Just("%00".to_string()),
            proptest::strategy::Just("%".to_string()),
            proptest::strategy::Just("caf\u{e9}".to_string()),
            "[a-z]{1,3}",
            proptest::string::string_regex("[ -~]{0,3}").unwrap_or_else(|_| unreachable!()),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|pieces| format!("/{}", pieces.concat()))
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// A normalised path is a fixed point (once its `%` is encoded
        /// again, since it is decoded), and has no `.`, `..` or empty
        /// segment: it never leaves the root.
        #[test]
        fn normalising_is_idempotent_and_stays_inside_the_root(raw in arb_raw_path()) {
            if let Ok(path) = normalize_path(&raw) {
                proptest::prop_assert!(path.starts_with('/'));
                proptest::prop_assert_eq!(
                    normalize_path(&path.replace('%', "%25")),
                    Ok(path.clone())
                );
                let inner = path.trim_start_matches('/');
                let inner = inner.strip_suffix('/').unwrap_or(inner);
                if !inner.is_empty() {
                    for segment in inner.split('/') {
                        proptest::prop_assert!(
                            !matches!(segment, "" | "." | ".."),
                            "{:?} gave {:?}", raw, path
                        );
                    }
                }
            }
        }

        /// Decoding then normalising is normalising the decoded path: the
        /// encoding of a byte never changes what it means.
        #[test]
        fn an_encoded_path_normalises_as_its_decoded_form(raw in arb_raw_path()) {
            let Ok(decoded) = percent_encoding::percent_decode_str(&raw).decode_utf8() else {
                return Ok(());
            };
            if raw.contains('%') && normalize_path(&raw) == Err(PathError::BadEncoding) {
                return Ok(());
            }
            proptest::prop_assert_eq!(normalize_path(&raw), normalize_path(&encode(&decoded)));
        }
    }
}
