//! Static files the router found: the answer `conditional` decides (200,
//! 206, 304, 412, 416), with the headers nginx gives each, plus the 301
//! that adds a directory's slash. hyper-staticfile's streams read the file
//! (whole, one range, or `multipart/byteranges`).
//!
//! The router has already decoded, normalised and checked the path, and
//! chosen the folder (the document root or a static folder, with its
//! `Cache-Control`); this module only opens the file it was given.

mod conditional;

use std::hash::{BuildHasher, RandomState};

use http::{HeaderValue, Method, Response, StatusCode, Uri, header};
use hyper_staticfile::util::{FileBytesStream, FileBytesStreamMultiRange, FileBytesStreamRange};

use self::conditional::{Answer, ByteRange, Validators};
use super::error::GatewayError;
use crate::body::{FileChunks, ResponseBody};
use crate::config::StaticFileIo;

/// Serves a file the router found (conditional requests, ranges, HEAD).
pub async fn serve(
    method: &Method,
    uri: &Uri,
    headers: &http::HeaderMap,
    file: &std::path::Path,
    cache_control: Option<&HeaderValue>,
    io: StaticFileIo,
) -> Result<Response<ResponseBody>, GatewayError> {
    let static_error = |source| GatewayError::Static {
        path: uri.path().to_string(),
        source,
    };
    let Opened {
        file: handle,
        metadata,
        whole,
    } = open(file, method, io).await.map_err(static_error)?;
    let validators = Validators::new(metadata.len(), metadata.modified().ok());
    let answer = conditional::decide(method, headers, &validators);
    let content_type = content_type(file);
    let size = validators.size;
    let mut response = Response::new(ResponseBody::empty());
    let out = response.headers_mut();
    validator_headers(out, &validators, cache_control);
    // A small file is already read: no stream.
    if let (Answer::Full, Some(bytes)) = (&answer, whole) {
        set_content(out, &content_type, size, None);
        *response.body_mut() = ResponseBody::full(bytes);
        return Ok(response);
    }
    let access = match io {
        StaticFileIo::Inline => FileChunks::inline(handle),
        StaticFileIo::Threads => FileChunks::on_threads(handle),
    };
    let (status, body) = match answer {
        Answer::Full => {
            set_content(out, &content_type, size, None);
            let body = (method != Method::HEAD).then(|| {
                hyper_staticfile::Body::Full(FileBytesStream::new_with_limit(access, size))
            });
            (StatusCode::OK, body)
        }
        Answer::NotModified => (StatusCode::NOT_MODIFIED, None),
        Answer::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, None),
        Answer::Partial(range) => {
            set_content(out, &content_type, range.length, Some((range, size)));
            let stream = FileBytesStreamRange::new(access, http_range(range));
            (
                StatusCode::PARTIAL_CONTENT,
                Some(hyper_staticfile::Body::Range(stream)),
            )
        }
        Answer::Parts(ranges) => {
            let boundary = boundary();
            let ranges = ranges.into_iter().map(http_range).collect();
            let mut stream = FileBytesStreamMultiRange::new(access, ranges, boundary.clone(), size);
            stream.set_content_type(&content_type);
            let multipart = format!("multipart/byteranges; boundary={boundary}");
            set_content(out, &multipart, stream.compute_length(), None);
            (
                StatusCode::PARTIAL_CONTENT,
                Some(hyper_staticfile::Body::MultiRange(stream)),
            )
        }
        Answer::Unsatisfiable => {
            if let Some(range) = value(&format!("bytes */{size}")) {
                out.insert(header::CONTENT_RANGE, range);
            }
            (StatusCode::RANGE_NOT_SATISFIABLE, None)
        }
    };
    *response.status_mut() = status;
    if let Some(body) = body {
        *response.body_mut() = ResponseBody::static_file(body);
    }
    Ok(response)
}

/// Files up to this size are read whole with their metadata, in one go
/// (one trip to the blocking pool with `static_file_io = "threads"`).
const READ_WHOLE: u64 = 64 * 1024;

/// A file opened for a response, and, when small, its contents.
struct Opened {
    file: std::fs::File,
    metadata: std::fs::Metadata,
    /// The whole file, for a GET of a file of at most [`READ_WHOLE`] bytes.
    whole: Option<bytes::Bytes>,
}

/// Opens `path` and stats it, and reads a small file whole for a GET, on
/// the thread `io` says.
async fn open(
    path: &std::path::Path,
    method: &Method,
    io: StaticFileIo,
) -> std::io::Result<Opened> {
    let read_small = method != Method::HEAD;
    match io {
        StaticFileIo::Inline => open_now(path, read_small),
        StaticFileIo::Threads => {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || open_now(&path, read_small))
                .await
                .map_err(std::io::Error::other)?
        }
    }
}

/// [`open`]'s work. A file that changes size while being read is an error
/// (its length is already in the validators).
fn open_now(path: &std::path::Path, read_small: bool) -> std::io::Result<Opened> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    let len = metadata.len();
    // Into memory not zeroed first, and one read: the length the stat gave
    // bounds it, so no end-of-file probe follows. A file that grew is sent
    // as it was when stat'ed; one that shrank is an error.
    let whole = if read_small && metadata.is_file() && len <= READ_WHOLE {
        let mut buf = Vec::with_capacity(len as usize);
        (&mut file).take(len).read_to_end(&mut buf)?;
        if buf.len() as u64 != len {
            return Err(std::io::Error::other(
                "the file changed size while it was read",
            ));
        }
        Some(bytes::Bytes::from(buf))
    } else {
        None
    };
    Ok(Opened {
        file,
        metadata,
        whole,
    })
}

fn validator_headers(
    out: &mut http::HeaderMap,
    validators: &Validators,
    cache_control: Option<&HeaderValue>,
) {
    if let Some(etag) = validators.etag.as_deref().and_then(value) {
        out.insert(header::ETAG, etag);
    }
    if let Some(date) = validators.last_modified().as_deref().and_then(value) {
        out.insert(header::LAST_MODIFIED, date);
    }
    if let Some(cache_control) = cache_control {
        out.insert(header::CACHE_CONTROL, cache_control.clone());
    }
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

/// `Content-Type`, `Content-Length` and, for one range, `Content-Range`.
fn set_content(
    out: &mut http::HeaderMap,
    content_type: &str,
    length: u64,
    range: Option<(ByteRange, u64)>,
) {
    if let Some(content_type) = value(content_type) {
        out.insert(header::CONTENT_TYPE, content_type);
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some((range, size)) = range
        && let Some(text) = value(&format!("bytes {}-{}/{size}", range.start, range.end()))
    {
        out.insert(header::CONTENT_RANGE, text);
    }
}

fn value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

fn http_range(range: ByteRange) -> http_range::HttpRange {
    http_range::HttpRange {
        start: range.start,
        length: range.length,
    }
}

/// A multipart boundary no file is likely to contain: 128 random bits
/// (std's per-process random hash keys; no extra crate).
fn boundary() -> String {
    let a = RandomState::new().hash_one(0u8);
    let b = RandomState::new().hash_one(1u8);
    format!("fastgate-{a:016x}{b:016x}")
}

/// `Content-Type` of a static file; text types get a UTF-8 charset.
fn content_type(path: &std::path::Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    if mime.type_() == mime_guess::mime::TEXT || mime.subtype() == mime_guess::mime::JAVASCRIPT {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// A 301 to `location`, keeping the request's query string.
pub fn redirect_with_query(mut location: String, uri: &Uri) -> Response<ResponseBody> {
    if let Some(query) = uri.query() {
        location.push('?');
        location.push_str(query);
    }
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
