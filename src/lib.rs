//! discoveryd: a LAN service-discovery responder, wire-compatible with
//! django-udp-discovery 1.0.0, supervised by actix actors.
//!
//! The binary is thin: it parses the command line, loads the
//! [`ConfigSource`], installs logging and calls [`run`] or [`check`].

mod actors;
mod bench;
mod client;
mod config;
mod console;
pub mod daemon;
mod duration;
mod error;
mod logging;
mod memory;
mod messages;
mod net;
mod policy;
mod protocol;
mod receiver;
mod responders;
mod stats;
mod status;
mod supervision;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::oneshot;

pub use bench::{bench, BenchOptions, BenchReport, MAX_DURATION};
pub use client::{
    broadcast_addresses, discover, discover_blocking, is_broadcast, resolve_target,
    DiscoverOptions, Discovery, Malformed, Server,
};
pub use config::{
    Config, ConfigError, ConfigErrors, ConfigOrigin, ConfigSource, LogLevel, Overrides,
    ResponderConfig,
};
pub use duration::HumanDuration;
pub use error::{Error, EXIT_GAVE_UP, EXIT_INTERNAL, EXIT_OK, EXIT_PORT, EXIT_USAGE};
pub use logging::LogControl;
pub use messages::ShutdownReason;
pub use net::ProcessInfo;
pub use policy::{RateLimit, Refusal, Security};
pub use protocol::{parse_reply, write_reply, Announcement, BadReply, CLASSIC, MAX_REPLY};
pub use responders::{registry, Snapshot};
pub use status::{Counts, LastReload, Reloads, Status};
pub use supervision::{RestartOnFailure, RetryAfterCleanup, Supervision};

use std::path::PathBuf;

use actors::{Launch, SupervisorActor};

/// Validates the configuration from `source`, responder options included,
/// and returns the effective configuration as TOML.
pub fn check(source: &ConfigSource) -> Result<String, Error> {
    let config = source.load()?;
    Snapshot::build(&config, &registry(), source, None)?;
    Ok(config.to_toml())
}

/// Checks, before `restart` stops the running instance, that every address
/// the new `config` asks for can be bound. Those the running instance
/// holds (`held`, or covered by a wildcard it holds) are its to hand over;
/// any other must be free now. A failure names the port and its holder.
pub fn check_ports(
    source: &ConfigSource,
    config: &Config,
    held: &[std::net::SocketAddr],
) -> Result<(), Error> {
    for &ip in &config.bind {
        let addr = std::net::SocketAddr::new(ip, config.port);
        let covered = held.iter().any(|h| {
            h.port() == addr.port()
                && h.is_ipv4() == addr.is_ipv4()
                && (h.ip() == ip || h.ip().is_unspecified() || ip.is_unspecified())
        });
        if config.port == 0 || covered {
            continue;
        }
        if let Err(e) = net::bind_udp(addr) {
            let fix = supervision::BindFailure::of(&e);
            return Err(fix.into_error(addr, 1, source));
        }
    }
    Ok(())
}

/// How [`run`] runs.
#[derive(Debug)]
pub struct RunOptions {
    /// Stop the instance holding the pidfile first, instead of refusing.
    pub replace: bool,
    /// Who to tell about readiness, reloads and stopping.
    pub notifier: Arc<daemon::Notifier>,
    /// The log file to reopen on SIGUSR2 (daemons only).
    pub log_file: Option<PathBuf>,
    /// The pidfile to hold, resolved before the daemon left its working
    /// directory; `None`: the configuration's.
    pub pidfile: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            replace: false,
            notifier: Arc::new(daemon::Notifier::from_env()),
            log_file: None,
            pidfile: None,
        }
    }
}

/// Runs the discovery service until it is stopped (Ctrl+C, SIGTERM,
/// `duration`) or fails for good. It holds the pidfile and serves the
/// control socket for its whole life.
pub fn run(
    source: ConfigSource,
    config: Config,
    log: LogControl,
    options: RunOptions,
) -> Result<(), Error> {
    let registry = Arc::new(registry());
    let snapshot = Snapshot::build(&config, &registry, &source, None)?;
    let subnets = match net::local_subnets() {
        Ok(subnets) => subnets,
        Err(e) if config.security.on_link_only => return Err(Error::Interfaces(e)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the network interfaces (on_link_only is off)");
            Vec::new()
        }
    };
    let system = actix_rt::System::new();
    let outcome = system.block_on(async move {
        // Before the pidfile exists: once anyone can find this instance,
        // no signal may kill it.
        let signals = actors::Signals::install()
            .map_err(|e| Error::Internal(format!("cannot handle signals: {e}")))?;
        let pidfile = options.pidfile.unwrap_or_else(|| config.pidfile());
        let mut instance = daemon::Instance::claim(&pidfile, options.replace)?;
        console::banner(&config, &source, &snapshot);
        let shared = receiver::Shared {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            counters: Arc::default(),
            subnets: Arc::new(ArcSwap::from_pointee(subnets)),
        };
        let (done, finished) = oneshot::channel();
        let launch = Launch {
            source,
            registry,
            config,
            shared,
            log,
            notifier: options.notifier,
            pidfile: instance.pidfile.path().to_owned(),
            control: instance.control.take_listener(),
            log_file: options.log_file,
            done,
            signals,
        };
        use actix::Actor as _;
        SupervisorActor::new(launch).start();
        let outcome = finished.await.unwrap_or_else(|_| {
            Err(Error::Internal(
                "the supervisor stopped without an outcome".into(),
            ))
        });
        drop(instance);
        outcome
    });
    if outcome.is_ok() {
        console::stopped();
    }
    outcome
}

/// Entry points for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::net::SocketAddr;
    use std::sync::OnceLock;

    use discoveryd_api::Request;

    use crate::config::{Config, ConfigSource, ResponderConfig};
    use crate::responders::{Outcome, Snapshot};

    /// A datagram through the defences and a classic + json chain. The
    /// first 6 bytes choose the sender (address and port).
    pub fn datagram(data: &[u8]) {
        static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
        let snapshot = SNAPSHOT.get_or_init(|| {
            let config = Config {
                responders: vec![
                    ResponderConfig::classic(),
                    ResponderConfig {
                        kind: "json".into(),
                        options: toml::Table::new(),
                    },
                ],
                ..Config::default()
            };
            Snapshot::build(&config, &crate::registry(), &ConfigSource::default(), None)
                .expect("valid")
        });
        let (head, payload) = data.split_at(data.len().min(6));
        let mut h = [0u8; 6];
        h[..head.len()].copy_from_slice(head);
        let peer = SocketAddr::from(([h[0], h[1], h[2], h[3]], u16::from_be_bytes([h[4], h[5]])));
        let on_link = ["192.168.0.0/16".parse().expect("literal")];
        let Ok(_exempt) = snapshot.policy.admit(peer, 9999, payload, &on_link) else {
            return;
        };
        let local: SocketAddr = ([192, 168, 1, 1], 9999).into();
        let request = Request {
            payload,
            peer,
            local,
            advertised_ip: local.ip(),
        };
        let mut reply = Vec::new();
        if snapshot.respond(&request, &mut reply) == Outcome::Replied {
            let classic = payload == b"DISCOVER_SERVER";
            let json = payload.starts_with(b"DISCOVER_JSON")
                && payload[13..].iter().all(|&b| b == b' ' || b == 0);
            assert!(classic || json, "answered {payload:?}");
            if classic {
                assert_eq!(reply, b"SERVER_IP:192.168.1.1");
            }
        }
    }

    /// Config text through parsing and validation: never a panic, and every
    /// error names a key or a place in the file.
    pub fn config(text: &str) {
        if let Err(errors) = ConfigSource::load_text(text) {
            for e in errors.0 {
                let line = e.to_string();
                assert!(
                    line.starts_with("config.toml") && !line.contains('\n'),
                    "{line}"
                );
            }
        }
    }
}
