//! Protocol v1 as a client sees it.

use std::time::Duration;

use crate::util::{loopback, Client, ConfigDir, Daemon};

#[test]
fn built_in_defaults_answer_without_a_config_file() {
    let mut daemon = Daemon::spawn(&["run", "--port", "0"]);
    let port = daemon.listening_port();
    let out = daemon.stdout_text();
    assert!(
        out.contains("config file:     none (built-in defaults)"),
        "{out}"
    );
    assert!(out.contains("message:         DISCOVER_SERVER"), "{out}");
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
}

#[test]
fn answers_with_the_service_port_when_one_is_set() {
    let config = ConfigDir::new(&loopback("service_port = 8080"));
    let (_daemon, port) = Daemon::run(&config, &[]);
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1:8080")
    );
}

#[test]
fn the_answer_comes_from_the_port_the_request_went_to() {
    let (mut daemon, client) = (Daemon::spawn(&["run", "--port", "0"]), Client::new());
    let port = daemon.listening_port();
    let (_, from) = client
        .ask_at(
            "127.0.0.1",
            port,
            b"DISCOVER_SERVER",
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(from, ([127, 0, 0, 1], port).into());
}

#[test]
fn ignores_everything_but_the_exact_message() {
    let config = ConfigDir::new(&loopback("buffer_size = 64"));
    let (_daemon, port) = Daemon::run(&config, &[]);
    let client = Client::new();
    let long = vec![b'A'; 65];
    for junk in [
        &b""[..],
        b"DISCOVER_SERVE",
        b"DISCOVER_SERVER\n",
        b"XDISCOVER_SERVER",
        b"\xff\x00\xfe",
        &long,
    ] {
        assert_eq!(client.ask(port, junk), None, "answered {junk:?}");
    }
    // Still alive and answering after all that.
    assert_eq!(
        client.ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
}

#[test]
fn a_request_longer_than_buffer_size_is_never_truncated_into_a_match() {
    // With buffer_size 15, "DISCOVER_SERVER" fits exactly; one byte more
    // would match if the datagram were truncated to the buffer.
    let config = ConfigDir::new(&loopback(
        "buffer_size = 16\nmessage = \"DISCOVER_SERVER!\"",
    ));
    let (_daemon, port) = Daemon::run(&config, &[]);
    let client = Client::new();
    assert_eq!(client.ask(port, b"DISCOVER_SERVER!X"), None);
    assert_eq!(
        client.ask(port, b"DISCOVER_SERVER!").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
}

#[test]
fn each_answer_names_the_address_the_request_arrived_on() {
    // Bound to the wildcard: requests to 127.0.0.2 and 127.0.0.3 (loopback
    // aliases on Linux) must be answered with those addresses, not a guess.
    let mut daemon =
        Daemon::spawn_with_env(&["run", "--port", "0"], &[("DISCOVERYD_BIND", "0.0.0.0")]);
    let port = daemon.listening_port();
    let client = Client::new();
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let (reply, from) = client
            .ask_at(ip, port, b"DISCOVER_SERVER", Duration::from_secs(2))
            .expect("answer");
        assert_eq!(reply, format!("SERVER_IP:{ip}"));
        assert_eq!(
            from.ip().to_string(),
            ip,
            "the reply must come from the address asked"
        );
    }
}

#[test]
fn advertise_ip_overrides_the_arrival_address() {
    let config = ConfigDir::new(&loopback("advertise_ip = \"192.0.2.10\""));
    let (_daemon, port) = Daemon::run(&config, &[]);
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:192.0.2.10")
    );
}

#[test]
fn the_message_flag_and_env_override_the_file() {
    let config = ConfigDir::new(&loopback("message = \"FROM_FILE\""));
    let path = config.path();
    let mut daemon = Daemon::spawn_with_env(
        &["run", "--config", path.to_str().unwrap(), "--port", "0"],
        &[("DISCOVERYD_MESSAGE", "FROM_ENV_VAR")],
    );
    let port = daemon.listening_port();
    let client = Client::new();
    assert_eq!(
        client.ask(port, b"FROM_ENV_VAR").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
    assert_eq!(client.ask(port, b"FROM_FILE"), None);
    drop(daemon);

    let mut daemon = Daemon::spawn_with_env(
        &[
            "run",
            "--config",
            path.to_str().unwrap(),
            "--port",
            "0",
            "--message",
            "FROM_FLAG",
        ],
        &[("DISCOVERYD_MESSAGE", "FROM_ENV_VAR")],
    );
    let port = daemon.listening_port();
    assert_eq!(
        client.ask(port, b"FROM_FLAG").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
}
