//! The errors `discoveryd` ends with, and their documented exit codes.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::ConfigErrors;
use crate::net::ProcessInfo;

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

/// Why discoveryd stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The port stayed busy through every retry.
    #[error(
        "port {port}/udp on {ip} is in use by {holder} (tried {tries} times); stop it, or set another port with --port or `port` in {fix}",
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
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => EXIT_USAGE,
            Error::PortUnavailable { .. } | Error::Bind { .. } => EXIT_PORT,
            Error::GaveUp { .. } => EXIT_GAVE_UP,
            Error::Internal(_) => EXIT_INTERNAL,
        }
    }
}
