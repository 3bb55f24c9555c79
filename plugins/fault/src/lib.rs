//! The `fault` responder: a test plugin that panics when it receives its
//! trigger message, to exercise restart-on-failure end to end.
//!
//! It does nothing unless a `[[responders]]` entry names it:
//!
//! ```toml
//! [[responders]]
//! type = "fault"
//! trigger = "PANIC_NOW"
//! ```
//!
//! Every other datagram passes to the next responder.

use discoveryd_api::{
    Action, BuildError, Registry, RegistryError, Request, Responder, ResponderContext,
};
use serde::Deserialize;

/// The name this plugin registers under.
pub const NAME: &str = "fault";

/// The `[[responders]]` options of `type = "fault"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The payload that makes this responder panic.
    #[serde(default = "default_trigger")]
    trigger: String,
}

fn default_trigger() -> String {
    "DISCOVERYD_FAULT".to_owned()
}

/// Registers the `fault` responder.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(NAME, build)
}

fn build(ctx: &ResponderContext<'_>) -> Result<Box<dyn Responder>, BuildError> {
    let options: Options = ctx.options()?;
    if options.trigger.is_empty() {
        return Err(BuildError::Invalid {
            key: "trigger".into(),
            message: "must not be empty; set the payload that triggers the panic".into(),
        });
    }
    Ok(Box::new(Fault {
        trigger: options.trigger.into_bytes(),
    }))
}

struct Fault {
    trigger: Vec<u8>,
}

impl Responder for Fault {
    fn respond(&self, request: &Request<'_>, _reply: &mut Vec<u8>) -> Action {
        if request.payload == self.trigger.as_slice() {
            panic!("fault responder triggered by {}", request.peer);
        }
        Action::Pass
    }
}
