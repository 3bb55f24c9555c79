//! Any config text through parsing and validation: no panic, and every
//! error names the file and a key or line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        discoveryd::fuzzing::config(text);
    }
});
