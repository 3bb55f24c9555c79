//! `start`: checking that a daemon could take its files, detaching it, and
//! waiting for its word that it listens.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;

use super::{absolute, files, fork, locate, open_log, probe_at, signal, Notifier, Probe};
use crate::config::{Config, ConfigSource};
use crate::error::Error;

/// Checks, before `restart` stops anything, that a daemon for `config`
/// could take its files: the pidfile (unless it is `running`, which the
/// old instance gives back) and the log file, as `start` would open them.
pub(crate) fn preflight(config: &Config, running: &Path) -> Result<(), Error> {
    let pidfile = absolute(config.pidfile())?;
    if pidfile != absolute(running)? {
        if let Probe::Running { pid } = probe_at(&pidfile)? {
            return Err(Error::AlreadyRunning { pid, pidfile });
        }
        files::check_openable(&pidfile, files::Access::ReadWrite).map_err(|e| {
            Error::Setup(format!(
                "cannot use the pidfile {}: {e}; set another path with --pidfile or `pidfile` in the config",
                pidfile.display()
            ))
        })?;
    }
    let log = absolute(config.log_file())?;
    files::check_openable(&log, files::Access::Append).map_err(|e| {
        Error::Setup(format!(
            "cannot open the log file {}: {e}; set another with --log-file or `log_file`",
            log.display()
        ))
    })
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
    let pidfile = absolute(config.pidfile())?;
    let log_path = absolute(config.log_file())?;
    // A pidfile given on the command line is the instance; else the one
    // running this config, even under the pidfile it started with.
    let running = if source.overrides.pidfile.is_some() {
        pidfile.clone()
    } else {
        locate(Some(pidfile.clone()), source.path.as_deref()).map_or(pidfile.clone(), |l| l.pidfile)
    };
    if let Probe::Running { pid } = probe_at(&running)? {
        return Err(Error::AlreadyRunning {
            pid,
            pidfile: running,
        });
    }
    // The daemon works from `/`: every path it uses must be absolute.
    source.path = source.path.map(absolute).transpose()?;
    // Flags given relative to the caller's directory keep their meaning;
    // the paths in use are handed over resolved, so that the config file
    // keeps its own values and an edit of them can be told apart.
    for flag in [
        &mut source.overrides.pidfile,
        &mut source.overrides.log_file,
    ] {
        *flag = flag.take().map(absolute).transpose()?;
    }
    let log = open_log(&log_path)?;
    let forked = fork::detach(&log)
        .map_err(|e| Error::Internal(format!("cannot detach the daemon (fork): {e}")))?;
    match forked {
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
    let deadline = crate::duration::deadline(within);
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
                "{what}; see {} (a busy port being retried?), or give start a longer --wait",
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
