//! Running as a Unix daemon: the pidfile, detaching, the control socket,
//! readiness notifications, and the `start`, `stop`, `status` and
//! `reload` operations on an instance identified by its pidfile.

mod control;
mod files;
mod fork;
mod notify;
mod pidfile;
mod process;

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{dup2_stderr, dup2_stdout, geteuid, Pid};

use control::query_within;
pub(crate) use control::{query, socket_path, ControlSocket};
pub(crate) use notify::{Notifier, MIN_WATCHDOG_PING};
pub(crate) use pidfile::{probe, Pidfile, PidfileError, Probe};

use crate::config::{Config, ConfigSource};
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

/// Checks, before `restart` stops anything, that a daemon for `config`
/// could take its files: the pidfile (unless it is `running`, which the
/// old instance gives back) and the log file, as `start` would open them.
pub(crate) fn preflight(config: &Config, running: &Path) -> Result<(), Error> {
    let pidfile = std::path::absolute(config.pidfile())?;
    if pidfile != std::path::absolute(running)? {
        if let Probe::Running { pid } = probe_at(&pidfile)? {
            return Err(Error::AlreadyRunning { pid, pidfile });
        }
        files::check_writable(&pidfile).map_err(|e| {
            Error::Setup(format!(
                "cannot use the pidfile {}: {e}; set another path with --pidfile or `pidfile` in the config",
                pidfile.display()
            ))
        })?;
    }
    let log = std::path::absolute(config.log_file())?;
    files::check_writable(&log).map_err(|e| {
        Error::Setup(format!(
            "cannot open the log file {}: {e}; set another with --log-file or `log_file`",
            log.display()
        ))
    })
}

/// Looks at the pidfile, with an error that names it.
fn probe_at(pidfile: &Path) -> Result<Probe, Error> {
    probe(pidfile).map_err(|e| {
        Error::Setup(format!(
            "cannot read the pidfile {}: {e}; give the right one with --pidfile",
            pidfile.display()
        ))
    })
}

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
/// instance of ours is running `config` under another pidfile (the
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
    let Some(config) = config.and_then(|c| std::path::absolute(c).ok()) else {
        return named;
    };
    let found = process::locked_files().into_iter().find(|(pid, path)| {
        may_signal(*pid).is_ok()
            && process::same_program(*pid)
            && query(&socket_path(path)).is_ok_and(|s| {
                s.pid == *pid && s.pidfile == *path && s.config.as_deref() == Some(&*config)
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
fn verified(pidfile: &Path) -> Result<Option<u32>, Error> {
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
fn vouch(pidfile: &Path, written: u32) -> Result<u32, String> {
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
fn unanswered(path: &Path, e: &std::io::Error) -> String {
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

/// What the daemon side of [`start`] runs with.
pub(crate) struct Daemonized {
    /// Tells `start` (through the readiness pipe) and systemd how it goes.
    pub(crate) notifier: Arc<Notifier>,
    /// The log file its output goes to (to reopen on SIGUSR2).
    pub(crate) log_file: PathBuf,
    /// The pidfile to hold, resolved before it left its working directory.
    pub(crate) pidfile: PathBuf,
}

/// Starts the service in the background. Returns, in the calling process,
/// the daemon's pid once it is listening, or its own error if it could not
/// start. In the daemon, it never returns.
pub(crate) fn start(
    mut source: ConfigSource,
    config: &Config,
    ready_within: Duration,
    daemon: impl FnOnce(ConfigSource, Daemonized) -> Result<(), Error>,
) -> Result<u32, Error> {
    let pidfile = std::path::absolute(config.pidfile())?;
    let log_path = std::path::absolute(config.log_file())?;
    let running = locate(Some(pidfile.clone()), source.path.as_deref())
        .map_or(pidfile.clone(), |l| l.pidfile);
    if let Probe::Running { pid } = probe_at(&running)? {
        return Err(Error::AlreadyRunning {
            pid,
            pidfile: running,
        });
    }
    // The daemon works from `/`: every path it uses must be absolute.
    source.path = source.path.map(std::path::absolute).transpose()?;
    // Flags given relative to the caller's directory keep their meaning;
    // the paths in use are handed over resolved, so that the config file
    // keeps its own values and an edit of them can be told apart.
    for flag in [
        &mut source.overrides.pidfile,
        &mut source.overrides.log_file,
    ] {
        *flag = flag.take().map(std::path::absolute).transpose()?;
    }
    let log = open_log(&log_path)?;
    match fork::detach(&log)? {
        fork::Forked::Parent { ready, child } => {
            let _ = waitpid(child, None);
            await_ready(ready, ready_within, &log_path)
        }
        fork::Forked::Daemon { mut ready } => {
            drop(log);
            // First its pid, so that `start` can stop it if it never gets ready.
            let _ = writeln!(ready, "PID {}", std::process::id());
            let notifier = Arc::new(Notifier::from_env().with_start_pipe(ready));
            let result = daemon(
                source,
                Daemonized {
                    notifier: Arc::clone(&notifier),
                    log_file: log_path,
                    pidfile,
                },
            );
            let code = match result {
                Ok(()) => crate::error::EXIT_OK,
                Err(error) => {
                    notifier.failed(&error);
                    for line in error.to_string().lines() {
                        crate::console::error_line(format_args!("discoveryd: error: {line}"));
                    }
                    error.exit_code()
                }
            };
            std::process::exit(code.into())
        }
    }
}

/// Waits for the daemon's word on the readiness pipe: its pid, then
/// `READY <pid>`, or `ERROR <code>` and its message. A daemon not ready
/// within `within` (a busy port being retried, say) is stopped.
fn await_ready(ready: File, within: Duration, log: &Path) -> Result<u32, Error> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd as _;
    let deadline = Instant::now() + within;
    let mut ready = ready;
    let mut said = Vec::new();
    let mut pid = None;
    loop {
        let text = String::from_utf8_lossy(&said).into_owned();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (word, number) = (
                words.next(),
                words.next().and_then(|w| w.parse::<u32>().ok()),
            );
            match (word, number) {
                (Some("PID"), Some(n)) => pid = Some(n),
                (Some("READY"), Some(n)) => return Ok(n),
                (Some("ERROR"), Some(code)) => {
                    let message = text.split_once(line).map_or("", |(_, rest)| rest);
                    return Err(Error::Daemon {
                        code: u8::try_from(code).unwrap_or(crate::error::EXIT_INTERNAL),
                        message: message.trim().to_owned(),
                    });
                }
                _ => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let what = match pid {
                Some(pid) => {
                    let _ = signal(pid, Signal::SIGTERM);
                    format!(
                        "the daemon (pid {pid}) was not listening after {}, so it was stopped",
                        humantime::format_duration(within)
                    )
                }
                None => format!(
                    "the daemon did not report within {}",
                    humantime::format_duration(within)
                ),
            };
            return Err(Error::NotReady(format!(
                "{what}; see {} (a busy port being retried?), or give start a longer --timeout",
                log.display()
            )));
        }
        let wait =
            PollTimeout::try_from(left.as_millis().min(1000) as u32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, wait) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Setup(format!(
                    "cannot read the daemon's readiness: {e}"
                )))
            }
        }
        let mut chunk = [0u8; 4096];
        match ready.read(&mut chunk) {
            Ok(0) => {
                return Err(Error::Setup(format!(
                    "the daemon exited before it was ready; see {}",
                    log.display()
                )))
            }
            Ok(n) => said.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Setup(format!(
                    "cannot read the daemon's readiness: {e}"
                )))
            }
        }
    }
}

/// What `stop` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// Nothing was running.
    NotRunning,
    /// Nothing was running, but a stale pidfile was left; it is removed.
    Stale {
        /// The pid in the stale file.
        pid: Option<u32>,
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
        remove_files(pidfile);
        return Ok(Stopped::Stale { pid });
    }
    let Some(pid) = verified(pidfile)? else {
        return Ok(Stopped::NotRunning);
    };
    signal(pid, Signal::SIGTERM)?;
    if gone(pidfile, timeout)? {
        return Ok(Stopped::Terminated { pid });
    }
    signal(pid, Signal::SIGKILL)?;
    if !gone(pidfile, KILL_GRACE)? {
        return Err(Error::Setup(format!(
            "pid {pid} still holds {} after SIGKILL",
            pidfile.display()
        )));
    }
    remove_files(pidfile);
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
    let deadline = Instant::now() + wait;
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

fn signal(pid: u32, signal: Signal) -> Result<(), Error> {
    let target = i32::try_from(pid).ok().filter(|&p| p > 0);
    let target =
        target.ok_or_else(|| Error::Setup(format!("the pidfile holds no valid pid ({pid})")))?;
    kill(Pid::from_raw(target), signal)
        .map_err(|e| Error::Setup(format!("cannot send {signal} to pid {pid}: {e}")))
}

/// Waits until nobody holds `pidfile`, polling until `within` has passed.
fn gone(pidfile: &Path, within: Duration) -> Result<bool, Error> {
    let deadline = Instant::now() + within;
    loop {
        if !matches!(probe_at(pidfile)?, Probe::Running { .. }) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes what a dead instance left: its pidfile (a file `probe` found
/// to be a stale pidfile) and its control socket (only if it is one).
fn remove_files(pidfile: &Path) {
    let _ = std::fs::remove_file(pidfile);
    let _ = files::remove_socket(&socket_path(pidfile));
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
        let path: PathBuf = std::path::absolute(path)?;
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
