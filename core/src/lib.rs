//! fastgate: a FastCGI/CGI application gateway.
//!
//! A request travels one way through the modules:
//! [`http`] (listeners, limits) → [`route`] (handler mappings) → a static
//! file, or an app [`pool`] that leases one process which speaks [`fcgi`].
//! The CGI variables are built once per request by [`cgi`].
#![forbid(unsafe_code)]

pub mod cgi;
pub mod config;
pub mod fcgi;
pub mod http;
pub mod pool;
pub mod route;
