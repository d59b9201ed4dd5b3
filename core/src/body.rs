//! Request and response bodies.
//!
//! Request bodies are read completely before a request is given to an app
//! (like nginx's request buffering): in memory up to `body_buffer_size`,
//! then in an anonymous temporary file, up to `max_body_size`. That gives
//! every app a `CONTENT_LENGTH` (even for chunked uploads), keeps slow
//! uploaders from pinning a single-request process, and lets a request that
//! never reached an instance (its connection was found closed before any
//! byte was written) go to another.
//!
//! [`ResponseBody`] is the one body type the HTTP front sends: empty, a
//! buffer, a static file, or a stream from an app. It counts what it sends
//! and writes the access-log line when it is done.

use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

use crate::access_log::AccessEntry;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than max_body_size ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("client sent no body data for {0:?} (body_read_timeout)")]
    Timeout(Duration),
    #[error("reading the request body failed: {0}")]
    Client(#[source] hyper::Error),
    #[error("buffering the request body to a temporary file failed: {0}")]
    Spill(#[source] io::Error),
}

/// Limits for [`RequestBody::read`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_size: u64,
    pub memory: u64,
    pub read_timeout: Duration,
}

/// A fully received request body.
#[derive(Debug)]
pub enum RequestBody {
    Empty,
    Memory(Bytes),
    File { file: std::fs::File, len: u64 },
}

impl RequestBody {
    /// Reads a whole body from the client within `limits`.
    pub async fn read<B>(mut body: B, limits: BodyLimits) -> Result<RequestBody, BodyError>
    where
        B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
    {
        if body.size_hint().lower() > limits.max_size {
            return Err(BodyError::TooLarge {
                limit: limits.max_size,
            });
        }
        let mut memory = BytesMut::new();
        let mut spill: Option<(tokio::fs::File, u64)> = None;
        loop {
            let frame = match tokio::time::timeout(limits.read_timeout, body.frame()).await {
                Err(_) => return Err(BodyError::Timeout(limits.read_timeout)),
                Ok(None) => break,
                Ok(Some(frame)) => frame.map_err(BodyError::Client)?,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let total =
                memory.len() as u64 + spill.as_ref().map_or(0, |(_, n)| *n) + data.len() as u64;
            if total > limits.max_size {
                return Err(BodyError::TooLarge {
                    limit: limits.max_size,
                });
            }
            match &mut spill {
                Some((file, written)) => {
                    file.write_all(&data).await.map_err(BodyError::Spill)?;
                    *written += data.len() as u64;
                }
                None if total > limits.memory => {
                    let file = tempfile::tempfile().map_err(BodyError::Spill)?;
                    let mut file = tokio::fs::File::from_std(file);
                    file.write_all(&memory).await.map_err(BodyError::Spill)?;
                    file.write_all(&data).await.map_err(BodyError::Spill)?;
                    spill = Some((file, total));
                    memory = BytesMut::new();
                }
                None => memory.extend_from_slice(&data),
            }
        }
        match spill {
            Some((mut file, len)) => {
                file.flush().await.map_err(BodyError::Spill)?;
                Ok(RequestBody::File {
                    file: file.into_std().await,
                    len,
                })
            }
            None if memory.is_empty() => Ok(RequestBody::Empty),
            None => Ok(RequestBody::Memory(memory.freeze())),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Empty => 0,
            RequestBody::Memory(bytes) => bytes.len() as u64,
            RequestBody::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the whole body, from its start. Each call starts again.
    pub async fn reader(&self) -> io::Result<BodyReader> {
        match self {
            RequestBody::Empty => Ok(BodyReader::Memory(io::Cursor::new(Bytes::new()))),
            RequestBody::Memory(bytes) => Ok(BodyReader::Memory(io::Cursor::new(bytes.clone()))),
            RequestBody::File { file, .. } => {
                let mut file = tokio::fs::File::from_std(file.try_clone()?);
                file.seek(SeekFrom::Start(0)).await?;
                Ok(BodyReader::File(file))
            }
        }
    }
}

/// Reads a [`RequestBody`].
#[derive(Debug)]
pub enum BodyReader {
    Memory(io::Cursor<Bytes>),
    File(tokio::fs::File),
}

impl AsyncRead for BodyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BodyReader::Memory(cursor) => Pin::new(cursor).poll_read(cx, buf),
            BodyReader::File(file) => Pin::new(file).poll_read(cx, buf),
        }
    }
}

/// The body of every response the gateway sends.
#[derive(Debug)]
pub struct ResponseBody {
    kind: Kind,
    sent: u64,
    log: Option<AccessEntry>,
}

enum Kind {
    Full(Option<Bytes>),
    Static(hyper_staticfile::Body<FileChunks>),
    Stream(mpsc::Receiver<Result<Bytes, io::Error>>),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Full(_) => "Full",
            Kind::Static(_) => "Static",
            Kind::Stream(_) => "Stream",
        })
    }
}

impl ResponseBody {
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        Self::of(Kind::Full((!bytes.is_empty()).then_some(bytes)))
    }

    pub fn static_file(body: hyper_staticfile::Body<FileChunks>) -> Self {
        Self::of(Kind::Static(body))
    }

    /// A body fed by an app task; an `Err` item aborts the response.
    pub fn stream(rx: mpsc::Receiver<Result<Bytes, io::Error>>) -> Self {
        Self::of(Kind::Stream(rx))
    }

    fn of(kind: Kind) -> Self {
        ResponseBody {
            kind,
            sent: 0,
            log: None,
        }
    }

    /// Attaches the access-log entry written when the body is finished or dropped.
    pub fn set_access_entry(&mut self, entry: AccessEntry) {
        self.log = Some(entry);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Static(body) => Pin::new(body).poll_frame(cx),
            Kind::Stream(rx) => rx
                .poll_recv(cx)
                .map(|item| item.map(|r| r.map(Frame::data))),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.sent += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Static(body) => body.is_end_stream(),
            Kind::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Static(body) => body.size_hint(),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(entry) = self.log.take() {
            entry.write(self.sent);
        }
    }
}

/// A file read for a response body, [`FILE_CHUNK`] bytes per read: on the
/// connection's thread (`static_file_io = "inline"`: a read from the page
/// cache costs less than a thread hand-off each way), or each read one trip
/// to tokio's blocking pool (`"threads"`). hyper-staticfile's own reader
/// takes 8 KiB a trip: 128 hand-offs for a MiB, which is what a static file
/// cost, not the copying.
pub struct FileChunks {
    reader: Reader,
}

enum Reader {
    /// `position`: where the last seek left the file's cursor.
    Inline { file: std::fs::File, position: u64 },
    /// Boxed: the body type holds one, and most bodies are not files.
    Threads {
        file: Box<tokio::fs::File>,
        buf: Vec<u8>,
    },
}

/// How much of a file one read takes (see [`FileChunks`]): larger means
/// fewer reads and writes, and this much memory per response being sent
/// (hyper takes the next chunk once its queue is under `max_buf_size`,
/// 128 KiB). A static MiB went from 0.65-0.68x nginx's requests/s with
/// 64 KiB to 0.90-0.98x with 256 KiB (128 KiB: 0.70-0.76x).
pub const FILE_CHUNK: usize = 256 * 1024;

impl FileChunks {
    /// Reads on the thread that polls the body.
    pub fn inline(file: std::fs::File) -> FileChunks {
        FileChunks {
            reader: Reader::Inline { file, position: 0 },
        }
    }

    /// Reads on tokio's blocking pool.
    pub fn on_threads(file: std::fs::File) -> FileChunks {
        FileChunks {
            reader: Reader::Threads {
                file: Box::new(tokio::fs::File::from_std(file)),
                buf: Vec::new(),
            },
        }
    }
}

impl tokio::io::AsyncSeek for FileChunks {
    fn start_seek(mut self: Pin<&mut Self>, to: SeekFrom) -> io::Result<()> {
        match &mut self.reader {
            Reader::Inline { file, position } => {
                use std::io::Seek;
                *position = file.seek(to)?;
                Ok(())
            }
            Reader::Threads { file, .. } => Pin::new(&mut **file).start_seek(to),
        }
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match &mut self.reader {
            Reader::Inline { position, .. } => Poll::Ready(Ok(*position)),
            Reader::Threads { file, .. } => Pin::new(&mut **file).poll_complete(cx),
        }
    }
}

impl hyper_staticfile::vfs::FileAccess for FileChunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<io::Result<Bytes>> {
        let len = len.min(FILE_CHUNK);
        match &mut self.reader {
            Reader::Inline { file, .. } => {
                // Into memory not zeroed first (`read_to_end` fills the
                // spare capacity): one pass over the chunk, not two.
                use std::io::Read;
                let mut chunk = Vec::with_capacity(len);
                file.take(len as u64).read_to_end(&mut chunk)?;
                Poll::Ready(Ok(Bytes::from(chunk)))
            }
            Reader::Threads { file, buf } => {
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                let mut read = ReadBuf::new(&mut buf[..len]);
                match Pin::new(&mut **file).poll_read(cx, &mut read) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(Bytes::copy_from_slice(read.filled()))),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
