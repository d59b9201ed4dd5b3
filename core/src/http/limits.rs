//! Request head limits: the longest header line, the whole head, the number
//! of header lines and the length of the request target (`[server]`
//! `max_header_line`, `max_request_head`, `max_headers`, `max_uri_length`).
//!
//! [`HeadScan`] is sans-I/O: the framing guard feeds it the bytes of an
//! HTTP/1 request head as they arrive, and it says where the head ends or
//! which limit the head went over, as soon as it does, so that the guard
//! never holds more than `max_request_head` bytes of a head. HTTP/2 heads
//! arrive parsed (hyper's h2 decodes them); [`check_parsed`] measures them
//! as the same head would measure in HTTP/1, so one set of limits holds for
//! both. This module decides; the guard and the service act.

use std::fmt;

use http::{Request, header};

use crate::config::HeadLimits;

/// Which limit a head went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    HeaderLine,
    RequestHead,
    Headers,
    UriLength,
}

impl Limit {
    /// The `[server]` key that raises it.
    pub fn key(self) -> &'static str {
        match self {
            Limit::HeaderLine => "max_header_line",
            Limit::RequestHead => "max_request_head",
            Limit::Headers => "max_headers",
            Limit::UriLength => "max_uri_length",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Limit::HeaderLine => "a header line",
            Limit::RequestHead => "the request head",
            Limit::Headers => "a header count",
            Limit::UriLength => "the request target",
        }
    }
}

/// A request head over one of the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverLimit {
    pub limit: Limit,
    /// Bytes (header lines for [`Limit::Headers`]) seen when the head was
    /// refused: the rest of it is never read, so there may be more.
    pub seen: usize,
    pub max: usize,
}

impl fmt::Display for OverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.limit.key();
        let unit = if self.limit == Limit::Headers {
            ""
        } else {
            " bytes"
        };
        write!(
            f,
            "{} of at least {}{unit}, over {key} = {}{unit}; [server] {key} raises it",
            self.limit.what(),
            self.seen,
            self.max
        )
    }
}

impl std::error::Error for OverLimit {}

/// Where the scanner is in the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Empty lines before the request line (RFC 9112 §2.2 allows them).
    Leading,
    Method,
    /// Inside the request target, this many bytes so far.
    Target(usize),
    Version,
    /// Header lines; `line` bytes of the current one so far.
    Headers {
        line: usize,
    },
}

/// Measures one HTTP/1 request head as its bytes arrive.
#[derive(Debug, Clone)]
pub struct HeadScan {
    limits: HeadLimits,
    part: Part,
    /// Bytes fed since the head began.
    total: usize,
    headers: usize,
    /// The request line ended without an HTTP version (HTTP/0.9, or less).
    no_version: bool,
}

impl HeadScan {
    pub fn new(limits: HeadLimits) -> HeadScan {
        HeadScan {
            limits,
            part: Part::Leading,
            total: 0,
            headers: 0,
            no_version: false,
        }
    }

    /// Bytes fed since the head began.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The most bytes a head may have (`max_request_head`).
    pub fn limit(&self) -> usize {
        self.limits.max_request_head
    }

    /// Header lines seen so far (all of them once the head ended).
    pub fn headers(&self) -> usize {
        self.headers
    }

    /// Whether the request line ended without an HTTP version (an HTTP/0.9
    /// request, which has no head to wait for): known as soon as the line
    /// ends, before the head does.
    pub fn no_version(&self) -> bool {
        self.no_version
    }

    /// Makes ready for the next head.
    pub fn reset(&mut self) {
        *self = HeadScan::new(self.limits);
    }

    /// Feeds the next bytes of the head: `Some(n)` when it ends after `n`
    /// bytes of `data`, `None` when more is needed, or the limit it went
    /// over (measured as far as `data` goes).
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, OverLimit> {
        for (i, &b) in data.iter().enumerate() {
            self.total += 1;
            let over = match self.step(b) {
                Step::More => None,
                Step::End => return Ok(Some(i + 1)),
                Step::Over(limit) => Some(limit),
            };
            let over =
                over.or((self.total > self.limits.max_request_head).then_some(Limit::RequestHead));
            if let Some(limit) = over {
                return Err(self.measure(limit, &data[i + 1..]));
            }
        }
        Ok(None)
    }

    fn step(&mut self, b: u8) -> Step {
        let eol = b == b'\n';
        match &mut self.part {
            Part::Leading if b == b'\r' || eol => {}
            Part::Leading => self.part = Part::Method,
            Part::Method | Part::Target(_) if eol => {
                self.no_version = true;
                self.part = Part::Headers { line: 0 };
            }
            Part::Version if eol => self.part = Part::Headers { line: 0 },
            Part::Method if b == b' ' => self.part = Part::Target(0),
            Part::Target(_) if b == b' ' => self.part = Part::Version,
            Part::Target(len) => {
                *len += 1;
                if *len > self.limits.max_uri_length {
                    return Step::Over(Limit::UriLength);
                }
            }
            Part::Method | Part::Version => {}
            Part::Headers { line: 0 } if eol => return Step::End,
            Part::Headers { line } if eol => *line = 0,
            // A CR belongs to the line end (a bare CR is refused by the parser).
            Part::Headers { .. } if b == b'\r' => {}
            Part::Headers { line } => {
                *line += 1;
                if *line == 1 {
                    self.headers += 1;
                    if self.headers > self.limits.max_headers {
                        return Step::Over(Limit::Headers);
                    }
                }
                if *line > self.limits.max_header_line {
                    return Step::Over(Limit::HeaderLine);
                }
            }
        }
        Step::More
    }

    /// What was seen of the item over `limit`, with the bytes already in
    /// hand after the one that went over (none is read for it).
    fn measure(&self, limit: Limit, rest: &[u8]) -> OverLimit {
        let until = |stop: &[u8]| rest.iter().take_while(|b| !stop.contains(b)).count();
        let (seen, max) = match (limit, self.part) {
            (Limit::HeaderLine, Part::Headers { line }) => (
                line + rest
                    .iter()
                    .take_while(|&&b| b != b'\n')
                    .filter(|&&b| b != b'\r')
                    .count(),
                self.limits.max_header_line,
            ),
            (Limit::UriLength, Part::Target(len)) => {
                (len + until(b" \r\n"), self.limits.max_uri_length)
            }
            (Limit::Headers, _) => {
                let more = rest
                    .split(|&b| b == b'\n')
                    .skip(1)
                    .take_while(|line| !line.is_empty() && *line != b"\r")
                    .count();
                (self.headers + more, self.limits.max_headers)
            }
            _ => (self.total + rest.len(), self.limits.max_request_head),
        };
        OverLimit { limit, seen, max }
    }
}

enum Step {
    More,
    End,
    Over(Limit),
}

/// Checks a head that arrived parsed (HTTP/2), measured as the same head
/// would be in HTTP/1: a request line, one line per header (the Cookie
/// fields HTTP/2 sends apart count as the one line they are joined into).
pub fn check_parsed<B>(req: &Request<B>, limits: &HeadLimits) -> Result<(), OverLimit> {
    let over = |limit: Limit, seen: usize, max: usize| {
        if seen > max {
            Err(OverLimit { limit, seen, max })
        } else {
            Ok(())
        }
    };
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    over(Limit::UriLength, target, limits.max_uri_length)?;
    // "METHOD target HTTP/1.1\r\n", then the empty line.
    let mut total = req.method().as_str().len() + target + 12 + 2;
    let mut lines = 0;
    let mut cookie = 0;
    for (name, value) in req.headers() {
        if name == header::COOKIE {
            cookie += if cookie == 0 { 0 } else { 2 } + value.len();
            continue;
        }
        let line = name.as_str().len() + 2 + value.len();
        over(Limit::HeaderLine, line, limits.max_header_line)?;
        lines += 1;
        total += line + 2;
    }
    if cookie > 0 {
        let line = "cookie: ".len() + cookie;
        over(Limit::HeaderLine, line, limits.max_header_line)?;
        lines += 1;
        total += line + 2;
    }
    over(Limit::Headers, lines, limits.max_headers)?;
    over(Limit::RequestHead, total, limits.max_request_head)
}

/// Why a request head was refused on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Ambiguous framing (400).
    #[error("ambiguous framing: {0}")]
    Framing(&'static str),
    /// A request the gateway does not serve or cannot read: a malformed
    /// head, an invalid Content-Length, CONNECT, an asterisk-form target,
    /// an HTTP/0.9 request line (400).
    #[error("{0}")]
    Malformed(&'static str),
    /// A Transfer-Encoding other than `chunked` alone, all its header lines
    /// taken together (501, as nginx answers).
    #[error(
        "unknown Transfer-Encoding {0:?}: only \"chunked\" is implemented (no other coding, no list of codings)"
    )]
    UnknownCoding(String),
    /// Over a head limit (431, or 414 for the URI).
    #[error(transparent)]
    Limit(#[from] OverLimit),
}

impl Refusal {
    pub fn is_not_implemented(&self) -> bool {
        matches!(self, Refusal::UnknownCoding(_))
    }

    pub fn is_uri_too_long(&self) -> bool {
        matches!(self, Refusal::Limit(over) if over.limit == Limit::UriLength)
    }

    pub fn is_too_large(&self) -> bool {
        matches!(self, Refusal::Limit(_))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits() -> HeadLimits {
        HeadLimits {
            max_header_line: 100,
            max_request_head: 1000,
            max_headers: 5,
            max_uri_length: 50,
        }
    }

    fn scan(head: &[u8]) -> Result<Option<usize>, OverLimit> {
        HeadScan::new(limits()).feed(head)
    }

    #[test]
    fn finds_the_end_of_a_head() {
        let head = b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nBODY";
        assert_eq!(scan(head), Ok(Some(head.len() - 4)));
        assert_eq!(scan(b"GET / HTTP/1.1\nHost: a\n\nrest"), Ok(Some(24)));
        assert_eq!(scan(b"\r\n\r\nGET / HTTP/1.0\r\n\r\n"), Ok(Some(22)));
        assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn a_head_split_anywhere_ends_at_the_same_byte() {
        let head = b"GET /path?q=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\nNEXT";
        for split in 0..head.len() {
            let mut scan = HeadScan::new(limits());
            let end = match scan.feed(&head[..split]).unwrap() {
                Some(n) => n,
                None => split + scan.feed(&head[split..]).unwrap().unwrap(),
            };
            assert_eq!(&head[end..], b"NEXT", "split at {split}");
            assert_eq!(scan.headers(), 2);
        }
    }

    #[test]
    fn each_limit_is_named_with_what_was_seen() {
        let long_line = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(150));
        let e = scan(long_line.as_bytes()).unwrap_err();
        assert_eq!(e.limit, Limit::HeaderLine);
        assert_eq!(e.seen, "X-Big: ".len() + 150);
        assert_eq!(e.max, 100);
        assert!(e.to_string().contains("[server] max_header_line"), "{e}");

        let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "u".repeat(79));
        let e = scan(long_uri.as_bytes()).unwrap_err();
        assert_eq!((e.limit, e.seen, e.max), (Limit::UriLength, 80, 50));

        let many: String = (0..8).map(|i| format!("X-{i}: v\r\n")).collect();
        let e = scan(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap_err();
        assert_eq!((e.limit, e.seen, e.max), (Limit::Headers, 8, 5));
        assert_eq!(
            e.to_string(),
            "a header count of at least 8, over max_headers = 5; [server] max_headers raises it"
        );
    }

    #[test]
    fn an_unfinished_head_is_refused_as_soon_as_it_passes_the_limit() {
        let mut scan = HeadScan::new(HeadLimits {
            max_headers: 1000,
            ..limits()
        });
        scan.feed(b"GET / HTTP/1.1\r\n").unwrap();
        let line = format!("X: {}\r\n", "c".repeat(50));
        let mut fed = 16;
        loop {
            match scan.feed(line.as_bytes()) {
                Ok(None) => fed += line.len(),
                Ok(Some(_)) => panic!("no end"),
                Err(e) => {
                    assert_eq!(e.limit, Limit::RequestHead);
                    assert!(e.seen > 1000 && e.seen <= fed + line.len(), "{e:?}");
                    break;
                }
            }
            assert!(fed <= 1000, "held {fed} bytes");
        }
        // Empty lines alone count too.
        let e = HeadScan::new(limits()).feed(&[b'\n'; 2000]).unwrap_err();
        assert_eq!((e.limit, e.seen), (Limit::RequestHead, 2000));
    }

    #[test]
    fn a_request_line_without_a_version_is_known_at_its_end() {
        for line in [
            &b"GET /\r\n"[..],
            b"GET /x\n",
            b"GET\r\n",
            b"\r\nPOST /a\r\n",
        ] {
            let mut scan = HeadScan::new(limits());
            assert_eq!(scan.feed(line), Ok(None), "{line:?}");
            assert!(scan.no_version(), "{line:?}");
        }
        let mut scan = HeadScan::new(limits());
        assert_eq!(scan.feed(b"GET / HTTP/1.1\r\n"), Ok(None));
        assert!(!scan.no_version());
        // Not before the line ends.
        let mut scan = HeadScan::new(limits());
        assert_eq!(scan.feed(b"GET /"), Ok(None));
        assert!(!scan.no_version());
    }

    #[test]
    fn limits_at_exactly_the_maximum_pass() {
        let line = format!("X-L: {}", "a".repeat(95));
        let uri = format!("/{}", "u".repeat(49));
        let head = format!("GET {uri} HTTP/1.1\r\n{line}\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
        assert_eq!(scan(head.as_bytes()), Ok(Some(head.len())));
    }

    #[test]
    fn parsed_heads_are_measured_as_http1_heads() {
        let ok = Request::get("/a?b=c")
            .header("x-one", "1")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        assert_eq!(check_parsed(&ok, &limits()), Ok(()));
        let cookies = (0..10).fold(Request::get("/"), |r, i| {
            r.header("cookie", format!("c{i}=1"))
        });
        assert_eq!(check_parsed(&cookies.body(()).unwrap(), &limits()), Ok(()));

        let long = Request::get("/")
            .header("x-big", "a".repeat(100))
            .body(())
            .unwrap();
        let e = check_parsed(&long, &limits()).unwrap_err();
        assert_eq!((e.limit, e.seen), (Limit::HeaderLine, 107));
        let many = (0..6).fold(Request::get("/"), |r, i| r.header(format!("x-{i}"), "v"));
        let e = check_parsed(&many.body(()).unwrap(), &limits()).unwrap_err();
        assert_eq!(e.limit, Limit::Headers);
        let uri = Request::get(format!("/{}", "u".repeat(60)))
            .body(())
            .unwrap();
        assert_eq!(
            check_parsed(&uri, &limits()).unwrap_err().limit,
            Limit::UriLength
        );
        let big = (0..5).fold(Request::get("/"), |r, i| {
            r.header(format!("x-{i}"), "b".repeat(90))
        });
        let small_head = HeadLimits {
            max_request_head: 400,
            ..limits()
        };
        let e = check_parsed(&big.body(()).unwrap(), &small_head).unwrap_err();
        // "GET / HTTP/1.1\r\n" + 5 × "x-N: b…b\r\n" + "\r\n"
        assert_eq!((e.limit, e.seen), (Limit::RequestHead, 16 + 5 * 97 + 2));
    }
}
