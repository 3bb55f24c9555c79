//! Services registered over HTTP (`PUT /v1/services/{id}`): their life
//! (heartbeats, expiry, deletion), the refusals (bad bodies naming the
//! field, the cap, the token, the body limit), and that every advertiser
//! shows them at once: the json responder, `discover --json`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::http::{daemon_with, get, request, Answer, TOKEN};
use crate::util::{output, settled, Client};

/// A daemon answering the classic and the json requests, with `[http]`
/// (plus `extra` keys in it).
fn daemon(extra: &str) -> (crate::util::ConfigDir, crate::util::Daemon, u16, SocketAddr) {
    daemon_with(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n{extra}\n[[responders]]\ntype = \"classic\"\n[[responders]]\ntype = \"json\"\n"
    ))
}

fn put(http: SocketAddr, id: &str, body: &str) -> Answer {
    request(
        http,
        "PUT",
        &format!("/v1/services/{id}"),
        &[],
        body.as_bytes(),
    )
}

/// The json responder's document, asked the way `discover` asks: the
/// request padded with spaces to 1024 bytes.
fn document(client: &Client, port: u16) -> serde_json::Value {
    let mut ask = b"DISCOVER_JSON".to_vec();
    ask.resize(1024, b' ');
    let reply = client.ask(port, &ask).expect("the json responder answers");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply}"))
}

fn ids(document: &serde_json::Value) -> Vec<String> {
    document["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {document}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_registration_is_discoverable_as_soon_as_the_put_is_answered() {
    let (_config, _daemon, port, http) = daemon("");
    let client = Client::new();
    assert_eq!(ids(&document(&client, port)), Vec::<String>::new());

    let created = put(
        http,
        "api-1",
        r#"{"name": "api", "port": 8080, "ttl": "30s", "txt": {"role": "db"}}"#,
    );
    assert_eq!(
        (created.code, created.json()["result"].as_str()),
        (201, Some("created"))
    );
    // The very first ask after the answer lists it: nothing to wait for
    // (the time it takes is a benchmark's figure, `benches/http.rs`).
    let doc = document(&client, port);
    assert_eq!(ids(&doc), ["api-1"], "{doc}");
    let listed = &doc["services"][0];
    assert_eq!(listed["name"], "api");
    assert_eq!(listed["port"], 8080);
    assert_eq!(
        listed["address"], "127.0.0.1",
        "this host: the address asked"
    );
    assert_eq!(listed["txt"]["role"], "db");
    assert_eq!(doc["services_total"], 1);

    let elsewhere = put(
        http,
        "worker.2",
        r#"{"name": "worker", "port": 9000, "ttl": 30, "address": "192.0.2.7"}"#,
    );
    assert_eq!(elsewhere.code, 201, "{elsewhere:?}");
    let doc = document(&client, port);
    assert_eq!(ids(&doc), ["api-1", "worker.2"]);
    assert_eq!(doc["services"][1]["address"], "192.0.2.7");

    // discover --json lists them, with the server they are registered with.
    let (code, out, err) = output(&[
        "discover",
        "--target",
        &format!("127.0.0.1:{port}"),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    let services = found["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{found}");
    assert_eq!(services[0]["id"], "api-1");
    assert_eq!(services[0]["address"], "127.0.0.1");
    assert_eq!(services[0]["server"], "127.0.0.1");
    assert_eq!(services[1]["address"], "192.0.2.7");
    // ... and the table, after the servers.
    let (code, table, _) = output(&["discover", "--target", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, 0);
    assert!(table.lines().any(|l| l.starts_with("SERVICE ")), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("worker.2") && l.contains("192.0.2.7")),
        "{table}"
    );
    // --no-services asks only the discovery question.
    let (_, plain, _) = output(&[
        "discover",
        "--target",
        &format!("127.0.0.1:{port}"),
        "--json",
        "--no-services",
    ]);
    let plain: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(plain["services"], serde_json::json!([]));

    // DELETE: gone from the next answer.
    let deleted = request(http, "DELETE", "/v1/services/api-1", &[], b"");
    assert_eq!(
        (deleted.code, deleted.json()["result"].as_str()),
        (200, Some("deleted"))
    );
    assert_eq!(ids(&document(&client, port)), ["worker.2"]);
    let again = request(http, "DELETE", "/v1/services/api-1", &[], b"");
    assert_eq!(again.code, 404, "{again:?}");
    assert!(again.json()["error"]
        .as_str()
        .unwrap()
        .contains("PUT /v1/services/api-1"));
}

#[test]
fn heartbeats_keep_a_registration_and_without_them_it_expires() {
    let (_config, daemon, port, http) = daemon("");
    let body = r#"{"name": "api", "port": 8080, "ttl": "1s"}"#;
    assert_eq!(put(http, "short", body).code, 201);
    assert_eq!(put(http, "long", &body.replace("1s", "1h")).code, 201);
    let refreshed = put(http, "short", body);
    assert_eq!(
        (refreshed.code, refreshed.json()["result"].as_str()),
        (200, Some("refreshed"))
    );
    let updated = put(http, "short", &body.replace("8080", "8081"));
    assert_eq!(updated.json()["result"], "updated");

    let listed = get(http, "/v1/services").json();
    let short = &listed["services"].as_array().unwrap()[1];
    assert_eq!(
        (short["id"].as_str(), short["ttl"].as_str()),
        (Some("short"), Some("1s"))
    );
    assert!(short["expires_in_ms"].as_u64().unwrap() <= 1000, "{short}");
    assert_eq!(short["port"], 8081);
    assert!(short["address"].is_null(), "this host: {short}");

    // Heartbeats every 300 ms keep it past three times its TTL: between
    // them, the json responder is asked, and lists it every time.
    let client = Client::new();
    let start = Instant::now();
    let mut last_pass = start;
    let mut next_pass = start;
    while start.elapsed() < Duration::from_secs(3) {
        if Instant::now() >= next_pass {
            let pass = request(http, "PUT", "/v1/services/short/pass", &[], b"");
            last_pass = Instant::now();
            next_pass = last_pass + Duration::from_millis(300);
            assert_eq!(
                (pass.code, pass.json()["result"].as_str()),
                (200, Some("passed"))
            );
        }
        assert!(ids(&document(&client, port)).contains(&"short".to_owned()));
    }
    assert_eq!(ids(&document(&client, port)), ["long", "short"]);
    let metrics = get(http, "/metrics").body;
    assert!(
        metrics.lines().any(|l| l == "discoveryd_registrations 2"),
        "{metrics}"
    );
    assert_eq!(daemon.status()["registrations"], 2);

    // Without them it goes, from the answers too: its TTL (1 s) after the
    // last heartbeat, within a loaded machine's slack.
    let doc = settled(|| document(&client, port), |d| ids(d) == ["long"]);
    let gone_after = last_pass.elapsed();
    assert_eq!(ids(&doc), ["long"]);
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&gone_after),
        "expired {gone_after:?} after the last heartbeat"
    );
    let pass = request(http, "PUT", "/v1/services/short/pass", &[], b"");
    assert_eq!(pass.code, 404, "{pass:?}");
    let metrics = get(http, "/metrics").body;
    assert!(
        metrics.lines().any(|l| l == "discoveryd_registrations 1"),
        "{metrics}"
    );
}

#[test]
fn bad_registrations_get_a_400_naming_the_field() {
    let (_config, _daemon, _port, http) = daemon("");
    for (id, body, field) in [
        ("api", "{", "body"),
        ("api", r#"{"port": 1, "ttl": "1s"}"#, "name"),
        (
            "api",
            r#"{"name": "a", "port": 70000, "ttl": "1s"}"#,
            "port",
        ),
        (
            "api",
            r#"{"name": "a", "port": 1, "ttl": "tomorrow"}"#,
            "ttl",
        ),
        (
            "api",
            r#"{"name": "a", "port": 1, "ttl": "1s", "address": "x"}"#,
            "address",
        ),
        (
            "api",
            r#"{"name": "a", "port": 1, "ttl": "1s", "txt": {"k": 1}}"#,
            "txt.k",
        ),
        (
            "api",
            r#"{"name": "a", "port": 1, "ttl": "1s", "colour": 1}"#,
            "colour",
        ),
        (".hidden", r#"{"name": "a", "port": 1, "ttl": "1s"}"#, "id"),
    ] {
        let answer = put(http, id, body);
        assert_eq!(answer.code, 400, "{body}: {answer:?}");
        let doc = answer.json();
        assert_eq!(doc["field"], field, "{body}: {doc}");
        let error = doc["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("{field}: ")) && !error.contains('\n'),
            "{error}"
        );
    }
    // More than 64 KiB of body: refused before it is parsed.
    let huge = format!(
        r#"{{"name": "a", "port": 1, "ttl": "1s", "txt": {{"k": "{}"}}}}"#,
        "v".repeat(70_000)
    );
    let answer = put(http, "api", &huge);
    assert_eq!(answer.code, 413, "{answer:?}");
    assert!(answer.json()["error"].as_str().unwrap().contains("64 KiB"));
    assert_eq!(
        get(http, "/v1/services").json()["services"],
        serde_json::json!([])
    );
    let unknown = get(http, "/v1/nothing");
    assert_eq!(unknown.code, 404);
    assert!(unknown.json()["error"]
        .as_str()
        .unwrap()
        .contains("/v1/nothing"));
}

#[test]
fn registrations_are_capped_and_need_the_token() {
    let (_config, _daemon, _port, http) =
        daemon(&format!("max_registrations = 2\ntoken = \"{TOKEN}\""));
    let auth = format!("Authorization: Bearer {TOKEN}");
    let body = br#"{"name": "a", "port": 1, "ttl": "1m"}"#;
    let open = request(http, "PUT", "/v1/services/a", &[], body);
    assert_eq!(open.code, 401, "{open:?}");
    assert_eq!(
        request(http, "PUT", "/v1/services/a/pass", &[], b"").code,
        401
    );
    assert_eq!(
        request(http, "DELETE", "/v1/services/a", &[], b"").code,
        401
    );
    assert_eq!(
        get(http, "/v1/services").code,
        200,
        "reading needs no token"
    );

    for id in ["a", "b"] {
        let path = format!("/v1/services/{id}");
        assert_eq!(request(http, "PUT", &path, &[&auth], body).code, 201);
    }
    let full = request(http, "PUT", "/v1/services/c", &[&auth], body);
    assert_eq!(full.code, 429, "{full:?}");
    assert!(full.json()["error"]
        .as_str()
        .unwrap()
        .contains("http.max_registrations"));
    // A registered one is still refreshed, and a deletion makes room.
    assert_eq!(
        request(http, "PUT", "/v1/services/a", &[&auth], body).code,
        200
    );
    assert_eq!(
        request(http, "DELETE", "/v1/services/b", &[&auth], b"").code,
        200
    );
    assert_eq!(
        request(http, "PUT", "/v1/services/c", &[&auth], body).code,
        201
    );
}

#[test]
fn registrations_outlive_reloads_that_rebuild_the_json_responder() {
    let (config, daemon, port, http) = daemon("");
    assert_eq!(
        put(http, "kept", r#"{"name": "a", "port": 1, "ttl": "1m"}"#).code,
        201
    );
    // A reload that changes the json responder (its name) and moves the
    // HTTP listener: the registration stays, in the new document too.
    config.write(&crate::util::loopback(
        "[http]\nlisten = \"127.0.0.1:0\"\n[[responders]]\ntype = \"classic\"\n[[responders]]\ntype = \"json\"\nname = \"renamed\"\n",
    ));
    settled(|| daemon.status(), |s| s["reloads"]["applied"] == 1);
    let client = Client::new();
    let doc = settled(|| document(&client, port), |d| d["name"] == "renamed");
    assert_eq!(doc["name"], "renamed", "{doc}");
    assert_eq!(ids(&doc), ["kept"]);
    let status = settled(
        || daemon.status(),
        |s| s["http"].is_string() && s["http"] != http.to_string(),
    );
    let moved: SocketAddr = status["http"].as_str().unwrap().parse().unwrap();
    let listed = get(moved, "/v1/services").json();
    assert_eq!(listed["services"][0]["id"], "kept", "{listed}");
}

#[test]
fn ids_are_compared_ignoring_case_and_never_take_the_host_s_own_name() {
    let (_config, _daemon, _port, http) =
        daemon_with("[http]\nlisten = \"127.0.0.1:0\"\n[mdns]\ninstance = \"lab\"\n");
    let body = r#"{"name": "a", "port": 1, "ttl": "1m"}"#;
    assert_eq!(put(http, "web", body).code, 201);
    let other_case = put(http, "Web", body);
    assert_eq!(other_case.code, 409, "{other_case:?}");
    assert!(other_case.json()["error"]
        .as_str()
        .unwrap()
        .contains("`web`"));
    let own = put(http, "LAB", body);
    assert_eq!(own.code, 409, "{own:?}");
    assert!(own.json()["error"]
        .as_str()
        .unwrap()
        .contains("mDNS instance"));
    let listed = get(http, "/v1/services").json();
    assert_eq!(listed["services"].as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn a_body_that_never_arrives_is_given_up_on() {
    use std::io::{Read, Write};
    let (_config, _daemon, port, http) = daemon("");
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    stream
        .set_read_timeout(Some(crate::util::DEADLINE))
        .unwrap();
    let head =
        format!("PUT /v1/services/slow HTTP/1.1\r\nHost: {http}\r\nContent-Length: 100\r\n\r\n{{");
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "given up on after its 5 s, not held: {:?}",
        started.elapsed()
    );
    assert_eq!(
        Client::new().ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
}
