//! The state machine's vocabulary: what it is told, and what it says to
//! do.

use std::net::SocketAddr;
use std::time::Duration;

use crate::messages::Plan;
use crate::supervision::{BindFailure, RestartOnFailure, RetryAfterCleanup};

/// Which incarnation of the listener something is about.
pub(crate) type Id = u64;

/// The role of an incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// It serves.
    Active,
    /// It binds a new configuration's sockets, to take over.
    Candidate,
}

/// The strategies of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Strategies {
    /// For failures of the active listener.
    pub(crate) restart: RestartOnFailure,
    /// For busy ports and addresses not there yet.
    pub(crate) retry: RetryAfterCleanup,
}

/// How an incarnation ended; it reports once its sockets are closed.
#[derive(Debug)]
pub(crate) enum Exit {
    /// It stopped as asked.
    Stopped,
    /// A bind failed.
    BindFailed {
        /// The address.
        addr: SocketAddr,
        /// Why, as retry-after-cleanup sees it.
        failure: BindFailure,
    },
    /// It failed while serving (socket error, responder panic).
    Failed {
        /// What happened.
        error: String,
    },
}

/// Something that happened. `R` is a reload's payload (the new
/// configuration and what serves it), carried through untouched.
#[derive(Debug)]
pub(crate) enum Event<R> {
    /// An incarnation bound its sockets and answers.
    Bound {
        /// Which.
        id: Id,
        /// What it bound (port 0 resolved).
        addrs: Vec<SocketAddr>,
    },
    /// An incarnation ended, its sockets closed.
    Exited {
        /// Which.
        id: Id,
        /// How.
        exit: Exit,
    },
    /// A new valid configuration, asking for `plan`.
    Reload {
        /// What it binds.
        plan: Plan,
        /// Its strategies.
        strategies: Strategies,
        /// The payload to apply.
        reload: R,
    },
    /// A retry of a failed bind falls due.
    Retry {
        /// For the active listener, or the candidate.
        role: Role,
        /// The incarnation it replaces; stale if that is no longer current.
        replaces: Id,
        /// Which retry this is (1-based).
        attempt: u32,
    },
    /// A restart after a failure falls due.
    Restart {
        /// The incarnation it replaces; stale if that is no longer current.
        replaces: Id,
    },
    /// Stop everything.
    Shutdown,
}

/// A bind that failed for good (retry-after-cleanup gave up on it).
#[derive(Debug)]
pub(crate) struct FailedBind {
    /// The address.
    pub(crate) addr: SocketAddr,
    /// Why.
    pub(crate) failure: BindFailure,
    /// Binds tried.
    pub(crate) tries: u32,
}

/// Why the service ends with an error.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Restart-on-failure gave up.
    GaveUp {
        /// Restarts made within the window.
        restarts: u32,
        /// The window.
        window: Duration,
    },
    /// The first bind never succeeded.
    Bind(FailedBind),
}

/// Why a reload that needed new sockets is rejected.
#[derive(Debug)]
pub(crate) enum Cause {
    /// Its bind failed for good.
    Bind(FailedBind),
    /// Its listener failed before it answered.
    Failed(String),
}

/// What to do.
#[derive(Debug)]
pub(crate) enum Command<R> {
    /// Start incarnation `id`: bind `plan`, beside the sockets of `beside`.
    Spawn {
        /// Its id.
        id: Id,
        /// What it binds.
        plan: Plan,
        /// Binds retried so far.
        attempt: u32,
        /// The incarnation whose sockets it binds beside.
        beside: Option<Id>,
    },
    /// Incarnation `id` leaves: another takes its traffic.
    Leave {
        /// Which.
        id: Id,
        /// The addresses of the one that stays.
        stays: Vec<SocketAddr>,
        /// Steer shared groups back to this many first sockets.
        steer_to: Option<usize>,
    },
    /// Stop incarnation `id` (shutting down).
    Stop {
        /// Which.
        id: Id,
    },
    /// Steer the groups of incarnation `id` over its own sockets again.
    SteerOwn {
        /// Which.
        id: Id,
    },
    /// Give back the memory of incarnations that are gone.
    ReleaseMemory,
    /// Feed `event` back after `after`.
    Schedule {
        /// The delay.
        after: Duration,
        /// The event (a retry or a restart).
        event: Event<R>,
    },
    /// The first bind succeeded: the service answers.
    Ready {
        /// The addresses bound.
        addrs: Vec<SocketAddr>,
    },
    /// The active listener was restarted and answers again.
    Restarted {
        /// The addresses bound.
        addrs: Vec<SocketAddr>,
    },
    /// A failure is being restarted.
    Restarting {
        /// What failed.
        error: String,
        /// Restarts within the window, this one included.
        restarts: u32,
        /// The delay before it.
        after: Duration,
    },
    /// A retry of a busy port is scheduled.
    Retrying {
        /// The address.
        addr: SocketAddr,
        /// Which retry.
        attempt: u32,
        /// The delay before it.
        after: Duration,
    },
    /// A reload took effect, with new sockets (`rebound`) or in place.
    Apply {
        /// The payload.
        reload: R,
        /// Whether new sockets now serve it.
        rebound: bool,
    },
    /// A reload that needed new sockets could not get them; the running
    /// configuration keeps serving.
    Reject {
        /// The config key to blame.
        key: &'static str,
        /// Why.
        cause: Cause,
    },
    /// The service ends.
    Finish(Result<(), Failure>),
}

/// The supervisor's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The first bind has not succeeded yet.
    Starting,
    /// It answers (a candidate may be binding beside it).
    Serving,
    /// It stops once every incarnation has closed.
    Stopping,
}
