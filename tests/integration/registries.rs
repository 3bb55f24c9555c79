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
    let labels = format!("{{type=\"etcd\",endpoints=\"{NOBODY}\"}}");
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
