//! The Services store: the services registered over HTTP, which every
//! advertiser derives its view from (the json responder's `services`, an
//! mDNS instance each, the registry publishers), so that a registration,
//! a heartbeat that lapses or a deletion reaches all of them at once.
//!
//! The table with its deadlines ([`Registrations`]) belongs to the
//! supervisor, which alone changes it; what it publishes is an immutable
//! [`Services`], swapped atomically, that readers load without a lock.
//! The host's own service is not in it: each advertiser derives that one
//! from the configuration, as before registrations existed.

mod registrations;
mod spec;

use std::sync::Arc;

use arc_swap::ArcSwap;
pub(crate) use discoveryd_api::Service;

pub(crate) use registrations::{Listed, Put, Refused, Registrations};
pub(crate) use spec::{check_id, check_name, Registration, SpecError};

/// The registered services at one moment, sorted by id.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Services {
    /// Grows by one with every change of the list (never for a heartbeat).
    pub(crate) generation: u64,
    /// The services.
    pub(crate) list: Vec<Service>,
}

/// The store: the current [`Services`], swapped whole on every change.
pub(crate) type Store = Arc<ArcSwap<Services>>;
