//! The mDNS announcer as a child of the supervisor: it starts advertising
//! once the service answers, follows every applied configuration, and
//! sends its goodbyes when the service stops.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Recipient};
use tracing::warn;

use super::announcer::{Advert, Announcer, Selection};
use crate::actors::{Child, ChildContext, Restart, SupervisorActor};
use crate::config::Config;
use crate::lock;
use crate::mdns::Mdns;
use crate::messages::{ChildExited, Notice};
use crate::services::{Service, Services};
use crate::status::Status;

const NAME: &str = "mdns announcer";

/// The announcer, shared between the child (which stops it when the
/// service stops) and its actor (which follows the configuration).
type Shared = Arc<Mutex<Option<Announcer>>>;

/// The mDNS announcer, as the supervisor's child.
#[derive(Default)]
pub(crate) struct MdnsChild {
    shared: Shared,
}

impl Child for MdnsChild {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The service answers without it: retried with backoff, never given up.
    fn restart(&self) -> Restart {
        Restart::persistent()
    }

    fn start(&mut self, ctx: &ChildContext) -> Recipient<Notice> {
        MdnsActor {
            shared: Arc::clone(&self.shared),
            config: Arc::clone(&ctx.config),
            bound: ctx.bound.clone(),
            services: ctx.services.load_full(),
            services_synced: None,
            services_pending: false,
            supervisor: ctx.supervisor.clone(),
            failed: None,
        }
        .start()
        .recipient()
    }

    fn stop(&mut self) {
        if let Some(announcer) = lock(&self.shared).take() {
            announcer.stop();
        }
    }

    fn status(&self, status: &mut Status) {
        status.mdns = lock(&self.shared).as_ref().map(Announcer::status);
    }
}

/// Keeps the advertised services in line with the configuration.
struct MdnsActor {
    shared: Shared,
    config: Arc<Config>,
    /// The listener's addresses, once it answers: nothing is advertised
    /// before (the advertised port must be answering).
    bound: Vec<SocketAddr>,
    /// The services registered over HTTP, each advertised too.
    services: Arc<Services>,
    /// When they were last advertised, and whether a sync waits for the
    /// end of the quiet time.
    services_synced: Option<Instant>,
    services_pending: bool,
    supervisor: Addr<SupervisorActor>,
    failed: Option<String>,
}

/// The shortest time between two syncs for registration changes: a burst
/// of them (or a client churning) is advertised once, never as a storm of
/// probes and goodbyes on the network.
const SERVICES_QUIET: Duration = Duration::from_millis(100);

/// The most services announced or withdrawn by one sync: at most 100 a
/// second, whatever the registrations do (each costs mdns-sd a few
/// packets), and never more than its command queue (100) takes at once.
const SYNC_BUDGET: usize = 10;

impl MdnsActor {
    fn sync(&mut self, ctx: &mut Context<Self>) {
        match self.try_sync() {
            Ok(true) => {}
            // More to announce than one sync's budget: the rest later.
            Ok(false) => self.sync_later(SERVICES_QUIET, ctx),
            Err(e) => {
                warn!(error = %e, "mDNS announcer failed");
                self.failed = Some(e);
                ctx.stop();
            }
        }
    }

    /// Makes what is advertised what the configuration and registrations
    /// ask, within one sync's budget; true once it is.
    fn try_sync(&mut self) -> Result<bool, String> {
        let mut slot = lock(&self.shared);
        let mdns = &self.config.mdns;
        let wanted = Selection::of(mdns);
        let keep = mdns.enabled && slot.as_ref().is_some_and(|a| *a.selection() == wanted);
        if !keep {
            if let Some(old) = slot.take() {
                old.stop();
            }
        }
        if !mdns.enabled || self.bound.is_empty() {
            return Ok(true);
        }
        let (_, host) = host_name();
        let mut adverts = vec![own_advert(&self.config, &self.bound)];
        adverts.extend(
            self.services
                .list
                .iter()
                .map(|s| registered_advert(&self.config.mdns, s, &host)),
        );
        let announcer = match slot.as_mut() {
            Some(announcer) => announcer,
            None => slot.insert(Announcer::start(wanted, host)?),
        };
        announcer.advertise(adverts, SYNC_BUDGET)
    }
}

impl Actor for MdnsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sync(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.failed.is_some() {
            if let Some(announcer) = lock(&self.shared).take() {
                announcer.stop();
            }
        }
        self.supervisor.do_send(ChildExited {
            child: NAME,
            error: self.failed.take(),
        });
    }
}

impl Handler<Notice> for MdnsActor {
    type Result = ();

    fn handle(&mut self, notice: Notice, ctx: &mut Context<Self>) {
        match notice {
            Notice::Ready { addrs } => self.bound = addrs,
            Notice::Applied(config) => self.config = config,
            Notice::Services(services) => {
                self.services = services;
                return self.services_changed(ctx);
            }
            Notice::Reload(_) => return,
        }
        self.sync(ctx);
    }
}

impl MdnsActor {
    /// Advertises the registered services now, or at the end of the quiet
    /// time after the last sync.
    fn services_changed(&mut self, ctx: &mut Context<Self>) {
        let wait = self.services_synced.map_or(Duration::ZERO, |at| {
            SERVICES_QUIET.saturating_sub(at.elapsed())
        });
        if wait.is_zero() && !self.services_pending {
            self.services_synced = Some(Instant::now());
            return self.sync(ctx);
        }
        self.sync_later(wait, ctx);
    }

    /// Syncs after `wait`, unless a sync is already waiting.
    fn sync_later(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.services_pending, true) {
            return;
        }
        ctx.run_later(wait, |actor, ctx| {
            actor.services_pending = false;
            actor.services_synced = Some(Instant::now());
            actor.sync(ctx);
        });
    }
}

/// The host's own service: the instance (default: the host name) at
/// `service_port`, or the discovery port, with the discovery parameters
/// in TXT so that a zeroconf client can find the classic responder too.
pub(crate) fn own_advert(config: &Config, bound: &[SocketAddr]) -> Advert {
    let discovery_port = match config.port {
        0 => bound.first().map_or(0, SocketAddr::port),
        port => port,
    };
    let mdns = &config.mdns;
    let mut txt = mdns.txt.clone();
    txt.insert("port".into(), discovery_port.to_string());
    txt.insert("message".into(), config.message.clone());
    Advert {
        domain: mdns.domain(),
        instance: own_instance(config),
        port: config.service_port.unwrap_or(discovery_port),
        txt,
        elsewhere: None,
    }
}

/// The host's own instance name: `mdns.instance`, or the host name.
pub(crate) fn own_instance(config: &Config) -> String {
    config
        .mdns
        .instance
        .clone()
        .unwrap_or_else(|| host_name().0)
}

/// A service registered over HTTP, as an instance of the same type: its
/// id is the instance name, with its name in TXT (`name`) beside its own
/// entries. One on this host shares this host's name and addresses; one
/// elsewhere is on a host named after its address (`ip-192-0-2-7.local.`,
/// `ip6-2001-db8--7.local.`): services at one address share it, and no
/// two addresses get one name. `own_host`, this host's name, is never
/// taken.
pub(crate) fn registered_advert(mdns: &Mdns, service: &Service, own_host: &str) -> Advert {
    let mut txt = service.txt.clone();
    txt.insert("name".into(), service.name.clone());
    let elsewhere = service.address.map(|ip| {
        let label = match ip {
            IpAddr::V4(v4) => format!("ip-{}", v4.to_string().replace('.', "-")),
            IpAddr::V6(v6) => format!("ip6-{}", v6.to_string().replace(':', "-")),
        };
        let mut host = format!("{label}.local.");
        if host.eq_ignore_ascii_case(own_host) {
            host = format!("{label}-service.local.");
        }
        (host, ip)
    });
    Advert {
        domain: mdns.domain(),
        instance: service.id.clone(),
        port: service.port,
        txt,
        elsewhere,
    }
}

/// The host name as an instance name, and as an mDNS host (`name.local.`,
/// its first label, with what DNS does not allow replaced by `-`).
fn host_name() -> (String, String) {
    let raw = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok());
    super::config::default_names(raw.as_deref())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_own_service_carries_the_discovery_parameters() {
        let mut config = Config {
            port: 0,
            ..Config::default()
        };
        config.mdns.instance = Some("lab".into());
        config.mdns.txt.insert("role".into(), "printer".into());
        let bound = ["127.0.0.1:4321".parse().unwrap()];
        let advert = own_advert(&config, &bound);
        assert_eq!(advert.domain, "_discoveryd._udp.local.");
        assert_eq!(advert.instance, "lab");
        assert_eq!(advert.port, 4321, "port 0: the bound port");
        assert_eq!(advert.txt["port"], "4321");
        assert_eq!(advert.txt["message"], "DISCOVER_SERVER");
        assert_eq!(advert.txt["role"], "printer");

        config.port = 9999;
        config.service_port = Some(8000);
        let advert = own_advert(&config, &bound);
        assert_eq!(advert.port, 8000, "service_port is the advertised port");
        assert_eq!(advert.txt["port"], "9999", "TXT keeps the discovery port");
    }

    #[test]
    fn a_registered_service_is_an_instance_of_its_own() {
        let mdns = Mdns::default();
        let txt = [("role".to_owned(), "db".to_owned())].into();
        let here = Service::new("api.1", "api", None, 8080, txt);
        let advert = registered_advert(&mdns, &here, "lab.local.");
        assert_eq!(advert.instance, "api.1");
        assert_eq!(advert.port, 8080);
        assert_eq!(advert.txt["name"], "api");
        assert_eq!(advert.txt["role"], "db");
        assert_eq!(advert.elsewhere, None, "this host's name and addresses");

        let ip = "192.0.2.7".parse().unwrap();
        let there = Service::new("api.1", "api", Some(ip), 8080, BTreeMap::new());
        let advert = registered_advert(&mdns, &there, "lab.local.");
        assert_eq!(
            advert.elsewhere,
            Some(("ip-192-0-2-7.local.".to_owned(), ip))
        );
        // Ids that would make one name (a.b, a-b) get their own addresses'.
        let other = Service::new(
            "api-1",
            "api",
            Some("192.0.2.8".parse().unwrap()),
            1,
            BTreeMap::new(),
        );
        let advert = registered_advert(&mdns, &other, "lab.local.");
        assert_eq!(advert.elsewhere.unwrap().0, "ip-192-0-2-8.local.");
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let advert = registered_advert(
            &mdns,
            &Service::new("x", "api", Some(v6), 1, BTreeMap::new()),
            "lab.local.",
        );
        assert_eq!(
            advert.elsewhere,
            Some(("ip6-2001-db8--7.local.".to_owned(), v6))
        );
        let named_like_us = Service::new("x", "api", Some(ip), 1, BTreeMap::new());
        let advert = registered_advert(&mdns, &named_like_us, "ip-192-0-2-7.local.");
        assert_eq!(
            advert.elsewhere,
            Some(("ip-192-0-2-7-service.local.".to_owned(), ip))
        );
    }
}
