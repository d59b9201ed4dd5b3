//! The client side of one FastCGI connection: the gateway talking to one app
//! instance over its Unix socket or loopback TCP port.
//!
//! One connection carries one request at a time and is kept open across
//! requests (`FCGI_KEEP_CONN`). Each request on a connection gets the next
//! request id (1, 2, ... 65535, then 1 again), and only records of the
//! current id are taken: an app that answers a request twice, the second
//! time late, when the next request is already on the wire, is a protocol
//! error rather than the next client's response. The request body is written as
//! STDIN records *while* the response is read, so an app that answers before
//! it has read its whole input cannot deadlock us. The end of a response is
//! `END_REQUEST`, never an empty STDOUT record (wfastcgi sends one of those
//! after every write).
//!
//! This module knows nothing of pools, HTTP or CGI semantics: it moves
//! parameters and bytes.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream, tcp, unix};

use super::decode::Decoder;
use super::proto::{self, FLAG_KEEP_CONN, ParamsError, ProtocolError, Record, record_type, role};

/// The request id `RequestParams` are encoded with; each exchange writes
/// them with its own (see [`Connection::next_request_id`]).
const PARAMS_REQUEST_ID: u16 = 1;
/// How much of the request body goes into one STDIN record.
const STDIN_CHUNK: usize = 32 * 1024;

/// Why an exchange with an app failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Reading or writing the socket failed.
    #[error("i/o error on the app connection: {0}")]
    Io(#[from] io::Error),
    /// The app closed the connection before ending the request.
    #[error("the app closed the connection before ending the request")]
    Closed,
    /// The app sent bytes that are not valid FastCGI.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Valid FastCGI, but not what a responder may send here.
    #[error("unexpected record from the app: {0}")]
    Unexpected(String),
    /// The app refused the request (`END_REQUEST` with a protocol status
    /// other than `REQUEST_COMPLETE`, e.g. `OVERLOADED`).
    #[error("the app refused the request (FastCGI protocol status {0})")]
    Refused(u8),
}

impl ClientError {
    /// True when the failure happened because the peer had already gone
    /// away: nothing of the request can have been processed.
    pub fn is_peer_gone(&self) -> bool {
        match self {
            ClientError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
            ),
            ClientError::Closed => true,
            _ => false,
        }
    }
}

/// One event of a response, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes of FCGI_STDOUT (never empty).
    Stdout(Bytes),
    /// Bytes of FCGI_STDERR (never empty).
    Stderr(Bytes),
    /// FCGI_END_REQUEST: the response is complete.
    End { app_status: u32 },
}

enum ReadHalf {
    Unix(unix::OwnedReadHalf),
    Tcp(tcp::OwnedReadHalf),
}

enum WriteHalf {
    Unix(unix::OwnedWriteHalf),
    Tcp(tcp::OwnedWriteHalf),
}

/// A persistent FastCGI connection to one app instance.
pub struct Connection {
    reader: ReadHalf,
    writer: WriteHalf,
    read_buf: BytesMut,
    decoder: Decoder,
    /// The id of the last request started on this connection (0: none yet).
    last_request_id: u16,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to an instance's Unix socket.
    pub async fn connect_unix(path: &Path) -> io::Result<Connection> {
        let (r, w) = UnixStream::connect(path).await?.into_split();
        Ok(Connection::new(ReadHalf::Unix(r), WriteHalf::Unix(w)))
    }

    /// Connects to an instance's loopback TCP port.
    pub async fn connect_tcp(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Connection::new(ReadHalf::Tcp(r), WriteHalf::Tcp(w)))
    }

    fn new(reader: ReadHalf, writer: WriteHalf) -> Connection {
        Connection {
            reader,
            writer,
            read_buf: BytesMut::with_capacity(16 * 1024),
            decoder: Decoder::new(),
            last_request_id: 0,
        }
    }

    /// The id for the next request: never 0 (management records), never
    /// the previous request's.
    fn next_request_id(&mut self) -> u16 {
        self.last_request_id = self.last_request_id % u16::MAX + 1;
        self.last_request_id
    }

    /// Whether the connection can carry another request: between requests
    /// an app sends nothing, so anything readable (end of file, an error or
    /// stray bytes) means it is gone or confused.
    pub fn is_reusable(&mut self) -> bool {
        if !self.read_buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let result = match &self.reader {
            ReadHalf::Unix(r) => r.try_read(&mut probe),
            ReadHalf::Tcp(r) => r.try_read(&mut probe),
        };
        matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Before a request: fails if the app has already closed the connection
    /// (end of file or an error is pending). Bytes that arrived unasked are
    /// kept, for the decoder to refuse.
    fn check_open(&mut self) -> Result<(), ClientError> {
        let mut probe = [0u8; 512];
        let result = match &self.reader {
            ReadHalf::Unix(r) => r.try_read(&mut probe),
            ReadHalf::Tcp(r) => r.try_read(&mut probe),
        };
        match result {
            Ok(0) => Err(ClientError::Closed),
            Ok(n) => {
                self.read_buf.extend_from_slice(&probe[..n]);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Asks the app for its limits (FCGI_GET_VALUES), e.g. `FCGI_MAX_CONNS`.
    pub async fn get_values(&mut self, names: &[&str]) -> Result<Vec<(Bytes, Bytes)>, ClientError> {
        let pairs = names
            .iter()
            .map(|n| (Bytes::copy_from_slice(n.as_bytes()), Bytes::new()))
            .collect();
        let mut out = BytesMut::new();
        Record::GetValues { pairs }.encode(&mut out);
        self.writer.write_all(&out).await?;
        match self.read_record().await? {
            Record::GetValuesResult { pairs } => Ok(pairs),
            other => Err(ClientError::Unexpected(format!(
                "record type {} while waiting for GET_VALUES_RESULT",
                other.record_type()
            ))),
        }
    }

    async fn read_record(&mut self) -> Result<Record, ClientError> {
        loop {
            if let Some(record) = self.decoder.decode(&mut self.read_buf)? {
                return Ok(record);
            }
            let n = self.reader.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// Turns a decoded record into an event of the current request, `id`.
    fn event_of(record: Record, id: u16) -> Result<Option<Event>, ClientError> {
        match record {
            Record::Stdout { request_id, data } if request_id == id => {
                Ok((!data.is_empty()).then_some(Event::Stdout(data)))
            }
            Record::Stderr { request_id, data } if request_id == id => {
                Ok((!data.is_empty()).then_some(Event::Stderr(data)))
            }
            Record::EndRequest {
                request_id,
                app_status,
                protocol_status,
            } if request_id == id => {
                if protocol_status == proto::protocol_status::REQUEST_COMPLETE {
                    Ok(Some(Event::End { app_status }))
                } else {
                    Err(ClientError::Refused(protocol_status))
                }
            }
            other => Err(ClientError::Unexpected(format!(
                "record type {} for request id {}",
                other.record_type(),
                other.request_id()
            ))),
        }
    }
}

/// A request's PARAMS stream, encoded once before any instance is used: a
/// request whose parameters cannot be sent is refused before it costs a
/// process anything, and a retry on another instance sends the same bytes.
#[derive(Debug, Clone)]
pub struct RequestParams(Bytes);

impl RequestParams {
    /// Encodes `pairs`; fails on a pair too large for one record (it is
    /// never split: see [`proto`]).
    pub fn encode<'a, I>(pairs: I) -> Result<RequestParams, ParamsError>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        Self::encode_sized(pairs, 1024)
    }

    /// [`encode`](Self::encode), for pairs that take at most `pairs_len`
    /// bytes encoded: the stream's buffer is allocated once, at its size.
    pub fn encode_sized<'a, I>(pairs: I, pairs_len: usize) -> Result<RequestParams, ParamsError>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        // A header and at most 7 bytes of padding a record, and the end.
        let records = pairs_len / proto::MAX_CONTENT_LEN + 2;
        let mut out = BytesMut::with_capacity(pairs_len + 16 * records);
        proto::encode_params(PARAMS_REQUEST_ID, pairs, &mut out)?;
        Ok(RequestParams(out.freeze()))
    }
}

/// One request in progress: writes the request (BEGIN_REQUEST, PARAMS, the
/// body as STDIN) while handing out the response's events.
pub struct Exchange<'c, B> {
    conn: &'c mut Connection,
    body: B,
    /// Bytes of the body not yet read from `body`.
    body_left: u64,
    /// This request's id on the connection.
    request_id: u16,
    /// Encoded records not yet written.
    pending: BytesMut,
    /// Where body chunks are read into (allocated only for a non-empty body).
    scratch: Vec<u8>,
    stdin_done: bool,
    /// Bytes of the request the connection accepted so far.
    written: u64,
}

impl<'c, B: AsyncRead + Unpin> Exchange<'c, B> {
    /// Starts a request. Nothing is written until the first
    /// [`next_event`](Self::next_event): BEGIN_REQUEST, the PARAMS stream
    /// and, for an empty body, the STDIN terminator then leave in one write.
    pub fn start(conn: &'c mut Connection, params: &RequestParams, body: B, body_len: u64) -> Self {
        let request_id = conn.next_request_id();
        let mut pending = BytesMut::with_capacity(params.0.len() + 64);
        proto::encode_begin_request(request_id, role::RESPONDER, FLAG_KEEP_CONN, &mut pending);
        let at = pending.len();
        pending.extend_from_slice(&params.0);
        set_request_id(&mut pending[at..], request_id);
        if body_len == 0 {
            proto::encode_stream_end(record_type::STDIN, request_id, &mut pending);
        }
        Exchange {
            conn,
            body,
            body_left: body_len,
            request_id,
            pending,
            scratch: Vec::new(),
            stdin_done: false,
            written: 0,
        }
    }

    /// Whether any byte of the request was written. Until one is, the app
    /// cannot have seen the request: a request whose exchange failed before
    /// that may go to another instance; after, it may have run.
    pub fn wrote_any(&self) -> bool {
        self.written > 0
    }

    /// Whether the whole body (and the STDIN terminator) was written. An
    /// app that ended the request before reading all of it leaves the
    /// connection in an unknown state: do not reuse it then.
    pub fn stdin_complete(&self) -> bool {
        self.stdin_done
    }

    /// The next event of the response. Before the first byte of the
    /// request is written, a connection the app already closed is reported
    /// (as [`ClientError::Closed`], with nothing written).
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        if self.written == 0 {
            self.conn.check_open()?;
        }
        loop {
            while let Some(record) = self.conn.decoder.decode(&mut self.conn.read_buf)? {
                if let Some(event) = Connection::event_of(record, self.request_id)? {
                    return Ok(event);
                }
            }
            if self.pending.is_empty() && self.body_left > 0 {
                self.fill_pending().await?;
            }
            if self.pending.is_empty() {
                self.stdin_done = true;
                let n = self.conn.reader.read_buf(&mut self.conn.read_buf).await?;
                if n == 0 {
                    return Err(ClientError::Closed);
                }
                continue;
            }
            // Write STDIN and read the response at the same time: both
            // operations are cancel-safe (`write` reports what it wrote).
            tokio::select! {
                written = self.conn.writer.write(&self.pending) => {
                    let n = written?;
                    if n == 0 {
                        return Err(ClientError::Closed);
                    }
                    self.pending.advance(n);
                    self.written += n as u64;
                }
                read = self.conn.reader.read_buf(&mut self.conn.read_buf) => {
                    if read? == 0 {
                        return Err(ClientError::Closed);
                    }
                }
            }
        }
    }

    /// Encodes the next chunk of the body, and the STDIN terminator after
    /// the last one.
    async fn fill_pending(&mut self) -> Result<(), ClientError> {
        let want = usize::try_from(self.body_left)
            .unwrap_or(usize::MAX)
            .min(STDIN_CHUNK);
        if self.scratch.len() < want {
            self.scratch.resize(want, 0);
        }
        let n = self.body.read(&mut self.scratch[..want]).await?;
        if n == 0 {
            // The body is shorter than announced: the app would wait forever.
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request body ended early",
            )));
        }
        proto::encode_stream(
            record_type::STDIN,
            self.request_id,
            &self.scratch[..n],
            &mut self.pending,
        );
        self.body_left -= n as u64;
        if self.body_left == 0 {
            proto::encode_stream_end(record_type::STDIN, self.request_id, &mut self.pending);
        }
        Ok(())
    }
}

/// Writes `id` into the header of every record of an encoded stream (the
/// request id is bytes 2 and 3 of a header; the content and padding
/// lengths, bytes 4 to 6, say where the next header is).
fn set_request_id(stream: &mut [u8], id: u16) {
    let mut at = 0;
    while let Some(header) = stream.get_mut(at..at + proto::HEADER_LEN) {
        header[2..4].copy_from_slice(&id.to_be_bytes());
        let content = usize::from(u16::from_be_bytes([header[4], header[5]]));
        at += proto::HEADER_LEN + content + usize::from(header[6]);
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Unix(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Unix(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Unix(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Unix(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A connection to a fresh Unix socket, and the app's end of it.
    async fn pair() -> (tempfile::TempDir, Connection, UnixStream) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let conn = Connection::connect_unix(&path).await.unwrap();
        let (app, _) = listener.accept().await.unwrap();
        (dir, conn, app)
    }

    fn params() -> RequestParams {
        RequestParams::encode([(b"SCRIPT_NAME".as_slice(), b"/x.php".as_slice())]).unwrap()
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_request_writes_nothing() {
        let (_dir, mut conn, app) = pair().await;
        drop(app);
        let mut exchange = Exchange::start(&mut conn, &params(), tokio::io::empty(), 0);
        let error = exchange.next_event().await.unwrap_err();
        assert!(error.is_peer_gone(), "{error}");
        assert!(!exchange.wrote_any());
    }

    #[tokio::test]
    async fn a_tcp_connection_closed_before_the_request_writes_nothing() {
        // Over TCP a write to a closed peer succeeds (the reset comes
        // later): the end of file must be seen before writing.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut conn = Connection::connect_tcp(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (app, _) = listener.accept().await.unwrap();
        drop(app);
        if let ReadHalf::Tcp(r) = &conn.reader {
            r.readable().await.unwrap();
        }
        let mut exchange = Exchange::start(&mut conn, &params(), tokio::io::empty(), 0);
        let error = exchange.next_event().await.unwrap_err();
        assert!(error.is_peer_gone(), "{error}");
        assert!(!exchange.wrote_any());
    }

    #[tokio::test]
    async fn a_request_the_app_may_have_read_reports_what_was_written() {
        let (_dir, mut conn, mut app) = pair().await;
        let mut exchange = Exchange::start(&mut conn, &params(), tokio::io::empty(), 0);
        let app_side = tokio::spawn(async move {
            let mut header = [0u8; 8];
            app.read_exact(&mut header).await.unwrap();
            // Dies having read part of the request.
        });
        let error = exchange.next_event().await.unwrap_err();
        app_side.await.unwrap();
        assert!(error.is_peer_gone(), "{error}");
        assert!(exchange.wrote_any());
    }

    #[test]
    fn every_params_record_gets_the_exchange_id() {
        let long = vec![b'v'; 70_000 / 2];
        let pairs = [
            (b"A".as_slice(), long.as_slice()),
            (b"B".as_slice(), long.as_slice()),
            (b"C".as_slice(), b"c".as_slice()),
        ];
        let mut stream = BytesMut::from(&RequestParams::encode(pairs).unwrap().0[..]);
        set_request_id(&mut stream, 0x1234);
        let mut decoder = Decoder::new();
        let mut records = 0;
        while let Some(record) = decoder.decode(&mut stream).unwrap() {
            assert_eq!(record.request_id(), 0x1234, "{record:?}");
            records += 1;
        }
        assert!(records >= 3, "{records} records");
        assert!(stream.is_empty());
    }

    #[tokio::test]
    async fn request_ids_cycle_and_skip_zero() {
        let (_dir, mut conn, _app) = pair().await;
        assert_eq!([conn.next_request_id(), conn.next_request_id()], [1, 2]);
        conn.last_request_id = u16::MAX - 1;
        let ids = [0; 3].map(|_| conn.next_request_id());
        assert_eq!(ids, [u16::MAX, 1, 2]);
    }

    /// Reads one request (to the end of its STDIN) off the app's end and
    /// returns its id.
    async fn read_request(app: &mut UnixStream) -> u16 {
        let mut buf = BytesMut::new();
        let mut decoder = Decoder::new();
        loop {
            while let Some(record) = decoder.decode(&mut buf).unwrap() {
                if let Record::Stdin { request_id, data } = record
                    && data.is_empty()
                {
                    return request_id;
                }
            }
            assert!(app.read_buf(&mut buf).await.unwrap() > 0);
        }
    }

    #[tokio::test]
    async fn a_late_answer_to_the_previous_request_is_not_the_next_ones() {
        let (_dir, mut conn, mut app) = pair().await;
        let app_side = tokio::spawn(async move {
            let first = read_request(&mut app).await;
            let mut out = BytesMut::new();
            Record::EndRequest {
                request_id: first,
                app_status: 0,
                protocol_status: 0,
            }
            .encode(&mut out);
            app.write_all(&out).await.unwrap();
            let second = read_request(&mut app).await;
            // The first request's answer again, after the second was sent.
            app.write_all(&out).await.unwrap();
            (first, second, app)
        });
        let mut exchange = Exchange::start(&mut conn, &params(), tokio::io::empty(), 0);
        assert_eq!(
            exchange.next_event().await.unwrap(),
            Event::End { app_status: 0 }
        );
        let mut exchange = Exchange::start(&mut conn, &params(), tokio::io::empty(), 0);
        let error = exchange.next_event().await.unwrap_err();
        assert!(matches!(error, ClientError::Unexpected(_)), "{error}");
        let (first, second, _app) = app_side.await.unwrap();
        assert_ne!(first, second);
    }
}
