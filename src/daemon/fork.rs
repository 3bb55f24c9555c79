//! Detaching from the terminal: the classic double fork. This is the only
//! unsafe code in discoveryd (`fork` is unsafe in a process with other
//! threads; we check there are none).
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd as _, RawFd};

use nix::fcntl::OFlag;
use nix::sys::stat::{umask, Mode};
use nix::unistd::{
    chdir, dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe2, setsid, ForkResult, Pid,
};

/// Which side of the detach this process is on.
pub(crate) enum Forked {
    /// The process that ran `start`: read the daemon's readiness here.
    Parent {
        /// The readiness pipe's read end.
        ready: File,
        /// The intermediate child, to reap.
        child: Pid,
    },
    /// The daemon: detached, in its own session, logging to the log file.
    Daemon {
        /// The readiness pipe's write end.
        ready: File,
    },
}

/// Double-forks: the daemon ends up in a new session with no controlling
/// terminal (and no way to get one), in `/`, with umask 022, stdin from
/// `/dev/null` and stdout and stderr appended to `log`.
pub(crate) fn detach(log: &File) -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "cannot fork with {threads} threads running"
        )));
    }
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: this process has exactly one thread (checked above), so the
    // child's memory is consistent: no lock is held by a thread that does
    // not exist in the child.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(Forked::Parent {
            ready: read.into(),
            child,
        }),
        ForkResult::Child => {
            drop(read);
            let mut ready = File::from(write);
            let daemon = (|| {
                setsid()?;
                // SAFETY: still one thread: the child of a single-threaded
                // fork has only the thread that called it.
                if let ForkResult::Parent { .. } = unsafe { fork() }? {
                    // The intermediate child: its exit orphans the daemon,
                    // which can never reacquire a terminal (not a session leader).
                    std::process::exit(0);
                }
                chdir("/")?;
                umask(Mode::from_bits_truncate(0o022));
                dup2_stdin(File::open("/dev/null")?)?;
                dup2_stdout(log)?;
                dup2_stderr(log)?;
                close_inherited(&[ready.as_raw_fd(), log.as_raw_fd()])?;
                io::Result::Ok(())
            })();
            if let Err(e) = daemon {
                let _ = writeln!(
                    ready,
                    "ERROR {}\ncannot detach: {e}",
                    crate::error::EXIT_INTERNAL
                );
                std::process::exit(crate::error::EXIT_INTERNAL.into());
            }
            Ok(Forked::Daemon { ready })
        }
    }
}

/// Closes every descriptor the caller of `start` left open to us (beyond
/// stdin, stdout and stderr) but `keep`: a daemon holding, say, the write
/// end of the caller's pipe would make whoever reads it wait forever.
fn close_inherited(keep: &[RawFd]) -> io::Result<()> {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: no object of this process owns `fd`: the daemon has only
        // just been forked, and what this process opened itself is in
        // `keep` or already closed (the directory read above, whose number
        // is in the list: closing it again fails with EBADF, harmlessly,
        // as nothing was opened in between). `close` takes no pointer.
        unsafe { libc::close(fd) };
    }
    Ok(())
}
