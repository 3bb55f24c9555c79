//! The library's core: a discovery service that runs until a shutdown
//! future resolves, the way mini-redis's `server::run` does. Everything
//! process-wide (signals, the pidfile, the console, systemd) belongs to
//! whoever calls it: `discoveryd`'s own command line does it in `cli`, and
//! a test can run a whole service in-process.
//!
//! ```no_run
//! # async fn demo() -> Result<(), discoveryd::Error> {
//! use discoveryd::{ConfigSource, Service};
//! let source = ConfigSource::default();
//! let config = source.load()?;
//! let service = Service::new(source, config, discoveryd::registry())?;
//! // Inside an actix system (`actix_rt::System::new().block_on(...)`):
//! service.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use actix::Actor as _;
use arc_swap::ArcSwap;
use discoveryd_api::Registry;
use tokio::sync::oneshot;

use crate::actors::{ConfigChild, Launch, SupervisorActor, TimerChild};
use crate::config::{Config, ConfigSource};
use crate::error::Error;
use crate::handle::{Observer, Requests, Silent};
use crate::http::HttpChild;
use crate::logging::LogControl;
use crate::mdns::MdnsChild;
use crate::messages::{Shutdown, ShutdownReason};
use crate::responders::Snapshot;

/// A discovery service, ready to run.
pub struct Service {
    source: ConfigSource,
    config: Config,
    registry: Arc<Registry>,
    snapshot: Snapshot,
    log: LogControl,
    observer: Arc<dyn Observer>,
    requests: Option<Requests>,
    pidfile: Option<PathBuf>,
}

impl Service {
    /// A service for `config` (loaded from `source`, which reloads read
    /// again), answering with the responder types of `registry`. Fails if
    /// a responder cannot be built from its options.
    pub fn new(source: ConfigSource, config: Config, registry: Registry) -> Result<Self, Error> {
        let snapshot = Snapshot::first(&config, &registry, &source)?;
        crate::mdns::preflight(&config, false, &source)?;
        Ok(Self {
            source,
            config,
            registry: Arc::new(registry),
            snapshot,
            log: LogControl::none(),
            observer: Arc::new(Silent),
            requests: None,
            pidfile: None,
        })
    }

    /// Who hears about the lifecycle.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The requests of a [`Handle`](crate::Handle).
    pub fn requests(mut self, requests: Requests) -> Self {
        self.requests = Some(requests);
        self
    }

    /// The log level control that follows reloads.
    pub fn log(mut self, log: LogControl) -> Self {
        self.log = log;
        self
    }

    /// The pidfile the status document names.
    pub fn pidfile(mut self, pidfile: PathBuf) -> Self {
        self.pidfile = Some(pidfile);
        self
    }

    /// The responder chain, as the banner describes it.
    pub fn describe_responders(&self) -> String {
        self.snapshot.describe()
    }

    /// Runs the service until `shutdown` resolves (or `duration` elapses),
    /// then stops it cleanly; or until it fails for good. Call it inside
    /// an actix system.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let subnets = match crate::net::local_subnets() {
            Ok(subnets) => subnets,
            Err(e) if self.config.security.on_link_only => return Err(Error::Interfaces(e)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the network interfaces (on_link_only is off)");
                Vec::new()
            }
        };
        let shared = crate::receiver::Shared {
            snapshot: Arc::new(ArcSwap::from_pointee(self.snapshot)),
            counters: Arc::default(),
            subnets: Arc::new(ArcSwap::from_pointee(subnets)),
        };
        let mut children: Vec<Box<dyn crate::actors::Child>> = vec![
            Box::new(ConfigChild),
            Box::<MdnsChild>::default(),
            Box::<HttpChild>::default(),
            Box::<crate::registries::RegistriesChild>::default(),
        ];
        if let Some(after) = self.config.duration {
            children.push(Box::new(TimerChild::new(after)));
        }
        let (done, finished) = oneshot::channel();
        let supervisor = SupervisorActor::new(Launch {
            source: self.source,
            registry: self.registry,
            config: self.config,
            shared,
            log: self.log,
            observer: self.observer,
            requests: self.requests,
            pidfile: self.pidfile,
            children,
            done,
        })
        .start();
        tokio::pin!(finished);
        tokio::select! {
            outcome = &mut finished => return outcome.unwrap_or_else(|_| stopped_without_outcome()),
            () = shutdown => supervisor.do_send(Shutdown { reason: ShutdownReason::Requested }),
        }
        finished.await.unwrap_or_else(|_| stopped_without_outcome())
    }
}

fn stopped_without_outcome() -> Result<(), Error> {
    Err(Error::Internal(
        "the supervisor stopped without an outcome".into(),
    ))
}
