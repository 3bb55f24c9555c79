//! The mDNS/DNS-SD client behind `discoveryd discover --mdns`: browses one
//! service type (RFC 6762/6763) with the mdns-sd crate, collects the
//! resolved instances until the timeout (or the first one), and shuts the
//! mdns-sd daemon down before returning.
//!
//! Its result prints like the classic discovery's ([`crate::Discovery`]):
//! the same `servers` rows (`ip`, `port`, `rtt_ms`), with the instance,
//! host, addresses and TXT record that DNS-SD adds.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent};
use serde::Serialize;

use super::config::{check_service_type, service_type_stem};
use super::links::{probe_port, MDNS_PORT};
use crate::client::escape_controls;

/// The service type browsed when `--mdns` names none.
pub const DEFAULT_SERVICE_TYPE: &str = "_discoveryd._udp";

/// The mDNS port and group (RFC 6762).
const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// The most instances one browse keeps (a hostile link fills no more).
pub(crate) const MAX_INSTANCES: usize = 4096;

/// What to browse for, and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsOptions {
    /// The service type with its domain, as [`parse_service_type`] gives it:
    /// `_http._tcp.local.`.
    pub service_type: String,
    /// How long to browse.
    pub timeout: Duration,
    /// Return at the first resolved instance.
    pub first: bool,
}

/// A resolved DNS-SD service instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Its first address (IPv4 first), as the classic table's `ip`.
    pub ip: IpAddr,
    /// The port from its SRV record.
    pub port: u16,
    /// Time from the start of the browse to its resolution.
    #[serde(rename = "rtt_ms", serialize_with = "crate::client::millis")]
    pub rtt: Duration,
    /// The instance name, without the type and domain: `Living Room`.
    pub instance: String,
    /// The full service name: `Living Room._http._tcp.local.`.
    pub fullname: String,
    /// The target host of its SRV record: `host.local.`.
    pub host: String,
    /// Every address resolved for the host, sorted (IPv4 first).
    pub addresses: Vec<IpAddr>,
    /// The TXT record: key to value, or to null for a key without `=`.
    pub txt: BTreeMap<String, Option<String>>,
}

/// The outcome of one browse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MdnsDiscovery {
    /// The service type browsed, with its domain.
    pub service_type: String,
    /// The instances resolved, in order of resolution, one per full name.
    pub servers: Vec<Instance>,
    /// Always empty: mDNS answers that cannot be parsed never reach here.
    pub malformed: Vec<()>,
    /// Instances not kept, past 4,096.
    pub dropped: u64,
    /// Where the queries went: the mDNS group.
    pub sent_to: Vec<SocketAddr>,
    /// Always empty (send failures are mdns-sd's to retry).
    pub send_errors: Vec<(SocketAddr, String)>,
    /// How long the browse took.
    #[serde(rename = "elapsed_ms", serialize_with = "crate::client::millis")]
    pub elapsed: Duration,
}

/// Why a browse could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdnsError {
    /// UDP port 5353 cannot be bound, even shared (SO_REUSEPORT).
    #[error("cannot listen for mDNS on 0.0.0.0:5353/udp: {0}")]
    Bind(io::Error),
    /// The mdns-sd daemon failed.
    #[error("the mDNS browser failed: {0}")]
    Daemon(String),
}

/// Checks and completes a DNS-SD service type: `_http._tcp`,
/// `_http._tcp.local` or `_http._tcp.local.` all give `_http._tcp.local.`.
/// The service name follows RFC 6335 (1 to 15 letters, digits and inner
/// single hyphens, with at least one letter); the protocol is `_tcp` or
/// `_udp`; the domain, if given, is `local`.
pub fn parse_service_type(text: &str) -> Result<String, String> {
    check_service_type(text).map_err(|why| format!("--mdns {text:?}: {why}"))?;
    Ok(format!("{}.local.", service_type_stem(text)))
}

/// Runs one browse: queries for `options.service_type` on every interface
/// mdns-sd uses, and collects resolved instances until the timeout, or the
/// first with `options.first`. The daemon is shut down before returning.
pub fn browse_mdns(options: &MdnsOptions) -> Result<MdnsDiscovery, MdnsError> {
    // mdns-sd binds 0.0.0.0:5353 in its own thread and only logs a failure
    // (the browse would just find nothing): try the same shared bind here
    // first, so that failure is reported.
    probe_port().map_err(MdnsError::Bind)?;
    let start = Instant::now();
    let daemon = ServiceDaemon::new().map_err(|e| MdnsError::Daemon(e.to_string()))?;
    let result = collect(&daemon, options, start);
    shut_down(&daemon);
    let mut discovery = result?;
    discovery.elapsed = start.elapsed();
    Ok(discovery)
}

fn collect(
    daemon: &ServiceDaemon,
    options: &MdnsOptions,
    start: Instant,
) -> Result<MdnsDiscovery, MdnsError> {
    let events = daemon
        .browse(&options.service_type)
        .map_err(|e| MdnsError::Daemon(format!("cannot browse {}: {e}", options.service_type)))?;
    let mut discovery = MdnsDiscovery {
        service_type: options.service_type.clone(),
        sent_to: vec![SocketAddr::from((MDNS_GROUP, MDNS_PORT))],
        ..MdnsDiscovery::default()
    };
    let deadline = start + options.timeout.min(crate::client::MAX_TIMEOUT);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(resolved)) => {
                let addresses: Vec<IpAddr> =
                    resolved.addresses.iter().map(|a| a.to_ip_addr()).collect();
                let txt = resolved
                    .txt_properties
                    .iter()
                    .map(|p| {
                        let value = p.val().map(|v| String::from_utf8_lossy(v).into_owned());
                        (p.key().to_owned(), value)
                    })
                    .collect();
                let found = instance(
                    &options.service_type,
                    &resolved.fullname,
                    &resolved.host,
                    resolved.port,
                    addresses,
                    txt,
                    start.elapsed(),
                );
                if let Some(found) = found {
                    if discovery.record(found) && options.first {
                        break;
                    }
                }
            }
            Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                discovery.servers.retain(|s| s.fullname != fullname);
            }
            Ok(_) => {}
            Err(mdns_sd::RecvTimeoutError::Timeout) => break,
            Err(mdns_sd::RecvTimeoutError::Disconnected) => {
                return Err(MdnsError::Daemon(
                    "the mdns-sd daemon stopped during the browse".into(),
                ))
            }
        }
    }
    Ok(discovery)
}

/// Stops the mdns-sd daemon and waits (up to 1 s) for its thread to say so.
fn shut_down(daemon: &ServiceDaemon) {
    if let Ok(status) = daemon.shutdown() {
        let _ = status.recv_timeout(Duration::from_secs(1));
    }
}

/// An instance from a resolution; none without an address.
fn instance(
    service_type: &str,
    fullname: &str,
    host: &str,
    port: u16,
    mut addresses: Vec<IpAddr>,
    txt: BTreeMap<String, Option<String>>,
    rtt: Duration,
) -> Option<Instance> {
    addresses.sort_by_key(|a| (a.is_ipv6(), *a));
    addresses.dedup();
    let ip = *addresses.first()?;
    let instance = fullname
        .strip_suffix(service_type)
        .and_then(|n| n.strip_suffix('.'))
        .unwrap_or(fullname)
        .to_owned();
    Some(Instance {
        ip,
        port,
        rtt,
        instance,
        fullname: fullname.to_owned(),
        host: host.to_owned(),
        addresses,
        txt,
    })
}

impl MdnsDiscovery {
    /// Keeps `found` unless its full name is known (then its addresses are
    /// merged in) or the table is full; true when it is new.
    fn record(&mut self, found: Instance) -> bool {
        if let Some(known) = self
            .servers
            .iter_mut()
            .find(|s| s.fullname == found.fullname)
        {
            for a in found.addresses {
                if !known.addresses.contains(&a) {
                    known.addresses.push(a);
                }
            }
            known.addresses.sort_by_key(|a| (a.is_ipv6(), *a));
            return false;
        }
        if self.servers.len() >= MAX_INSTANCES {
            self.dropped += 1;
            return false;
        }
        self.servers.push(found);
        true
    }

    /// A table of the instances, one line each, for people: the classic
    /// table's IP, PORT and RTT, then INSTANCE, HOST and TXT. Names and TXT
    /// come from the network: their control characters are escaped, so they
    /// cannot drive the terminal or forge a row.
    pub fn table(&self) -> String {
        struct Row {
            ips: String,
            instance: String,
            host: String,
            txt: String,
        }
        let rows: Vec<Row> = self
            .servers
            .iter()
            .map(|s| Row {
                ips: s
                    .addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                instance: escape_controls(&s.instance),
                host: escape_controls(&s.host),
                txt: s
                    .txt
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => escape_controls(&format!("{k}={v}")),
                        None => escape_controls(k),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect();
        let widest = |f: fn(&Row) -> &str, least: usize| {
            rows.iter()
                .map(|r| f(r).chars().count())
                .max()
                .unwrap_or(0)
                .max(least)
        };
        let width = widest(|r| &r.ips, 15);
        let name_width = widest(|r| &r.instance, 8);
        let host_width = widest(|r| &r.host, 4);
        let mut out = format!(
            "{:<width$} {:>5} {:>10}  {:<name_width$}  {:<host_width$}  TXT\n",
            "IP", "PORT", "RTT", "INSTANCE", "HOST"
        );
        for (s, row) in self.servers.iter().zip(&rows) {
            let rtt = format!("{:.2} ms", s.rtt.as_secs_f64() * 1e3);
            let line = format!(
                "{:<width$} {:>5} {:>10}  {:<name_width$}  {:<host_width$}  {}",
                row.ips, s.port, rtt, row.instance, row.host, row.txt
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// One line summing the browse up.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} instance(s) of {} found in {:.0} ms (mDNS)",
            self.servers.len(),
            escape_controls(&self.service_type),
            self.elapsed.as_secs_f64() * 1e3,
        );
        if self.dropped > 0 {
            line.push_str(&format!(
                "; {} more dropped (at most {MAX_INSTANCES})",
                self.dropped
            ));
        }
        line
    }

    /// The whole outcome as one JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a browse always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_types_are_completed_with_the_local_domain() {
        for text in [
            "_http._tcp",
            "_http._tcp.local",
            "_http._tcp.local.",
            "_http._tcp.LOCAL.",
        ] {
            assert_eq!(parse_service_type(text).unwrap(), "_http._tcp.local.");
        }
        assert_eq!(
            parse_service_type(DEFAULT_SERVICE_TYPE).unwrap(),
            "_discoveryd._udp.local."
        );
        assert_eq!(
            parse_service_type("_a-b1._udp").unwrap(),
            "_a-b1._udp.local."
        );
    }

    #[test]
    fn bad_service_types_are_refused_naming_the_fix() {
        for (text, why) in [
            ("http._tcp", "must start with an underscore"),
            ("_http", "not a DNS-SD service type"),
            ("_http._sctp", "must end in `._udp` or `._tcp`"),
            ("_http._tcp.example.com", "must end in `._udp` or `._tcp`"),
            ("_._tcp", "1 to 15"),
            ("_abcdefghijklmnop._tcp", "1 to 15"),
            ("_12._tcp", "1 to 15"),
            ("_a--b._tcp", "1 to 15"),
            ("_-ab._tcp", "1 to 15"),
            ("_a b._tcp", "1 to 15"),
            ("", "not a DNS-SD service type"),
        ] {
            let e = parse_service_type(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(e.starts_with(&format!("--mdns {text:?}: ")), "{e}");
            assert!(e.contains("use one such as \"_discoveryd._udp\""), "{e}");
            assert!(!e.contains('\n'));
        }
    }

    fn sample() -> MdnsDiscovery {
        let mut txt = BTreeMap::new();
        txt.insert("path".to_owned(), Some("/x".to_owned()));
        txt.insert("flag".to_owned(), None);
        let found = instance(
            "_discoveryd._udp.local.",
            "Harness Web._discoveryd._udp.local.",
            "srv.local.",
            4242,
            vec![
                "198.51.100.1".parse().unwrap(),
                "192.0.2.1".parse().unwrap(),
            ],
            txt,
            Duration::from_micros(12_345),
        )
        .unwrap();
        let mut d = MdnsDiscovery {
            service_type: "_discoveryd._udp.local.".into(),
            sent_to: vec![SocketAddr::from((MDNS_GROUP, MDNS_PORT))],
            elapsed: Duration::from_millis(20),
            ..MdnsDiscovery::default()
        };
        assert!(d.record(found));
        d
    }

    #[test]
    fn an_instance_takes_its_name_and_first_address() {
        let d = sample();
        let s = &d.servers[0];
        assert_eq!(s.instance, "Harness Web");
        assert_eq!(s.ip, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.addresses.len(), 2);
        let none = instance(
            "_x._udp.local.",
            "a._x._udp.local.",
            "h.local.",
            1,
            vec![],
            BTreeMap::new(),
            Duration::ZERO,
        );
        assert!(none.is_none(), "an instance without an address is not kept");
    }

    #[test]
    fn a_second_resolution_merges_addresses_and_is_not_new() {
        let mut d = sample();
        let mut again = d.servers[0].clone();
        again.addresses = vec!["203.0.113.7".parse().unwrap()];
        assert!(!d.record(again));
        assert_eq!(d.servers.len(), 1);
        assert_eq!(d.servers[0].addresses.len(), 3);
    }

    #[test]
    fn the_table_has_the_classic_columns_then_the_dns_sd_ones() {
        let table = sample().table();
        let mut lines = table.lines();
        let header = lines.next().unwrap();
        let columns: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(columns, ["IP", "PORT", "RTT", "INSTANCE", "HOST", "TXT"]);
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("192.0.2.1,198.51.100.1  4242   12.35 ms  Harness Web"),
            "{row}"
        );
        assert!(row.ends_with("srv.local.  flag path=/x"), "{row}");
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn hostile_names_and_txt_cannot_drive_the_terminal_or_forge_rows() {
        let mut d = sample();
        let mut txt = BTreeMap::new();
        txt.insert(
            "k\u{1b}[1m".to_owned(),
            Some("\u{1b}[32mgreen\r\nFAKE 10.0.0.1 9999 line".to_owned()),
        );
        txt.insert(
            "bell".to_owned(),
            Some("\u{7}\u{7}\u{7f}\u{9b}2J".to_owned()),
        );
        txt.insert("flag\n".to_owned(), None);
        let hostile = instance(
            "_discoveryd._udp.local.",
            "\u{1b}[2J\u{1b}]0;owned\u{7}PWNED\r\nrow._discoveryd._udp.local.",
            "evil\u{1b}[5m\n.local.",
            4000,
            vec!["192.0.2.20".parse().unwrap()],
            txt,
            Duration::from_millis(3),
        )
        .unwrap();
        assert!(d.record(hostile));
        let table = d.table();
        let controls: Vec<u8> = table
            .bytes()
            .filter(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
            .collect();
        assert!(controls.is_empty(), "{controls:?} in {table}");
        assert!(!table.contains('\u{9b}'), "{table}");
        assert_eq!(table.lines().count(), d.servers.len() + 1, "{table}");
        let row = table.lines().nth(2).unwrap();
        assert!(
            row.contains("\\u{1b}[2J\\u{1b}]0;owned\\u{7}PWNED\\r\\nrow"),
            "{row}"
        );
        assert!(row.contains("evil\\u{1b}[5m\\n.local."), "{row}");
        assert!(
            row.contains("k\\u{1b}[1m=\\u{1b}[32mgreen\\r\\nFAKE 10.0.0.1 9999 line"),
            "{row}"
        );
        assert!(row.contains("bell=\\u{7}\\u{7}\\u{7f}\\u{9b}2J"), "{row}");
        assert!(row.contains(" flag\\n"), "{row}");
        d.service_type = "_x\u{1b}._udp.local.".into();
        assert!(!d.summary().contains('\u{1b}'));
    }

    #[test]
    fn the_json_document_has_the_classic_keys_and_the_dns_sd_fields() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        for key in [
            "servers",
            "malformed",
            "dropped",
            "sent_to",
            "send_errors",
            "elapsed_ms",
            "service_type",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
        let s = &v["servers"][0];
        assert_eq!(s["ip"], "192.0.2.1");
        assert_eq!(s["port"], 4242);
        assert_eq!(s["rtt_ms"], 12.345);
        assert_eq!(s["instance"], "Harness Web");
        assert_eq!(s["host"], "srv.local.");
        assert_eq!(s["addresses"][1], "198.51.100.1");
        assert_eq!(s["txt"]["path"], "/x");
        assert!(s["txt"]["flag"].is_null());
        assert_eq!(v["sent_to"][0], "224.0.0.251:5353");
    }

    #[test]
    fn the_summary_names_the_type_and_count() {
        assert_eq!(
            sample().summary(),
            "1 instance(s) of _discoveryd._udp.local. found in 20 ms (mDNS)"
        );
    }
}
