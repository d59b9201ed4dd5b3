//! Record layout, constants and encoders of the FastCGI 1.0 specification.
//!
//! Every record is an 8-byte header (version, type, request id, content
//! length, padding length), the content, and padding. Stream records
//! (PARAMS, STDIN, STDOUT, STDERR, DATA) carry at most 65535 bytes each; a
//! stream ends with an empty record. Name-value pairs use a 1-byte length
//! below 128 and a 4-byte length (high bit set) otherwise.
//!
//! The specification lets a name-value pair span PARAMS records, but
//! php-cgi (main/fastcgi.c) and libfcgi parse the pairs of each record on
//! their own: a pair cut across two records makes them drop the connection.
//! So [`encode_params`] starts a new record at a pair boundary, and refuses
//! a pair that cannot fit in one record rather than split it (HAProxy's and
//! lighttpd's advisories came from getting this wrong).
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

/// A name-value pair too large for one PARAMS record: it cannot be sent
/// to php-cgi or a libfcgi app without being split, so it is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "parameter {name} needs {size} bytes, more than one FastCGI record holds ({MAX_CONTENT_LEN}); it is never split across records"
)]
pub struct ParamsError {
    name: String,
    size: usize,
}

impl ParamsError {
    /// The parameter's name (cut to 64 bytes, lossy UTF-8).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The encoded size of the pair.
    pub fn size(&self) -> usize {
        self.size
    }
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
        out.put_slice(&self.to_bytes());
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type,
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_length,
            0,
        ]
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

/// Bytes one pair takes in the name-value encoding.
pub fn pair_len(name: &[u8], value: &[u8]) -> usize {
    let length = |n: usize| if n < 128 { 1 } else { 4 };
    length(name.len()) + length(value.len()) + name.len() + value.len()
}

/// The whole PARAMS stream of a request: the pairs, as many to a record as
/// fit, a new record starting at a pair boundary, then the empty PARAMS
/// record. A pair that does not fit in one record is an error, and `out`
/// is left as it was.
pub fn encode_params<'a, I>(
    request_id: u16,
    pairs: I,
    out: &mut BytesMut,
) -> Result<(), ParamsError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let start = out.len();
    // The pairs are written in place after the open record's header, which
    // is filled in when the record closes: no record buffer, no copy.
    let mut open: Option<usize> = None;
    for (name, value) in pairs {
        let size = pair_len(name, value);
        if size > MAX_CONTENT_LEN {
            out.truncate(start);
            let shown = &name[..name.len().min(64)];
            return Err(ParamsError {
                name: String::from_utf8_lossy(shown).into_owned(),
                size,
            });
        }
        match open {
            Some(at) if out.len() - at - HEADER_LEN + size <= MAX_CONTENT_LEN => {}
            Some(at) => {
                close_record(record_type::PARAMS, request_id, at, out);
                open = Some(open_record(out));
            }
            None => open = Some(open_record(out)),
        }
        encode_pairs([(name, value)], out);
    }
    if let Some(at) = open {
        close_record(record_type::PARAMS, request_id, at, out);
    }
    encode_stream_end(record_type::PARAMS, request_id, out);
    Ok(())
}

/// Starts a record whose content is written next: room for its header,
/// returned where it is for [`close_record`].
fn open_record(out: &mut BytesMut) -> usize {
    let at = out.len();
    out.put_bytes(0, HEADER_LEN);
    at
}

/// Ends the record opened at `at`: its header, for the content written
/// since, then the padding.
fn close_record(record_type: u8, request_id: u16, at: usize, out: &mut BytesMut) {
    let len = out.len() - at - HEADER_LEN;
    debug_assert!(len <= MAX_CONTENT_LEN);
    let padding = padding_for(len);
    let header = RecordHeader {
        version: VERSION_1,
        record_type,
        request_id,
        content_length: len as u16,
        padding_length: padding,
    };
    out[at..at + HEADER_LEN].copy_from_slice(&header.to_bytes());
    out.put_bytes(0, padding as usize);
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

    /// The PARAMS records of an encoded stream, each one's content.
    fn params_records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        while !bytes.is_empty() {
            let header = RecordHeader::parse(bytes[..HEADER_LEN].try_into().unwrap());
            assert_eq!(header.record_type, record_type::PARAMS);
            let len = header.content_length as usize;
            records.push(bytes[HEADER_LEN..HEADER_LEN + len].to_vec());
            bytes = &bytes[HEADER_LEN + len + header.padding_length as usize..];
        }
        records
    }

    #[test]
    fn params_stream_is_cut_between_pairs_and_ends_empty() {
        // 20 pairs of 4 000 bytes: 80 kB, more than one record holds.
        let values: Vec<Vec<u8>> = (0..20u8).map(|i| vec![b'a' + i; 4000]).collect();
        let names: Vec<String> = (0..20).map(|i| format!("HTTP_X_PART_{i}")).collect();
        let pairs = names
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.as_bytes(), &v[..]));
        let mut out = BytesMut::new();
        encode_params(1, pairs, &mut out).unwrap();
        let records = params_records(&out);
        assert_eq!(
            records.last().unwrap(),
            &Vec::<u8>::new(),
            "ends with the empty record"
        );
        let records = &records[..records.len() - 1];
        assert_eq!(records.len(), 2);
        // Each record decodes on its own, as php-cgi reads it, and together
        // they give every pair whole, in order.
        let mut decoded = Vec::new();
        for record in records {
            assert!(record.len() <= MAX_CONTENT_LEN);
            decoded.extend(decode_pairs(record).unwrap());
        }
        assert_eq!(decoded.len(), 20);
        for ((name, value), (n, v)) in decoded.iter().zip(names.iter().zip(&values)) {
            assert_eq!(name.as_ref(), n.as_bytes());
            assert_eq!(value.as_ref(), &v[..]);
        }
    }

    #[test]
    fn a_pair_that_fills_a_record_exactly_is_sent() {
        // 1 + 4 + 3 + 65527 = 65535 bytes.
        let value = vec![b'v'; 65527];
        let mut out = BytesMut::from(&b"kept"[..]);
        encode_params(
            1,
            [(&b"BIG"[..], &value[..]), (&b"A"[..], &b"b"[..])],
            &mut out,
        )
        .unwrap();
        let records = params_records(&out[4..]);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].len(), MAX_CONTENT_LEN);
        assert_eq!(decode_pairs(&records[1]).unwrap().len(), 1);
    }

    #[test]
    fn a_pair_too_large_for_one_record_is_refused_not_split() {
        let value = vec![b'v'; 65528];
        let mut out = BytesMut::from(&b"kept"[..]);
        let pairs = [(&b"A"[..], &b"b"[..]), (&b"HTTP_X_BIG"[..], &value[..])];
        let e = encode_params(1, pairs, &mut out).unwrap_err();
        assert_eq!(e.name(), "HTTP_X_BIG");
        assert_eq!(e.size(), 1 + 4 + 10 + 65528);
        assert!(e.to_string().contains("HTTP_X_BIG"), "{e}");
        // Nothing of the stream was written.
        assert_eq!(&out[..], b"kept");
    }

    /// The PARAMS stream as encoded before `encode_params` wrote records in
    /// place: pairs gathered in a record buffer, the record written when
    /// the next pair would not fit.
    fn packed_one_record_at_a_time(pairs: &[(Vec<u8>, Vec<u8>)]) -> BytesMut {
        let (mut out, mut record) = (BytesMut::new(), BytesMut::new());
        for (name, value) in pairs {
            if record.len() + pair_len(name, value) > MAX_CONTENT_LEN {
                encode_record(record_type::PARAMS, 1, &record, &mut out);
                record.clear();
            }
            encode_pairs([(&name[..], &value[..])], &mut record);
        }
        if !record.is_empty() {
            encode_record(record_type::PARAMS, 1, &record, &mut out);
        }
        encode_stream_end(record_type::PARAMS, 1, &mut out);
        out
    }

    proptest::proptest! {
        /// Whatever the pairs, every record holds whole pairs only: each
        /// decodes on its own, and a pair that cannot fit is refused.
        #[test]
        fn params_records_hold_whole_pairs(sizes in proptest::collection::vec((0usize..200, 0usize..70_000), 0..12)) {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = sizes
                .iter()
                .map(|&(n, v)| (vec![b'N'; n], vec![b'V'; v]))
                .collect();
            let mut out = BytesMut::new();
            let fits = pairs.iter().all(|(n, v)| pair_len(n, v) <= MAX_CONTENT_LEN);
            let result = encode_params(1, pairs.iter().map(|(n, v)| (&n[..], &v[..])), &mut out);
            proptest::prop_assert_eq!(result.is_ok(), fits);
            if fits {
                let mut decoded = Vec::new();
                for record in params_records(&out) {
                    decoded.extend(decode_pairs(&record).unwrap());
                }
                proptest::prop_assert_eq!(decoded.len(), pairs.len());
                let expected = packed_one_record_at_a_time(&pairs);
                proptest::prop_assert!(out == expected, "not the stream a record buffer gives");
            } else {
                proptest::prop_assert!(out.is_empty());
            }
        }
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
