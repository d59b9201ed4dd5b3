//! Record layout, constants and encoders of the FastCGI 1.0 specification.
//!
//! Every record is an 8-byte header (version, type, request id, content
//! length, padding length), the content, and padding. Stream records
//! (PARAMS, STDIN, STDOUT, STDERR, DATA) carry at most 65535 bytes each; a
//! stream ends with an empty record. Name-value pairs use a 1-byte length
//! below 128 and a 4-byte length (high bit set) otherwise.
//!
//! This file only turns values into bytes and bytes into values: decoding a
//! byte stream into records is [`super::decode`], I/O is [`super::client`].

use bytes::{BufMut, Bytes, BytesMut};

pub const VERSION_1: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// Largest content of one record.
pub const MAX_CONTENT_LEN: usize = 65535;
/// Management records (GET_VALUES, ...) use request id 0.
pub const MANAGEMENT_REQUEST_ID: u16 = 0;
/// BEGIN_REQUEST flag: keep the connection open after the request.
pub const FLAG_KEEP_CONN: u8 = 1;
/// Largest name or value length a pair can announce (31 bits).
const MAX_PAIR_LEN: usize = 0x7fff_ffff;

/// Record types.
pub mod record_type {
    pub const BEGIN_REQUEST: u8 = 1;
    pub const ABORT_REQUEST: u8 = 2;
    pub const END_REQUEST: u8 = 3;
    pub const PARAMS: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const DATA: u8 = 8;
    pub const GET_VALUES: u8 = 9;
    pub const GET_VALUES_RESULT: u8 = 10;
    pub const UNKNOWN_TYPE: u8 = 11;
}

/// Roles of BEGIN_REQUEST.
pub mod role {
    pub const RESPONDER: u16 = 1;
    pub const AUTHORIZER: u16 = 2;
    pub const FILTER: u16 = 3;
}

/// Protocol statuses of END_REQUEST.
pub mod protocol_status {
    pub const REQUEST_COMPLETE: u8 = 0;
    pub const CANT_MPX_CONN: u8 = 1;
    pub const OVERLOADED: u8 = 2;
    pub const UNKNOWN_ROLE: u8 = 3;
}

/// The peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unsupported FastCGI version {0} (expected 1)")]
    UnsupportedVersion(u8),
    #[error("record type {record_type} must have an {expected}-byte body, got {got}")]
    BadBodyLength {
        record_type: u8,
        expected: usize,
        got: usize,
    },
    #[error("name-value pair truncated")]
    TruncatedPair,
    #[error("management record type {record_type} with request id {request_id} (must be 0)")]
    ManagementRecordWithRequestId { record_type: u8, request_id: u16 },
    #[error("record type {0} with request id 0 (reserved for management records)")]
    ApplicationRecordWithoutRequestId(u8),
}

/// The 8-byte record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub version: u8,
    pub record_type: u8,
    pub request_id: u16,
    pub content_length: u16,
    pub padding_length: u8,
}

impl RecordHeader {
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> RecordHeader {
        RecordHeader {
            version: bytes[0],
            record_type: bytes[1],
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_length: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_length: bytes[6],
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.version);
        out.put_u8(self.record_type);
        out.put_u16(self.request_id);
        out.put_u16(self.content_length);
        out.put_u8(self.padding_length);
        out.put_u8(0);
    }
}

/// One record (owned; stream contents are zero-copy `Bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    BeginRequest {
        request_id: u16,
        role: u16,
        flags: u8,
    },
    AbortRequest {
        request_id: u16,
    },
    EndRequest {
        request_id: u16,
        app_status: u32,
        protocol_status: u8,
    },
    Params {
        request_id: u16,
        data: Bytes,
    },
    Stdin {
        request_id: u16,
        data: Bytes,
    },
    Stdout {
        request_id: u16,
        data: Bytes,
    },
    Stderr {
        request_id: u16,
        data: Bytes,
    },
    Data {
        request_id: u16,
        data: Bytes,
    },
    GetValues {
        pairs: Vec<(Bytes, Bytes)>,
    },
    GetValuesResult {
        pairs: Vec<(Bytes, Bytes)>,
    },
    UnknownType {
        record_type: u8,
    },
    /// A type this codec does not know; a server answers UNKNOWN_TYPE.
    Other {
        record_type: u8,
        request_id: u16,
        content: Bytes,
    },
}

impl Record {
    pub fn request_id(&self) -> u16 {
        match self {
            Record::BeginRequest { request_id, .. }
            | Record::AbortRequest { request_id }
            | Record::EndRequest { request_id, .. }
            | Record::Params { request_id, .. }
            | Record::Stdin { request_id, .. }
            | Record::Stdout { request_id, .. }
            | Record::Stderr { request_id, .. }
            | Record::Data { request_id, .. }
            | Record::Other { request_id, .. } => *request_id,
            Record::GetValues { .. }
            | Record::GetValuesResult { .. }
            | Record::UnknownType { .. } => MANAGEMENT_REQUEST_ID,
        }
    }

    pub fn record_type(&self) -> u8 {
        use record_type::*;
        match self {
            Record::BeginRequest { .. } => BEGIN_REQUEST,
            Record::AbortRequest { .. } => ABORT_REQUEST,
            Record::EndRequest { .. } => END_REQUEST,
            Record::Params { .. } => PARAMS,
            Record::Stdin { .. } => STDIN,
            Record::Stdout { .. } => STDOUT,
            Record::Stderr { .. } => STDERR,
            Record::Data { .. } => DATA,
            Record::GetValues { .. } => GET_VALUES,
            Record::GetValuesResult { .. } => GET_VALUES_RESULT,
            Record::UnknownType { .. } => UNKNOWN_TYPE,
            Record::Other { record_type, .. } => *record_type,
        }
    }

    /// Appends the wire form. Stream records longer than
    /// [`MAX_CONTENT_LEN`] become several records; an empty stream record
    /// is exactly one empty record (the end-of-stream marker). Pair lists of
    /// GET_VALUES(_RESULT) longer than one record are cut at the last pair
    /// that fits (the spec allows one record only).
    pub fn encode(&self, out: &mut BytesMut) {
        use record_type::*;
        let id = self.request_id();
        match self {
            Record::BeginRequest { role, flags, .. } => {
                let [r0, r1] = role.to_be_bytes();
                encode_record(BEGIN_REQUEST, id, &[r0, r1, *flags, 0, 0, 0, 0, 0], out);
            }
            Record::AbortRequest { .. } => encode_record(ABORT_REQUEST, id, &[], out),
            Record::EndRequest {
                app_status,
                protocol_status,
                ..
            } => {
                let [a0, a1, a2, a3] = app_status.to_be_bytes();
                encode_record(
                    END_REQUEST,
                    id,
                    &[a0, a1, a2, a3, *protocol_status, 0, 0, 0],
                    out,
                );
            }
            Record::Params { data, .. }
            | Record::Stdin { data, .. }
            | Record::Stdout { data, .. }
            | Record::Stderr { data, .. }
            | Record::Data { data, .. } => {
                if data.is_empty() {
                    encode_stream_end(self.record_type(), id, out);
                } else {
                    encode_stream(self.record_type(), id, data, out);
                }
            }
            Record::GetValues { pairs } | Record::GetValuesResult { pairs } => {
                let mut body = BytesMut::new();
                for (name, value) in pairs {
                    let before = body.len();
                    encode_pairs([(name.as_ref(), value.as_ref())], &mut body);
                    if body.len() > MAX_CONTENT_LEN {
                        body.truncate(before);
                        break;
                    }
                }
                encode_record(self.record_type(), MANAGEMENT_REQUEST_ID, &body, out);
            }
            Record::UnknownType { record_type } => {
                encode_record(
                    UNKNOWN_TYPE,
                    MANAGEMENT_REQUEST_ID,
                    &[*record_type, 0, 0, 0, 0, 0, 0, 0],
                    out,
                );
            }
            Record::Other {
                record_type,
                content,
                ..
            } => {
                let end = content.len().min(MAX_CONTENT_LEN);
                encode_record(*record_type, id, &content[..end], out);
            }
        }
    }
}

/// Padding that brings `len` to a multiple of 8 (as libfcgi and php-fpm do).
fn padding_for(len: usize) -> u8 {
    ((8 - len % 8) % 8) as u8
}

/// Appends one record; `content` must fit ([`MAX_CONTENT_LEN`]).
fn encode_record(record_type: u8, request_id: u16, content: &[u8], out: &mut BytesMut) {
    debug_assert!(content.len() <= MAX_CONTENT_LEN);
    let padding = padding_for(content.len());
    out.reserve(HEADER_LEN + content.len() + padding as usize);
    RecordHeader {
        version: VERSION_1,
        record_type,
        request_id,
        content_length: content.len() as u16,
        padding_length: padding,
    }
    .encode(out);
    out.put_slice(content);
    out.put_bytes(0, padding as usize);
}

/// Appends `data` as records of `record_type` (content at most
/// [`MAX_CONTENT_LEN`] each, padded to a multiple of 8). Empty `data`
/// appends nothing: use [`encode_stream_end`] for the terminator.
pub fn encode_stream(record_type: u8, request_id: u16, data: &[u8], out: &mut BytesMut) {
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        encode_record(record_type, request_id, chunk, out);
    }
}

/// Appends the empty record that ends a stream.
pub fn encode_stream_end(record_type: u8, request_id: u16, out: &mut BytesMut) {
    encode_record(record_type, request_id, &[], out);
}

/// Appends BEGIN_REQUEST with `role` and `flags`.
pub fn encode_begin_request(request_id: u16, role: u16, flags: u8, out: &mut BytesMut) {
    Record::BeginRequest {
        request_id,
        role,
        flags,
    }
    .encode(out);
}

fn encode_length(len: usize, out: &mut BytesMut) {
    if len < 128 {
        out.put_u8(len as u8);
    } else {
        out.put_u32((len.min(MAX_PAIR_LEN) as u32) | 0x8000_0000);
    }
}

/// Appends name-value pairs in the spec's encoding. Names and values longer
/// than 2^31 - 1 bytes cannot be expressed and are cut.
pub fn encode_pairs<'a, I>(pairs: I, out: &mut BytesMut)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    for (name, value) in pairs {
        let name = &name[..name.len().min(MAX_PAIR_LEN)];
        let value = &value[..value.len().min(MAX_PAIR_LEN)];
        encode_length(name.len(), out);
        encode_length(value.len(), out);
        out.put_slice(name);
        out.put_slice(value);
    }
}

/// The whole PARAMS stream of a request: the pairs, split across records as
/// needed (a pair may span records, as the spec allows), then the empty
/// PARAMS record.
pub fn encode_params<'a, I>(request_id: u16, pairs: I, out: &mut BytesMut)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut body = BytesMut::with_capacity(1024);
    encode_pairs(pairs, &mut body);
    encode_stream(record_type::PARAMS, request_id, &body, out);
    encode_stream_end(record_type::PARAMS, request_id, out);
}

/// Decodes a name-value pair body.
pub fn decode_pairs(body: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ProtocolError> {
    fn length(body: &[u8], pos: &mut usize) -> Result<usize, ProtocolError> {
        let first = *body.get(*pos).ok_or(ProtocolError::TruncatedPair)?;
        if first & 0x80 == 0 {
            *pos += 1;
            return Ok(first as usize);
        }
        let bytes = body
            .get(*pos..*pos + 4)
            .ok_or(ProtocolError::TruncatedPair)?;
        *pos += 4;
        Ok((u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x7fff_ffff) as usize)
    }
    let mut pairs = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let name_len = length(body, &mut pos)?;
        let value_len = length(body, &mut pos)?;
        let end = pos
            .checked_add(name_len)
            .and_then(|n| n.checked_add(value_len))
            .filter(|&end| end <= body.len())
            .ok_or(ProtocolError::TruncatedPair)?;
        let name = Bytes::copy_from_slice(&body[pos..pos + name_len]);
        let value = Bytes::copy_from_slice(&body[pos + name_len..end]);
        pairs.push((name, value));
        pos = end;
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encoded(record: Record) -> Vec<u8> {
        let mut out = BytesMut::new();
        record.encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn begin_request_layout() {
        let bytes = encoded(Record::BeginRequest {
            request_id: 1,
            role: role::RESPONDER,
            flags: FLAG_KEEP_CONN,
        });
        assert_eq!(bytes, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn end_request_layout_big_endian_status() {
        let bytes = encoded(Record::EndRequest {
            request_id: 0x0102,
            app_status: 0x0A0B_0C0D,
            protocol_status: protocol_status::OVERLOADED,
        });
        assert_eq!(
            bytes,
            [1, 3, 1, 2, 0, 8, 0, 0, 0x0A, 0x0B, 0x0C, 0x0D, 2, 0, 0, 0]
        );
    }

    #[test]
    fn abort_and_unknown_type_layout() {
        assert_eq!(
            encoded(Record::AbortRequest { request_id: 7 }),
            [1, 2, 0, 7, 0, 0, 0, 0]
        );
        assert_eq!(
            encoded(Record::UnknownType { record_type: 42 }),
            [1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn stream_record_is_padded_to_eight() {
        let bytes = encoded(Record::Stdout {
            request_id: 1,
            data: Bytes::from_static(b"hello"),
        });
        assert_eq!(
            bytes,
            [
                1, 6, 0, 1, 0, 5, 3, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0
            ]
        );
    }

    #[test]
    fn empty_stream_record_is_the_terminator() {
        let bytes = encoded(Record::Stdin {
            request_id: 1,
            data: Bytes::new(),
        });
        assert_eq!(bytes, [1, 5, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn long_streams_split_at_65535() {
        let mut out = BytesMut::new();
        encode_stream(record_type::STDIN, 1, &vec![7u8; 65535], &mut out);
        // One full record: 8 + 65535 + 1 padding.
        assert_eq!(out.len(), 8 + 65535 + 1);
        assert_eq!(&out[..8], &[1, 5, 0, 1, 0xff, 0xff, 1, 0]);
        let mut out = BytesMut::new();
        encode_stream(record_type::STDIN, 1, &vec![7u8; 65536], &mut out);
        assert_eq!(out.len(), (8 + 65535 + 1) + (8 + 1 + 7));
        assert_eq!(&out[65544..65552], &[1, 5, 0, 1, 0, 1, 7, 0]);
    }

    #[test]
    fn pair_lengths_one_and_four_bytes() {
        let mut out = BytesMut::new();
        let short = [b'a'; 127];
        let long = [b'b'; 128];
        let value = [b'v'; 300];
        encode_pairs([(&short[..], &b"x"[..]), (&long[..], &value[..])], &mut out);
        assert_eq!(out[0], 127);
        assert_eq!(out[1], 1);
        let second = 2 + 127 + 1;
        assert_eq!(&out[second..second + 4], &[0x80, 0, 0, 128]);
        assert_eq!(&out[second + 4..second + 8], &[0x80, 0, 0x01, 0x2c]);
        let pairs = decode_pairs(&out).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].0.len(), 127);
        assert_eq!(pairs[1].0.len(), 128);
        assert_eq!(pairs[1].1.len(), 300);
    }

    #[test]
    fn truncated_pairs_are_errors() {
        assert_eq!(
            decode_pairs(&[5, 1, b'a']),
            Err(ProtocolError::TruncatedPair)
        );
        assert_eq!(
            decode_pairs(&[0x80, 0, 0]),
            Err(ProtocolError::TruncatedPair)
        );
        // A 4-byte length announcing 2 GiB.
        assert_eq!(
            decode_pairs(&[0xff, 0xff, 0xff, 0xff, 0]),
            Err(ProtocolError::TruncatedPair)
        );
    }

    #[test]
    fn params_stream_spans_records_and_ends_empty() {
        let big = vec![b'z'; 70_000];
        let mut out = BytesMut::new();
        encode_params(1, [(&b"BIG"[..], &big[..])], &mut out);
        // Pair body = 1 + 4 + 3 + 70000 = 70008 → records of 65535 and 4473, then the empty one.
        assert_eq!(&out[..8], &[1, 4, 0, 1, 0xff, 0xff, 1, 0]);
        let tail = &out[out.len() - 8..];
        assert_eq!(tail, &[1, 4, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn get_values_layout() {
        let bytes = encoded(Record::GetValues {
            pairs: vec![(Bytes::from_static(b"FCGI_MAX_CONNS"), Bytes::new())],
        });
        let mut expected = vec![1, 9, 0, 0, 0, 16, 0, 0, 14, 0];
        expected.extend_from_slice(b"FCGI_MAX_CONNS");
        assert_eq!(bytes, expected);
    }
}
