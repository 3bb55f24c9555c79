//! The supervisor's children besides the listener (whose lifecycle is the
//! state machine's): the config watcher, the timer, and whatever later
//! issues add. Each declares its own restart strategy; the supervisor
//! treats them as a set, so a new child is a new file and a line in the
//! list the service starts with, never supervisor code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, Recipient};
use arc_swap::ArcSwap;
use discoveryd_api::Registry;

use super::SupervisorActor;
use crate::config::{Config, ConfigSource};
use crate::duration::HumanDuration;
use crate::handle::Observer;
use crate::messages::Notice;
use crate::responders::Snapshot;
use crate::status::Status;
use crate::supervision::{RestartDecision, RestartOnFailure, RestartTracker};

/// What a child is started with: the supervisor to report to, and the
/// state of the service it may read.
#[derive(Clone)]
pub(crate) struct ChildContext {
    /// Where to send its reports ([`crate::messages::ChildExited`] and
    /// its own typed messages).
    pub(crate) supervisor: Addr<SupervisorActor>,
    /// The configuration serving now.
    pub(crate) config: Arc<Config>,
    /// Where the configuration comes from.
    pub(crate) source: ConfigSource,
    /// The responder types known.
    pub(crate) registry: Arc<Registry>,
    /// The responder chain serving now.
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    /// Who hears about the service's lifecycle.
    pub(crate) observer: Arc<dyn Observer>,
    /// The listener's addresses once it answers; empty before.
    pub(crate) bound: Vec<SocketAddr>,
    /// The services registered now.
    pub(crate) services: crate::services::Store,
}

/// How a child is restarted when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Never: it ends when its work is done.
    Never,
    /// On failure, as the strategy says. Past its limit, the service gives
    /// up (exit 4) if the child is `essential`, and goes on without it
    /// otherwise.
    OnFailure {
        /// The strategy.
        strategy: RestartOnFailure,
        /// Whether the service cannot go on without it.
        essential: bool,
    },
}

impl Restart {
    /// Restart-on-failure with the default strategy, for a child the
    /// service answers without: past its limit, the service goes on.
    pub(crate) fn optional() -> Self {
        Restart::OnFailure {
            strategy: RestartOnFailure::default(),
            essential: false,
        }
    }

    /// Restart-on-failure that never gives up, every 1 s at first, then
    /// backing off to every 30 s: for a child that waits on the world (a
    /// port another program holds), which comes back when the world does
    /// and never stops the service.
    pub(crate) fn persistent() -> Self {
        Restart::OnFailure {
            strategy: RestartOnFailure {
                max_restarts: u32::MAX,
                within: HumanDuration::from_millis(60_000),
                backoff: HumanDuration::from_millis(1_000),
                backoff_max: HumanDuration::from_millis(30_000),
            },
            essential: false,
        }
    }
}

/// A supervised child.
pub(crate) trait Child {
    /// Its name, for logs.
    fn name(&self) -> &'static str;
    /// How it is restarted.
    fn restart(&self) -> Restart;
    /// Starts (or restarts) it; it takes [`Notice`]s there.
    fn start(&mut self, ctx: &ChildContext) -> Recipient<Notice>;
    /// Finishes its work before the service ends (such as goodbyes on
    /// the network); called once, when the service stops.
    fn stop(&mut self) {}
    /// Adds its part to the status document.
    fn status(&self, _status: &mut Status) {}
}

/// What the set decided about a child that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing to do: it ended as it should, or is not restarted.
    Done,
    /// Restart it after this delay.
    Restart(Duration),
    /// Too many failures: give up on it.
    GiveUp {
        /// Restarts made within the window.
        restarts: u32,
        /// The window.
        window: Duration,
        /// Whether the service must stop.
        essential: bool,
    },
}

struct Entry {
    child: Box<dyn Child>,
    restarts: Option<RestartTracker>,
    running: Option<Recipient<Notice>>,
}

/// The children, each with its restart history.
pub(crate) struct Children {
    entries: Vec<Entry>,
}

impl Children {
    /// A set of children, not started yet.
    pub(crate) fn new(children: Vec<Box<dyn Child>>) -> Self {
        let entries = children
            .into_iter()
            .map(|child| Entry {
                restarts: match child.restart() {
                    Restart::OnFailure { strategy, .. } => Some(RestartTracker::new(strategy)),
                    Restart::Never => None,
                },
                child,
                running: None,
            })
            .collect();
        Self { entries }
    }

    /// Starts every child.
    pub(crate) fn start_all(&mut self, ctx: &ChildContext) {
        for entry in &mut self.entries {
            entry.running = Some(entry.child.start(ctx));
        }
    }

    /// Starts the child `name` again.
    pub(crate) fn restart(&mut self, name: &str, ctx: &ChildContext) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.child.name() == name) {
            entry.running = Some(entry.child.start(ctx));
        }
    }

    /// Tells every running child.
    pub(crate) fn notify(&self, notice: &Notice) {
        for recipient in self.entries.iter().filter_map(|e| e.running.as_ref()) {
            recipient.do_send(notice.clone());
        }
    }

    /// Lets every child add its part to the status document.
    pub(crate) fn status(&self, status: &mut Status) {
        for entry in &self.entries {
            entry.child.status(status);
        }
    }

    /// Stops every child, the last started first.
    pub(crate) fn stop_all(&mut self) {
        for entry in self.entries.iter_mut().rev() {
            entry.running = None;
            entry.child.stop();
        }
    }

    /// The child `name` ended, with `failed` if it failed: what follows.
    pub(crate) fn exited(
        &mut self,
        name: &str,
        failed: bool,
        now: Instant,
        jitter: f64,
    ) -> Decision {
        let Some(entry) = self.entries.iter_mut().find(|e| e.child.name() == name) else {
            return Decision::Done;
        };
        entry.running = None;
        let (Some(tracker), true) = (&mut entry.restarts, failed) else {
            return Decision::Done;
        };
        let essential = matches!(
            entry.child.restart(),
            Restart::OnFailure {
                essential: true,
                ..
            }
        );
        match tracker.on_failure(now, jitter) {
            RestartDecision::Restart { delay, .. } => Decision::Restart(delay),
            RestartDecision::GiveUp { restarts, window } => Decision::GiveUp {
                restarts,
                window,
                essential,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dummy(Restart);

    impl Child for Dummy {
        fn name(&self) -> &'static str {
            "dummy"
        }
        fn restart(&self) -> Restart {
            self.0.clone()
        }
        fn start(&mut self, _: &ChildContext) -> Recipient<Notice> {
            unreachable!("not started in these tests")
        }
    }

    fn on_failure(max_restarts: u32, essential: bool) -> Restart {
        Restart::OnFailure {
            strategy: RestartOnFailure {
                max_restarts,
                within: HumanDuration::from_millis(60_000),
                backoff: HumanDuration::from_millis(10),
                backoff_max: HumanDuration::from_millis(100),
            },
            essential,
        }
    }

    #[test]
    fn each_child_follows_its_own_strategy() {
        let now = Instant::now();
        let mut never = Children::new(vec![Box::new(Dummy(Restart::Never))]);
        assert_eq!(never.exited("dummy", true, now, 0.0), Decision::Done);

        let mut optional = Children::new(vec![Box::new(Dummy(on_failure(1, false)))]);
        assert_eq!(
            optional.exited("dummy", false, now, 0.0),
            Decision::Done,
            "a clean end"
        );
        assert_eq!(
            optional.exited("dummy", true, now, 0.0),
            Decision::Restart(Duration::ZERO)
        );
        assert!(matches!(
            optional.exited("dummy", true, now, 0.0),
            Decision::GiveUp {
                restarts: 1,
                essential: false,
                ..
            }
        ));

        let mut persistent = Children::new(vec![Box::new(Dummy(Restart::persistent()))]);
        let delays: Vec<Decision> = (0..40)
            .map(|i| persistent.exited("dummy", true, now + Duration::from_secs(i), 0.0))
            .collect();
        assert!(
            delays.iter().all(|d| matches!(d, Decision::Restart(_))),
            "never gives up: {delays:?}"
        );
        assert!(delays
            .iter()
            .all(|d| matches!(d, Decision::Restart(t) if *t <= Duration::from_secs(30))));

        let mut essential = Children::new(vec![Box::new(Dummy(on_failure(0, true)))]);
        assert!(matches!(
            essential.exited("dummy", true, now, 0.0),
            Decision::GiveUp {
                essential: true,
                ..
            }
        ));
        assert_eq!(essential.exited("nobody", true, now, 0.0), Decision::Done);
    }
}
