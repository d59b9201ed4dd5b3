//! The admin listener (`[admin] listen`): what an operator asks the
//! gateway, on an address of its own, never on a public listener. It
//! answers from its own task and only takes each pool's lock for a
//! snapshot, so it answers while every pool is saturated.
//!
//! Endpoints: `GET /` (the admin page, `page.html`), `GET /ping` (`pong`),
//! `GET /status` (JSON; `?format=text` for people), `GET /metrics`,
//! `POST /apps/NAME/{recycle,offline,online}` and `POST /reload`. With
//! `token_file`, every request must carry `Authorization: Bearer <token>`
//! (401 otherwise) but the page itself, which holds no data and asks for
//! the token.
//!
//! This file serves and authorises; what `/status` says is `status.rs`.

mod status;

/// The admin page: one file, no build step, everything inline.
const PAGE: &str = include_str!("page.html");

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::app::Apps;
use crate::config::AdminSettings;
use crate::metrics::{Front, Metrics};
use crate::reload::Reloader;

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("[admin] listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("[admin] token_file {path}: {reason}")]
    Token { path: String, reason: String },
}

/// What the admin listener answers from.
pub struct Admin {
    /// Reloads the configuration; has the apps serving now.
    reloader: Arc<Reloader>,
    metrics: Arc<Metrics>,
    token: Option<String>,
    started: Instant,
}

impl Admin {
    /// Reads the token (if any) and binds the listener.
    pub async fn bind(
        settings: &AdminSettings,
        reloader: Arc<Reloader>,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Admin>, TcpListener), AdminError> {
        let token = match &settings.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| AdminError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        if token.is_none() && !settings.listen.ip().is_loopback() {
            warn!(addr = %settings.listen, "the admin listener is reachable from other hosts and has no token_file: anyone who reaches it may use it");
        }
        let admin = Arc::new(Admin {
            reloader,
            metrics,
            token,
            started: Instant::now(),
        });
        Ok((admin, listener))
    }
}

/// The token in `path`: its first line, which must not be empty.
fn read_token(path: &Path) -> Result<String, AdminError> {
    let error = |reason: String| AdminError::Token {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(error("the file is empty".to_string()));
    }
    Ok(token)
}

/// Serves admin requests until the task is dropped: the gateway keeps it
/// through the drain, so that an operator can watch a shutdown.
pub async fn run(admin: Arc<Admin>, listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        info!(addr = %addr, "admin listener");
    }
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: do not spin on it.
                warn!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let admin = admin.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let admin = admin.clone();
                async move {
                    // The one endpoint that waits (for new processes to start).
                    if request.uri().path() == "/reload" {
                        return Ok::<_, Infallible>(admin.reload(&request).await);
                    }
                    Ok(admin.answer(&request))
                }
            });
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(client = %remote, error = %e, "admin connection ended");
            }
        });
    }
}

impl Admin {
    /// The client connections, as the HTTP front counts them.
    fn front(&self) -> Front {
        let connections = self.reloader.gateway().connections();
        Front {
            open: connections.open(),
            refused: connections.refused_total(),
        }
    }

    /// The apps serving now (a reload replaces them).
    fn apps(&self) -> Arc<Apps> {
        self.reloader.apps()
    }

    fn answer<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        // The page carries no data (it fetches /status with the token).
        if path == "/" && matches!(*request.method(), Method::GET | Method::HEAD) {
            return page();
        }
        if !self.authorised(request) {
            return unauthorised();
        }
        if let Some((app, action)) = path
            .strip_prefix("/apps/")
            .and_then(|rest| rest.rsplit_once('/'))
        {
            return self.act(request.method(), app, action);
        }
        if !matches!(path, "/ping" | "/status" | "/metrics") {
            return text(StatusCode::NOT_FOUND, "404 Not Found\n");
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "/ping" => text(StatusCode::OK, "pong\n"),
            "/metrics" => {
                let mut response = Response::new(Full::new(Bytes::from(
                    self.metrics.render(&self.apps(), self.front()),
                )));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            _ => {
                let report =
                    status::Report::take(&self.apps(), &self.metrics, self.front(), self.started);
                let as_text = request
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p == "format=text"));
                if as_text {
                    text(StatusCode::OK, &report.to_text())
                } else {
                    let mut response = Response::new(Full::new(Bytes::from(report.to_json())));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/json"),
                    );
                    response
                }
            }
        }
    }

    /// `POST /apps/NAME/ACTION`: `recycle` replaces every process of the
    /// app, rolling through the pool as a `monitor_changes_to` change does;
    /// `offline` refuses its requests (503) until `online`.
    fn act(&self, method: &Method, app: &str, action: &str) -> Response<Full<Bytes>> {
        if !matches!(action, "recycle" | "offline" | "online") {
            return text(StatusCode::NOT_FOUND, "404 Not Found\n");
        }
        if method != Method::POST {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }
        match self
            .apps()
            .with_pools()
            .find(|(name, _)| name.as_ref() == app)
        {
            None => text(
                StatusCode::NOT_FOUND,
                &format!("404 Not Found: no app {app:?}\n"),
            ),
            Some((_, None)) => text(
                StatusCode::CONFLICT,
                &format!(
                    "409 Conflict: app {app:?} runs a process per request (CGI): no pool to {action}\n"
                ),
            ),
            Some((_, Some(pool))) if action == "recycle" => {
                info!(app, "recycle asked on the admin listener");
                pool.recycle("asked on the admin listener");
                text(
                    StatusCode::ACCEPTED,
                    "202 Accepted: each process is replaced once its replacement is ready; /status shows it\n",
                )
            }
            Some((_, Some(pool))) => {
                let online = action == "online";
                let changed = pool.set_online(online);
                let now = if online { "online" } else { "offline" };
                let answer = if changed {
                    format!("200 OK: app {app:?} is {now}\n")
                } else {
                    format!("200 OK: app {app:?} was {now} already\n")
                };
                text(StatusCode::OK, &answer)
            }
        }
    }

    /// `POST /reload`: reads the configuration again and applies it (see
    /// `crate::reload`); answers once it serves, with what changed (200,
    /// JSON), or why the running configuration was kept (422, text).
    async fn reload<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if !self.authorised(request) {
            return unauthorised();
        }
        if request.method() != Method::POST {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }
        match self.reloader.reload("POST /reload").await {
            Ok(report) => {
                let body = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(e) => text(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!(
                    "422 Unprocessable Entity: reload refused, the running configuration keeps serving: {}\n",
                    crate::error::chain(&e)
                ),
            ),
        }
    }

    /// No token set, or the request carries it (compared in constant time).
    fn authorised<B>(&self, request: &Request<B>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), token.as_bytes())
    }
}

fn unauthorised() -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "401 Unauthorized: a bearer token is required ([admin] token_file)\n",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

fn page() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Its own inline script and style, and requests to this origin only.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        ),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Equal bytes, in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
