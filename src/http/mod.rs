//! The HTTP side: health for orchestrators, metrics for Prometheus, and
//! the status and reload of the control socket, over actix-web.

mod child;
mod config;
mod metrics;
mod routes;

pub(crate) use child::HttpChild;
pub use config::Http;
