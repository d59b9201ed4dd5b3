//! `send_timeout`: a client that accepts no byte for that long is
//! disconnected (nginx's `send_timeout`).
//!
//! [`SendTimeout`] wraps a client connection's writes: while a write stays
//! blocked (the client's window and our socket buffer are full), a timer
//! runs; any progress stops it. When it fires, the write fails, hyper drops
//! the connection, and whatever was spooled for it is dropped with it. An
//! idle keep-alive connection writes nothing and is not timed here.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tracing::info;

/// A connection whose writes must make progress within `limit`.
#[derive(Debug)]
pub struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write is blocked.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> SendTimeout<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        SendTimeout {
            inner,
            limit,
            deadline: None,
        }
    }

    /// Runs a write-side poll under the timer.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let deadline = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.deadline = None;
                info!(send_timeout = ?limit, "client accepted no data in time; closing the connection (send_timeout)");
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "send_timeout")))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .timed(cx, |inner, cx| inner.poll_write(cx, data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .timed(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().timed(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_blocked_write_fails_after_the_limit_and_progress_resets_it() {
        use tokio::io::AsyncReadExt;
        // A pipe with room for 64 bytes; the client reads only when told.
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = SendTimeout::new(server, Duration::from_secs(60));
        conn.write_all(&[0u8; 64]).await.unwrap();
        // The client takes 32 bytes after 50 s: the blocked write goes on,
        // and the timer starts again for the next blocked write.
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(50)).await;
            let mut buf = [0u8; 32];
            client.read_exact(&mut buf).await.unwrap();
            client
        });
        let started = tokio::time::Instant::now();
        conn.write_all(&[0u8; 32]).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(50));
        let _client = reader.await.unwrap();
        let started = tokio::time::Instant::now();
        let err = conn.write_all(&[0u8; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
