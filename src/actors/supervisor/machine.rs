//! The supervisor's decisions about the listener, as a state machine with
//! no sockets, actors or clocks of its own: [`Machine::on`] takes an event
//! (an incarnation bound, exited, a reload, a retry falling due, a
//! shutdown) and returns the commands to carry out. The actor that owns
//! it only interprets them, so every transition is tested in-process.
//!
//! The listener lives in incarnations: the active one serves; a candidate
//! binds the sockets of a new configuration beside it (make-before-break);
//! replaced or superseded ones leave, and a rebind waits until they are
//! gone, because new sockets join the active ones' groups counting on
//! being the only others there.

mod events;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) use crate::messages::Plan;
pub(crate) use events::{
    Cause, Command, Event, Exit, FailedBind, Failure, Id, Phase, Role, Strategies,
};

use crate::supervision::{RestartDecision, RestartTracker, RetryAfterCleanup, RetryDecision};

/// An incarnation the machine knows about.
#[derive(Debug, Clone)]
struct Incarnation {
    id: Id,
    plan: Plan,
    attempt: u32,
    /// What it bound; empty until it has.
    bound: Vec<SocketAddr>,
}

/// The listener's lifecycle. See the module documentation.
#[derive(Debug)]
pub(crate) struct Machine<R> {
    phase: Phase,
    active: Option<Incarnation>,
    candidate: Option<(Incarnation, Strategies, R)>,
    pending: Option<(Plan, Strategies, R)>,
    live: BTreeSet<Id>,
    next_id: Id,
    restarts: RestartTracker,
    retry: RetryAfterCleanup,
    outcome: Option<Result<(), Failure>>,
}

impl<R> Machine<R> {
    /// A machine that starts the listener for `plan` (see [`Self::start`]).
    pub(crate) fn new(strategies: Strategies) -> Self {
        Self {
            phase: Phase::Starting,
            active: None,
            candidate: None,
            pending: None,
            live: BTreeSet::new(),
            next_id: 0,
            restarts: RestartTracker::new(strategies.restart),
            retry: strategies.retry,
            outcome: None,
        }
    }

    /// Starts the first incarnation.
    pub(crate) fn start(&mut self, plan: Plan) -> Vec<Command<R>> {
        let id = self.spawn_id();
        let command = self.spawn(id, &plan, 0, None);
        self.active = Some(Incarnation {
            id,
            plan,
            attempt: 0,
            bound: Vec::new(),
        });
        vec![command]
    }

    /// The phase.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// What the active incarnation has bound (empty while it binds).
    pub(crate) fn bound(&self) -> &[SocketAddr] {
        self.active.as_ref().map_or(&[], |a| &a.bound)
    }

    /// The active incarnation.
    #[cfg(test)]
    pub(crate) fn active(&self) -> Option<Id> {
        self.active.as_ref().map(|a| a.id)
    }

    /// Takes one event; returns what to do. `now` and `jitter` (in
    /// `[0, 1)`) feed restart-on-failure's backoff.
    pub(crate) fn on(&mut self, event: Event<R>, now: Instant, jitter: f64) -> Vec<Command<R>> {
        match event {
            Event::Bound { id, addrs } => self.bound_(id, addrs),
            Event::Exited { id, exit } => self.exited(id, exit, now, jitter),
            Event::Reload {
                plan,
                strategies,
                reload,
            } => self.reload(plan, strategies, reload),
            Event::Retry {
                role,
                replaces,
                attempt,
            } => self.respawn(role, replaces, attempt),
            Event::Restart { replaces } => self.respawn(Role::Active, replaces, 0),
            Event::Shutdown => self.stop(Ok(())),
        }
    }

    fn spawn_id(&mut self) -> Id {
        self.next_id += 1;
        self.live.insert(self.next_id);
        self.next_id
    }

    fn spawn(&self, id: Id, plan: &Plan, attempt: u32, beside: Option<Id>) -> Command<R> {
        Command::Spawn {
            id,
            plan: plan.clone(),
            attempt,
            beside,
        }
    }

    fn role_of(&self, id: Id) -> Option<Role> {
        if self.candidate.as_ref().is_some_and(|(c, _, _)| c.id == id) {
            Some(Role::Candidate)
        } else if self.active.as_ref().is_some_and(|a| a.id == id) {
            Some(Role::Active)
        } else {
            None
        }
    }

    /// A plan asking for port 0 keeps the port the active listener bound.
    fn resolve(&self, mut plan: Plan) -> Plan {
        keep_port(&mut plan, self.bound());
        plan
    }

    fn bound_(&mut self, id: Id, addrs: Vec<SocketAddr>) -> Vec<Command<R>> {
        let first = self.phase == Phase::Starting;
        match self.role_of(id) {
            Some(Role::Active) => {
                let active = self.active.as_mut().expect("the active incarnation");
                active.bound.clone_from(&addrs);
                active.attempt = 0;
                if first {
                    self.phase = Phase::Serving;
                    vec![Command::Ready { addrs }]
                } else {
                    vec![Command::Restarted { addrs }]
                }
            }
            Some(Role::Candidate) => {
                let (mut candidate, strategies, reload) =
                    self.candidate.take().expect("the candidate");
                candidate.bound.clone_from(&addrs);
                candidate.attempt = 0;
                self.set_strategies(strategies);
                let old = self.active.replace(candidate);
                let mut commands = Vec::new();
                if let Some(old) = old.filter(|o| self.live.contains(&o.id)) {
                    // The new sockets' steering already passes the old by.
                    commands.push(Command::Leave {
                        id: old.id,
                        stays: addrs.clone(),
                        steer_to: None,
                    });
                }
                commands.push(Command::Apply {
                    reload,
                    rebound: true,
                });
                if first {
                    self.phase = Phase::Serving;
                    commands.push(Command::Ready { addrs });
                }
                commands
            }
            None => Vec::new(),
        }
    }

    fn exited(&mut self, id: Id, exit: Exit, now: Instant, jitter: f64) -> Vec<Command<R>> {
        self.live.remove(&id);
        if self.phase == Phase::Stopping {
            return self.finish_if_idle();
        }
        match self.role_of(id) {
            Some(Role::Active) => self.active_exited(exit, now, jitter),
            Some(Role::Candidate) => {
                let mut commands = self.candidate_exited(exit);
                commands.extend(self.settled());
                commands
            }
            None => self.settled(),
        }
    }

    /// Once only the active incarnation is left: a rebind that waited
    /// binds now (and steers its sockets itself), or the active
    /// incarnation's groups are steered over its own sockets again.
    fn settled(&mut self) -> Vec<Command<R>> {
        let Some(active) = self.active.as_ref().map(|a| a.id) else {
            return Vec::new();
        };
        if self.live.len() != 1 || !self.live.contains(&active) {
            return Vec::new();
        }
        // (A candidate waiting for a retry has no incarnation alive.)
        let mut commands = match (self.candidate.is_some(), self.pending.take()) {
            (false, Some((plan, strategies, reload))) => self.reload(plan, strategies, reload),
            _ => vec![Command::SteerOwn { id: active }],
        };
        commands.push(Command::ReleaseMemory);
        commands
    }

    fn active_exited(&mut self, exit: Exit, now: Instant, jitter: f64) -> Vec<Command<R>> {
        let active = self.active.as_mut().expect("the active incarnation");
        // A restart comes back where clients found it, port 0 or not.
        let bound = std::mem::take(&mut active.bound);
        keep_port(&mut active.plan, &bound);
        let replaces = active.id;
        match exit {
            Exit::BindFailed { addr, failure } => {
                let attempt = active.attempt + 1;
                match self.retry.decide(&failure, attempt) {
                    RetryDecision::Retry { after } => {
                        retry(addr, Role::Active, replaces, attempt, after)
                    }
                    RetryDecision::GiveUp => self.stop(Err(Failure::Bind(FailedBind {
                        addr,
                        failure,
                        tries: attempt,
                    }))),
                }
            }
            Exit::Failed { error } => self.restart(replaces, error, now, jitter),
            Exit::Stopped => self.restart(replaces, "it stopped unasked".into(), now, jitter),
        }
    }

    fn restart(
        &mut self,
        replaces: Id,
        error: String,
        now: Instant,
        jitter: f64,
    ) -> Vec<Command<R>> {
        match self.restarts.on_failure(now, jitter) {
            RestartDecision::Restart { delay, restarts } => vec![
                Command::Restarting {
                    error,
                    restarts,
                    after: delay,
                },
                Command::Schedule {
                    after: delay,
                    event: Event::Restart { replaces },
                },
            ],
            RestartDecision::GiveUp { restarts, window } => {
                self.stop(Err(Failure::GaveUp { restarts, window }))
            }
        }
    }

    fn candidate_exited(&mut self, exit: Exit) -> Vec<Command<R>> {
        let Some((candidate, strategies, _)) = &self.candidate else {
            return Vec::new();
        };
        let (replaces, attempt) = (candidate.id, candidate.attempt + 1);
        let port = |p: &Plan| p.addrs.first().map(SocketAddr::port);
        let port_changed = self
            .active
            .as_ref()
            .is_some_and(|a| port(&a.plan) != port(&candidate.plan));
        match exit {
            Exit::BindFailed { addr, failure } => {
                match strategies.retry.decide(&failure, attempt) {
                    RetryDecision::Retry { after } => {
                        retry(addr, Role::Candidate, replaces, attempt, after)
                    }
                    RetryDecision::GiveUp => {
                        let key = failure.key(port_changed);
                        self.candidate = None;
                        vec![Command::Reject {
                            key,
                            cause: Cause::Bind(FailedBind {
                                addr,
                                failure,
                                tries: attempt,
                            }),
                        }]
                    }
                }
            }
            Exit::Failed { error } => {
                self.candidate = None;
                vec![Command::Reject {
                    key: "bind",
                    cause: Cause::Failed(error),
                }]
            }
            Exit::Stopped => {
                self.candidate = None;
                vec![Command::Reject {
                    key: "bind",
                    cause: Cause::Failed("the new listener stopped before it answered".into()),
                }]
            }
        }
    }

    fn reload(&mut self, plan: Plan, strategies: Strategies, reload: R) -> Vec<Command<R>> {
        if self.phase == Phase::Stopping {
            return Vec::new();
        }
        // A newer configuration replaces one still waiting to bind.
        self.pending = None;
        let mut commands = Vec::new();
        let Some(active) = &self.active else {
            return commands;
        };
        let (stays, workers) = (active.bound.clone(), active.plan.workers);
        if let Some((superseded, _, _)) = self.candidate.take() {
            // It may already take the traffic of groups it shares with the
            // active sockets: it hands that back before it drains.
            commands.push(Command::Leave {
                id: superseded.id,
                stays,
                steer_to: Some(workers),
            });
        }
        let plan = self.resolve(plan);
        let active = self.active.as_ref().expect("checked");
        let current = Plan {
            addrs: if active.bound.is_empty() {
                active.plan.addrs.clone()
            } else {
                active.bound.clone()
            },
            ..active.plan.clone()
        };
        if plan == current {
            self.set_strategies(strategies);
            commands.push(Command::Apply {
                reload,
                rebound: false,
            });
            return commands;
        }
        if self.live.len() > 1 {
            // New sockets join the active ones' groups, counting on being
            // the only others there: wait until the others are gone.
            self.pending = Some((plan, strategies, reload));
            return commands;
        }
        let beside = active.id;
        let id = self.spawn_id();
        commands.push(self.spawn(id, &plan, 0, Some(beside)));
        self.candidate = Some((
            Incarnation {
                id,
                plan,
                attempt: 0,
                bound: Vec::new(),
            },
            strategies,
            reload,
        ));
        commands
    }

    fn respawn(&mut self, role: Role, replaces: Id, attempt: u32) -> Vec<Command<R>> {
        if self.phase == Phase::Stopping || self.role_of(replaces) != Some(role) {
            return Vec::new();
        }
        let id = self.spawn_id();
        let beside = match role {
            Role::Candidate => self.active.as_ref().map(|a| a.id),
            Role::Active => None,
        };
        let record = match role {
            Role::Active => self.active.as_mut(),
            Role::Candidate => self.candidate.as_mut().map(|(c, _, _)| c),
        }
        .expect("checked");
        record.id = id;
        record.attempt = attempt;
        let plan = record.plan.clone();
        vec![self.spawn(id, &plan, attempt, beside)]
    }

    fn set_strategies(&mut self, strategies: Strategies) {
        self.restarts.set_strategy(strategies.restart);
        self.retry = strategies.retry;
    }

    fn stop(&mut self, outcome: Result<(), Failure>) -> Vec<Command<R>> {
        if self.phase == Phase::Stopping {
            return Vec::new();
        }
        self.phase = Phase::Stopping;
        self.outcome = Some(outcome);
        self.pending = None;
        let mut commands: Vec<Command<R>> =
            self.live.iter().map(|&id| Command::Stop { id }).collect();
        commands.extend(self.finish_if_idle());
        commands
    }

    fn finish_if_idle(&mut self) -> Vec<Command<R>> {
        match self.outcome.take() {
            Some(outcome) if self.live.is_empty() => vec![Command::Finish(outcome)],
            outcome => {
                self.outcome = outcome;
                Vec::new()
            }
        }
    }
}

/// Pins the port-0 addresses of `plan` to the port `bound` has (if any).
fn keep_port(plan: &mut Plan, bound: &[SocketAddr]) {
    if let Some(port) = bound.first().map(SocketAddr::port) {
        for addr in plan.addrs.iter_mut().filter(|a| a.port() == 0) {
            addr.set_port(port);
        }
    }
}

/// Retry the bind of `role`'s incarnation (replacing `replaces`) after
/// `after`: say so, and schedule it.
fn retry<R>(
    addr: SocketAddr,
    role: Role,
    replaces: Id,
    attempt: u32,
    after: Duration,
) -> Vec<Command<R>> {
    vec![
        Command::Retrying {
            addr,
            attempt,
            after,
        },
        Command::Schedule {
            after,
            event: Event::Retry {
                role,
                replaces,
                attempt,
            },
        },
    ]
}

#[cfg(test)]
mod tests;
