//! The sans-I/O record decoder: bytes in, [`Record`]s out.
//!
//! The caller reads from its socket into a `BytesMut` and asks for records;
//! the decoder takes a record off the front only when the whole record
//! (header, content and padding) is there, so partial input of any length
//! is fine. Content is split off without copying.

use bytes::{Buf, BytesMut};

use super::proto::{
    HEADER_LEN, MANAGEMENT_REQUEST_ID, ProtocolError, Record, RecordHeader, VERSION_1,
    decode_pairs, record_type,
};

/// Decodes FastCGI records from a byte buffer.
#[derive(Debug, Default)]
pub struct Decoder {}

impl Decoder {
    pub fn new() -> Self {
        Decoder {}
    }

    /// Takes one complete record off the front of `buf`, or returns
    /// `Ok(None)` (leaving `buf` as it is) when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Record>, ProtocolError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(head);
        let header = RecordHeader::parse(&bytes);
        if header.version != VERSION_1 {
            return Err(ProtocolError::UnsupportedVersion(header.version));
        }
        let content_len = header.content_length as usize;
        let total = HEADER_LEN + content_len + header.padding_length as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let content = buf.split_to(content_len).freeze();
        buf.advance(header.padding_length as usize);
        record_of(header, content).map(Some)
    }
}

fn fixed_body<const N: usize>(record_type: u8, content: &[u8]) -> Result<[u8; N], ProtocolError> {
    content
        .try_into()
        .map_err(|_| ProtocolError::BadBodyLength {
            record_type,
            expected: N,
            got: content.len(),
        })
}

fn record_of(header: RecordHeader, content: bytes::Bytes) -> Result<Record, ProtocolError> {
    use record_type::*;
    let request_id = header.request_id;
    let t = header.record_type;
    let management = matches!(t, GET_VALUES | GET_VALUES_RESULT | UNKNOWN_TYPE);
    if management && request_id != MANAGEMENT_REQUEST_ID {
        return Err(ProtocolError::ManagementRecordWithRequestId {
            record_type: t,
            request_id,
        });
    }
    if !management && (BEGIN_REQUEST..=DATA).contains(&t) && request_id == MANAGEMENT_REQUEST_ID {
        return Err(ProtocolError::ApplicationRecordWithoutRequestId(t));
    }
    Ok(match t {
        BEGIN_REQUEST => {
            let body: [u8; 8] = fixed_body(t, &content)?;
            Record::BeginRequest {
                request_id,
                role: u16::from_be_bytes([body[0], body[1]]),
                flags: body[2],
            }
        }
        ABORT_REQUEST => Record::AbortRequest { request_id },
        END_REQUEST => {
            let body: [u8; 8] = fixed_body(t, &content)?;
            Record::EndRequest {
                request_id,
                app_status: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                protocol_status: body[4],
            }
        }
        PARAMS => Record::Params {
            request_id,
            data: content,
        },
        STDIN => Record::Stdin {
            request_id,
            data: content,
        },
        STDOUT => Record::Stdout {
            request_id,
            data: content,
        },
        STDERR => Record::Stderr {
            request_id,
            data: content,
        },
        DATA => Record::Data {
            request_id,
            data: content,
        },
        GET_VALUES => Record::GetValues {
            pairs: decode_pairs(&content)?,
        },
        GET_VALUES_RESULT => Record::GetValuesResult {
            pairs: decode_pairs(&content)?,
        },
        UNKNOWN_TYPE => {
            let body: [u8; 8] = fixed_body(t, &content)?;
            Record::UnknownType {
                record_type: body[0],
            }
        }
        _ => Record::Other {
            record_type: t,
            request_id,
            content,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fcgi::proto::{FLAG_KEEP_CONN, protocol_status, role};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn decode_all(mut buf: BytesMut) -> Result<Vec<Record>, ProtocolError> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        while let Some(record) = decoder.decode(&mut buf)? {
            out.push(record);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    fn sample_records() -> Vec<Record> {
        vec![
            Record::BeginRequest {
                request_id: 1,
                role: role::RESPONDER,
                flags: FLAG_KEEP_CONN,
            },
            Record::Params {
                request_id: 1,
                data: Bytes::from_static(b"\x04\x03PATH/x/"),
            },
            Record::Stdin {
                request_id: 1,
                data: Bytes::new(),
            },
            Record::Stdout {
                request_id: 1,
                data: Bytes::from_static(b"Status: 200\r\n\r\nhi"),
            },
            Record::Stderr {
                request_id: 1,
                data: Bytes::from_static(b"warning"),
            },
            Record::Data {
                request_id: 1,
                data: Bytes::from_static(b"d"),
            },
            Record::EndRequest {
                request_id: 1,
                app_status: 3,
                protocol_status: protocol_status::REQUEST_COMPLETE,
            },
            Record::AbortRequest { request_id: 9 },
            Record::GetValues {
                pairs: vec![(Bytes::from_static(b"FCGI_MPXS_CONNS"), Bytes::new())],
            },
            Record::GetValuesResult {
                pairs: vec![(
                    Bytes::from_static(b"FCGI_MAX_REQS"),
                    Bytes::from_static(b"1"),
                )],
            },
            Record::UnknownType { record_type: 99 },
            Record::Other {
                record_type: 77,
                request_id: 1,
                content: Bytes::from_static(b"??"),
            },
        ]
    }

    fn encode_all(records: &[Record]) -> BytesMut {
        let mut out = BytesMut::new();
        for record in records {
            record.encode(&mut out);
        }
        out
    }

    #[test]
    fn every_record_type_round_trips() {
        let records = sample_records();
        assert_eq!(decode_all(encode_all(&records)).unwrap(), records);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_records() {
        let records = sample_records();
        let wire = encode_all(&records);
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(record) = decoder.decode(&mut buf).unwrap() {
                out.push(record);
            }
        }
        assert_eq!(out, records);
    }

    #[test]
    fn partial_input_leaves_buffer_untouched() {
        let wire = encode_all(&sample_records()[..1]);
        let mut buf = BytesMut::from(&wire[..10]);
        assert_eq!(Decoder::new().decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 10);
    }

    #[test]
    fn bad_version_is_an_error() {
        let mut buf = BytesMut::from(&[2u8, 6, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(
            Decoder::new().decode(&mut buf),
            Err(ProtocolError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn wrong_begin_request_length_is_an_error() {
        let mut buf = BytesMut::from(&[1u8, 1, 0, 1, 0, 2, 6, 0, 0, 1, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(
            Decoder::new().decode(&mut buf),
            Err(ProtocolError::BadBodyLength {
                record_type: 1,
                expected: 8,
                got: 2
            })
        );
    }

    #[test]
    fn management_record_needs_request_id_zero() {
        let mut buf = BytesMut::from(&[1u8, 9, 0, 1, 0, 0, 0, 0][..]);
        assert!(matches!(
            Decoder::new().decode(&mut buf),
            Err(ProtocolError::ManagementRecordWithRequestId { .. })
        ));
    }

    fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    fn arb_pairs() -> impl Strategy<Value = Vec<(Bytes, Bytes)>> {
        let len = prop_oneof![0usize..4, 125usize..131, 250usize..260];
        let item = (len.clone(), len).prop_flat_map(|(n, v)| {
            (
                proptest::collection::vec(any::<u8>(), n).prop_map(Bytes::from),
                proptest::collection::vec(any::<u8>(), v).prop_map(Bytes::from),
            )
        });
        proptest::collection::vec(item, 0..6)
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let id = 1u16..=u16::MAX;
        prop_oneof![
            (id.clone(), any::<u16>(), any::<u8>()).prop_map(|(request_id, role, flags)| {
                Record::BeginRequest {
                    request_id,
                    role,
                    flags,
                }
            }),
            id.clone()
                .prop_map(|request_id| Record::AbortRequest { request_id }),
            (id.clone(), any::<u32>(), any::<u8>()).prop_map(
                |(request_id, app_status, protocol_status)| {
                    Record::EndRequest {
                        request_id,
                        app_status,
                        protocol_status,
                    }
                }
            ),
            (id.clone(), arb_bytes(200_000))
                .prop_map(|(request_id, data)| Record::Stdout { request_id, data }),
            (id.clone(), arb_bytes(70_000))
                .prop_map(|(request_id, data)| Record::Stdin { request_id, data }),
            (id.clone(), arb_bytes(300))
                .prop_map(|(request_id, data)| Record::Stderr { request_id, data }),
            (id, arb_bytes(300)).prop_map(|(request_id, data)| Record::Params { request_id, data }),
            arb_pairs().prop_map(|pairs| Record::GetValues { pairs }),
            arb_pairs().prop_map(|pairs| Record::GetValuesResult { pairs }),
            (12u8..=255).prop_map(|record_type| Record::UnknownType { record_type }),
        ]
    }

    /// Stream records come back split in ≤65535-byte pieces: join them.
    fn join_streams(records: Vec<Record>) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for record in records {
            let merged = match (out.last_mut(), &record) {
                (
                    Some(Record::Stdout {
                        request_id: a,
                        data: d,
                    }),
                    Record::Stdout {
                        request_id: b,
                        data,
                    },
                )
                | (
                    Some(Record::Stdin {
                        request_id: a,
                        data: d,
                    }),
                    Record::Stdin {
                        request_id: b,
                        data,
                    },
                ) if a == b && !data.is_empty() && d.len() % 65535 == 0 && !d.is_empty() => {
                    let mut joined = d.to_vec();
                    joined.extend_from_slice(data);
                    *d = Bytes::from(joined);
                    true
                }
                _ => false,
            };
            if !merged {
                out.push(record);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn encode_then_decode_round_trips(record in arb_record(), split in 1usize..5000) {
            let wire = encode_all(std::slice::from_ref(&record));
            // Feed the bytes in chunks of `split`.
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(r) = decoder.decode(&mut buf).unwrap() {
                    got.push(r);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(join_streams(got), vec![record]);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut decoder = Decoder::new();
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }

        /// A stream of several records, cut at any points, decodes to the
        /// same records as the whole stream at once.
        #[test]
        fn any_split_of_a_record_stream_decodes_the_same(
            records in proptest::collection::vec(arb_record(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let wire = encode_all(&records);
            let whole = decode_all(wire.clone()).unwrap();
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts {
                buf.extend_from_slice(&wire[from..cut]);
                from = cut;
                while let Some(record) = decoder.decode(&mut buf).unwrap() {
                    got.push(record);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, whole);
        }

        /// Garbage of any length, fed in any pieces, gives records or an
        /// error, never a panic, and never more records than whole 8-byte
        /// headers in it.
        #[test]
        fn garbage_in_pieces_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            piece in 1usize..64,
        ) {
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut records = 0;
            'feed: for chunk in bytes.chunks(piece) {
                buf.extend_from_slice(chunk);
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(_)) => records += 1,
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
            prop_assert!(records <= bytes.len() / HEADER_LEN);
        }
    }
}
