//! A closed-loop load generator, like redis-benchmark: `clients` sockets,
//! each keeping `window` requests in flight, for a bounded time or count.
//! Reports throughput, latency percentiles, and lost and malformed replies.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use serde::Serialize;

/// The longest a run may last, whatever is asked.
pub const MAX_DURATION: Duration = Duration::from_secs(300);

/// What load to send where.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The server to load.
    pub target: SocketAddr,
    /// Concurrent client sockets.
    pub clients: usize,
    /// Requests in flight per client.
    pub window: usize,
    /// Stop sending after this long.
    pub duration: Duration,
    /// Stop after this many requests in all (if set, before `duration`).
    pub requests: Option<u64>,
    /// The request payload.
    pub message: Vec<u8>,
    /// The prefix every valid reply starts with.
    pub response_prefix: Vec<u8>,
    /// How long a request may go unanswered before it counts as lost.
    pub reply_timeout: Duration,
    /// Stop sending when this is set (as at the deadline).
    pub stop: Option<Arc<AtomicBool>>,
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BenchReport {
    /// The server loaded.
    pub target: String,
    /// Client sockets.
    pub clients: usize,
    /// Requests in flight per client.
    pub window: usize,
    /// Requests sent.
    pub sent: u64,
    /// Valid replies received.
    pub replies: u64,
    /// Requests never answered within the reply timeout.
    pub lost: u64,
    /// Replies without the response prefix.
    pub malformed: u64,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Valid replies per second.
    pub requests_per_sec: f64,
    /// Median round trip, microseconds.
    pub p50_us: f64,
    /// 99th percentile round trip, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile round trip, microseconds.
    pub p999_us: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "target {}, {} clients x {} in flight, {:.2} s",
            self.target, self.clients, self.window, self.seconds
        )?;
        writeln!(f, "requests/s: {:.0}", self.requests_per_sec)?;
        writeln!(
            f,
            "latency:    p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
            self.p50_us, self.p99_us, self.p999_us
        )?;
        write!(
            f,
            "replies:    {} of {} sent (lost {}, malformed {})",
            self.replies, self.sent, self.lost, self.malformed
        )
    }
}

/// One client's tallies.
#[derive(Default)]
struct Tally {
    sent: u64,
    replies: u64,
    lost: u64,
    malformed: u64,
    rtts_ns: Vec<u32>,
}

/// Runs the load and reports. Every client stops sending at the deadline
/// (or when the request budget is spent) and waits for what is in flight.
pub fn bench(options: &BenchOptions) -> io::Result<BenchReport> {
    let clients = options.clients.max(1);
    let budget = Arc::new(AtomicU64::new(options.requests.unwrap_or(u64::MAX)));
    let start = Instant::now();
    let deadline = start + options.duration.min(MAX_DURATION);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let options = options.clone();
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || client(&options, &budget, deadline))
        })
        .collect();
    let mut total = Tally::default();
    for thread in threads {
        let t = thread
            .join()
            .map_err(|_| io::Error::other("a bench client panicked"))??;
        total.sent += t.sent;
        total.replies += t.replies;
        total.lost += t.lost;
        total.malformed += t.malformed;
        total.rtts_ns.extend(t.rtts_ns);
    }
    let seconds = start.elapsed().as_secs_f64();
    total.rtts_ns.sort_unstable();
    let pct = |p: f64| {
        let n = total.rtts_ns.len();
        if n == 0 {
            return 0.0;
        }
        let i = ((p / 100.0) * (n - 1) as f64).round() as usize;
        f64::from(total.rtts_ns[i]) / 1e3
    };
    Ok(BenchReport {
        target: options.target.to_string(),
        clients,
        window: options.window.max(1),
        sent: total.sent,
        replies: total.replies,
        lost: total.lost,
        malformed: total.malformed,
        seconds,
        requests_per_sec: total.replies as f64 / seconds,
        p50_us: pct(50.0),
        p99_us: pct(99.0),
        p999_us: pct(99.9),
    })
}

/// One closed-loop client. Replies to one socket come back in order on
/// loopback, so each reply is matched to the oldest request in flight.
/// Sends and receives are batched (`sendmmsg`, `recvmmsg`) so the load
/// generator takes as little CPU from the server as it can.
fn client(options: &BenchOptions, budget: &AtomicU64, deadline: Instant) -> io::Result<Tally> {
    let bind: SocketAddr = if options.target.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .expect("literal");
    let socket = UdpSocket::bind(bind)?;
    socket.connect(options.target)?;
    socket.set_read_timeout(Some(options.reply_timeout))?;
    let fd = socket.as_raw_fd();
    let window = options.window.max(1);
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(window);
    let mut tally = Tally {
        rtts_ns: Vec::with_capacity(1 << 16),
        ..Tally::default()
    };
    let stopped = || {
        options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    };
    let take = || {
        !stopped()
            && budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
    };
    let request = [IoSlice::new(&options.message)];
    let requests = vec![request; window];
    let no_addrs: Vec<Option<SockaddrStorage>> = vec![None; window];
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(window, None);
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(window, None);
    const REPLY_SIZE: usize = 2048;
    let mut replies = vec![0u8; window * REPLY_SIZE];
    let mut lengths = vec![0usize; window];
    loop {
        let mut want = 0;
        while in_flight.len() + want < window && Instant::now() < deadline && take() {
            want += 1;
        }
        let mut sent = 0;
        while sent < want {
            let batch = &requests[sent..want];
            match sendmmsg(
                fd,
                &mut send_headers,
                batch,
                &no_addrs[sent..want],
                [],
                MsgFlags::empty(),
            ) {
                Ok(results) => {
                    let n = results.count().max(1);
                    let now = Instant::now();
                    in_flight.extend(std::iter::repeat_n(now, n));
                    sent += n;
                }
                // A pending ICMP error (nobody listened a moment ago)
                // surfaces on the next send of a connected socket.
                Err(Errno::ECONNREFUSED) => {
                    tally.lost += 1;
                    sent += 1;
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tally.sent += want as u64;
        if in_flight.is_empty() {
            return Ok(tally);
        }
        let received = {
            let mut chunks = replies.chunks_exact_mut(REPLY_SIZE);
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = (0..in_flight.len())
                .map(|_| [IoSliceMut::new(chunks.next().expect("window chunks"))])
                .collect();
            match recvmmsg(
                fd,
                &mut recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => {
                    let mut n = 0;
                    for (msg, len) in results.zip(lengths.iter_mut()) {
                        *len = msg.bytes;
                        n += 1;
                    }
                    Ok(n)
                }
                Err(e) => Err(e),
            }
        };
        match received {
            Ok(n) => {
                for (i, &len) in lengths[..n].iter().enumerate() {
                    let sent_at = in_flight.pop_front().expect("a request is in flight");
                    let reply = &replies[i * REPLY_SIZE..i * REPLY_SIZE + len];
                    if reply.starts_with(&options.response_prefix) {
                        tally.replies += 1;
                        let rtt = sent_at.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
                        tally.rtts_ns.push(rtt);
                    } else {
                        tally.malformed += 1;
                    }
                }
            }
            // Nothing for a whole reply timeout: what is in flight is lost.
            Err(Errno::EAGAIN) => {
                tally.lost += in_flight.len() as u64;
                in_flight.clear();
            }
            // An ICMP error (nobody listening) surfaces on a connected socket.
            Err(Errno::ECONNREFUSED) => {
                tally.lost += in_flight.len() as u64;
                in_flight.clear();
                std::thread::sleep(options.reply_timeout.min(Duration::from_millis(50)));
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_replies_losses_and_malformed_answers() {
        // A toy server: answers every other request, alternately valid and not.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut i = 0u32;
            while let Ok((_, from)) = server.recv_from(&mut buf) {
                i += 1;
                match i % 4 {
                    1 => drop(server.send_to(b"SERVER_IP:127.0.0.1", from)),
                    3 => drop(server.send_to(b"junk", from)),
                    _ => {}
                }
            }
        });
        let report = bench(&BenchOptions {
            target,
            clients: 1,
            window: 1,
            duration: Duration::from_secs(10),
            requests: Some(8),
            message: b"DISCOVER_SERVER".to_vec(),
            response_prefix: b"SERVER_IP:".to_vec(),
            reply_timeout: Duration::from_millis(50),
            stop: None,
        })
        .unwrap();
        assert_eq!(
            (report.sent, report.replies, report.malformed, report.lost),
            (8, 2, 2, 4)
        );
        assert!(report.p50_us > 0.0);
    }
}
