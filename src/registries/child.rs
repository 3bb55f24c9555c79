//! The registry publishers as a child of the supervisor: one publisher (a
//! thread of its own) per `[[registries]]` entry, started once the service
//! answers, told of every applied configuration and registration change,
//! replaced when its entry changes, and stopped (its lease revoked) when
//! the service stops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, Context, Handler, Recipient};
use tracing::warn;

use super::config::Registry;
use super::published::Inputs;
use super::publisher::Publisher;
use crate::actors::{Child, ChildContext, Restart, SupervisorActor};
use crate::config::Config;
use crate::lock;
use crate::messages::{ChildExited, Notice};
use crate::services::Services;
use crate::status::Status;

const NAME: &str = "registry publishers";

/// How long stopping waits for the leases to be revoked, in all.
const REVOKE_WAIT: Duration = Duration::from_secs(2);

/// The publishers, shared between the child (which stops them when the
/// service stops, and reports them) and its actor.
type Shared = Arc<Mutex<Vec<Publisher>>>;

/// The registry publishers, as the supervisor's child.
#[derive(Default)]
pub(crate) struct RegistriesChild {
    shared: Shared,
}

impl Child for RegistriesChild {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The service answers without them: retried with backoff, never
    /// given up (each publisher retries etcd on its own as well).
    fn restart(&self) -> Restart {
        Restart::persistent()
    }

    fn start(&mut self, ctx: &ChildContext) -> Recipient<Notice> {
        RegistriesActor {
            shared: Arc::clone(&self.shared),
            config: Arc::clone(&ctx.config),
            bound: ctx.bound.clone(),
            services: ctx.services.load_full(),
            supervisor: ctx.supervisor.clone(),
            failed: None,
        }
        .start()
        .recipient()
    }

    fn stop(&mut self) {
        let publishers = std::mem::take(&mut *lock(&self.shared));
        for publisher in &publishers {
            publisher.stop();
        }
        let deadline = Instant::now() + REVOKE_WAIT;
        for publisher in &publishers {
            publisher.wait(deadline);
        }
    }

    fn status(&self, status: &mut Status) {
        status.registries = lock(&self.shared).iter().map(Publisher::status).collect();
    }
}

/// Keeps one publisher per configured registry, each told what to publish.
struct RegistriesActor {
    shared: Shared,
    config: Arc<Config>,
    bound: Vec<SocketAddr>,
    services: Arc<Services>,
    supervisor: Addr<SupervisorActor>,
    failed: Option<String>,
}

impl RegistriesActor {
    fn sync(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.try_sync() {
            warn!(error = %e, "registry publishers failed");
            self.failed = Some(e);
            ctx.stop();
        }
    }

    fn try_sync(&mut self) -> Result<(), String> {
        let inputs = Inputs {
            config: Arc::clone(&self.config),
            bound: self.bound.clone(),
            services: Arc::clone(&self.services),
        };
        let wanted: Vec<&super::config::Etcd> = self
            .config
            .registries
            .iter()
            .map(|r| match r {
                Registry::Etcd(etcd) => etcd,
            })
            .collect();
        let mut publishers = lock(&self.shared);
        // An entry changed but for the same cluster and prefix: its
        // publisher goes on with it (a new ttl moves the keys to a new
        // lease first), so consumers never see them go. An entry gone, or
        // moved elsewhere: its publisher revokes its lease and ends in the
        // background (never waited for here: etcd may hang).
        for publisher in publishers.iter_mut() {
            let same = wanted.iter().find(|e| e.same_place(&publisher.etcd));
            if let Some(&etcd) = same.filter(|&&e| e != &publisher.etcd) {
                publisher.reconfigure(etcd.clone());
            }
        }
        publishers.retain(|p| {
            let keep = wanted.contains(&&p.etcd);
            if !keep {
                p.stop();
            }
            keep
        });
        if inputs.bound.is_empty() {
            return Ok(());
        }
        for etcd in wanted {
            match publishers.iter().find(|p| &p.etcd == etcd) {
                Some(publisher) => publisher.update(inputs.clone()),
                None => publishers.push(
                    Publisher::start(etcd.clone(), inputs.clone())
                        .map_err(|e| format!("cannot start an etcd publisher thread: {e}"))?,
                ),
            }
        }
        Ok(())
    }
}

impl Actor for RegistriesActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sync(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.supervisor.do_send(ChildExited {
            child: NAME,
            error: self.failed.take(),
        });
    }
}

impl Handler<Notice> for RegistriesActor {
    type Result = ();

    fn handle(&mut self, notice: Notice, ctx: &mut Context<Self>) {
        match notice {
            Notice::Ready { addrs } => self.bound = addrs,
            Notice::Applied(config) => self.config = config,
            Notice::Services(services) => self.services = services,
            Notice::Reload(_) => return,
        }
        self.sync(ctx);
    }
}
