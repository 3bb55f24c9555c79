//! The typed events between actors, named for what happened. The
//! supervisor logs each one as a structured tracing event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Message;

use crate::config::{Config, ConfigDiff, ConfigErrors};
use crate::duration::HumanDuration;
use crate::net::{BindError, ProcessInfo};
use crate::responders::Snapshot;

/// Which incarnation of the listener a message is about; restarts and
/// make-before-break rebinds each start a new one.
pub(crate) type Incarnation = u64;

/// A listener bound its sockets and is answering.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ListenerStarted {
    /// The incarnation that started.
    pub incarnation: Incarnation,
    /// What it bound (port 0 resolved).
    pub sockets: crate::actors::Sockets,
}

/// A listener could not bind because the port is busy. Sent once the
/// incarnation has closed whatever it had bound.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct PortConflict {
    /// The incarnation that hit the conflict.
    pub incarnation: Incarnation,
    /// The busy address.
    pub addr: SocketAddr,
    /// Who holds it, when that can be seen.
    pub holder: Option<ProcessInfo>,
    /// Which attempt this was (0 for the first bind).
    pub attempt: u32,
}

/// Why a listener failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ListenerError {
    /// A bind failed for another reason than a busy port.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A socket failed in a way the receive loop cannot recover from.
    #[error("socket {addr} failed: {error}")]
    Socket {
        /// The socket's local address.
        addr: SocketAddr,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A responder panicked while answering.
    #[error("responder {responder} panicked: {message}")]
    Panic {
        /// The responder's name.
        responder: String,
        /// The panic message.
        message: String,
    },
}

/// A listener failed. Sent once the incarnation has closed its sockets.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ListenerFailed {
    /// The incarnation that failed.
    pub incarnation: Incarnation,
    /// What went wrong.
    pub error: ListenerError,
}

/// A listener stopped as asked, and closed its sockets.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ListenerStopped {
    /// The incarnation that stopped.
    pub incarnation: Incarnation,
}

/// The config file changed into a valid configuration.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ConfigChanged {
    /// The keys that changed.
    pub diff: ConfigDiff,
    /// The new configuration.
    pub config: Arc<Config>,
    /// The responder chain built for it.
    pub snapshot: Arc<Snapshot>,
}

/// A new configuration could not be used; the old one keeps serving.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ConfigRejected {
    /// What is wrong with it.
    pub errors: ConfigErrors,
}

/// A reload found the configuration unchanged.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ConfigUnchanged {
    /// What asked for the reload.
    pub(crate) trigger: &'static str,
}

/// The supervisor applied a configuration (sent back to the config actor).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ConfigApplied {
    /// The configuration now serving.
    pub config: Arc<Config>,
}

/// The `duration` elapsed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct TimerExpired {
    /// The duration that elapsed.
    pub after: HumanDuration,
}

/// Restart-on-failure gave up on a child.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct GaveUp {
    /// The child given up on.
    pub child: &'static str,
    /// Restarts made within the window.
    pub restarts: u32,
    /// The window.
    pub window: Duration,
}

/// Why the service stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Ctrl+C (SIGINT).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// The `duration` elapsed.
    DurationElapsed,
}

/// Stop the service cleanly.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown {
    /// Why.
    pub reason: ShutdownReason,
}
