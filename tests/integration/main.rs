//! End-to-end tests against the real `discoveryd` binary, on ephemeral
//! loopback ports. One test binary; helpers in `util`.

#[cfg(not(feature = "fault"))]
compile_error!("the tests need the test-only `fault` responder: run `cargo test --workspace --all-features` (the README's test command)");

mod answering;
mod bench;
mod check;
mod conflict;
mod daemon;
mod discover;
mod faults;
mod fuzz_corpus;
mod hostile;
mod http;
mod jitter;
mod lifecycle;
mod logs;
mod operators;
mod packaging;
mod plugins;
mod registrations;
mod registries;
mod reload;
mod security;
mod service;
mod supervision;
mod util;
