//! The plugin API of discoveryd.
//!
//! A responder plugin is a crate that depends on this one, and never on the
//! daemon itself. It implements [`Responder`] and exposes a
//! `register(&mut Registry)` function. The `discoveryd` binary calls it
//! behind a cargo feature, or a binary of your own does, in its `main`:
//! `discoveryd::cli::main_with(|registry| my_plugin::register(registry))`.
//!
//! The receive loop calls [`Responder::respond`] for every datagram, in
//! `[[responders]]` order, until one answers or drops.
//!
//! - **Concurrency.** `respond` runs concurrently on every worker thread
//!   (one per socket, `workers` of them): take `&self` state that is
//!   immutable or atomic, never a lock a datagram would wait on.
//! - **No blocking, no allocation.** Write the reply into the buffer you
//!   are given, whose capacity is kept from one datagram to the next.
//! - **Panics** are caught, and restart the listener.
//! - **Registered services.** [`ResponderContext::services`] lists the
//!   services registered with the daemon (over HTTP) when the responder is
//!   built; a responder that reads them is built again whenever they
//!   change, and the others are kept.
//! - **Size.** [`Request::max_reply`] is the longest answer the daemon's
//!   defences will send for the request: anything longer is dropped.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::de::DeserializeOwned;

/// The TOML types a plugin's options come in, re-exported so that plugins
/// need no `toml` dependency of their own (and the same version).
pub use toml::{Table, Value};

/// One received datagram, as a responder sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Request<'a> {
    /// The datagram's payload, exactly as received (never truncated).
    pub payload: &'a [u8],
    /// The address and port the datagram came from.
    pub peer: SocketAddr,
    /// The local address and port the datagram arrived on.
    pub local: SocketAddr,
    /// The address to advertise: `advertise_ip` when configured, otherwise
    /// the local address the datagram arrived on.
    pub advertised_ip: IpAddr,
    /// The longest answer, in bytes, that the daemon will send for this
    /// request: longer answers are dropped (the amplification cap, at most
    /// [`MAX_DATAGRAM`]). A responder with an answer of variable size
    /// fits it within this.
    pub max_reply: usize,
}

/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;

impl<'a> Request<'a> {
    /// A request (for the daemon, and for plugins' own tests), whose
    /// answer may be up to [`MAX_DATAGRAM`] bytes.
    pub fn new(
        payload: &'a [u8],
        peer: SocketAddr,
        local: SocketAddr,
        advertised_ip: IpAddr,
    ) -> Self {
        Self {
            payload,
            peer,
            local,
            advertised_ip,
            max_reply: MAX_DATAGRAM,
        }
    }

    /// The same request, whose answer may be at most `max_reply` bytes.
    pub fn with_max_reply(self, max_reply: usize) -> Self {
        Self {
            max_reply: max_reply.min(MAX_DATAGRAM),
            ..self
        }
    }
}

/// What a responder decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the bytes written to the reply buffer back to the peer.
    Reply,
    /// Not mine: let the next responder in the chain look at it.
    Pass,
    /// Answer nothing, and stop the chain here.
    Drop,
}

/// A link of the responder chain. `respond` runs concurrently on every
/// worker thread: see the crate documentation.
pub trait Responder: Send + Sync + 'static {
    /// Decides about one request. On [`Action::Reply`], `reply` holds the
    /// answer; it is empty when the call starts.
    fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Action;
}

/// Settings of the whole daemon that responders may build their answers from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Globals {
    /// The discovery request payload (`message`).
    pub message: String,
    /// The prefix of the classic answer (`response_prefix`).
    pub response_prefix: String,
    /// The service port to advertise (`service_port`), if any.
    pub service_port: Option<u16>,
}

impl Globals {
    /// The daemon-wide settings (for the daemon, and for plugins' tests).
    pub fn new(
        message: impl Into<String>,
        response_prefix: impl Into<String>,
        service_port: Option<u16>,
    ) -> Self {
        Self {
            message: message.into(),
            response_prefix: response_prefix.into(),
            service_port,
        }
    }
}

/// A service registered with the daemon (`PUT /v1/services/{id}`), as
/// responders may list it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Service {
    /// The id it was registered under (unique).
    pub id: String,
    /// Its name (several instances may share one).
    pub name: String,
    /// Its address; `None`: this host, whose address is the one the
    /// request arrived on ([`Request::advertised_ip`]), as for the
    /// daemon's own service.
    pub address: Option<IpAddr>,
    /// Its port.
    pub port: u16,
    /// Free-form `key = value` metadata.
    pub txt: BTreeMap<String, String>,
}

impl Service {
    /// A service (for the daemon, and for plugins' own tests).
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        address: Option<IpAddr>,
        port: u16,
        txt: BTreeMap<String, String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            address,
            port,
            txt,
        }
    }
}

/// What a plugin factory gets to build one responder: its own config
/// section, the daemon-wide settings, the registered services, and the
/// name to log under.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResponderContext<'a> {
    /// The name to log under, such as `responders[1] (json)`.
    pub name: &'a str,
    /// This responder's `[[responders]]` table, without its `type` key.
    pub options: &'a Table,
    /// The daemon-wide settings.
    pub globals: &'a Globals,
    services: &'a [Service],
    /// Set once the factory has read the services.
    read_services: Option<&'a Cell<bool>>,
}

impl<'a> ResponderContext<'a> {
    /// A context (for the daemon, and for plugins' own tests), with no
    /// registered service.
    pub fn new(name: &'a str, options: &'a Table, globals: &'a Globals) -> Self {
        Self {
            name,
            options,
            globals,
            services: &[],
            read_services: None,
        }
    }

    /// The same context with these registered services; `read` is set when
    /// the factory reads them ([`ResponderContext::services`]), so that the
    /// daemon builds again, when they change, only the responders that
    /// read them.
    pub fn with_services(self, services: &'a [Service], read: Option<&'a Cell<bool>>) -> Self {
        Self {
            services,
            read_services: read,
            ..self
        }
    }

    /// The services registered with the daemon now, sorted by id. A
    /// responder that calls this is built again whenever they change.
    pub fn services(&self) -> &'a [Service] {
        if let Some(read) = self.read_services {
            read.set(true);
        }
        self.services
    }

    /// Deserializes this responder's options into the plugin's own config
    /// struct (which should use `#[serde(deny_unknown_fields)]`).
    pub fn options<T: DeserializeOwned>(&self) -> Result<T, BuildError> {
        Value::Table(self.options.clone())
            .try_into()
            .map_err(|e: toml::de::Error| BuildError::Options(e.message().to_owned()))
    }
}

/// Why a responder could not be built from its config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The options did not deserialize (unknown key, wrong type, ...).
    #[error("{0}")]
    Options(String),
    /// The options deserialized but make no sense.
    #[error("key `{key}`: {message}")]
    Invalid {
        /// The offending key inside the responder's table.
        key: String,
        /// What is wrong with it, and the fix.
        message: String,
    },
}

/// Builds a responder from its context.
pub type Factory = fn(&ResponderContext<'_>) -> Result<Box<dyn Responder>, BuildError>;

/// Why a responder type could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Another responder type has the name already.
    #[error("the responder type `{0}` is registered twice; give one of them another name")]
    Taken(&'static str),
}

/// The responder types a binary knows, by the name used in `type = "..."`.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Factory>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `name` available as a `[[responders]]` type. A name already
    /// taken is an error, never a silent replacement.
    pub fn register(&mut self, name: &'static str, factory: Factory) -> Result<(), RegistryError> {
        if self.factories.contains_key(name) {
            return Err(RegistryError::Taken(name));
        }
        self.factories.insert(name, factory);
        Ok(())
    }

    /// The factory registered under `name`.
    pub fn get(&self, name: &str) -> Option<Factory> {
        self.factories.get(name).copied()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }
}

/// The README's plugin guide, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Responder for Echo {
        fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Action {
            reply.extend_from_slice(request.payload);
            Action::Reply
        }
    }

    #[test]
    fn registry_lists_sorted_names_and_refuses_a_taken_one() {
        let mut registry = Registry::new();
        registry.register("zeta", |_| Ok(Box::new(Echo))).unwrap();
        registry.register("alpha", |_| Ok(Box::new(Echo))).unwrap();
        assert_eq!(registry.names().collect::<Vec<_>>(), ["alpha", "zeta"]);
        assert!(registry.get("alpha").is_some());
        assert!(registry.get("beta").is_none());
        assert_eq!(
            registry.register("alpha", |_| Ok(Box::new(Echo))),
            Err(RegistryError::Taken("alpha"))
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Opts {
        #[allow(dead_code)]
        message: String,
    }

    #[test]
    fn options_reject_unknown_keys_by_name() {
        let mut table = Table::new();
        table.insert("message".into(), "HI".into());
        table.insert("bogus".into(), 1.into());
        let globals = Globals::new("M", "P", None);
        let ctx = ResponderContext::new("t", &table, &globals);
        let err = ctx.options::<Opts>().unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
