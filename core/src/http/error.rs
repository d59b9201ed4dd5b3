//! The gateway's errors and the one place where they become HTTP statuses.
//!
//! Each layer has its own error type (routing, bodies, apps, plugins);
//! [`GatewayError`] gathers them, and [`GatewayError::status`] is the
//! single mapping from cause to status. Responses name the status and, for
//! app errors, the app; the cause itself goes to the log.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};

use super::limits::Refusal;
use crate::app::{AppError, FailureCause};
use crate::body::{BodyError, ResponseBody};
use crate::error::chain;
use crate::plugin::ChainError;
use crate::route::PathError;

/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_SECS: u32 = 5;

/// Everything that can stop a request from being served.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("bad request path: {0}")]
    Path(#[from] PathError),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A request head refused on the wire (framing or a head limit).
    #[error("request head refused: {0}")]
    Head(Refusal),
    #[error("no file or mapping for this path")]
    NotFound,
    /// A file in a static folder that an app's `*.ext` pattern maps: its
    /// source must not leak, and scripts do not run from static folders.
    #[error(
        "a script of app \"{app}\" (its *.ext handles) inside the static folder {url}: not sent as a file, and not run (scripts run from the app's root, not from [[static]] folders)"
    )]
    ScriptInStaticFolder { app: Arc<str>, url: String },
    #[error("method not allowed here")]
    MethodNotAllowed { allow: Vec<Method> },
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("more than {0} local redirects (CGI Location loop)")]
    RedirectLoop(usize),
    #[error("app {app} sent an invalid local redirect: {location:?}")]
    BadRedirect { app: Arc<str>, location: String },
    #[error(transparent)]
    Plugin(#[from] ChainError),
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
            GatewayError::Head(r) if r.is_uri_too_long() => StatusCode::URI_TOO_LONG,
            GatewayError::Head(r) if r.is_too_large() => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            GatewayError::Head(r) if r.is_not_implemented() => StatusCode::NOT_IMPLEMENTED,
            GatewayError::Head(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound | GatewayError::ScriptInStaticFolder { .. } => {
                StatusCode::NOT_FOUND
            }
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::Body(e) => match e {
                BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
                BodyError::Client(_) => StatusCode::BAD_REQUEST,
                BodyError::Spill(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            // A parameter too large to send to a FastCGI app, made so by
            // the client's headers or URI.
            GatewayError::App(e) if e.is_header_too_large() => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            GatewayError::App(e) if e.is_uri_too_long() => StatusCode::URI_TOO_LONG,
            GatewayError::App(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::App(e) if e.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::App(e) if e.is_bad_answer() => StatusCode::BAD_GATEWAY,
            // stderr_mode, a process that could not be run, a plugin of the
            // app failing closed, the buffered body lost.
            GatewayError::App(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
        }
    }

    /// The app this error concerns, if any (for the body and the access log).
    pub fn app(&self) -> Option<&str> {
        match self {
            GatewayError::App(e) => Some(e.app()),
            GatewayError::BadRedirect { app, .. } => Some(app),
            _ => None,
        }
    }

    /// A server-side failure of an app's request (a 5xx), by cause: what
    /// `/status` and the metrics count.
    pub fn app_failure(&self) -> Option<(&str, FailureCause)> {
        match self {
            GatewayError::App(e) if self.status().is_server_error() => Some((e.app(), e.cause())),
            _ => None,
        }
    }

    /// The pid of the instance this error happened on, if any.
    pub fn pid(&self) -> Option<u32> {
        match self {
            GatewayError::App(e) => e.pid(),
            _ => None,
        }
    }

    /// The response a client gets: the status, its body, `Allow` for 405
    /// and `Retry-After` for 503. `detailed` is `[server] error_details`'
    /// verdict on the client ([`ErrorDetails::shown_to`]): whether it may
    /// read the server-side detail of the error.
    ///
    /// [`ErrorDetails::shown_to`]: crate::config::ErrorDetails::shown_to
    pub fn to_response(&self, detailed: bool) -> Response<ResponseBody> {
        let status = self.status();
        let (text, content_type) = self.page(detailed);
        let mut response = Response::new(ResponseBody::full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let secs = match self {
                GatewayError::App(e) => e
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
        if status == StatusCode::BAD_REQUEST
            || matches!(self, GatewayError::Body(_) | GatewayError::Head(_))
        {
            // The rest of the connection's input cannot be trusted: after
            // any 400 of its own (as nginx does), a refused head or a body
            // not read to its end, the gateway ends the connection.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl GatewayError {
    /// The body of the error page and its content type.
    fn page(&self, detailed: bool) -> (String, &'static str) {
        let status = self.status();
        if detailed {
            self.detailed_body(status)
        } else {
            (self.generic_body(status), "text/plain; charset=utf-8")
        }
    }

    /// What a client error says about the request: its own text, but for a
    /// script in a static folder, which is a plain 404 to every client (the
    /// log says which app and folder).
    fn client_text(&self) -> String {
        match self {
            GatewayError::ScriptInStaticFolder { .. } => GatewayError::NotFound.to_string(),
            _ => self.to_string(),
        }
    }

    /// The page any client may read: the status and, for a fault in the
    /// request itself, what was wrong with it. Nothing the server knows
    /// and the client did not send: no app, pid, path, exit status, cause
    /// or stderr text.
    fn generic_body(&self, status: StatusCode) -> String {
        let reason = status.canonical_reason().unwrap_or("Error");
        let about_the_request = match self {
            GatewayError::Path(_)
            | GatewayError::BadRequest(_)
            | GatewayError::Head(_)
            | GatewayError::NotFound
            | GatewayError::ScriptInStaticFolder { .. }
            | GatewayError::MethodNotAllowed { .. } => true,
            GatewayError::Body(e) => status.is_client_error() && !matches!(e, BodyError::Spill(_)),
            // A 431/414 from an app names the app and the parameter; a
            // static file's 403 the file system's answer.
            _ => false,
        };
        if about_the_request {
            format!("{} {reason}: {}\n", status.as_u16(), self.client_text())
        } else {
            format!("{} {reason}\n", status.as_u16())
        }
    }

    /// The page for a client allowed the detail (a local one, by default):
    /// an app's stderr text (`stderr_mode = return-stderr-in-500`) as
    /// escaped HTML, or the status with the app and, for a server error,
    /// its cause chain (pid, exit status, paths) as the log has it.
    fn detailed_body(&self, status: StatusCode) -> (String, &'static str) {
        let stderr = match self {
            GatewayError::App(e) => e.stderr_text(),
            _ => None,
        };
        if let Some(stderr) = stderr {
            return (
                format!(
                    "<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>500 Internal Server Error</h1>\n<pre>{}</pre>\n",
                    html_escape(stderr)
                ),
                "text/html; charset=utf-8",
            );
        }
        let reason = status.canonical_reason().unwrap_or("Error");
        let text = match (self.app(), status.is_client_error()) {
            // Client errors say what was wrong with the request.
            (_, true) => format!("{} {reason}: {}\n", status.as_u16(), self.client_text()),
            (app, false) => {
                let about = match (app, self) {
                    (Some(app), GatewayError::App(e)) if e.is_offline() => {
                        format!(": app \"{app}\" is offline after repeated failures")
                    }
                    (Some(app), GatewayError::App(e)) if e.is_taken_offline() => {
                        format!(": app \"{app}\" was taken offline by its operator")
                    }
                    (Some(app), _) => format!(" (app \"{app}\")"),
                    (None, _) => String::new(),
                };
                format!("{} {reason}{about}\n\n{}\n", status.as_u16(), chain(self))
            }
        };
        (text, "text/plain; charset=utf-8")
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::route::PathError;

    fn body(e: &GatewayError, detailed: bool) -> String {
        e.page(detailed).0
    }

    #[test]
    fn a_generic_page_keeps_what_was_wrong_with_the_request() {
        let e = GatewayError::Path(PathError::Traversal);
        let text = "400 Bad Request: bad request path: request path escapes the document root\n";
        assert_eq!(body(&e, false), text);
        assert_eq!(body(&e, true), text);
    }

    #[test]
    fn refused_heads_map_to_their_statuses_and_close() {
        let cases = [
            (Refusal::Framing("x"), StatusCode::BAD_REQUEST),
            (Refusal::Malformed("x"), StatusCode::BAD_REQUEST),
            (
                Refusal::UnknownCoding("gzip, chunked".into()),
                StatusCode::NOT_IMPLEMENTED,
            ),
        ];
        for (refusal, status) in cases {
            let response = GatewayError::Head(refusal).to_response(false);
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()[header::CONNECTION], "close");
        }
        let response = GatewayError::Path(PathError::Traversal).to_response(false);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert!(
            !GatewayError::NotFound
                .to_response(false)
                .headers()
                .contains_key(header::CONNECTION)
        );
    }

    #[test]
    fn a_generic_page_hides_the_server_side_detail() {
        let app: Arc<str> = Arc::from("py");
        let e = GatewayError::BadRedirect {
            app,
            location: "/srv/secret".into(),
        };
        assert_eq!(body(&e, false), "502 Bad Gateway\n");
        let detailed = body(&e, true);
        assert!(
            detailed.starts_with("502 Bad Gateway (app \"py\")\n"),
            "{detailed}"
        );
        assert!(detailed.contains("/srv/secret"), "{detailed}");
        let e = GatewayError::Static {
            path: "/private.txt".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(body(&e, false), "403 Forbidden\n");
        assert!(body(&e, true).contains("permission denied"));
    }
}
