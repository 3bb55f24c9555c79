//! Who a pidfile really belongs to, from `/proc`: the process holding its
//! `flock` (`/proc/locks`), the user a process runs as, and whether it
//! runs the same program as we do. `stop` signals nobody these do not
//! vouch for: a pid written in a file proves nothing.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// The pid holding an exclusive `flock` on `path`, from `/proc/locks`.
pub(crate) fn lock_holder(path: &Path) -> Option<u32> {
    let meta = fs::metadata(path).ok()?;
    let locks = fs::read_to_string("/proc/locks").ok()?;
    let holder = holders(&locks)
        .find_map(|(pid, dev, ino)| (dev == meta.dev() && ino == meta.ino()).then_some(pid));
    holder
}

/// Every process holding an exclusive `flock`, with the file it locks:
/// candidates for a running instance whose pidfile path is unknown.
pub(crate) fn locked_files() -> Vec<(u32, PathBuf)> {
    let Ok(locks) = fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    holders(&locks)
        .filter_map(|(pid, dev, ino)| Some((pid, open_file(pid, dev, ino)?)))
        .collect()
}

/// The `(pid, device, inode)` of each granted exclusive `flock` in a
/// `/proc/locks` table (`1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF`;
/// waiters, marked `->`, are skipped).
fn holders(locks: &str) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
    locks.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "FLOCK", _, "WRITE", pid, id, ..] = fields.as_slice() else {
            return None;
        };
        let mut parts = id.split(':');
        let major = u64::from_str_radix(parts.next()?, 16).ok()?;
        let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
        let ino = parts.next()?.parse().ok()?;
        Some((
            pid.parse().ok()?,
            nix::sys::stat::makedev(major, minor),
            ino,
        ))
    })
}

/// The path under which `pid` has the file `(dev, ino)` open.
fn open_file(pid: u32, dev: u64, ino: u64) -> Option<PathBuf> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find_map(|fd| {
            let meta = fs::metadata(fd.path()).ok()?;
            (meta.dev() == dev && meta.ino() == ino)
                .then(|| fs::read_link(fd.path()).ok())
                .flatten()
        })
}

/// The real user id `pid` runs as.
pub(crate) fn uid_of(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// True when `pid` no longer runs: there is no such process, or it is a
/// zombie its parent has not reaped yet.
pub(crate) fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// True when `pid` runs the same executable as this process (or, where
/// its executable cannot be read, has the same command name).
pub(crate) fn same_program(pid: u32) -> bool {
    let id = |p: &str| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    match (id(&format!("/proc/{pid}/exe")), id("/proc/self/exe")) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => {
            let comm = |p: &str| fs::read_to_string(p).ok();
            comm(&format!("/proc/{pid}/comm")).is_some_and(|c| Some(c) == comm("/proc/self/comm"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lock_holders_and_skips_waiters() {
        let table = "1: FLOCK  ADVISORY  WRITE 4242 fe:01:1234 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 4343 fe:01:1234 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 77 fe:01:99 0 EOF\n\
                     3: FLOCK  ADVISORY  READ 88 fe:01:5 0 EOF\n";
        let found: Vec<_> = holders(table).collect();
        assert_eq!(found, vec![(4242, nix::sys::stat::makedev(0xfe, 1), 1234)]);
    }

    #[test]
    fn finds_our_own_lock_and_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let file = fs::File::create(&path).unwrap();
        let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| e)
            .unwrap();
        let me = std::process::id();
        assert_eq!(lock_holder(&path), Some(me));
        assert!(locked_files().contains(&(me, path.clone())));
        assert_eq!(uid_of(me), Some(nix::unistd::getuid().as_raw()));
        assert!(same_program(me));
        assert!(!same_program(1) || me == 1);
    }
}
