//! The HTTP side: health, metrics, status and reload over HTTP, its
//! defences (Host allowlist, token), and that nothing it receives stops
//! the UDP responder.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::util::{loopback, output, settled, Client, ConfigDir, Daemon, DEADLINE};

pub(crate) const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// An HTTP/1.1 answer: its status code and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) code: u16,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// One request on its own connection; `headers` are extra lines.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP endpoint");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A peer may answer (413) and close before taking a large body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Answer { code, body }
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, &[], b"")
}

/// A daemon with `[http]` on an ephemeral loopback port (plus `extra`
/// keys in the table); its UDP port and HTTP address.
pub(crate) fn daemon_with_http(extra: &str) -> (ConfigDir, Daemon, u16, SocketAddr) {
    daemon_with(&format!("[http]\nlisten = \"127.0.0.1:0\"\n{extra}\n"))
}

/// A daemon with this config (which sets `[http]`).
pub(crate) fn daemon_with(toml: &str) -> (ConfigDir, Daemon, u16, SocketAddr) {
    let config = ConfigDir::new(&loopback(toml));
    let (daemon, port) = Daemon::run(&config, &[]);
    let status = settled(|| daemon.status(), |s| s["http"].is_string());
    let addr = status["http"]
        .as_str()
        .unwrap_or_else(|| panic!("no http address in status: {status}"))
        .parse()
        .unwrap();
    (config, daemon, port, addr)
}

#[test]
fn health_metrics_and_status_over_http_match_the_control_socket() {
    let (_config, daemon, port, http) = daemon_with_http("");
    let live = get(http, "/livez");
    assert_eq!(live.code, 200, "{live:?}");
    let ready = get(http, "/readyz");
    assert_eq!(
        (ready.code, ready.json()["status"].as_str()),
        (200, Some("ready"))
    );

    let client = Client::new();
    for _ in 0..3 {
        assert_eq!(
            client.ask(port, b"DISCOVER_SERVER").as_deref(),
            Some("SERVER_IP:127.0.0.1")
        );
    }
    client.ask(port, b"");
    let status = settled(|| daemon.status(), |s| s["counters"]["answered"] == 3);
    let metrics = get(http, "/metrics");
    assert_eq!(metrics.code, 200);
    for line in [
        "discoveryd_answers_total 3".to_owned(),
        format!(
            "discoveryd_refused_total{{reason=\"empty\"}} {}",
            status["counters"]["refused"]["empty"]
        ),
        "discoveryd_reloads_total{result=\"applied\"} 0".to_owned(),
        "discoveryd_restarts_total 0".to_owned(),
        "discoveryd_registrations 0".to_owned(),
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line} in\n{}",
            metrics.body
        );
    }

    let openmetrics = request(
        http,
        "GET",
        "/metrics",
        &["Accept: application/openmetrics-text; version=1.0.0"],
        b"",
    );
    assert!(
        openmetrics.body.ends_with("# EOF\n"),
        "{}",
        openmetrics.body
    );
    assert!(openmetrics
        .body
        .contains("# TYPE discoveryd_answers counter\n"));
    assert!(
        !metrics.body.contains("# EOF"),
        "the classic text has no EOF marker"
    );
    assert!(metrics
        .body
        .contains("# TYPE discoveryd_answers_total counter\n"));

    let over_http = get(http, "/v1/status");
    assert_eq!(over_http.code, 200);
    let doc = over_http.json();
    assert_eq!(doc["pid"], daemon.pid());
    assert_eq!(doc["addrs"], status["addrs"]);
    assert_eq!(doc["http"], status["http"]);
}

#[test]
fn reload_over_http_answers_with_the_result() {
    let (config, daemon, _port, http) = daemon_with_http("");
    let unchanged = request(http, "POST", "/v1/reload", &[], b"");
    assert_eq!(unchanged.code, 200, "{unchanged:?}");
    assert_eq!(unchanged.json()["result"], "unchanged");

    // The watcher sees each edit too: let it finish first, so that the
    // next result is the request's own.
    config.write(&loopback(
        "log_level = \"debug\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
    ));
    let status = settled(|| daemon.status(), |s| s["reloads"]["applied"] == 1);
    assert_eq!(status["reloads"]["applied"], 1, "{status}");
    let again = request(http, "POST", "/v1/reload", &[], b"");
    assert_eq!(again.code, 200, "{again:?}");
    assert_eq!(again.json()["result"], "unchanged", "{again:?}");

    config.write("buffer_size = 1\n[http]\nlisten = \"127.0.0.1:0\"\n");
    let status = settled(|| daemon.status(), |s| s["reloads"]["rejected"] == 1);
    assert_eq!(status["reloads"]["rejected"], 1, "{status}");
    let rejected = request(http, "POST", "/v1/reload", &[], b"");
    assert_eq!(rejected.code, 422, "{rejected:?}");
    let doc = rejected.json();
    assert_eq!(doc["result"], "rejected");
    assert!(
        doc["detail"].as_str().unwrap().contains("buffer_size"),
        "{doc}"
    );
    assert_eq!(
        get(http, "/livez").code,
        200,
        "the old config keeps serving"
    );
}

#[test]
fn a_token_guards_reload_and_the_host_header_is_checked() {
    let (_config, _daemon, _port, http) = daemon_with_http(&format!("token = \"{TOKEN}\""));
    let open = request(http, "POST", "/v1/reload", &[], b"");
    assert_eq!(open.code, 401, "{open:?}");
    assert!(open.json()["error"].as_str().unwrap().contains("Bearer"));
    let wrong = request(
        http,
        "POST",
        "/v1/reload",
        &["Authorization: Bearer 0123456789abcdef0123456789abcdeX"],
        b"",
    );
    assert_eq!(wrong.code, 401);
    let right = request(
        http,
        "POST",
        "/v1/reload",
        &[&format!("Authorization: Bearer {TOKEN}")],
        b"",
    );
    assert_eq!(right.code, 200, "{right:?}");
    assert_eq!(get(http, "/livez").code, 200, "reading needs no token");
    // A web page's request (a browser sends it without a preflight, and
    // says where it comes from) changes nothing, token or not.
    let from_a_page = request(
        http,
        "POST",
        "/v1/reload",
        &[
            &format!("Authorization: Bearer {TOKEN}"),
            "Origin: http://attacker.example",
        ],
        b"",
    );
    assert_eq!(from_a_page.code, 403, "{from_a_page:?}");
    assert!(from_a_page.json()["error"]
        .as_str()
        .unwrap()
        .contains("Origin"));

    // A page on another site, resolving its name to 127.0.0.1 (DNS
    // rebinding), sends its own name as the Host.
    let mut stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
        .write_all(
            b"GET /v1/status HTTP/1.1\r\nHost: attacker.example:80\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 421"), "{text}");
    assert!(!text.contains("\"pid\""), "no status leaks: {text}");
}

#[test]
fn check_never_prints_the_token() {
    let config = ConfigDir::new(&format!(
        "[http]\nlisten = \"127.0.0.1:9998\"\ntoken = \"{TOKEN}\"\n"
    ));
    let (code, out, err) = output(&["check", "--config", config.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains(TOKEN) && out.contains("token = \"<redacted>\""),
        "{out}"
    );
}

#[test]
fn an_open_listener_off_loopback_is_a_config_error() {
    let config = ConfigDir::new("[http]\nlisten = \"0.0.0.0:9998\"\n");
    let (code, _out, err) = output(&["check", "--config", config.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("http.listen") && err.contains("http.token"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_busy_http_port_leaves_discovery_answering_and_is_retried() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap();
    let config = ConfigDir::new(&loopback(&format!("[http]\nlisten = \"{busy}\"\n")));
    let (mut daemon, port) = Daemon::run(&config, &[]);
    daemon.expect_stderr(&format!("cannot listen on http.listen {busy}"));
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
    assert!(daemon.status()["http"].is_null());
    // It is retried, never given up: once the port is free, it listens.
    drop(holder);
    let status = settled(|| daemon.status(), |s| s["http"].is_string());
    assert_eq!(status["http"], busy.to_string(), "{status}");
    assert_eq!(get(busy, "/livez").code, 200);
}

#[test]
fn a_flood_on_the_http_side_never_stops_discovery() {
    let (_config, daemon, port, http) = daemon_with_http("");
    let stop = Instant::now() + Duration::from_secs(2);
    let flooders: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut sent = 0u32;
                while Instant::now() < stop {
                    // Well-formed scrapes, registrations churning (each
                    // rebuilds what lists them), junk and half-open
                    // connections.
                    match i % 4 {
                        0 => drop(get(http, "/metrics")),
                        1 => {
                            let path = format!("/v1/services/flood-{i}-{}", sent % 50);
                            let body = br#"{"name": "f", "port": 1, "ttl": "1m"}"#;
                            let _ = request(http, "PUT", &path, &[], body);
                            let _ = request(http, "DELETE", &path, &[], b"");
                        }
                        _ => {
                            if let Ok(mut s) = TcpStream::connect(http) {
                                let _ = s.write_all(b"\x00\xffGARBAGE / HTTP/9\r\n\r\n");
                            }
                        }
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let client = Client::new();
    let mut asked = 0;
    let mut answered = 0;
    while Instant::now() < stop {
        asked += 1;
        if client.ask(port, b"DISCOVER_SERVER").is_some() {
            answered += 1;
        }
    }
    let flood: u32 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(flood > 100, "the flood was real ({flood} requests)");
    assert_eq!(
        answered, asked,
        "every discovery during the flood was answered"
    );
    assert_eq!(
        get(http, "/livez").code,
        200,
        "and the endpoint survived it"
    );
    assert!(daemon.status()["ready"].as_bool().unwrap());
}
