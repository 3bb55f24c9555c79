//! discoveryd: a LAN service-discovery responder, wire-compatible with
//! django-udp-discovery 1.0.0, supervised by actix actors.
//!
//! - [`Service`] runs a discovery service until a shutdown future
//!   resolves; everything process-wide (signals, pidfile, console,
//!   systemd) is the caller's.
//! - [`cli::main_with`] is the whole `discoveryd` command line, with the
//!   extra responder types a plugin registers: a custom build is a
//!   `main.rs` of a few lines.
//! - [`discover`] and [`bench()`] are the client and the load generator;
//!   [`browse_mdns`] is the mDNS/DNS-SD client.
//!
//! Responder plugins depend on the `discoveryd-api` crate only.

#[cfg(all(test, not(feature = "fault")))]
compile_error!("the tests need the test-only `fault` responder: run `cargo test --workspace --all-features` (the README's test command)");

mod actors;
mod bench;
pub mod cli;
mod client;
mod config;
mod console;
mod daemon;
mod duration;
mod error;
mod handle;
mod http;
mod limits;
mod logging;
mod mdns;
mod memory;
mod messages;
mod net;
mod paths;
mod policy;
mod protocol;
mod receiver;
mod registries;
mod responders;
mod service;
mod services;
mod stats;
mod status;
mod supervision;

pub use bench::{bench, BenchOptions, BenchReport, MAX_DURATION};
pub use client::{
    discover, discover_blocking, DiscoverOptions, Discovery, FoundService, Malformed, Server,
};
pub(crate) use client::{is_broadcast, resolve_target};
pub use config::{
    Config, ConfigError, ConfigErrors, ConfigOrigin, ConfigSource, LogFormat, LogLevel, Overrides,
    ResponderConfig,
};
pub use duration::HumanDuration;
pub use error::{Error, EXIT_GAVE_UP, EXIT_INTERNAL, EXIT_OK, EXIT_PORT, EXIT_USAGE};
pub use handle::{Handle, Observer, Requests, Silent};
pub use http::Http;
pub use logging::LogControl;
pub use mdns::{
    browse_mdns, parse_service_type, Instance, Mdns, MdnsDiscovery, MdnsError, MdnsOptions,
    DEFAULT_SERVICE_TYPE,
};
pub use net::ProcessInfo;
pub use policy::{RateLimit, Security};
pub use registries::{
    browse_etcd, Etcd, EtcdDiscovery, EtcdOptions, PublishedService, Registry, RegistryStatus,
};
pub use responders::registry;
pub use service::Service;
pub use status::{Counts, LastReload, MdnsStatus, ReloadResult, Reloads, Status};
pub use supervision::{RestartOnFailure, RetryAfterCleanup, Supervision};

/// The version `--version` prints: the package's, with the git commit it
/// was built from when built from a checkout (`0.1.0 (1a2b3c4d5e6f)`).
pub const VERSION: &str = env!("VERSION_WITH_COMMIT");

/// Locks `mutex`, whatever a thread that panicked while holding it left:
/// what the mutexes here guard (a status, a handle) stays usable.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Validates the configuration from `source`, responder options included
/// (with the types of `registry`), and returns the effective configuration
/// as TOML.
pub(crate) fn check(
    source: &ConfigSource,
    registry: &discoveryd_api::Registry,
) -> Result<String, Error> {
    let config = source.load()?;
    responders::Snapshot::first(&config, registry, source)?;
    let mut shown = config;
    // What `check` prints ends up in terminals and tickets.
    if shown.http.token.is_some() {
        shown.http.token = Some("<redacted>".into());
    }
    for registry in &mut shown.registries {
        let registries::Registry::Etcd(etcd) = registry;
        if etcd.password.is_some() {
            etcd.password = Some("<redacted>".into());
        }
    }
    Ok(shown.to_toml())
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
            Snapshot::first(&config, &crate::registry(), &ConfigSource::default()).expect("valid")
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
        let request = Request::new(payload, peer, local, local.ip());
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
