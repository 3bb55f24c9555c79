//! What the supervisor reports: the status document (for `status`, the
//! control socket and SIGUSR1), and a periodic sum of refused datagrams.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::warn;

use super::machine::Phase;
use super::{SupervisorActor, REFUSAL_LOG_PERIOD};
use crate::policy::Refusal;
use crate::status::{Counts, Status};

impl SupervisorActor {
    /// The non-zero refusal counters, by reason.
    fn refused_now(&self) -> BTreeMap<String, u64> {
        Refusal::ALL
            .iter()
            .zip(&self.shared.counters.refused)
            .map(|(why, n)| (why.name().to_owned(), n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Logs, at most once a period, how many datagrams each defence refused
    /// since the last time: a flood shows up without flooding the log.
    pub(super) fn log_refusals(&mut self) {
        let now = self.refused_now();
        let fresh: Vec<String> = now
            .iter()
            .map(|(k, v)| (k, v - self.refused_logged.get(k).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        if !fresh.is_empty() {
            warn!(refused = %fresh.join(", "), period = ?REFUSAL_LOG_PERIOD, "datagrams refused by the defences");
        }
        self.refused_logged = now;
    }

    /// The status document.
    pub(super) fn status(&self) -> Status {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let refused = self.refused_now();
        let addrs = self.machine.bound().to_vec();
        let mut status = Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            config: self
                .source
                .path
                .as_deref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned())),
            pidfile: self.pidfile.clone().unwrap_or_default(),
            ready: self.machine.phase() == Phase::Serving && !addrs.is_empty(),
            addrs,
            counters: Counts {
                answered: load(&c.answered),
                ignored: load(&c.ignored),
                rejected: refused.values().sum(),
                refused,
                send_failed: load(&c.send_failed),
                undelayed: load(&c.undelayed),
                restarts: load(&c.restarts),
            },
            reloads: self.reloads.clone(),
            registrations: self.services.table.len() as u64,
            http: None,
            mdns: None,
            registries: Vec::new(),
        };
        self.children.status(&mut status);
        status
    }
}
