//! Restart-on-failure, end to end, with the `fault` plugin's panics.

use crate::util::{loopback, Client, ConfigDir, Daemon};

/// Run with `--port 0`: a restarted listener must come back on the port
/// it was first given.
fn faulty(max_restarts: u32) -> ConfigDir {
    ConfigDir::new(&loopback(
        &format!(
            "[supervision.restart_on_failure]\nmax_restarts = {max_restarts}\nwithin = \"1m\"\nbackoff = \"10ms\"\nbackoff_max = \"40ms\"\n\
             [[responders]]\ntype = \"fault\"\ntrigger = \"BOOM\"\n[[responders]]\ntype = \"classic\"\n"
        ),
    ))
}

#[test]
fn a_panicking_responder_is_restarted_on_the_same_port() {
    let (mut daemon, port) = Daemon::run(&faulty(5), &[]);
    let client = Client::new();
    assert_eq!(
        client.ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
    for _ in 0..3 {
        assert_eq!(client.ask(port, b"BOOM"), None);
        daemon.expect_stderr("listener failed; restarting");
        daemon.expect_stderr("listener restarted");
        client.ask_until(port, b"DISCOVER_SERVER", "SERVER_IP:127.0.0.1");
    }
    let err = daemon.stderr_text();
    assert!(
        err.contains("responder responders[0] (fault) panicked"),
        "{err}"
    );
}

#[test]
fn too_many_failures_give_up_with_exit_4() {
    let (mut daemon, port) = Daemon::run(&faulty(2), &[]);
    let client = Client::new();
    for _ in 0..2 {
        client.ask(port, b"BOOM");
        daemon.expect_stderr("listener restarted");
        client.ask_until(port, b"DISCOVER_SERVER", "SERVER_IP:127.0.0.1");
    }
    client.ask(port, b"BOOM");
    assert_eq!(daemon.wait(), 4);
    let err = daemon.stderr_text();
    assert!(err.contains("supervisor gave up"), "{err}");
    assert!(
        err.contains("discoveryd: error: the listener failed 2 times within 1m; gave up"),
        "{err}"
    );
}
