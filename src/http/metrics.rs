//! `/metrics`: the counters `status` shows, in the Prometheus text format,
//! built with the official client (prometheus-client) from one status
//! document per scrape.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::policy::Refusal;
use crate::status::Status;

type Labeled = Family<Vec<(&'static str, String)>, Counter>;

/// The scrape's text.
pub(crate) fn encode_status(status: &Status) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("discoveryd");
    let c = &status.counters;
    let counter = |registry: &mut Registry, name: &str, help: &str, value: u64| {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    };
    counter(
        &mut registry,
        "answers",
        "Discovery requests answered",
        c.answered,
    );
    counter(
        &mut registry,
        "ignored",
        "Datagrams no responder answered",
        c.ignored,
    );
    counter(
        &mut registry,
        "send_failed",
        "Replies the kernel refused to send",
        c.send_failed,
    );
    counter(
        &mut registry,
        "restarts",
        "Listener restarts by restart-on-failure",
        c.restarts,
    );

    // Every reason, 0 until it happens: a series that appears late breaks
    // `rate()` and `increase()`.
    let refused = Labeled::default();
    for reason in Refusal::ALL.map(Refusal::name) {
        let n = c.refused.get(reason).copied().unwrap_or(0);
        refused
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc_by(n);
    }
    registry.register(
        "refused",
        "Datagrams refused by a defence, by reason",
        refused,
    );

    let reloads = Labeled::default();
    let r = &status.reloads;
    for (result, n) in [
        ("applied", r.applied),
        ("rejected", r.rejected),
        ("unchanged", r.unchanged),
    ] {
        reloads
            .get_or_create(&vec![("result", result.to_owned())])
            .inc_by(n);
    }
    registry.register("reloads", "Reloads, by result", reloads);

    let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(value);
        registry.register(name, help, gauge);
    };
    gauge(
        &mut registry,
        "ready",
        "1 once the discovery sockets answer",
        i64::from(status.ready),
    );
    gauge(
        &mut registry,
        "registrations",
        "Services registered over HTTP",
        i64::try_from(status.registrations).unwrap_or(i64::MAX),
    );
    gauge(
        &mut registry,
        "uptime_seconds",
        "Seconds since the service started",
        i64::try_from(status.uptime_ms / 1000).unwrap_or(i64::MAX),
    );

    // One series per registry published into, by type and endpoints.
    let up = Family::<Vec<(&'static str, String)>, Gauge>::default();
    let keys = Family::<Vec<(&'static str, String)>, Gauge>::default();
    let failures = Labeled::default();
    for r in &status.registries {
        let labels = vec![
            ("type", r.kind.clone()),
            ("endpoints", r.endpoints.join(",")),
            ("prefix", r.prefix.clone()),
        ];
        up.get_or_create(&labels)
            .set(i64::from(r.state == "publishing"));
        keys.get_or_create(&labels)
            .set(i64::try_from(r.keys).unwrap_or(i64::MAX));
        failures.get_or_create(&labels).inc_by(r.failures);
    }
    registry.register(
        "registry_up",
        "1 while a registry (etcd) is published into; 0 while it cannot be reached",
        up,
    );
    registry.register("registry_keys", "Keys published into a registry now", keys);
    registry.register(
        "registry_failures",
        "Failed attempts to publish into a registry",
        failures,
    );

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

/// The same scrape in the Prometheus text format (0.0.4), for scrapers
/// that do not ask for OpenMetrics (`promtool check metrics`, curl): a
/// counter's HELP and TYPE name the `_total` series, and there is no
/// `# EOF`. (prometheus-client writes OpenMetrics only.)
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines().filter(|&l| l != "# EOF") {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let (name, rest) = line.strip_prefix(tag)?.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {rest}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_are_those_of_status() {
        let mut status: Status = serde_json::from_value(serde_json::json!({
            "pid": 1, "version": "0", "uptime_ms": 5000, "config": null, "pidfile": "p",
            "addrs": [], "ready": true,
            "counters": {"answered": 7, "ignored": 1, "rejected": 3, "refused": {"oversize": 3},
                         "send_failed": 0, "restarts": 2},
            "reloads": {"applied": 4, "rejected": 1, "unchanged": 0, "last": null}
        }))
        .unwrap();
        status.counters.refused.insert("loop".into(), 0);
        let text = encode_status(&status).unwrap();
        for line in [
            "discoveryd_answers_total 7",
            "discoveryd_refused_total{reason=\"oversize\"} 3",
            "discoveryd_refused_total{reason=\"rate_limited\"} 0",
            "discoveryd_reloads_total{result=\"applied\"} 4",
            "discoveryd_reloads_total{result=\"rejected\"} 1",
            "discoveryd_restarts_total 2",
            "discoveryd_registrations 0",
            "discoveryd_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_prometheus_text_names_counters_by_their_series() {
        let om = "# HELP d_answers Answers.\n# TYPE d_answers counter\nd_answers_total 7\n# HELP d_ready Ready.\n# TYPE d_ready gauge\nd_ready 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP d_answers_total Answers.\n# TYPE d_answers_total counter\nd_answers_total 7\n# HELP d_ready Ready.\n# TYPE d_ready gauge\nd_ready 1\n"
        );
    }
}
