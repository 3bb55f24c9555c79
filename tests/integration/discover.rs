//! `discoveryd discover` and the library client, on loopback.

use std::net::UdpSocket;
use std::time::Duration;

use crate::util::{config_for, free_port, loopback, output, ConfigDir, Daemon};

fn json(args: &[&str]) -> (i32, serde_json::Value) {
    let (code, out, err) = output(args);
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{err}"));
    (code, doc)
}

#[test]
fn finds_a_server_by_target_and_prints_a_table() {
    let mut daemon = Daemon::spawn(&["run", "--port", "0"]);
    let port = daemon.listening_port();
    let target = format!("127.0.0.1:{port}");
    let (code, out, err) = output(&["discover", "--target", &target]);
    assert_eq!(code, 0, "{err}");
    let row = out.lines().nth(1).expect("a row");
    assert!(
        row.starts_with("127.0.0.1") && row.ends_with("SERVER_IP:127.0.0.1"),
        "{out}"
    );
    assert!(err.contains("1 server(s) found"), "{err}");
}

#[test]
fn json_output_has_each_server_once_with_its_service_port() {
    let config = ConfigDir::new(&loopback("service_port = 8080"));
    let (_daemon, port) = Daemon::run(&config, &[]);
    let target = format!("127.0.0.1:{port}");
    // The same server asked twice is listed once.
    let (code, doc) = json(&[
        "discover",
        "--target",
        &target,
        "--target",
        &target,
        "--target",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--json",
    ]);
    assert_eq!(code, 0);
    let servers = doc["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{doc}");
    assert_eq!(servers[0]["ip"], "127.0.0.1");
    assert_eq!(servers[0]["port"], 8080);
    assert_eq!(servers[0]["reply"], "SERVER_IP:127.0.0.1:8080");
    assert!(servers[0]["rtt_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn first_returns_at_the_first_answer_not_the_timeout() {
    let mut daemon = Daemon::spawn(&["run", "--port", "0"]);
    let target = format!("127.0.0.1:{}", daemon.listening_port());
    let (code, doc) = json(&[
        "discover",
        "--target",
        &target,
        "--first",
        "--timeout",
        "20s",
        "--json",
    ]);
    assert_eq!(code, 0);
    let elapsed = doc["elapsed_ms"].as_f64().unwrap();
    assert!(
        elapsed < 10_000.0,
        "--first waited {elapsed} ms of a 20 s timeout"
    );
}

#[test]
fn nobody_answering_exits_1() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let (code, out, err) = output(&["discover", "--target", &target, "--timeout", "100ms"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("0 server(s) found"), "{err}");
}

/// A fake server that answers each request with the next canned reply.
fn fake_server(replies: &'static [&'static [u8]]) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok((_, from)) = socket.recv_from(&mut buf) {
            for reply in replies {
                let _ = socket.send_to(reply, from);
            }
        }
    });
    addr
}

#[test]
fn malformed_answers_are_ignored_and_counted() {
    let long: &'static [u8] = Box::leak(vec![b'S'; 600].into_boxed_slice());
    let replies: &'static [&'static [u8]] = Box::leak(Box::new([
        &b"HELLO_THERE"[..],
        b"SERVER_IP:not-an-ip",
        b"SERVER_IP:10.0.0.1:99999",
        long,
        b"SERVER_IP:192.0.2.7:1234",
    ]));
    let target = fake_server(replies);
    let (code, doc) = json(&[
        "discover",
        "--target",
        &target,
        "--timeout",
        "300ms",
        "--json",
    ]);
    assert_eq!(code, 0);
    let servers = doc["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{doc}");
    assert_eq!(
        (servers[0]["ip"].as_str(), servers[0]["port"].as_u64()),
        (Some("192.0.2.7"), Some(1234))
    );
    let reasons: Vec<&str> = doc["malformed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["wrong prefix", "not an IP address", "bad port", "oversize"]
    );

    let target = fake_server(Box::leak(Box::new([&b"SERVER_IP:junk"[..]])));
    let (code, out, err) = output(&["discover", "--target", &target, "--timeout", "300ms", "-v"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("malformed reply from") && err.contains("not an IP address"),
        "{err}"
    );
    assert!(err.contains("1 malformed repl(ies) ignored"), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["discover", "--timeout", "0"][..],
        &["discover", "--target", "127.0.0.1:notaport"],
        &["discover", "--target", "nohost.invalid"],
        &["discover", "--frist"],
    ] {
        let (code, _, err) = output(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}

#[test]
fn uses_the_config_file_for_message_and_port() {
    // A pre-chosen port: `discover` reads it from the same file.
    let port = free_port();
    let config = ConfigDir::new(&config_for(port, "message = \"WHO_IS_THERE\""));
    let (_daemon, _) = Daemon::run_on_file_port(&config, &[]);
    let path = config.path();
    let (code, doc) = json(&[
        "discover",
        "--config",
        path.to_str().unwrap(),
        "--target",
        "127.0.0.1",
        "--json",
    ]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["sent_to"][0], format!("127.0.0.1:{port}"));
    assert_eq!(doc["servers"][0]["reply"], "SERVER_IP:127.0.0.1", "{doc}");
}

#[test]
fn ipv6_servers_are_found_over_ipv6() {
    // A pre-chosen port (free on 127.0.0.1 and ::1): with `--port 0` each
    // address would get a port of its own.
    let config = ConfigDir::new(&format!(
        "port = {}\nbind = [\"127.0.0.1\", \"::1\"]\n",
        free_port()
    ));
    let path = config.path();
    let mut daemon = Daemon::spawn_with_env(&["run", "--config", path.to_str().unwrap()], &[]);
    let port = daemon.listening_port();
    daemon.expect_stdout(&format!("listening on [::1]:{port}"));
    let (code, doc) = json(&["discover", "--target", &format!("[::1]:{port}"), "--json"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["servers"][0]["ip"], "::1");
    assert_eq!(doc["servers"][0]["reply"], "SERVER_IP:::1");

    // Both families at once: each answer's sender read whole (one
    // receive batch for both sockets cut IPv6 senders short after an
    // IPv4 answer, and discover then waited out its timeout).
    let started = std::time::Instant::now();
    let (code, doc) = json(&[
        "discover",
        "--target",
        &format!("127.0.0.1:{port}"),
        "--target",
        &format!("[::1]:{port}"),
        "--timeout",
        "10s",
        "--json",
    ]);
    assert_eq!(code, 0, "{doc}");
    let mut from: Vec<String> = doc["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["from"].as_str().unwrap().to_owned())
        .collect();
    from.sort();
    assert_eq!(
        from,
        [format!("127.0.0.1:{port}"), format!("[::1]:{port}")],
        "{doc}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "returned once both answered, not at its 10 s timeout: {doc}"
    );
}

/// A hostile LAN: a server whose services document claims far more
/// services than there can be, and a stranger's document from a port that
/// never answered the discovery request.
#[test]
fn hostile_services_documents_are_bounded() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let answering = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..2 {
            let Ok((n, from)) = server.recv_from(&mut buf) else {
                return;
            };
            let doc = format!(
                r#"{{"ip":"127.0.0.1","services":[{{"id":"a","name":"x","address":"192.0.2.9","port":1}}],"services_total":{}}}"#,
                u64::MAX
            );
            let reply: &[u8] = if buf[..n].starts_with(b"DISCOVER_JSON") {
                let lie = r#"{"ip":"10.9.9.9","services":[{"id":"z","name":"z","address":"10.9.9.9","port":1}],"services_total":18446744073709551615}"#;
                let _ = stranger.send_to(lie.as_bytes(), from);
                doc.as_bytes()
            } else {
                b"SERVER_IP:127.0.0.1"
            };
            let _ = server.send_to(reply, from);
            let _ = server.send_to(reply, from);
        }
    });
    let (code, doc) = json(&[
        "discover",
        "--target",
        &format!("127.0.0.1:{port}"),
        "--timeout",
        "1s",
        "--json",
    ]);
    answering.join().unwrap();
    assert_eq!(code, 0, "{doc}");
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "the stranger's is not listed: {doc}");
    assert_eq!(services[0]["server"], "127.0.0.1");
    assert_eq!(
        doc["services_left_out"],
        u64::MAX - 1,
        "counted once per server: {doc}"
    );
}

#[test]
fn the_library_client_finds_the_server_too() {
    let mut daemon = Daemon::spawn(&["run", "--port", "0"]);
    let port = daemon.listening_port();
    let options = discoveryd::DiscoverOptions {
        targets: vec![([127, 0, 0, 1], port).into()],
        broadcast: false,
        first: true,
        timeout: Duration::from_secs(5),
        ..discoveryd::DiscoverOptions::from_config(&discoveryd::Config::default())
    };
    let found = discoveryd::discover_blocking(&options).unwrap();
    assert_eq!(found.servers.len(), 1);
    assert_eq!(found.servers[0].ip, std::net::IpAddr::from([127, 0, 0, 1]));
    assert_eq!(found.servers[0].port, None);
}

/// A burst of answers, as a broadcast to a LAN of hundreds of servers
/// brings, while the client is not running (stopped with SIGSTOP, as a
/// busy machine may leave it unscheduled): each answer from its own
/// loopback address (127.0.2.1 onwards, from one socket with IP_PKTINFO),
/// then the target's own answer last. They must all wait in the client's
/// receive buffer: the build before kept 256 of 501 (in the default
/// 208 KiB buffer).
#[test]
fn a_burst_of_hundreds_of_answers_is_found_whole() {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::socket::{sendmsg, setsockopt, sockopt, ControlMessage, MsgFlags, SockaddrIn};
    use nix::unistd::Pid;
    use std::io::IoSlice;
    use std::net::Ipv4Addr;
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};

    // The buffer a process like this one is granted, asked the client's
    // way: forced as root, else up to net.core.rmem_max. Each small
    // answer takes about 1 KiB of it; unprivileged, the burst is smaller.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let want: usize = 8 << 20;
    if setsockopt(&probe, sockopt::RcvBufForce, &want).is_err() {
        let _ = setsockopt(&probe, sockopt::RcvBuf, &want);
    }
    let granted = nix::sys::socket::getsockopt(&probe, sockopt::RcvBuf).unwrap() / 2;
    let servers = (granted / 2048).clamp(50, 500);

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let target = socket.local_addr().unwrap().to_string();
    let child = Command::new(crate::util::bin())
        .args(["discover", "--json", "--target", &target, "--timeout", "5s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    let mut buf = [0u8; 64];
    let (_, peer) = socket.recv_from(&mut buf).expect("the client's request");
    let std::net::SocketAddr::V4(peer) = peer else {
        panic!("an IPv4 client");
    };
    kill(pid, Signal::SIGSTOP).unwrap();
    let to = SockaddrIn::from(peer);
    let mut sent = 0;
    for i in 0..servers {
        let ip = Ipv4Addr::new(127, 0, 2 + (i / 250) as u8, 1 + (i % 250) as u8);
        let reply = format!("SERVER_IP:{ip}");
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
        let iov = [IoSlice::new(reply.as_bytes())];
        if sendmsg(
            socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&to),
        )
        .is_ok()
        {
            sent += 1;
        }
    }
    socket.send_to(b"SERVER_IP:127.0.0.1", peer).unwrap();
    kill(pid, Signal::SIGCONT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(sent, servers, "the burst itself could not be sent");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = doc["servers"].as_array().unwrap();
    let mut ips: Vec<&str> = found.iter().map(|s| s["ip"].as_str().unwrap()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(
        (found.len(), ips.len()),
        (servers + 1, servers + 1),
        "{} of {} answers found (receive buffer granted: {granted} bytes)",
        found.len(),
        servers + 1
    );
}

#[test]
fn a_timeout_past_an_hour_is_a_usage_error_in_both_modes() {
    // Refused before anything is sent or bound (no mDNS on the host).
    for timeout in ["18446744073709551615", "2h", "3601s"] {
        for mode in [&["--target", "127.0.0.1:1"][..], &["--mdns"][..]] {
            let mut args = vec!["discover", "--timeout", timeout];
            args.extend(mode);
            let (code, out, err) = output(&args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(out.is_empty(), "{out}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains("--timeout") && err.contains("at most 1h"),
                "{err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let config = ConfigDir::new("timeout = \"2h\"");
    let path = config.path();
    let path = path.to_str().unwrap();
    let (code, _, err) = output(&["discover", "--config", path, "--target", "127.0.0.1:1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `timeout`") && err.contains("at most 1h"),
        "{err}"
    );
}
