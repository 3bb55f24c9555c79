//! `[[registries]]` and `discover --etcd` as far as they go without an
//! etcd: the config's errors, the secrets `check` hides, the usage errors,
//! and an unreachable etcd never stopping the service. The behaviour
//! against a real etcd is `tests/etcd/run.sh`'s.

use crate::http::{daemon_with, get};
use crate::util::{output, settled, Client, ConfigDir};

/// An etcd endpoint where nothing listens: port 1 on loopback, refused at
/// once.
const NOBODY: &str = "http://127.0.0.1:1";

#[test]
fn bad_registries_are_config_errors_naming_the_key() {
    for (table, key) in [
        ("endpoints = []", "registries[0].endpoints"),
        (
            "endpoints = [\"https://etcd:2379\"]",
            "registries[0].endpoints",
        ),
        (
            "endpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/no-slash\"",
            "registries[0].prefix",
        ),
        (
            "endpoints = [\"http://127.0.0.1:2379\"]\nttl = \"1s\"",
            "registries[0].ttl",
        ),
        (
            "endpoints = [\"http://127.0.0.1:2379\"]\nuser = \"u\"",
            "registries[0].password",
        ),
        (
            "endpoints = [\"http://127.0.0.1:2379\"]\ncolour = 1",
            "colour",
        ),
    ] {
        let config = ConfigDir::new(&format!("[[registries]]\ntype = \"etcd\"\n{table}\n"));
        let (code, _, err) = output(&["check", "--config", config.path().to_str().unwrap()]);
        assert_eq!(code, 2, "{table}: {err}");
        assert!(err.contains(key), "{table}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let config = ConfigDir::new("[[registries]]\ntype = \"consul\"\n");
    let (code, _, err) = output(&["check", "--config", config.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("consul") && err.contains("etcd"), "{err}");
}

#[test]
fn check_hides_the_etcd_password() {
    let config = ConfigDir::new(
        "[[registries]]\ntype = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nuser = \"d\"\npassword = \"s3cret-pass\"\n",
    );
    let (code, out, err) = output(&["check", "--config", config.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("s3cret-pass"), "{out}");
    assert!(out.contains("password = \"<redacted>\""), "{out}");
}

#[test]
fn discover_etcd_usage_errors_and_an_unreachable_cluster() {
    let (code, _, err) = output(&["discover", "--etcd", "ftp://x"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--etcd") && err.contains("http://host:port"),
        "{err}"
    );
    let (code, _, err) = output(&["discover", "--etcd", NOBODY, "--port", "1"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = output(&["discover", "--service", "api"]);
    assert_eq!(code, 2, "--service needs --etcd: {err}");
    let (code, _, err) = output(&["discover", "--etcd", NOBODY, "--service", "a/b"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = output(&["discover", "--etcd", NOBODY, "--timeout", "2s"]);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.starts_with("discoveryd: error: cannot read etcd")
            && err.contains("127.0.0.1:1")
            && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn an_unreachable_etcd_never_stops_the_service_and_shows_in_status_and_metrics() {
    let (_config, daemon, port, http) = daemon_with(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[[registries]]\ntype = \"etcd\"\nendpoints = [\"{NOBODY}\"]\nttl = \"2s\"\n"
    ));
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
    let status = settled(
        || daemon.status(),
        |s| s["registries"][0]["failures"].as_u64() >= Some(2),
    );
    let registry = &status["registries"][0];
    assert_eq!(registry["state"], "unreachable", "{status}");
    assert_eq!(registry["endpoints"][0], NOBODY);
    assert!(
        registry["error"].as_str().unwrap().contains("127.0.0.1:1"),
        "{status}"
    );
    let metrics = get(http, "/metrics").body;
    let labels =
        format!("{{type=\"etcd\",endpoints=\"{NOBODY}\",prefix=\"/discoveryd/services/\"}}");
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("discoveryd_registry_up{labels} 0")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l
            .strip_prefix(&format!("discoveryd_registry_failures_total{labels} "))
            .is_some_and(|n| n.parse::<u64>().unwrap() >= 2)),
        "{metrics}"
    );
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1"),
        "still answering"
    );
}

/// A fake etcd JSON gateway on loopback: answers every request with
/// `answer`, and records the paths asked for.
struct FakeEtcd {
    url: String,
    paths: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeEtcd {
    fn start(answer: String) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&paths);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                seen.lock().unwrap().push(path);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = reader.get_mut().write_all(reply.as_bytes());
            }
        });
        Self { url, paths }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn discover_etcd_sends_the_config_s_credentials_only_to_its_own_cluster() {
    let fake = FakeEtcd::start(r#"{"kvs": [], "count": "0", "token": "t"}"#.into());
    let other = ConfigDir::new(
        "[[registries]]\ntype = \"etcd\"\nendpoints = [\"http://127.0.0.2:2379\"]\nuser = \"d\"\npassword = \"s3cret-pass\"\n",
    );
    let (code, _, err) = output(&[
        "discover",
        "--config",
        other.path().to_str().unwrap(),
        "--etcd",
        &fake.url,
    ]);
    assert_eq!(code, 1, "nothing published: {err}");
    assert_eq!(
        fake.paths(),
        ["/v3/kv/range"],
        "no credentials sent elsewhere"
    );

    let own = ConfigDir::new(&format!(
        "[[registries]]\ntype = \"etcd\"\nendpoints = [\"{}\"]\nuser = \"d\"\npassword = \"s3cret-pass\"\n",
        fake.url
    ));
    let (code, _, err) = output(&[
        "discover",
        "--config",
        own.path().to_str().unwrap(),
        "--etcd",
        &fake.url,
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        fake.paths()[1..],
        ["/v3/auth/authenticate", "/v3/kv/range"],
        "its own cluster: authenticated"
    );
    let (code, _, err) = output(&["discover", "--etcd", &fake.url, "--prefix", "/no-slash"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--prefix"), "{err}");
}

#[test]
fn discover_etcd_shows_hostile_keys_bounded_and_escaped() {
    let long = "W".repeat(70_000);
    let kvs = [
        (
            format!("/discoveryd/services/{long}/192.0.2.7:80"),
            r#"{"Addr":"192.0.2.7:80"}"#.to_owned(),
        ),
        (
            "/discoveryd/services/e\u{1b}]0;PWNED\u{7}/192.0.2.8:80".to_owned(),
            r#"{"Addr":"192.0.2.8:80","Metadata":{"k":"\u001b[2J"}}"#.to_owned(),
        ),
    ];
    let body: Vec<String> = kvs
        .iter()
        .map(|(k, v)| format!(r#"{{"key": "{}", "value": "{}"}}"#, b64(k), b64(v)))
        .collect();
    let fake = FakeEtcd::start(format!(
        r#"{{"kvs": [{}], "count": "5000"}}"#,
        body.join(",")
    ));
    let (code, out, err) = output(&["discover", "--etcd", &fake.url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().all(|l| l.chars().count() < 400),
        "rows stay narrow"
    );
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(
        out.contains("WWW..."),
        "the long name cut: {}",
        &out[..300.min(out.len())]
    );
    assert!(err.contains("4998 more not read"), "{err}");
}
