//! What operators (and attackers) do to a daemon: signals at start-up,
//! planted links and FIFOs, odd file names, edits to a running config,
//! closed pipes, and arguments past every limit. Each test is the
//! regression test of a defect found by trying discoveryd from outside.

use std::fs::File;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::{
    alive, config_for, free_port, hold, loopback, output, output_within, wait_gone, write_whole,
    Background, Client, ConfigDir, Daemon, NotifySocket, DEADLINE,
};

#[test]
fn signals_sent_as_soon_as_the_pidfile_exists_never_kill_it() {
    let config = ConfigDir::new(&loopback(""));
    let path = config.path();
    for _ in 0..3 {
        let mut daemon = Daemon::spawn(&["run", "--port", "0", "--config", path.to_str().unwrap()]);
        let pidfile = daemon.pidfile();
        // Spin (no sleep): the signals must land in the start-up window.
        let deadline = Instant::now() + DEADLINE;
        while !pidfile.exists() {
            assert!(Instant::now() < deadline, "no pidfile");
            std::hint::spin_loop();
        }
        for signal in [Signal::SIGHUP, Signal::SIGUSR2, Signal::SIGUSR1] {
            daemon.signal(signal);
        }
        // `reload` in the same window gets a real result.
        let (code, out, err) = output(&["reload", "--pidfile", pidfile.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.starts_with("reload unchanged"), "{out}");
        let port = daemon.listening_port();
        assert_eq!(
            Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
            Some("SERVER_IP:127.0.0.1")
        );
        daemon.signal(Signal::SIGTERM);
        assert_eq!(daemon.wait(), 0);
    }
}

#[test]
fn stop_and_reload_refuse_a_pid_that_is_not_a_verified_instance() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("d.pid");
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(&pidfile, format!("{}\n", victim.id())).unwrap();
    // The lock is held (by this test process, which is not discoveryd),
    // so the file looks live; the pid in it is an innocent process.
    let file = File::open(&pidfile).unwrap();
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    for command in ["stop", "reload"] {
        let (code, _, err) = output(&[command, "--pidfile", pidfile.to_str().unwrap()]);
        assert_eq!(code, 1, "{command}: {err}");
        assert!(err.contains("refusing to signal it"), "{command}: {err}");
    }
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the innocent process was signalled"
    );
    drop(lock);
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn planted_symlinks_and_open_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious");
    std::fs::write(&precious, "keep me\n").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    // A pre-chosen port: `start` (refused here) has no `--port`.
    let config = ConfigDir::new(&config_for(free_port(), ""));
    let config = config.path();

    // As the pidfile.
    let (code, _, err) = output_within(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--pidfile",
        link.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is a symbolic link; refusing to follow it"),
        "{err}"
    );
    // As the log file of a daemon.
    let pidfile = dir.path().join("d.pid");
    let (code, out, err) = output_within(&[
        "start",
        "--config",
        config.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
        "--log-file",
        link.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("cannot open the log file") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(!pidfile.exists(), "no daemon was left behind");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n");

    // In a directory anyone may write, without the sticky bit.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, err) = output_within(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--pidfile",
        open.join("d.pid").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("every user can write and which is not sticky"),
        "{err}"
    );
}

#[test]
fn pidfiles_named_like_the_derived_files_still_work() {
    for name in ["x.log", "y.sock", "plain"] {
        let bg = Background::new("");
        let pidfile = bg.config.path().with_file_name(name);
        let (config, pid_arg) = (bg.config.path(), pidfile.to_str().unwrap().to_owned());
        let args = |cmd: &'static str| {
            vec![
                cmd.to_owned(),
                "--config".into(),
                config.to_str().unwrap().into(),
                "--pidfile".into(),
                pid_arg.clone(),
            ]
        };
        let run = |cmd: &'static str| {
            let a = args(cmd);
            output_within(&a.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let (code, out, err) = run("start");
        assert_eq!(code, 0, "{name}: {out}{err}");
        let socket = format!("{pid_arg}.sock");
        assert!(Path::new(&socket).exists(), "{name}: no {socket}");
        assert!(
            Path::new(&format!("{pid_arg}.log")).exists(),
            "{name}: no log"
        );
        let (code, out, err) = run("status");
        assert_eq!(code, 0, "{name}: {out}{err}");
        let (code, out, err) = run("stop");
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(out.starts_with("stopped pid"), "{name}: {out}");
        assert!(
            !pidfile.exists() && !Path::new(&socket).exists(),
            "{name}: files left"
        );
    }
    // An explicit log file on the pidfile or its socket is a config error.
    for log in ["d.pid", "d.sock"] {
        let dir = ConfigDir::new(&format!(
            "pidfile = \"/tmp/d.pid\"\nlog_file = \"/tmp/{log}\"\n"
        ));
        let (code, _, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("key `log_file`") && err.contains("is also the"),
            "{err}"
        );
    }
}

#[test]
fn restart_validates_before_it_stops_the_running_instance() {
    let bg = Background::new("[supervision.retry_after_cleanup]\nattempts = 1\ndelay = \"20ms\"");
    let first = bg.start();
    // A bad config: exit 2, the old instance still serves.
    bg.config.write("port = 70000\n");
    let (code, _, err) = bg.cmd("restart", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("key `port`"), "{err}");
    assert!(alive(first));
    // A busy new port (pre-chosen, held by another program): exit 3,
    // naming it; the old instance still serves.
    let busy = free_port();
    let _held = hold(busy);
    bg.config.write(&config_for(busy, ""));
    let (code, _, err) = bg.cmd("restart", &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("port {busy}/udp")), "{err}");
    assert!(alive(first));
    assert!(Client::new().ask(bg.port, b"DISCOVER_SERVER").is_some());
    // The same port it holds itself is fine.
    bg.config
        .write(&config_for(bg.port, "message = \"RESTARTED\""));
    let (code, out, err) = bg.cmd("restart", &[]);
    assert_eq!(code, 0, "{out}{err}");
    wait_gone(first);
    assert!(Client::new().ask(bg.port, b"RESTARTED").is_some());
}

#[test]
fn a_pidfile_edited_in_a_running_config_still_finds_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    // A pre-chosen port: `start` has no `--port`.
    let port = free_port();
    let (old, new) = (dir.path().join("old.pid"), dir.path().join("new.pid"));
    let path = dir.path().join("discoveryd.toml");
    let body = |pidfile: &Path, message: &str| {
        config_for(
            port,
            &format!(
                "pidfile = \"{}\"\nmessage = \"{message}\"",
                pidfile.display()
            ),
        )
    };
    std::fs::write(&path, body(&old, "DISCOVER_SERVER")).unwrap();
    let config = path.to_str().unwrap();
    let (code, out, err) = output_within(&["start", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    write_whole(&path, &body(&new, "EDITED_MESSAGE"));
    Client::new().ask_until(port, b"EDITED_MESSAGE", "SERVER_IP:127.0.0.1");
    let log = std::fs::read_to_string(dir.path().join("old.log")).unwrap();
    assert!(
        log.contains("key=pidfile") && log.contains("applies from the next start"),
        "{log}"
    );

    let (code, out, err) = output_within(&["status", "--json", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("the instance running it holds"), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["pidfile"], old.to_str().unwrap());
    let (code, out, err) = output_within(&["stop", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("stopped pid"), "{out}");
    assert!(!old.exists());
}

#[test]
fn a_closed_or_full_stdout_never_stops_the_service_or_panics() {
    let config = ConfigDir::new(&loopback(""));
    let path = config.path();
    let mut daemon = Daemon::spawn_with_stdout_closed(&[
        "run",
        "--port",
        "0",
        "--config",
        path.to_str().unwrap(),
    ]);
    let line = daemon.expect_stderr("listening for discovery requests");
    let port: u16 = line
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches(']')
        .parse()
        .unwrap();
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(), 0, "{}", daemon.stderr_text());

    let out = Command::new(crate::util::bin())
        .args(["check", "--config", path.to_str().unwrap()])
        .stdout(File::options().write(true).open("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot write the effective config to stdout"),
        "{err}"
    );
}

#[test]
fn a_config_path_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(2 << 20))).unwrap();
    for (path, expected) in [
        (fifo.as_path(), "not a regular file"),
        (Path::new("/dev/zero"), "not a regular file"),
        (big.as_path(), "larger than the limit of 1048576 bytes"),
    ] {
        for command in ["check", "run"] {
            let (code, _, err) = output_within(&[command, "--config", path.to_str().unwrap()]);
            assert_eq!(code, 2, "{command} {}: {err}", path.display());
            assert!(
                err.contains(expected),
                "{command} {}: {err}",
                path.display()
            );
        }
    }
    // Swapped in under a running daemon: rejected, and it still answers,
    // reports its status and stops.
    let config = ConfigDir::new(&loopback(""));
    let (mut daemon, port) = Daemon::run(&config, &[]);
    std::fs::remove_file(config.path()).unwrap();
    nix::unistd::mkfifo(
        &config.path(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let line = daemon.expect_stderr("not a regular file");
    assert!(line.contains("config rejected"), "{line}");
    assert!(Client::new().ask(port, b"DISCOVER_SERVER").is_some());
    assert!(daemon.status()["pid"].is_u64());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(), 0);
}

#[test]
fn bench_arguments_are_bounded_and_a_silent_target_fails() {
    for (args, expected) in [
        (vec!["--window", "100000000"], "1..=1024"),
        (vec!["--clients", "100000"], "1..=256"),
        (vec!["--clients", "18446744073709551615"], "--clients"),
        (vec!["--duration", "-1s"], "is negative"),
        (
            vec!["--target", "255.255.255.255"],
            "is a broadcast or multicast address",
        ),
        (
            vec!["--target", "224.0.0.1", "--allow-remote"],
            "is a broadcast or multicast address",
        ),
    ] {
        let mut all = vec!["bench"];
        all.extend(&args);
        let (code, _, err) = output_within(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // 100% loss is a failure, not a result: where nobody listens (a
    // pre-chosen port nothing binds, so the kernel refuses), and where a
    // socket takes the requests but never answers.
    let deaf = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for silent in [
        format!("127.0.0.1:{}", free_port()),
        deaf.local_addr().unwrap().to_string(),
    ] {
        let (code, out, err) = output_within(&["bench", "--target", &silent, "--requests", "4"]);
        assert_eq!(code, 1, "{silent}: {out}{err}");
        assert!(err.contains("no reply from"), "{silent}: {err}");
    }
}

#[test]
fn discover_rejects_port_0_and_returns_once_every_target_answered() {
    for args in [["--target", "127.0.0.1:0"], ["--port", "0"]] {
        let (code, _, err) = output_within(&[&["discover"][..], &args].concat());
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("port 0"), "{args:?}: {err}");
    }
    let (_daemon, port) = Daemon::run(&ConfigDir::new(&loopback("")), &[]);
    let target = format!("127.0.0.1:{port}");
    let (code, out, err) =
        output_within(&["discover", "--target", &target, "--timeout", "8s", "--json"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["servers"].as_array().unwrap().len(), 1);
    let elapsed = doc["elapsed_ms"].as_f64().unwrap();
    assert!(elapsed < 8000.0, "waited out the timeout: {elapsed} ms");
}

#[test]
fn one_fake_responder_cannot_fill_the_discovery_table() {
    let fake = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = fake.local_addr().unwrap().port();
    let target = format!("127.0.0.1:{port}");
    let client = std::thread::spawn(move || {
        output_within(&["discover", "--target", &target, "--timeout", "1s", "--json"])
    });
    let mut buf = [0u8; 64];
    let (_, from) = fake.recv_from(&mut buf).unwrap();
    // Answering from another address than the one asked, so the client
    // does not stop at its target's answer.
    let other = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    for i in 0..5_000u32 {
        let [_, a, b, c] = i.to_be_bytes();
        let _ = other.send_to(format!("SERVER_IP:10.{a}.{b}.{c}").as_bytes(), from);
    }
    let (code, out, err) = client.join().unwrap();
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["servers"].as_array().unwrap().len(), 8, "{err}");
    assert!(doc["dropped"].as_u64().unwrap() > 0, "{out}");
}

#[test]
fn a_tiny_watchdog_interval_is_clamped_not_busy_looped() {
    let notify = NotifySocket::new();
    let config = ConfigDir::new(&loopback(""));
    let path = config.path();
    let mut daemon = Daemon::spawn_with_env(
        &["run", "--port", "0", "--config", path.to_str().unwrap()],
        &[
            ("DISCOVERYD_BIND", "127.0.0.1"),
            ("NOTIFY_SOCKET", notify.path().to_str().unwrap()),
            ("WATCHDOG_USEC", "1"),
        ],
    );
    daemon.expect_stderr("WATCHDOG_USEC is too short to follow");
    notify.expect("READY=1");
    // Count pings over a second: at most one per 100 ms (a busy loop
    // sends hundreds of thousands).
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(1) {
        notify.expect("WATCHDOG=1");
        pings += 1;
    }
    assert!(pings <= 12, "{pings} pings in a second");
}

#[test]
fn the_default_pidfile_is_the_units_as_root_and_private_otherwise() {
    let (_, out, _) = output_within(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let expected = if nix::unistd::geteuid().is_root() {
        "/run/discoveryd/discoveryd.pid".to_owned()
    } else {
        match std::env::var("XDG_RUNTIME_DIR") {
            Ok(dir) if !dir.is_empty() => format!("{dir}/discoveryd.pid"),
            _ => format!(
                "{}/discoveryd-{}/discoveryd.pid",
                std::env::temp_dir().display(),
                nix::unistd::geteuid()
            ),
        }
    };
    assert_eq!(doc["pidfile"], expected);
    // The shipped unit passes that same path.
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/discoveryd.service"),
    )
    .unwrap();
    assert!(
        unit.contains("--pidfile /run/discoveryd/discoveryd.pid"),
        "{unit}"
    );
}

#[test]
fn reload_without_a_confirmed_result_fails() {
    let (daemon, _) = Daemon::run(&ConfigDir::new(&loopback("")), &[]);
    let pidfile = daemon.pidfile();
    daemon.signal(Signal::SIGSTOP);
    let (code, _, err) = output_within(&[
        "reload",
        "--pidfile",
        pidfile.to_str().unwrap(),
        "--timeout",
        "1s",
    ]);
    daemon.signal(Signal::SIGCONT);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reported no result within 1s"), "{err}");
}

#[test]
fn a_wait_of_billions_of_seconds_is_waited_not_a_panic() {
    let config = crate::util::ConfigDir::new(&crate::util::loopback(""));
    let (mut daemon, _port) = crate::util::Daemon::run(&config, &[]);
    let pidfile = daemon.pidfile();
    let pidfile = pidfile.to_str().unwrap();
    let forever = "18446744073709551615";
    let (code, out, err) =
        crate::util::output(&["reload", "--pidfile", pidfile, "--timeout", forever]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reload unchanged"), "{out}");
    let (code, out, err) =
        crate::util::output(&["stop", "--pidfile", pidfile, "--timeout", forever]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(daemon.wait(), 0);
}
