//! Entry points for the fuzz targets in `tests/fuzz` (not an API: hidden
//! from the docs and free to change with the code they drive).
//!
//! The pure parsers are public already (`fcgi::Decoder`,
//! `cgi::response::parse_head`, `route::normalize_path`,
//! `config::load_str`); what is not is the request framing guard, an
//! `AsyncRead` wrapper private to `http`. [`guard`] feeds it bytes from an
//! in-memory client the way hyper reads a connection, so a fuzzer drives
//! the real state machine (head scan, verdict, fixed and chunked bodies,
//! refusal) rather than a copy of it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::HeadLimits;
use crate::http::framing::{Guarded, Refusals};

/// A client that sends `data` in the given pieces, then ends its input.
struct Client {
    data: Vec<u8>,
    pos: usize,
    /// Lengths of the successive reads; the rest comes in one read.
    pieces: Vec<usize>,
}

impl AsyncRead for Client {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = if this.pieces.is_empty() {
            usize::MAX
        } else {
            this.pieces.remove(0).max(1)
        };
        let n = want.min(buf.remaining()).min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What the guard let through for hyper, and how it ended.
#[derive(Debug)]
pub struct GuardRun {
    /// The bytes hyper would have read.
    pub passed: Vec<u8>,
    /// The guard refused a head (it then waits for the service's answer).
    pub refused: bool,
    /// The guard closed the connection with an error.
    pub error: bool,
}

/// Reads `data` through the framing guard (default head limits), the client
/// sending it in reads of `pieces` bytes, until the guard ends the input,
/// refuses a head, or fails. Reads of `read_size` bytes, as hyper's buffer
/// would ask.
pub fn guard(data: &[u8], pieces: &[usize], read_size: usize) -> GuardRun {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("a tokio runtime for the fuzz hook: {e}"),
    };
    let _entered = runtime.enter();
    let client = Client {
        data: data.to_vec(),
        pos: 0,
        pieces: pieces.to_vec(),
    };
    let refusals = Arc::new(Refusals::default());
    let mut guarded = Guarded::new(
        client,
        Duration::from_secs(60),
        HeadLimits::default(),
        refusals,
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut run = GuardRun {
        passed: Vec::new(),
        refused: false,
        error: false,
    };
    let mut chunk = vec![0u8; read_size.clamp(1, 64 * 1024)];
    // Each read takes at least one byte of input or ends the loop, and the
    // stand-in of a refusal is small: so this bound is never reached unless
    // the guard spins.
    for _ in 0..(4 * data.len() + 1024) {
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut guarded).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return run,
            Poll::Ready(Ok(())) => run.passed.extend_from_slice(buf.filled()),
            Poll::Ready(Err(_)) => {
                run.error = true;
                return run;
            }
            Poll::Pending => {
                run.refused = true;
                return run;
            }
        }
    }
    panic!("the framing guard kept answering reads without ending its input");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_request_passes_whole_in_any_pieces() {
        let request = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let whole = guard(request, &[], 8192);
        assert_eq!(whole.passed, request);
        assert!(!whole.refused && !whole.error);
        let split = guard(request, &[1, 3, 7, 2], 64);
        assert_eq!(split.passed, whole.passed);
    }

    #[test]
    fn a_smuggling_head_is_refused_and_never_passed() {
        let request =
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let run = guard(request, &[5], 64);
        assert!(run.refused);
        // Only the stand-in reaches hyper, not the refused head.
        assert!(!run.passed.windows(17).any(|w| w == b"Transfer-Encoding"));
    }
}
