//! Parsing the head of a CGI response (RFC 3875 §6): the header lines an
//! app writes before its body, with `Status` and `Location` given their CGI
//! meaning.
//!
//! The head must end within a limit (`max_response_header_size`, 64 KiB by
//! default); a larger one is an error that says so, rather than nginx's
//! puzzling "upstream sent too big header".

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

/// The parsed head of a CGI response.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub kind: ResponseKind,
}

/// What the gateway does with the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseKind {
    /// A document: send it.
    Document,
    /// §6.2.2 local redirect (`Location: /path` and no `Status`): serve that
    /// path instead, as a new GET.
    LocalRedirect(String),
    /// §6.2.3/§6.2.4 client redirect: `Location` with an absolute URI (302
    /// unless `Status` says otherwise), or any `Location` with a `Status`.
    ClientRedirect,
}

/// Why a response head could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The header block did not end within `limit` bytes.
    #[error("response header block larger than {limit} bytes (raise max_response_header_size)")]
    TooLarge { limit: usize },
    #[error("malformed response header: {0}")]
    Malformed(String),
}

/// Headers an app may not set: they belong to the connection, not the response.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-connection"
            | "te"
            | "trailer"
    )
}

/// Finds the end of the header block: the blank line, with CRLF or bare-LF
/// line endings (mixed too). Returns (end of the last header line, start of body).
fn find_end(buf: &[u8]) -> Option<(usize, usize)> {
    // An empty head: the body starts right away.
    if buf.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if buf.starts_with(b"\n") {
        return Some((0, 1));
    }
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let line_end = i + nl;
        let next = line_end + 1;
        if buf[next..].starts_with(b"\r\n") {
            return Some((line_end, next + 2));
        }
        if buf[next..].starts_with(b"\n") {
            return Some((line_end, next + 1));
        }
        i = next;
    }
    None
}

fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(80)]);
    if line.len() > 80 {
        format!("{text}…")
    } else {
        text.into_owned()
    }
}

/// Looks for a complete header block at the start of `buf`.
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((head, n)))`: the body starts
/// at `buf[n..]`. A block that has not ended within `limit` bytes is
/// [`HeadError::TooLarge`], even if it would end later.
pub fn parse_head(buf: &[u8], limit: usize) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let window = &buf[..buf.len().min(limit)];
    let Some((head_end, body_start)) = find_end(window) else {
        if buf.len() >= limit {
            return Err(HeadError::TooLarge { limit });
        }
        return Ok(None);
    };
    let mut status: Option<StatusCode> = None;
    let mut location: Option<String> = None;
    let mut headers = HeaderMap::new();
    for raw in buf[..head_end].split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HeadError::Malformed(format!(
                "folded header line {:?}",
                excerpt(line)
            )));
        }
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
            HeadError::Malformed(format!("line without a colon {:?}", excerpt(line)))
        })?;
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| {
            HeadError::Malformed(format!("invalid header name in {:?}", excerpt(line)))
        })?;
        let value = line[colon + 1..].trim_ascii();
        let value = HeaderValue::from_bytes(value).map_err(|_| {
            HeadError::Malformed(format!("invalid header value in {:?}", excerpt(line)))
        })?;
        if name.as_str() == "status" {
            status = Some(parse_status(value.as_bytes())?);
            continue;
        }
        if hop_by_hop(&name) {
            continue;
        }
        if name == http::header::LOCATION {
            location = value.to_str().ok().map(str::to_string);
        }
        headers.append(name, value);
    }
    let kind = match (&location, status) {
        (Some(loc), None) if loc.starts_with('/') && !loc.starts_with("//") => {
            headers.remove(http::header::LOCATION);
            ResponseKind::LocalRedirect(loc.clone())
        }
        (Some(_), None) => {
            status = Some(StatusCode::FOUND);
            ResponseKind::ClientRedirect
        }
        (Some(_), Some(_)) => ResponseKind::ClientRedirect,
        (None, _) => ResponseKind::Document,
    };
    Ok(Some((
        ResponseHead {
            status: status.unwrap_or(StatusCode::OK),
            headers,
            kind,
        },
        body_start,
    )))
}

/// `Status: 404 Not Found` or `Status: 404`.
fn parse_status(value: &[u8]) -> Result<StatusCode, HeadError> {
    let code = value.split(|&b| b == b' ').next().unwrap_or_default();
    if code.len() != 3 {
        return Err(HeadError::Malformed(format!(
            "invalid Status {:?}",
            excerpt(value)
        )));
    }
    let status = StatusCode::from_bytes(code)
        .map_err(|_| HeadError::Malformed(format!("invalid Status {:?}", excerpt(value))))?;
    // The gateway never switches protocols (101: FastCGI and CGI cannot
    // carry an upgraded connection) nor sends interim answers (hyper would
    // turn them into a 500 of its own): a 1xx is no final answer.
    if status.is_informational() {
        return Err(HeadError::Malformed(format!(
            "Status {:?}: a 1xx is not a final response, and the gateway never switches protocols",
            excerpt(value)
        )));
    }
    Ok(status)
}

/// `X-Accel-Buffering: yes | no` (the nginx convention an app uses to ask
/// for streaming), taken out of the response.
pub fn take_accel_buffering(headers: &mut http::HeaderMap) -> Option<bool> {
    let value = headers.remove("x-accel-buffering")?;
    match value.as_bytes() {
        v if v.eq_ignore_ascii_case(b"no") => Some(false),
        v if v.eq_ignore_ascii_case(b"yes") => Some(true),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> (ResponseHead, usize) {
        parse_head(buf, 64 * 1024).unwrap().unwrap()
    }

    #[test]
    fn php_style_response() {
        let buf = b"X-Powered-By: PHP/8.2\r\nContent-type: text/html; charset=UTF-8\r\n\r\nbody";
        let (head, n) = parse(buf);
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.kind, ResponseKind::Document);
        assert_eq!(head.headers["content-type"], "text/html; charset=UTF-8");
        assert_eq!(head.headers["x-powered-by"], "PHP/8.2");
        assert_eq!(&buf[n..], b"body");
    }

    #[test]
    fn bare_lf_and_mixed_endings() {
        let buf = b"Content-Type: text/plain\nX-A: 1\r\n\nrest";
        let (head, n) = parse(buf);
        assert_eq!(head.headers["x-a"], "1");
        assert_eq!(&buf[n..], b"rest");
    }

    #[test]
    fn empty_head_is_a_200() {
        let (head, n) = parse(b"\r\nhello");
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.headers.is_empty());
        assert_eq!(n, 2);
    }

    #[test]
    fn status_forms() {
        assert_eq!(
            parse(b"Status: 404 Not Found\r\n\r\n").0.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            parse(b"status: 418\r\n\r\n").0.status,
            StatusCode::IM_A_TEAPOT
        );
        assert!(
            parse(b"Status: 404 x\r\n\r\n")
                .0
                .headers
                .get("status")
                .is_none()
        );
        assert!(matches!(
            parse_head(b"Status: abc\r\n\r\n", 1000),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"Status: 99\r\n\r\n", 1000),
            Err(HeadError::Malformed(_))
        ));
        for interim in [
            &b"Status: 101 Switching Protocols\r\n\r\n"[..],
            b"Status: 100\r\n\r\n",
        ] {
            assert!(matches!(
                parse_head(interim, 1000),
                Err(HeadError::Malformed(_))
            ));
        }
    }

    #[test]
    fn location_kinds() {
        let (head, _) = parse(b"Location: /other.php?a=1\r\n\r\n");
        assert_eq!(
            head.kind,
            ResponseKind::LocalRedirect("/other.php?a=1".into())
        );
        assert!(head.headers.get("location").is_none());

        let (head, _) = parse(b"Location: https://example.com/x\r\n\r\n");
        assert_eq!(head.kind, ResponseKind::ClientRedirect);
        assert_eq!(head.status, StatusCode::FOUND);

        let (head, _) = parse(b"Status: 301 Moved\r\nLocation: /x\r\n\r\n");
        assert_eq!(head.kind, ResponseKind::ClientRedirect);
        assert_eq!(head.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(head.headers["location"], "/x");

        // A protocol-relative URL is not a local path.
        let (head, _) = parse(b"Location: //evil.example/x\r\n\r\n");
        assert_eq!(head.kind, ResponseKind::ClientRedirect);
    }

    #[test]
    fn repeated_headers_stay_separate_and_hop_by_hop_is_dropped() {
        let (head, _) = parse(b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
        let cookies: Vec<_> = head.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(head.headers.get("connection").is_none());
        assert!(head.headers.get("transfer-encoding").is_none());
    }

    #[test]
    fn incomplete_until_blank_line() {
        let full = b"Content-Type: text/plain\r\n\r\n";
        for end in 0..full.len() {
            assert!(
                parse_head(&full[..end], 1000).unwrap().is_none(),
                "at {end}"
            );
        }
        assert!(parse_head(full, 1000).unwrap().is_some());
    }

    #[test]
    fn size_limit_boundaries() {
        let head = b"X: 1\r\n\r\n"; // 8 bytes
        assert!(parse_head(head, 8).unwrap().is_some());
        assert!(matches!(
            parse_head(head, 7),
            Err(HeadError::TooLarge { limit: 7 })
        ));
        let long = vec![b'a'; 100];
        assert!(matches!(
            parse_head(&long, 100),
            Err(HeadError::TooLarge { .. })
        ));
        assert!(parse_head(&long, 101).unwrap().is_none());
        // A complete block within the limit is fine even when the body makes buf longer.
        let mut with_body = head.to_vec();
        with_body.extend_from_slice(&[b'b'; 500]);
        assert!(parse_head(&with_body, 10).unwrap().is_some());
    }

    #[test]
    fn malformed_lines() {
        assert!(matches!(
            parse_head(b"no colon here\r\n\r\n", 1000),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"X: 1\r\n folded\r\n\r\n", 1000),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"Bad Name: 1\r\n\r\n", 1000),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn obs_text_values_are_kept() {
        let (head, _) = parse(b"X-Name: caf\xe9\r\n\r\n");
        assert_eq!(head.headers["x-name"].as_bytes(), b"caf\xe9");
    }
}
