//! The supervisor: the only place that decides lifecycle. Its decisions
//! about the listener are a state machine ([`machine`]); this actor feeds
//! it the events that arrive as messages and carries out the commands it
//! returns: it spawns listener incarnations, schedules retries and
//! restarts, swaps configurations in, and decides the exit code. Its other
//! children (the config watcher, the timer, ...) are a set with their own
//! restart strategies ([`children`]).

mod children;
mod handlers;
mod machine;
mod report;
mod services;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context};
use discoveryd_api::Registry;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

pub(crate) use children::{Child, ChildContext, Restart};
use machine::{Cause, Command, Event, Exit, FailedBind, Failure, Id, Machine, Strategies};

use crate::actors::{Leave, ListenerActor, Reports, StopListener};
use crate::config::{Config, ConfigErrors, ConfigSource};
use crate::error::Error;
use crate::handle::{Observer, Requests};
use crate::logging::LogControl;
use crate::messages::Plan;
use crate::messages::{ConfigChanged, Notice, ShutdownReason};
use crate::net::Sockets;
use crate::net::{SubnetNews, SubnetWatch};
use crate::receiver::Shared;
use crate::status::{ReloadResult, Reloads};
use children::Children;
pub(crate) use handlers::Requested;

/// How often refusals are summed up in the log.
const REFUSAL_LOG_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the directly connected subnets are read again.
const SUBNET_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// How the service ended.
pub(crate) type Outcome = Result<(), Error>;

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
    /// Who hears about the lifecycle.
    pub(crate) observer: Arc<dyn Observer>,
    /// Requests from handles (status, reload).
    pub(crate) requests: Option<Requests>,
    /// The pidfile the status document names.
    pub(crate) pidfile: Option<PathBuf>,
    /// The children besides the listener.
    pub(crate) children: Vec<Box<dyn Child>>,
    /// Where to report how the service ended.
    pub(crate) done: oneshot::Sender<Outcome>,
}

/// A listener incarnation's actor, and what it bound.
struct Listener {
    addr: Addr<ListenerActor>,
    sockets: Sockets,
}

/// The root actor.
pub(crate) struct SupervisorActor {
    machine: Machine<ConfigChanged>,
    listeners: HashMap<Id, Listener>,
    children: Children,
    source: ConfigSource,
    registry: Arc<Registry>,
    config: Arc<Config>,
    shared: Shared,
    log: LogControl,
    observer: Arc<dyn Observer>,
    requests: Option<Requests>,
    pidfile: Option<PathBuf>,
    started: Instant,
    reloads: Reloads,
    reloading: bool,
    refused_logged: std::collections::BTreeMap<String, u64>,
    subnets: SubnetWatch,
    stop_reason: Option<ShutdownReason>,
    /// Who waits for the result of the next reload.
    reload_waiters: Vec<tokio::sync::oneshot::Sender<crate::status::LastReload>>,
    /// The services registered over HTTP.
    services: services::Registry,
    done: Option<oneshot::Sender<Outcome>>,
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
            observer,
            requests,
            pidfile,
            children,
            done,
        } = launch;
        Self {
            machine: Machine::new(strategies(&config)),
            listeners: HashMap::new(),
            children: Children::new(children),
            source,
            registry,
            config: Arc::new(config),
            shared,
            log,
            observer,
            requests,
            pidfile,
            started: Instant::now(),
            reloads: Reloads::default(),
            reloading: false,
            refused_logged: Default::default(),
            subnets: SubnetWatch::default(),
            stop_reason: None,
            reload_waiters: Vec::new(),
            services: services::Registry::default(),
            done: Some(done),
        }
    }

    fn child_context(&self, ctx: &Context<Self>) -> ChildContext {
        ChildContext {
            supervisor: ctx.address(),
            config: Arc::clone(&self.config),
            source: self.source.clone(),
            registry: Arc::clone(&self.registry),
            snapshot: Arc::clone(&self.shared.snapshot),
            observer: Arc::clone(&self.observer),
            bound: self.machine.bound().to_vec(),
            services: Arc::clone(&self.services.store),
        }
    }

    /// Feeds the state machine one event, and carries out its commands.
    fn feed(&mut self, event: Event<ConfigChanged>, ctx: &mut Context<Self>) {
        let commands = self.machine.on(event, Instant::now(), fastrand::f64());
        for command in commands {
            self.execute(command, ctx);
        }
    }

    fn execute(&mut self, command: Command<ConfigChanged>, ctx: &mut Context<Self>) {
        match command {
            Command::Spawn {
                id,
                plan,
                attempt,
                beside,
            } => {
                if beside.is_some() && attempt == 0 {
                    info!(addrs = ?plan.addrs, workers = plan.workers, "config changed; binding the new addresses first");
                }
                let beside = beside
                    .and_then(|b| self.listeners.get(&b))
                    .map(|l| l.sockets.clone())
                    .unwrap_or_default();
                let actor = ListenerActor::new(
                    id,
                    plan,
                    beside,
                    attempt,
                    self.shared.clone(),
                    Reports::to(&ctx.address()),
                );
                let listener = Listener {
                    addr: actor.start(),
                    sockets: Sockets::default(),
                };
                self.listeners.insert(id, listener);
            }
            Command::Leave {
                id,
                stays,
                steer_to,
            } => {
                if let Some(listener) = self.listeners.get(&id) {
                    listener.addr.do_send(Leave { stays, steer_to });
                }
            }
            Command::Stop { id } => {
                if let Some(listener) = self.listeners.get(&id) {
                    listener.addr.do_send(StopListener);
                }
            }
            Command::SteerOwn { id } => {
                if let Some(listener) = self.listeners.get(&id) {
                    listener.sockets.steer_own();
                }
            }
            Command::ReleaseMemory => crate::memory::release_freed(),
            Command::Schedule { after, event } => {
                ctx.run_later(after, move |sup, ctx| sup.feed(event, ctx));
            }
            Command::Ready { addrs } => {
                info!(addrs = ?addrs, "listening for discovery requests");
                self.observer.ready(&addrs);
                self.children.notify(&Notice::Ready {
                    addrs: addrs.clone(),
                });
            }
            Command::Restarted { addrs } => info!(addrs = ?addrs, "listener restarted"),
            Command::Restarting {
                error,
                restarts,
                after,
            } => {
                self.shared
                    .counters
                    .restarts
                    .fetch_add(1, Ordering::Relaxed);
                warn!(%error, restarts, restart_in = ?after, "listener failed; restarting");
            }
            Command::Retrying {
                addr,
                attempt,
                after,
            } => info!(%addr, attempt, retry_in = ?after, "retrying bind after cleanup"),
            Command::Apply { reload, rebound } => {
                if rebound {
                    info!(addrs = ?self.machine.bound(), "listening on new addresses");
                }
                self.apply(reload, ctx);
            }
            Command::Reject { key, cause } => {
                let error = match cause {
                    Cause::Bind(FailedBind {
                        addr,
                        failure,
                        tries,
                    }) => Error::bind(failure, addr, tries, &self.source.describe()).to_string(),
                    Cause::Failed(error) => error,
                };
                let errors = ConfigErrors(vec![self
                    .source
                    .error(key, format!("{error}; the running config keeps serving"))]);
                self.rejected(&errors);
            }
            Command::Finish(outcome) => {
                let outcome = outcome.map_err(|failure| match failure {
                    Failure::GaveUp { restarts, window } => {
                        error!(child = "listener", restarts, window = ?window, "supervisor gave up");
                        Error::GaveUp {
                            child: "listener",
                            restarts,
                            window,
                        }
                    }
                    Failure::Bind(FailedBind {
                        addr,
                        failure,
                        tries,
                    }) => Error::bind(failure, addr, tries, &self.source.describe()),
                });
                self.children.stop_all();
                if let Some(done) = self.done.take() {
                    let _ = done.send(outcome);
                }
                ctx.stop();
            }
        }
    }

    /// Makes a reloaded configuration the running one.
    fn apply(&mut self, reload: ConfigChanged, _ctx: &mut Context<Self>) {
        let ConfigChanged {
            diff,
            config,
            snapshot,
        } = reload;
        let snapshot = self.with_current_services(snapshot, &config);
        self.shared.snapshot.store(snapshot);
        self.log.apply(&config);
        if self.log.follows_rust_log() {
            for key in ["logging", "log_level"]
                .into_iter()
                .filter(|k| diff.contains(k))
            {
                warn!(key = %key, "changed, but RUST_LOG decides what is logged; unset RUST_LOG to follow it");
            }
        }
        for key in diff.next_start() {
            warn!(key = %key, "changed; it applies from the next start");
        }
        info!(changed = %diff, "config reloaded");
        self.end_reload(ReloadResult::Applied, diff.to_string());
        self.children.notify(&Notice::Applied(Arc::clone(&config)));
        self.config = config;
    }

    fn rejected(&mut self, errors: &ConfigErrors) {
        for error in &errors.0 {
            warn!(%error, "config rejected; the running config keeps serving");
        }
        self.begin_reload();
        self.end_reload(ReloadResult::Rejected, errors.to_string());
    }

    /// Tells the observer a reload has begun (once per reload).
    fn begin_reload(&mut self) {
        if !self.reloading {
            self.reloading = true;
            self.observer.reloading();
        }
    }

    /// Records how a reload ended, and tells the observer.
    fn end_reload(&mut self, result: ReloadResult, detail: String) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        let last = self.reloads.record(result, detail, at_ms);
        self.observer.reloaded(last);
        for waiter in self.reload_waiters.drain(..) {
            let _ = waiter.send(last.clone());
        }
        self.reloading = false;
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

    /// The listener incarnation `id` ended: forget it, and tell the machine.
    fn listener_exited(&mut self, id: Id, exit: Exit, ctx: &mut Context<Self>) {
        self.listeners.remove(&id);
        self.feed(Event::Exited { id, exit }, ctx);
    }

    fn stop(&mut self, reason: ShutdownReason, ctx: &mut Context<Self>) {
        if self.stop_reason.is_some() {
            return;
        }
        info!(reason = ?reason, "stopping");
        self.stop_reason = Some(reason);
        self.observer.stopping();
        self.feed(Event::Shutdown, ctx);
    }
}

/// The strategies a configuration asks for.
fn strategies(config: &Config) -> Strategies {
    Strategies {
        restart: config.supervision.restart_on_failure.clone(),
        retry: config.supervision.retry_after_cleanup.clone(),
    }
}

/// What `config` asks to bind (port 0 keeps the port first bound).
fn plan_for(config: &Config) -> Plan {
    Plan {
        addrs: config
            .bind
            .iter()
            .map(|&ip| SocketAddr::new(ip, config.port))
            .collect(),
        workers: config.workers(),
        recv_buffer: config.recv_buffer,
    }
}

impl Actor for SupervisorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(REFUSAL_LOG_PERIOD, |sup, _| {
            sup.log_refusals();
            sup.log_registrations();
        });
        // Interfaces come and go (DHCP, hotplug): keep `on_link_only` current.
        ctx.run_interval(SUBNET_REFRESH, |sup, _| sup.refresh_subnets());
        if let Some(Requests(mut requests)) = self.requests.take() {
            let me = ctx.address();
            actix_rt::spawn(async move {
                while let Some(request) = requests.recv().await {
                    me.do_send(Requested(request));
                }
            });
        }
        let children = self.child_context(ctx);
        self.children.start_all(&children);
        let plan = plan_for(&self.config);
        for command in self.machine.start(plan) {
            self.execute(command, ctx);
        }
    }
}
