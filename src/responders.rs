//! The responder chain and the snapshot the receive loop reads.
//!
//! A [`Snapshot`] is immutable: a reload builds a new one (reusing the
//! responders whose config did not change) and swaps it in atomically, so
//! the receive loop never takes a lock or a message per packet.

use std::cell::Cell;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use discoveryd_api::{Action, Globals, Registry, Request, Responder, ResponderContext};

use crate::config::{Config, ConfigErrors, ConfigSource};
use crate::policy::Policy;
use crate::services::Services;

/// The registry of every responder type this binary was built with.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    let built_in = (|| {
        crate::protocol::register(&mut registry)?;
        #[cfg(feature = "json")]
        discoveryd_responder_json::register(&mut registry)?;
        #[cfg(feature = "fault")]
        discoveryd_responder_fault::register(&mut registry)?;
        Ok::<(), discoveryd_api::RegistryError>(())
    })();
    built_in.expect("the built-in responder types have distinct names");
    registry
}

/// One built link of the chain, with what it was built from.
struct Link {
    name: String,
    built_from: (String, toml::Table, Globals),
    /// The generation of the services it read, if it read them.
    read_services: Option<u64>,
    responder: Arc<dyn Responder>,
}

/// What the chain did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The reply buffer holds the answer.
    Replied,
    /// No responder answered (all passed, or one dropped it).
    Ignored,
    /// A responder panicked; the listener must be restarted.
    Panicked {
        /// The responder's name, such as `responders[1] (fault)`.
        responder: String,
        /// The panic message.
        message: String,
    },
}

/// Everything the receive loop needs, swapped whole on reload.
pub(crate) struct Snapshot {
    links: Vec<Link>,
    /// The largest request accepted, in bytes.
    pub buffer_size: usize,
    /// The configured `advertise_ip`, if any.
    pub advertise_ip: Option<IpAddr>,
    /// The defences.
    pub(crate) policy: Policy,
    /// Receive loops per address: each gets this share of the global rate.
    pub(crate) workers: usize,
    /// The longest random delay before an answer (zero: none).
    pub(crate) reply_jitter: std::time::Duration,
    /// The registered services the chain was built with.
    pub(crate) services: Arc<Services>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("responders", &self.describe())
            .field("buffer_size", &self.buffer_size)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The snapshot for `config`, before any service is registered.
    pub(crate) fn first(
        config: &Config,
        registry: &Registry,
        source: &ConfigSource,
    ) -> Result<Self, ConfigErrors> {
        Self::build(config, registry, source, None, &Arc::default())
    }

    /// Builds the snapshot for `config` and the registered `services`,
    /// reusing the responders of `previous` whose type, options and global
    /// settings are unchanged, and that did not read the services or read
    /// the same ones.
    pub(crate) fn build(
        config: &Config,
        registry: &Registry,
        source: &ConfigSource,
        previous: Option<&Snapshot>,
        services: &Arc<Services>,
    ) -> Result<Self, ConfigErrors> {
        let globals = config.globals();
        let mut errors = Vec::new();
        let mut links = Vec::with_capacity(config.responders.len());
        for (i, entry) in config.responders.iter().enumerate() {
            let key = format!("responders[{i}]");
            let name = format!("{key} ({})", entry.kind);
            let built_from = (entry.kind.clone(), entry.options.clone(), globals.clone());
            let reused = previous.and_then(|p| {
                p.links.iter().find(|l| {
                    l.built_from == built_from
                        && l.read_services.is_none_or(|g| g == services.generation)
                })
            });
            let link = match reused {
                Some(l) => Link {
                    name,
                    built_from,
                    read_services: l.read_services,
                    responder: Arc::clone(&l.responder),
                },
                None => {
                    let Some(factory) = registry.get(&entry.kind) else {
                        let known: Vec<_> = registry.names().collect();
                        errors.push(source.error(
                            &key,
                            format!(
                                "unknown responder type `{}`; known types: {}",
                                entry.kind,
                                known.join(", ")
                            ),
                        ));
                        continue;
                    };
                    let read = Cell::new(false);
                    let ctx = ResponderContext::new(&name, &entry.options, &globals)
                        .with_services(&services.list, Some(&read));
                    match factory(&ctx) {
                        Ok(r) => Link {
                            name,
                            built_from,
                            read_services: read.get().then_some(services.generation),
                            responder: Arc::from(r),
                        },
                        Err(e) => {
                            errors.push(source.error(&key, e.to_string()));
                            continue;
                        }
                    }
                }
            };
            links.push(link);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Self {
            links,
            buffer_size: config.buffer_size,
            advertise_ip: config.advertise_ip,
            policy: Policy::new(&config.security, &config.response_prefix),
            workers: config.workers(),
            reply_jitter: config.reply_jitter.map(|j| j.get()).unwrap_or_default(),
            services: Arc::clone(services),
        })
    }

    /// The same chain for `config`, built again for new `services` (only
    /// the responders that read them are rebuilt).
    pub(crate) fn with_services(
        &self,
        config: &Config,
        registry: &Registry,
        source: &ConfigSource,
        services: &Arc<Services>,
    ) -> Result<Self, ConfigErrors> {
        Self::build(config, registry, source, Some(self), services)
    }

    /// Asks the chain about one request. Panics in responders are caught
    /// and reported, never propagated.
    pub(crate) fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Outcome {
        for link in &self.links {
            reply.clear();
            match catch_unwind(AssertUnwindSafe(|| link.responder.respond(request, reply))) {
                Ok(Action::Reply) => return Outcome::Replied,
                Ok(Action::Pass) => continue,
                Ok(Action::Drop) => return Outcome::Ignored,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic payload".to_owned());
                    return Outcome::Panicked {
                        responder: link.name.clone(),
                        message,
                    };
                }
            }
        }
        reply.clear();
        Outcome::Ignored
    }

    /// The chain's responder types, in order, for display.
    pub(crate) fn describe(&self) -> String {
        self.links
            .iter()
            .map(|l| l.built_from.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ResponderConfig;

    fn config_with(responders: &[(&str, &str)]) -> Config {
        Config {
            responders: responders
                .iter()
                .map(|(kind, options)| ResponderConfig {
                    kind: (*kind).into(),
                    options: options.parse().unwrap(),
                })
                .collect(),
            ..Config::default()
        }
    }

    fn ask(snapshot: &Snapshot, payload: &[u8]) -> (Outcome, Vec<u8>) {
        let request = Request::new(
            payload,
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:9999".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        );
        let mut reply = b"stale".to_vec();
        (snapshot.respond(&request, &mut reply), reply)
    }

    #[test]
    fn chain_asks_responders_in_order() {
        let config = config_with(&[("json", "message = \"DISCOVER_SERVER\""), ("classic", "")]);
        let s = Snapshot::first(&config, &registry(), &ConfigSource::default()).unwrap();
        assert!(ask(&s, b"DISCOVER_SERVER").1.starts_with(b"{"));
        let config = config_with(&[("classic", ""), ("json", "message = \"DISCOVER_SERVER\"")]);
        let s = Snapshot::first(&config, &registry(), &ConfigSource::default()).unwrap();
        assert_eq!(
            ask(&s, b"DISCOVER_SERVER"),
            (Outcome::Replied, b"SERVER_IP:127.0.0.1".to_vec())
        );
        assert_eq!(ask(&s, b"nope"), (Outcome::Ignored, Vec::new()));
    }

    #[test]
    fn a_panicking_responder_is_caught_and_named() {
        let config = config_with(&[("fault", "trigger = \"BOOM\""), ("classic", "")]);
        let s = Snapshot::first(&config, &registry(), &ConfigSource::default()).unwrap();
        let (outcome, _) = ask(&s, b"BOOM");
        assert!(
            matches!(&outcome, Outcome::Panicked { responder, .. } if responder == "responders[0] (fault)"),
            "{outcome:?}"
        );
        assert_eq!(ask(&s, b"DISCOVER_SERVER").0, Outcome::Replied);
    }

    #[test]
    fn unknown_types_are_config_errors_listing_the_known_ones() {
        let config = config_with(&[("jsno", "")]);
        let err = Snapshot::first(&config, &registry(), &ConfigSource::file("f.toml"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("f.toml: key `responders[0]`: unknown responder type `jsno`"),
            "{err}"
        );
        assert!(err.contains("classic, fault, json"), "{err}");
    }

    #[test]
    fn a_rebuild_reuses_unchanged_responders() {
        let registry = registry();
        let source = ConfigSource::default();
        let config = config_with(&[("json", "name = \"a\""), ("classic", "")]);
        let first = Snapshot::first(&config, &registry, &source).unwrap();
        let config = config_with(&[("json", "name = \"b\""), ("classic", "")]);
        let second =
            Snapshot::build(&config, &registry, &source, Some(&first), &Arc::default()).unwrap();
        assert!(!Arc::ptr_eq(
            &first.links[0].responder,
            &second.links[0].responder
        ));
        assert!(Arc::ptr_eq(
            &first.links[1].responder,
            &second.links[1].responder
        ));
        // A global setting the classic responder uses forces its rebuild.
        let mut config = config;
        config.message = "OTHER".into();
        let third =
            Snapshot::build(&config, &registry, &source, Some(&second), &Arc::default()).unwrap();
        assert!(!Arc::ptr_eq(
            &second.links[1].responder,
            &third.links[1].responder
        ));
    }

    #[test]
    fn new_services_rebuild_only_the_responders_that_read_them() {
        let registry = registry();
        let source = ConfigSource::default();
        let config = config_with(&[("classic", ""), ("json", "")]);
        let first = Snapshot::first(&config, &registry, &source).unwrap();
        let services = Arc::new(Services {
            generation: 1,
            list: vec![crate::services::Service::new(
                "a",
                "api",
                None,
                8080,
                Default::default(),
            )],
        });
        let second = first
            .with_services(&config, &registry, &source, &services)
            .unwrap();
        assert!(Arc::ptr_eq(
            &first.links[0].responder,
            &second.links[0].responder
        ));
        assert!(!Arc::ptr_eq(
            &first.links[1].responder,
            &second.links[1].responder
        ));
        let mut padded = b"DISCOVER_JSON".to_vec();
        padded.resize(200, b' ');
        let (_, reply) = ask(&second, &padded);
        let doc: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(doc["services"][0]["id"], "a");
        // The same services again: nothing is rebuilt.
        let third = second
            .with_services(&config, &registry, &source, &services)
            .unwrap();
        assert!(Arc::ptr_eq(
            &second.links[1].responder,
            &third.links[1].responder
        ));
    }
}
