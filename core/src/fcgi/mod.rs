//! FastCGI 1.0: a sans-I/O codec ([`proto`], [`decode`]) and the async
//! client connection the pool uses ([`client`]).
//!
//! The codec never touches a socket: callers feed it bytes and get records
//! back, or hand it records and get bytes. That keeps it easy to test and
//! to fuzz. Only `client` does I/O.

pub mod client;
pub mod decode;
pub mod proto;

pub use decode::Decoder;
pub use proto::{ProtocolError, Record};
