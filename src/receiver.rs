//! The receive loop: one blocking thread per socket that reads a batch of
//! datagrams, asks the current responder chain about each, and sends the
//! replies back in a batch.
//!
//! Per batch it loads the snapshot once (lock-free, no allocation); per
//! datagram it takes no lock, sends no actor message and allocates nothing.
//! Recoverable socket errors are skipped; an unrecoverable one, or a panic
//! in a responder, ends the loop with an error for the supervisor.
//!
//! With `reply_jitter` set, answers wait in the loop's own bounded queue
//! ([`Delayed`], allocated once) for a random send time, and the loop's
//! wait for datagrams ends at the next one. An answer that finds the queue
//! full is sent at once and counted (`undelayed`). Without it, the loop is
//! exactly the one above: the queue is never made, never looked at.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use discoveryd_api::Request;
use ipnet::IpNet;
use nix::errno::Errno;

use crate::net::{wake, Batch, BindError, Datagram, Delayed, Sent};
use crate::policy::{Limiter, Policy, Refusal};
use crate::responders::{Outcome, Snapshot};
use crate::stats::{BatchCounts, Counters};

/// What a receive loop shares with whoever runs it.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The current settings and responder chain.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// The counters.
    pub counters: Arc<Counters>,
    /// The directly connected subnets (for `on_link_only`), kept current
    /// by the supervisor.
    pub subnets: Arc<ArcSwap<Vec<IpNet>>>,
}

/// A receive loop running on its own thread.
#[derive(Debug)]
pub(crate) struct Receiver {
    socket: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts the loop on `socket`. `on_failure` runs on the loop's thread
    /// if the loop ends with an error.
    pub(crate) fn spawn(
        socket: UdpSocket,
        shared: Shared,
        on_failure: impl FnOnce(ListenerError) + Send + 'static,
    ) -> std::io::Result<Self> {
        let socket = Arc::new(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let name = format!("recv {}", socket.local_addr()?);
        let thread = std::thread::Builder::new().name(name).spawn({
            let socket = Arc::clone(&socket);
            let stop = Arc::clone(&stop);
            move || {
                if let Err(e) = serve(&socket, &shared, &stop) {
                    on_failure(e);
                }
            }
        })?;
        Ok(Self {
            socket,
            stop,
            thread: Some(thread),
        })
    }

    /// The socket this loop receives on.
    pub(crate) fn socket(&self) -> &Arc<UdpSocket> {
        &self.socket
    }

    /// Stops the loops after they have answered what is already queued,
    /// all at once, and waits for them; each socket closes when its
    /// receiver drops.
    pub(crate) fn stop_all(receivers: &mut [Receiver]) {
        for r in receivers.iter() {
            r.stop.store(true, Ordering::Release);
            wake(r.socket.as_ref());
        }
        for r in receivers.iter_mut() {
            if let Some(thread) = r.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        Self::stop_all(std::slice::from_mut(self));
    }
}

fn serve(socket: &UdpSocket, shared: &Shared, stop: &AtomicBool) -> Result<(), ListenerError> {
    let fd = socket.as_raw_fd();
    let bound = socket.local_addr().map_err(|error| ListenerError::Socket {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        error,
    })?;
    let first = shared.snapshot.load();
    let mut batch = Batch::new(first.buffer_size);
    let mut limiter = Limiter::new(first.policy.rate.sources, first.workers);
    drop(first);
    // Made when a `reply_jitter` is first seen; kept (and drained) after.
    let mut delayed: Option<Box<Delayed>> = None;
    let mut rng = fastrand::Rng::new();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let mut wait = !stopping;
        if let Some(queue) = delayed.as_deref_mut().filter(|q| !q.is_empty()) {
            let sent = queue.send_due(fd, Some(Instant::now()));
            shared.counters.add(sent_counts(sent));
            if let Some(due) = queue.next_due().filter(|_| wait) {
                wait_readable(socket, due);
                wait = false;
            }
        }
        match batch.recv(fd, wait) {
            Ok(_) => {}
            Err(Errno::EAGAIN) if stopping => {
                flush(&mut delayed, fd, shared);
                return Ok(());
            }
            Err(
                Errno::EINTR | Errno::EAGAIN | Errno::ENOMEM | Errno::ENOBUFS | Errno::ECONNREFUSED,
            ) => continue,
            Err(e) => {
                return Err(ListenerError::Socket {
                    addr: bound,
                    error: e.into(),
                })
            }
        }
        // After `wake` (which only follows the stop flag), the socket
        // yields zero-length reads: markers, not datagrams (their sender
        // is whatever the slot last held, so only the flag tells them apart).
        let woken = stop.load(Ordering::Acquire) && batch.datagrams().iter().any(|d| d.len == 0);

        let snapshot = shared.snapshot.load();
        let subnets = shared.subnets.load();
        let policy = &snapshot.policy;
        let share = 1.0 / snapshot.workers.max(1) as f64;
        let now = Instant::now();
        let mut counts = BatchCounts::default();
        let mut panicked = None;
        batch.process(|d, payload, reply| {
            let Some(peer) = d.peer.filter(|_| !(woken && d.len == 0)) else {
                return false;
            };
            let exempt = match admit(policy, d, peer, bound.port(), payload, &subnets) {
                Ok(exempt) => exempt,
                Err(why) => {
                    counts.refuse(why);
                    return false;
                }
            };
            let local_ip = d.local.unwrap_or(bound.ip());
            let request = Request::new(
                payload,
                peer,
                SocketAddr::new(local_ip, bound.port()),
                snapshot.advertise_ip.unwrap_or(local_ip),
            )
            .with_max_reply(policy.max_reply(payload.len(), peer.is_ipv6()));
            match snapshot.respond(&request, reply) {
                Outcome::Replied => {
                    let verdict = if !policy.reply_fits(payload.len(), reply.len(), peer.is_ipv6())
                    {
                        Err(Refusal::Amplification)
                    } else if exempt {
                        Ok(())
                    } else {
                        limiter.allow(peer.ip(), now, &policy.rate, share)
                    };
                    verdict.map_err(|why| counts.refuse(why)).is_ok()
                }
                Outcome::Ignored => {
                    counts.ignored += 1;
                    false
                }
                Outcome::Panicked { responder, message } => {
                    panicked.get_or_insert(ListenerError::Panic { responder, message });
                    false
                }
            }
        });
        if !snapshot.reply_jitter.is_zero() {
            let queue = delayed.get_or_insert_with(|| Box::new(Delayed::new()));
            let span = snapshot.reply_jitter.as_nanos() as u64;
            batch.defer(|d, reply| {
                let at = now + Duration::from_nanos(rng.u64(0..=span));
                let held = queue.hold(d, reply, at);
                counts.undelayed += u64::from(!held);
                held
            });
        }
        let sent = batch.send(fd);
        counts.answered = sent.sent as u64;
        counts.send_failed = sent.failed as u64;
        shared.counters.add(counts);
        if let Some(error) = panicked {
            return Err(error);
        }
        if snapshot.buffer_size != batch.buffer_size() {
            batch = Batch::new(snapshot.buffer_size);
        }
        if limiter.made_for() != (policy.rate.sources, snapshot.workers.max(1)) {
            limiter = Limiter::new(policy.rate.sources, snapshot.workers);
        }
        if woken {
            flush(&mut delayed, fd, shared);
            return Ok(());
        }
    }
}

/// Blocks until `socket` is readable or `until` has come (rounded up to
/// the millisecond, so that the wait never spins).
fn wait_readable(socket: &UdpSocket, until: Instant) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let left = until.saturating_duration_since(Instant::now());
    let ms = left.as_nanos().div_ceil(1_000_000).min(u16::MAX.into()) as u16;
    if ms > 0 {
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }
}

/// Sends every held answer now: a loop that stops answers what it took.
fn flush(delayed: &mut Option<Box<Delayed>>, fd: RawFd, shared: &Shared) {
    if let Some(queue) = delayed.as_deref_mut() {
        shared.counters.add(sent_counts(queue.send_due(fd, None)));
    }
}

fn sent_counts(sent: Sent) -> BatchCounts {
    BatchCounts {
        answered: sent.sent as u64,
        send_failed: sent.failed as u64,
        ..BatchCounts::default()
    }
}

/// The checks before any responder sees a datagram: its size, then the
/// policy. `Ok(true)` when the source is exempt from rate limits.
fn admit(
    policy: &Policy,
    d: &Datagram,
    peer: SocketAddr,
    own_port: u16,
    payload: &[u8],
    subnets: &[IpNet],
) -> Result<bool, Refusal> {
    if d.oversize {
        return Err(Refusal::Oversize);
    }
    if payload.is_empty() {
        return Err(Refusal::Empty);
    }
    policy.admit(peer, own_port, payload, subnets)
}

/// Why a listener failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ListenerError {
    /// A bind failed for another reason than a busy port.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A socket failed in a way the receive loop cannot recover from.
    #[error("socket {addr} failed: {error}")]
    Socket {
        /// The socket's local address.
        addr: SocketAddr,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A responder panicked while answering.
    #[error("responder {responder} panicked: {message}")]
    Panic {
        /// The responder's name.
        responder: String,
        /// The panic message.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigSource};
    use crate::responders::registry;

    /// Serves `n` datagrams (valid and junk, alternately) on this thread
    /// and returns how many allocations serving them took.
    fn allocations_to_serve(n: usize) -> u64 {
        allocations_to_serve_with(n, None)
    }

    /// As [`allocations_to_serve`], with answers delayed by up to `jitter`.
    fn allocations_to_serve_with(n: usize, jitter: Option<&str>) -> u64 {
        let socket = crate::net::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        // Loopback is not exempt here, so the rate limiter runs for every
        // request too (with limits high enough to answer them all).
        let mut config = Config::default();
        config.security.rate_limit_exempt.clear();
        config.security.rate_limit.per_source = 1e9;
        config.security.rate_limit.burst = 1e9;
        config.security.rate_limit.global = 1e9;
        config.reply_jitter = jitter.map(|j| j.parse().unwrap());
        let snapshot = Snapshot::first(&config, &registry(), &ConfigSource::default()).unwrap();
        let shared = Shared {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            counters: Arc::default(),
            subnets: Arc::default(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let socket = Arc::new(socket);
        let client = std::thread::spawn({
            let (stop, socket) = (Arc::clone(&stop), Arc::clone(&socket));
            move || {
                let client = UdpSocket::bind("127.0.0.1:0").unwrap();
                client
                    .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                let mut buf = [0u8; 64];
                for i in 0..n {
                    if i % 2 == 0 {
                        client.send_to(b"DISCOVER_SERVER", addr).unwrap();
                        let (len, _) = client.recv_from(&mut buf).unwrap();
                        assert_eq!(&buf[..len], b"SERVER_IP:127.0.0.1");
                    } else {
                        client.send_to(b"junk that gets no answer", addr).unwrap();
                    }
                }
                stop.store(true, Ordering::Release);
                wake(socket.as_ref());
            }
        });
        let info = allocation_counter::measure(|| serve(&socket, &shared, &stop).unwrap());
        client.join().unwrap();
        let counters = &shared.counters;
        assert_eq!(
            counters.answered.load(Ordering::Relaxed),
            n.div_ceil(2) as u64
        );
        info.count_total
    }

    #[test]
    fn the_receive_loop_allocates_nothing_per_datagram() {
        // The first run in a process pays one-time lazy initialisations.
        allocations_to_serve(2);
        assert_eq!(allocations_to_serve(50), allocations_to_serve(2_000));
    }

    #[test]
    fn with_reply_jitter_the_receive_loop_allocates_nothing_per_datagram_either() {
        // The queue is made once, at the first answer to delay.
        let jitter = Some("1ms");
        allocations_to_serve_with(2, jitter);
        assert_eq!(
            allocations_to_serve_with(50, jitter),
            allocations_to_serve_with(1_000, jitter)
        );
    }
}
