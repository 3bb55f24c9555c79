//! A bounded flood on loopback: junk, plus valid requests from many
//! spoofed-looking sources (many ports on 256 addresses in 127/8), at the
//! machine's full rate, while a well-behaved client asks 10 times a second
//! from its own address.
//!
//! ```text
//! cargo bench --bench flood               # 30 s, the figures in README
//! cargo bench --bench flood -- --quick    # 3 s smoke run (CI)
//! ```
//!
//! It holds discoveryd to: RSS below 32 MB, still answering `status`, and
//! the well-behaved client answered within 100 ms for at least 99% of its
//! requests. The rate-limit exemption for loopback is emptied, so every
//! source here is limited as a LAN host would be.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let length = if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(30)
    };
    let work = tempfile::tempdir().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = work.path().join("flood.toml");
    std::fs::write(
        &config,
        format!("port = {port}\nbind = \"0.0.0.0\"\n[security]\nrate_limit_exempt = []\n"),
    )
    .unwrap();
    let pidfile = work.path().join("flood.pid");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_discoveryd"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--pidfile",
            pidfile.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn discoveryd");
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let polite = UdpSocket::bind("127.0.0.1:0").unwrap();
    polite
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(&polite, target).is_none() {
        assert!(Instant::now() < deadline, "discoveryd did not start");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..2u8)
        .map(|t| {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || flood(t, target, &stop, &sent))
        })
        .collect();

    let started = Instant::now();
    let (mut asked, mut answered, mut worst) = (0u32, 0u32, Duration::ZERO);
    let mut peak_rss = 0u64;
    let mut status_ms = None;
    while started.elapsed() < length {
        let tick = Instant::now();
        asked += 1;
        if let Some(rtt) = ask(&polite, target) {
            answered += 1;
            worst = worst.max(rtt);
        }
        peak_rss = peak_rss.max(rss_kb(daemon.id()));
        if status_ms.is_none() && started.elapsed() > length / 2 {
            let t = Instant::now();
            let ok = Command::new(env!("CARGO_BIN_EXE_discoveryd"))
                .args(["status", "--pidfile", pidfile.to_str().unwrap()])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            status_ms = ok.then(|| t.elapsed().as_secs_f64() * 1e3);
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let status = Command::new(env!("CARGO_BIN_EXE_discoveryd"))
        .args(["status", "--json", "--pidfile", pidfile.to_str().unwrap()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let alive = daemon.try_wait().ok().flatten().is_none();
    let _ = daemon.kill();
    let _ = daemon.wait();

    let flood_sent = sent.load(Ordering::Relaxed);
    let ratio = f64::from(answered) / f64::from(asked.max(1));
    println!(
        "flood: {:.0} s, {flood_sent} datagrams ({:.0}/s) from 256 addresses and many ports",
        length.as_secs_f64(),
        flood_sent as f64 / length.as_secs_f64()
    );
    println!("discoveryd alive after the flood: {alive}");
    println!(
        "peak RSS during the flood: {:.1} MB (limit 32 MB)",
        peak_rss as f64 / 1024.0
    );
    println!(
        "status answered mid-flood in: {}",
        status_ms.map_or("no answer".into(), |ms| format!("{ms:.1} ms"))
    );
    println!("well-behaved client: {answered} of {asked} answered within 100 ms ({:.1}%), slowest {:.2} ms", ratio * 100.0, worst.as_secs_f64() * 1e3);
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&status) {
        println!("counters at the end: {}", doc["counters"]);
    }
    let pass = alive && peak_rss < 32 * 1024 && status_ms.is_some() && ratio >= 0.99;
    println!(
        "flood: {}",
        if pass {
            "all limits held"
        } else {
            "A LIMIT WAS BROKEN"
        }
    );
    if !pass && !quick {
        std::process::exit(1);
    }
    assert!(alive, "discoveryd died during the flood");
}

/// One request; its round trip, if answered within the socket's timeout.
fn ask(socket: &UdpSocket, target: SocketAddr) -> Option<Duration> {
    let start = Instant::now();
    socket.send_to(b"DISCOVER_SERVER", target).ok()?;
    let mut buf = [0u8; 128];
    socket.recv_from(&mut buf).ok()?;
    Some(start.elapsed())
}

/// Floods from 128 sockets on 127.(t+1).x.y: valid requests, and junk of
/// every size up to 1500 bytes. Replies are read and dropped.
fn flood(t: u8, target: SocketAddr, stop: &AtomicBool, sent: &AtomicU64) {
    let sockets: Vec<UdpSocket> = (0..128u8)
        .filter_map(|i| {
            UdpSocket::bind((std::net::Ipv4Addr::new(127, t + 1, i / 16, 1 + i % 16), 0)).ok()
        })
        .collect();
    for s in &sockets {
        s.set_nonblocking(true).unwrap();
    }
    let junk: Vec<u8> = (0..1500u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut buf = [0u8; 256];
    let mut n = 0u64;
    let mut seed = 12345u32 + u32::from(t);
    while !stop.load(Ordering::Relaxed) {
        for s in &sockets {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let payload: &[u8] = if seed % 2 == 0 {
                b"DISCOVER_SERVER"
            } else {
                &junk[..(seed as usize >> 8) % junk.len()]
            };
            if s.send_to(payload, target).is_ok() {
                n += 1;
            }
            while s.recv_from(&mut buf).is_ok() {}
        }
    }
    sent.fetch_add(n, Ordering::Relaxed);
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
