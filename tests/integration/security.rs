//! The defences, end to end: each refusal is silent on the wire and
//! counted in `status`.

use std::net::UdpSocket;
use std::time::Duration;

use crate::util::{loopback, output, Client, ConfigDir, Daemon};

fn refused(daemon: &Daemon, reason: &str) -> u64 {
    daemon.status()["counters"]["refused"][reason]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn reflector_source_ports_are_never_answered() {
    let (daemon, port) = Daemon::run(&ConfigDir::new(&loopback("")), &[]);
    // Unprivileged reflector ports (the list also holds 7, 19, 53, 123, ...).
    let reflector = [11211, 5353, 3702, 1900]
        .into_iter()
        .find_map(|p| UdpSocket::bind(("127.0.0.1", p)).ok());
    let reflector = reflector.expect("one unprivileged reflector port is free");
    reflector
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    reflector
        .send_to(b"DISCOVER_SERVER", ("127.0.0.1", port))
        .unwrap();
    assert!(
        reflector.recv_from(&mut [0u8; 64]).is_err(),
        "answered a reflector port"
    );
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
    assert_eq!(refused(&daemon, "reflector_port"), 1);
}

#[test]
fn answers_of_other_responders_are_never_answered() {
    let (daemon, port) = Daemon::run(&ConfigDir::new(&loopback("")), &[]);
    assert_eq!(Client::new().ask(port, b"SERVER_IP:192.0.2.1"), None);
    assert_eq!(refused(&daemon, "loop"), 1);
}

#[test]
fn oversized_answers_are_dropped_and_counted() {
    // A document well over 3 x (13 + 28) bytes on the wire.
    let extra = "[[responders]]\ntype = \"json\"\nname = \"a-service-with-a-long-name\"\n[responders.metadata]\nroom = \"the lab on the third floor\"\n[[responders]]\ntype = \"classic\"";
    let (daemon, port) = Daemon::run(&ConfigDir::new(&loopback(extra)), &[]);
    assert_eq!(Client::new().ask(port, b"DISCOVER_JSON"), None);
    assert_eq!(refused(&daemon, "amplification"), 1);
}

#[test]
fn each_source_is_rate_limited_but_not_its_neighbours() {
    // Buckets are per worker (no lock is shared per datagram); on loopback a
    // sender can reach every worker, so the exact figure needs one worker.
    let extra = "workers = 1\n[security]\nrate_limit_exempt = []\n[security.rate_limit]\nper_source = 1.0\nburst = 5.0";
    let (daemon, port) = Daemon::run(&ConfigDir::new(&loopback(extra)), &[]);
    let answered = |client: &Client, n: usize| {
        (0..n)
            .filter(|_| {
                client
                    .ask_at(
                        "127.0.0.1",
                        port,
                        b"DISCOVER_SERVER",
                        Duration::from_millis(50),
                    )
                    .is_some()
            })
            .count()
    };
    let noisy = Client::bound_to("127.0.0.2");
    let got = answered(&noisy, 15);
    // The burst, plus at most the token or two refilled while asking.
    assert!((5..=7).contains(&got), "answered {got} of 15");
    assert_eq!(
        answered(&Client::bound_to("127.0.0.3"), 3),
        3,
        "another source has its own bucket"
    );
    assert!(refused(&daemon, "rate_limited") >= 8);
}

#[test]
fn loopback_is_exempt_from_the_rate_limits_by_default() {
    let (_daemon, port) = Daemon::run(&ConfigDir::new(&loopback("")), &[]);
    let client = Client::new();
    // More than the default burst (40), back to back.
    let answered = (0..60)
        .filter(|_| client.ask(port, b"DISCOVER_SERVER").is_some())
        .count();
    assert_eq!(answered, 60);
}

#[test]
fn any_message_is_answered_over_ipv4_and_ipv6_with_the_defaults() {
    // The cap counts what reaches the wire, headers included, so even a
    // 1-byte request may get the longest classic answer (with a port).
    for message in ["A", "ABC", "ALPHA"] {
        let config = ConfigDir::new(&format!(
            "message = \"{message}\"\nservice_port = 65535\nbind = [\"127.0.0.1\", \"::1\"]"
        ));
        let path = config.path();
        let mut daemon = Daemon::spawn_with_env(
            &["run", "--port", "0", "--config", path.to_str().unwrap()],
            &[],
        );
        let port = daemon.listening_port();
        let line = daemon.expect_stdout("listening on [::1]:");
        let port6: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
        let (reply, _) = Client::new()
            .ask_at(
                "127.0.0.1",
                port,
                message.as_bytes(),
                Duration::from_secs(2),
            )
            .expect("an answer over IPv4");
        assert_eq!(reply, "SERVER_IP:127.0.0.1:65535");
        let (reply, _) = Client::bound_to("::1")
            .ask_at("::1", port6, message.as_bytes(), Duration::from_secs(2))
            .expect("an answer over IPv6");
        assert_eq!(reply, "SERVER_IP:[::1]:65535");
        assert_eq!(refused(&daemon, "amplification"), 0);
    }
    // The environment's message too.
    let mut daemon = Daemon::spawn_with_env(
        &["run", "--port", "0"],
        &[
            ("DISCOVERYD_BIND", "127.0.0.1"),
            ("DISCOVERYD_MESSAGE", "ENVMSG"),
        ],
    );
    let port = daemon.listening_port();
    assert_eq!(
        Client::new().ask(port, b"ENVMSG").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
}

#[test]
fn a_message_too_short_for_a_long_answer_is_a_config_error() {
    let prefix = "P".repeat(100);
    let dir = ConfigDir::new(&format!(
        "message = \"HI\"\nresponse_prefix = \"{prefix}\"\n"
    ));
    let (code, _, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `message`: `message` is 2 bytes, too short")
            && err.contains("at least 20 bytes"),
        "{err}"
    );
    let dir = ConfigDir::new(&format!(
        "message = \"HI\"\nresponse_prefix = \"{prefix}\"\n[security]\nmax_amplification = 20.0\n"
    ));
    let (code, _, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_config_that_would_answer_nothing_fails_check_and_reload() {
    for (extra, key) in [
        ("response_prefix = \"DISCOVER_\"", "response_prefix"),
        ("message = \"SERVER_IP:hello\"", "message"),
    ] {
        let dir = ConfigDir::new(&loopback(extra));
        let (code, _, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!("key `{key}`:")) && err.contains("starts with `response_prefix`"),
            "{err}"
        );
    }
    // A hot reload to such a config is rejected: the service keeps answering.
    let config = ConfigDir::new(&loopback(""));
    let (daemon, port) = Daemon::run(&config, &[]);
    config.write(&loopback("response_prefix = \"DISCOVER_\""));
    let deadline = std::time::Instant::now() + crate::util::DEADLINE;
    while daemon.status()["reloads"]["rejected"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload was not rejected"
        );
    }
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
}

#[test]
fn status_shows_every_refusal_by_reason() {
    let (daemon, port) = Daemon::run(&ConfigDir::new(&loopback("buffer_size = 32")), &[]);
    let client = Client::new();
    client.ask(port, b"");
    client.ask(port, &[b'x'; 33]);
    client.ask(port, b"SERVER_IP:x");
    let counters = &daemon.status()["counters"];
    assert_eq!(counters["refused"]["empty"], 1, "{counters}");
    assert_eq!(counters["refused"]["oversize"], 1, "{counters}");
    assert_eq!(counters["refused"]["loop"], 1, "{counters}");
    assert_eq!(counters["rejected"], 3, "{counters}");
}
