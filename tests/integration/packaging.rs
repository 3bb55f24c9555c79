//! What a packaged discoveryd ships beside the daemon: `--version` with
//! the commit it was built from, and shell completions generated from the
//! command line's definition.

use crate::util::output;

#[test]
fn version_names_the_commit_when_built_from_a_checkout() {
    let (code, out, err) = output(&["--version"]);
    assert_eq!(code, 0, "{err}");
    let line = out.trim_end();
    let expected = format!("discoveryd {}", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&expected), "{line}");
    let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".git");
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success() && checkout.exists())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        // Built from this checkout: the build names a commit of it (the
        // one checked out when it was built).
        Some(_) => {
            let commit = line
                .strip_prefix(&expected)
                .and_then(|rest| rest.strip_prefix(" ("))
                .and_then(|rest| rest.strip_suffix(')'))
                .unwrap_or_else(|| panic!("no commit in {line:?}"));
            assert!(
                commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
                "{line}"
            );
            let known = std::process::Command::new("git")
                .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .unwrap();
            assert!(known.success(), "{commit} is no commit of this checkout");
        }
        None => assert_eq!(line, expected),
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _discoveryd"),
        ("zsh", "#compdef discoveryd"),
        ("fish", "complete -c discoveryd"),
        ("elvish", "discoveryd"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (code, out, err) = output(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(out.contains("discover"), "{shell} completes the commands");
    }
    let (code, _, err) = output(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bash, elvish, fish, powershell, zsh"), "{err}");
}
