//! Opening the files a daemon writes (its pidfile and log file) so that
//! nobody can turn them against another file. Daemons often run as root,
//! and a symlink or hard link planted in their directory would otherwise
//! make root truncate or append to any file on the system.
//!
//! The rules: never follow a symlink, write only regular files with one
//! link that we own, and only in a directory owned by us or root that no
//! other user can replace files in (not writable by all, or sticky).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use nix::unistd::geteuid;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read and write, created if missing, never truncated on open (a
    /// pidfile: it may be a live instance's until its lock is taken).
    ReadWrite,
    /// Append, created if missing (a log file).
    Append,
}

/// Opens `path` as a file only we write, creating its directory if needed.
/// The error says what is wrong with the file or its directory.
pub(crate) fn open_owned(path: &Path, access: Access) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
        }
        check_dir(dir)?;
    }
    let mut options = OpenOptions::new();
    match access {
        Access::ReadWrite => options.read(true).write(true),
        Access::Append => options.append(true),
    };
    // O_NONBLOCK: opening a FIFO planted there must not hang us.
    let file = options
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => unsafe_file("is a symbolic link; refusing to follow it"),
            _ => e,
        })?;
    check_owned(&file.metadata()?)?;
    Ok(file)
}

/// Refuses a directory in which another user could replace our files:
/// one owned by someone else than us or root, or writable by every user
/// without the sticky bit.
pub(crate) fn check_dir(dir: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    let me = geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(unsafe_file(&format!(
            "is in {}, which belongs to uid {}: that user could replace it; use a directory of your own",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(unsafe_file(&format!(
            "is in {}, which every user can write and which is not sticky: anyone could replace it; use a directory only you can write",
            dir.display()
        )));
    }
    Ok(())
}

/// Refuses anything but a regular file of ours with a single link (a
/// hard link to another file would make us write that file).
fn check_owned(meta: &std::fs::Metadata) -> io::Result<()> {
    if !meta.file_type().is_file() {
        return Err(unsafe_file("is not a regular file"));
    }
    let me = geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_file(&format!(
            "belongs to uid {}, not to this user (uid {me}); remove it or choose another path",
            meta.uid()
        )));
    }
    if meta.nlink() > 1 {
        return Err(unsafe_file(&format!(
            "has {} hard links: it may be another file's; remove it or choose another path",
            meta.nlink()
        )));
    }
    Ok(())
}

fn unsafe_file(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn symlinks_fifos_and_hard_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        let link = dir.path().join("d.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for access in [Access::ReadWrite, Access::Append] {
            let e = open_owned(&link, access).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        let hard = dir.path().join("hard.log");
        std::fs::hard_link(&target, &hard).unwrap();
        let e = open_owned(&hard, Access::Append).unwrap_err();
        assert!(e.to_string().contains("2 hard links"), "{e}");
        let fifo = dir.path().join("fifo.pid");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = open_owned(&fifo, Access::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
        // A plain path works, and creates missing directories.
        open_owned(&dir.path().join("sub/d.pid"), Access::ReadWrite).unwrap();
    }

    #[test]
    fn a_directory_anyone_can_write_must_be_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = open_owned(&open.join("d.pid"), Access::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("every user can write"), "{e}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        open_owned(&open.join("d.pid"), Access::ReadWrite).unwrap();
    }
}
