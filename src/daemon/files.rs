//! Opening the files a daemon writes (its pidfile and log file) so that
//! nobody can turn them against another file. Daemons often run as root,
//! and a symlink or hard link planted in their directory would otherwise
//! make root truncate or append to any file on the system.
//!
//! The rules: never follow a symlink to the file, write only regular files
//! with one link that we own, and reach them only through directories
//! (every one from `/` down, symlinks followed as the kernel would) owned
//! by us or root that no other user can replace entries in (not writable
//! by all, or sticky).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _,
};
use std::path::{Component, Path, PathBuf};

use nix::unistd::{eaccess, geteuid, AccessFlags};

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
            // Vouch for where the new directories go before making them.
            check_dir(existing_ancestor(dir))?;
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

/// Checks, creating nothing, that [`open_owned`] could open `path`: an
/// existing file is opened (which changes nothing); for a missing one, its
/// nearest existing directory must be safe and writable by this user.
pub(crate) fn check_openable(path: &Path, access: Access) -> io::Result<()> {
    let path = std::path::absolute(path)?;
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = existing_ancestor(&path);
            check_dir(dir)?;
            eaccess(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("cannot create it in {}: {e}", dir.display()),
                )
            })
        }
        Err(e) => Err(e),
        Ok(_) => open_owned(&path, access).map(drop),
    }
}

/// The nearest of `path`'s ancestors that exists (`/` at the least).
fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .skip(1)
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("/"))
}

/// Refuses a directory path through which another user could redirect
/// or replace our files: every directory walked, from `/` down to `dir`
/// and through each symlink on the way, must be owned by us or root, and
/// not writable by every user unless it is sticky.
pub(crate) fn check_dir(dir: &Path) -> io::Result<()> {
    let dir = std::path::absolute(dir)?;
    let mut pending: VecDeque<OsString> = dir
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut here = PathBuf::from("/");
    safe_dir(&here, &std::fs::metadata(&here)?)?;
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            here.pop();
            continue;
        }
        let next = here.join(&name);
        let meta = std::fs::symlink_metadata(&next)?;
        if meta.file_type().is_symlink() {
            // A link is as trustworthy as the directory it is in (`here`,
            // checked) and its owner: follow it, and check where it leads.
            trusted_link(&here, &next, &meta)?;
            links += 1;
            if links > 40 {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = std::fs::read_link(&next)?;
            if target.is_absolute() {
                here = PathBuf::from("/");
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push_front(n.to_owned()),
                    Component::ParentDir => pending.push_front("..".into()),
                    _ => {}
                }
            }
        } else if meta.is_dir() {
            safe_dir(&next, &meta)?;
            here = next;
        } else {
            return Err(unsafe_file(&format!(
                "is under {}, which is not a directory",
                next.display()
            )));
        }
    }
    Ok(())
}

/// Refuses a symlink another user may have planted: in a directory
/// others can write (such as a sticky `/tmp`), it must be ours or root's.
fn trusted_link(dir: &Path, link: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    let me = geteuid().as_raw();
    let shared = std::fs::metadata(dir)?.mode() & 0o022 != 0;
    if shared && meta.uid() != me && meta.uid() != 0 {
        return Err(unsafe_file(&format!(
            "is reached through the symbolic link {}, which belongs to uid {} in a directory others can write: that user could point it anywhere; remove it or use a directory of your own",
            link.display(),
            meta.uid()
        )));
    }
    Ok(())
}

fn safe_dir(dir: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    let me = geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(unsafe_file(&format!(
            "is reached through {}, which belongs to uid {}: that user could replace it; use a directory of your own",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(unsafe_file(&format!(
            "is reached through {}, which every user can write and which is not sticky: anyone could replace it; use a directory only you can write",
            dir.display()
        )));
    }
    Ok(())
}

/// The longest file that can be a pidfile (a pid and a newline).
const PIDFILE_MAX: u64 = 32;

/// True when `meta` and the first bytes of a file look like a pidfile:
/// empty, or a decimal pid and a newline. Anything else is someone's file,
/// never to be truncated or removed as a stale pidfile.
pub(crate) fn looks_like_pidfile(meta: &std::fs::Metadata, head: &[u8]) -> bool {
    meta.file_type().is_file()
        && meta.len() <= PIDFILE_MAX
        && std::str::from_utf8(head)
            .is_ok_and(|t| t.trim().is_empty() || t.trim().parse::<u32>().is_ok())
}

/// Reads the head of a possible pidfile: at most [`PIDFILE_MAX`] bytes.
pub(crate) fn pidfile_head(file: &mut File) -> io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _};
    file.rewind()?;
    let mut head = Vec::with_capacity(PIDFILE_MAX as usize);
    file.take(PIDFILE_MAX).read_to_end(&mut head)?;
    Ok(head)
}

/// Removes `path` if it is a socket (a control socket left behind);
/// refuses to remove anything else that is there.
pub(crate) fn remove_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(unsafe_file(
            "exists and is not a socket; refusing to replace it (remove it, or choose another pidfile)",
        )),
    }
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
    fn only_a_pid_looks_like_a_pidfile() {
        let dir = tempfile::tempdir().unwrap();
        let check = |text: &[u8]| {
            let path = dir.path().join("f");
            std::fs::write(&path, text).unwrap();
            let mut file = File::open(&path).unwrap();
            let head = pidfile_head(&mut file).unwrap();
            looks_like_pidfile(&file.metadata().unwrap(), &head)
        };
        assert!(check(b"") && check(b"4242\n") && check(b"4242"));
        assert!(!check(b"important\n"));
        assert!(!check(b"4242\nand more lines of someone's file\n"));
        assert!(!check(&[b'1'; 40]));
    }

    #[test]
    fn only_a_socket_is_removed_as_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        std::fs::write(&path, "a config, say\n").unwrap();
        assert!(remove_socket(&path).is_err());
        assert!(path.exists());
        std::fs::remove_file(&path).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        remove_socket(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_directory_anyone_can_write_must_be_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = open_owned(&open.join("d.pid"), Access::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("every user can write"), "{e}");
        // Also when the open directory is further up, or a symlink in it
        // leads elsewhere.
        std::fs::create_dir(open.join("sub")).unwrap();
        let e = open_owned(&open.join("sub/d.pid"), Access::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("every user can write"), "{e}");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, open.join("link")).unwrap();
        let e = open_owned(&open.join("link/d.pid"), Access::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("every user can write"), "{e}");
        assert!(!elsewhere.join("d.pid").exists());
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        open_owned(&open.join("d.pid"), Access::ReadWrite).unwrap();
    }

    #[test]
    fn a_link_another_user_planted_in_a_shared_directory_is_not_followed() {
        // Needs root, to plant a link as another user (the suite runs as
        // root, as its network namespaces need).
        assert!(geteuid().is_root(), "this test needs root");
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let link = shared.join("discoveryd-0");
        std::os::unix::fs::symlink(&theirs, &link).unwrap();
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &link,
            Some(nix::unistd::Uid::from_raw(4242)),
            None,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let e = open_owned(&link.join("d.pid"), Access::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("belongs to uid 4242"), "{e}");
        let e = check_openable(&link.join("d.log"), Access::Append).unwrap_err();
        assert!(e.to_string().contains("belongs to uid 4242"), "{e}");
        assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);
        // The same link of our own is followed.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&theirs, &link).unwrap();
        open_owned(&link.join("d.pid"), Access::ReadWrite).unwrap();
    }

    #[test]
    fn nothing_is_created_under_a_directory_that_fails_the_checks() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = open.join("new/deeper/d.pid");
        let e = open_owned(&path, Access::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("every user can write"), "{e}");
        let e = check_openable(&path, Access::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("every user can write"), "{e}");
        assert!(!open.join("new").exists());
    }

    #[test]
    fn checking_opens_what_exists_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.log");
        std::fs::write(dir.path().join("other"), "x").unwrap();
        std::fs::hard_link(dir.path().join("other"), &log).unwrap();
        let e = check_openable(&log, Access::Append).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        let missing = dir.path().join("sub/d.pid");
        check_openable(&missing, Access::ReadWrite).unwrap();
        assert!(!dir.path().join("sub").exists());
    }
}
