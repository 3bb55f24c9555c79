//! The `hello` responder: a discoveryd plugin that lives in its own crate,
//! outside the discoveryd repository.
//!
//! It answers the request `HELLO_DISCOVERY` with `HELLO_FROM:<ip>`, where
//! `<ip>` is the address to advertise: `advertise_ip` when configured,
//! otherwise the local address the request arrived on (the same address
//! the built-in `classic` responder advertises).
//!
//! ```toml
//! [[responders]]
//! type = "hello"
//! # Both keys are optional; these are the defaults.
//! message = "HELLO_DISCOVERY"
//! prefix = "HELLO_FROM:"
//! ```
//!
//! Any other key is refused when the config is loaded (`discoveryd-hello
//! check`, start-up or reload), naming the key.
//!
//! Another crate can reuse it: call [`register`] from its own `main`, with
//! its own types beside it.

use std::io::Write as _;

use discoveryd_api::{
    Action, BuildError, Registry, RegistryError, Request, Responder, ResponderContext,
};
use serde::Deserialize;

/// The name this plugin registers under: `type = "hello"`.
pub const NAME: &str = "hello";

/// The request answered when the config does not say otherwise.
pub const DEFAULT_MESSAGE: &str = "HELLO_DISCOVERY";

/// The start of the answer when the config does not say otherwise.
pub const DEFAULT_PREFIX: &str = "HELLO_FROM:";

/// Registers the `hello` responder type.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(NAME, build)
}

/// The `[[responders]]` options of `type = "hello"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The request payload this responder answers, matched byte for byte.
    #[serde(default = "default_message")]
    message: String,
    /// What the answer starts with; the advertised address follows.
    #[serde(default = "default_prefix")]
    prefix: String,
}

fn default_message() -> String {
    DEFAULT_MESSAGE.to_owned()
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}

/// Builds one `hello` responder from its `[[responders]]` table. Everything
/// is decided here, once, so that answering only copies bytes.
fn build(ctx: &ResponderContext<'_>) -> Result<Box<dyn Responder>, BuildError> {
    let options: Options = ctx.options()?;
    if options.message.is_empty() {
        return Err(BuildError::Invalid {
            key: "message".into(),
            message: "must not be empty; set the request this responder answers".into(),
        });
    }
    // discoveryd drops every request that starts with `response_prefix`
    // (loop protection): such a message would never be answered.
    let loop_prefix = &ctx.globals.response_prefix;
    if !loop_prefix.is_empty() && options.message.starts_with(loop_prefix.as_str()) {
        return Err(BuildError::Invalid {
            key: "message".into(),
            message: format!(
                "{:?} starts with `response_prefix` ({loop_prefix:?}): loop protection refuses every such request, so this responder would never answer; change one of them",
                options.message
            ),
        });
    }
    Ok(Box::new(Hello {
        message: options.message.into_bytes(),
        prefix: options.prefix.into_bytes(),
    }))
}

/// The responder. Immutable after it is built, so `respond` can run on
/// every worker thread at once without a lock.
struct Hello {
    message: Vec<u8>,
    prefix: Vec<u8>,
}

impl Responder for Hello {
    fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Action {
        if request.payload != self.message.as_slice() {
            // Not ours: let the next responder in the chain look at it.
            return Action::Pass;
        }
        // `reply` is empty here and keeps its capacity from one datagram to
        // the next; formatting an address into it allocates nothing.
        reply.extend_from_slice(&self.prefix);
        // Writing to a Vec cannot fail.
        let _ = write!(reply, "{}", request.advertised_ip);
        Action::Reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use discoveryd_api::{Globals, Table};

    fn responder(options: &str) -> Result<Box<dyn Responder>, BuildError> {
        let options: Table = options.parse().unwrap();
        let globals = Globals::new("DISCOVER_SERVER", "SERVER_IP:", None);
        let mut registry = Registry::new();
        register(&mut registry).unwrap();
        let factory = registry.get(NAME).expect("registered as `hello`");
        factory(&ResponderContext::new(
            "responders[0] (hello)",
            &options,
            &globals,
        ))
    }

    fn ask(r: &dyn Responder, payload: &[u8], advertised: &str) -> (Action, Vec<u8>) {
        let request = Request::new(
            payload,
            "192.0.2.7:5000".parse().unwrap(),
            "192.0.2.1:9999".parse().unwrap(),
            advertised.parse().unwrap(),
        );
        let mut reply = Vec::new();
        (r.respond(&request, &mut reply), reply)
    }

    #[test]
    fn answers_hello_discovery_with_the_advertised_address() {
        let r = responder("").unwrap();
        let (action, reply) = ask(r.as_ref(), b"HELLO_DISCOVERY", "192.0.2.1");
        assert_eq!(action, Action::Reply);
        assert_eq!(reply, b"HELLO_FROM:192.0.2.1");
        let (action, reply) = ask(r.as_ref(), b"HELLO_DISCOVERY", "2001:db8::1");
        assert_eq!(action, Action::Reply);
        assert_eq!(reply, b"HELLO_FROM:2001:db8::1");
    }

    #[test]
    fn passes_everything_else() {
        let r = responder("").unwrap();
        for payload in [
            &b"DISCOVER_SERVER"[..],
            b"HELLO_DISCOVERY ",
            b"HELLO_DISCOVER",
            b"hello_discovery",
            b"",
        ] {
            let (action, reply) = ask(r.as_ref(), payload, "192.0.2.1");
            assert_eq!(action, Action::Pass, "{payload:?}");
            assert!(reply.is_empty(), "{payload:?}");
        }
    }

    #[test]
    fn message_and_prefix_are_configurable() {
        let r = responder("message = \"HI?\"\nprefix = \"HI:\"").unwrap();
        assert_eq!(
            ask(r.as_ref(), b"HI?", "192.0.2.1"),
            (Action::Reply, b"HI:192.0.2.1".to_vec())
        );
        assert_eq!(
            ask(r.as_ref(), b"HELLO_DISCOVERY", "192.0.2.1").0,
            Action::Pass
        );
    }

    #[test]
    fn rejects_unknown_keys_and_unanswerable_messages() {
        let err = responder("colour = \"red\"").err().unwrap().to_string();
        assert!(err.contains("colour"), "{err}");
        let err = responder("message = \"\"").err().unwrap().to_string();
        assert!(err.starts_with("key `message`: must not be empty"), "{err}");
        let err = responder("message = \"SERVER_IP:?\"")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("key `message`: \"SERVER_IP:?\" starts with `response_prefix`"),
            "{err}"
        );
    }

    #[test]
    fn registering_twice_is_refused() {
        let mut registry = Registry::new();
        register(&mut registry).unwrap();
        assert_eq!(register(&mut registry), Err(RegistryError::Taken(NAME)));
    }

    #[test]
    fn respond_allocates_nothing_once_the_buffer_has_grown() {
        let r = responder("").unwrap();
        let request = Request::new(
            b"HELLO_DISCOVERY",
            "192.0.2.7:5000".parse().unwrap(),
            "192.0.2.1:9999".parse().unwrap(),
            "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe".parse().unwrap(),
        );
        // As the receive loop does: one buffer, cleared between datagrams.
        let mut reply = Vec::with_capacity(64);
        let info = allocation_counter::measure(|| {
            for _ in 0..1_000 {
                reply.clear();
                assert_eq!(r.respond(&request, &mut reply), Action::Reply);
            }
        });
        assert_eq!(info.count_total, 0, "{info:?}");
        assert_eq!(reply, b"HELLO_FROM:2001:db8:ffff:ffff:ffff:ffff:ffff:fffe");
    }
}
