//! Running as a Unix daemon: the pidfile, detaching, the control socket,
//! readiness notifications, and the `start`, `stop`, `status` and
//! `reload` operations on an instance identified by its pidfile.

mod control;
mod fork;
mod notify;
mod pidfile;

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{dup2_stderr, dup2_stdout, Pid};

pub use control::{query, socket_path, ControlSocket};
pub use notify::Notifier;
pub use pidfile::{probe, Pidfile, PidfileError, Probe};

use crate::config::{Config, ConfigSource};
use crate::error::Error;
use crate::logging::LogControl;
use crate::status::{LastReload, Status};

/// How long `stop` waits after SIGKILL before giving up.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long `reload` waits to hear the result.
const RELOAD_WAIT: Duration = Duration::from_secs(5);

/// Opens (creating it and its directory) the log file for appending.
fn open_log(path: &Path) -> Result<File, Error> {
    append(path).map_err(|e| {
        Error::Setup(format!(
            "cannot open the log file {}: {e}; set another with --log-file or `log_file`",
            path.display()
        ))
    })
}

/// Opens `path` for appending, creating it and its directory.
fn append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Points stdout and stderr at `path` (appending), as a daemon logs.
pub(crate) fn redirect_output(path: &Path) -> io::Result<()> {
    let file = append(path)?;
    dup2_stdout(&file)?;
    dup2_stderr(&file)?;
    Ok(())
}

/// Starts the service in the background. Returns, in the calling process,
/// the daemon's pid once it is listening, or its own error if it could not
/// start. In the daemon, it never returns.
pub fn start(mut source: ConfigSource, config: &Config) -> Result<u32, Error> {
    let pidfile = std::path::absolute(config.pidfile())?;
    let log_path = std::path::absolute(config.log_file())?;
    if let Probe::Running { pid } = probe(&pidfile)? {
        return Err(Error::AlreadyRunning { pid, pidfile });
    }
    // The daemon works from `/`: every path it uses must be absolute.
    source.path = source.path.map(std::path::absolute).transpose()?;
    source.overrides.pidfile = Some(pidfile);
    source.overrides.log_file = Some(log_path.clone());
    let log = open_log(&log_path)?;
    match fork::detach(&log)? {
        fork::Forked::Parent { mut ready, child } => {
            let _ = waitpid(child, None);
            let mut said = String::new();
            let _ = ready.read_to_string(&mut said);
            let (first, rest) = said.split_once('\n').unwrap_or((&said, ""));
            let mut words = first.split_whitespace();
            match (
                words.next(),
                words.next().and_then(|w| w.parse::<u32>().ok()),
            ) {
                (Some("READY"), Some(pid)) => Ok(pid),
                (Some("ERROR"), Some(code)) => Err(Error::Daemon {
                    code: u8::try_from(code).unwrap_or(crate::error::EXIT_INTERNAL),
                    message: rest.trim().to_owned(),
                }),
                _ => Err(Error::Setup(format!(
                    "the daemon exited before it was ready; see {}",
                    log_path.display()
                ))),
            }
        }
        fork::Forked::Daemon { ready } => {
            drop(log);
            let notifier = Arc::new(Notifier::from_env().with_start_pipe(ready));
            let result = source.load().map_err(Error::from).and_then(|config| {
                let log = LogControl::install(&config);
                let options = crate::RunOptions {
                    replace: false,
                    notifier: Arc::clone(&notifier),
                    log_file: Some(log_path),
                };
                crate::run(source, config, log, options)
            });
            let code = match result {
                Ok(()) => crate::error::EXIT_OK,
                Err(error) => {
                    notifier.failed(&error);
                    for line in error.to_string().lines() {
                        eprintln!("discoveryd: error: {line}");
                    }
                    error.exit_code()
                }
            };
            std::process::exit(code.into())
        }
    }
}

/// What `stop` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
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
pub fn stop(pidfile: &Path, timeout: Duration) -> Result<Stopped, Error> {
    let pid = match probe(pidfile)? {
        Probe::Absent => return Ok(Stopped::NotRunning),
        Probe::Stale { pid } => {
            remove_files(pidfile);
            return Ok(Stopped::Stale { pid });
        }
        Probe::Running { pid } => pid,
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
pub enum StatusReport {
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
pub fn status(pidfile: &Path) -> Result<StatusReport, Error> {
    Ok(match probe(pidfile)? {
        Probe::Absent => StatusReport::NotRunning { stale: None },
        Probe::Stale { pid } => StatusReport::NotRunning {
            stale: pid.or(Some(0)),
        },
        Probe::Running { pid } => match query(&socket_path(pidfile)) {
            Ok(status) => StatusReport::Running(Box::new(status)),
            Err(e) => StatusReport::Unreachable {
                pid,
                error: e.to_string(),
            },
        },
    })
}

/// What `reload` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// Nothing is running.
    NotRunning,
    /// The daemon reloaded; this is the result.
    Done(LastReload),
    /// SIGHUP was sent, but the result was not heard in time.
    Sent {
        /// The daemon's pid.
        pid: u32,
    },
}

/// Makes the instance holding `pidfile` reload its configuration
/// (SIGHUP), and waits for the result.
pub fn reload(pidfile: &Path) -> Result<Reloaded, Error> {
    let Probe::Running { pid } = probe(pidfile)? else {
        return Ok(Reloaded::NotRunning);
    };
    let socket = socket_path(pidfile);
    let before = query(&socket).ok().map(|s| s.reloads.total());
    signal(pid, Signal::SIGHUP)?;
    let Some(before) = before else {
        return Ok(Reloaded::Sent { pid });
    };
    let deadline = Instant::now() + RELOAD_WAIT;
    while Instant::now() < deadline {
        if let Ok(status) = query(&socket) {
            if status.reloads.total() > before {
                if let Some(last) = status.reloads.last {
                    return Ok(Reloaded::Done(last));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Reloaded::Sent { pid })
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
        if !matches!(probe(pidfile)?, Probe::Running { .. }) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes what a dead instance left: its pidfile and control socket.
fn remove_files(pidfile: &Path) {
    let _ = std::fs::remove_file(pidfile);
    let _ = std::fs::remove_file(socket_path(pidfile));
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
