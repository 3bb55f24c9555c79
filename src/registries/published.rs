//! What a registry publishes, in etcd's endpoints naming format (what
//! grpc-go's etcd resolver reads): for each service and address, the key
//! `<prefix><service name>/<address:port>` and the value
//! `{"Addr": "<address:port>", "Metadata": {...}}`.
//!
//! The host's own service is published under the registry's `name`, at
//! `service_port` (or the discovery port), with the discovery port and
//! message in its metadata; each service registered over HTTP under its
//! own name, with its id and TXT. An address is `advertise_ip`, or each
//! address of the host's interfaces (not loopback) when it is unset, for
//! the host's own service and those registered on it; a service registered
//! elsewhere has its own.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde_json::json;

use super::config::Etcd;
use crate::config::Config;
use crate::services::Services;

/// The keys to publish, with their values.
pub(crate) type Published = BTreeMap<String, String>;

/// What the published keys are derived from, as the service is now.
#[derive(Debug, Clone)]
pub(crate) struct Inputs {
    /// The configuration serving.
    pub(crate) config: Arc<Config>,
    /// The listener's addresses; empty until it answers, and nothing is
    /// published before.
    pub(crate) bound: Vec<SocketAddr>,
    /// The services registered over HTTP.
    pub(crate) services: Arc<Services>,
}

/// The keys `etcd` publishes for `inputs`, `host` being this host's
/// addresses (used when `advertise_ip` is unset).
pub(crate) fn published(etcd: &Etcd, inputs: &Inputs, host: &[IpAddr]) -> Published {
    let mut out = Published::new();
    let config = &inputs.config;
    let Some(first) = inputs.bound.first() else {
        return out;
    };
    let here: Vec<IpAddr> = match config.advertise_ip {
        Some(ip) => vec![ip],
        None => host.to_vec(),
    };
    let discovery_port = match config.port {
        0 => first.port(),
        port => port,
    };
    let mut add = |name: &str, ips: &[IpAddr], port: u16, metadata: BTreeMap<String, String>| {
        for &ip in ips {
            let addr = SocketAddr::new(ip, port).to_string();
            let value = json!({ "Addr": addr, "Metadata": metadata });
            out.insert(format!("{}{name}/{addr}", etcd.prefix), value.to_string());
        }
    };
    let own = BTreeMap::from([
        ("port".to_owned(), discovery_port.to_string()),
        ("message".to_owned(), config.message.clone()),
    ]);
    add(
        &etcd.name,
        &here,
        config.service_port.unwrap_or(discovery_port),
        own,
    );
    for service in &inputs.services.list {
        let mut metadata = service.txt.clone();
        metadata.insert("id".to_owned(), service.id.clone());
        let ips = service.address.map_or_else(|| here.clone(), |ip| vec![ip]);
        add(&service.name, &ips, service.port, metadata);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Service;

    fn inputs(config: Config, services: Vec<Service>) -> Inputs {
        Inputs {
            config: Arc::new(config),
            bound: vec!["0.0.0.0:4242".parse().unwrap()],
            services: Arc::new(Services {
                generation: 1,
                list: services,
            }),
        }
    }

    #[test]
    fn the_own_service_and_each_registration_at_each_address() {
        let etcd = Etcd::default();
        let host: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let config = Config {
            port: 0,
            service_port: Some(8080),
            ..Config::default()
        };
        let txt = BTreeMap::from([("role".to_owned(), "db".to_owned())]);
        let services = vec![
            Service::new("a", "api", None, 7000, txt),
            Service::new(
                "b",
                "api",
                Some("198.51.100.7".parse().unwrap()),
                7001,
                BTreeMap::new(),
            ),
        ];
        let keys = published(&etcd, &inputs(config, services), &host);
        let expected = [
            "/discoveryd/services/api/192.0.2.1:7000",
            "/discoveryd/services/api/198.51.100.7:7001",
            "/discoveryd/services/api/[2001:db8::1]:7000",
            "/discoveryd/services/discoveryd/192.0.2.1:8080",
            "/discoveryd/services/discoveryd/[2001:db8::1]:8080",
        ];
        assert_eq!(keys.keys().collect::<Vec<_>>(), expected);
        let own: serde_json::Value =
            serde_json::from_str(&keys["/discoveryd/services/discoveryd/192.0.2.1:8080"]).unwrap();
        assert_eq!(
            own,
            json!({"Addr": "192.0.2.1:8080", "Metadata": {"port": "4242", "message": "DISCOVER_SERVER"}})
        );
        let api: serde_json::Value =
            serde_json::from_str(&keys["/discoveryd/services/api/192.0.2.1:7000"]).unwrap();
        assert_eq!(
            api,
            json!({"Addr": "192.0.2.1:7000", "Metadata": {"id": "a", "role": "db"}})
        );
    }

    #[test]
    fn advertise_ip_replaces_the_host_addresses_and_nothing_before_ready() {
        let etcd = Etcd {
            prefix: "svc/".into(),
            name: "lab".into(),
            ..Etcd::default()
        };
        let config = Config {
            advertise_ip: Some("203.0.113.5".parse().unwrap()),
            ..Config::default()
        };
        let host: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap()];
        let mut inputs = inputs(config, Vec::new());
        let keys = published(&etcd, &inputs, &host);
        assert_eq!(
            keys.keys().collect::<Vec<_>>(),
            ["svc/lab/203.0.113.5:9999"]
        );
        inputs.bound.clear();
        assert!(published(&etcd, &inputs, &host).is_empty());
    }
}
