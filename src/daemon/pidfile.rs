//! The pidfile: a file holding the daemon's pid, exclusively locked
//! (`flock`) for the daemon's whole life. The lock, not the file's
//! existence, says an instance is alive: a file left by a killed process
//! holds no lock and is stale.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::Error;

use super::files::{looks_like_pidfile, open_owned, pidfile_head, Access};

/// What a pidfile says about its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// No pidfile.
    Absent,
    /// A pidfile nobody holds (its process died without cleaning up).
    Stale {
        /// The pid written in it, if readable.
        pid: Option<u32>,
    },
    /// A live instance holds the lock.
    Running {
        /// Its pid.
        pid: u32,
    },
}

/// A pidfile this process holds, removed when dropped.
#[derive(Debug)]
pub(crate) struct Pidfile {
    path: PathBuf,
    _lock: Flock<File>,
}

/// Why a pidfile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    /// Another live instance holds it.
    #[error("discoveryd is already running with pid {pid} (pidfile {path})")]
    Held {
        /// The pidfile.
        path: PathBuf,
        /// The holder's pid, as written in the file.
        pid: u32,
    },
    /// The file could not be created, locked or written.
    #[error("cannot use the pidfile {path}: {source}; set another path with --pidfile or `pidfile` in the config")]
    Io {
        /// The pidfile.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

impl From<PidfileError> for Error {
    fn from(e: PidfileError) -> Self {
        match e {
            PidfileError::Held { pid, path } => Error::AlreadyRunning { pid, pidfile: path },
            e @ PidfileError::Io { .. } => Error::Setup(e.to_string()),
        }
    }
}

impl Pidfile {
    /// Takes the pidfile: locks it, then writes our pid. A stale file is
    /// replaced; a held one is an error naming the holder.
    pub(crate) fn acquire(path: &Path) -> Result<(Self, Probe), PidfileError> {
        let io_err = |source: io::Error| PidfileError::Io {
            path: path.to_owned(),
            source,
        };
        // Never truncate before holding the lock: the file may be a live
        // instance's.
        let file = open_owned(path, Access::ReadWrite).map_err(io_err)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(PidfileError::Held {
                    path: path.to_owned(),
                    pid: holder(&mut file, path),
                });
            }
            Err((_, errno)) => return Err(io_err(errno.into())),
        };
        let head = pidfile_head(&mut lock).map_err(io_err)?;
        if !looks_like_pidfile(&lock.metadata().map_err(io_err)?, &head) {
            return Err(io_err(not_a_pidfile()));
        }
        let previous = parse_pid(&head);
        lock.set_len(0).map_err(io_err)?;
        lock.rewind().map_err(io_err)?;
        writeln!(lock, "{}", std::process::id()).map_err(io_err)?;
        lock.sync_all().map_err(io_err)?;
        let found = if previous.is_some() {
            Probe::Stale { pid: previous }
        } else {
            Probe::Absent
        };
        Ok((
            Self {
                path: path.to_owned(),
                _lock: lock,
            },
            found,
        ))
    }

    /// The pidfile's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Removed while still locked, so no other instance can be fooled.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Looks at a pidfile without taking it.
pub(crate) fn probe(path: &Path) -> io::Result<Probe> {
    // O_NONBLOCK: a FIFO planted there must not hang `status`.
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Probe::Absent),
        Err(e) => return Err(e),
    };
    let mut file = file;
    let head = pidfile_head(&mut file)?;
    if !looks_like_pidfile(&file.metadata()?, &head) {
        return Err(not_a_pidfile());
    }
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(mut unlocked) => Ok(Probe::Stale {
            pid: read_pid(&mut unlocked),
        }),
        Err((mut file, Errno::EWOULDBLOCK)) => Ok(Probe::Running {
            pid: holder(&mut file, path),
        }),
        Err((_, errno)) => Err(errno.into()),
    }
}

/// The pid of the process holding the locked pidfile `file` at `path`:
/// the one written in it, or for a holder that has not written it yet,
/// the lock's owner (0 when neither can be seen).
fn holder(file: &mut File, path: &Path) -> u32 {
    read_pid(file)
        .or_else(|| super::process::lock_holder(path))
        .unwrap_or(0)
}

fn read_pid(file: &mut File) -> Option<u32> {
    parse_pid(&pidfile_head(file).ok()?)
}

fn parse_pid(head: &[u8]) -> Option<u32> {
    std::str::from_utf8(head).ok()?.trim().parse().ok()
}

fn not_a_pidfile() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "it is not a pidfile (it holds something else than a pid); leaving it alone",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_says_who_is_alive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/d.pid");
        assert_eq!(probe(&path).unwrap(), Probe::Absent);
        let (held, found) = Pidfile::acquire(&path).unwrap();
        assert_eq!(found, Probe::Absent);
        let me = std::process::id();
        assert_eq!(probe(&path).unwrap(), Probe::Running { pid: me });
        match Pidfile::acquire(&path) {
            Err(PidfileError::Held { pid, .. }) => assert_eq!(pid, me),
            other => panic!("a second acquire must fail: {other:?}"),
        }
        // The holder's pid survives the failed attempt.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            me.to_string()
        );
        drop(held);
        assert_eq!(probe(&path).unwrap(), Probe::Absent);
    }

    #[test]
    fn a_file_without_a_lock_is_stale_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        std::fs::write(&path, "4242\n").unwrap();
        assert_eq!(probe(&path).unwrap(), Probe::Stale { pid: Some(4242) });
        let (_held, found) = Pidfile::acquire(&path).unwrap();
        assert_eq!(found, Probe::Stale { pid: Some(4242) });
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
    }
}
