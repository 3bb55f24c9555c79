//! Counters the receive loop keeps: added once per batch, never per
//! datagram, and read by whoever reports status.

use std::sync::atomic::{AtomicU64, Ordering};

/// Totals since the process started, across listener restarts.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Requests answered.
    pub answered: AtomicU64,
    /// Datagrams no responder answered.
    pub ignored: AtomicU64,
    /// Datagrams refused before any responder saw them (empty, oversize).
    pub rejected: AtomicU64,
    /// Replies the kernel refused to send.
    pub send_failed: AtomicU64,
    /// Listener restarts made by restart-on-failure.
    pub restarts: AtomicU64,
}

/// One batch's counts, added to [`Counters`] at once.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BatchCounts {
    /// Requests answered.
    pub answered: u64,
    /// Datagrams ignored.
    pub ignored: u64,
    /// Datagrams refused.
    pub rejected: u64,
    /// Replies not sent.
    pub send_failed: u64,
}

impl Counters {
    /// Adds one batch's counts.
    pub(crate) fn add(&self, batch: BatchCounts) {
        for (counter, n) in [
            (&self.answered, batch.answered),
            (&self.ignored, batch.ignored),
            (&self.rejected, batch.rejected),
            (&self.send_failed, batch.send_failed),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}
