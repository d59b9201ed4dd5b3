//! Record layout, constants and encoders of the FastCGI 1.0 specification.
//! (Stub: filled in by the codec work.)

use bytes::{Bytes, BytesMut};

/// Largest content of one record.
pub const MAX_CONTENT_LEN: usize = 65535;

/// A decoding error: the peer broke the protocol.
#[derive(Debug, thiserror::Error)]
#[error("malformed FastCGI record: {0}")]
pub struct ProtocolError(pub String);

/// One decoded record (owned; stream contents are zero-copy `Bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    BeginRequest { request_id: u16, role: u16, flags: u8 },
    AbortRequest { request_id: u16 },
    EndRequest { request_id: u16, app_status: u32, protocol_status: u8 },
    Params { request_id: u16, data: Bytes },
    Stdin { request_id: u16, data: Bytes },
    Stdout { request_id: u16, data: Bytes },
    Stderr { request_id: u16, data: Bytes },
    Data { request_id: u16, data: Bytes },
    GetValues { pairs: Vec<(Bytes, Bytes)> },
    GetValuesResult { pairs: Vec<(Bytes, Bytes)> },
    UnknownType { record_type: u8 },
}

/// Appends one stream's data as records of at most [`MAX_CONTENT_LEN`].
pub fn encode_stream(_record_type: u8, _request_id: u16, _data: &[u8], _out: &mut BytesMut) {}
