//! One registry's publisher: a thread of its own that keeps the keys the
//! service should have in etcd under one lease, kept alive at a third of
//! its TTL. Whatever etcd does, it never blocks or stops the service: a
//! failed attempt is retried under its own restart strategy (backoff,
//! never given up), a lease found gone (after SIGSTOP, or a long outage)
//! is granted anew and every key put again, and stopping revokes the
//! lease, so the keys go at once.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::config::Etcd;
use super::etcd::{Client, EtcdError, LeaseId};
use super::published::{published, Inputs, Published};
use crate::duration::HumanDuration;
use crate::lock;
use crate::supervision::{RestartDecision, RestartOnFailure, RestartTracker};

/// A registry's state, as `status` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStatus {
    /// The registry's type (`etcd`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its endpoints.
    pub endpoints: Vec<String>,
    /// Its key prefix.
    pub prefix: String,
    /// `connecting`, `publishing`, `unreachable` or `stopped`.
    pub state: String,
    /// The endpoint that answered last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The keys published now.
    pub keys: usize,
    /// The last failure, while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failed attempts since the start.
    pub failures: u64,
}

/// What the publisher's thread is told.
enum Command {
    /// The service changed: publish what it asks now.
    Inputs(Inputs),
    /// Its `[[registries]]` entry changed (same cluster and prefix): go on
    /// with this one.
    Config(Etcd),
    /// Revoke the lease and end.
    Stop,
}

/// A running publisher.
pub(crate) struct Publisher {
    /// The registry it publishes into.
    pub(crate) etcd: Etcd,
    commands: Sender<Command>,
    done: Receiver<()>,
    status: Arc<Mutex<RegistryStatus>>,
}

impl Publisher {
    /// Starts publishing `inputs` into `etcd`, on a thread of its own.
    pub(crate) fn start(etcd: Etcd, inputs: Inputs) -> std::io::Result<Self> {
        let (commands, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let status = Arc::new(Mutex::new(RegistryStatus {
            kind: "etcd".into(),
            endpoints: etcd.endpoints().iter().map(ToString::to_string).collect(),
            prefix: etcd.prefix.clone(),
            state: "connecting".into(),
            endpoint: None,
            keys: 0,
            error: None,
            failures: 0,
        }));
        let mut worker = Worker::new(etcd.clone(), inputs, Arc::clone(&status));
        std::thread::Builder::new()
            .name("etcd publisher".into())
            .spawn(move || {
                worker.run(&rx);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            etcd,
            commands,
            done,
            status,
        })
    }

    /// Publishes what the service asks now.
    pub(crate) fn update(&self, inputs: Inputs) {
        let _ = self.commands.send(Command::Inputs(inputs));
    }

    /// Goes on with a changed entry for the same cluster and prefix: a new
    /// `ttl` moves every key to a new lease before the old one is revoked,
    /// so no key is ever missing.
    pub(crate) fn reconfigure(&mut self, etcd: Etcd) {
        self.etcd = etcd.clone();
        let _ = self.commands.send(Command::Config(etcd));
    }

    /// Its state now.
    pub(crate) fn status(&self) -> RegistryStatus {
        lock(&self.status).clone()
    }

    /// Revokes the lease (the keys go at once) and ends, in the background.
    pub(crate) fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Waits until it has ended, until `deadline` at most.
    pub(crate) fn wait(&self, deadline: Instant) {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// The publisher's thread: the lease, the keys put under it, and when to
/// act next.
struct Worker {
    etcd: Etcd,
    inputs: Inputs,
    status: Arc<Mutex<RegistryStatus>>,
    client: Option<Client>,
    lease: Option<LeaseId>,
    /// The keys put under the lease, with their values.
    put: Published,
    /// When the lease was last known alive.
    alive_at: Instant,
    /// A lease to revoke once every key is under the current one (after
    /// `ttl` changed).
    retiring: Option<LeaseId>,
    /// Keys wanted that another publisher holds with the same value (two
    /// daemons with the same registration): left to it until the next
    /// check, so that the two never take them from each other in turn.
    elsewhere: std::collections::BTreeSet<String>,
    retries: RestartTracker,
    /// Whether the last attempt failed (for logging transitions once).
    failing: bool,
    /// Whether the host had no address to publish at (logged once).
    unaddressed: bool,
}

impl Worker {
    fn new(etcd: Etcd, inputs: Inputs, status: Arc<Mutex<RegistryStatus>>) -> Self {
        let retries = RestartTracker::new(retry_strategy(etcd.ttl.get()));
        Self {
            etcd,
            inputs,
            status,
            client: None,
            lease: None,
            put: Published::new(),
            alive_at: Instant::now(),
            retries,
            failing: false,
            unaddressed: false,
            retiring: None,
            elsewhere: std::collections::BTreeSet::new(),
        }
    }

    /// A third of the TTL: how often the lease is kept alive.
    fn period(&self) -> Duration {
        self.etcd.ttl.get() / 3
    }

    fn run(&mut self, commands: &Receiver<Command>) {
        let mut next = Instant::now();
        loop {
            match commands.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(command @ (Command::Inputs(_) | Command::Config(_))) => {
                    match command {
                        Command::Inputs(inputs) => self.inputs = inputs,
                        Command::Config(etcd) => self.reconfigure(etcd),
                        Command::Stop => unreachable!("matched above"),
                    }
                    // Published now, unless waiting out a failure.
                    if !self.failing {
                        next = Instant::now();
                    }
                    continue;
                }
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) if Instant::now() < next => continue,
                Err(RecvTimeoutError::Timeout) => {}
            }
            next = match self.attempt() {
                Ok(()) => {
                    self.succeeded();
                    self.alive_at + self.period()
                }
                Err(e) => Instant::now() + self.failed(&e),
            };
        }
        self.revoke();
    }

    /// Takes a changed entry: a new `ttl` takes a new lease (the keys move
    /// to it, then the old one is revoked), new credentials the next time
    /// a token is needed.
    fn reconfigure(&mut self, etcd: Etcd) {
        if etcd.ttl != self.etcd.ttl {
            self.retiring = self.lease.take().or(self.retiring);
            self.retries = RestartTracker::new(retry_strategy(etcd.ttl.get()));
            self.client = None;
        }
        self.etcd = etcd;
    }

    /// One round: a lease alive (granted, or kept alive when due, and its
    /// keys checked against etcd's), and the keys in etcd made what the
    /// service asks.
    fn attempt(&mut self) -> Result<(), EtcdError> {
        let due = self.alive_at + self.period() <= Instant::now();
        let client = self.client.get_or_insert_with(|| {
            Client::new(
                self.etcd.endpoints(),
                request_timeout(self.etcd.ttl.get()),
                self.etcd.credentials(),
            )
        });
        client.set_credentials(self.etcd.credentials());
        let mut check = false;
        if let (Some(lease), true) = (self.lease, due) {
            match client.keep_alive(lease) {
                Ok(()) => {
                    self.alive_at = Instant::now();
                    check = true;
                }
                Err(EtcdError::LeaseGone) => {
                    info!(prefix = %self.etcd.prefix, "etcd lease expired (the service was paused, or etcd unreachable, for longer than the ttl); publishing anew");
                    self.lease = None;
                }
                Err(e) => return Err(e),
            }
        }
        let lease = match self.lease {
            Some(lease) => lease,
            None => {
                let lease = client.grant(self.etcd.ttl.get())?;
                self.put.clear();
                self.elsewhere.clear();
                self.alive_at = Instant::now();
                *self.lease.insert(lease)
            }
        };
        let host = crate::net::host_addresses();
        let unaddressed = host.is_empty() && self.inputs.config.advertise_ip.is_none();
        if unaddressed && !self.unaddressed {
            warn!(prefix = %self.etcd.prefix, "this host has no address but loopback to publish its own service at (and those registered on it); set advertise_ip");
        }
        self.unaddressed = unaddressed;
        let wanted = published(&self.etcd, &self.inputs, &host);
        if check {
            // What is under the lease really: a key someone deleted, or
            // put again under another lease, is no longer ours.
            let held: std::collections::BTreeSet<String> =
                client.lease_keys(lease)?.into_iter().collect();
            self.put.retain(|key, _| held.contains(key));
            self.elsewhere.clear();
            for (key, value) in &wanted {
                if !self.put.contains_key(key)
                    && client.get(key)?.is_some_and(|v| v == value.as_bytes())
                {
                    self.elsewhere.insert(key.clone());
                }
            }
        }
        for (key, value) in &wanted {
            if self.put.get(key) != Some(value) && !self.elsewhere.contains(key) {
                if let Err(e) = client.put(key, value, lease) {
                    if e == EtcdError::LeaseGone {
                        self.lease = None;
                    }
                    return Err(e);
                }
                self.put.insert(key.clone(), value.clone());
            }
        }
        let gone: Vec<String> = self
            .put
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            client.delete_own(&key, lease)?;
            self.put.remove(&key);
        }
        self.elsewhere.retain(|key| wanted.contains_key(key));
        // Every key is under the current lease now: the old one can go.
        if let Some(old) = self.retiring {
            if client.revoke(old).is_ok() {
                self.retiring = None;
            }
        }
        Ok(())
    }

    fn succeeded(&mut self) {
        if self.failing {
            info!(prefix = %self.etcd.prefix, keys = self.put.len(), "publishing into etcd again");
        } else if lock(&self.status).state == "connecting" {
            info!(prefix = %self.etcd.prefix, keys = self.put.len(), "publishing into etcd");
        }
        self.failing = false;
        self.retries = RestartTracker::new(retry_strategy(self.etcd.ttl.get()));
        let mut status = lock(&self.status);
        status.state = "publishing".into();
        status.endpoint = self.client.as_ref().map(|c| c.endpoint().to_string());
        status.keys = self.put.len();
        status.error = None;
    }

    /// Records a failure; how long to wait before the next attempt.
    fn failed(&mut self, error: &EtcdError) -> Duration {
        let delay = match self.retries.on_failure(Instant::now(), fastrand::f64()) {
            RestartDecision::Restart { delay, .. } => delay,
            RestartDecision::GiveUp { .. } => self.period(),
        };
        let message = error.to_string();
        let mut status = lock(&self.status);
        if !self.failing || status.error.as_deref() != Some(&message) {
            warn!(prefix = %self.etcd.prefix, error = %message, retry_in = ?delay, "cannot publish into etcd; the LAN responder goes on, and this is retried");
        } else {
            debug!(error = %message, retry_in = ?delay, "etcd still failing");
        }
        self.failing = true;
        status.state = match error {
            EtcdError::Unreachable(_) => "unreachable",
            _ => "refused",
        }
        .into();
        status.error = Some(message);
        status.failures += 1;
        status.keys = if self.lease.is_some() {
            self.put.len()
        } else {
            0
        };
        delay
    }

    /// Revokes the lease (and one being retired), once, if there is one.
    fn revoke(&mut self) {
        if let (Some(old), Some(client)) = (self.retiring.take(), &mut self.client) {
            let _ = client.revoke(old);
        }
        if let (Some(lease), Some(client)) = (self.lease.take(), &mut self.client) {
            match client.revoke(lease) {
                Ok(()) => {
                    info!(prefix = %self.etcd.prefix, keys = self.put.len(), "etcd lease revoked; the keys are gone")
                }
                Err(e) => {
                    warn!(prefix = %self.etcd.prefix, error = %e, "cannot revoke the etcd lease; the keys go when its ttl ends")
                }
            }
        }
        let mut status = lock(&self.status);
        status.state = "stopped".into();
        status.keys = 0;
    }
}

/// How long one call may take on one endpoint: a third of the TTL (so a
/// member that stopped answering leaves time for another before the lease
/// ends), between 0.5 s and 5 s.
fn request_timeout(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_millis(500), Duration::from_secs(5))
}

/// Retries: at once, then after a second (or a third of the TTL, if
/// shorter), doubling with jitter up to a third of the TTL, never given up:
/// keys come back within a third of the TTL of etcd's return.
fn retry_strategy(ttl: Duration) -> RestartOnFailure {
    let period = (ttl / 3).max(Duration::from_millis(1));
    let ms = |d: Duration| {
        HumanDuration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
    };
    RestartOnFailure {
        max_restarts: u32::MAX,
        within: HumanDuration::from_millis(60_000),
        backoff: ms(period.min(Duration::from_secs(1))),
        backoff_max: ms(period),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_come_back_within_a_third_of_the_ttl() {
        let strategy = retry_strategy(Duration::from_secs(10));
        assert_eq!(strategy.backoff.get(), Duration::from_secs(1));
        assert_eq!(strategy.backoff_max.get(), Duration::from_millis(3333));
        let short = retry_strategy(Duration::from_secs(2));
        assert_eq!(short.backoff.get(), Duration::from_millis(666));
        assert_eq!(
            request_timeout(Duration::from_secs(2)),
            Duration::from_secs(2) / 3
        );
        assert_eq!(
            request_timeout(Duration::from_secs(60)),
            Duration::from_secs(5)
        );
    }
}
