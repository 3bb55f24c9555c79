//! Counters the receive loop keeps: added once per batch, never per
//! datagram, and read by whoever reports status.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::Refusal;

/// Totals since the process started, across listener restarts.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Requests answered.
    pub answered: AtomicU64,
    /// Datagrams no responder answered.
    pub ignored: AtomicU64,
    /// Datagrams refused, by [`Refusal`] index.
    pub refused: [AtomicU64; Refusal::ALL.len()],
    /// Replies the kernel refused to send.
    pub send_failed: AtomicU64,
    /// Answers sent at once although `reply_jitter` is set (its queue was
    /// full, or the answer longer than a queue slot).
    pub undelayed: AtomicU64,
    /// Listener restarts made by restart-on-failure.
    pub restarts: AtomicU64,
}

impl BatchCounts {
    /// Counts one refused datagram.
    pub(crate) fn refuse(&mut self, why: Refusal) {
        self.refused[why.index()] += 1;
    }
}

/// One batch's counts, added to [`Counters`] at once.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BatchCounts {
    /// Requests answered.
    pub answered: u64,
    /// Datagrams ignored.
    pub ignored: u64,
    /// Datagrams refused, by [`Refusal`] index.
    pub refused: [u64; Refusal::ALL.len()],
    /// Replies not sent.
    pub send_failed: u64,
    /// Answers sent at once although `reply_jitter` is set.
    pub undelayed: u64,
}

impl Counters {
    /// Adds one batch's counts.
    pub(crate) fn add(&self, batch: BatchCounts) {
        for (counter, &n) in self.refused.iter().zip(&batch.refused) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        for (counter, n) in [
            (&self.answered, batch.answered),
            (&self.ignored, batch.ignored),
            (&self.send_failed, batch.send_failed),
            (&self.undelayed, batch.undelayed),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}
