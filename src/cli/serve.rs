//! `run`, and the daemon `start` leaves behind: the process around the
//! library's [`Service`]. Everything process-wide is here: the signals
//! (caught before the pidfile exists), the pidfile and control socket,
//! the console, systemd's notifications and watchdog, and the log file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use discoveryd_api::Registry;
use tracing::{error, info, warn};

use super::args::RunArgs;
use super::signals::{on_each, Signals};
use super::source;
use crate::config::{Config, ConfigSource, Overrides};
use crate::console;
use crate::daemon::{redirect_output, Instance, Notifier, MIN_WATCHDOG_PING};
use crate::duration::HumanDuration;
use crate::error::Error;
use crate::handle::{Handle, Observer};
use crate::logging::LogControl;
use crate::service::Service;
use crate::status::LastReload;

/// How a run goes, beyond its configuration.
pub(super) struct RunOptions {
    /// Stop the instance holding the pidfile first, instead of refusing.
    pub(super) replace: bool,
    /// Who to tell about readiness, reloads and stopping (systemd, and the
    /// readiness pipe `start` waits on).
    pub(super) notifier: Arc<Notifier>,
    /// The log file to reopen on SIGUSR2 (daemons only).
    pub(super) log_file: Option<PathBuf>,
    /// The pidfile to hold, resolved before a daemon left its working
    /// directory; `None`: the configuration's.
    pub(super) pidfile: Option<PathBuf>,
}

impl RunOptions {
    /// A run in the foreground, told by `NOTIFY_SOCKET` where systemd is.
    pub(super) fn foreground(replace: bool) -> Self {
        Self {
            replace,
            notifier: Arc::new(Notifier::from_env()),
            log_file: None,
            pidfile: None,
        }
    }
}

/// `run`: the service in the foreground.
pub(super) fn run(args: RunArgs, registry: Registry) -> Result<(), Error> {
    let overrides = Overrides {
        port: args.port,
        message: args.message,
        duration: args.duration,
        pidfile: args.instance.pidfile,
        ..Overrides::default()
    }
    .with_log_level(args.log_level);
    let source = source(args.instance.config, overrides);
    let config = source.load()?;
    let log = LogControl::install(&config)?;
    for name in ConfigSource::ignored_env() {
        warn!(variable = %name, "environment variable names no config key; ignored");
    }
    serve(
        source,
        config,
        registry,
        log,
        RunOptions::foreground(args.replace),
    )
}

/// Runs the service until SIGTERM, Ctrl+C or `duration`; holds the
/// pidfile and serves the control socket for its whole life.
pub(super) fn serve(
    source: ConfigSource,
    config: Config,
    registry: Registry,
    log: LogControl,
    options: RunOptions,
) -> Result<(), Error> {
    crate::limits::ensure_open_files()?;
    let service = Service::new(source.clone(), config.clone(), registry)?;
    let system = actix_rt::System::new();
    let outcome = system.block_on(async move {
        // Before the pidfile exists: once anyone can find this instance,
        // no signal may kill it.
        let signals = Signals::install()
            .map_err(|e| Error::Internal(format!("cannot handle signals: {e}")))?;
        let pidfile = options.pidfile.unwrap_or_else(|| config.pidfile());
        let mut instance = Instance::claim(&pidfile, options.replace)?;
        console::banner(&config, &source, &service.describe_responders());
        let (handle, requests) = Handle::new();
        if let Some(listener) = instance.control.take_listener() {
            serve_control(listener, handle.clone());
        }
        let Signals {
            mut terminate,
            hangup,
            user1,
            user2,
            mut interrupt,
        } = signals;
        let reload = handle.clone();
        on_each(hangup, move || reload.reload());
        let snapshot = handle.clone();
        on_each(user1, move || write_snapshot(snapshot.clone()));
        let log_file = options.log_file.clone();
        on_each(user2, move || reopen_log(log_file.as_ref()));
        watch_dog(&options.notifier, handle.clone());
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => info!("SIGTERM: stopping"),
                _ = interrupt.recv() => info!("Ctrl+C: stopping"),
            }
        };
        let observer = Arc::new(Console {
            notifier: options.notifier,
        });
        let outcome = service
            .log(log)
            .observer(observer)
            .requests(requests)
            .pidfile(instance.pidfile.path().to_owned())
            .run(shutdown)
            .await;
        drop(instance);
        outcome
    });
    if outcome.is_ok() {
        console::stopped();
    }
    outcome
}

/// What the person and systemd hear about the lifecycle.
struct Console {
    notifier: Arc<Notifier>,
}

impl Observer for Console {
    fn ready(&self, addrs: &[SocketAddr]) {
        self.notifier.ready(addrs);
        console::listening(addrs);
    }

    fn reloading(&self) {
        self.notifier.reloading();
    }

    fn reloaded(&self, last: &LastReload) {
        self.notifier
            .reloaded(&format!("reload {}: {}", last.result, last.detail));
    }

    fn stopping(&self) {
        self.notifier.stopping();
    }

    fn timer_set(&self, after: HumanDuration) {
        console::timer_set(after);
    }

    fn duration_expired(&self, after: HumanDuration) {
        console::duration_expired(after);
    }
}

/// SIGUSR1: writes a status snapshot to the log, whatever the log level
/// (it was asked for).
fn write_snapshot(handle: Handle) {
    actix_rt::spawn(async move {
        if let Some(status) = handle.status().await {
            let status = serde_json::to_string(&status).unwrap_or_default();
            let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
            console::error_line(format_args!("{now} status snapshot (SIGUSR1): {status}"));
        }
    });
}

/// SIGUSR2: reopens the log file (after logrotate moved it).
fn reopen_log(log_file: Option<&PathBuf>) {
    match log_file {
        Some(path) => match redirect_output(path) {
            Ok(()) => info!(path = %path.display(), "log file reopened"),
            Err(e) => {
                error!(path = %path.display(), error = %e, "cannot reopen the log file; still writing to the old one")
            }
        },
        None => info!("SIGUSR2: no log file to reopen (running in the foreground)"),
    }
}

/// Pings systemd's watchdog while the service answers its handle: a
/// stuck supervisor stops the pings, and systemd restarts the service.
fn watch_dog(notifier: &Arc<Notifier>, handle: Handle) {
    let Some(every) = notifier.watchdog_interval() else {
        return;
    };
    if notifier.watchdog_clamped() {
        warn!(
            every = ?every,
            "WATCHDOG_USEC is too short to follow; pinging the watchdog at most every {:?}",
            MIN_WATCHDOG_PING
        );
    }
    let notifier = Arc::clone(notifier);
    actix_rt::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match handle.status().await {
                Some(_) => notifier.watchdog(),
                None => break,
            }
        }
    });
}

/// Answers each connection to the control socket with the status document.
fn serve_control(listener: std::os::unix::net::UnixListener, handle: Handle) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            return warn!(error = %e, "cannot serve the control socket; `status` will not answer")
        }
    };
    actix_rt::spawn(async move {
        let mut warned = false;
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                // Out of descriptors (EMFILE) or the like: the socket
                // still works once some are free again.
                Err(e) => {
                    if !std::mem::replace(&mut warned, true) {
                        warn!(error = %e, "cannot accept on the control socket; retrying");
                    }
                    actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            warned = false;
            let handle = handle.clone();
            actix_rt::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                if let Some(status) = handle.status().await {
                    let json = serde_json::to_vec(&status).unwrap_or_default();
                    let _ = stream.write_all(&json).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
}
