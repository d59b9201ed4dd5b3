//! Request framing checks that hyper does not make for us.
//!
//! hyper resolves a request carrying both `Content-Length` and
//! `Transfer-Encoding` by trusting the latter and dropping the former
//! (RFC 9112 allows that). A gateway in front of other servers should
//! refuse such a request outright (it is the request-smuggling pattern), so
//! [`Guarded`] looks at each request head on the wire before hyper does:
//! it holds the head back until it is complete, checks it, and then follows
//! the body's framing (length or chunked) to find the next head on a
//! keep-alive connection. A bad head never reaches hyper: the connection is
//! answered with a 400 and closed.
//!
//! [`check_request`] holds the checks made on the parsed request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Version, header};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::info;

use super::error::GatewayError;

/// Request heads larger than this are passed through unchecked: hyper
/// refuses them itself (431).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// The HTTP/2 connection preface (prior-knowledge h2c).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What hyper is given instead of a refused head: a request it rejects with
/// its own 400 (an invalid Content-Length), in order after any response still
/// being written on the connection, and then closes.
const REFUSED_HEAD: &[u8] = b"GET / HTTP/1.1\r\nhost: refused\r\ncontent-length: refused\r\n\r\n";

/// Checks on a parsed request that hyper leaves to the server.
pub fn check_request<B>(req: &Request<B>) -> Result<(), GatewayError> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(GatewayError::BadRequest("more than one Host header"));
    }
    if hosts == 0 && req.version() == Version::HTTP_11 {
        return Err(GatewayError::BadRequest(
            "HTTP/1.1 request without a Host header",
        ));
    }
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
    /// After a refused head: no more input reaches hyper.
    Closed,
    /// No more checks (HTTP/2, an upgrade, or a head hyper will refuse).
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
}

impl<S> Guarded<S> {
    pub fn new(inner: S, head_timeout: Duration) -> Self {
        Guarded {
            inner,
            state: State::Head,
            held: Vec::new(),
            first: true,
            head_timeout,
            head_deadline: None,
        }
    }
}

/// What the framing of a complete head says.
enum Verdict {
    Next(State),
    Reject(&'static str),
}

fn judge(head: &[u8]) -> Verdict {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        // Malformed or too many headers: hyper gives the error response.
        _ => return Verdict::Next(State::Passthrough),
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut has_te = false;
    let mut has_cl = false;
    let mut upgrade = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(value) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                return Verdict::Next(State::Passthrough);
            };
            if has_cl && length != Some(value) {
                return Verdict::Reject("conflicting Content-Length headers");
            }
            has_cl = true;
            length = Some(value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_te = true;
            chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if has_te && has_cl {
        return Verdict::Reject("both Content-Length and Transfer-Encoding");
    }
    if upgrade || req.method == Some("CONNECT") {
        return Verdict::Next(State::Passthrough);
    }
    if has_te {
        // Only `chunked` alone is a framing hyper accepts; anything else it refuses.
        return Verdict::Next(if chunked {
            State::Chunked(Chunk::Size {
                size: 0,
                ext: false,
            })
        } else {
            State::Passthrough
        });
    }
    match length {
        Some(0) | None => Verdict::Next(State::Head),
        Some(n) => Verdict::Next(State::Fixed(n)),
    }
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

    /// Examines `held` if it now starts with a complete head.
    fn examine(&mut self) {
        if self.first && (self.held.starts_with(H2_PREFACE) || H2_PREFACE.starts_with(&self.held)) {
            if self.held.len() >= H2_PREFACE.len() {
                self.give_up();
            }
            return;
        }
        let Some(end) = find_head_end(&self.held) else {
            if self.held.len() > MAX_HEAD {
                self.give_up();
            }
            return;
        };
        self.first = false;
        let next = match judge(&self.held[..end]) {
            Verdict::Next(next) => next,
            Verdict::Reject(why) => {
                info!(
                    reason = why,
                    "refusing request with ambiguous framing (400)"
                );
                self.held.clear();
                self.held.extend_from_slice(REFUSED_HEAD);
                self.state = State::Release {
                    pos: 0,
                    upto: REFUSED_HEAD.len(),
                    next: Box::new(State::Closed),
                };
                return;
            }
        };
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
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    // Leading empty lines before a request line are allowed (RFC 9112 §2.2).
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let body = &buf[start..];
    body.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| start + p + 4)
        .or_else(|| {
            body.windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| start + p + 2)
        })
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

impl<S: AsyncRead + AsyncWrite + Unpin> Guarded<S> {
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
            if matches!(self.state, State::Head) && !self.held.is_empty() {
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
        let mut chunk = [0u8; 16 * 1024];
        let want = buf
            .remaining()
            .min(chunk.len())
            .min(usize::try_from(*left).unwrap_or(usize::MAX));
        let mut limited = ReadBuf::new(&mut chunk[..want]);
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut limited);
        if let Poll::Ready(Ok(())) = polled {
            let n = limited.filled().len();
            buf.put_slice(limited.filled());
            *left -= n as u64;
            if *left == 0 {
                self.state = State::Head;
            }
        }
        polled
    }

    /// A chunked body: follow its framing to find where the next head starts.
    fn poll_chunked(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && let State::Chunked(chunk) = &mut self.state
        {
            let (used, next) = chunk.advance(&buf.filled()[before..]);
            match next {
                Some(next) => *chunk = next,
                // The next head started in this read and is already handed
                // over: stop checking.
                None if before + used < buf.filled().len() => self.state = State::Passthrough,
                None => self.state = State::Head,
            }
        }
        polled
    }

    /// Reads more of a request head and examines it; `None`: go round again
    /// (the state has moved on).
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        let mut chunk = [0u8; 8192];
        let mut read = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                // End of input: hand over whatever partial head there is.
                if self.held.is_empty() {
                    return Some(Poll::Ready(Ok(())));
                }
                self.give_up();
            }
            Poll::Ready(Ok(())) => {
                self.held.extend_from_slice(read.filled());
                self.examine();
                if matches!(self.state, State::Head) && self.head_deadline.is_none() {
                    let timeout = self.head_timeout;
                    self.head_deadline = Some(Box::pin(tokio::time::sleep(timeout)));
                }
                if !matches!(self.state, State::Head) {
                    self.head_deadline = None;
                }
            }
            Poll::Pending => return Some(self.poll_head_deadline(cx)),
            other => return Some(other),
        }
        None
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

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
        assert!(matches!(judge(both), Verdict::Reject(_)));
        let dup = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert!(matches!(judge(dup), Verdict::Reject(_)));
        let same = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(judge(same), Verdict::Next(State::Fixed(3))));
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(matches!(judge(get), Verdict::Next(State::Head)));
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(judge(chunked), Verdict::Next(State::Chunked(_))));
    }

    #[test]
    fn head_end_with_bare_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: a\n\nrest"), Some(24));
        assert_eq!(find_head_end(b"\r\nGET / HTTP/1.1\r\n\r\n"), Some(20));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
