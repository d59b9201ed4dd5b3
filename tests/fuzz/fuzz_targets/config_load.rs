//! Config loading (`config::load_str`): any text gives a config or an error
//! with a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Err(e) = fastgate::config::load_str(text, None) {
        assert!(!e.to_string().is_empty());
    }
});
