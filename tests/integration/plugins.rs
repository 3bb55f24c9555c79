//! Responder plugins: the json plugin, and errors for unknown ones.

use crate::util::{loopback, output, Client, ConfigDir, Daemon};

#[test]
fn the_json_plugin_answers_its_own_message() {
    let config = ConfigDir::new(&loopback(
        "service_port = 8080\n[[responders]]\ntype = \"classic\"\n[[responders]]\ntype = \"json\"\nmessage = \"DISCOVER_JSON\"\n\
         name = \"printer\"\nversion = \"2.1.0\"\n[responders.metadata]\nroom = \"lab\"\nfloor = \"third, by the stairs\"\n",
    ));
    let (daemon, port) = Daemon::run(&config, &[]);
    assert!(
        daemon
            .stdout_text()
            .contains("responders:      classic, json"),
        "{}",
        daemon.stdout_text()
    );
    let client = Client::new();
    // The document is bigger than the request: unpadded, it would break
    // the amplification cap, so clients pad the request.
    assert_eq!(client.ask(port, b"DISCOVER_JSON"), None);
    let padded = format!("{:<64}", "DISCOVER_JSON");
    let reply = client.ask(port, padded.as_bytes()).expect("a JSON answer");
    let doc: serde_json::Value = serde_json::from_str(&reply).expect("valid JSON");
    assert_eq!(doc["name"], "printer");
    assert_eq!(doc["version"], "2.1.0");
    assert_eq!(doc["ip"], "127.0.0.1");
    assert_eq!(doc["service_port"], 8080);
    assert_eq!(doc["metadata"]["room"], "lab");
    assert_eq!(
        client.ask(port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1:8080")
    );
}

#[test]
fn an_unknown_plugin_is_a_config_error_listing_the_known_ones() {
    let config = ConfigDir::new(&loopback("[[responders]]\ntype = \"jsno\""));
    let (code, _, err) = output(&[
        "run",
        "--port",
        "0",
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "key `responders[0]`: unknown responder type `jsno`; known types: classic, fault, json"
        ),
        "{err}"
    );
}
