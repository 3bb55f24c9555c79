//! Who an instance is: finding the instance a command means (even when its
//! config changed or broke), and vouching for a pid before anything
//! signals it.

use std::path::{Path, PathBuf};

use nix::unistd::geteuid;

use super::{probe, probe_at, process, query, socket_path, Probe};
use crate::error::Error;
use crate::paths::same_file;

/// The instance an instance command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    /// Its pidfile.
    pub pidfile: PathBuf,
    /// The pidfile the config names now, when the instance running this
    /// config holds another one (`pidfile` changed since it started:
    /// that applies at its next start); `None` also when the config
    /// cannot be read.
    pub configured: Option<PathBuf>,
}

/// Finds the instance for `pidfile`, the one the configuration names (if
/// the configuration could be read). When nothing runs there but an
/// instance of this user's is running `config` under another pidfile (the
/// config's `pidfile` was edited after it started, or the config cannot be
/// read any more), that one is found: a running daemon always stays
/// reachable. `None` when there is neither.
pub(crate) fn locate(pidfile: Option<PathBuf>, config: Option<&Path>) -> Option<Located> {
    let named = pidfile.map(|pidfile| Located {
        pidfile,
        configured: None,
    });
    let running = |p: &Path| matches!(probe(p), Ok(Probe::Running { .. }));
    if named.as_ref().is_some_and(|n| running(&n.pidfile)) {
        return named;
    }
    let Some(config) = config else {
        return named;
    };
    // Only this user's instances: another user's could claim any config
    // (and answer slowly, or without end); root finds root's.
    let me = geteuid().as_raw();
    let found = process::locked_files().into_iter().find(|(pid, path)| {
        process::uid_of(*pid) == Some(me)
            && process::same_program(*pid)
            && query(&socket_path(path)).is_ok_and(|s| {
                s.pid == *pid
                    && same_file(&s.pidfile, path)
                    && s.config.as_deref().is_some_and(|c| same_file(c, config))
            })
    });
    match found {
        Some((_, running)) if named.as_ref().is_none_or(|n| n.pidfile != running) => {
            Some(Located {
                pidfile: running,
                configured: named.map(|n| n.pidfile),
            })
        }
        _ => named,
    }
}

/// The pid of the live instance holding `pidfile`, vouched for before
/// anything signals it: it holds the pidfile's lock and runs our program,
/// or it answers on the pidfile's control socket under that pid; and it
/// runs as this user (root may act on any). `None` when nothing runs.
pub(super) fn verified(pidfile: &Path) -> Result<Option<u32>, Error> {
    let Probe::Running { pid: written } = probe_at(pidfile)? else {
        return Ok(None);
    };
    match vouch(pidfile, written) {
        Ok(pid) => {
            may_signal(pid)?;
            Ok(Some(pid))
        }
        // It may have exited in the meantime (a `stop` racing us).
        Err(_) if !matches!(probe_at(pidfile)?, Probe::Running { .. }) => Ok(None),
        Err(why) => Err(Error::Refused(format!(
            "the pidfile {} names pid {written}, but {why}; refusing to signal it (if no discoveryd runs, remove the pidfile)",
            pidfile.display()
        ))),
    }
}

/// The pid of the discoveryd instance holding `pidfile` (which names
/// `written`): the holder of its lock running our program, or the process
/// answering on its control socket under that pid. Else, why not.
pub(super) fn vouch(pidfile: &Path, written: u32) -> Result<u32, String> {
    // The lock is the truth; the pid written in the file is only a claim.
    let holder = process::lock_holder(pidfile);
    let pid = holder.unwrap_or(written);
    if pid != 0 && holder == Some(pid) && process::same_program(pid) {
        return Ok(pid);
    }
    match query(&socket_path(pidfile)) {
        Ok(status) if pid != 0 && status.pid == pid => Ok(pid),
        Ok(status) => Err(format!(
            "the instance answering on {} is pid {}",
            socket_path(pidfile).display(),
            status.pid
        )),
        Err(e) => Err(format!(
            "{} does not hold its lock as discoveryd, and {}",
            holder.map_or_else(
                || format!("pid {written}"),
                |h| format!("the lock holder, pid {h},")
            ),
            unanswered(&socket_path(pidfile), &e)
        )),
    }
}

/// Says why the control socket at `path` gave no status, for people.
pub(super) fn unanswered(path: &Path, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("{} did not answer in time", path.display())
        }
        std::io::ErrorKind::PermissionDenied => format!(
            "{} cannot be asked by this user (permission denied): run this as the instance's user or root",
            path.display()
        ),
        std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
        _ => format!("{} does not answer: {e}", path.display()),
    }
}

/// Refuses to act on a process of another user (root may).
fn may_signal(pid: u32) -> Result<(), Error> {
    let me = geteuid();
    match process::uid_of(pid) {
        _ if me.is_root() => Ok(()),
        Some(uid) if uid == me.as_raw() => Ok(()),
        uid => Err(Error::Refused(format!(
            "pid {pid} runs as uid {}, not as this user (uid {me}); run this as its user or as root",
            uid.map_or_else(|| "?".to_owned(), |u| u.to_string())
        ))),
    }
}
