//! CGI/1.1 (RFC 3875): the request variables, built once per request, and
//! the parsing of a CGI response head (`Status`, `Location`, headers).
//!
//! Both FastCGI apps and plain CGI scripts receive the same variables and
//! answer with the same response format, so this module serves both; the
//! per-request CGI runner (one process per request) is [`runner`].

pub mod answer;
pub mod params;
pub mod response;
pub mod runner;
mod target;

pub use target::ScriptTarget;
