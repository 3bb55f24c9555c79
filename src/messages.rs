//! The typed events between actors, named for what happened. The
//! supervisor logs each one as a structured tracing event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Message;

use crate::config::{Config, ConfigDiff, ConfigErrors};
use crate::duration::HumanDuration;
use crate::net::{ProcessInfo, Sockets};
use crate::receiver::ListenerError;
use crate::responders::Snapshot;
use crate::status::ReloadTrigger;

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
    pub sockets: Sockets,
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

/// What an incarnation binds: each address, with `workers` sockets (and
/// receive loops) on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The addresses (port 0: any free port, kept across rebinds).
    pub(crate) addrs: Vec<SocketAddr>,
    /// Sockets per address.
    pub(crate) workers: usize,
    /// The kernel receive buffer asked for each socket.
    pub(crate) recv_buffer: usize,
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
#[derive(Debug, Message)]
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
    pub(crate) trigger: ReloadTrigger,
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

/// A child of the supervisor (other than the listener) ended; with an
/// error, its restart strategy decides what follows.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ChildExited {
    /// The child's name.
    pub child: &'static str,
    /// What went wrong, if it failed.
    pub error: Option<String>,
}

/// What the supervisor tells every child; each acts on what concerns it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) enum Notice {
    /// The service answers (sent once), on these addresses.
    Ready {
        /// The listener's bound addresses.
        addrs: Vec<SocketAddr>,
    },
    /// This configuration serves now.
    Applied(Arc<Config>),
    /// Read the configuration again.
    Reload(ReloadTrigger),
    /// The registered services changed; these are registered now.
    Services(Arc<crate::services::Services>),
}

/// Why the service stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShutdownReason {
    /// The shutdown future given to the service resolved (Ctrl+C, SIGTERM).
    Requested,
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
