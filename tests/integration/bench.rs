//! `discoveryd bench`: a bounded load generator users can aim at a server.

use crate::util::{output, Daemon};

#[test]
fn bench_loads_a_server_and_reports_figures() {
    let mut daemon = Daemon::spawn(&["run", "--port", "0"]);
    let target = format!("127.0.0.1:{}", daemon.listening_port());
    let (code, out, err) = output(&[
        "bench",
        "--target",
        &target,
        "--duration",
        "300ms",
        "--clients",
        "2",
        "--window",
        "4",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["replies"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["malformed"], 0, "{report}");
    assert!(report["requests_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["p99_us"].as_f64().unwrap() >= report["p50_us"].as_f64().unwrap());

    // A request budget bounds the run by count.
    let (code, out, _) = output(&[
        "bench",
        "--target",
        &target,
        "--requests",
        "100",
        "--window",
        "1",
        "--clients",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["sent"].as_u64(), report["replies"].as_u64()),
        (Some(100), Some(100)),
        "{report}"
    );
}

#[test]
fn bench_refuses_remote_targets_and_unbounded_runs() {
    // Refused before anything is sent: 192.0.2.1 is TEST-NET-1.
    let (code, _, err) = output(&["bench", "--target", "192.0.2.1:9999", "--duration", "1s"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not a loopback address") && err.contains("--allow-remote"),
        "{err}"
    );
    let (code, _, err) = output(&["bench", "--target", "127.0.0.1:9", "--duration", "1h"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at most 5m"), "{err}");
}
