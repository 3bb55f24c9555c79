//! A registration as `PUT /v1/services/{id}` describes it, checked field
//! by field, so that a client's mistake comes back naming the field and
//! the fix: `{"name", "port", "address"?, "ttl", "txt"?}`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Service;
use crate::duration::HumanDuration;
use crate::mdns::{txt_problems, txt_size, MAX_INSTANCE};

/// The longest id: it is the service's mDNS instance name too.
pub(crate) const MAX_ID: usize = MAX_INSTANCE;

/// The longest name.
const MAX_NAME: usize = 63;

/// The shortest and longest `ttl`.
const TTL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

/// The TXT keys discoveryd sets on a registered service's mDNS instance.
const RESERVED_TXT: [&str; 1] = ["name"];

/// The largest TXT record (RFC 6763 section 6.2), as for `[mdns] txt`.
const MAX_TXT_RECORD: usize = crate::mdns::Mdns::MAX_TXT_RECORD;

/// The fields a body may have.
const FIELDS: &str = "name, port, address, ttl, txt";

/// A service to register, and how long it lives without a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registration {
    /// The service.
    pub(crate) service: Service,
    /// Removed when no heartbeat came for this long.
    pub(crate) ttl: Duration,
}

/// What is wrong with a registration: the field (`id` for the path) and
/// the reason, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecError {
    /// The field, such as `port` or `txt.role`.
    pub(crate) field: String,
    /// What is wrong, and the fix.
    pub(crate) message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn error(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks a service id from the path: 1 to 57 letters, digits, `.`, `_`
/// and `-`, not starting with `.` (it is an mDNS instance name, and a
/// path segment).
pub(crate) fn check_id(id: &str) -> Result<(), SpecError> {
    let ok = (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(error(
            "id",
            format!("`{}` is not a service id: use 1 to {MAX_ID} letters, digits, `.`, `_` and `-`, not starting with `.`", id.escape_debug()),
        ))
    }
}

impl Registration {
    /// The registration `body` (JSON) asks for under `id`, from a client
    /// at `caller` (the default address).
    pub(crate) fn parse(id: &str, body: &[u8], caller: IpAddr) -> Result<Self, SpecError> {
        check_id(id)?;
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            error(
                "body",
                format!("not JSON ({e}); send an object such as {{\"name\": \"api\", \"port\": 8080, \"ttl\": \"10s\"}}"),
            )
        })?;
        let Value::Object(fields) = value else {
            return Err(error(
                "body",
                "must be a JSON object such as {\"name\": \"api\", \"port\": 8080, \"ttl\": \"10s\"}",
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !FIELDS.split(", ").any(|f| f == k.as_str()))
        {
            return Err(error(
                unknown.escape_debug().to_string(),
                format!("unknown field; the fields are {FIELDS}"),
            ));
        }
        let name = name(&fields)?;
        let port = port(&fields)?;
        let address = match fields.get("address") {
            None | Some(Value::Null) => caller,
            Some(value) => address(value)?,
        };
        let ttl = ttl(&fields)?;
        let txt = txt(&fields)?;
        Ok(Self {
            service: Service::new(id, name, this_host_or(address), port, txt),
            ttl,
        })
    }
}

/// `None` (this host, advertised with the address each client reaches it
/// on) for a loopback address; the address otherwise.
fn this_host_or(ip: IpAddr) -> Option<IpAddr> {
    let ip = ip.to_canonical();
    (!ip.is_loopback()).then_some(ip)
}

fn name(fields: &Map<String, Value>) -> Result<String, SpecError> {
    let Some(value) = fields.get("name") else {
        return Err(error(
            "name",
            "missing; give the service's name, such as \"api\"",
        ));
    };
    let Value::String(name) = value else {
        return Err(error("name", format!("must be a string, not {value}")));
    };
    check_name(name).map_err(|e| error("name", e))?;
    Ok(name.clone())
}

/// A service name: 1 to 63 bytes, without `/` (it ends the name in a
/// registry's key, `<prefix><name>/<address:port>`) or control characters.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && !name.contains('/')
        && !name.chars().any(crate::client::is_unprintable);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a service name: use 1 to {MAX_NAME} bytes, without `/`, control characters, bidirectional or zero-width marks"
        ))
    }
}

fn port(fields: &Map<String, Value>) -> Result<u16, SpecError> {
    let value = fields
        .get("port")
        .ok_or_else(|| error("port", "missing; give the service's port, 1 to 65535"))?;
    value
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| error("port", format!("{value} is not a port; use 1 to 65535")))
}

fn address(value: &Value) -> Result<IpAddr, SpecError> {
    let ip = value
        .as_str()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .ok_or_else(|| {
            error(
                "address",
                format!("{value} is not an IP address; give one such as \"192.0.2.7\", or leave it out for the caller's"),
            )
        })?;
    let unusable = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast() || v6.is_unicast_link_local(),
    };
    if unusable {
        return Err(error(
            "address",
            format!("{ip} cannot be a service's address (unspecified, broadcast, multicast or link-local IPv6); give its unicast address"),
        ));
    }
    Ok(ip)
}

fn ttl(fields: &Map<String, Value>) -> Result<Duration, SpecError> {
    let fix = "give how long it lives without a heartbeat, such as \"10s\" (1s to 24h)";
    let value = fields
        .get("ttl")
        .ok_or_else(|| error("ttl", format!("missing; {fix}")))?;
    let parsed = match value {
        Value::String(s) => s.parse::<HumanDuration>().map(HumanDuration::get),
        Value::Number(n) => n
            .as_u64()
            .and_then(|s| HumanDuration::new(Duration::from_secs(s)))
            .map(HumanDuration::get)
            .ok_or_else(|| format!("{n} is not a positive number of seconds")),
        other => Err(format!("{other} is not a duration")),
    };
    let ttl = parsed.map_err(|e| error("ttl", format!("{e}; {fix}")))?;
    if !(TTL_RANGE.0..=TTL_RANGE.1).contains(&ttl) {
        return Err(error(
            "ttl",
            format!("{} is out of range; {fix}", humantime::format_duration(ttl)),
        ));
    }
    Ok(ttl)
}

fn txt(fields: &Map<String, Value>) -> Result<BTreeMap<String, String>, SpecError> {
    let entries = match fields.get("txt") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(entries)) => entries,
        Some(other) => {
            return Err(error(
                "txt",
                format!("must be an object of strings such as {{\"role\": \"api\"}}, not {other}"),
            ))
        }
    };
    let mut txt = BTreeMap::new();
    for (key, value) in entries {
        let Value::String(value) = value else {
            return Err(error(
                format!("txt.{}", key.escape_debug()),
                format!("must be a string, not {value}"),
            ));
        };
        txt.insert(key.clone(), value.clone());
    }
    if let Some((key, reason)) = txt_problems(&txt, &RESERVED_TXT, "the service's").pop() {
        return Err(error(format!("txt.{key}"), reason));
    }
    let size = txt_size(
        txt.iter()
            .map(|(k, v)| (k.as_str(), v.len()))
            .chain([("name", MAX_NAME)]),
    );
    if size > MAX_TXT_RECORD {
        return Err(error(
            "txt",
            format!("the TXT record would be up to {size} bytes with the `name` entry discoveryd adds; RFC 6763 section 6.2 advises at most {MAX_TXT_RECORD}: remove or shorten entries"),
        ));
    }
    Ok(txt)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));

    fn parse(body: &str) -> Result<Registration, SpecError> {
        Registration::parse("api-1", body.as_bytes(), CALLER)
    }

    fn field(body: &str) -> String {
        parse(body).unwrap_err().field
    }

    #[test]
    fn a_full_body_and_the_defaults() {
        let r = parse(r#"{"name": "api", "port": 8080, "ttl": "10s", "address": "198.51.100.4", "txt": {"role": "db"}}"#).unwrap();
        assert_eq!(r.service.id, "api-1");
        assert_eq!(r.service.name, "api");
        assert_eq!(r.service.port, 8080);
        assert_eq!(r.service.address, Some("198.51.100.4".parse().unwrap()));
        assert_eq!(r.service.txt["role"], "db");
        assert_eq!(r.ttl, Duration::from_secs(10));

        let r = parse(r#"{"name": "api", "port": 1, "ttl": 30}"#).unwrap();
        assert_eq!(r.service.address, Some(CALLER), "the caller's address");
        assert_eq!(r.ttl, Duration::from_secs(30), "a bare number is seconds");

        let local = Registration::parse(
            "x",
            br#"{"name": "a", "port": 1, "ttl": "1s"}"#,
            "::ffff:127.0.0.1".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(local.service.address, None, "loopback: this host");
        let local = parse(r#"{"name": "a", "port": 1, "ttl": "1s", "address": "::1"}"#).unwrap();
        assert_eq!(local.service.address, None);
    }

    #[test]
    fn every_mistake_names_its_field() {
        let base = r#""name": "api", "port": 8080, "ttl": "10s""#;
        for (body, expected) in [
            ("[1]".to_owned(), "body"),
            ("{".to_owned(), "body"),
            (r#"{"port": 1, "ttl": "1s"}"#.to_owned(), "name"),
            (r#"{"name": 7, "port": 1, "ttl": "1s"}"#.to_owned(), "name"),
            (
                r#"{"name": "a/b", "port": 1, "ttl": "1s"}"#.to_owned(),
                "name",
            ),
            (
                "{\"name\": \"\u{202e}evil\", \"port\": 1, \"ttl\": \"1s\"}".to_owned(),
                "name",
            ),
            (
                "{\"name\": \"a\u{2028}b\", \"port\": 1, \"ttl\": \"1s\"}".to_owned(),
                "name",
            ),
            (r#"{"name": "a", "ttl": "1s"}"#.to_owned(), "port"),
            (
                r#"{"name": "a", "port": 0, "ttl": "1s"}"#.to_owned(),
                "port",
            ),
            (
                r#"{"name": "a", "port": 65536, "ttl": "1s"}"#.to_owned(),
                "port",
            ),
            (
                r#"{"name": "a", "port": "80", "ttl": "1s"}"#.to_owned(),
                "port",
            ),
            (r#"{"name": "a", "port": 1}"#.to_owned(), "ttl"),
            (
                r#"{"name": "a", "port": 1, "ttl": "soon"}"#.to_owned(),
                "ttl",
            ),
            (r#"{"name": "a", "port": 1, "ttl": "0s"}"#.to_owned(), "ttl"),
            (r#"{"name": "a", "port": 1, "ttl": "2d"}"#.to_owned(), "ttl"),
            (r#"{"name": "a", "port": 1, "ttl": -1}"#.to_owned(), "ttl"),
            (format!(r#"{{{base}, "address": "nope"}}"#), "address"),
            (
                format!(r#"{{{base}, "address": "255.255.255.255"}}"#),
                "address",
            ),
            (
                format!(r#"{{{base}, "address": "224.0.0.251"}}"#),
                "address",
            ),
            (format!(r#"{{{base}, "address": "fe80::1"}}"#), "address"),
            (format!(r#"{{{base}, "txt": []}}"#), "txt"),
            (format!(r#"{{{base}, "txt": {{"role": 1}}}}"#), "txt.role"),
            (format!(r#"{{{base}, "txt": {{"a=b": "1"}}}}"#), "txt.a=b"),
            (format!(r#"{{{base}, "txt": {{"Name": "x"}}}}"#), "txt.Name"),
            (
                format!(r#"{{{base}, "txt": {{"k": "{}"}}}}"#, "v".repeat(300)),
                "txt.k",
            ),
            (
                format!(r#"{{{base}, "txt": {{"a": "1", "A": "2"}}}}"#),
                "txt.a",
            ),
            (
                format!(
                    r#"{{{base}, "txt": {{{}}}}}"#,
                    (0..10)
                        .map(|i| format!(r#""k{i}": "{}""#, "v".repeat(200)))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                "txt",
            ),
            (format!(r#"{{{base}, "colour": "red"}}"#), "colour"),
        ] {
            assert_eq!(field(&body), expected, "{body}");
        }
        let e = parse(r#"{"name": "a", "port": 99999, "ttl": "1s"}"#).unwrap_err();
        assert_eq!(e.to_string(), "port: 99999 is not a port; use 1 to 65535");
    }

    #[test]
    fn ids_are_instance_names_and_path_segments() {
        for ok in ["a", "api-1", "web.2", "A_b", &"x".repeat(MAX_ID)] {
            assert_eq!(check_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a b",
            "a/b",
            "ü",
            &"x".repeat(MAX_ID + 1),
        ] {
            assert_eq!(check_id(bad).unwrap_err().field, "id", "{bad}");
        }
    }
}
