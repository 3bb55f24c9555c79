//! The HTTP side's figures, from one release discoveryd on loopback:
//!
//! - `/metrics` scrape latency (p50, p99) over a kept-alive connection, as
//!   Prometheus scrapes: idle, and while the UDP responder is under full
//!   load;
//! - registration to discoverable: from sending `PUT /v1/services/{id}`
//!   (and from its answer) to the first json responder answer that lists
//!   the service, and the same for `DELETE`;
//! - the UDP throughput (`discoveryd bench`'s load generator, 2 clients x
//!   32 in flight) with a scrape loop at 10/s against without it, in
//!   interleaved rounds of one run (the machine is noisy: only the ratio
//!   counts; the target is within 5%).
//!
//! ```text
//! cargo bench --bench http             # the figures in README (about 1 minute)
//! cargo bench --bench http -- --quick  # a smoke run, as CI does
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discoveryd::{bench, BenchOptions};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, round, scrapes, registrations) = if quick {
        (2, Duration::from_millis(500), 50, 20)
    } else {
        (7, Duration::from_secs(3), 1000, 200)
    };
    let daemon = Daemon::start();
    let mut http = Http::connect(daemon.http);

    let idle: Vec<f64> = (0..scrapes).map(|_| http.scrape()).collect();

    let (to_listed, answer_to_listed, first_ask, deleted) =
        registrations_measured(&mut http, daemon.udp, registrations);

    // Interleaved rounds: without scrapes, then with 10 a second.
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut loaded = Vec::new();
    for i in 0..rounds * 2 {
        let scraping = i % 2 == 1;
        let stop = Arc::new(AtomicBool::new(false));
        let scraper = scraping.then(|| {
            let stop = Arc::clone(&stop);
            let addr = daemon.http;
            std::thread::spawn(move || {
                let mut http = Http::connect(addr);
                let mut times = Vec::new();
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    times.push(http.scrape());
                    next += Duration::from_millis(100);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                times
            })
        });
        let report = bench(&BenchOptions {
            target: daemon.udp,
            clients: 2,
            window: 32,
            duration: round,
            requests: None,
            message: b"DISCOVER_SERVER".to_vec(),
            response_prefix: b"SERVER_IP:".to_vec(),
            reply_timeout: Duration::from_millis(500),
            stop: None,
        })
        .expect("bench");
        stop.store(true, Ordering::Relaxed);
        if let Some(scraper) = scraper {
            loaded.extend(scraper.join().unwrap());
            with.push(report.requests_per_sec);
        } else {
            without.push(report.requests_per_sec);
        }
    }

    println!(
        "\nHTTP side, {} (release, loopback)",
        env!("CARGO_PKG_VERSION")
    );
    println!("| figure | value |\n|---|---|");
    let row = |name: &str, value: String| println!("| {name} | {value} |");
    let (p50, p99) = percentiles(&idle);
    row(
        &format!("/metrics scrape, idle, {} scrapes", idle.len()),
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
    );
    let (p50, p99) = percentiles(&loaded);
    row(
        &format!(
            "/metrics scrape at 10/s under full UDP load, {} scrapes",
            loaded.len()
        ),
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
    );
    let (p50, p99) = percentiles(&to_listed);
    row(
        &format!(
            "PUT sent to listed by the json responder, {} registrations",
            to_listed.len()
        ),
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
    );
    let (p50, p99) = percentiles(&answer_to_listed);
    row(
        "PUT answered to listed",
        format!(
            "p50 {p50:.3} ms, p99 {p99:.3} ms; listed at the first ask: {first_ask} of {}",
            to_listed.len()
        ),
    );
    let (p50, p99) = percentiles(&deleted);
    row(
        "DELETE sent to gone from the answer",
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
    );
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    row("UDP requests/s without scrapes, each round", show(&without));
    row("UDP requests/s with 10 scrapes/s, each round", show(&with));
    let ratio = median(&with) / median(&without);
    row(
        "median with / median without (target: within 5%)",
        format!(
            "{:.0} / {:.0} = {ratio:.3}",
            median(&with),
            median(&without)
        ),
    );
}

/// Registers, waits for the json responder to list it, deletes, waits for
/// it to go: the times, in ms, from the PUT sent and from its answer to
/// listed; how often the first ask after the answer listed it; and from
/// the DELETE sent to gone.
fn registrations_measured(
    http: &mut Http,
    udp: SocketAddr,
    n: usize,
) -> (Vec<f64>, Vec<f64>, usize, Vec<f64>) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut ask = b"DISCOVER_JSON".to_vec();
    ask.resize(1024, b' ');
    let mut buf = vec![0u8; 65_536];
    let mut lists = |id: &str| -> bool {
        client.send_to(&ask, udp).unwrap();
        let (len, _) = client
            .recv_from(&mut buf)
            .expect("the json responder answers");
        let needle = format!("\"id\":\"{id}\"");
        String::from_utf8_lossy(&buf[..len]).contains(&needle)
    };
    let (mut sent_to_listed, mut answer_to_listed, mut first, mut deleted) =
        (Vec::new(), Vec::new(), 0, Vec::new());
    for i in 0..n {
        let id = format!("bench-{i}");
        let sent = Instant::now();
        let (code, _) = http.call(
            "PUT",
            &format!("/v1/services/{id}"),
            br#"{"name": "bench", "port": 8080, "ttl": "1m"}"#,
        );
        assert_eq!(code, 201);
        let answered = Instant::now();
        let mut asks = 0;
        while !lists(&id) {
            asks += 1;
            assert!(sent.elapsed() < Duration::from_secs(5), "{id} never listed");
        }
        first += usize::from(asks == 0);
        sent_to_listed.push(ms(sent.elapsed()));
        answer_to_listed.push(ms(answered.elapsed()));
        let sent = Instant::now();
        let (code, _) = http.call("DELETE", &format!("/v1/services/{id}"), b"");
        assert_eq!(code, 200);
        while lists(&id) {
            assert!(sent.elapsed() < Duration::from_secs(5), "{id} never gone");
        }
        deleted.push(ms(sent.elapsed()));
    }
    (sent_to_listed, answer_to_listed, first, deleted)
}

/// A release discoveryd with `[http]` and the json responder on loopback.
struct Daemon {
    child: Child,
    udp: SocketAddr,
    http: SocketAddr,
    _work: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Self {
        let work = tempfile::tempdir().unwrap();
        let config = work.path().join("http.toml");
        std::fs::write(
            &config,
            "bind = \"127.0.0.1\"\nlogging = false\n[http]\nlisten = \"127.0.0.1:0\"\n[[responders]]\ntype = \"classic\"\n[[responders]]\ntype = \"json\"\n",
        )
        .unwrap();
        let pidfile = work.path().join("http.pid");
        let mut child = Command::new(env!("CARGO_BIN_EXE_discoveryd"))
            .args(["run", "--port", "0", "--config"])
            .arg(&config)
            .arg("--pidfile")
            .arg(&pidfile)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn discoveryd");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let udp: SocketAddr = lines
            .find_map(|l| {
                l.ok()?
                    .split_once("listening on ")
                    .and_then(|(_, a)| a.trim().parse().ok())
            })
            .expect("discoveryd listening");
        // Its HTTP address, from its status (port 0 was asked).
        let deadline = Instant::now() + Duration::from_secs(10);
        let http = loop {
            let out = Command::new(env!("CARGO_BIN_EXE_discoveryd"))
                .args(["status", "--json", "--pidfile"])
                .arg(&pidfile)
                .output()
                .unwrap();
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if let Some(addr) = status["http"].as_str() {
                break addr.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "no HTTP endpoint: {status}");
            std::thread::park_timeout(Duration::from_millis(10));
        };
        Self {
            child,
            udp,
            http,
            _work: work,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 client on one kept-alive connection.
struct Http {
    stream: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Http {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(stream),
            addr,
        }
    }

    /// One request; its status code and body.
    fn call(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut status = String::new();
        self.stream.read_line(&mut status).unwrap();
        let code = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).unwrap();
        (code, body)
    }

    /// One scrape of `/metrics`; its time in ms.
    fn scrape(&mut self) -> f64 {
        let start = Instant::now();
        let (code, body) = self.call("GET", "/metrics", b"");
        let took = ms(start.elapsed());
        assert_eq!(code, 200);
        assert!(body.starts_with(b"# HELP"));
        took
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn percentiles(v: &[f64]) -> (f64, f64) {
    (percentile(v, 0.5), percentile(v, 0.99))
}
