//! The request framing guard (`http::framing::Guarded`, through the hidden
//! `fastgate::fuzz::guard` hook) on what a client might send on one
//! connection, in reads of any size: never a panic, never a spin, never
//! more out than came in plus one small stand-in head, and the same
//! outcome however the client's bytes were split.
#![no_main]

use fastgate::fuzz::guard;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // First byte: how many piece sizes follow; second: hyper's read size.
    let Some((&[n, read], rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (pieces, data) = rest.split_at(n);
    let pieces: Vec<usize> = pieces.iter().map(|&p| usize::from(p).max(1)).collect();
    let read = usize::from(read).max(1) * 64;
    let whole = guard(data, &[], 8192);
    let split = guard(data, &pieces, read);
    // A refused head is replaced by a stand-in of at most a few hundred bytes.
    assert!(whole.passed.len() <= data.len() + 512);
    assert_eq!(whole.refused, split.refused, "refusal depends on the split");
    assert_eq!(whole.error, split.error, "error depends on the split");
    assert_eq!(whole.passed, split.passed, "output depends on the split");
});
