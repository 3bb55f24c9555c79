//! The errors `discoveryd` ends with, and their documented exit codes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigErrors;
use crate::net::{BindErrorKind, ProcessInfo};
use crate::supervision::BindFailure;

/// Exit code: clean stop.
pub const EXIT_OK: u8 = 0;
/// Exit code: unexpected internal error.
pub const EXIT_INTERNAL: u8 = 1;
/// Exit code: usage or config error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: port unavailable after retries.
pub const EXIT_PORT: u8 = 3;
/// Exit code: supervision gave up.
pub const EXIT_GAVE_UP: u8 = 4;

/// How to give discoveryd more file descriptors.
pub(crate) const FD_FIX: &str =
    "raise the open-file limit (`ulimit -n`, or LimitNOFILE= in the systemd unit)";

/// Why discoveryd stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The port stayed busy through every retry.
    #[error(
        "port {port}/udp on {ip} is in use by {holder} (tried {}); stop it, or set another port with --port or `port` in {fix}",
        if *tries == 1 { "once".to_owned() } else { format!("{tries} times") },
        port = addr.port(),
        ip = addr.ip(),
        holder = holder.as_ref().map_or_else(|| "another process".to_owned(), ToString::to_string),
    )]
    PortUnavailable {
        /// The busy address.
        addr: SocketAddr,
        /// Who holds it, when that can be seen.
        holder: Option<ProcessInfo>,
        /// Binds tried.
        tries: u32,
        /// Where the port is configured.
        fix: String,
    },
    /// A bind failed for good (permission, address not on this host).
    #[error("cannot listen on {addr}/udp: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong, and the fix.
        reason: String,
    },
    /// Restart-on-failure gave up.
    #[error("the {child} failed {restarts} times within {window}; gave up (see the log for each failure)", window = humantime::format_duration(*window))]
    GaveUp {
        /// The child given up on.
        child: &'static str,
        /// Restarts made within the window.
        restarts: u32,
        /// The window.
        window: Duration,
    },
    /// Another instance holds the pidfile.
    #[error(
        "discoveryd is already running with pid {pid} (pidfile {}); stop it with `discoveryd stop`, or use `run --replace`",
        pidfile.display()
    )]
    AlreadyRunning {
        /// The running instance's pid.
        pid: u32,
        /// Its pidfile.
        pidfile: PathBuf,
    },
    /// A bad command-line argument; the message names it and the fix.
    #[error("{0}")]
    Usage(String),
    /// A file the service needs (pidfile, log file, control socket) is
    /// unusable; the message names it and the fix.
    #[error("{0}")]
    Setup(String),
    /// The daemon started by `start` failed before it was ready; this is
    /// its own error and exit code.
    #[error("{message}")]
    Daemon {
        /// The daemon's exit code.
        code: u8,
        /// The daemon's error message.
        message: String,
    },
    /// `stop` or `reload` will not signal a process it cannot vouch for:
    /// not ours, another user's, or not holding the pidfile's lock.
    #[error("{0}")]
    Refused(String),
    /// This host's network interfaces cannot be listed (`getifaddrs`), so
    /// no client could be told on-link from off-link.
    #[error("cannot list this host's network interfaces ({0}); `security.on_link_only` needs them. Under systemd, RestrictAddressFamilies= must allow AF_NETLINK (see config/discoveryd.service); or set on_link_only = false")]
    Interfaces(std::io::Error),
    /// The daemon `start` launched did not get ready in time, and was stopped.
    #[error("{0}")]
    NotReady(String),
    /// Nothing answered (a benchmark whose every request was lost).
    #[error("{0}")]
    NoReply(String),
    /// The process is out of a resource the system limits (file
    /// descriptors); the message names the limit and how to raise it.
    #[error("{0}")]
    Resources(String),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A bind of `addr` that failed for good after `tries` binds; `fix`
    /// names where the port and addresses are configured.
    pub(crate) fn bind(failure: BindFailure, addr: SocketAddr, tries: u32, fix: &str) -> Self {
        match failure {
            BindFailure::Busy(holder) => Error::PortUnavailable {
                addr,
                holder,
                tries,
                fix: fix.to_owned(),
            },
            BindFailure::Other(BindErrorKind::PermissionDenied, reason) => Error::Bind {
                addr,
                reason: format!("{reason}; ports below 1024 need root or CAP_NET_BIND_SERVICE, or choose a port above 1023"),
            },
            BindFailure::Other(BindErrorKind::NotAvailable, reason) => Error::Bind {
                addr,
                reason: format!(
                    "{reason}; {} is not an address of this host, fix `bind` in {fix}",
                    addr.ip()
                ),
            },
            BindFailure::Other(BindErrorKind::OutOfFiles, reason) => {
                Error::Resources(format!("cannot open a socket for {addr}/udp: {reason}; {FD_FIX}"))
            }
            BindFailure::Other(_, reason) => Error::Bind { addr, reason },
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => EXIT_USAGE,
            Error::PortUnavailable { .. } | Error::Bind { .. } => EXIT_PORT,
            Error::GaveUp { .. } => EXIT_GAVE_UP,
            Error::AlreadyRunning { .. } => EXIT_PORT,
            Error::Setup(_) | Error::Usage(_) => EXIT_USAGE,
            Error::Daemon { code, .. } => *code,
            Error::Refused(_)
            | Error::Interfaces(_)
            | Error::NotReady(_)
            | Error::NoReply(_)
            | Error::Resources(_)
            | Error::Internal(_) => EXIT_INTERNAL,
        }
    }
}
