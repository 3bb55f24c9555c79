//! What types alone cannot check: values out of range, keys that only
//! make sense together, bind lists, the amplification cap's worst case, and
//! files that would be one another.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use super::{beside_pidfile, Config, MAX_DATAGRAM};
use crate::paths::same_file;

/// Files that would be one another: the pidfile, its control socket and
/// the log file among themselves, or any of them and the config file.
/// Paths are compared as the kernel resolves them (`..`, symlinks), not
/// as text.
pub(super) fn path_collisions(c: &Config, config_file: Option<&Path>) -> Vec<(String, String)> {
    let pidfile = c.pidfile();
    let socket = beside_pidfile(&pidfile, "sock");
    let log = c.log_file();
    let (pidfile, socket, log) = (pidfile.as_path(), socket.as_path(), log.as_path());
    let mut pairs = vec![
        ("log_file", log, "the pidfile", pidfile),
        ("log_file", log, "the control socket", socket),
    ];
    if let Some(config_file) = config_file {
        pairs.extend([
            ("pidfile", pidfile, "the config file", config_file),
            (
                "pidfile",
                socket,
                "the config file (as the control socket)",
                config_file,
            ),
            ("log_file", log, "the config file", config_file),
        ]);
    }
    pairs
        .into_iter()
        .filter(|(_, a, _, b)| same_file(a, b))
        .map(|(key, path, what, _)| {
            (
                key.to_owned(),
                format!("{} is also {what}; choose another path", path.display()),
            )
        })
        .collect()
}

/// Checks what types alone cannot; returns `(key, reason)` pairs.
pub(super) fn validate(c: &Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, key: &str, reason: String| {
        if !ok {
            problems.push((key.to_owned(), reason));
        }
    };
    let buffer_ok = (16..=MAX_DATAGRAM).contains(&c.buffer_size);
    check(
        buffer_ok,
        "buffer_size",
        format!(
            "{} is out of range; use 16 to {MAX_DATAGRAM} bytes",
            c.buffer_size
        ),
    );
    check(
        !c.message.is_empty(),
        "message",
        "must not be empty; set the discovery request, such as \"DISCOVER_SERVER\"".into(),
    );
    check(
        !buffer_ok || c.message.len() <= c.buffer_size,
        "message",
        format!(
            "is {} bytes, longer than buffer_size ({}); shorten it or raise buffer_size",
            c.message.len(),
            c.buffer_size
        ),
    );
    check(
        !c.response_prefix.is_empty(),
        "response_prefix",
        "must not be empty; the default is \"SERVER_IP:\"".into(),
    );
    check(
        (64 << 10..=256 << 20).contains(&c.recv_buffer),
        "recv_buffer",
        format!(
            "{} is out of range; use 65536 to 268435456 bytes (the default is 4194304)",
            c.recv_buffer
        ),
    );
    check(
        c.reply_jitter
            .is_none_or(|j| j.get() <= super::MAX_REPLY_JITTER),
        "reply_jitter",
        format!(
            "{} is too long: each answer would wait up to that; use at most 1s, such as \"100ms\", or remove it to answer at once",
            c.reply_jitter.map(|j| j.to_string()).unwrap_or_default()
        ),
    );
    check(
        c.timeout.get() <= crate::client::MAX_TIMEOUT,
        "timeout",
        format!(
            "{} is too long; use at most 1h (the default is 500ms)",
            c.timeout
        ),
    );
    check(
        c.workers.is_none_or(|w| (1..=256).contains(&w)),
        "workers",
        format!(
            "{} is out of range; use 1 to 256, or remove it for one per core",
            c.workers.unwrap_or(0)
        ),
    );
    check(
        !c.bind.is_empty(),
        "bind",
        "must name at least one address, such as \"0.0.0.0\"".into(),
    );
    check(
        !c.responders.is_empty(),
        "responders",
        "must list at least one responder, such as { type = \"classic\" }".into(),
    );
    check(
        c.message.is_empty() || !c.message.starts_with(&c.response_prefix),
        "message",
        format!(
            "`message` ({:?}) starts with `response_prefix` ({:?}): loop protection refuses every request that looks like an answer, so nothing would ever be answered; change one of them",
            c.message, c.response_prefix
        ),
    );
    if let Some(reason) = amplification_problem(c) {
        check(false, "message", reason);
    }
    for reason in bind_problems(&c.bind) {
        check(false, "bind", reason);
    }
    for (key, path) in [("pidfile", &c.pidfile), ("log_file", &c.log_file)] {
        check(
            path.as_ref().is_none_or(|p| !p.as_os_str().is_empty()),
            key,
            format!("must not be empty; remove `{key}` to use the default"),
        );
    }
    for (key, reason) in c
        .security
        .problems()
        .into_iter()
        .chain(c.mdns.problems())
        .chain(c.http.problems())
        .chain(crate::registries::problems(&c.registries))
    {
        check(false, &key, reason);
    }
    let txt_message = "message=".len() + c.message.len();
    check(
        !c.mdns.enabled || txt_message <= crate::mdns::MAX_TXT_ENTRY,
        "message",
        format!(
            "is {} bytes: with [mdns] enabled it goes in a TXT entry, which holds at most {} bytes of it; shorten it, or disable mdns",
            c.message.len(),
            crate::mdns::MAX_TXT_ENTRY - "message=".len()
        ),
    );
    // The whole TXT record, with the entries discoveryd adds: `message`
    // counts once mdns is on (a file that turns it on later is checked then).
    let txt = c
        .mdns
        .txt_record_size(c.mdns.enabled.then_some(c.message.as_str()));
    check(
        txt <= crate::mdns::Mdns::MAX_TXT_RECORD,
        "mdns.txt",
        format!(
            "the TXT record would be {txt} bytes with the `port` and `message` entries discoveryd adds; RFC 6763 section 6.2 advises at most {} and larger ones are lost on the wire: remove or shorten entries",
            crate::mdns::Mdns::MAX_TXT_RECORD
        ),
    );
    let restart = &c.supervision.restart_on_failure;
    check(
        restart.backoff <= restart.backoff_max,
        "supervision.restart_on_failure.backoff",
        format!(
            "{} is above backoff_max ({}); lower it or raise backoff_max",
            restart.backoff, restart.backoff_max
        ),
    );
    problems
}

/// The classic answer's worst case, on the wire, against the amplification
/// cap: every request it answers must get its answer, over IPv4 and IPv6
/// alike. Headers count on both sides (see [`crate::policy::fits`]).
fn amplification_problem(c: &Config) -> Option<String> {
    let cap = c.security.max_amplification;
    if c.message.is_empty() || !c.security.max_amplification_ok() {
        return None;
    }
    let port = c.service_port.map_or(0, |_| ":65535".len());
    let families: BTreeSet<bool> = c.bind.iter().map(IpAddr::is_ipv6).collect();
    families.into_iter().find_map(|ipv6| {
        // The address answered is `advertise_ip`, or the arrival address;
        // an IPv6 address is bracketed when a port follows.
        let ip = match c.advertise_ip {
            Some(ip @ IpAddr::V6(_)) if port > 0 => ip.to_string().len() + 2,
            Some(ip) => ip.to_string().len(),
            None if ipv6 && port > 0 => "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]".len(),
            None if ipv6 => "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".len(),
            None => "255.255.255.255".len(),
        };
        let worst = c.response_prefix.len() + ip + port;
        if crate::policy::fits(c.message.len(), worst, ipv6, cap) {
            return None;
        }
        let h = crate::policy::wire_overhead(ipv6);
        let least = (((worst + h) as f64 / cap).ceil() as usize).saturating_sub(h);
        Some(format!(
            "`message` is {} bytes, too short: the answer (up to {worst} bytes, with this response_prefix) would be over security.max_amplification ({cap}) times the request on the wire (with the {h} bytes of {} and UDP headers), and never sent; use a message of at least {least} bytes, or raise security.max_amplification",
            c.message.len(),
            if ipv6 { "IPv6" } else { "IPv4" },
        ))
    })
}

/// What is wrong with a `bind` list: addresses no socket can bind here,
/// and entries that overlap (the second bind would conflict with the first,
/// and the port would look busy, held by ourselves).
fn bind_problems(bind: &[IpAddr]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, ip) in bind.iter().enumerate() {
        if let IpAddr::V6(v6) = ip {
            if let Some(v4) = v6.to_ipv4_mapped() {
                out.push(format!(
                    "{ip} is an IPv4-mapped IPv6 address, and IPv6 sockets here are IPv6-only; write {v4} instead"
                ));
            } else if v6.is_unicast_link_local() {
                out.push(format!(
                    "{ip} is link-local: binding it needs an interface scope, which `bind` cannot express; use `::`, or a global or unique-local address"
                ));
            }
        }
        for earlier in &bind[..i] {
            if earlier == ip {
                out.push(format!("lists {ip} twice; list each address once"));
            } else if earlier.is_ipv4() == ip.is_ipv4()
                && (earlier.is_unspecified() || ip.is_unspecified())
            {
                let (any, specific) = if earlier.is_unspecified() {
                    (earlier, ip)
                } else {
                    (ip, earlier)
                };
                out.push(format!(
                    "{any} already covers {specific}: the two would conflict on the port; keep one of them"
                ));
            }
        }
    }
    out
}
