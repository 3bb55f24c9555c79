//! A busy port: retry-after-cleanup, then exit 3 naming the holder.

use crate::util::{config_for, free_port, hold, loopback, Client, ConfigDir, Daemon};

const QUICK_RETRIES: &str = "[supervision.retry_after_cleanup]\nattempts = 2\ndelay = \"50ms\"";

#[test]
fn a_held_port_exits_3_naming_the_port_the_holder_and_the_fix() {
    // A pre-chosen port: another program holds it.
    let port = free_port();
    let _held = hold(port);
    let config = ConfigDir::new(&config_for(port, QUICK_RETRIES));
    let mut daemon = Daemon::spawn(&["run", "--config", config.path().to_str().unwrap()]);
    assert_eq!(daemon.wait(), 3);
    let err = daemon.stderr_text();
    let line = err
        .lines()
        .find(|l| l.starts_with("discoveryd: error:"))
        .expect("an error line");
    assert!(line.contains(&format!("port {port}/udp")), "{line}");
    assert!(
        line.contains(&format!("pid {}", std::process::id())),
        "holder pid missing: {line}"
    );
    assert!(line.contains("tried 3 times"), "{line}");
    assert!(
        line.contains("--port") && line.contains("discoveryd.toml"),
        "the fix is missing: {line}"
    );
    assert_eq!(
        err.matches("port conflict").count(),
        3,
        "one conflict per attempt:\n{err}"
    );
}

#[test]
fn the_service_starts_if_the_port_frees_up_during_the_retries() {
    // A pre-chosen port: another program holds it, then lets it go.
    let port = free_port();
    let held = hold(port);
    let retries = "[supervision.retry_after_cleanup]\nattempts = 100\ndelay = \"50ms\"";
    let config = ConfigDir::new(&config_for(port, retries));
    let mut daemon = Daemon::spawn(&["run", "--config", config.path().to_str().unwrap()]);
    daemon.expect_stderr("port conflict");
    drop(held);
    assert_eq!(daemon.listening_port(), port);
    assert!(Client::new().ask(port, b"DISCOVER_SERVER").is_some());
}

#[test]
fn a_second_discoveryd_on_the_same_port_gets_a_conflict_never_a_share() {
    let (mut first, port) = Daemon::run(&ConfigDir::new(&loopback("")), &[]);
    let config = ConfigDir::new(&config_for(port, QUICK_RETRIES));
    let mut second = Daemon::spawn(&["run", "--config", config.path().to_str().unwrap()]);
    assert_eq!(second.wait(), 3);
    let err = second.stderr_text();
    assert!(
        err.contains(&format!("in use by pid {} (discoveryd)", first.pid())),
        "{err}"
    );
    // The first keeps answering, alone.
    assert!(Client::new().ask(port, b"DISCOVER_SERVER").is_some());
    first.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(first.wait(), 0);
}
