//! The `discoveryd-hello` binary end to end: the `hello` type is known to
//! `check`, and `run` answers it beside the built-in `classic` responder.
//!
//! Traffic goes to 127.0.0.1 only, on an ephemeral port (`--port 0`); every
//! wait polls against a deadline, nothing sleeps.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any single expectation may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// The line `run` prints once a socket is bound, followed by its address.
const LISTENING: &str = "[OK] discovery service listening on ";

const BIN: &str = env!("CARGO_BIN_EXE_discoveryd-hello");

/// `hello` first, then the built-in `classic` responder, on loopback only.
const CONFIG: &str = r#"
bind = "127.0.0.1"

[[responders]]
type = "hello"

[[responders]]
type = "classic"
"#;

/// The binary, with no `DISCOVERYD_*` variable of the caller's environment
/// overriding the config written by the test.
fn command() -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DISCOVERYD_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// A temporary directory with `discoveryd.toml` in it.
fn config_dir(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("discoveryd.toml");
    std::fs::write(&path, toml).expect("write config");
    (dir, path)
}

/// Runs a command that must end by itself (`check`), within the deadline.
fn output(args: &[&str]) -> Output {
    let mut child = command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn discoveryd-hello");
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    // Both streams close when the command exits: wait on them, not on a
    // clock.
    let deadline = Instant::now() + DEADLINE;
    let ended = stderr.recv_timeout(DEADLINE).and_then(|stderr| {
        let left = deadline.saturating_duration_since(Instant::now());
        stdout.recv_timeout(left).map(|stdout| (stdout, stderr))
    });
    let Ok((stdout, stderr)) = ended else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`discoveryd-hello {}` did not end within {DEADLINE:?}",
            args.join(" ")
        );
    };
    let status = child.wait().expect("wait");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads a stream to its end on a thread of its own.
fn drain(mut stream: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

/// A running `discoveryd-hello run`, killed when dropped (also when the
/// test fails), with its output printed then.
struct Daemon {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    /// `run --port 0 --config <config> --pidfile <state>/d.pid`.
    fn run(config: &Path, state: &Path) -> Self {
        let pidfile = state.join("d.pid");
        let mut child = command()
            .args(["run", "--port", "0", "--config"])
            .arg(config)
            .arg("--pidfile")
            .arg(&pidfile)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn discoveryd-hello run");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the `listening on <addr>` line; returns the bound address.
    fn listening_on(&mut self) -> SocketAddr {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(addr) = line.split(LISTENING).nth(1) {
                        return addr.trim().parse().expect("listening address");
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {LISTENING:?} line within {DEADLINE:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("discoveryd-hello exited before listening")
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.seen.extend(self.lines.try_iter());
            eprintln!("--- discoveryd-hello output ---\n{}", self.seen.join("\n"));
        }
    }
}

/// Sends `request` to `server` until an answer from it arrives, within the
/// deadline (UDP may drop a datagram; each try waits 200 ms for an answer).
fn ask(server: SocketAddr, request: &[u8]) -> Vec<u8> {
    assert!(server.ip().is_loopback(), "{server}: loopback only");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        socket.send_to(request, server).expect("send");
        let try_until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < try_until {
            match socket.recv_from(&mut buf) {
                Ok((len, from)) if from == server => return buf[..len].to_vec(),
                Ok(_) => continue, // not from the daemon: ignore it
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    panic!(
        "no answer to {:?} from {server} within {DEADLINE:?}",
        String::from_utf8_lossy(request)
    )
}

#[test]
fn run_answers_hello_and_classic_requests() {
    let (dir, config) = config_dir(CONFIG);
    let mut daemon = Daemon::run(&config, dir.path());
    let server = daemon.listening_on();
    assert_eq!(server.ip().to_string(), "127.0.0.1");
    assert_ne!(server.port(), 0);

    assert_eq!(
        String::from_utf8(ask(server, b"HELLO_DISCOVERY")).unwrap(),
        "HELLO_FROM:127.0.0.1"
    );
    assert_eq!(
        String::from_utf8(ask(server, b"DISCOVER_SERVER")).unwrap(),
        "SERVER_IP:127.0.0.1"
    );
    drop(daemon);
}

#[test]
fn check_accepts_the_hello_type() {
    let (_dir, config) = config_dir(CONFIG);
    let out = output(&["check", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The effective config names the chain, `hello` first.
    let chain: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("type = "))
        .collect();
    assert_eq!(chain, ["\"hello\"", "\"classic\""], "{stdout}");
    // And it lists `hello` among this build's types.
    let listed = stderr
        .lines()
        .find_map(|l| l.strip_prefix("config OK; responder types in this build: "))
        .unwrap_or_default();
    assert!(listed.split(", ").any(|t| t == "hello"), "{stderr}");
}

#[test]
fn check_rejects_unknown_hello_options_naming_the_key() {
    let (_dir, config) = config_dir("[[responders]]\ntype = \"hello\"\ncolour = \"red\"\n");
    let out = output(&["check", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("responders[0]"), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
}

#[test]
fn check_lists_hello_among_the_known_types() {
    let (_dir, config) = config_dir("[[responders]]\ntype = \"helo\"\n");
    let out = output(&["check", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let known = stderr
        .split("unknown responder type `helo`; known types: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of known types in {stderr:?}"));
    let known: Vec<&str> = known.trim().split(", ").collect();
    assert!(known.contains(&"hello"), "{known:?}");
    assert!(known.contains(&"classic"), "{known:?}");
}
