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
use crate::services::{Put, Refused, Registration, Registrations, Store};

/// The most registration events logged one by one in a log period; past
/// it they are counted, and summed up at the end of the period, so that a
/// churning client cannot flood the log.
const LOGGED_PER_PERIOD: u32 = 20;

/// The registration table, its store, the timer of its next expiry, and
/// what the log was told this period.
#[derive(Default)]
pub(super) struct Registry {
    pub(super) table: Registrations,
    pub(super) store: Store,
    expiry: Option<(Instant, SpawnHandle)>,
    /// Events logged one by one this period.
    logged: u32,
    /// Events past the limit this period.
    unlogged: u64,
    /// Registrations refused this period.
    refused: u64,
}

impl Registry {
    /// Whether an event may be logged one by one now.
    fn loggable(&mut self) -> bool {
        if self.logged < LOGGED_PER_PERIOD {
            self.logged += 1;
            true
        } else {
            self.unlogged += 1;
            false
        }
    }
}

impl SupervisorActor {
    /// Registers or refreshes a service, unless the table refuses it, or
    /// its id is this host's own mDNS instance name (which it would take
    /// over).
    pub(super) fn register(
        &mut self,
        registration: Registration,
        ctx: &mut Context<Self>,
    ) -> Result<Put, Refused> {
        let cap = self.config.http.max_registrations;
        let (id, name) = (
            registration.service.id.clone(),
            registration.service.name.clone(),
        );
        let own = crate::mdns::own_instance(&self.config);
        if own.eq_ignore_ascii_case(&id) {
            return Err(Refused::OwnName { name: own });
        }
        let put = match self.services.table.put(registration, Instant::now(), cap) {
            Ok(put) => put,
            Err(refused) => {
                self.services.refused += 1;
                debug!(%id, ?refused, "registration refused");
                return Err(refused);
            }
        };
        let loggable = put != Put::Refreshed && self.services.loggable();
        match put {
            Put::Created if loggable => info!(%id, name = ?name, "service registered"),
            Put::Updated if loggable => info!(%id, name = ?name, "service registration updated"),
            _ => debug!(%id, ?put, "service registration"),
        }
        self.services_changed(ctx);
        Ok(put)
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
        if known && self.services.loggable() {
            info!(%id, "service deregistered");
        }
        self.services_changed(ctx);
        known
    }

    /// Removes the services whose heartbeat is late.
    fn expire(&mut self, ctx: &mut Context<Self>) {
        self.services.expiry = None;
        for service in self.services.table.expire(Instant::now()) {
            if self.services.loggable() {
                info!(id = %service.id, name = ?service.name, "service registration expired: no heartbeat within its ttl");
            }
        }
        self.services_changed(ctx);
    }

    /// Sums up the registration events not logged one by one, and the
    /// refusals, of the period that ends.
    pub(super) fn log_registrations(&mut self) {
        let r = &mut self.services;
        if r.unlogged > 0 {
            info!(
                more = r.unlogged,
                registered = r.table.len(),
                "service registrations changed more often than logged one by one"
            );
        }
        if r.refused > 0 {
            warn!(
                refused = r.refused,
                registered = r.table.len(),
                cap = self.config.http.max_registrations,
                "service registrations refused (the cap, or an id taken in another case)"
            );
        }
        (r.logged, r.unlogged, r.refused) = (0, 0, 0);
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
