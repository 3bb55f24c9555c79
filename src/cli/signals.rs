//! The process's signals, caught before the pidfile and control socket
//! exist: from the moment anyone can find the instance (and `reload` it,
//! or rotate its log), no signal can kill it. A signal that arrives before
//! the service runs waits in its stream.

use std::io;

use actix_rt::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

/// The signals discoveryd handles.
#[derive(Debug)]
pub(crate) struct Signals {
    /// SIGTERM: stop.
    pub(crate) terminate: Signal,
    /// SIGHUP: reload the config file.
    pub(crate) hangup: Signal,
    /// SIGUSR1: write a status snapshot to the log.
    pub(crate) user1: Signal,
    /// SIGUSR2: reopen the log file.
    pub(crate) user2: Signal,
    /// SIGINT (Ctrl+C), through `ctrlc`.
    pub(crate) interrupt: mpsc::UnboundedReceiver<()>,
}

impl Signals {
    /// Catches the signals; call it inside the actix runtime.
    pub(crate) fn install() -> io::Result<Self> {
        let (tx, interrupt) = mpsc::unbounded_channel();
        // `set_handler` also replaces an inherited "ignore" (background
        // jobs of non-interactive shells): Ctrl+C must always stop us.
        ctrlc::set_handler(move || {
            let _ = tx.send(());
        })
        .map_err(io::Error::other)?;
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            user1: signal(SignalKind::user_defined1())?,
            user2: signal(SignalKind::user_defined2())?,
            interrupt,
        })
    }
}

/// Runs `each` every time `signal` arrives, on the current runtime.
pub(crate) fn on_each(mut signal: Signal, mut each: impl FnMut() + 'static) {
    actix_rt::spawn(async move {
        while signal.recv().await.is_some() {
            each();
        }
    });
}
