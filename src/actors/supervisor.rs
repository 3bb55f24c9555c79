//! The supervisor: the only place that decides lifecycle. It starts the
//! listener, applies retry-after-cleanup to busy ports and
//! restart-on-failure to failures, swaps configurations in (in place, or
//! make-before-break when sockets change), and decides the exit code.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use std::path::PathBuf;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, MessageResult};
use discoveryd_api::Registry;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::actors::{
    signals, ConfigActor, Leave, ListenerActor, Plan, Signals, Sockets, StopListener, TimerActor,
};
use crate::config::{Config, ConfigDiff, ConfigErrors, ConfigSource};
use crate::console;
use crate::daemon::Notifier;
use crate::error::Error;
use crate::logging::LogControl;
use crate::messages::{
    ConfigApplied, ConfigChanged, ConfigRejected, ConfigUnchanged, GaveUp, Incarnation,
    ListenerError, ListenerFailed, ListenerStarted, ListenerStopped, PortConflict, Shutdown,
    ShutdownReason, TimerExpired,
};
use crate::net::{SubnetNews, SubnetWatch};
use crate::policy::Refusal;
use crate::receiver::Shared;
use crate::responders::Snapshot;
use crate::status::{Counts, LastReload, Reloads, Status};
use crate::supervision::{BindFailure, RestartDecision, RestartTracker};

/// How often refusals are summed up in the log.
const REFUSAL_LOG_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the directly connected subnets are read again.
const SUBNET_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// How the service ended.
pub(super) type Outcome = Result<(), Error>;

/// A listener incarnation the supervisor knows about.
struct Child {
    incarnation: Incarnation,
    plan: Plan,
    attempt: u32,
    addr: Addr<ListenerActor>,
    /// What it bound, once it has started.
    sockets: Sockets,
}

/// A reload waiting for its new sockets (make-before-break).
struct Candidate {
    child: Child,
    config: Arc<Config>,
    snapshot: Arc<Snapshot>,
    diff: ConfigDiff,
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
    /// A reload that must bind new sockets, waiting for the incarnations
    /// still leaving the active one's groups.
    pending: Option<ConfigChanged>,
    pinned_port: Option<u16>,
    announced: bool,
    config_actor: Option<Addr<ConfigActor>>,
    notifier: Arc<Notifier>,
    started: Instant,
    reloads: Reloads,
    reloading: bool,
    refused_logged: std::collections::BTreeMap<String, u64>,
    pidfile: PathBuf,
    control: Option<std::os::unix::net::UnixListener>,
    log_file: Option<PathBuf>,
    stopping: Option<Outcome>,
    done: Option<oneshot::Sender<Outcome>>,
    signals: Option<Signals>,
    /// The subnet table's refreshes.
    subnets: SubnetWatch,
}

/// Everything a supervisor starts from.
pub(crate) struct Launch {
    /// Where the configuration comes from (for reloads).
    pub(crate) source: ConfigSource,
    /// The responder types known.
    pub(crate) registry: Arc<Registry>,
    /// The configuration, already validated into `shared`'s snapshot.
    pub(crate) config: Config,
    /// The snapshot and counters the receive loops share.
    pub(crate) shared: Shared,
    /// The log level control.
    pub(crate) log: LogControl,
    /// Who to tell about readiness, reloads and stopping.
    pub(crate) notifier: Arc<Notifier>,
    /// The pidfile held for this instance.
    pub(crate) pidfile: PathBuf,
    /// The control socket to serve status on.
    pub(crate) control: Option<std::os::unix::net::UnixListener>,
    /// The log file to reopen on SIGUSR2 (daemons only).
    pub(crate) log_file: Option<PathBuf>,
    /// Where to report how the service ended.
    pub(crate) done: oneshot::Sender<Outcome>,
    /// The signals, caught since before the pidfile existed.
    pub(crate) signals: Signals,
}

impl SupervisorActor {
    /// A supervisor for a validated configuration.
    pub(crate) fn new(launch: Launch) -> Self {
        let Launch {
            source,
            registry,
            config,
            shared,
            log,
            notifier,
            pidfile,
            control,
            log_file,
            done,
            signals,
        } = launch;
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
            pending: None,
            pinned_port: None,
            announced: false,
            config_actor: None,
            notifier,
            started: Instant::now(),
            reloads: Reloads::default(),
            reloading: false,
            refused_logged: Default::default(),
            pidfile,
            control,
            log_file,
            stopping: None,
            done: Some(done),
            signals: Some(signals),
            subnets: SubnetWatch::default(),
        }
    }

    /// The non-zero refusal counters, by reason.
    fn refused_now(&self) -> std::collections::BTreeMap<String, u64> {
        Refusal::ALL
            .iter()
            .zip(&self.shared.counters.refused)
            .map(|(why, n)| (why.name().to_owned(), n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Logs, at most once a period, how many datagrams each defence refused
    /// since the last time: a flood shows up without flooding the log.
    fn log_refusals(&mut self) {
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

    /// Reads the directly connected subnets again.
    fn refresh_subnets(&mut self) {
        let listing = crate::net::local_subnets();
        match self.subnets.update(listing, &self.shared.subnets) {
            Some(SubnetNews::Failed(e)) => {
                warn!(error = %e, "cannot list the network interfaces; on_link_only keeps the last known subnets");
            }
            Some(SubnetNews::Recovered) => info!("the network interfaces can be listed again"),
            None => {}
        }
    }

    /// Tells systemd a reload has begun (once per reload).
    fn begin_reload(&mut self) {
        if !self.reloading {
            self.reloading = true;
            self.notifier.reloading();
        }
    }

    /// Records how a reload ended, and tells systemd.
    fn end_reload(&mut self, result: &str, detail: String) {
        match result {
            "applied" => self.reloads.applied += 1,
            "rejected" => self.reloads.rejected += 1,
            _ => self.reloads.unchanged += 1,
        }
        self.notifier
            .reloaded(&format!("reload {result}: {detail}"));
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.reloads.last = Some(LastReload {
            result: result.to_owned(),
            detail,
            at_ms,
        });
        self.reloading = false;
    }

    /// The status document.
    fn status(&self) -> Status {
        let c = &self.shared.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let refused = self.refused_now();
        Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            config: self
                .source
                .path
                .as_deref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned())),
            pidfile: self.pidfile.clone(),
            addrs: self
                .active
                .as_ref()
                .map(|a| a.sockets.addrs.clone())
                .unwrap_or_default(),
            ready: self.announced
                && self
                    .active
                    .as_ref()
                    .is_some_and(|a| !a.sockets.addrs.is_empty()),
            counters: Counts {
                answered: load(&c.answered),
                ignored: load(&c.ignored),
                rejected: refused.values().sum(),
                refused,
                send_failed: load(&c.send_failed),
                restarts: load(&c.restarts),
            },
            reloads: self.reloads.clone(),
        }
    }

    /// What `config` asks to bind; port 0 (from a flag) stays the port
    /// first bound, so restarts keep answering where clients were told.
    fn plan_for(&self, config: &Config) -> Plan {
        let port = match (config.port, self.pinned_port) {
            (0, Some(pinned)) => pinned,
            (port, _) => port,
        };
        let addrs = config
            .bind
            .iter()
            .map(|&ip| SocketAddr::new(ip, port))
            .collect();
        Plan {
            addrs,
            workers: config.workers(),
            recv_buffer: config.recv_buffer,
        }
    }

    /// Starts an incarnation for `plan`; a candidate binds beside the
    /// active incarnation's sockets (make-before-break on the same port).
    fn spawn(&mut self, ctx: &mut Context<Self>, role: Role, plan: Plan, attempt: u32) -> Child {
        self.next_incarnation += 1;
        let incarnation = self.next_incarnation;
        self.live.insert(incarnation);
        let beside = match (role, &self.active) {
            (Role::Candidate, Some(active)) => active.sockets.clone(),
            _ => Sockets::default(),
        };
        let listener = ListenerActor::new(
            incarnation,
            plan.clone(),
            beside,
            attempt,
            self.shared.clone(),
            ctx.address(),
        );
        Child {
            incarnation,
            plan,
            attempt,
            addr: listener.start(),
            sockets: Sockets::default(),
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
        let Some(plan) = current.map(|c| c.plan.clone()) else {
            return;
        };
        if self.stopping.is_some() {
            return;
        }
        let child = self.spawn(ctx, role, plan, attempt);
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
        let role = self.role_of(incarnation);
        if role == Some(Role::Active) {
            if let Some(active) = &mut self.active {
                active.sockets = Sockets::default();
            }
        } else if self.live.len() == 1 {
            // The last incarnation that shared the active one's groups is
            // gone (replaced, superseded, or failed): a reload waiting for
            // that binds its sockets now (and steers them itself), or the
            // groups are steered over the active sockets alone again.
            match self.pending.take() {
                Some(pending) => ctx.notify(pending),
                None => {
                    if let Some(active) = &self.active {
                        active.sockets.steer_own();
                    }
                }
            }
            crate::memory::release_freed();
        }
        role
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
        let port_changed = self
            .candidate
            .as_ref()
            .zip(self.active.as_ref())
            .is_some_and(|(c, a)| {
                c.child.plan.addrs.first().map(SocketAddr::port)
                    != a.plan.addrs.first().map(SocketAddr::port)
            });
        let key = failure.key(port_changed);
        let error = failure.into_error(addr, attempt, &self.source);
        match role {
            Role::Candidate => self.reject_candidate(ctx, key, &error),
            Role::Active => self.begin_stop(Err(error), ctx),
        }
    }

    /// Drops the reload in progress, and logs why.
    fn reject_candidate(
        &mut self,
        ctx: &mut Context<Self>,
        key: &str,
        error: &dyn std::fmt::Display,
    ) {
        if self.candidate.take().is_none() {
            return;
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
        for key in diff.next_start() {
            warn!(key = %key, "changed; it applies from the next start");
        }
        info!(changed = %diff, "config reloaded");
        self.end_reload("applied", diff.to_string());
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
        self.notifier.stopping();
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

impl Actor for SupervisorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(signals) = self.signals.take() else {
            return;
        };
        signals::forward::<Self, _>(ctx, signals.terminate, || Shutdown {
            reason: ShutdownReason::Terminate,
        });
        signals::forward::<Self, _>(ctx, signals.interrupt, || Shutdown {
            reason: ShutdownReason::Interrupt,
        });
        signals::forward::<Self, _>(ctx, signals.user1, || LogStatus);
        signals::forward::<Self, _>(ctx, signals.user2, || ReopenLog);
        ctx.run_interval(REFUSAL_LOG_PERIOD, |sup, _| sup.log_refusals());
        // Interfaces come and go (DHCP, hotplug): keep `on_link_only` current.
        ctx.run_interval(SUBNET_REFRESH, |sup, _| sup.refresh_subnets());
        if let Some(interval) = self.notifier.watchdog_interval() {
            if self.notifier.watchdog_clamped() {
                warn!(
                    every = ?interval,
                    "WATCHDOG_USEC is too short to follow; pinging the watchdog at most every 100 ms"
                );
            }
            ctx.run_interval(interval, |sup, _| sup.notifier.watchdog());
        }
        if let Some(listener) = self.control.take() {
            serve_status(listener, ctx.address());
        }
        let config_actor = ConfigActor::new(
            self.source.clone(),
            Arc::clone(&self.registry),
            Arc::clone(&self.config),
            Arc::clone(&self.shared.snapshot),
            ctx.address(),
            signals.hangup,
        );
        self.config_actor = Some(config_actor.start());
        let plan = self.plan_for(&self.config);
        self.active = Some(self.spawn(ctx, Role::Active, plan, 0));
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
                child.plan.addrs.clone_from(&msg.sockets.addrs);
                let kept = msg.sockets.addrs.clone();
                child.sockets = msg.sockets;
                if let Some(old) = self.active.replace(child) {
                    // The new sockets' steering already passes the old by.
                    old.addr.do_send(Leave {
                        stays: kept,
                        steer_to: None,
                    });
                }
                info!(addrs = ?self.active.as_ref().map(|a| &a.plan.addrs), "listening on new addresses");
                self.apply(candidate.config, &candidate.diff);
            }
            Some(Role::Active) => {
                let addrs = msg.sockets.addrs.clone();
                if let Some(active) = &mut self.active {
                    // What is really bound (port 0 resolved) is what later
                    // configs are compared against.
                    active.plan.addrs.clone_from(&addrs);
                    active.attempt = 0;
                    active.sockets = msg.sockets;
                }
                if self.config.port == 0 {
                    self.pinned_port = addrs.first().map(SocketAddr::port);
                }
                if self.announced {
                    info!(addrs = ?addrs, "listener restarted");
                    return;
                }
                self.announced = true;
                info!(addrs = ?addrs, "listening for discovery requests");
                self.notifier.ready(&addrs);
                console::listening(&addrs);
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
        self.exited(msg.incarnation, ctx);
    }
}

impl Handler<ConfigChanged> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigChanged, ctx: &mut Context<Self>) {
        if self.stopping.is_some() {
            return;
        }
        self.begin_reload();
        // A newer configuration replaces one still waiting to bind.
        self.pending = None;
        if let Some(superseded) = self.candidate.take() {
            // It may already take the traffic of groups it shares with the
            // active sockets: it hands that back before it drains.
            let active = self.active.as_ref();
            superseded.child.addr.do_send(Leave {
                stays: active.map(|a| a.plan.addrs.clone()).unwrap_or_default(),
                steer_to: active.map(|a| a.plan.workers),
            });
        }
        let plan = self.plan_for(&msg.config);
        let rebind = self.active.as_ref().is_some_and(|a| a.plan != plan);
        if !rebind {
            self.shared.snapshot.store(msg.snapshot);
            return self.apply(msg.config, &msg.diff);
        }
        if self.live.len() > 1 {
            // New sockets join the active ones' groups, counting on being
            // the only others there: they wait until the incarnations
            // still leaving are gone.
            self.pending = Some(msg);
            return;
        }
        info!(changed = %msg.diff, addrs = ?plan.addrs, workers = plan.workers, "config changed; binding the new addresses first");
        let child = self.spawn(ctx, Role::Candidate, plan, 0);
        self.candidate = Some(Candidate {
            child,
            config: msg.config,
            snapshot: msg.snapshot,
            diff: msg.diff,
        });
    }
}

impl Handler<ConfigRejected> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigRejected, _: &mut Context<Self>) {
        for error in &msg.errors.0 {
            warn!(%error, "config rejected; the running config keeps serving");
        }
        self.begin_reload();
        self.end_reload("rejected", msg.errors.to_string());
    }
}

impl Handler<ConfigUnchanged> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigUnchanged, _: &mut Context<Self>) {
        self.begin_reload();
        self.end_reload(
            "unchanged",
            format!(
                "{}: the running config already matches the file",
                msg.trigger
            ),
        );
    }
}

/// Asks the supervisor for the status document.
#[derive(Debug, Message)]
#[rtype(result = "Status")]
pub(crate) struct StatusQuery;

impl Handler<StatusQuery> for SupervisorActor {
    type Result = MessageResult<StatusQuery>;

    fn handle(&mut self, _: StatusQuery, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

/// SIGUSR1: write a status snapshot to the log, whatever the log level
/// (it was asked for).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct LogStatus;

impl Handler<LogStatus> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, _: LogStatus, _: &mut Context<Self>) {
        let status = serde_json::to_string(&self.status()).unwrap_or_default();
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        console::error_line(format_args!("{now} status snapshot (SIGUSR1): {status}"));
    }
}

/// SIGUSR2: reopen the log file (after logrotate moved it).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ReopenLog;

impl Handler<ReopenLog> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, _: ReopenLog, _: &mut Context<Self>) {
        match &self.log_file {
            Some(path) => match crate::daemon::redirect_output(path) {
                Ok(()) => info!(path = %path.display(), "log file reopened"),
                Err(e) => {
                    error!(path = %path.display(), error = %e, "cannot reopen the log file; still writing to the old one")
                }
            },
            None => info!("SIGUSR2: no log file to reopen (running in the foreground)"),
        }
    }
}

/// Answers each connection to the control socket with the status document.
fn serve_status(listener: std::os::unix::net::UnixListener, supervisor: Addr<SupervisorActor>) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            return warn!(error = %e, "cannot serve the control socket; `status` will not answer")
        }
    };
    actix_rt::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let supervisor = supervisor.clone();
            actix_rt::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                if let Ok(status) = supervisor.send(StatusQuery).await {
                    let json = serde_json::to_vec(&status).unwrap_or_default();
                    let _ = stream.write_all(&json).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
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
