//! Any datagram through the defences and the responder chain: no panic,
//! and an answer only to an exact request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| discoveryd::fuzzing::datagram(data));
