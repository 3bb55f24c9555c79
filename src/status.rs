//! The status document: what `discoveryd status` shows, what the control
//! socket answers, and what SIGUSR1 writes to the log.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A running instance's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's pid.
    pub pid: u32,
    /// discoveryd's version.
    pub version: String,
    /// Milliseconds since the service started.
    pub uptime_ms: u64,
    /// The config file, if any.
    pub config: Option<PathBuf>,
    /// The pidfile.
    pub pidfile: PathBuf,
    /// The addresses answering now (none while the first bind is still
    /// being retried).
    pub addrs: Vec<SocketAddr>,
    /// True once the service answers; false while it is still binding.
    #[serde(default)]
    pub ready: bool,
    /// Datagram and supervision counters.
    pub counters: Counts,
    /// Reloads so far and the last one's result.
    pub reloads: Reloads,
    /// Services registered over HTTP now.
    #[serde(default)]
    pub registrations: u64,
    /// The HTTP endpoint's address, when `[http]` listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
    /// What is advertised over mDNS, when `[mdns]` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdns: Option<MdnsStatus>,
    /// The registries published into, when `[[registries]]` lists any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<crate::registries::RegistryStatus>,
}

/// The mDNS announcer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdnsStatus {
    /// The host name announced (renamed after a conflict, such as
    /// `host-2.local.`).
    pub host: String,
    /// The interfaces it runs on now (up, multicast, and selected).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// The service instances advertised, by full name as announced now
    /// (renamed after a conflict, such as `lab (2)._discoveryd._udp.local.`).
    pub services: Vec<String>,
}

/// Counters since the service started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests answered.
    pub answered: u64,
    /// Datagrams no responder answered (not a request we know).
    pub ignored: u64,
    /// Datagrams refused by a defence (the sum of `refused`).
    pub rejected: u64,
    /// Datagrams refused, by reason (only reasons that happened).
    pub refused: std::collections::BTreeMap<String, u64>,
    /// Replies the kernel refused to send.
    pub send_failed: u64,
    /// Answers sent at once although `reply_jitter` is set: its queue (1,024
    /// answers per receive loop) was full, or the answer over 512 bytes.
    #[serde(default)]
    pub undelayed: u64,
    /// Listener restarts by restart-on-failure.
    pub restarts: u64,
}

/// Reload history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloads {
    /// Reloads that changed the running configuration.
    pub applied: u64,
    /// Reloads rejected (invalid file, busy port); the old config served on.
    pub rejected: u64,
    /// Reloads that found nothing changed.
    pub unchanged: u64,
    /// The most recent one.
    pub last: Option<LastReload>,
}

impl Reloads {
    /// Every reload so far, whatever its result.
    pub fn total(&self) -> u64 {
        self.applied + self.rejected + self.unchanged
    }

    /// Counts one reload that ended `result`, at `at_ms` since the start.
    pub(crate) fn record(
        &mut self,
        result: ReloadResult,
        detail: String,
        at_ms: u64,
    ) -> &LastReload {
        match result {
            ReloadResult::Applied => self.applied += 1,
            ReloadResult::Rejected => self.rejected += 1,
            ReloadResult::Unchanged => self.unchanged += 1,
        }
        self.last.insert(LastReload {
            result,
            detail,
            at_ms,
        })
    }
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadResult {
    /// The new configuration serves.
    Applied,
    /// It was invalid, or its port stayed busy: the old one serves on.
    Rejected,
    /// Nothing had changed.
    Unchanged,
}

impl fmt::Display for ReloadResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Rejected => "rejected",
            ReloadResult::Unchanged => "unchanged",
        })
    }
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReloadTrigger {
    /// The config file changed.
    FileChange,
    /// A reload request (SIGHUP, `discoveryd reload`).
    Request,
}

impl fmt::Display for ReloadTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReloadTrigger::FileChange => "file change",
            ReloadTrigger::Request => "reload request",
        })
    }
}

/// The result of one reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastReload {
    /// How it ended.
    pub result: ReloadResult,
    /// The keys changed, or why it was rejected.
    pub detail: String,
    /// Milliseconds since the service started, when it happened.
    pub at_ms: u64,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ago = |ms: u64| humantime::format_duration(Duration::from_secs(ms / 1000)).to_string();
        let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        let c = &self.counters;
        writeln!(
            f,
            "discoveryd {} is running (pid {})",
            self.version, self.pid
        )?;
        writeln!(f, "  uptime:      {}", ago(self.uptime_ms))?;
        if self.ready {
            writeln!(f, "  listening:   {}", addrs.join(", "))?;
        } else {
            writeln!(
                f,
                "  listening:   not yet: still binding (a busy port being retried? see the log)"
            )?;
        }
        let config = self
            .config
            .as_ref()
            .map_or("none (built-in defaults)".into(), |p| {
                p.display().to_string()
            });
        writeln!(f, "  config:      {config}")?;
        writeln!(f, "  pidfile:     {}", self.pidfile.display())?;
        writeln!(
            f,
            "  counters:    answered {}, ignored {}, rejected {}, send failed {}, restarts {}",
            c.answered, c.ignored, c.rejected, c.send_failed, c.restarts
        )?;
        if c.undelayed > 0 {
            writeln!(
                f,
                "  undelayed:   {} answer(s) sent at once despite reply_jitter (queue full)",
                c.undelayed
            )?;
        }
        if self.registrations > 0 {
            writeln!(
                f,
                "  services:    {} registered over HTTP (GET /v1/services lists them)",
                self.registrations
            )?;
        }
        if !c.refused.is_empty() {
            let reasons: Vec<String> = c.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(f, "  refused:     {}", reasons.join(", "))?;
        }
        let r = &self.reloads;
        let last = match &r.last {
            Some(l) => format!(
                "{} ({}) {} ago",
                l.result,
                l.detail,
                ago(self.uptime_ms.saturating_sub(l.at_ms))
            ),
            None => "none".into(),
        };
        writeln!(
            f,
            "  reloads:     {} applied, {} rejected, {} unchanged",
            r.applied, r.rejected, r.unchanged
        )?;
        write!(f, "  last reload: {last}")?;
        if let Some(http) = &self.http {
            write!(
                f,
                "\n  http:        http://{http}/ (livez, readyz, metrics, v1/status, v1/reload)"
            )?;
        }
        for r in &self.registries {
            write!(
                f,
                "\n  registry:    {} {} ({}): {}, {} key(s)",
                r.kind,
                r.endpoints.join(", "),
                crate::client::escape_controls(&r.prefix),
                r.state,
                r.keys
            )?;
            if let Some(error) = &r.error {
                write!(f, "; {}", crate::client::escape_controls(error))?;
            }
        }
        if let Some(mdns) = &self.mdns {
            // Quoted (a name may hold spaces and commas), with its control
            // characters escaped; DNS escapes such as `\.` shown as they are.
            let quoted = |name: &str| format!("\"{}\"", crate::client::escape_controls(name));
            let services: Vec<String> = mdns.services.iter().map(|s| quoted(s)).collect();
            write!(
                f,
                "\n  mdns:        advertising {} as {}, on {}",
                services.join(", "),
                crate::client::escape_controls(&mdns.host),
                match mdns.interfaces.as_slice() {
                    [] => "no interface (none matches [mdns] interfaces and exclude_interfaces)"
                        .to_owned(),
                    names => names.join(", "),
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_names_are_quoted_with_only_their_control_characters_escaped() {
        let status = Status {
            pid: 1,
            version: "0".into(),
            uptime_ms: 0,
            config: None,
            pidfile: "/run/d.pid".into(),
            addrs: Vec::new(),
            ready: true,
            counters: Counts::default(),
            reloads: Reloads::default(),
            registrations: 0,
            http: None,
            registries: Vec::new(),
            mdns: Some(MdnsStatus {
                host: "h\u{1b}[31m.local.".into(),
                interfaces: vec!["eth0".into(), "eth1".into()],
                services: vec![
                    "a\\.b\\\\c (x)._discoveryd._udp.local.".into(),
                    "lab\u{7}\r\n._x._udp.local.".into(),
                ],
            }),
        };
        let text = status.to_string();
        let line = text.lines().last().unwrap();
        assert_eq!(
            line,
            "  mdns:        advertising \"a\\.b\\\\c (x)._discoveryd._udp.local.\", \"lab\\u{7}\\r\\n._x._udp.local.\" as h\\u{1b}[31m.local., on eth0, eth1"
        );
    }
}
