//! Paths as the kernel sees them: two spellings of one file (`..`,
//! symlinks, a bind mount) are the same file.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// `path` as the kernel resolves it: the longest existing part
/// canonicalized (symlinks and `..` resolved), the rest appended.
pub(crate) fn resolved(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => resolved(dir).join(name),
        _ => path,
    }
}

/// True when `a` and `b` name the same file: the same resolved path, or
/// (both existing) the same device and inode, as through a bind mount.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    if resolved(a) == resolved(b) {
        return true;
    }
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    matches!((id(a), id(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_links_of_one_file_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("real"), "x").unwrap();
        std::os::unix::fs::symlink("real", d.join("link")).unwrap();
        std::fs::hard_link(d.join("real"), d.join("hard")).unwrap();
        let name = d.file_name().unwrap().to_str().unwrap();
        let dotdot = d.join(format!("../{name}/real"));
        for other in [d.join("link"), d.join("hard"), dotdot, d.join("./real")] {
            assert!(same_file(&d.join("real"), &other), "{}", other.display());
        }
        assert!(
            same_file(&d.join("new"), &d.join("./new")),
            "not existing yet"
        );
        assert!(!same_file(&d.join("real"), &d.join("new")));
    }
}
