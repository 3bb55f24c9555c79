//! The configuration: its model here, and in submodules its layered
//! loading, the environment layer, validation, what a reload changes, and
//! the errors that name where a bad value came from.

mod diff;
mod env;
mod errors;
mod load;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{de, Deserialize, Deserializer, Serialize};

use crate::duration::HumanDuration;
use crate::http::Http;
use crate::mdns::Mdns;
use crate::policy::Security;
use crate::supervision::Supervision;

pub(crate) use diff::ConfigDiff;
pub use errors::{ConfigError, ConfigErrors, ConfigOrigin};
pub use load::{ConfigSource, Overrides};

pub(crate) use discoveryd_api::MAX_DATAGRAM;

/// The whole configuration of discoveryd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UDP port to listen on.
    #[serde(deserialize_with = "de_port")]
    pub port: u16,
    /// Local addresses to listen on (one or several; `::` for IPv6).
    #[serde(deserialize_with = "de_addresses")]
    pub bind: Vec<IpAddr>,
    /// The discovery request, matched byte for byte.
    pub message: String,
    /// The prefix of the classic answer.
    pub response_prefix: String,
    /// How long `discover` waits for answers.
    pub timeout: HumanDuration,
    /// The largest request accepted, in bytes; longer datagrams are ignored.
    pub buffer_size: usize,
    /// Each socket's kernel receive buffer, in bytes: room for bursts while
    /// a receive loop waits for a CPU.
    pub recv_buffer: usize,
    /// Receive loops (one SO_REUSEPORT socket each); unset: one per core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Whether informational logs are shown (`false` keeps warnings and errors).
    pub logging: bool,
    /// The most detailed log level shown when `logging` is on.
    pub log_level: LogLevel,
    /// How log lines are written: human text, or one JSON object per line
    /// (read at start).
    pub log_format: LogFormat,
    /// The address to advertise instead of the one a request arrived on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_ip: Option<IpAddr>,
    /// The service port appended to the answer (`SERVER_IP:<ip>:<port>`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_some_port"
    )]
    pub service_port: Option<u16>,
    /// Delay each answer by a random time up to this long (at most 1 s), so
    /// that a large fleet's answers to one broadcast spread out; unset (or
    /// zero): answer at once.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_jitter"
    )]
    pub reply_jitter: Option<HumanDuration>,
    /// Stop the service after this long (`run` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    /// The pidfile; default `$XDG_RUNTIME_DIR/discoveryd.pid`, or
    /// `/run/discoveryd.pid` as root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<PathBuf>,
    /// The log file of a daemon started with `start`; default: beside the
    /// pidfile, `discoveryd.log`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    /// The supervision strategies.
    pub supervision: Supervision,
    /// The defences against hostile datagrams.
    pub security: Security,
    /// Advertising over mDNS/DNS-SD.
    pub mdns: Mdns,
    /// The HTTP side: health, metrics, status, reload.
    pub http: Http,
    /// The responder chain, asked in order.
    pub responders: Vec<ResponderConfig>,
    /// The registries the service is published into, beyond the LAN.
    pub registries: Vec<crate::registries::Registry>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 9999,
            bind: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            message: "DISCOVER_SERVER".into(),
            response_prefix: "SERVER_IP:".into(),
            timeout: HumanDuration::from_millis(500),
            buffer_size: 1024,
            recv_buffer: 4 << 20,
            workers: None,
            logging: true,
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            advertise_ip: None,
            service_port: None,
            reply_jitter: None,
            duration: None,
            pidfile: None,
            log_file: None,
            supervision: Supervision::default(),
            security: Security::default(),
            mdns: Mdns::default(),
            http: Http::default(),
            responders: vec![ResponderConfig::classic()],
            registries: Vec::new(),
        }
    }
}

impl Config {
    /// The daemon-wide settings responders build their answers from.
    pub fn globals(&self) -> discoveryd_api::Globals {
        discoveryd_api::Globals::new(
            self.message.clone(),
            self.response_prefix.clone(),
            self.service_port,
        )
    }

    /// The receive loops to run: `workers`, or one per core.
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// The pidfile to use: `pidfile`, or the default for this user.
    pub fn pidfile(&self) -> PathBuf {
        self.pidfile.clone().unwrap_or_else(default_pidfile)
    }

    /// The daemon's log file: `log_file`, or `discoveryd.log` beside the pidfile.
    pub fn log_file(&self) -> PathBuf {
        self.log_file
            .clone()
            .unwrap_or_else(|| beside_pidfile(&self.pidfile(), "log"))
    }

    /// The effective configuration as TOML, as `check` prints it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config model always serializes to TOML")
    }
}

/// One `[[responders]]` entry: a registered type and its own options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponderConfig {
    /// The registered responder type, such as `classic` or `json`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The rest of the table, handed to the plugin to deserialize.
    #[serde(flatten)]
    pub options: toml::Table,
}

impl ResponderConfig {
    /// The built-in protocol v1 responder with no options.
    pub fn classic() -> Self {
        Self {
            kind: crate::protocol::CLASSIC.into(),
            options: toml::Table::new(),
        }
    }
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, and the
    /// event's fields.
    Json,
}

/// As root `/run/discoveryd/discoveryd.pid` (the shipped unit's, so a bare
/// `discoveryd status` finds it); else `$XDG_RUNTIME_DIR/discoveryd.pid`;
/// else a directory of this user's in the temporary directory, which must
/// be its own (see `daemon::files`): no predictable shared file name.
pub(crate) fn default_pidfile() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/discoveryd/discoveryd.pid");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("discoveryd.pid"),
        _ => std::env::temp_dir()
            .join(format!("discoveryd-{uid}"))
            .join("discoveryd.pid"),
    }
}

/// A file that lives beside the pidfile: `discoveryd.pid` gives
/// `discoveryd.<ext>`. A pidfile not named `*.pid` gets `.<ext>` appended
/// (`x.log` gives `x.log.sock`), so no such file can be the pidfile.
pub(crate) fn beside_pidfile(pidfile: &Path, ext: &str) -> PathBuf {
    if pidfile.extension().is_some_and(|e| e == "pid") {
        return pidfile.with_extension(ext);
    }
    let mut name = pidfile.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Port 0 (ephemeral) is accepted from flags and the environment, for
/// tests; in a file it is rejected when the file is read.
fn de_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = i64::deserialize(d)?;
    u16::try_from(n)
        .map_err(|_| de::Error::custom(format!("{n} is not a UDP port; use 1 to 65535")))
}

fn de_some_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match de_port(d)? {
        0 => Err(de::Error::custom(
            "0 is not a service port; use 1 to 65535, or remove the key",
        )),
        p => Ok(Some(p)),
    }
}

/// The most `reply_jitter` may be: an answer later than this is late for
/// any client (the default wait is 500 ms).
pub(crate) const MAX_REPLY_JITTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A humantime duration or a number of seconds; zero turns jitter off.
/// The upper bound is checked with the other ranges (see `validate`).
fn de_jitter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HumanDuration>, D::Error> {
    #[derive(Clone, Copy)]
    struct Visitor;
    const FIX: &str =
        "use a duration up to 1s, such as \"100ms\", or 0 (or no key) to answer at once";
    impl de::Visitor<'_> for Visitor {
        type Value = Option<HumanDuration>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"100ms\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let t = v.trim();
            let parsed = match t.parse::<u64>() {
                Ok(seconds) => Ok(std::time::Duration::from_secs(seconds)),
                Err(_) if t.starts_with('-') => Err(format!("`{v}` is negative")),
                Err(_) => humantime::parse_duration(t)
                    .map_err(|e| format!("`{v}` is not a duration ({e})")),
            };
            parsed
                .map(HumanDuration::new)
                .map_err(|why| E::custom(format!("{why}; {FIX}")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
    }
    d.deserialize_any(Visitor)
}

/// Accepts `"0.0.0.0"` as well as `["0.0.0.0", "::"]`.
fn de_addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    #[derive(Clone, Copy)]
    struct Visitor;
    impl<'de> de::Visitor<'de> for Visitor {
        type Value = Vec<IpAddr>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "an IP address or a list of them, such as \"0.0.0.0\" or [\"0.0.0.0\", \"::\"]",
            )
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.parse().map(|ip| vec![ip]).map_err(|_| {
                E::custom(format!(
                    "`{v}` is not an IP address; use one such as \"0.0.0.0\" or \"::\""
                ))
            })
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.extend(self.visit_str::<A::Error>(&s)?);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Visitor)
}
