//! The `json` responder: answers its own request message with a JSON
//! document describing the service.
//!
//! ```toml
//! [[responders]]
//! type = "json"
//! message = "DISCOVER_JSON"
//! name = "printer-api"
//! version = "2.1.0"
//! [responders.metadata]
//! room = "lab"
//! ```
//!
//! The answer is
//! `{"name":…,"version":…,"ip":…,"service_port":…,"metadata":{…},"services":[…],"services_total":N}`,
//! where `services` lists the services registered with the daemon (over
//! HTTP), sorted by id, each `{"id","name","address","port","txt"}`; a
//! service on the daemon's own host has the address the request arrived
//! on, as `ip` does.
//!
//! It is larger than the request, and discoveryd never answers with more
//! than `security.max_amplification` (3) times the request's size on the
//! wire (IP and UDP headers included: 28 bytes over IPv4, 48 over IPv6), so
//! clients pad the request with spaces or NUL bytes: over IPv4, to at least
//! `(document + 28) / 3 - 28` bytes. The padding is accepted. The services
//! that do not fit in what the request allows are left out, from the end:
//! `services_total` says how many there are in all.
//!
//! Everything but the addresses is rendered once, when the responder is
//! built (again when the registered services change), so answering costs
//! copies and one address formatting, and no allocation.

use std::io::Write as _;

use discoveryd_api::{
    Action, BuildError, Registry, RegistryError, Request, Responder, ResponderContext, Service,
};
use serde::Deserialize;

/// The name this plugin registers under.
pub const NAME: &str = "json";

/// The `[[responders]]` options of `type = "json"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The request payload this responder answers.
    #[serde(default = "default_message")]
    message: String,
    /// The service name to advertise.
    #[serde(default = "default_name")]
    name: String,
    /// The service version to advertise, if any.
    #[serde(default)]
    version: Option<String>,
    /// The service port to advertise; defaults to the global `service_port`.
    #[serde(default)]
    service_port: Option<u16>,
    /// Free-form metadata, copied into the document.
    #[serde(default)]
    metadata: toml::Table,
}

fn default_message() -> String {
    "DISCOVER_JSON".to_owned()
}

fn default_name() -> String {
    "discoveryd".to_owned()
}

/// Registers the `json` responder.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(NAME, build)
}

fn build(ctx: &ResponderContext<'_>) -> Result<Box<dyn Responder>, BuildError> {
    let options: Options = ctx.options()?;
    if options.message.is_empty() {
        return Err(BuildError::Invalid {
            key: "message".into(),
            message: "must not be empty; set the request this responder answers".into(),
        });
    }
    let prefix = &ctx.globals.response_prefix;
    if !prefix.is_empty() && options.message.starts_with(prefix.as_str()) {
        return Err(BuildError::Invalid {
            key: "message".into(),
            message: format!(
                "{:?} starts with `response_prefix` ({prefix:?}): loop protection refuses every such request, so this responder would never answer; change one of them",
                options.message
            ),
        });
    }
    let service_port = options.service_port.or(ctx.globals.service_port);
    let head = format!(
        "{{\"name\":{},\"version\":{},\"ip\":\"",
        json(&options.name),
        json(&options.version),
    );
    let middle = format!(
        "\",\"service_port\":{},\"metadata\":{},\"services\":[",
        json(&service_port),
        json(&options.metadata),
    );
    let services = ctx.services();
    let tail = format!("],\"services_total\":{}}}", services.len());
    Ok(Box::new(JsonResponder {
        message: options.message.into_bytes(),
        head: head.into_bytes(),
        middle: middle.into_bytes(),
        services: services.iter().map(Fragment::of).collect(),
        tail: tail.into_bytes(),
    }))
}

/// A registered service's entry in `services`, rendered but for the
/// address of a service on this host: `before`, the address the request
/// arrived on, `after`.
struct Fragment {
    before: Vec<u8>,
    after: Option<Vec<u8>>,
}

impl Fragment {
    fn of(service: &Service) -> Self {
        let head = format!(
            "{{\"id\":{},\"name\":{},\"address\":",
            json(&service.id),
            json(&service.name)
        );
        let tail = format!(
            ",\"port\":{},\"txt\":{}}}",
            service.port,
            json(&service.txt)
        );
        match service.address {
            Some(ip) => Self {
                before: format!("{head}\"{ip}\"{tail}").into_bytes(),
                after: None,
            },
            None => Self {
                before: format!("{head}\"").into_bytes(),
                after: Some(format!("\"{tail}").into_bytes()),
            },
        }
    }

    /// Its length with an address of `ip_len` bytes.
    fn len(&self, ip_len: usize) -> usize {
        self.before.len() + self.after.as_ref().map_or(0, |a| ip_len + a.len())
    }
}

/// Renders a config value as JSON text.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("config values always serialize to JSON")
}

struct JsonResponder {
    message: Vec<u8>,
    head: Vec<u8>,
    middle: Vec<u8>,
    services: Vec<Fragment>,
    tail: Vec<u8>,
}

impl Responder for JsonResponder {
    fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Action {
        // The document is larger than the request: discoveryd sends no
        // answer over `max_amplification` times the request's size, so
        // clients pad the request with spaces or NUL bytes.
        let Some(padding) = request.payload.strip_prefix(self.message.as_slice()) else {
            return Action::Pass;
        };
        if !padding.iter().all(|&b| b == b' ' || b == 0) {
            return Action::Pass;
        }
        reply.extend_from_slice(&self.head);
        let start = reply.len();
        // Writing to a Vec cannot fail.
        let _ = write!(reply, "{}", request.advertised_ip);
        let ip = start..reply.len();
        reply.extend_from_slice(&self.middle);
        // The services that fit, in order: a longer answer would be dropped.
        let room = request.max_reply.saturating_sub(self.tail.len());
        for (i, service) in self.services.iter().enumerate() {
            let comma = usize::from(i > 0);
            if reply.len() + comma + service.len(ip.len()) > room {
                break;
            }
            if comma == 1 {
                reply.push(b',');
            }
            reply.extend_from_slice(&service.before);
            if let Some(after) = &service.after {
                reply.extend_from_within(ip.clone());
                reply.extend_from_slice(after);
            }
        }
        reply.extend_from_slice(&self.tail);
        Action::Reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use discoveryd_api::Globals;

    fn responder(
        options: &str,
        service_port: Option<u16>,
    ) -> Result<Box<dyn Responder>, BuildError> {
        with_services(options, service_port, &[])
    }

    fn with_services(
        options: &str,
        service_port: Option<u16>,
        services: &[Service],
    ) -> Result<Box<dyn Responder>, BuildError> {
        let options: toml::Table = options.parse().unwrap();
        let globals = Globals::new("DISCOVER_SERVER", "SERVER_IP:", service_port);
        build(&ResponderContext::new("json", &options, &globals).with_services(services, None))
    }

    fn ask_within(r: &dyn Responder, payload: &[u8], max_reply: usize) -> (Action, Vec<u8>) {
        let request = Request::new(
            payload,
            "192.0.2.7:5000".parse().unwrap(),
            "192.0.2.1:9999".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
        )
        .with_max_reply(max_reply);
        let mut reply = Vec::new();
        (r.respond(&request, &mut reply), reply)
    }

    fn ask(r: &dyn Responder, payload: &[u8]) -> (Action, Vec<u8>) {
        ask_within(r, payload, usize::MAX)
    }

    #[test]
    fn lists_the_registered_services_that_fit() {
        let txt = [("role".to_owned(), "db".to_owned())].into();
        let services = [
            Service::new("a", "api", None, 8080, txt),
            Service::new(
                "b",
                "api",
                Some("198.51.100.4".parse().unwrap()),
                8081,
                Default::default(),
            ),
            Service::new("c", "cache", None, 6379, Default::default()),
        ];
        let r = with_services("", None, &services).unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&ask(r.as_ref(), b"DISCOVER_JSON").1).unwrap();
        assert_eq!(doc["services_total"], 3);
        let listed = doc["services"].as_array().unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0]["id"], "a");
        assert_eq!(
            listed[0]["address"], "192.0.2.1",
            "this host: the arrival address"
        );
        assert_eq!(listed[0]["txt"]["role"], "db");
        assert_eq!(listed[1]["address"], "198.51.100.4");
        assert_eq!(listed[1]["port"], 8081);
        assert_eq!(listed[2]["name"], "cache");

        // Room for the document and one service: the rest is left out,
        // and what is sent still parses, within the limit.
        let full = ask(r.as_ref(), b"DISCOVER_JSON").1.len();
        let limit = full - 60;
        let (_, reply) = ask_within(r.as_ref(), b"DISCOVER_JSON", limit);
        assert!(reply.len() <= limit, "{} > {limit}", reply.len());
        let doc: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(doc["services"].as_array().unwrap().len(), 2);
        assert_eq!(doc["services_total"], 3);
        let none: serde_json::Value =
            serde_json::from_slice(&ask_within(r.as_ref(), b"DISCOVER_JSON", 130).1).unwrap();
        assert_eq!(none["services"], serde_json::json!([]));
    }

    #[test]
    fn answers_its_message_with_a_parsable_document() {
        let r = responder(
            "name = \"api\"\nversion = \"2.1\"\n[metadata]\nroom = \"lab\"\nfloor = 3\n",
            Some(8080),
        )
        .unwrap();
        let (action, reply) = ask(r.as_ref(), b"DISCOVER_JSON");
        assert_eq!(action, Action::Reply);
        let doc: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(doc["name"], "api");
        assert_eq!(doc["version"], "2.1");
        assert_eq!(doc["ip"], "192.0.2.1");
        assert_eq!(doc["service_port"], 8080);
        assert_eq!(doc["metadata"]["room"], "lab");
        assert_eq!(doc["metadata"]["floor"], 3);
        assert_eq!(doc["services"], serde_json::json!([]));
        assert_eq!(doc["services_total"], 0);
    }

    #[test]
    fn passes_other_messages_but_takes_padded_ones() {
        let r = responder("", None).unwrap();
        assert_eq!(ask(r.as_ref(), b"DISCOVER_SERVER").0, Action::Pass);
        assert_eq!(ask(r.as_ref(), b"DISCOVER_JSONX").0, Action::Pass);
        assert_eq!(ask(r.as_ref(), b"DISCOVER_JSON    \0\0").0, Action::Reply);
    }

    #[test]
    fn own_service_port_overrides_the_global_one() {
        let r = responder("service_port = 1234", Some(8080)).unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&ask(r.as_ref(), b"DISCOVER_JSON").1).unwrap();
        assert_eq!(doc["service_port"], 1234);
        assert_eq!(doc["version"], serde_json::Value::Null);
    }

    #[test]
    fn rejects_unknown_keys_and_empty_message() {
        let err = responder("colour = \"red\"", None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        let err = responder("message = \"\"", None).err().unwrap().to_string();
        assert!(err.contains("message"), "{err}");
        let err = responder("message = \"SERVER_IP:?\"", None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("key `message`: \"SERVER_IP:?\" starts with `response_prefix`"),
            "{err}"
        );
    }
}
