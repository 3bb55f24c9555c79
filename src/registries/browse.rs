//! `discover --etcd`: what is published under a prefix, read with one
//! range request, as the table and the JSON document of the other
//! discovery modes. Keys and values come from whoever can write to etcd:
//! malformed ones are counted and shown, never trusted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::Endpoint;
use super::etcd::{Client, Credentials, EtcdError};
use crate::client::{cell, millis, MAX_CELL, MAX_MALFORMED, MAX_SERVERS};

/// What to read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// The cluster's client URLs, tried in turn.
    pub endpoints: Vec<String>,
    /// The key prefix (`/discoveryd/services/` by default).
    pub prefix: String,
    /// Only this service's keys.
    pub service: Option<String>,
    /// How long a request may take on each endpoint.
    pub timeout: Duration,
    /// The user and password, when etcd has auth on.
    pub credentials: Option<(String, String)>,
}

/// A published service instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// Its host (an IP address, or a name if the publisher wrote one).
    pub ip: String,
    /// Its port.
    pub port: u16,
    /// Time from sending the request to its answer.
    #[serde(rename = "rtt_ms", serialize_with = "millis")]
    pub rtt: Duration,
    /// The service name, from the key.
    pub service: String,
    /// The key.
    pub key: String,
    /// The value's `Metadata`.
    pub metadata: serde_json::Value,
}

/// A key that is not in the endpoints format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MalformedKey {
    /// The key (lossily decoded).
    pub key: String,
    /// Why it was rejected.
    pub reason: String,
}

/// What `discover --etcd` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EtcdDiscovery {
    /// The instances, sorted by key.
    pub servers: Vec<Published>,
    /// Keys that are not in the format (the first 64).
    pub malformed: Vec<MalformedKey>,
    /// Keys not read (past 4,096) or not kept (malformed past 64).
    pub dropped: u64,
    /// The endpoint that answered.
    pub sent_to: Vec<String>,
    /// Endpoints that did not answer, and why.
    pub send_errors: Vec<(String, String)>,
    /// How long it took.
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
}

/// Reads what is published. `Err` when no endpoint answered (with each
/// one's error), or the options are not valid (the message then starts
/// with the option: `--etcd`, `--prefix`).
pub fn browse_etcd(options: &EtcdOptions) -> Result<EtcdDiscovery, String> {
    let endpoints = options
        .endpoints
        .iter()
        .map(|e| Endpoint::parse(e).map_err(|why| format!("--etcd {why}")))
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err("--etcd: give the cluster's client URL, such as http://127.0.0.1:2379".into());
    }
    super::config::check_prefix(&options.prefix).map_err(|e| format!("--prefix {e}"))?;
    let mut prefix = options.prefix.clone();
    if let Some(service) = &options.service {
        prefix.push_str(service);
        prefix.push('/');
    }
    let start = Instant::now();
    let credentials = match &options.credentials {
        Some((user, password)) => Credentials::Password {
            user: user.clone(),
            password: password.clone(),
        },
        None => Credentials::None,
    };
    let mut client = Client::new(endpoints, options.timeout, credentials);
    let (kvs, more) = client.range(&prefix, MAX_SERVERS).map_err(|e| match e {
        EtcdError::Unreachable(why) => {
            format!("cannot read etcd: {why}; is it running there (etcdctl endpoint health)?")
        }
        other => format!("cannot read etcd: {other}"),
    })?;
    let rtt = start.elapsed();
    let mut found = EtcdDiscovery {
        dropped: more,
        sent_to: vec![client.endpoint().to_string()],
        send_errors: client.skipped().to_vec(),
        ..EtcdDiscovery::default()
    };
    for (key, value) in kvs {
        let key = String::from_utf8_lossy(&key).into_owned();
        match parse(&options.prefix, &key, &value) {
            Ok((service, ip, port, metadata)) => found.servers.push(Published {
                ip,
                port,
                rtt,
                service,
                key,
                metadata,
            }),
            Err(reason) if found.malformed.len() < MAX_MALFORMED => {
                found.malformed.push(MalformedKey { key, reason });
            }
            Err(_) => found.dropped += 1,
        }
    }
    found.elapsed = start.elapsed();
    Ok(found)
}

/// One key and value in the endpoints format: the service name, host,
/// port and metadata.
fn parse(
    prefix: &str,
    key: &str,
    value: &[u8],
) -> Result<(String, String, u16, serde_json::Value), String> {
    #[derive(serde::Deserialize)]
    struct Endpoint {
        #[serde(rename = "Addr")]
        addr: String,
        #[serde(rename = "Metadata", default)]
        metadata: serde_json::Value,
    }
    let rest = key.strip_prefix(prefix).ok_or("not under the prefix")?;
    let (service, _) = rest
        .rsplit_once('/')
        .ok_or("not <prefix><service>/<address:port>")?;
    let endpoint: Endpoint = serde_json::from_slice(value)
        .map_err(|e| format!("the value is not {{\"Addr\", \"Metadata\"}}: {e}"))?;
    let (host, port) = endpoint
        .addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("Addr {:?} is not host:port", endpoint.addr))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((service.to_owned(), host.to_owned(), port, endpoint.metadata))
}

impl EtcdDiscovery {
    /// A table of the instances, one line each, for people: what etcd
    /// holds is shown with its control characters escaped.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .servers
            .iter()
            .map(|s| {
                [
                    cell(&s.ip, MAX_CELL),
                    s.port.to_string(),
                    format!("{:.2} ms", s.rtt.as_secs_f64() * 1e3),
                    cell(&s.service, MAX_CELL),
                    cell(&metadata_text(&s.metadata), 4 * MAX_CELL),
                ]
            })
            .collect();
        let width = |i: usize, head: &str| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head.len(), if i == 0 { 15 } else { 0 }])
                .max()
                .unwrap_or(0)
        };
        let (w0, w3) = (width(0, "IP"), width(3, "SERVICE"));
        let mut out = format!(
            "{:<w0$} {:>5} {:>10}  {:<w3$}  METADATA\n",
            "IP", "PORT", "RTT", "SERVICE"
        );
        for r in &rows {
            let line = format!(
                "{:<w0$} {:>5} {:>10}  {:<w3$}  {}",
                r[0], r[1], r[2], r[3], r[4]
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// One line summing it up.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} instance(s) found in {:.0} ms (etcd, {})",
            self.servers.len(),
            self.elapsed.as_secs_f64() * 1e3,
            self.sent_to.join(", ")
        );
        if !self.malformed.is_empty() {
            line.push_str(&format!(
                "; {} key(s) not in the endpoints format ignored",
                self.malformed.len()
            ));
        }
        if self.dropped > 0 {
            line.push_str(&format!(
                "; {} more not read (at most {MAX_SERVERS})",
                self.dropped
            ));
        }
        line
    }

    /// The whole outcome as one JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a discovery always serializes")
    }
}

/// Metadata for the table: `key=value` pairs for an object of strings,
/// the JSON otherwise.
fn metadata_text(metadata: &serde_json::Value) -> String {
    match metadata {
        serde_json::Value::Null => String::new(),
        serde_json::Value::Object(map) if map.values().all(|v| v.is_string()) => {
            let sorted: BTreeMap<&String, &str> = map
                .iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
                .collect();
            sorted
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_the_endpoints_format_and_the_others() {
        let p = "/discoveryd/services/";
        let (service, ip, port, metadata) = parse(
            p,
            "/discoveryd/services/api/[2001:db8::1]:7000",
            br#"{"Addr": "[2001:db8::1]:7000", "Metadata": {"id": "a"}}"#,
        )
        .unwrap();
        assert_eq!(
            (service.as_str(), ip.as_str(), port),
            ("api", "2001:db8::1", 7000)
        );
        assert_eq!(metadata["id"], "a");
        assert_eq!(metadata_text(&metadata), "id=a");
        for (key, value) in [
            ("/other/api/1.2.3.4:1", r#"{"Addr": "1.2.3.4:1"}"#),
            ("/discoveryd/services/noslash", r#"{"Addr": "1.2.3.4:1"}"#),
            ("/discoveryd/services/api/x", "not json"),
            ("/discoveryd/services/api/x", r#"{"Addr": "1.2.3.4"}"#),
        ] {
            assert!(parse(p, key, value.as_bytes()).is_err(), "{key} {value}");
        }
    }
}
