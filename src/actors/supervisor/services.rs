//! The supervisor keeps the registration table: it alone changes it, so a
//! registration, a lapsed heartbeat and a reload never race. Each change
//! is published at once, before the request that made it is answered:
//! into the Services store, into the responder chain (rebuilt for the
//! responders that list services), and to every child (the mDNS
//! announcer, the registry publishers).

use std::sync::Arc;
use std::time::Instant;

use actix::{AsyncContext, Context, SpawnHandle};
use tracing::{debug, info, warn};

use super::SupervisorActor;
use crate::config::Config;
use crate::messages::Notice;
use crate::responders::Snapshot;
use crate::services::{Put, Registration, Registrations, Store};

/// The registration table, its store, and the timer of its next expiry.
#[derive(Default)]
pub(super) struct Registry {
    pub(super) table: Registrations,
    pub(super) store: Store,
    expiry: Option<(Instant, SpawnHandle)>,
}

impl SupervisorActor {
    /// Registers or refreshes a service; `None` when the cap is reached.
    pub(super) fn register(
        &mut self,
        registration: Registration,
        ctx: &mut Context<Self>,
    ) -> Option<Put> {
        let cap = self.config.http.max_registrations;
        let (id, name) = (
            registration.service.id.clone(),
            registration.service.name.clone(),
        );
        let Some(put) = self.services.table.put(registration, Instant::now(), cap) else {
            warn!(%id, %name, cap, "registration refused: http.max_registrations reached");
            return None;
        };
        match put {
            Put::Created => info!(%id, %name, "service registered"),
            Put::Updated => info!(%id, %name, "service registration updated"),
            Put::Refreshed => debug!(%id, "service registration refreshed"),
        }
        self.services_changed(ctx);
        Some(put)
    }

    /// A heartbeat; false for an unknown id.
    pub(super) fn pass(&mut self, id: &str, ctx: &mut Context<Self>) -> bool {
        let known = self.services.table.pass(id, Instant::now());
        self.services_changed(ctx);
        known
    }

    /// Removes a service; false for an unknown id.
    pub(super) fn deregister(&mut self, id: &str, ctx: &mut Context<Self>) -> bool {
        let known = self.services.table.remove(id);
        if known {
            info!(%id, "service deregistered");
        }
        self.services_changed(ctx);
        known
    }

    /// Removes the services whose heartbeat is late.
    fn expire(&mut self, ctx: &mut Context<Self>) {
        self.services.expiry = None;
        for service in self.services.table.expire(Instant::now()) {
            info!(id = %service.id, name = %service.name, "service registration expired: no heartbeat within its ttl");
        }
        self.services_changed(ctx);
    }

    /// Publishes the table if its list changed, and sets the timer for
    /// the next expiry.
    fn services_changed(&mut self, ctx: &mut Context<Self>) {
        if self.services.table.generation() != self.services.store.load().generation {
            let services = Arc::new(self.services.table.services());
            self.services.store.store(Arc::clone(&services));
            let current = self.shared.snapshot.load_full();
            let fresh = self.with_current_services(current, &self.config);
            self.shared.snapshot.store(fresh);
            self.children.notify(&Notice::Services(services));
        }
        let next = self.services.table.next_deadline();
        let scheduled = self.services.expiry.as_ref().map(|(at, _)| *at);
        if let Some(next) = next.filter(|n| scheduled.is_none_or(|s| *n < s)) {
            if let Some((_, handle)) = self.services.expiry.take() {
                ctx.cancel_future(handle);
            }
            let after = next.saturating_duration_since(Instant::now());
            let handle = ctx.run_later(after, |sup, ctx| sup.expire(ctx));
            self.services.expiry = Some((next, handle));
        }
    }

    /// `snapshot` (for `config`), built again for the registered services
    /// if it was built with other ones, such as a reload's chain, built
    /// while they changed. The configuration was validated with this
    /// chain, so a rebuild fails only in a plugin that refuses the
    /// services: the chain is kept as it is then, and the failure logged.
    pub(super) fn with_current_services(
        &self,
        snapshot: Arc<Snapshot>,
        config: &Config,
    ) -> Arc<Snapshot> {
        let services = self.services.store.load_full();
        if snapshot.services.generation == services.generation {
            return snapshot;
        }
        match snapshot.with_services(config, &self.registry, &self.source, &services) {
            Ok(rebuilt) => Arc::new(rebuilt),
            Err(errors) => {
                warn!(%errors, "a responder cannot list the registered services; it keeps the ones it had");
                snapshot
            }
        }
    }
}
