//! discoveryd side by side with the Python original and with the simplest
//! possible Rust loops, in one run, interleaved (the machines are noisy:
//! only ratios from one run count).
//!
//! ```text
//! cargo bench --features fault --bench compare             # the full run (about 6 minutes)
//! cargo bench --features fault --bench compare -- --quick  # a smoke run, as CI does
//! ```
//!
//! Servers: discoveryd (release, default config; built with the `fault`
//! responder, inert unless configured, to measure restart recovery), django-udp-discovery
//! 1.0.0 (in a venv under target/py-venv, made here), and a reference:
//! blocking recv_from/send_to with one socket, and with two SO_REUSEPORT
//! sockets. This binary is its own reference server (`reference PORT N`).
//!
//! To compare before and after a change in the same run, point
//! `DISCOVERYD_COMPARE_BASELINE` at another discoveryd binary (say, a
//! release build of the previous commit): it gets a row of its own and its
//! own instruction count.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use discoveryd::{bench, BenchOptions, BenchReport};

const REPLY: &[u8] = b"SERVER_IP:127.0.0.1";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("reference") {
        let port: u16 = args[2].parse().expect("port");
        let sockets: usize = args[3].parse().expect("sockets");
        return reference(port, sockets);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let run = Run::new(quick);
    run.main();
}

/// The reference: blocking recv_from/send_to, one thread per socket.
fn reference(port: u16, sockets: usize) {
    let threads: Vec<_> = (0..sockets)
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
            if sockets > 1 {
                socket.set_reuse_port(true).unwrap();
            }
            socket
                .bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
                .unwrap();
            let socket: UdpSocket = socket.into();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    if let Ok((n, from)) = socket.recv_from(&mut buf) {
                        match &buf[..n] {
                            b"DISCOVER_SERVER" => drop(socket.send_to(REPLY, from)),
                            // Lets a profiler see a normal exit.
                            b"STOP" => std::process::exit(0),
                            _ => {}
                        }
                    }
                }
            })
        })
        .collect();
    println!("reference listening");
    for t in threads {
        let _ = t.join();
    }
}

/// Which server, and how to start it on a port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    Discoveryd,
    /// Another discoveryd binary (`DISCOVERYD_COMPARE_BASELINE`).
    Baseline,
    Python,
    Reference1,
    Reference2,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Discoveryd => "discoveryd",
            Server::Baseline => "discoveryd baseline",
            Server::Python => "python original",
            Server::Reference1 => "reference, 1 socket",
            Server::Reference2 => "reference, 2 REUSEPORT sockets",
        }
    }
}

struct Run {
    quick: bool,
    load: Duration,
    rounds: usize,
    python: Option<PathBuf>,
    baseline: Option<PathBuf>,
    work: tempfile::TempDir,
}

/// Figures for one server over all rounds.
#[derive(Default, Clone)]
struct Figures {
    throughput: Vec<f64>,
    pingpong_p50: Vec<f64>,
    pingpong_p99: Vec<f64>,
    idle_rss_kb: Vec<u64>,
    load_rss_kb: Vec<u64>,
    startup_ms: Vec<f64>,
    lost: u64,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn median_u(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        0
    } else {
        v[v.len() / 2]
    }
}

impl Run {
    fn new(quick: bool) -> Self {
        let python = python_venv();
        if python.is_none() {
            eprintln!(
                "compare: the Python original is unavailable (see above); its column stays empty"
            );
        }
        Self {
            quick,
            load: if quick {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(5)
            },
            rounds: if quick { 1 } else { 3 },
            python,
            baseline: std::env::var_os("DISCOVERYD_COMPARE_BASELINE").map(PathBuf::from),
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn main(&self) {
        let servers: Vec<Server> = [
            Server::Discoveryd,
            Server::Baseline,
            Server::Python,
            Server::Reference1,
            Server::Reference2,
        ]
        .into_iter()
        .filter(|s| match s {
            Server::Python => self.python.is_some(),
            Server::Baseline => self.baseline.is_some(),
            _ => true,
        })
        .collect();
        let mut figures = vec![Figures::default(); servers.len()];
        for round in 0..self.rounds {
            eprintln!("compare: round {} of {}", round + 1, self.rounds);
            for (server, f) in servers.iter().zip(figures.iter_mut()) {
                eprintln!("compare:   {}", server.name());
                self.measure(*server, f);
            }
        }
        self.pingpong(&servers, &mut figures);
        let extra = self.discoveryd_only();
        print_table(&servers, &figures, &extra);
    }

    fn spawn(&self, server: Server, port: u16) -> Child {
        let port_s = port.to_string();
        let mut command = match server {
            Server::Discoveryd | Server::Baseline => {
                let mut c = Command::new(self.discoveryd(server));
                c.args(["run", "--port", &port_s])
                    .env("DISCOVERYD_BIND", "127.0.0.1");
                c.env(
                    "DISCOVERYD_PIDFILE",
                    self.work.path().join(format!("d{port}.pid")),
                );
                c
            }
            Server::Python => {
                let mut c = Command::new(self.python.as_ref().unwrap());
                c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/netns/python_server.py"))
                    .arg(&port_s);
                c
            }
            Server::Reference1 | Server::Reference2 => {
                let n = if server == Server::Reference1 {
                    "1"
                } else {
                    "2"
                };
                let mut c = Command::new(std::env::current_exe().unwrap());
                c.args(["reference", &port_s, n]);
                c
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server")
    }

    fn measure(&self, server: Server, f: &mut Figures) {
        let port = free_port();
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        let mut child = self.spawn(server, port);
        let Some(first) = first_answer(target, started, Duration::from_secs(30)) else {
            eprintln!("compare: {} never answered", server.name());
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        f.startup_ms.push(first.as_secs_f64() * 1e3);
        settle();
        f.idle_rss_kb.push(rss_kb(child.id(), "VmRSS"));
        let load = self.load(target, 2, 32);
        f.throughput.push(load.requests_per_sec);
        f.lost += load.lost;
        f.load_rss_kb.push(rss_kb(child.id(), "VmHWM"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Ping-pong latency (1 request in flight) drifts on a shared machine
    /// by more than the servers differ, so all of them run at once and take
    /// turns in short slices; each figure is the median over its slices.
    fn pingpong(&self, servers: &[Server], figures: &mut [Figures]) {
        eprintln!("compare: ping-pong, interleaved");
        let mut running = Vec::new();
        for &server in servers {
            let port = free_port();
            let target = SocketAddr::from(([127, 0, 0, 1], port));
            let child = self.spawn(server, port);
            if first_answer(target, Instant::now(), Duration::from_secs(30)).is_none() {
                eprintln!("compare: {} never answered", server.name());
            }
            running.push((child, target));
        }
        let (slices, slice) = if self.quick {
            (2, Duration::from_millis(100))
        } else {
            (20, Duration::from_millis(250))
        };
        for _ in 0..slices {
            for ((_, target), f) in running.iter().zip(figures.iter_mut()) {
                let report = bench(&BenchOptions {
                    duration: slice,
                    ..self.options(*target, 1, 1)
                })
                .expect("bench");
                f.pingpong_p50.push(report.p50_us);
                f.pingpong_p99.push(report.p99_us);
            }
        }
        for (mut child, _) in running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The binary of `Discoveryd` or `Baseline`.
    fn discoveryd(&self, server: Server) -> &Path {
        match (server, &self.baseline) {
            (Server::Baseline, Some(baseline)) => baseline,
            _ => Path::new(env!("CARGO_BIN_EXE_discoveryd")),
        }
    }

    fn options(&self, target: SocketAddr, clients: usize, window: usize) -> BenchOptions {
        BenchOptions {
            target,
            clients,
            window,
            duration: self.load,
            requests: None,
            message: b"DISCOVER_SERVER".to_vec(),
            response_prefix: b"SERVER_IP:".to_vec(),
            reply_timeout: Duration::from_millis(200),
            stop: None,
        }
    }

    fn load(&self, target: SocketAddr, clients: usize, window: usize) -> BenchReport {
        bench(&self.options(target, clients, window)).expect("bench")
    }

    /// Figures only discoveryd has (reloads, restarts), and the
    /// instruction counts.
    fn discoveryd_only(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.quick {
            let servers = [Server::Discoveryd, Server::Baseline, Server::Reference1];
            for server in servers
                .into_iter()
                .filter(|s| *s != Server::Baseline || self.baseline.is_some())
            {
                let figure = self
                    .instructions_per_request(server)
                    .map_or("valgrind unavailable".into(), |n| format!("{n:.0}"));
                out.push((
                    format!(
                        "instructions per answered request, {} (callgrind)",
                        server.name()
                    ),
                    figure,
                ));
            }
        }
        let (reload_p50, reload_p99, lost) = self.reloads();
        out.push((
            "reload latency (write -> new message answered)".into(),
            format!("p50 {reload_p50:.1} ms, p99 {reload_p99:.1} ms"),
        ));
        let reloads = if self.quick { 10 } else { 100 };
        out.push((
            format!("replies lost across {reloads} in-place reloads under load"),
            lost.to_string(),
        ));
        let recovery = self.restarts();
        out.push((
            "restart recovery (panic -> answering again), p50".into(),
            format!("{recovery:.2} ms"),
        ));
        out
    }

    /// Instructions per request under callgrind: the difference between a
    /// long and a short ping-pong run, so start-up and shutdown cancel out.
    fn instructions_per_request(&self, server: Server) -> Option<f64> {
        let (short, long) = (2_000u64, 12_000u64);
        let short_total = self.instructions(server, short)?;
        let long_total = self.instructions(server, long)?;
        Some((long_total.saturating_sub(short_total)) as f64 / (long - short) as f64)
    }

    fn instructions(&self, server: Server, requests: u64) -> Option<u64> {
        let port = free_port();
        let out = self.work.path().join(format!("callgrind.{port}"));
        let port_s = port.to_string();
        let mut command = Command::new("valgrind");
        command
            .args(["--tool=callgrind", "--collect-atstart=yes"])
            .arg(format!("--callgrind-out-file={}", out.display()));
        match server {
            Server::Discoveryd | Server::Baseline => {
                command
                    .arg(self.discoveryd(server))
                    .args(["run", "--port", &port_s]);
                command
                    .env("DISCOVERYD_BIND", "127.0.0.1")
                    .env("DISCOVERYD_WORKERS", "1");
                command.env(
                    "DISCOVERYD_PIDFILE",
                    self.work.path().join(format!("cg{port}.pid")),
                );
            }
            _ => {
                command
                    .arg(std::env::current_exe().ok()?)
                    .args(["reference", &port_s, "1"]);
            }
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        if first_answer(target, Instant::now(), Duration::from_secs(60)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        let report = bench(&BenchOptions {
            target,
            clients: 1,
            window: 1,
            duration: discoveryd::MAX_DURATION,
            requests: Some(requests),
            message: b"DISCOVER_SERVER".to_vec(),
            response_prefix: b"SERVER_IP:".to_vec(),
            reply_timeout: Duration::from_secs(2),
            stop: None,
        })
        .ok()?;
        match server {
            Server::Discoveryd | Server::Baseline => drop(nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )),
            _ => drop(
                UdpSocket::bind("127.0.0.1:0")
                    .ok()?
                    .send_to(b"STOP", target),
            ),
        }
        let _ = child.wait();
        if report.replies != requests {
            eprintln!(
                "compare: {} answered {} of {requests} under callgrind",
                server.name(),
                report.replies
            );
        }
        let text = std::fs::read_to_string(&out).ok()?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix("summary:")
                    .or_else(|| l.strip_prefix("totals:"))
            })
            .and_then(|n| n.trim().parse().ok())
    }

    /// Starts discoveryd with `config` and waits until it answers `message`;
    /// returns it, its address, and a client whose reads time out after `wait`.
    fn daemon_answering(
        &self,
        port: u16,
        config: &Path,
        message: &[u8],
        wait: Duration,
    ) -> (Child, SocketAddr, UdpSocket) {
        let child = self.daemon_with(port, config);
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(wait)).unwrap();
        ask_until(&client, target, message, Duration::from_secs(30));
        (child, target, client)
    }

    fn daemon_with(&self, port: u16, config: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_discoveryd"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env(
                "DISCOVERYD_PIDFILE",
                self.work.path().join(format!("r{port}.pid")),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn discoveryd")
    }

    /// Reload latency over 20 reloads, then replies lost across 100
    /// reloads under a steady load below capacity (1 client x 4).
    fn reloads(&self) -> (f64, f64, u64) {
        let port = free_port();
        let config = self.work.path().join("reload.toml");
        let write = |message: &str| {
            let body = format!("port = {port}\nbind = \"127.0.0.1\"\nresponse_prefix = \"SERVER_IP:\"\nmessage = \"{message}\"\n");
            let tmp = config.with_extension("tmp");
            std::fs::write(&tmp, body).unwrap();
            std::fs::rename(&tmp, &config).unwrap();
        };
        write("MESSAGE_0000");
        let (mut child, target, client) =
            self.daemon_answering(port, &config, b"MESSAGE_0000", Duration::from_millis(20));
        let count = if self.quick { 5 } else { 20 };
        let mut times: Vec<f64> = (1..=count)
            .map(|i| {
                let message = format!("MESSAGE_{i:04}");
                let start = Instant::now();
                write(&message);
                ask_until(&client, target, message.as_bytes(), Duration::from_secs(10));
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        let p50 = times[times.len() / 2];
        let p99 = times[((times.len() - 1) as f64 * 0.99).round() as usize];

        // A steady load below capacity asks for the message in force while
        // the reloads change only the response prefix, which the load
        // accepts in all its forms (it checks only "SERVER_IP").
        let last = format!("MESSAGE_{count:04}");
        let write_prefix = |prefix: &str| {
            let body = format!("port = {port}\nbind = \"127.0.0.1\"\nresponse_prefix = \"{prefix}\"\nmessage = \"{last}\"\n");
            let tmp = config.with_extension("tmp");
            std::fs::write(&tmp, body).unwrap();
            std::fs::rename(&tmp, &config).unwrap();
        };
        let reloads = if self.quick { 10 } else { 100 };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = std::thread::spawn({
            let message = last.clone().into_bytes();
            let stop = std::sync::Arc::clone(&stop);
            move || {
                bench(&BenchOptions {
                    target,
                    clients: 1,
                    window: 4,
                    duration: discoveryd::MAX_DURATION,
                    requests: None,
                    message,
                    response_prefix: b"SERVER_IP".to_vec(),
                    reply_timeout: Duration::from_millis(500),
                    stop: Some(stop),
                })
            }
        });
        for i in 0..reloads {
            // SERVER_IPa:, SERVER_IPb:, ...: the load accepts them all.
            let prefix = format!("SERVER_IP{}:", (b'a' + (i % 26) as u8) as char);
            write_prefix(&prefix);
            let expect = format!("{prefix}127.0.0.1");
            ask_until_reply(
                &client,
                target,
                last.as_bytes(),
                &expect,
                Duration::from_secs(10),
            );
        }
        // Stop the load, and let it collect what is in flight, before the
        // server goes.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let report = load.join().unwrap().expect("bench");
        let _ = child.kill();
        let _ = child.wait();
        eprintln!(
            "compare:   {} requests across {reloads} reloads, {} lost",
            report.sent, report.lost
        );
        (p50, p99, report.lost)
    }

    /// Panic-to-answer time over isolated panics (each the first in its
    /// restart window, so restarted at once).
    fn restarts(&self) -> f64 {
        let port = free_port();
        let config = self.work.path().join("restart.toml");
        std::fs::write(
            &config,
            format!(
                "port = {port}\nbind = \"127.0.0.1\"\n[supervision.restart_on_failure]\nmax_restarts = 1000\nwithin = \"20ms\"\n\
                 [[responders]]\ntype = \"fault\"\ntrigger = \"BOOM\"\n[[responders]]\ntype = \"classic\"\n"
            ),
        )
        .unwrap();
        let (mut child, target, client) =
            self.daemon_answering(port, &config, b"DISCOVER_SERVER", Duration::from_millis(2));
        let count = if self.quick { 5 } else { 20 };
        let mut times = Vec::new();
        for _ in 0..count {
            // Leave the restart window, so this panic is an isolated one.
            std::thread::sleep(Duration::from_millis(30));
            let start = Instant::now();
            client.send_to(b"BOOM", target).unwrap();
            ask_until(&client, target, b"DISCOVER_SERVER", Duration::from_secs(10));
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let _ = child.kill();
        let _ = child.wait();
        median(&times)
    }
}

/// Asks until any answer comes back.
fn ask_until(client: &UdpSocket, target: SocketAddr, message: &[u8], within: Duration) {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 256];
    loop {
        let _ = client.send_to(message, target);
        if client.recv_from(&mut buf).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no answer to {:?}",
            String::from_utf8_lossy(message)
        );
    }
}

/// Asks until the answer is `expected`.
fn ask_until_reply(
    client: &UdpSocket,
    target: SocketAddr,
    message: &[u8],
    expected: &str,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 256];
    loop {
        let _ = client.send_to(message, target);
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            if &buf[..n] == expected.as_bytes() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "never answered {expected:?}");
    }
}

/// Time from `started` to the first answer, polling every 200 us.
fn first_answer(target: SocketAddr, started: Instant, within: Duration) -> Option<Duration> {
    let client = UdpSocket::bind("127.0.0.1:0").ok()?;
    client
        .set_read_timeout(Some(Duration::from_micros(200)))
        .ok()?;
    let mut buf = [0u8; 256];
    while started.elapsed() < within {
        let _ = client.send_to(b"DISCOVER_SERVER", target);
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            if buf[..n].starts_with(b"SERVER_IP:") {
                return Some(started.elapsed());
            }
        }
    }
    None
}

/// Lets a fresh server finish its lazy start-up work before RSS is read.
fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// target/py-venv with django-udp-discovery 1.0.0 (shared with the
/// namespace tests); made on first use.
fn python_venv() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .ok()?
            .success();
        if !made {
            return None;
        }
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "-q",
            "django",
            "django-udp-discovery==1.0.0",
            "django-udp-discovery-client[network]==1.0.0",
        ])
        .status()
        .ok()?
        .success();
    installed.then_some(python)
}

fn print_table(servers: &[Server], figures: &[Figures], extra: &[(String, String)]) {
    let index = |s: Server| servers.iter().position(|x| *x == s);
    let tput = |s: Server| {
        index(s)
            .map(|i| median(&figures[i].throughput))
            .unwrap_or(0.0)
    };
    let best_ref = tput(Server::Reference1).max(tput(Server::Reference2));
    let python = tput(Server::Python);
    println!();
    println!(
        "{:<32} {:>12} {:>10} {:>10} {:>10} {:>10} {:>11} {:>6}",
        "server",
        "requests/s",
        "pp p50 us",
        "pp p99 us",
        "idle RSS",
        "load RSS",
        "1st answer",
        "lost"
    );
    for (server, f) in servers.iter().zip(figures) {
        println!(
            "{:<32} {:>12.0} {:>10.1} {:>10.1} {:>8} kB {:>7} kB {:>8.1} ms {:>6}",
            server.name(),
            median(&f.throughput),
            median(&f.pingpong_p50),
            median(&f.pingpong_p99),
            median_u(&f.idle_rss_kb),
            median_u(&f.load_rss_kb),
            median(&f.startup_ms),
            f.lost,
        )
    }
    let d = tput(Server::Discoveryd);
    println!();
    println!("ratios (medians of this run):");
    println!(
        "  discoveryd / best reference loop: {:.2}  (target >= 0.9)",
        d / best_ref.max(1.0)
    );
    if python > 0.0 {
        println!(
            "  discoveryd / python original:     {:.2}  (target >= 2.5)",
            d / python
        );
    }
    let baseline = tput(Server::Baseline);
    if baseline > 0.0 {
        println!(
            "  discoveryd / baseline:            {:.2}  (1.00: unchanged)",
            d / baseline
        );
    }
    for (name, value) in extra {
        println!("{name}: {value}");
    }
}
