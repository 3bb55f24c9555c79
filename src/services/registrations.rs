//! The registration table: each service with the deadline its heartbeats
//! push back. Pure data: the supervisor calls it with the time, and
//! publishes [`Services`] when the list changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Registration, Service, Services};

/// What a `PUT` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Put {
    /// A new service.
    Created,
    /// A known id, now with other details.
    Updated,
    /// A known id with the same details: only its deadline moved.
    Refreshed,
}

/// Why a `PUT` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `cap` services are registered already.
    Full {
        /// The cap.
        cap: usize,
    },
    /// The id differs only in case from a registered one (ids are compared
    /// ignoring case, as DNS names are).
    Case {
        /// The registered id.
        registered: String,
    },
    /// The id is this host's own mDNS instance name, which it would take
    /// over.
    OwnName {
        /// The instance name.
        name: String,
    },
}

/// A registration as `GET /v1/services` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Listed {
    /// The id.
    pub(crate) id: String,
    /// The name.
    pub(crate) name: String,
    /// The address; `null`: this host.
    pub(crate) address: Option<std::net::IpAddr>,
    /// The port.
    pub(crate) port: u16,
    /// The TTL, humantime.
    pub(crate) ttl: String,
    /// Milliseconds left before it expires without a heartbeat.
    pub(crate) expires_in_ms: u64,
    /// The metadata.
    pub(crate) txt: BTreeMap<String, String>,
}

struct Entry {
    registration: Registration,
    deadline: Instant,
}

/// The registered services and their deadlines.
#[derive(Default)]
pub(crate) struct Registrations {
    entries: BTreeMap<String, Entry>,
    generation: u64,
}

impl Registrations {
    /// Registers or refreshes `registration`, unless it is new and `cap`
    /// services are registered already, or its id is a registered one's
    /// in another case.
    pub(crate) fn put(
        &mut self,
        registration: Registration,
        now: Instant,
        cap: usize,
    ) -> Result<Put, Refused> {
        let deadline = now + registration.ttl;
        let id = registration.service.id.clone();
        let put = match self.entries.get(&id) {
            Some(e) if e.registration == registration => Put::Refreshed,
            Some(_) => Put::Updated,
            None => {
                if let Some(registered) = self.entries.keys().find(|k| k.eq_ignore_ascii_case(&id))
                {
                    return Err(Refused::Case {
                        registered: registered.clone(),
                    });
                }
                if self.entries.len() >= cap {
                    return Err(Refused::Full { cap });
                }
                Put::Created
            }
        };
        self.entries.insert(
            id,
            Entry {
                registration,
                deadline,
            },
        );
        if put != Put::Refreshed {
            self.generation += 1;
        }
        Ok(put)
    }

    /// A heartbeat for `id`: its deadline moves a TTL from `now`. False
    /// when it is not registered.
    pub(crate) fn pass(&mut self, id: &str, now: Instant) -> bool {
        let Some(entry) = self.entries.get_mut(id) else {
            return false;
        };
        entry.deadline = now + entry.registration.ttl;
        true
    }

    /// Removes `id`; false when it was not registered.
    pub(crate) fn remove(&mut self, id: &str) -> bool {
        let removed = self.entries.remove(id).is_some();
        self.generation += u64::from(removed);
        removed
    }

    /// Removes every service whose deadline has passed at `now`, and
    /// returns them.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Service> {
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let gone: Vec<Service> = expired
            .iter()
            .filter_map(|id| self.entries.remove(id))
            .map(|e| e.registration.service)
            .collect();
        self.generation += u64::from(!gone.is_empty());
        gone
    }

    /// The next deadline, if any service is registered.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.deadline).min()
    }

    /// How many are registered.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Grows with every change of the list.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The services now, to publish.
    pub(crate) fn services(&self) -> Services {
        Services {
            generation: self.generation,
            list: self
                .entries
                .values()
                .map(|e| e.registration.service.clone())
                .collect(),
        }
    }

    /// The registrations as listed, with the time each has left at `now`.
    pub(crate) fn list(&self, now: Instant) -> Vec<Listed> {
        self.entries
            .values()
            .map(|e| {
                let s = &e.registration.service;
                Listed {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    address: s.address,
                    port: s.port,
                    ttl: humantime::format_duration(e.registration.ttl).to_string(),
                    expires_in_ms: millis(e.deadline.saturating_duration_since(now)),
                    txt: s.txt.clone(),
                }
            })
            .collect()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(id: &str, port: u16, ttl_s: u64) -> Registration {
        Registration {
            service: Service::new(id, "api", None, port, BTreeMap::new()),
            ttl: Duration::from_secs(ttl_s),
        }
    }

    #[test]
    fn put_pass_remove_and_expire() {
        let t0 = Instant::now();
        let mut r = Registrations::default();
        assert_eq!(r.put(registration("a", 1, 10), t0, 3), Ok(Put::Created));
        assert_eq!(r.put(registration("b", 1, 5), t0, 3), Ok(Put::Created));
        assert_eq!(
            r.put(registration("B", 1, 5), t0, 3),
            Err(Refused::Case {
                registered: "b".into()
            }),
            "ids are compared ignoring case"
        );
        assert_eq!(
            r.put(registration("c", 1, 5), t0, 2),
            Err(Refused::Full { cap: 2 })
        );
        let g = r.generation();
        assert_eq!(r.put(registration("a", 1, 10), t0, 2), Ok(Put::Refreshed));
        assert_eq!(r.generation(), g, "a refresh changes nothing advertised");
        assert_eq!(r.put(registration("a", 2, 10), t0, 2), Ok(Put::Updated));
        assert_eq!(r.generation(), g + 1);
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(5)));

        // b's heartbeat at 4 s keeps it until 9 s; a lives until 10 s.
        assert!(r.pass("b", t0 + Duration::from_secs(4)));
        assert!(!r.pass("nobody", t0));
        assert!(r.expire(t0 + Duration::from_secs(8)).is_empty());
        let gone = r.expire(t0 + Duration::from_secs(9));
        assert_eq!(
            gone.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(r.services().list.len(), 1);
        let listed = r.list(t0 + Duration::from_secs(9));
        assert_eq!(listed[0].expires_in_ms, 1000);
        assert_eq!(listed[0].ttl, "10s");

        assert!(r.remove("a"));
        assert!(!r.remove("a"));
        assert_eq!(r.len(), 0);
        assert_eq!(r.next_deadline(), None);
        assert_eq!(r.services().generation, r.generation());
    }
}
