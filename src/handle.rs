//! How a running [`crate::Service`] is steered and heard from, by whoever
//! runs it: a [`Handle`] asks it for its status or to reload; an
//! [`Observer`] hears its lifecycle.

use std::net::SocketAddr;

use tokio::sync::{mpsc, oneshot};

use crate::duration::HumanDuration;
use crate::services::{Listed, Put, Refused, Registration};
use crate::status::{LastReload, Status};

/// Hears about the service's lifecycle: the command line prints and tells
/// systemd; a test may record. Every method does nothing by default.
pub trait Observer: Send + Sync + 'static {
    /// The service answers on `addrs` (once).
    fn ready(&self, addrs: &[SocketAddr]) {
        let _ = addrs;
    }
    /// A reload began.
    fn reloading(&self) {}
    /// A reload ended.
    fn reloaded(&self, result: &LastReload) {
        let _ = result;
    }
    /// The service is stopping.
    fn stopping(&self) {}
    /// The `duration` timer is set.
    fn timer_set(&self, after: HumanDuration) {
        let _ = after;
    }
    /// The `duration` elapsed; the service stops.
    fn duration_expired(&self, after: HumanDuration) {
        let _ = after;
    }
}

/// An observer that hears nothing.
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {}

/// What a [`Handle`] asks of a running service.
#[derive(Debug)]
pub(crate) enum Request {
    /// Its status document.
    Status(oneshot::Sender<Status>),
    /// Read the configuration again.
    Reload,
    /// Read the configuration again, and answer with the result.
    ReloadAndReport(oneshot::Sender<crate::status::LastReload>),
    /// Register or refresh a service; `None` when the cap is reached.
    Register(Registration, oneshot::Sender<Result<Put, Refused>>),
    /// A heartbeat for the service of this id; false when unknown.
    Pass(String, oneshot::Sender<bool>),
    /// Remove the service of this id; false when unknown.
    Deregister(String, oneshot::Sender<bool>),
    /// The registered services.
    Services(oneshot::Sender<Vec<Listed>>),
}

/// The requests a running service takes from its [`Handle`]s.
#[derive(Debug)]
pub struct Requests(pub(crate) mpsc::UnboundedReceiver<Request>);

/// Asks a running service for its status, or to reload.
#[derive(Debug, Clone)]
pub struct Handle(mpsc::UnboundedSender<Request>);

impl Handle {
    /// A handle, and the requests to give the service it is for.
    pub fn new() -> (Self, Requests) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), Requests(rx))
    }

    /// The status document; `None` once the service is gone.
    pub async fn status(&self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.0.send(Request::Status(tx)).ok()?;
        rx.await.ok()
    }

    /// Makes the service read its configuration again (as SIGHUP does);
    /// the result shows in the status document and the observer.
    pub fn reload(&self) {
        let _ = self.0.send(Request::Reload);
    }
}
