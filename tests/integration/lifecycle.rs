//! Start-up output, auto-stop after `duration`, clean stops on signals.

use std::net::UdpSocket;

use nix::sys::signal::Signal;

use crate::util::{loopback, output, Client, ConfigDir, Daemon};

#[test]
fn run_prints_the_configuration_the_real_address_and_how_to_test() {
    let mut daemon = Daemon::spawn(&["run", "--port", "0", "--message", "HELLO_THERE"]);
    let port = daemon.listening_port();
    assert_ne!(port, 0);
    let out = daemon.stdout_text();
    for expected in [
        "Configuration:",
        "port:            0 (ephemeral)",
        "message:         HELLO_THERE",
        "response prefix: SERVER_IP:",
        "buffer size:     1024 bytes",
        "logging:         on (info)",
        "responders:      classic",
        "duration:        none (runs until stopped)",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        out.contains(&format!(
            "[OK] discovery service listening on 127.0.0.1:{port}"
        )),
        "{out}"
    );
    daemon.expect_stdout(&format!(
        "Test it with: discoveryd discover --target 127.0.0.1:{port}"
    ));
}

#[test]
fn stops_by_itself_when_the_duration_elapses() {
    // A bare integer means seconds.
    let mut daemon = Daemon::spawn(&["run", "--port", "0", "--duration", "1"]);
    daemon.listening_port();
    daemon.expect_stdout("[TIMER] Auto-stop timer set for 1s");
    daemon.expect_stdout("Duration expired (1s). Stopping service...");
    daemon.expect_stdout("[OK] Service stopped and cleaned up");
    assert_eq!(daemon.wait(), 0);
}

#[test]
fn duration_from_the_config_file_in_humantime() {
    let config = ConfigDir::new(&loopback("duration = \"1s 200ms\""));
    let (mut daemon, _) = Daemon::run(&config, &[]);
    daemon.expect_stdout("[TIMER] Auto-stop timer set for 1s 200ms");
    daemon.expect_stdout("Duration expired (1s 200ms)");
    assert_eq!(daemon.wait(), 0);
}

#[test]
fn bad_durations_exit_2_with_one_line() {
    for bad in ["0", "-5", "0s", "soon", "5 parsecs"] {
        let (code, _, err) = output(&["run", "--port", "0", "--duration", bad]);
        assert_eq!(code, 2, "--duration {bad}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains("--duration") && first.contains("90s"),
            "--duration {bad}: {err}"
        );
    }
    let config = ConfigDir::new(&loopback("duration = \"0s\""));
    let (code, _, err) = output(&[
        "run",
        "--port",
        "0",
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("discoveryd.toml: key `duration`"), "{err}");
}

fn stops_cleanly_on(signal: Signal) {
    let mut daemon = Daemon::spawn(&["run", "--port", "0"]);
    let port = daemon.listening_port();
    assert!(Client::new().ask(port, b"DISCOVER_SERVER").is_some());
    daemon.signal(signal);
    assert_eq!(daemon.wait(), 0, "{}", daemon.stderr_text());
    assert!(
        daemon
            .stdout_text()
            .ends_with("[OK] Service stopped and cleaned up"),
        "{}",
        daemon.stdout_text()
    );
    // The port is released: we can bind it ourselves.
    UdpSocket::bind(("127.0.0.1", port)).expect("port released");
}

#[test]
fn ctrl_c_stops_cleanly_and_releases_the_port() {
    stops_cleanly_on(Signal::SIGINT);
}

#[test]
fn sigterm_stops_cleanly_and_releases_the_port() {
    stops_cleanly_on(Signal::SIGTERM);
}

#[test]
fn bad_flags_exit_2() {
    let (code, _, err) = output(&["run", "--port", "70000"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--port"), "{err}");
    let (code, _, err) = output(&["run", "--colour"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = output(&["run", "--config", "/nonexistent/discoveryd.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("/nonexistent/discoveryd.toml: cannot read"),
        "{err}"
    );
}
