//! Multicast DNS and DNS-SD (RFC 6762, RFC 6763): the `[mdns]` table, and
//! the announcer that advertises the host's service to every zeroconf
//! tool (Avahi, Bonjour, python-zeroconf), built on the mdns-sd crate.
//!
//! When an Avahi daemon already runs on the host, discoveryd does not
//! become a second mDNS stack beside it: enabling `[mdns]` is refused,
//! naming Avahi's own way to publish (README, "mDNS").

mod announcer;
mod browser;
mod child;
mod config;
mod goodbye;
mod links;

use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::config::{Config, ConfigErrors, ConfigSource};

pub use browser::{
    browse_mdns, parse_service_type, Instance, MdnsDiscovery, MdnsError, MdnsOptions,
    DEFAULT_SERVICE_TYPE,
};
pub(crate) use child::{own_instance, MdnsChild};
pub use config::Mdns;
pub(crate) use config::{txt_problems, txt_size, MAX_INSTANCE, MAX_TXT_ENTRY};

/// Avahi's client socket: something answers on it while avahi-daemon runs.
const AVAHI_SOCKET: &str = "/run/avahi-daemon/socket";

/// Refuses a configuration that turns `[mdns]` on (it was off before, or
/// this is the start) on a host where Avahi already runs.
pub(crate) fn preflight(
    config: &Config,
    was_enabled: bool,
    source: &ConfigSource,
) -> Result<(), ConfigErrors> {
    match refusal() {
        Some(reason) if config.mdns.enabled && !was_enabled => {
            Err(ConfigErrors(vec![source.error("mdns.enabled", reason)]))
        }
        _ => Ok(()),
    }
}

/// Why `[mdns]` cannot be enabled here, if it cannot: an Avahi daemon
/// already answers mDNS on this host.
fn refusal() -> Option<String> {
    avahi_runs(Path::new(AVAHI_SOCKET)).then(|| {
        format!(
            "avahi-daemon already runs on this host ({AVAHI_SOCKET}), and two mDNS stacks on one host confuse browsers; publish through Avahi instead (an Avahi service file, see the README's mDNS section) and set mdns.enabled = false, or stop avahi-daemon"
        )
    })
}

fn avahi_runs(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avahi_is_seen_only_when_its_socket_answers() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("socket");
        assert!(!avahi_runs(&socket), "no socket");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(avahi_runs(&socket), "a listening socket");
        drop(listener);
        assert!(!avahi_runs(&socket), "a stale socket file");
    }
}
