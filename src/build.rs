//! The build script (not a module of the crate): sets `VERSION_WITH_COMMIT`
//! (not `DISCOVERYD_...`: cargo also hands it to what `cargo run` starts,
//! where that prefix would be read as a config key),
//! the version `--version` prints, to the package's version followed by the
//! git commit it is built from, when it is built from a git checkout, such
//! as `0.1.0 (1a2b3c4d5e6f)`; the package's version alone otherwise (a
//! crates.io tarball, a checkout without git).

use std::path::Path;
use std::process::Command;

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let git = Path::new(&dir).join(".git");
    let commit = git.exists().then(|| commit(&dir)).flatten();
    match commit {
        Some(commit) => println!("cargo:rustc-env=VERSION_WITH_COMMIT={version} ({commit})"),
        None => println!("cargo:rustc-env=VERSION_WITH_COMMIT={version}"),
    }
    // Run again when it changes, and when the checkout moves to another
    // commit.
    // (Only files that exist: one that does not makes cargo run it, and
    // build the crate again, every time.)
    println!("cargo:rerun-if-changed=src/build.rs");
    // The branches' folder too: a commit on a branch kept only in
    // packed-refs writes a new file there.
    let mut watched = vec![
        git.join("HEAD"),
        git.join("packed-refs"),
        git.join("refs/heads"),
    ];
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(branch) = head.trim().strip_prefix("ref: ") {
            watched.push(git.join(branch));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The short hash of the commit checked out in `dir`, if git says it.
fn commit(dir: &str) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()?;
    let hash = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !hash.is_empty())
        .then_some(hash)
}
