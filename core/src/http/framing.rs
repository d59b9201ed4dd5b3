//! Request framing checks and head limits that hyper does not make for us.
//!
//! hyper resolves a request carrying both `Content-Length` and
//! `Transfer-Encoding` by trusting the latter and dropping the former
//! (RFC 9112 allows that). A gateway in front of other servers should
//! refuse such a request outright (it is the request-smuggling pattern), so
//! [`Guarded`] looks at each request head on the wire before hyper does:
//! it holds the head back until it is complete, checks it, and then follows
//! the body's framing (length or chunked) to find the next head on a
//! keep-alive connection. While it holds a head it measures it against the
//! `[server]` head limits ([`super::limits`]), and refuses it as soon as it
//! goes over one: it never holds more than `max_request_head` bytes of a
//! head, and nothing of a refused head reaches hyper or an app.
//!
//! A refused head is answered by the service, like every other error (one
//! status mapping, one log line, an access-log entry): the guard hands
//! hyper a small stand-in request in its place and leaves the reason in the
//! connection's [`Refusals`], under the request's position on the
//! connection; the service finds it there, answers 400, 414, 431 or 501
//! (a transfer coding other than `chunked`) with `Connection: close`, and
//! the connection ends.
//!
//! Every HTTP/1 head is judged, whatever came before it on the connection:
//! a malformed head, CONNECT, an asterisk-form target and an HTTP/0.9
//! request line are refused here (400) rather than left to hyper, and an
//! `Upgrade` header changes nothing (the gateway never upgrades), so no
//! request can switch the checks off for the ones after it. Only the
//! HTTP/2 preface does: hyper's h2 frames those requests itself. The guard then reads and
//! drops what the client is still sending for a moment before closing
//! (nginx's lingering close), so that the client reads the answer rather
//! than a reset.
//!
//! [`check_request`] holds the checks made on the parsed request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Version, header};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::info;

use super::error::GatewayError;
use super::limits::{self, HeadScan, Refusal};
use crate::config::HeadLimits;

/// The HTTP/2 connection preface (prior-knowledge h2c).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest read while collecting a head.
const HEAD_READ: usize = 8192;
/// Largest read of a request body passed through.
const BODY_READ: usize = 16 * 1024;

/// Reads at most `want` bytes from the client into memory not zeroed first
/// (a zeroed buffer per read cost more than the copy).
fn read_some<S: AsyncRead + Unpin>(
    inner: &mut S,
    cx: &mut Context<'_>,
    want: usize,
) -> Poll<io::Result<Vec<u8>>> {
    let mut data = Vec::with_capacity(want);
    let mut room = bytes::BufMut::limit(&mut data, want);
    ready!(tokio_util::io::poll_read_buf(
        Pin::new(inner),
        cx,
        &mut room
    ))?;
    Poll::Ready(Ok(data))
}
/// After a refusal: how long, and how many bytes, the client's input is
/// read and dropped before the connection closes.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;
/// Longest request target kept for the stand-in (the access log).
const STAND_IN_TARGET: usize = 200;

/// The refused head of a connection, from the guard to the service: at
/// most one, since the connection ends after it.
#[derive(Debug, Default)]
pub struct Refusals {
    refused: Mutex<Option<(u64, Refusal)>>,
}

impl Refusals {
    fn set(&self, request: u64, refusal: Refusal) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        *refused = Some((request, refusal));
    }

    /// Why the connection's request number `request` (from 0) was refused,
    /// if it was. hyper may read ahead of the request it hands the service
    /// (pipelining), so the position, not the time, tells which one it is.
    pub fn take(&self, request: u64) -> Option<Refusal> {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match refused.take() {
            Some((at, refusal)) if at == request => Some(refusal),
            other => {
                *refused = other;
                None
            }
        }
    }
}

/// Checks on a parsed request that hyper leaves to the server: a head the
/// guard refused (its reason rides in the request's extensions), the head
/// limits of an HTTP/2 request (the guard sees only HTTP/1), and the Host
/// rules.
pub fn check_request<B>(req: &mut Request<B>, limits: &HeadLimits) -> Result<(), GatewayError> {
    if let Some(refusal) = req.extensions_mut().remove::<Refusal>() {
        return Err(GatewayError::Head(refusal));
    }
    if req.version() == Version::HTTP_2 {
        limits::check_parsed(req, limits).map_err(|over| GatewayError::Head(over.into()))?;
        // The guard refuses these in HTTP/1 heads; an HTTP/2 request
        // arrives parsed, so here.
        if req.method() == http::Method::CONNECT {
            return Err(GatewayError::BadRequest(
                "CONNECT is not served (no tunnels)",
            ));
        }
        if req.uri().path() == "*" {
            return Err(GatewayError::BadRequest(
                "asterisk-form request target (\"*\") is not served",
            ));
        }
    }
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(GatewayError::BadRequest("more than one Host header"));
    }
    if hosts == 0 && req.version() == Version::HTTP_11 {
        return Err(GatewayError::BadRequest(
            "HTTP/1.1 request without a Host header",
        ));
    }
    target_authority_wins(req)
}

/// RFC 9112 §3.2.2: with an absolute-form target (`GET http://a.example/x`)
/// the target's authority is the request's host, whatever the Host header
/// says. It becomes the Host header, so that the app (HTTP_HOST,
/// SERVER_NAME), the plugins and the routing all see the one host, and the
/// target goes on in origin-form (`/x`), as REQUEST_URI has it. An HTTP/2
/// request's `:authority` is the same thing.
fn target_authority_wins<B>(req: &mut Request<B>) -> Result<(), GatewayError> {
    let Some(authority) = req.uri().authority() else {
        return Ok(());
    };
    // RFC 9110 §4.2.4: userinfo in an http(s) URI is to be treated as an error.
    if authority.as_str().contains('@') {
        return Err(GatewayError::BadRequest(
            "userinfo (user@) in the request target",
        ));
    }
    let host = header::HeaderValue::from_str(authority.as_str())
        .map_err(|_| GatewayError::BadRequest("invalid authority in the request target"))?;
    let origin = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let origin = http::Uri::try_from(origin)
        .map_err(|_| GatewayError::BadRequest("invalid request target"))?;
    req.headers_mut().insert(header::HOST, host);
    *req.uri_mut() = origin;
    Ok(())
}

/// Where the reader is in the byte stream of a connection.
#[derive(Debug)]
enum State {
    /// Collecting a request head (held back from hyper until complete).
    Head,
    /// Handing `held[..upto]` (a checked head and the body bytes that came
    /// with it) to hyper; `pos` bytes are out. Then `next`.
    Release {
        pos: usize,
        upto: usize,
        next: Box<State>,
    },
    /// Inside a body of known length.
    Fixed(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// After `header_read_timeout`: no more input reaches hyper.
    Closed,
    /// After a refused head, while its answer goes out: what the client
    /// still sends is dropped, and hyper sees neither input nor its end
    /// (an end of input would make it drop the answer).
    Refused,
    /// No more checks: HTTP/2 (hyper's h2 frames the requests), or the
    /// client's input ended inside a head.
    Passthrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the size line (`size` so far, `ext` once past the digits).
    Size {
        size: u64,
        ext: bool,
    },
    /// Expecting the LF of the size line.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// Reading trailer lines; `empty` = at the start of a line.
    Trailer {
        empty: bool,
    },
    TrailerLf {
        empty: bool,
    },
}

/// A client connection whose request heads are checked before hyper sees them.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    state: State,
    held: Vec<u8>,
    first: bool,
    /// hyper's `header_read_timeout` only starts when hyper sees a byte, and
    /// heads are held back from it: so the clock runs here, from the first
    /// byte of a head until the head is complete.
    head_timeout: Duration,
    head_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The head being collected, measured as it comes; `scanned` bytes of
    /// `held` are fed to it.
    scan: HeadScan,
    scanned: usize,
    /// Heads handed to hyper so far: the position of the next request.
    heads: u64,
    refusals: std::sync::Arc<Refusals>,
    /// Set after a refusal: drop the client's input for a moment before
    /// closing.
    linger: Option<Linger>,
}

#[derive(Debug)]
struct Linger {
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Bytes still to drop before giving up on a clean close.
    left: usize,
    /// The client's end of input was seen.
    ended: bool,
    shut: bool,
}

impl<S> Guarded<S> {
    pub fn new(
        inner: S,
        head_timeout: Duration,
        limits: HeadLimits,
        refusals: std::sync::Arc<Refusals>,
    ) -> Self {
        Guarded {
            inner,
            state: State::Head,
            held: Vec::new(),
            first: true,
            head_timeout,
            head_deadline: None,
            scan: HeadScan::new(limits),
            scanned: 0,
            heads: 0,
            refusals,
            linger: None,
        }
    }
}

/// What the framing of a complete head says.
enum Verdict {
    Next(State),
    Reject(Refusal),
}

/// Longest Transfer-Encoding value quoted in a refusal (the log line).
const QUOTED_CODING: usize = 100;

/// Judges a complete head: what follows it (nothing, a body of known
/// length, a chunked body) or why it is refused. Every HTTP/1 head goes
/// through here, so the checks hold in every order of headers and
/// requests: nothing but the HTTP/2 preface switches the guard off.
/// `headers`: how many header lines the head has (the scanner counted them).
fn judge(head: &[u8], headers: usize) -> Verdict {
    let mut fields = vec![httparse::EMPTY_HEADER; headers.max(1)];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        // The parser and the scanner must agree on where the head ends, or
        // the next head would be looked for in the wrong place.
        Ok(httparse::Status::Complete(_)) => {
            return Verdict::Reject(Refusal::Framing("request head ends where it should not"));
        }
        // hyper parses with the same parser and would refuse it too; the
        // guard answers, so that the log says so and nothing is passed on.
        _ => return Verdict::Reject(Refusal::Malformed("malformed request head")),
    }
    // FastCGI and CGI apps cannot take over a connection: CONNECT (a
    // tunnel) and the asterisk-form (server-wide OPTIONS) are refused, as
    // nginx refuses them.
    if req.method == Some("CONNECT") {
        return Verdict::Reject(Refusal::Malformed("CONNECT is not served (no tunnels)"));
    }
    if req.path == Some("*") {
        return Verdict::Reject(Refusal::Malformed(
            "asterisk-form request target (\"*\") is not served",
        ));
    }
    match body_framing(req.headers, req.version == Some(0)) {
        Ok(next) => Verdict::Next(next),
        Err(refusal) => Verdict::Reject(refusal),
    }
}

/// The body's framing from the headers: every Content-Length and every
/// Transfer-Encoding line is looked at, in any order. An Upgrade header
/// changes nothing: the gateway never upgrades a connection (hyper serves
/// it without upgrades, and FastCGI cannot carry one).
fn body_framing(headers: &[httparse::Header<'_>], http10: bool) -> Result<State, Refusal> {
    let mut length: Option<u64> = None;
    // Every Transfer-Encoding line, joined into one list (RFC 9110 §5.3).
    let mut codings: Option<Vec<u8>> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = content_length(h.value)
                .ok_or(Refusal::Malformed("invalid Content-Length header"))?;
            if length.is_some_and(|known| known != value) {
                return Err(Refusal::Framing("conflicting Content-Length headers"));
            }
            length = Some(value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let list = codings.get_or_insert_with(Vec::new);
            if !list.is_empty() {
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(h.value);
        }
    }
    let Some(codings) = codings else {
        return Ok(match length {
            Some(0) | None => State::Head,
            Some(n) => State::Fixed(n),
        });
    };
    if length.is_some() {
        return Err(Refusal::Framing(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if http10 {
        return Err(Refusal::Malformed(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    // Only `chunked` alone: anything else would be passed on undecoded.
    if !codings.trim_ascii().eq_ignore_ascii_case(b"chunked") {
        let cut = &codings[..codings.len().min(QUOTED_CODING)];
        return Err(Refusal::UnknownCoding(
            String::from_utf8_lossy(cut).into_owned(),
        ));
    }
    Ok(State::Chunked(Chunk::Size {
        size: 0,
        ext: false,
    }))
}

/// A Content-Length value: digits only, around them optional whitespace.
/// (`"+5".parse::<u64>()` succeeds, and `5, 5` is a list: both refused, as
/// nginx refuses them.)
pub fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Chunk {
    /// Advances over `data`; returns how many bytes belong to the body (the
    /// rest starts the next request head) and the state after them, `None`
    /// when the body ended.
    fn advance(mut self, data: &[u8]) -> (usize, Option<Chunk>) {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            self = match self {
                Chunk::Size { size, ext } => match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => return_after_size(size),
                    _ if ext => Chunk::Size { size, ext },
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                        Chunk::Size {
                            size: size.saturating_mul(16).saturating_add(digit),
                            ext,
                        }
                    }
                    _ => Chunk::Size { size, ext: true },
                },
                Chunk::SizeLf { size } => return_after_size(size),
                Chunk::Data(n) => {
                    let take = (data.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
                    i += take;
                    let left = n - take as u64;
                    self = if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left)
                    };
                    continue;
                }
                Chunk::DataCr => match b {
                    b'\n' => Chunk::Size {
                        size: 0,
                        ext: false,
                    },
                    _ => Chunk::DataLf,
                },
                Chunk::DataLf => Chunk::Size {
                    size: 0,
                    ext: false,
                },
                Chunk::Trailer { empty } => match b {
                    b'\r' => Chunk::TrailerLf { empty },
                    b'\n' if empty => return (i + 1, None),
                    b'\n' => Chunk::Trailer { empty: true },
                    _ => Chunk::Trailer { empty: false },
                },
                Chunk::TrailerLf { empty } => {
                    if empty {
                        return (i + 1, None);
                    }
                    Chunk::Trailer { empty: true }
                }
            };
            i += 1;
        }
        (i, Some(self))
    }
}

fn return_after_size(size: u64) -> Chunk {
    if size == 0 {
        Chunk::Trailer { empty: true }
    } else {
        Chunk::Data(size)
    }
}

impl<S> Guarded<S> {
    /// Releases everything held and stops checking.
    fn give_up(&mut self) {
        self.state = State::Release {
            pos: 0,
            upto: self.held.len(),
            next: Box::new(State::Passthrough),
        };
    }

    /// Examines `held` if it now starts with a complete head; refuses it
    /// as soon as it goes over a limit.
    fn examine(&mut self) {
        if self.first && (self.held.starts_with(H2_PREFACE) || H2_PREFACE.starts_with(&self.held)) {
            if self.held.len() >= H2_PREFACE.len() {
                self.give_up();
            }
            return;
        }
        let end = match self.scan.feed(&self.held[self.scanned..]) {
            Ok(Some(n)) => self.scanned + n,
            // An HTTP/0.9 request line has no head to wait for: refused at
            // once rather than held until header_read_timeout.
            Ok(None) if self.scan.no_version() => {
                return self.refuse(Refusal::Malformed(
                    "request line without an HTTP version (HTTP/0.9 is not served)",
                ));
            }
            Ok(None) => {
                self.scanned = self.held.len();
                return;
            }
            Err(over) => return self.refuse(Refusal::Limit(over)),
        };
        let headers = self.scan.headers();
        self.scan.reset();
        self.scanned = 0;
        self.first = false;
        let next = match judge(&self.held[..end], headers) {
            Verdict::Next(next) => next,
            Verdict::Reject(refusal) => return self.refuse(refusal),
        };
        self.heads += 1;
        // Bytes after the head that belong to this request's body go out
        // with it; anything beyond is the next head, held for checking.
        let rest = &self.held[end..];
        let (used, after) = match next {
            State::Fixed(n) => {
                let used = rest.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                let left = n - used as u64;
                (
                    used,
                    if left == 0 {
                        State::Head
                    } else {
                        State::Fixed(left)
                    },
                )
            }
            State::Chunked(chunk) => {
                let (used, next) = chunk.advance(rest);
                (used, next.map_or(State::Head, State::Chunked))
            }
            State::Head => (0, State::Head),
            other => (rest.len(), other),
        };
        self.state = State::Release {
            pos: 0,
            upto: end + used,
            next: Box::new(after),
        };
    }

    /// Hands hyper a stand-in for the refused head (so that the service
    /// answers it, in order after any response still being written), then
    /// nothing more: the connection ends after the answer.
    fn refuse(&mut self, refusal: Refusal) {
        let stand_in = stand_in(&self.held);
        self.refusals.set(self.heads, refusal);
        self.heads += 1;
        self.held = stand_in;
        self.scan.reset();
        self.scanned = 0;
        self.head_deadline = None;
        self.state = State::Release {
            pos: 0,
            upto: self.held.len(),
            next: Box::new(State::Refused),
        };
        self.linger = Some(Linger {
            deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
            left: LINGER_BYTES,
            ended: false,
            shut: false,
        });
    }
}

/// The stand-in request for a refused head: its method, target (cut) and
/// version as far as they are known and well formed, for the access log;
/// `GET /` otherwise. It has no body and no limit to go over.
fn stand_in(held: &[u8]) -> Vec<u8> {
    let start = held
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(held.len());
    let line = held[start..]
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts
        .next()
        .filter(|m| {
            (1..=20).contains(&m.len())
                && m.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(b))
                && !matches!(*m, b"CONNECT" | b"PRI")
        })
        .unwrap_or(b"GET");
    let target = parts.next().unwrap_or(b"/");
    let mut target = target[..target.len().min(STAND_IN_TARGET)].to_vec();
    if target.len() == STAND_IN_TARGET {
        target.extend_from_slice(b"...");
    }
    let well_formed = target.starts_with(b"/")
        && target.iter().all(|b| (0x21..0x7f).contains(b))
        && http::Uri::try_from(target.as_slice()).is_ok();
    if !well_formed {
        target = b"/".to_vec();
    }
    let version: &[u8] = match parts.next() {
        Some(b"HTTP/1.0") => b"HTTP/1.0",
        _ => b"HTTP/1.1",
    };
    let mut head = Vec::with_capacity(64 + target.len());
    for part in [
        method,
        b" ",
        &target,
        b" ",
        version,
        b"\r\nhost: refused\r\n\r\n",
    ] {
        head.extend_from_slice(part);
    }
    head
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &this.state {
                State::Passthrough => return Pin::new(&mut this.inner).poll_read(cx, buf),
                State::Closed => return Poll::Ready(Ok(())),
                State::Refused => return this.poll_refused(cx),
                State::Release { .. } => {
                    this.release(buf);
                    return Poll::Ready(Ok(()));
                }
                State::Fixed(_) => return this.poll_fixed(cx, buf),
                State::Chunked(_) => return this.poll_chunked(cx, buf),
                State::Head => {
                    if let Some(done) = this.poll_head(cx) {
                        return done;
                    }
                }
            }
        }
    }
}

/// What a connection speaks, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// The connection opened with the HTTP/2 preface (h2c, prior knowledge).
    Http2,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Guarded<S> {
    /// Waits for the connection's first request head (checked as every head
    /// is) or the HTTP/2 preface, and says which it was; `None` when the
    /// client closed without sending a byte. Nothing is handed over: the
    /// head is read afterwards as usual. So the server can wait for a
    /// client's first bytes before it sets anything up for the protocol,
    /// and knows which one without reading ahead of the guard.
    pub fn poll_protocol(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Protocol>>> {
        loop {
            match &self.state {
                State::Head => {}
                // `give_up` after the whole preface; a client's input that
                // ends inside a head gives up too, and is HTTP/1.
                State::Release { next, .. }
                    if matches!(**next, State::Passthrough)
                        && self.held.starts_with(H2_PREFACE) =>
                {
                    return Poll::Ready(Ok(Some(Protocol::Http2)));
                }
                _ => return Poll::Ready(Ok(Some(Protocol::Http1))),
            }
            // `Some(Ready(Ok))` from `poll_head` is the end of input with
            // nothing held.
            if let Some(done) = self.poll_head(cx) {
                return done.map_ok(|()| None);
            }
        }
    }

    /// Hands over held bytes (a checked head, or a refusal).
    fn release(&mut self, buf: &mut ReadBuf<'_>) {
        let State::Release { pos, upto, next } = &mut self.state else {
            return;
        };
        let n = (*upto - *pos).min(buf.remaining());
        buf.put_slice(&self.held[*pos..*pos + n]);
        *pos += n;
        if *pos == *upto {
            let upto = *upto;
            self.state = std::mem::replace(next, State::Passthrough);
            self.held.drain(..upto);
            if self.held.is_empty() {
                // An idle keep-alive connection keeps no read room.
                self.held = Vec::new();
            } else if matches!(self.state, State::Head) {
                self.examine();
            }
        }
    }

    /// A body of known length: read no further than it, so the next head
    /// can be held.
    fn poll_fixed(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let State::Fixed(left) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        let want = buf
            .remaining()
            .min(BODY_READ)
            .min(usize::try_from(*left).unwrap_or(usize::MAX));
        let data = ready!(read_some(&mut self.inner, cx, want))?;
        buf.put_slice(&data);
        *left -= data.len() as u64;
        if *left == 0 {
            self.state = State::Head;
        }
        Poll::Ready(Ok(()))
    }

    /// A chunked body: follow its framing to find where the next head
    /// starts. A read that carries the body's end and the start of the next
    /// head gives hyper only the body; the rest is held as the next head.
    fn poll_chunked(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(BODY_READ);
        let data = ready!(read_some(&mut self.inner, cx, want))?;
        if let State::Chunked(state) = &mut self.state {
            let (used, next) = state.advance(&data);
            buf.put_slice(&data[..used]);
            match next {
                Some(next) => *state = next,
                None => {
                    self.state = State::Head;
                    self.held.extend_from_slice(&data[used..]);
                    if !self.held.is_empty() {
                        self.examine();
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads more of a request head and examines it; `None`: go round again
    /// (the state has moved on).
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        // Never read past the byte that takes the head over its limit.
        let budget = (self.scan.limit() + 1)
            .saturating_sub(self.scan.total())
            .clamp(1, HEAD_READ);
        // Straight into `held`'s spare room, which is not zeroed first (a
        // stack buffer was: 8 KiB of memset per read).
        self.held.reserve(budget);
        let mut room = bytes::BufMut::limit(&mut self.held, budget);
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.inner), cx, &mut room) {
            Poll::Ready(Ok(0)) => {
                // End of input: hand over whatever partial head there is.
                if self.held.is_empty() {
                    return Some(Poll::Ready(Ok(())));
                }
                self.give_up();
            }
            Poll::Ready(Ok(_)) => {
                self.examine();
                if matches!(self.state, State::Head) && self.head_deadline.is_none() {
                    let timeout = self.head_timeout;
                    self.head_deadline = Some(Box::pin(tokio::time::sleep(timeout)));
                }
                if !matches!(self.state, State::Head) {
                    self.head_deadline = None;
                }
            }
            Poll::Pending => {
                if self.held.is_empty() {
                    // An idle keep-alive connection keeps no read room
                    // (8 KiB reserved, a page or two of it touched).
                    self.held = Vec::new();
                }
                return Some(self.poll_head_deadline(cx));
            }
            Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
        }
        None
    }

    /// The answer to a refused head is on its way: drop what the client
    /// still sends (up to the linger allowance), give hyper nothing. The
    /// service's answer wakes hyper, which then closes the connection.
    fn poll_refused(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(linger) = self.linger.as_mut() else {
            return Poll::Pending;
        };
        let mut chunk = [0u8; HEAD_READ];
        while !linger.ended && linger.left > 0 {
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => linger.ended = true,
                Poll::Ready(Ok(())) => {
                    linger.left = linger.left.saturating_sub(read.filled().len());
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Pending
    }

    /// No more input yet: the head must still arrive within
    /// `header_read_timeout`.
    fn poll_head_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(deadline) = self.head_deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            info!(timeout = ?self.head_timeout, "client did not send a complete request head in time; closing (header_read_timeout)");
            self.head_deadline = None;
            self.held.clear();
            self.state = State::Closed;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "header_read_timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    /// Passed through, so that hyper queues a response's body beside its
    /// head (one `writev`) instead of copying it into its write buffer: that
    /// buffer then only ever holds heads, and stays small on a connection
    /// that goes idle after a large response.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// Closes the sending side; after a refusal, first reads and drops the
    /// client's input for a moment, so that closing with unread input does
    /// not reset the connection before the client has read the answer.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(linger) = this.linger.as_mut() else {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        };
        if !linger.shut {
            match Pin::new(&mut this.inner).poll_shutdown(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.linger = None;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => linger.shut = true,
            }
        }
        let mut chunk = [0u8; HEAD_READ];
        while !linger.ended && linger.left > 0 && linger.deadline.as_mut().poll(cx).is_pending() {
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    linger.left = linger.left.saturating_sub(read.filled().len());
                }
                Poll::Pending => return Poll::Pending,
                // The client is done (or gone): close.
                Poll::Ready(_) => break,
            }
        }
        this.linger = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[path = "framing_props.rs"]
mod props;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunked_body_end_is_found() {
        let body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n";
        let (used, next) = Chunk::Size {
            size: 0,
            ext: false,
        }
        .advance(body);
        assert_eq!(next, None);
        assert_eq!(&body[used..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn chunked_body_split_anywhere() {
        let body = b"a\r\n0123456789\r\n0\r\n\r\nNEXT";
        for split in 0..body.len() {
            let (used, next) = Chunk::Size {
                size: 0,
                ext: false,
            }
            .advance(&body[..split]);
            let end = match next {
                // The body ended inside the first part.
                None => used,
                Some(state) => {
                    assert_eq!(used, split);
                    let (used2, after) = state.advance(&body[split..]);
                    assert_eq!(after, None, "split at {split}");
                    split + used2
                }
            };
            assert_eq!(&body[end..], b"NEXT", "split at {split}");
        }
    }

    #[test]
    fn framing_verdicts() {
        let both = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(judge(both, 3), Verdict::Reject(_)));
        let dup = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert!(matches!(judge(dup, 3), Verdict::Reject(_)));
        let same = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(judge(same, 3), Verdict::Next(State::Fixed(3))));
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(matches!(judge(get, 1), Verdict::Next(State::Head)));
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            judge(chunked, 2),
            Verdict::Next(State::Chunked(_))
        ));
    }

    #[test]
    fn content_length_is_digits_only() {
        for ok in [&b"0"[..], b"5", b" 5\t", b"0005", b"18446744073709551615"] {
            assert!(content_length(ok).is_some(), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b" ",
            b"+5",
            b"-5",
            b"5, 5",
            b"5 5",
            b"0x5",
            b"18446744073709551616",
        ] {
            assert_eq!(content_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn transfer_encoding_lines_are_judged_as_one_list() {
        let refusal = |head: &[u8]| match judge(head, 4) {
            Verdict::Reject(r) => Some(r),
            Verdict::Next(_) => None,
        };
        let two = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            refusal(two),
            Some(Refusal::UnknownCoding("chunked, chunked".into()))
        );
        let gzip = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert!(refusal(gzip).is_some_and(|r| r.is_not_implemented()));
        // Content-Length with any Transfer-Encoding: ambiguous, whatever the coding.
        let both = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(refusal(both), Some(Refusal::Framing(_))));
        let http10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(refusal(http10), Some(Refusal::Malformed(_))));
        for line in [
            &b"CONNECT a:443 HTTP/1.1"[..],
            b"OPTIONS * HTTP/1.1",
            b"GET * HTTP/1.1",
        ] {
            let head = [line, b"\r\nHost: a\r\n\r\n"].concat();
            assert!(
                matches!(refusal(&head), Some(Refusal::Malformed(_))),
                "{line:?}"
            );
        }
        // An Upgrade header changes nothing: the body framing is still followed.
        let upgrade =
            b"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(judge(upgrade, 3), Verdict::Next(State::Fixed(3))));
    }

    #[test]
    fn a_refused_head_becomes_a_small_stand_in() {
        let stand_in = |held: &[u8]| String::from_utf8(stand_in(held)).unwrap();
        assert_eq!(
            stand_in(b"POST /form?a=1 HTTP/1.1\r\nX-Big: aaaa"),
            "POST /form?a=1 HTTP/1.1\r\nhost: refused\r\n\r\n"
        );
        let long = format!("GET /{} HTTP/1.0\r\n", "u".repeat(5000));
        let cut = stand_in(long.as_bytes());
        assert!(cut.starts_with("GET /uuu"), "{cut}");
        assert!(cut.contains("u... HTTP/1.0\r\n"), "{cut}");
        assert!(cut.len() < 300);
        // Nothing usable: GET /.
        assert!(stand_in(b"G\x01T /x HTTP/1.1").starts_with("GET /x HTTP/1.1"));
        for held in [
            &b""[..],
            b"\r\n",
            b"CONNECT a:1 HTTP/1.1",
            b"GET x\x7f",
            b"GET /\x01",
        ] {
            assert_eq!(
                stand_in(held),
                "GET / HTTP/1.1\r\nhost: refused\r\n\r\n",
                "{held:?}"
            );
        }
        assert!(stand_in(b"HEAD / HTTP/1.0\r\n").starts_with("HEAD / HTTP/1.0\r\n"));
    }

    #[test]
    fn a_refusal_is_taken_by_its_own_request_only() {
        let refusals = Refusals::default();
        refusals.set(2, Refusal::Framing("x"));
        assert_eq!(refusals.take(1), None);
        assert_eq!(refusals.take(2), Some(Refusal::Framing("x")));
        assert_eq!(refusals.take(2), None);
    }
}
