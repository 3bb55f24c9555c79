//! The announcer: the mdns-sd daemon (its own thread and sockets), with
//! discoveryd's interface selection, and the set of services it
//! advertises. Each answer carries only the addresses of the interface
//! the query arrived on; probing, conflict renaming, goodbyes, known-answer
//! suppression, the meta-query, legacy unicast and the per-record rate
//! limit are the crate's (README, "mDNS").

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mdns_sd::{DaemonEvent, IfKind, RRType, ServiceDaemon, ServiceInfo};
use tracing::{debug, info, warn};

use super::config::Mdns;
use super::goodbye;
use super::links::{probe_port, Links};
use crate::lock;
use crate::status::MdnsStatus;

/// How often interface addresses are checked: an added address is
/// announced, and a removed one gets a goodbye, within this.
const IP_CHECK_SECS: u32 = 1;

/// How long stopping waits for the goodbyes to be sent.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// Where the daemon runs: the interfaces it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    only: Vec<String>,
    exclude: Vec<String>,
}

impl Selection {
    /// The selection `[mdns]` asks for.
    pub(crate) fn of(mdns: &Mdns) -> Self {
        Self {
            only: mdns.interfaces.clone(),
            exclude: mdns.exclude_interfaces.clone(),
        }
    }

    /// Whether the interface `name` is one mDNS runs on.
    pub(crate) fn allows(&self, name: &str, loopback: bool) -> bool {
        let named = self.only.iter().any(|n| n == name);
        let chosen = if self.only.is_empty() {
            !loopback
        } else {
            named
        };
        chosen && !self.exclude.iter().any(|n| n == name)
    }

    /// Applied in order, the last match winning: loopback is off unless
    /// named in `interfaces`.
    fn apply(&self, daemon: &ServiceDaemon) -> mdns_sd::Result<()> {
        if !self.only.is_empty() {
            daemon.disable_interface(IfKind::All)?;
        }
        daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        for name in &self.only {
            daemon.enable_interface(name.as_str())?;
        }
        for name in &self.exclude {
            daemon.disable_interface(name.as_str())?;
        }
        Ok(())
    }
}

/// One advertised service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advert {
    /// The service type under `local.`, such as `_discoveryd._udp.local.`.
    pub(crate) domain: String,
    /// The instance name.
    pub(crate) instance: String,
    /// The port in the SRV record.
    pub(crate) port: u16,
    /// The TXT entries.
    pub(crate) txt: BTreeMap<String, String>,
    /// Another host's name (under `local.`) and address, for a service
    /// registered there; `None`: this host, with each interface's own
    /// addresses.
    pub(crate) elsewhere: Option<(String, IpAddr)>,
}

impl Advert {
    fn info(&self, host: &str) -> mdns_sd::Result<ServiceInfo> {
        let txt: Vec<(&str, &str)> = self
            .txt
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Ok(match &self.elsewhere {
            None => ServiceInfo::new(&self.domain, &self.instance, host, "", self.port, &txt[..])?
                .enable_addr_auto(),
            // mdns-sd answers with it only on the interface whose subnet
            // holds it: mDNS is link-local.
            Some((host, ip)) => {
                ServiceInfo::new(&self.domain, &self.instance, host, *ip, self.port, &txt[..])?
            }
        })
    }
}

/// The names announced now: the ones asked for, as renamed after
/// conflicts on the network (kept by the daemon's event thread).
#[derive(Debug, Default)]
struct Names {
    /// The host name now.
    host: String,
    /// The interfaces in use now.
    interfaces: Vec<String>,
    /// Renamed names, from the one asked for.
    renamed: BTreeMap<String, String>,
}

type SharedNames = Arc<Mutex<Names>>;

/// The running mDNS responder and what it advertises.
pub(crate) struct Announcer {
    daemon: ServiceDaemon,
    selection: Selection,
    host: String,
    advertised: BTreeMap<String, Advert>,
    names: SharedNames,
}

impl Announcer {
    /// Starts the mDNS responder on the interfaces of `selection`, as the
    /// host `host` (a name under `local.`).
    pub(crate) fn start(selection: Selection, host: String) -> Result<Self, String> {
        // mdns-sd binds in its own thread and only logs a failure there.
        probe_port().map_err(|e| {
            format!("cannot start the mDNS responder: UDP port 5353: {e}; another program holds it without sharing it (SO_REUSEPORT): stop it, or publish through it")
        })?;
        let daemon = ServiceDaemon::new()
            .map_err(|e| format!("cannot start the mDNS responder (UDP port 5353): {e}"))?;
        let set_up = selection
            .apply(&daemon)
            .and_then(|()| daemon.set_ip_check_interval(IP_CHECK_SECS))
            .and_then(|()| daemon.monitor());
        let events_rx = match set_up {
            Ok(events) => events,
            Err(e) => {
                let _ = daemon.shutdown();
                return Err(format!("cannot set up the mDNS responder: {e}"));
            }
        };
        // Name conflicts and interface changes: logged, and a goodbye for
        // an address that left. The thread ends when the daemon does.
        let names = Arc::new(Mutex::new(Names {
            host: host.clone(),
            interfaces: Vec::new(),
            renamed: BTreeMap::new(),
        }));
        let links = Links::new(selection.clone());
        if links.interfaces().is_empty() {
            warn!(interfaces = ?selection.only, exclude = ?selection.exclude, "mDNS: no interface that is up and can multicast matches [mdns] interfaces and exclude_interfaces; nothing is advertised until one does");
        }
        lock(&names).interfaces = links.interfaces();
        let mut events = Events {
            original_host: host.clone(),
            names: Arc::clone(&names),
            links,
        };
        let spawned = std::thread::Builder::new()
            .name("mdns-events".into())
            .spawn(move || {
                for event in events_rx.iter() {
                    events.on(event);
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the mDNS event logger; name changes go unlogged");
        }
        info!(interfaces = ?selection.only, exclude = ?selection.exclude, "mDNS responder started");
        Ok(Self {
            daemon,
            selection,
            host,
            advertised: BTreeMap::new(),
            names,
        })
    }

    /// The interfaces it was started on.
    pub(crate) fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Moves what is advertised towards exactly `wanted`, by at most
    /// `budget` changes (so that a burst of registrations is announced over
    /// time, never as a storm on the network): a name no longer wanted gets
    /// a goodbye; a new one is probed and announced; one whose port or TXT
    /// changed is announced again in place. True once everything is as
    /// wanted; false when changes remain (over the budget, or the daemon's
    /// command queue was full): call it again.
    pub(crate) fn advertise(&mut self, wanted: Vec<Advert>, budget: usize) -> Result<bool, String> {
        // By mdns-sd's full name (RFC 6763 escaping included), in the
        // order given: the first (the host's own service) goes first.
        let mut infos = Vec::with_capacity(wanted.len());
        for advert in wanted {
            let info = advert
                .info(&self.host)
                .map_err(|e| format!("cannot advertise `{}` over mDNS: {e}", advert.instance))?;
            infos.push((info.get_fullname().to_owned(), advert, info));
        }
        let names: std::collections::BTreeSet<&str> =
            infos.iter().map(|(name, _, _)| name.as_str()).collect();
        let mut left = budget;
        // A name no longer wanted gets a goodbye. One still wanted with a
        // new port or TXT is registered again in place: its announcement
        // carries the cache-flush bit, which replaces the old records in
        // every cache (RFC 6762 §10.2); a goodbye first would make the
        // daemon probe the name against its own withdrawn records, and
        // rename it.
        let gone: Vec<String> = self
            .advertised
            .keys()
            .filter(|name| !names.contains(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if left == 0 {
                return Ok(false);
            }
            match self.daemon.unregister(&name) {
                Ok(_) => info!(service = %name, "mDNS goodbye sent"),
                Err(mdns_sd::Error::Again) => return Ok(false),
                Err(e) => warn!(service = %name, error = %e, "cannot withdraw the mDNS service"),
            }
            left -= 1;
            self.advertised.remove(&name);
            lock(&self.names).renamed.remove(&name);
        }
        for (name, advert, info) in infos {
            if self.advertised.get(&name) == Some(&advert) {
                continue;
            }
            if left == 0 {
                return Ok(false);
            }
            match self.daemon.register(info) {
                Ok(()) => {}
                Err(mdns_sd::Error::Again) => return Ok(false),
                Err(e) => return Err(format!("cannot advertise `{name}` over mDNS: {e}")),
            }
            left -= 1;
            info!(service = %name, port = advert.port, txt = ?advert.txt, "advertising over mDNS");
            self.advertised.insert(name, advert);
        }
        Ok(true)
    }

    /// What is announced now, names as renamed after conflicts.
    pub(crate) fn status(&self) -> MdnsStatus {
        let names = lock(&self.names);
        MdnsStatus {
            host: names.host.clone(),
            interfaces: names.interfaces.clone(),
            services: self
                .advertised
                .keys()
                .map(|name| names.renamed.get(name).unwrap_or(name).clone())
                .collect(),
        }
    }

    /// Withdraws everything (goodbyes) and stops the responder, waiting
    /// at most a second for the goodbyes to leave.
    pub(crate) fn stop(self) {
        let deadline = std::time::Instant::now() + GOODBYE_WAIT;
        // Its command queue may be full (a burst of changes): the stop
        // waits its turn, or the responder would run on, unowned.
        let shutdown = loop {
            match self.daemon.shutdown() {
                Err(mdns_sd::Error::Again) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => break other,
            }
        };
        match shutdown {
            Ok(done) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if done
                    .recv_timeout(left.max(Duration::from_millis(100)))
                    .is_err()
                {
                    warn!("the mDNS responder did not confirm its goodbyes in time");
                }
            }
            Err(mdns_sd::Error::DaemonShutdown) => {
                debug!("the mDNS responder had already stopped")
            }
            Err(e) => warn!(error = %e, "cannot stop the mDNS responder"),
        }
        info!("mDNS responder stopped");
    }
}

/// What the daemon reports, seen from its event thread.
struct Events {
    /// The host name it was started with.
    original_host: String,
    /// The names now, shared with the announcer.
    names: SharedNames,
    /// The selected interfaces' addresses.
    links: Links,
}

impl Events {
    fn on(&mut self, event: DaemonEvent) {
        match event {
            DaemonEvent::NameChange(change) => {
                // Reported once per record type and interface: logged once.
                let mut names = lock(&self.names);
                let is_host = matches!(change.rr_type, RRType::A | RRType::AAAA)
                    && change.original == self.original_host;
                let known = if is_host {
                    names.host == change.new_name
                } else {
                    names.renamed.get(&change.original) == Some(&change.new_name)
                };
                if known {
                    return;
                }
                info!(from = %change.original, to = %change.new_name, "mDNS name conflict on the network; renamed");
                if is_host {
                    names.host = change.new_name;
                } else {
                    names.renamed.insert(change.original, change.new_name);
                }
            }
            DaemonEvent::Error(e) => warn!(error = %e, "mDNS responder"),
            DaemonEvent::IpAdd(ip) => {
                self.links.refresh();
                lock(&self.names).interfaces = self.links.interfaces();
                info!(%ip, "mDNS: address added; announcing it");
            }
            DaemonEvent::IpDel(ip) => {
                let interface = self.links.interface_of(ip);
                self.links.refresh();
                lock(&self.names).interfaces = self.links.interfaces();
                let host = lock(&self.names).host.clone();
                let from = interface
                    .as_deref()
                    .and_then(|i| Some((i, self.links.other_address(i, ip)?)));
                match from {
                    Some((interface, from)) => match goodbye::send(&host, ip, interface, from) {
                        Ok(()) => info!(%ip, interface, "mDNS: address removed; goodbye sent"),
                        Err(e) => {
                            warn!(%ip, interface, error = %e, "mDNS: address removed; cannot send its goodbye (browsers drop it when its TTL ends)")
                        }
                    },
                    None => {
                        info!(%ip, "mDNS: address removed; its interface has no other address to send a goodbye from (browsers drop it when its TTL ends)")
                    }
                }
            }
            DaemonEvent::Announce(service, interface) => {
                debug!(%service, %interface, "mDNS announcement")
            }
            _ => {}
        }
    }
}
