//! Beyond one LAN: the host's service and the HTTP registrations published
//! into registries a cluster keeps consistent (etcd), in the naming format
//! their clients resolve natively; and `discover --etcd`, which lists what
//! is published.

mod browse;
mod child;
mod config;
mod etcd;
mod published;
mod publisher;

pub use browse::{browse_etcd, EtcdDiscovery, EtcdOptions, Published as PublishedService};
pub(crate) use child::RegistriesChild;
pub(crate) use config::{problems, DEFAULT_PREFIX};
pub use config::{Etcd, Registry};
pub use publisher::RegistryStatus;
