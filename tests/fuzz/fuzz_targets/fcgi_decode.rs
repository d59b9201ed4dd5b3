//! The FastCGI record decoder (`fcgi::Decoder`, `proto::decode_pairs`) on
//! what an app might send: never a panic, and the same records and the same
//! error whether the bytes come at once or in pieces.
#![no_main]

use bytes::BytesMut;
use fastgate::fcgi::proto::decode_pairs;
use fastgate::fcgi::{Decoder, ProtocolError, Record};
use libfuzzer_sys::fuzz_target;

/// Decodes `data` fed in pieces of the given sizes (cycled); stops at the
/// first error. Returns the records, the error, and what was left over.
fn decode(data: &[u8], pieces: &[u8]) -> (Vec<Record>, Option<ProtocolError>, usize) {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    let mut at = 0;
    let mut piece = 0;
    while at < data.len() {
        let size = match pieces.get(piece % pieces.len().max(1)) {
            Some(&n) => usize::from(n).max(1),
            None => data.len(),
        };
        piece += 1;
        let end = (at + size).min(data.len());
        buf.extend_from_slice(&data[at..end]);
        at = end;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(e) => return (records, Some(e), buf.len()),
            }
        }
    }
    (records, None, buf.len())
}

fuzz_target!(|input: &[u8]| {
    // The first byte says how many piece sizes follow; the rest is the stream.
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (pieces, data) = rest.split_at(n);
    let whole = decode(data, &[]);
    let split = decode(data, pieces);
    assert_eq!(whole.0, split.0, "records differ when split");
    assert_eq!(whole.1, split.1, "errors differ when split");
    if whole.1.is_none() {
        assert_eq!(whole.2, split.2, "leftovers differ when split");
    }
    for record in &whole.0 {
        if let Record::Params { data, .. } = record {
            let _ = decode_pairs(data);
        }
    }
});
