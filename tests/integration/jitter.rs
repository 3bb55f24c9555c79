//! `reply_jitter`: answers spread over a random delay, none lost; off, at
//! once; and a reload turns it on.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::util::{loopback, ConfigDir, Daemon, DEADLINE};

/// Requests per measurement, each from its own socket, all sent at once.
const REQUESTS: usize = 50;

/// How long each of `REQUESTS` requests, sent together from as many
/// sockets, waited for its answer; `None` for one never answered.
fn delays(port: u16) -> Vec<Option<Duration>> {
    let sockets: Vec<UdpSocket> = (0..REQUESTS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let threads: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            std::thread::spawn(move || {
                socket.set_read_timeout(Some(DEADLINE)).unwrap();
                let sent = Instant::now();
                socket
                    .send_to(b"DISCOVER_SERVER", ("127.0.0.1", port))
                    .unwrap();
                let mut buf = [0u8; 64];
                let (n, from) = socket.recv_from(&mut buf).ok()?;
                let waited = sent.elapsed();
                assert_eq!(&buf[..n], b"SERVER_IP:127.0.0.1");
                assert_eq!(from.port(), port);
                Some(waited)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The answered delays, sorted; fails if any request went unanswered.
fn all_answered(port: u16) -> Vec<Duration> {
    let got = delays(port);
    let lost = got.iter().filter(|d| d.is_none()).count();
    assert_eq!(lost, 0, "{lost} of {REQUESTS} requests never answered");
    let mut got: Vec<Duration> = got.into_iter().flatten().collect();
    got.sort();
    got
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

/// Spread over [0, 200 ms]: 50 uniform delays have a median near 100 ms
/// (below 40 ms: odds under 1e-7) and a range near 200 ms (below 100 ms:
/// under 1e-13). Without jitter, loopback answers take well under 20 ms.
fn assert_spread(sorted: &[Duration]) {
    let (first, last) = (sorted[0], sorted[sorted.len() - 1]);
    assert!(
        median(sorted) >= Duration::from_millis(40),
        "answers not delayed: {sorted:?}"
    );
    assert!(
        last - first >= Duration::from_millis(100),
        "answers not spread: {sorted:?}"
    );
    // The bound, with room for a loaded machine's scheduling.
    assert!(
        last <= Duration::from_millis(200 + 300),
        "an answer waited past reply_jitter: {sorted:?}"
    );
}

#[test]
fn reply_jitter_spreads_answers_within_its_bound_and_loses_none() {
    let config = ConfigDir::new(&loopback("reply_jitter = \"200ms\""));
    let (daemon, port) = Daemon::run(&config, &[]);
    assert_spread(&all_answered(port));
    // Every answer went through the queue: none was sent at once.
    let status = daemon.status();
    assert_eq!(status["counters"]["undelayed"], 0, "{status}");
}

#[test]
fn without_reply_jitter_answers_come_at_once_and_a_reload_turns_it_on() {
    let config = ConfigDir::new(&loopback(""));
    let (mut daemon, port) = Daemon::run(&config, &[]);
    let at_once = all_answered(port);
    assert!(
        median(&at_once) < Duration::from_millis(20),
        "answers delayed without reply_jitter: {at_once:?}"
    );
    config.write(&loopback("reply_jitter = \"200ms\""));
    let line = daemon.expect_stderr("config reloaded");
    assert!(line.contains("reply_jitter"), "{line}");
    assert_spread(&all_answered(port));
}
