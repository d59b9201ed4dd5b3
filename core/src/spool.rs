//! The response spool: an app's response read at the app's speed and handed
//! to the client at the client's.
//!
//! A single-request process must never wait for a slow client (nginx's
//! `fastcgi_buffering`): when the client falls behind, what the app sends
//! goes into memory up to `response_memory_buffer`, then into an anonymous
//! temporary file up to `max_temp_file_size`, and a pump task feeds the
//! client from there while the instance is already free. Past the file's
//! maximum the writer waits for the client (backpressure), as streaming
//! does.
//!
//! [`Segments`] is the pure part (what is held where, in order, within
//! which limits), unit-tested without I/O; [`Spool`] adds the temporary
//! file and the wake-ups; [`pump`] is the reading side; [`Outlet`] is what
//! a runner sends a response body through: the client's channel while the
//! client keeps up, a spool from the moment it falls behind. This module
//! knows nothing of apps or HTTP: it moves bytes.

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

/// The most read from the temporary file at once.
const FILE_CHUNK: u64 = 64 * 1024;
/// How long, in all, a response waits for a client whose channel is full
/// before it is spooled: a client that keeps up drains it within this, and
/// a spool (a task, the temporary file) costs more than the wait; a client
/// that is really behind holds the instance no longer than this.
const SPOOL_GRACE: Duration = Duration::from_millis(10);

/// How much a spool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Bytes kept in memory (`response_memory_buffer`).
    pub memory: usize,
    /// Bytes written to the temporary file at most (`max_temp_file_size`;
    /// 0: no file, only memory).
    pub file: u64,
}

/// Where [`Segments::place`] puts the next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Memory,
    /// At this offset of the temporary file.
    File {
        offset: u64,
    },
    /// Nowhere yet: the reader must take something first.
    Full,
}

/// A piece of the response, in order.
#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Memory(Bytes),
    File { offset: u64, len: u64 },
}

/// What is held where, in response order.
#[derive(Debug, Default)]
pub struct Segments {
    queue: VecDeque<Segment>,
    /// Bytes of the memory segments.
    memory: usize,
    /// Bytes written to the file so far (its length: space is not reused).
    file_len: u64,
}

/// The next piece for the reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Memory(Bytes),
    File { offset: u64, len: u64 },
}

impl Segments {
    /// Where a chunk of `len` bytes goes within `limits`.
    pub fn place(&self, len: usize, limits: SpoolLimits) -> Place {
        if self.memory + len <= limits.memory {
            Place::Memory
        } else if self.file_len + len as u64 <= limits.file {
            Place::File {
                offset: self.file_len,
            }
        } else if self.queue.is_empty() {
            // An empty spool always takes one chunk, however large: the
            // writer must be able to make progress.
            Place::Memory
        } else {
            Place::Full
        }
    }

    pub fn push_memory(&mut self, data: Bytes) {
        self.memory += data.len();
        self.queue.push_back(Segment::Memory(data));
    }

    /// Records `len` bytes written to the file at `offset` (the file's end).
    pub fn push_file(&mut self, offset: u64, len: u64) {
        self.file_len = offset + len;
        if let Some(Segment::File { offset: o, len: l }) = self.queue.back_mut()
            && *o + *l == offset
        {
            *l += len;
            return;
        }
        self.queue.push_back(Segment::File { offset, len });
    }

    /// Takes the next piece: a memory chunk, or at most `max` bytes of the
    /// file.
    pub fn take(&mut self, max: u64) -> Option<Next> {
        match self.queue.front_mut()? {
            Segment::Memory(_) => match self.queue.pop_front() {
                Some(Segment::Memory(data)) => {
                    self.memory -= data.len();
                    Some(Next::Memory(data))
                }
                _ => None,
            },
            Segment::File { offset, len } => {
                let take = (*len).min(max);
                let next = Next::File {
                    offset: *offset,
                    len: take,
                };
                *offset += take;
                *len -= take;
                if *len == 0 {
                    self.queue.pop_front();
                }
                Some(next)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes held in memory.
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// Bytes written to the temporary file so far.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
}

/// How the writer's side ended.
#[derive(Debug, Clone)]
enum End {
    Complete,
    Failed(String),
}

#[derive(Debug, Default)]
struct State {
    segments: Segments,
    file: Option<Arc<std::fs::File>>,
    end: Option<End>,
    /// The reader is gone (the client left, or `send_timeout`).
    reader_gone: bool,
}

/// A response being spooled: the writer pushes, [`pump`] reads.
#[derive(Debug)]
pub struct Spool {
    limits: SpoolLimits,
    state: Mutex<State>,
    /// Wakes the reader (data or the end arrived).
    readable: Notify,
    /// Wakes a writer waiting for room.
    writable: Notify,
}

/// Why a push was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Nobody reads any more: the rest of the response can be dropped.
    #[error("the client is gone")]
    ReaderGone,
    #[error("writing the response to a temporary file failed: {0}")]
    File(#[source] io::Error),
}

impl Spool {
    pub fn new(limits: SpoolLimits) -> Arc<Spool> {
        Arc::new(Spool {
            limits,
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            writable: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a chunk of the response: into memory or the file, or, when
    /// both are full, once the reader has made room.
    pub async fn push(&self, data: Bytes) -> Result<(), SpoolError> {
        loop {
            let room = self.writable.notified();
            let (place, file) = {
                let mut st = self.lock();
                if st.reader_gone {
                    return Err(SpoolError::ReaderGone);
                }
                let place = st.segments.place(data.len(), self.limits);
                if place == Place::Memory {
                    st.segments.push_memory(data);
                    drop(st);
                    self.readable.notify_one();
                    return Ok(());
                }
                (place, st.file.clone())
            };
            match place {
                Place::File { offset } => return self.write_file(file, offset, data),
                Place::Full | Place::Memory => room.await,
            }
        }
    }

    /// Appends `data` to the temporary file (made on first use) at `offset`.
    fn write_file(
        &self,
        file: Option<Arc<std::fs::File>>,
        offset: u64,
        data: Bytes,
    ) -> Result<(), SpoolError> {
        let file = match file {
            Some(file) => file,
            None => {
                let file = Arc::new(tempfile::tempfile().map_err(SpoolError::File)?);
                self.lock().file = Some(file.clone());
                file
            }
        };
        let len = data.len() as u64;
        // Written in place, as nginx writes its temporary files: a write to
        // the page cache is quick, quicker than handing it to a thread.
        file.write_all_at(&data, offset).map_err(SpoolError::File)?;
        let mut st = self.lock();
        if st.reader_gone {
            return Err(SpoolError::ReaderGone);
        }
        st.segments.push_file(offset, len);
        drop(st);
        self.readable.notify_one();
        Ok(())
    }

    /// The response is complete (`Ok`) or was cut off (`Err`, the reason).
    pub fn finish(&self, result: Result<(), String>) {
        self.lock().end = Some(match result {
            Ok(()) => End::Complete,
            Err(reason) => End::Failed(reason),
        });
        self.readable.notify_one();
    }

    /// Nobody will read any more: drop what is held and refuse more.
    fn close(&self) {
        let mut st = self.lock();
        st.reader_gone = true;
        st.segments = Segments::default();
        st.file = None;
        drop(st);
        self.writable.notify_one();
    }

    /// The next piece for the client; `None` at the end.
    async fn next(&self) -> Option<Result<Bytes, io::Error>> {
        loop {
            let readable = self.readable.notified();
            let taken = {
                let mut st = self.lock();
                match st.segments.take(FILE_CHUNK) {
                    Some(next) => Some((next, st.file.clone())),
                    None => match &st.end {
                        Some(End::Complete) => return None,
                        Some(End::Failed(reason)) => {
                            return Some(Err(io::Error::other(reason.clone())));
                        }
                        None => None,
                    },
                }
            };
            match taken {
                Some((Next::Memory(data), _)) => {
                    self.writable.notify_one();
                    return Some(Ok(data));
                }
                Some((Next::File { offset, len }, Some(file))) => {
                    self.writable.notify_one();
                    return Some(read_file(&file, offset, len));
                }
                Some((Next::File { .. }, None)) => {
                    return Some(Err(io::Error::other(
                        "the response's temporary file is gone",
                    )));
                }
                None => readable.await,
            }
        }
    }
}

/// Reads back a piece of the temporary file (from the page cache, mostly).
fn read_file(file: &std::fs::File, offset: u64, len: u64) -> Result<Bytes, io::Error> {
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut buf, offset)
        .map(|()| Bytes::from(buf))
}

/// Feeds the client from `spool` until the response ends or the client is
/// gone; then the spool is closed, so a writer still pushing stops.
pub async fn pump(spool: Arc<Spool>, body_tx: BodySender) {
    while let Some(item) = spool.next().await {
        let failed = item.is_err();
        if body_tx.send(item).await.is_err() || failed {
            break;
        }
    }
    spool.close();
}

/// The client's end of a response body.
pub type BodySender = mpsc::Sender<Result<Bytes, io::Error>>;

/// Where the body of a response goes, once its head is out: the pool's
/// exchange and the CGI runner both send through one.
pub enum Outlet {
    /// The client's channel; with spool limits, a client that falls behind
    /// (a full channel) switches it to a spool.
    Channel {
        body_tx: BodySender,
        spool: Option<SpoolLimits>,
        /// Time spent waiting for a full channel so far (see `SPOOL_GRACE`).
        waited: Duration,
    },
    /// The spool the pump feeds the client from.
    Spooled(Arc<Spool>),
    /// The client is gone: the rest is drained and dropped.
    Gone,
}

impl Outlet {
    /// The client's channel, spooling when `spool` limits are given.
    pub fn new(body_tx: BodySender, spool: Option<SpoolLimits>) -> Outlet {
        Outlet::Channel {
            body_tx,
            spool,
            waited: Duration::ZERO,
        }
    }

    /// Passes one chunk on. Waits for the client only when streaming (or
    /// when the spool is full); never fails: a client that left turns the
    /// outlet into `Gone`.
    pub async fn send(&mut self, data: Bytes, app: &str, pid: u32) {
        match self {
            Outlet::Channel {
                body_tx,
                spool: Some(limits),
                waited,
            } => match body_tx.try_send(Ok(data)) {
                Ok(()) => {}
                Err(TrySendError::Full(item)) if *waited < SPOOL_GRACE => {
                    // A client that keeps up drains the channel in moments:
                    // wait for it a little (in all, per response) before
                    // paying for a spool.
                    let started = tokio::time::Instant::now();
                    let sent = match tokio::time::timeout(SPOOL_GRACE - *waited, body_tx.reserve())
                        .await
                    {
                        Ok(Ok(permit)) => {
                            permit.send(item);
                            Ok(())
                        }
                        Ok(Err(_)) => Err(None),
                        Err(_) => Err(Some(item)),
                    };
                    *waited += started.elapsed();
                    match sent {
                        Ok(()) => {}
                        Err(None) => *self = Outlet::Gone,
                        Err(Some(item)) => {
                            *waited = SPOOL_GRACE;
                            if let Ok(data) = item {
                                Box::pin(self.send(data, app, pid)).await;
                            }
                        }
                    }
                }
                Err(TrySendError::Full(item)) => {
                    debug!(app = %app, pid, "client is behind; spooling the rest of the response");
                    let spool = Spool::new(*limits);
                    tokio::spawn(pump(spool.clone(), body_tx.clone()));
                    *self = Outlet::Spooled(spool);
                    if let Ok(data) = item {
                        Box::pin(self.send(data, app, pid)).await;
                    }
                }
                Err(TrySendError::Closed(_)) => *self = Outlet::Gone,
            },
            Outlet::Channel {
                body_tx,
                spool: None,
                ..
            } => {
                if body_tx.send(Ok(data)).await.is_err() {
                    debug!(app = %app, pid, "client went away; draining the rest of the response");
                    *self = Outlet::Gone;
                }
            }
            Outlet::Spooled(spool) => match spool.push(data).await {
                Ok(()) => {}
                Err(SpoolError::ReaderGone) => *self = Outlet::Gone,
                Err(e) => {
                    warn!(app = %app, pid, error = %e, "cannot spool the response; the client loses the rest of it");
                    spool.finish(Err(e.to_string()));
                    *self = Outlet::Gone;
                }
            },
            Outlet::Gone => {}
        }
    }

    /// The response is complete, or cut off for `reason`.
    pub async fn finish(self, result: Result<(), String>) {
        match (self, result) {
            (Outlet::Spooled(spool), result) => spool.finish(result),
            (Outlet::Channel { body_tx, .. }, Err(reason)) => {
                let _ = body_tx.send(Err(std::io::Error::other(reason))).await;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMITS: SpoolLimits = SpoolLimits {
        memory: 10,
        file: 100,
    };

    #[test]
    fn memory_first_then_the_file_then_full() {
        let mut s = Segments::default();
        assert_eq!(s.place(6, LIMITS), Place::Memory);
        s.push_memory(Bytes::from_static(b"aaaaaa"));
        assert_eq!(s.place(4, LIMITS), Place::Memory);
        s.push_memory(Bytes::from_static(b"bbbb"));
        assert_eq!(s.memory(), 10);
        assert_eq!(s.place(60, LIMITS), Place::File { offset: 0 });
        s.push_file(0, 60);
        assert_eq!(s.place(40, LIMITS), Place::File { offset: 60 });
        s.push_file(60, 40);
        assert_eq!(s.file_len(), 100);
        assert_eq!(s.place(1, LIMITS), Place::Full);
    }

    #[test]
    fn pieces_come_out_in_order_and_free_memory() {
        let mut s = Segments::default();
        s.push_memory(Bytes::from_static(b"first"));
        s.push_file(0, 30);
        s.push_file(30, 10); // adjacent: one segment
        s.push_memory(Bytes::from_static(b"last"));
        assert_eq!(s.take(64), Some(Next::Memory(Bytes::from_static(b"first"))));
        assert_eq!(s.memory(), 4);
        assert_eq!(s.take(25), Some(Next::File { offset: 0, len: 25 }));
        assert_eq!(
            s.take(25),
            Some(Next::File {
                offset: 25,
                len: 15
            })
        );
        assert_eq!(s.take(64), Some(Next::Memory(Bytes::from_static(b"last"))));
        assert_eq!(s.take(64), None);
        assert!(s.is_empty());
        assert_eq!(s.memory(), 0);
    }

    #[test]
    fn an_empty_spool_takes_a_chunk_larger_than_memory() {
        let s = Segments::default();
        let no_file = SpoolLimits {
            memory: 10,
            file: 0,
        };
        assert_eq!(s.place(50, no_file), Place::Memory);
        // With a file, a large chunk goes there.
        assert_eq!(s.place(50, LIMITS), Place::File { offset: 0 });
    }

    #[test]
    fn without_a_file_memory_full_waits() {
        let mut s = Segments::default();
        let no_file = SpoolLimits {
            memory: 10,
            file: 0,
        };
        s.push_memory(Bytes::from_static(b"0123456789"));
        assert_eq!(s.place(1, no_file), Place::Full);
    }

    #[tokio::test]
    async fn a_spool_hands_everything_over_in_order_through_a_file() {
        let spool = Spool::new(SpoolLimits {
            memory: 8,
            file: 1 << 20,
        });
        let (tx, mut rx) = mpsc::channel(1);
        let pumping = tokio::spawn(pump(spool.clone(), tx));
        let mut sent = Vec::new();
        for i in 0..200u32 {
            let chunk = Bytes::from(format!("chunk {i};"));
            sent.extend_from_slice(&chunk);
            spool.push(chunk).await.unwrap();
        }
        spool.finish(Ok(()));
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.extend_from_slice(&item.unwrap());
        }
        assert_eq!(got, sent);
        pumping.await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_response_ends_with_an_error_and_a_gone_reader_stops_the_writer() {
        let spool = Spool::new(LIMITS);
        let (tx, mut rx) = mpsc::channel(4);
        let pumping = tokio::spawn(pump(spool.clone(), tx));
        spool.push(Bytes::from_static(b"part")).await.unwrap();
        spool.finish(Err("cut off".into()));
        assert_eq!(&rx.recv().await.unwrap().unwrap()[..], b"part");
        assert!(rx.recv().await.unwrap().is_err());
        pumping.await.unwrap();
        assert!(matches!(
            spool.push(Bytes::from_static(b"more")).await,
            Err(SpoolError::ReaderGone)
        ));
    }
}
