//! Running as a Unix daemon: the pidfile, detaching, the control socket,
//! readiness notifications, and the `start`, `stop`, `status` and
//! `reload` operations on an instance identified by its pidfile.

mod control;
mod files;
mod fork;
mod locate;
mod notify;
mod pidfile;
mod process;
mod start;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{dup2_stderr, dup2_stdout, Pid};

use control::query_within;
pub(crate) use control::{query, socket_path, ControlSocket};
pub(crate) use locate::{locate, Located};
use locate::{unanswered, verified, vouch};
pub(crate) use notify::{Notifier, MIN_WATCHDOG_PING};
pub(crate) use pidfile::{probe, Pidfile, PidfileError, Probe};
pub(crate) use start::{preflight, start, Daemonized};

use crate::error::Error;
use crate::status::{LastReload, Status};

/// How long `stop` waits after SIGKILL before giving up.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Opens (creating it and its directory) the log file for appending,
/// refusing a file or directory another user could have planted.
pub(crate) fn open_log(path: &Path) -> Result<File, Error> {
    files::open_owned(path, files::Access::Append).map_err(|e| {
        Error::Setup(format!(
            "cannot open the log file {}: {e}; set another with --log-file or `log_file`",
            path.display()
        ))
    })
}

/// Points stdout and stderr at `path` (appending), as a daemon logs.
pub(crate) fn redirect_output(path: &Path) -> Result<(), Error> {
    let file = open_log(path)?;
    let redirect = dup2_stdout(&file).and_then(|()| dup2_stderr(&file));
    redirect.map_err(|e| Error::Setup(format!("cannot log to {}: {e}", path.display())))
}

/// Looks at the pidfile, with an error that names it.
pub(super) fn probe_at(pidfile: &Path) -> Result<Probe, Error> {
    probe(pidfile).map_err(|e| {
        Error::Setup(format!(
            "cannot read the pidfile {}: {e}; give the right one with --pidfile",
            pidfile.display()
        ))
    })
}

/// `path` made absolute against the current directory, or an error
/// naming it (the current directory may have been removed).
pub(super) fn absolute(path: impl AsRef<Path>) -> Result<PathBuf, Error> {
    let path = path.as_ref();
    std::path::absolute(path).map_err(|e| {
        Error::Setup(format!(
            "cannot resolve the path {} against the current directory ({e}); give it as an absolute path",
            path.display()
        ))
    })
}

/// What `stop` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// Nothing was running.
    NotRunning,
    /// Nothing was running, but a stale pidfile was left; it is removed.
    Stale {
        /// The pid in the stale file.
        pid: Option<u32>,
        /// Why it could not be removed, when it could not.
        kept: Option<String>,
    },
    /// It stopped on SIGTERM.
    Terminated {
        /// Its pid.
        pid: u32,
    },
    /// It ignored SIGTERM past the timeout and was killed.
    Killed {
        /// Its pid.
        pid: u32,
    },
}

/// Stops the instance holding `pidfile`: SIGTERM, then SIGKILL after
/// `timeout`. Stopping what is not running succeeds.
pub(crate) fn stop(pidfile: &Path, timeout: Duration) -> Result<Stopped, Error> {
    if let Probe::Stale { pid } = probe_at(pidfile)? {
        let kept = remove_files(pidfile).err().map(|e| e.to_string());
        return Ok(Stopped::Stale { pid, kept });
    }
    let Some(pid) = verified(pidfile)? else {
        return Ok(Stopped::NotRunning);
    };
    signal(pid, Signal::SIGTERM)?;
    if gone(pid, timeout) {
        return Ok(Stopped::Terminated { pid });
    }
    match signal(pid, Signal::SIGKILL) {
        // It exited between the last look and the signal.
        Err(_) if process::exited(pid) => return Ok(Stopped::Terminated { pid }),
        other => other?,
    }
    if !gone(pid, KILL_GRACE) {
        return Err(Error::Setup(format!(
            "pid {pid} ({}) is still running after SIGKILL",
            pidfile.display()
        )));
    }
    // SIGKILL left them behind; a failure here is only untidy.
    let _ = remove_files(pidfile);
    Ok(Stopped::Killed { pid })
}

/// What `status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StatusReport {
    /// Running, and it answered.
    Running(Box<Status>),
    /// Not running; `stale` is the pid of a dead instance's pidfile.
    NotRunning {
        /// The pid in a stale pidfile.
        stale: Option<u32>,
    },
    /// Running (it holds the pidfile) but its control socket did not answer.
    Unreachable {
        /// Its pid.
        pid: u32,
        /// Why the socket did not answer.
        error: String,
    },
}

/// Asks the instance holding `pidfile` for its status.
pub(crate) fn status(pidfile: &Path) -> Result<StatusReport, Error> {
    Ok(match probe_at(pidfile)? {
        Probe::Absent => StatusReport::NotRunning { stale: None },
        Probe::Stale { pid } => StatusReport::NotRunning {
            stale: pid.or(Some(0)),
        },
        Probe::Running { pid } => match query(&socket_path(pidfile)) {
            Ok(status) if status.pid == pid => StatusReport::Running(Box::new(status)),
            Ok(status) => StatusReport::Unreachable {
                pid,
                error: format!(
                    "the pidfile names pid {pid}, but the instance answering is pid {}",
                    status.pid
                ),
            },
            Err(e) => StatusReport::Unreachable {
                pid,
                error: match vouch(pidfile, pid) {
                    Ok(_) => unanswered(&socket_path(pidfile), &e),
                    Err(why) => format!("it is not a discoveryd instance: {why}"),
                },
            },
        },
    })
}

/// What `reload` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reloaded {
    /// Nothing is running.
    NotRunning,
    /// The daemon reloaded; this is the result.
    Done(LastReload),
    /// SIGHUP was sent, but no result was heard in time.
    Unconfirmed {
        /// The daemon's pid.
        pid: u32,
    },
}

/// Makes the instance holding `pidfile` reload its configuration
/// (SIGHUP), and waits up to `wait` for the result.
pub(crate) fn reload(pidfile: &Path, wait: Duration) -> Result<Reloaded, Error> {
    let Some(pid) = verified(pidfile)? else {
        return Ok(Reloaded::NotRunning);
    };
    let socket = socket_path(pidfile);
    let deadline = crate::duration::deadline(wait);
    let left = || deadline.saturating_duration_since(Instant::now());
    // An instance still starting has not served its socket yet: the first
    // result it reports is then this reload's (it keeps the SIGHUP).
    let before = query_within(&socket, left()).map_or(0, |s| s.reloads.total());
    signal(pid, Signal::SIGHUP)?;
    while Instant::now() < deadline {
        if !matches!(probe_at(pidfile)?, Probe::Running { .. }) {
            return Ok(Reloaded::NotRunning);
        }
        if let Ok(status) = query_within(&socket, left()) {
            if status.reloads.total() > before {
                if let Some(last) = status.reloads.last {
                    return Ok(Reloaded::Done(last));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Reloaded::Unconfirmed { pid })
}

pub(super) fn signal(pid: u32, signal: Signal) -> Result<(), Error> {
    let target = i32::try_from(pid).ok().filter(|&p| p > 0);
    let target =
        target.ok_or_else(|| Error::Setup(format!("the pidfile holds no valid pid ({pid})")))?;
    kill(Pid::from_raw(target), signal)
        .map_err(|e| Error::Setup(format!("cannot send {signal} to pid {pid}: {e}")))
}

/// Waits until `pid` has exited (and so let go of its ports, not only of
/// its pidfile), polling until `within` has passed.
fn gone(pid: u32, within: Duration) -> bool {
    let deadline = crate::duration::deadline(within);
    loop {
        if process::exited(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes what a dead instance left: its pidfile (a file `probe` found
/// to be a stale pidfile) and its control socket (only if it is one).
fn remove_files(pidfile: &Path) -> std::io::Result<()> {
    let socket = files::remove_socket(&socket_path(pidfile));
    match std::fs::remove_file(pidfile) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => socket,
    }
}

/// The pidfile and control socket a foreground or daemon run holds.
pub(crate) struct Instance {
    /// The pidfile, held.
    pub(crate) pidfile: Pidfile,
    /// The control socket, bound.
    pub(crate) control: ControlSocket,
}

impl Instance {
    /// Takes the pidfile at `path` (stopping its holder first with
    /// `replace`) and binds the control socket beside it.
    pub(crate) fn claim(path: &Path, replace: bool) -> Result<Self, Error> {
        let path: PathBuf = absolute(path)?;
        let (pidfile, found) = match Pidfile::acquire(&path) {
            Err(PidfileError::Held { pid, .. }) if replace => {
                tracing::info!(
                    pid,
                    "another instance holds the pidfile; stopping it (--replace)"
                );
                stop(&path, Duration::from_secs(5))?;
                Pidfile::acquire(&path)?
            }
            other => other?,
        };
        if let Probe::Stale { pid: Some(pid) } = found {
            tracing::warn!(pid, pidfile = %path.display(), "replaced a stale pidfile left by a dead instance");
        }
        let socket = socket_path(&path);
        let control = ControlSocket::bind(&socket).map_err(|e| {
            Error::Setup(format!(
                "cannot create the control socket {}: {e}",
                socket.display()
            ))
        })?;
        Ok(Self { pidfile, control })
    }
}
