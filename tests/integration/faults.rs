//! Faults: a broken config file, hostile datagrams, signals at bad moments.

use std::net::UdpSocket;

use nix::sys::signal::Signal;

use crate::util::{config_for, free_port, loopback, settled, Client, ConfigDir, Daemon};

#[test]
fn a_broken_config_file_never_costs_the_running_config() {
    let good = loopback("message = \"STILL_SERVING\"");
    let config = ConfigDir::new(&good);
    let (mut daemon, port) = Daemon::run(&config, &[]);
    let client = Client::new();
    let serving = |client: &Client| {
        client.ask(port, b"STILL_SERVING").as_deref() == Some("SERVER_IP:127.0.0.1")
    };
    assert!(serving(&client));
    let path = config.path();

    let mut changes = 0;
    // Garbage, then the good file cut in half.
    for body in ["\u{1}\u{2} not toml at all [[[", &good[..good.len() / 2]] {
        config.write(body);
        changes += 1;
        daemon.expect_stderr("config rejected");
        assert!(serving(&client));
    }
    // Deleted.
    std::fs::remove_file(&path).unwrap();
    changes += 1;
    let line = daemon.expect_stderr("config rejected");
    assert!(line.contains("cannot read the config file"), "{line}");
    assert!(serving(&client));
    // Replaced by a directory.
    std::fs::create_dir(&path).unwrap();
    changes += 1;
    daemon.expect_stderr("config rejected");
    assert!(serving(&client));
    std::fs::remove_dir(&path).unwrap();
    daemon.expect_stderr("config rejected");
    changes += 1;

    // Restored: it reloads.
    config.write(&loopback("message = \"RESTORED_MESSAGE\""));
    client.ask_until(port, b"RESTORED_MESSAGE", "SERVER_IP:127.0.0.1");
    let rejected = daemon.stderr_text().matches("config rejected").count();
    assert_eq!(
        rejected,
        changes,
        "each bad change is logged once:\n{}",
        daemon.stderr_text()
    );
}

#[test]
fn hostile_datagrams_of_every_size_get_no_answer_and_no_crash() {
    let config = ConfigDir::new(&loopback("buffer_size = 1024"));
    let (daemon, port) = Daemon::run(&config, &[]);
    let client = Client::new();
    let mut junk: Vec<Vec<u8>> = [0usize, 1, 14, 1023, 1024, 1025, 4096, 65_507]
        .into_iter()
        .map(|n| (0..n).map(|i| (i * 7 + 3) as u8).collect())
        .collect();
    junk.push(b"\xff\xfe\xfd invalid utf-8".to_vec());
    junk.push(b"DISCOVER_SERVER and then some junk".to_vec());
    junk.push(b"DISCOVER_SERVE".to_vec());
    let mut padded = b"DISCOVER_SERVER".to_vec();
    padded.resize(1024, b' ');
    junk.push(padded);
    for datagram in &junk {
        assert_eq!(
            client.ask(port, datagram),
            None,
            "answered {} bytes",
            datagram.len()
        );
    }
    assert_eq!(
        client.ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
    let counters = settled(
        || daemon.status()["counters"].clone(),
        |c| c["answered"] != 0,
    );
    assert_eq!(counters["answered"], 1, "{counters}");
    assert_eq!(counters["refused"]["empty"], 1, "{counters}");
    assert_eq!(counters["refused"]["oversize"], 3, "{counters}");
}

#[test]
fn sigterm_during_a_restart_backoff_stops_at_once() {
    let config = ConfigDir::new(&loopback(
        "[supervision.restart_on_failure]\nbackoff = \"30s\"\nbackoff_max = \"30s\"\n\
         [[responders]]\ntype = \"fault\"\ntrigger = \"BOOM\"\n[[responders]]\ntype = \"classic\"\n",
    ));
    let (mut daemon, port) = Daemon::run(&config, &[]);
    let client = Client::new();
    client.ask(port, b"BOOM");
    daemon.expect_stderr("listener restarted");
    client.ask_until(port, b"DISCOVER_SERVER", "SERVER_IP:127.0.0.1");
    // The second restart in the window waits at least 15 s.
    client.ask(port, b"BOOM");
    daemon.expect_stderr("restart_in=");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(), 0, "{}", daemon.stderr_text());
    UdpSocket::bind(("127.0.0.1", port)).expect("port released");
}

#[test]
fn sigterm_during_a_rebinding_reload_releases_both_ports() {
    // Pre-chosen ports: the port changes on the reload.
    let (old, new) = (free_port(), free_port());
    let config = ConfigDir::new(&config_for(old, ""));
    let (mut daemon, _) = Daemon::run_on_file_port(&config, &[]);
    config.write(&config_for(new, ""));
    daemon.expect_stderr("binding the new addresses first");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(), 0, "{}", daemon.stderr_text());
    for port in [old, new] {
        UdpSocket::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("port {port} not released: {e}"));
    }
}
