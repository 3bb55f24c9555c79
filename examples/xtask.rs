//! `cargo xtask`: what is generated from the command line's clap
//! definitions, never written by hand.
//!
//! ```text
//! cargo xtask man [DIR]           the man pages: discoveryd.1 and one per command
//! cargo xtask completions [DIR]   bash, zsh, fish, elvish and PowerShell
//! cargo xtask dist                both, and the systemd unit the .deb installs,
//!                                 under target/dist (what [package.metadata.deb] ships)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dist = root.join("target/dist");
    let dir = |i: usize, default: PathBuf| args.get(i).map(PathBuf::from).unwrap_or(default);
    let done = match args.first().map(String::as_str) {
        Some("man") => man(&dir(1, dist.join("man"))),
        Some("completions") => completions(&dir(1, dist.join("completions"))),
        Some("dist") => man(&dist.join("man"))
            .and_then(|()| completions(&dist.join("completions")))
            .and_then(|()| unit(root, &dist.join("systemd"))),
        _ => Err("usage: cargo xtask man [DIR] | completions [DIR] | dist".to_owned()),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `discoveryd.1`, and `discoveryd-<command>.1` for each command.
fn man(dir: &Path) -> Result<(), String> {
    create(dir)?;
    let command = discoveryd::cli::command();
    write_page(dir, "discoveryd", command.clone())?;
    for sub in command.get_subcommands() {
        let name = format!("discoveryd-{}", sub.get_name());
        write_page(
            dir,
            &name,
            sub.clone()
                .display_name(name.clone())
                .bin_name(format!("discoveryd {}", sub.get_name())),
        )?;
    }
    println!("man pages in {}", dir.display());
    Ok(())
}

fn write_page(dir: &Path, name: &str, command: clap::Command) -> Result<(), String> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| format!("cannot render {name}.1: {e}"))?;
    write(&dir.join(format!("{name}.1")), &page)
}

/// Each shell's completion script, named as that shell looks for it.
fn completions(dir: &Path) -> Result<(), String> {
    create(dir)?;
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        clap_complete::generate_to(shell, &mut discoveryd::cli::command(), "discoveryd", dir)
            .map_err(|e| {
                format!(
                    "cannot write the {shell} completions in {}: {e}",
                    dir.display()
                )
            })?;
    }
    println!("completions in {}", dir.display());
    Ok(())
}

/// The shipped unit (config/discoveryd.service) as the .deb installs it:
/// with the binary at /usr/bin, where the package puts it.
fn unit(root: &Path, dir: &Path) -> Result<(), String> {
    create(dir)?;
    let source = root.join("config/discoveryd.service");
    let text = std::fs::read_to_string(&source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    // Its first comment paragraph says how to install by hand: the
    // package has done that.
    let manual = text.find("\n#\n").map_or(0, |end| end + 1);
    let packaged = format!(
        "# systemd unit for discoveryd, installed by its Debian package (systemd 252\n# and later). Edit /etc/discoveryd/discoveryd.toml, then:\n#   systemctl enable --now discoveryd\n{}",
        text[manual..].replace("/usr/local/bin/discoveryd", "/usr/bin/discoveryd")
    );
    write(&dir.join("discoveryd.service"), packaged.as_bytes())?;
    println!("systemd unit in {}", dir.display());
    Ok(())
}

fn create(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
