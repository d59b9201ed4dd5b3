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
    if whole.refused {
        // The stand-in copies the refused request line as far as it had
        // arrived when the limit was passed (its version may be cut off),
        // so only what came before it must be the same.
        assert_eq!(
            before_stand_in(&whole.passed),
            before_stand_in(&split.passed),
            "output before the refusal depends on the split"
        );
    } else {
        assert_eq!(whole.passed, split.passed, "output depends on the split");
    }
});

/// What the guard passed before the stand-in of a refused head (whose
/// request line has no line end of its own).
fn before_stand_in(passed: &[u8]) -> &[u8] {
    const MARK: &[u8] = b"\r\nhost: refused\r\n\r\n";
    let Some(at) = passed.windows(MARK.len()).rposition(|w| w == MARK) else {
        panic!("a refusal without its stand-in: {passed:?}");
    };
    let line_start = passed[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    &passed[..line_start]
}
