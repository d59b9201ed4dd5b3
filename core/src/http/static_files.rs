//! Static files the router found: hyper-staticfile's response builder
//! (ETag, Last-Modified, ranges, HEAD) plus the rules it lacks
//! (`If-None-Match` precedence), and the 301 that adds a directory's slash.
//! The router has already decoded, normalised and checked the path; this
//! module only opens the file it was given.

use http::{HeaderValue, Method, Response, StatusCode, Uri, header};

use super::error::GatewayError;
use crate::body::ResponseBody;

/// Serves a file the router found (conditional requests, ranges, HEAD).
pub async fn serve(
    method: &Method,
    uri: &Uri,
    headers: &http::HeaderMap,
    file: &std::path::Path,
) -> Result<Response<ResponseBody>, GatewayError> {
    let static_error = |source| GatewayError::Static {
        path: uri.path().to_string(),
        source,
    };
    let handle = tokio::fs::File::open(file).await.map_err(static_error)?;
    let metadata = handle.metadata().await.map_err(static_error)?;
    let resolved = hyper_staticfile::ResolvedFile {
        handle,
        path: file.to_path_buf(),
        size: metadata.len(),
        modified: metadata.modified().ok(),
        content_type: Some(content_type(file)),
        encoding: None,
    };
    let response = hyper_staticfile::ResponseBuilder::new()
        .request_parts(method, uri, headers)
        .build(hyper_staticfile::ResolveResult::Found(resolved))
        .map_err(|e| static_error(std::io::Error::other(e)))?;
    let mut response = response.map(ResponseBody::static_file);
    if response.status() == StatusCode::OK && not_modified(headers, response.headers()) {
        // hyper-staticfile handles If-Modified-Since but not If-None-Match,
        // which takes precedence (RFC 9110 §13.2.2).
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.body_mut() = ResponseBody::empty();
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    Ok(response)
}

/// Whether `If-None-Match` matches the response's ETag (weak comparison).
fn not_modified(request: &http::HeaderMap, response: &http::HeaderMap) -> bool {
    let Some(etag) = response.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let weak = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || weak(tag) == weak(etag))
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
