//! Gateway errors and the one place where they become HTTP statuses.
//!
//! Each layer has its own error type (routing, bodies, pools, the FastCGI
//! exchange); [`GatewayError`] gathers them, and [`GatewayError::status`]
//! is the single mapping from cause to status. Responses name the status
//! and, for app errors, the app; the cause itself goes to the log.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::body::{BodyError, ResponseBody};
use crate::cgi::runner::CgiError;
use crate::plugin::ChainError;
use crate::pool::PoolError;
use crate::route::PathError;
use crate::pool::exchange::UpstreamError;

/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_SECS: u32 = 5;

/// Everything that can stop a request from being served.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("bad request path: {0}")]
    Path(#[from] PathError),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("no file or mapping for this path")]
    NotFound,
    #[error("method not allowed here")]
    MethodNotAllowed { allow: Vec<Method> },
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("more than {0} local redirects (CGI Location loop)")]
    RedirectLoop(usize),
    #[error("app {app} sent an invalid local redirect: {location:?}")]
    BadRedirect { app: Arc<str>, location: String },
    #[error(transparent)]
    Plugin(#[from] ChainError),
    #[error(transparent)]
    Cgi(#[from] CgiError),
    #[error("static file {path}: {source}")]
    Static {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl GatewayError {
    /// The HTTP status for this error: the one mapping in the gateway.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Path(_) | GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::Body(e) => match e {
                BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
                BodyError::Client(_) => StatusCode::BAD_REQUEST,
                BodyError::Spill(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            GatewayError::Upstream(e) => match e {
                UpstreamError::Pool(_) => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                UpstreamError::Stderr { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                UpstreamError::Connection { .. }
                | UpstreamError::Head { .. }
                | UpstreamError::NoHead { .. } => StatusCode::BAD_GATEWAY,
                UpstreamError::Body(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            GatewayError::RedirectLoop(_) | GatewayError::BadRedirect { .. } => {
                StatusCode::BAD_GATEWAY
            }
            GatewayError::Static { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                StatusCode::FORBIDDEN
            }
            GatewayError::Static { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            // fail-closed: the request cannot be trusted to go on.
            GatewayError::Plugin(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::Cgi(e) => match e {
                CgiError::QueueFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
                CgiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                CgiError::Spawn { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                CgiError::Head { .. } | CgiError::NoHead { .. } => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// The app this error concerns, if any (for the body and the access log).
    pub fn app(&self) -> Option<&str> {
        match self {
            GatewayError::Upstream(UpstreamError::Pool(e)) => Some(match e {
                PoolError::QueueFull { app, .. }
                | PoolError::Unavailable { app, .. }
                | PoolError::Spawn { app, .. }
                | PoolError::ShuttingDown { app }
                | PoolError::Offline { app, .. } => app,
            }),
            GatewayError::Upstream(
                UpstreamError::Connection { app, .. }
                | UpstreamError::Head { app, .. }
                | UpstreamError::NoHead { app, .. }
                | UpstreamError::Timeout { app, .. }
                | UpstreamError::Stderr { app, .. },
            )
            | GatewayError::BadRedirect { app, .. } => Some(app),
            GatewayError::Cgi(e) => Some(e.app()),
            _ => None,
        }
    }

    /// The pid of the instance this error happened on, if any.
    pub fn pid(&self) -> Option<u32> {
        match self {
            GatewayError::Upstream(
                UpstreamError::Connection { pid, .. }
                | UpstreamError::Head { pid, .. }
                | UpstreamError::NoHead { pid, .. }
                | UpstreamError::Timeout { pid, .. }
                | UpstreamError::Stderr { pid, .. },
            ) => Some(*pid),
            GatewayError::Cgi(e) => e.pid(),
            _ => None,
        }
    }

    /// The response a client gets: the status, a short text naming it (and
    /// the app), `Allow` for 405 and `Retry-After` for 503.
    pub fn to_response(&self) -> Response<ResponseBody> {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let detail = match (self.app(), status.is_client_error()) {
            // Client errors say what was wrong with the request.
            (_, true) => format!(": {self}"),
            (Some(app), false) => match self {
                GatewayError::Upstream(UpstreamError::Pool(PoolError::Offline { .. })) => {
                    format!(": app \"{app}\" is offline after repeated failures")
                }
                _ => format!(" (app \"{app}\")"),
            },
            (None, false) => String::new(),
        };
        let (text, content_type) = match self {
            // stderr_mode = return-stderr-in-500: the app's own words, escaped.
            GatewayError::Upstream(UpstreamError::Stderr {
                text: Some(stderr), ..
            }) => (
                format!(
                    "<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>500 Internal Server Error</h1>\n<pre>{}</pre>\n",
                    html_escape(stderr)
                ),
                "text/html; charset=utf-8",
            ),
            _ => (
                format!("{} {reason}{detail}\n", status.as_u16()),
                "text/plain; charset=utf-8",
            ),
        };
        let mut response = Response::new(ResponseBody::full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let secs = match self {
                GatewayError::Upstream(UpstreamError::Pool(e)) => e
                    .retry_after()
                    .map_or(RETRY_AFTER_SECS, |d| d.as_secs_f64().ceil().max(1.0) as u32),
                _ => RETRY_AFTER_SECS,
            };
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let GatewayError::MethodNotAllowed { allow } = self {
            let list = allow
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(value) = HeaderValue::from_str(&list) {
                headers.insert(header::ALLOW, value);
            }
        }
        if matches!(self, GatewayError::BadRequest(_) | GatewayError::Body(_)) {
            // The rest of the connection's input cannot be trusted.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Escapes text for HTML element content.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The error and its causes, one level each, for log lines.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
