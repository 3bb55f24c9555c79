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
//! The answer is `{"name":…,"version":…,"ip":…,"service_port":…,"metadata":{…}}`.
//! It is larger than the request, and discoveryd never answers with more
//! than `security.max_amplification` (3) times the request's size on the
//! wire (IP and UDP headers included: 28 bytes over IPv4, 48 over IPv6), so
//! clients pad the request with spaces or NUL bytes: over IPv4, to at least
//! `(document + 28) / 3 - 28` bytes. The padding is accepted.
//! Everything but `ip` is rendered once, when the responder is built, so
//! answering costs one copy and one address formatting.

use std::io::Write as _;

use discoveryd_api::{
    Action, BuildError, Registry, RegistryError, Request, Responder, ResponderContext,
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
    let tail = format!(
        "\",\"service_port\":{},\"metadata\":{}}}",
        json(&service_port),
        json(&options.metadata),
    );
    Ok(Box::new(JsonResponder {
        message: options.message.into_bytes(),
        head: head.into_bytes(),
        tail: tail.into_bytes(),
    }))
}

/// Renders a config value as JSON text.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("config values always serialize to JSON")
}

struct JsonResponder {
    message: Vec<u8>,
    head: Vec<u8>,
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
        // Writing to a Vec cannot fail.
        let _ = write!(reply, "{}", request.advertised_ip);
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
        let options: toml::Table = options.parse().unwrap();
        let globals = Globals::new("DISCOVER_SERVER", "SERVER_IP:", service_port);
        build(&ResponderContext::new("json", &options, &globals))
    }

    fn ask(r: &dyn Responder, payload: &[u8]) -> (Action, Vec<u8>) {
        let request = Request::new(
            payload,
            "192.0.2.7:5000".parse().unwrap(),
            "192.0.2.1:9999".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
        );
        let mut reply = Vec::new();
        (r.respond(&request, &mut reply), reply)
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
