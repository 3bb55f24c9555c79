//! Replays every input the fuzzers kept (the corpus) and every crash they
//! found (the regressions) through the same entry points: what was once
//! found must stay fixed, without needing libFuzzer in CI.

use std::path::Path;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            out.extend(
                entries
                    .flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok()),
            );
        }
    }
    out
}

#[test]
fn the_datagram_corpus_replays_cleanly() {
    let inputs = inputs("datagram");
    assert!(!inputs.is_empty(), "the seed corpus is committed");
    for input in inputs {
        discoveryd::fuzzing::datagram(&input);
    }
}

#[test]
fn the_config_corpus_and_its_regressions_replay_cleanly() {
    let inputs = inputs("config");
    assert!(
        inputs.len() >= 3,
        "the seeds and the regression are committed"
    );
    for input in inputs {
        if let Ok(text) = std::str::from_utf8(&input) {
            discoveryd::fuzzing::config(text);
        }
    }
}
