//! The CGI response-head parser (`cgi::response::parse_head`) on what an app
//! might write before its body: never a panic; a head it accepts ends within
//! the limit and inside the input; more input never changes a complete
//! head's answer.
#![no_main]

use fastgate::cgi::response::parse_head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // Two bytes choose the limit (the parser's `max_response_header_size`).
    let Some((limit, data)) = input.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes(*limit)).max(1);
    match parse_head(data, limit) {
        Ok(Some((head, body_start))) => {
            assert!(body_start <= data.len(), "body starts past the input");
            assert!(body_start <= limit + 2, "head longer than its limit");
            // The same head with more bytes after it parses the same.
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\r\n\r\nmore body");
            match parse_head(&longer, limit) {
                Ok(Some((again, start))) => {
                    assert_eq!(start, body_start);
                    assert_eq!(again.status, head.status);
                    assert_eq!(again.kind, head.kind);
                }
                other => panic!("a complete head changed with more input: {other:?}"),
            }
        }
        Ok(None) => assert!(data.len() < limit, "incomplete past the limit"),
        Err(_) => {}
    }
});
