//! Supervision strategies as values: what the supervisor does when a child
//! fails (restart-on-failure) or cannot bind its port (retry-after-cleanup).
//!
//! Both are plain config structs (`[supervision.*]`); the decisions they
//! imply are pure functions of the strategy and the clock, so they are
//! tested without actors or sockets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::net::{port_holder, BindError, BindErrorKind, ProcessInfo};

/// The `[supervision]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Supervision {
    /// What to do when the listener fails (socket error or responder panic).
    pub restart_on_failure: RestartOnFailure,
    /// What to do when the listener's port is busy.
    pub retry_after_cleanup: RetryAfterCleanup,
}

/// Restart a failed child: the first restart at once, then exponential
/// backoff with jitter up to `backoff_max`; give up after more than
/// `max_restarts` restarts within a sliding window of `within`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartOnFailure {
    /// Restarts allowed within the window before the supervisor gives up.
    pub max_restarts: u32,
    /// The sliding window restarts are counted over.
    pub within: HumanDuration,
    /// The delay before the second restart in a window; it doubles after.
    pub backoff: HumanDuration,
    /// The cap on the delay between restarts.
    pub backoff_max: HumanDuration,
}

impl Default for RestartOnFailure {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            within: HumanDuration::from_millis(60_000),
            backoff: HumanDuration::from_millis(50),
            backoff_max: HumanDuration::from_millis(5_000),
        }
    }
}

/// Retry a child whose port is busy, once its previous incarnation has
/// closed its sockets: up to `attempts` retries, `delay` apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryAfterCleanup {
    /// Retries after the first failed bind.
    pub attempts: u32,
    /// The pause between two attempts.
    pub delay: HumanDuration,
}

impl Default for RetryAfterCleanup {
    fn default() -> Self {
        Self {
            attempts: 3,
            delay: HumanDuration::from_millis(500),
        }
    }
}

impl RetryAfterCleanup {
    /// What to do after bind number `attempt` (1-based: the first retry
    /// follows the first failure) failed with `failure`. Called only once
    /// the failed incarnation has closed its sockets, so a retry never
    /// races its predecessor's cleanup. A busy port, or an address not on
    /// this host yet, is retried `attempts` times, `delay` apart; anything
    /// else (a forbidden port, say) is fatal at once.
    pub(crate) fn decide(&self, failure: &BindFailure, attempt: u32) -> RetryDecision {
        if failure.retryable() && attempt <= self.attempts {
            RetryDecision::Retry {
                after: self.delay.get(),
            }
        } else {
            RetryDecision::GiveUp
        }
    }
}

/// What retry-after-cleanup decided about one failed bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryDecision {
    /// Bind again after this delay.
    Retry {
        /// The delay.
        after: Duration,
    },
    /// Stop trying.
    GiveUp,
}

/// A bind that failed, as retry-after-cleanup sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindFailure {
    /// The port is busy; who holds it, when that can be seen.
    Busy(Option<ProcessInfo>),
    /// Any other bind error, classified, with what the OS said.
    Other(BindErrorKind, String),
}

impl BindFailure {
    /// Classifies a failed bind of `addr`; a busy port's holder is looked up.
    pub(crate) fn of(error: &BindError) -> Self {
        match error.kind {
            BindErrorKind::InUse => BindFailure::Busy(port_holder(error.addr.port())),
            kind => BindFailure::Other(kind, error.source.to_string()),
        }
    }

    /// The config key to blame: a busy or forbidden port is `port`'s
    /// fault when the port changed, an address not on this host is `bind`'s.
    pub(crate) fn key(&self, port_changed: bool) -> &'static str {
        match self {
            BindFailure::Busy(_) if port_changed => "port",
            BindFailure::Other(BindErrorKind::PermissionDenied, _) => "port",
            _ => "bind",
        }
    }

    pub(crate) fn retryable(&self) -> bool {
        matches!(
            self,
            BindFailure::Busy(_) | BindFailure::Other(BindErrorKind::NotAvailable, _)
        )
    }
}

/// What restart-on-failure decided about one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartDecision {
    /// Restart after this delay (zero for the first restart in a window).
    Restart {
        /// How long to wait before the restart.
        delay: Duration,
        /// Restarts in the window, this one included.
        restarts: u32,
    },
    /// Too many restarts within the window: stop trying.
    GiveUp {
        /// Restarts made within the window.
        restarts: u32,
        /// The window they were counted over.
        window: Duration,
    },
}

/// The restart history of one child, over the strategy's sliding window.
#[derive(Debug, Clone)]
pub(crate) struct RestartTracker {
    strategy: RestartOnFailure,
    restarts: VecDeque<Instant>,
}

impl RestartTracker {
    /// A tracker with no restarts yet.
    pub(crate) fn new(strategy: RestartOnFailure) -> Self {
        Self {
            strategy,
            restarts: VecDeque::new(),
        }
    }

    /// Replaces the strategy (after a config reload), keeping the history.
    pub(crate) fn set_strategy(&mut self, strategy: RestartOnFailure) {
        self.strategy = strategy;
    }

    /// Records a failure at `now` and decides what to do. `jitter` in
    /// `[0, 1)` spreads the delay over its upper half.
    pub(crate) fn on_failure(&mut self, now: Instant, jitter: f64) -> RestartDecision {
        let window = self.strategy.within.get();
        while self
            .restarts
            .front()
            .is_some_and(|&t| now.duration_since(t) >= window)
        {
            self.restarts.pop_front();
        }
        let made = self.restarts.len() as u32;
        if made >= self.strategy.max_restarts {
            return RestartDecision::GiveUp {
                restarts: made,
                window,
            };
        }
        self.restarts.push_back(now);
        RestartDecision::Restart {
            delay: self.delay(made, jitter),
            restarts: made + 1,
        }
    }

    /// The delay before a restart when `made` restarts are in the window.
    fn delay(&self, made: u32, jitter: f64) -> Duration {
        if made == 0 {
            return Duration::ZERO;
        }
        let cap = self.strategy.backoff_max.get();
        let exp = self
            .strategy
            .backoff
            .get()
            .saturating_mul(1 << (made - 1).min(20));
        let full = exp.min(cap);
        full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(max_restarts: u32, within_ms: u64) -> RestartOnFailure {
        RestartOnFailure {
            max_restarts,
            within: HumanDuration::from_millis(within_ms),
            backoff: HumanDuration::from_millis(100),
            backoff_max: HumanDuration::from_millis(350),
        }
    }

    fn delay(d: RestartDecision) -> Duration {
        match d {
            RestartDecision::Restart { delay, .. } => delay,
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn first_restart_is_immediate_then_backoff_doubles_up_to_the_cap() {
        let mut t = RestartTracker::new(strategy(10, 60_000));
        let now = Instant::now();
        let ms = Duration::from_millis;
        // With jitter 0 the delay is the lower half of the step; with
        // jitter just below 1 it approaches the full step.
        assert_eq!(delay(t.on_failure(now, 0.0)), Duration::ZERO);
        assert_eq!(delay(t.on_failure(now, 0.0)), ms(50));
        assert_eq!(delay(t.on_failure(now, 0.0)), ms(100));
        assert_eq!(delay(t.on_failure(now, 0.0)), ms(175)); // capped at 350
        let top = delay(t.on_failure(now, 0.999_999));
        assert!(top > ms(349) && top < ms(350), "{top:?}");
    }

    #[test]
    fn gives_up_past_max_restarts_within_the_window() {
        let mut t = RestartTracker::new(strategy(3, 1_000));
        let start = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                t.on_failure(start + Duration::from_millis(i * 10), 0.5),
                RestartDecision::Restart { .. }
            ));
        }
        assert_eq!(
            t.on_failure(start + Duration::from_millis(40), 0.5),
            RestartDecision::GiveUp {
                restarts: 3,
                window: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn the_window_slides_so_old_restarts_stop_counting() {
        let mut t = RestartTracker::new(strategy(2, 1_000));
        let start = Instant::now();
        t.on_failure(start, 0.5);
        t.on_failure(start + Duration::from_millis(500), 0.5);
        // The first restart has left the window: one restart is allowed again,
        // and it is not the first in its window, so it is delayed.
        let decision = t.on_failure(start + Duration::from_millis(1_100), 0.0);
        assert_eq!(
            decision,
            RestartDecision::Restart {
                delay: Duration::from_millis(50),
                restarts: 2
            }
        );
        // Long after, the window is empty and the next restart is immediate again.
        let decision = t.on_failure(start + Duration::from_secs(10), 0.0);
        assert_eq!(
            decision,
            RestartDecision::Restart {
                delay: Duration::ZERO,
                restarts: 1
            }
        );
    }

    #[test]
    fn retry_after_cleanup_counts_its_attempts_and_classifies_errors() {
        let r = RetryAfterCleanup {
            attempts: 2,
            delay: HumanDuration::from_millis(20),
        };
        let busy = BindFailure::Busy(None);
        let retry = RetryDecision::Retry {
            after: Duration::from_millis(20),
        };
        assert_eq!(r.decide(&busy, 1), retry);
        assert_eq!(r.decide(&busy, 2), retry);
        assert_eq!(r.decide(&busy, 3), RetryDecision::GiveUp);
        let not_yet = BindFailure::Other(BindErrorKind::NotAvailable, "not here".into());
        assert_eq!(r.decide(&not_yet, 1), retry);
        let forbidden = BindFailure::Other(BindErrorKind::PermissionDenied, "no".into());
        assert_eq!(r.decide(&forbidden, 1), RetryDecision::GiveUp);
    }
}
