//! The supervisor: the only place that decides lifecycle. It starts the
//! listener, applies retry-after-cleanup to busy ports and
//! restart-on-failure to failures, swaps configurations in (in place, or
//! make-before-break when sockets change), and decides the exit code.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler};
use discoveryd_api::Registry;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::actors::{ConfigActor, ListenerActor, StopListener, TimerActor};
use crate::config::{Config, ConfigDiff, ConfigErrors, ConfigSource};
use crate::console;
use crate::error::Error;
use crate::logging::LogControl;
use crate::messages::{
    ConfigApplied, ConfigChanged, ConfigRejected, GaveUp, Incarnation, ListenerError,
    ListenerFailed, ListenerStarted, ListenerStopped, PortConflict, Shutdown, ShutdownReason,
    TimerExpired,
};
use crate::net::{BindErrorKind, ProcessInfo};
use crate::receiver::Shared;
use crate::responders::Snapshot;
use crate::supervision::{RestartDecision, RestartTracker};

/// How the service ended.
pub(super) type Outcome = Result<(), Error>;

/// A listener incarnation the supervisor knows about.
struct Child {
    incarnation: Incarnation,
    addrs: Vec<SocketAddr>,
    attempt: u32,
    addr: Addr<ListenerActor>,
}

/// A reload waiting for its new sockets (make-before-break).
struct Candidate {
    child: Child,
    config: Arc<Config>,
    snapshot: Arc<Snapshot>,
    diff: ConfigDiff,
    /// The old listener had to close first (the new addresses overlap it):
    /// if the candidate fails, the old addresses must be bound again.
    old_closed: bool,
}

/// Which child a scheduled (re)spawn is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Active,
    Candidate,
}

/// The root actor.
pub(crate) struct SupervisorActor {
    source: ConfigSource,
    registry: Arc<Registry>,
    config: Arc<Config>,
    shared: Shared,
    log: LogControl,
    restarts: RestartTracker,
    next_incarnation: Incarnation,
    live: HashSet<Incarnation>,
    active: Option<Child>,
    candidate: Option<Candidate>,
    handover: Option<Candidate>,
    pinned_port: Option<u16>,
    announced: bool,
    config_actor: Option<Addr<ConfigActor>>,
    stopping: Option<Outcome>,
    done: Option<oneshot::Sender<Outcome>>,
}

impl SupervisorActor {
    /// A supervisor for `config`, already validated into `shared`'s snapshot.
    /// It reports how the service ended on `done`.
    pub(crate) fn new(
        source: ConfigSource,
        registry: Arc<Registry>,
        config: Config,
        shared: Shared,
        log: LogControl,
        done: oneshot::Sender<Outcome>,
    ) -> Self {
        Self {
            restarts: RestartTracker::new(config.supervision.restart_on_failure.clone()),
            source,
            registry,
            config: Arc::new(config),
            shared,
            log,
            next_incarnation: 0,
            live: HashSet::new(),
            active: None,
            candidate: None,
            handover: None,
            pinned_port: None,
            announced: false,
            config_actor: None,
            stopping: None,
            done: Some(done),
        }
    }

    /// The addresses `config` asks for; port 0 (from a flag) stays the port
    /// first bound, so restarts keep answering where clients were told.
    fn addrs_for(&self, config: &Config) -> Vec<SocketAddr> {
        let port = match (config.port, self.pinned_port) {
            (0, Some(pinned)) => pinned,
            (port, _) => port,
        };
        config
            .bind
            .iter()
            .map(|&ip| SocketAddr::new(ip, port))
            .collect()
    }

    fn spawn(&mut self, ctx: &mut Context<Self>, addrs: Vec<SocketAddr>, attempt: u32) -> Child {
        self.next_incarnation += 1;
        let incarnation = self.next_incarnation;
        self.live.insert(incarnation);
        let listener = ListenerActor::new(
            incarnation,
            addrs.clone(),
            attempt,
            self.shared.clone(),
            ctx.address(),
        );
        Child {
            incarnation,
            addrs,
            attempt,
            addr: listener.start(),
        }
    }

    /// Starts a new incarnation for `role` in place of `replaces`, the one
    /// that ended. Does nothing if that one is no longer current (a reload
    /// or a stop came in between).
    fn respawn(
        &mut self,
        ctx: &mut Context<Self>,
        role: Role,
        replaces: Incarnation,
        attempt: u32,
    ) {
        let current = self.child(role).filter(|c| c.incarnation == replaces);
        let Some(addrs) = current.map(|c| c.addrs.clone()) else {
            return;
        };
        if self.stopping.is_some() {
            return;
        }
        let child = self.spawn(ctx, addrs, attempt);
        match role {
            Role::Active => self.active = Some(child),
            Role::Candidate => {
                if let Some(candidate) = &mut self.candidate {
                    candidate.child = child;
                }
            }
        }
    }

    fn role_of(&self, incarnation: Incarnation) -> Option<Role> {
        if self
            .candidate
            .as_ref()
            .is_some_and(|c| c.child.incarnation == incarnation)
        {
            Some(Role::Candidate)
        } else if self
            .active
            .as_ref()
            .is_some_and(|c| c.incarnation == incarnation)
        {
            Some(Role::Active)
        } else {
            None
        }
    }

    fn child(&self, role: Role) -> Option<&Child> {
        match role {
            Role::Active => self.active.as_ref(),
            Role::Candidate => self.candidate.as_ref().map(|c| &c.child),
        }
    }

    /// A listener ended: forgets it, and returns its role when the
    /// supervisor must act on its end (not while stopping, not if stale).
    fn exited(&mut self, incarnation: Incarnation, ctx: &mut Context<Self>) -> Option<Role> {
        self.live.remove(&incarnation);
        if self.stopping.is_some() {
            self.finish_if_idle(ctx);
            return None;
        }
        self.role_of(incarnation)
    }

    /// Retry-after-cleanup: the incarnation is gone, so retry after the
    /// strategy's delay, or give up on this bind.
    fn retry_bind(
        &mut self,
        ctx: &mut Context<Self>,
        role: Role,
        addr: SocketAddr,
        failure: BindFailure,
    ) {
        let first_overlap = self.candidate.as_ref().is_some_and(|c| !c.old_closed);
        if role == Role::Candidate && failure.held_by_us() && first_overlap {
            return self.hand_over();
        }
        let strategy = match (role, &self.candidate) {
            (Role::Candidate, Some(c)) => c.config.supervision.retry_after_cleanup.clone(),
            _ => self.config.supervision.retry_after_cleanup.clone(),
        };
        let Some(child) = self.child(role) else {
            return;
        };
        let (replaces, attempt) = (child.incarnation, child.attempt + 1);
        if let (true, Some(delay)) = (failure.retryable(), strategy.next_delay(attempt)) {
            info!(%addr, attempt, retry_in = ?delay, "retrying bind after cleanup");
            ctx.run_later(delay, move |sup, ctx| {
                sup.respawn(ctx, role, replaces, attempt)
            });
            return;
        }
        let error = failure.into_error(addr, attempt, &self.source);
        match role {
            Role::Candidate => {
                let key = if self.config.port == addr.port() {
                    "bind"
                } else {
                    "port"
                };
                self.reject_candidate(ctx, key, &error);
            }
            Role::Active => self.begin_stop(Err(error), ctx),
        }
    }

    /// The new addresses overlap our own running sockets (a `bind` change
    /// on the same port), so make-before-break cannot work: close the old
    /// listener first, then bind the new one, keeping the old addresses to
    /// restore if that fails.
    fn hand_over(&mut self) {
        let (Some(mut candidate), Some(active)) = (self.candidate.take(), &self.active) else {
            return;
        };
        info!(old = ?active.addrs, new = ?candidate.child.addrs, "new addresses overlap the running ones; closing the old first");
        candidate.old_closed = true;
        active.addr.do_send(StopListener);
        self.handover = Some(candidate);
    }

    /// Drops the reload in progress, restores the old addresses if they
    /// were closed for it, and logs why.
    fn reject_candidate(
        &mut self,
        ctx: &mut Context<Self>,
        key: &str,
        error: &dyn std::fmt::Display,
    ) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        if let (true, Some(old)) = (candidate.old_closed, &self.active) {
            warn!(addrs = ?old.addrs, "restoring the previous addresses");
            self.respawn(ctx, Role::Active, old.incarnation, 0);
        }
        let errors = ConfigErrors(vec![self
            .source
            .error(key, format!("{error}; the running config keeps serving"))]);
        ctx.notify(ConfigRejected { errors });
    }

    /// Restart-on-failure for the active listener.
    fn restart_active(&mut self, ctx: &mut Context<Self>, error: &ListenerError) {
        let Some(replaces) = self.active.as_ref().map(|a| a.incarnation) else {
            return;
        };
        match self.restarts.on_failure(Instant::now(), fastrand::f64()) {
            RestartDecision::Restart { delay, restarts } => {
                self.shared
                    .counters
                    .restarts
                    .fetch_add(1, Ordering::Relaxed);
                warn!(%error, restarts, restart_in = ?delay, "listener failed; restarting");
                ctx.run_later(delay, move |sup, ctx| {
                    sup.respawn(ctx, Role::Active, replaces, 0)
                });
            }
            RestartDecision::GiveUp { restarts, window } => {
                ctx.notify(GaveUp {
                    child: "listener",
                    restarts,
                    window,
                });
            }
        }
    }

    /// Makes `config` the running configuration.
    fn apply(&mut self, config: Arc<Config>, diff: &ConfigDiff) {
        self.log.apply(&config);
        self.restarts
            .set_strategy(config.supervision.restart_on_failure.clone());
        if diff.changed.iter().any(|k| k == "duration") {
            warn!("`duration` changed; it applies from the next start");
        }
        info!(changed = %diff, "config reloaded");
        if let Some(config_actor) = &self.config_actor {
            config_actor.do_send(ConfigApplied {
                config: Arc::clone(&config),
            });
        }
        self.config = config;
    }

    fn begin_stop(&mut self, outcome: Outcome, ctx: &mut Context<Self>) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(outcome);
        for child in self
            .active
            .iter()
            .chain(self.candidate.as_ref().map(|c| &c.child))
        {
            child.addr.do_send(StopListener);
        }
        self.finish_if_idle(ctx);
    }

    fn finish_if_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.live.is_empty() {
            return;
        }
        if let (Some(outcome), Some(done)) = (self.stopping.take(), self.done.take()) {
            let _ = done.send(outcome);
        }
        ctx.stop();
    }
}

/// A bind that failed, as retry-after-cleanup sees it.
enum BindFailure {
    Busy(Option<ProcessInfo>),
    Other(BindErrorKind, String),
}

impl BindFailure {
    /// True when the port is busy because of our own sockets.
    fn held_by_us(&self) -> bool {
        matches!(self, BindFailure::Busy(Some(holder)) if holder.pid == std::process::id())
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            BindFailure::Busy(_) | BindFailure::Other(BindErrorKind::NotAvailable, _)
        )
    }

    fn into_error(self, addr: SocketAddr, tries: u32, source: &ConfigSource) -> Error {
        match self {
            BindFailure::Busy(holder) => Error::PortUnavailable { addr, holder, tries, fix: source.describe() },
            BindFailure::Other(BindErrorKind::PermissionDenied, reason) => Error::Bind {
                addr,
                reason: format!("{reason}; ports below 1024 need root or CAP_NET_BIND_SERVICE, or choose a port above 1023"),
            },
            BindFailure::Other(BindErrorKind::NotAvailable, reason) => Error::Bind {
                addr,
                reason: format!("{reason}; {} is not an address of this host, fix `bind` in {}", addr.ip(), source.describe()),
            },
            BindFailure::Other(_, reason) => Error::Bind { addr, reason },
        }
    }
}

impl Actor for SupervisorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Register SIGTERM before the listener starts, so no early signal
        // falls through to the default action.
        match actix_rt::signal::unix::signal(actix_rt::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                let me = ctx.address();
                actix_rt::spawn(async move {
                    while sigterm.recv().await.is_some() {
                        me.do_send(Shutdown {
                            reason: ShutdownReason::Terminate,
                        });
                    }
                });
            }
            Err(e) => warn!(error = %e, "cannot handle SIGTERM"),
        }
        let config_actor = ConfigActor::new(
            self.source.clone(),
            Arc::clone(&self.registry),
            Arc::clone(&self.config),
            Arc::clone(&self.shared.snapshot),
            ctx.address(),
        );
        self.config_actor = Some(config_actor.start());
        let addrs = self.addrs_for(&self.config);
        self.active = Some(self.spawn(ctx, addrs, 0));
    }
}

impl Handler<ListenerStarted> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ListenerStarted, ctx: &mut Context<Self>) {
        match self.role_of(msg.incarnation) {
            Some(Role::Candidate) => {
                // Make-before-break: the new sockets answer; swap, then close the old.
                let Some(candidate) = self.candidate.take() else {
                    return;
                };
                self.shared.snapshot.store(candidate.snapshot);
                let mut child = candidate.child;
                child.addrs.clone_from(&msg.addrs);
                if let Some(old) = self.active.replace(child) {
                    old.addr.do_send(StopListener);
                }
                info!(addrs = ?msg.addrs, "listening on new addresses");
                self.apply(candidate.config, &candidate.diff);
            }
            Some(Role::Active) => {
                if let Some(active) = &mut self.active {
                    // What is really bound (port 0 resolved) is what later
                    // configs are compared against.
                    active.addrs.clone_from(&msg.addrs);
                    active.attempt = 0;
                }
                if self.config.port == 0 {
                    self.pinned_port = msg.addrs.first().map(SocketAddr::port);
                }
                if self.announced {
                    info!(addrs = ?msg.addrs, "listener restarted");
                    return;
                }
                self.announced = true;
                info!(addrs = ?msg.addrs, "listening for discovery requests");
                console::listening(&msg.addrs);
                if let Some(after) = self.config.duration {
                    console::timer_set(after);
                    TimerActor::new(after, ctx.address()).start();
                }
            }
            None => {}
        }
    }
}

impl Handler<PortConflict> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: PortConflict, ctx: &mut Context<Self>) {
        let holder = msg.holder.as_ref().map(ToString::to_string);
        warn!(addr = %msg.addr, holder = holder.as_deref().unwrap_or("unknown"), attempt = msg.attempt, "port conflict");
        if let Some(role) = self.exited(msg.incarnation, ctx) {
            self.retry_bind(ctx, role, msg.addr, BindFailure::Busy(msg.holder));
        }
    }
}

impl Handler<ListenerFailed> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ListenerFailed, ctx: &mut Context<Self>) {
        error!(error = %msg.error, "listener failed");
        let Some(role) = self.exited(msg.incarnation, ctx) else {
            return;
        };
        match (role, msg.error) {
            (_, ListenerError::Bind(e)) => self.retry_bind(
                ctx,
                role,
                e.addr,
                BindFailure::Other(e.kind, e.source.to_string()),
            ),
            (Role::Candidate, error) => self.reject_candidate(ctx, "bind", &error),
            (Role::Active, error) => self.restart_active(ctx, &error),
        }
    }
}

impl Handler<ListenerStopped> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ListenerStopped, ctx: &mut Context<Self>) {
        if self.exited(msg.incarnation, ctx) == Some(Role::Active) {
            // The old sockets of a hand-over are closed: bind the new ones.
            if let Some(mut candidate) = self.handover.take() {
                candidate.child = self.spawn(ctx, candidate.child.addrs.clone(), 0);
                self.candidate = Some(candidate);
            }
        }
    }
}

impl Handler<ConfigChanged> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigChanged, ctx: &mut Context<Self>) {
        if self.stopping.is_some() {
            return;
        }
        if let Some(mut pending) = self.handover.take() {
            // The old listener is closing for an earlier reload: bring this
            // configuration up in its place instead.
            pending.child.addrs = self.addrs_for(&msg.config);
            (pending.config, pending.snapshot, pending.diff) = (msg.config, msg.snapshot, msg.diff);
            self.handover = Some(pending);
            return;
        }
        if let Some(superseded) = self.candidate.take() {
            superseded.child.addr.do_send(StopListener);
        }
        let addrs = self.addrs_for(&msg.config);
        let rebind = self.active.as_ref().is_some_and(|a| a.addrs != addrs);
        if rebind {
            info!(changed = %msg.diff, ?addrs, "config changed; binding the new addresses first");
            let child = self.spawn(ctx, addrs, 0);
            self.candidate = Some(Candidate {
                child,
                config: msg.config,
                snapshot: msg.snapshot,
                diff: msg.diff,
                old_closed: false,
            });
        } else {
            self.shared.snapshot.store(msg.snapshot);
            self.apply(msg.config, &msg.diff);
        }
    }
}

impl Handler<ConfigRejected> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigRejected, _: &mut Context<Self>) {
        for error in &msg.errors.0 {
            warn!(%error, "config rejected; the running config keeps serving");
        }
    }
}

impl Handler<TimerExpired> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: TimerExpired, ctx: &mut Context<Self>) {
        info!(after = %msg.after, "duration expired");
        console::duration_expired(msg.after);
        self.begin_stop(Ok(()), ctx);
    }
}

impl Handler<GaveUp> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: GaveUp, ctx: &mut Context<Self>) {
        error!(child = msg.child, restarts = msg.restarts, window = ?msg.window, "supervisor gave up");
        let GaveUp {
            child,
            restarts,
            window,
        } = msg;
        self.begin_stop(
            Err(Error::GaveUp {
                child,
                restarts,
                window,
            }),
            ctx,
        );
    }
}

impl Handler<Shutdown> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        info!(reason = ?msg.reason, "stopping");
        self.begin_stop(Ok(()), ctx);
    }
}
