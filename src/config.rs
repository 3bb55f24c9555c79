//! The configuration model, and its layered loading:
//! built-in defaults < config file < `DISCOVERYD_*` environment < flags.
//!
//! Every error names where the bad value came from (the file, the
//! environment variable or the flag) and the key, so a user can fix it
//! without reading code.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{de, Deserialize, Deserializer, Serialize};

use crate::duration::HumanDuration;
use crate::policy::Security;
use crate::supervision::Supervision;

/// The prefix of the environment variables that override config keys.
pub(crate) const ENV_PREFIX: &str = "DISCOVERYD_";

/// The largest UDP payload over IPv4.
pub(crate) const MAX_DATAGRAM: usize = 65_507;

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
    /// The address to advertise instead of the one a request arrived on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_ip: Option<IpAddr>,
    /// The service port appended to the answer (`SERVER_IP:<ip>:<port>`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_some_port"
    )]
    pub service_port: Option<u16>,
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
    /// The responder chain, asked in order.
    pub responders: Vec<ResponderConfig>,
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
            advertise_ip: None,
            service_port: None,
            duration: None,
            pidfile: None,
            log_file: None,
            supervision: Supervision::default(),
            security: Security::default(),
            responders: vec![ResponderConfig::classic()],
        }
    }
}

impl Config {
    /// The daemon-wide settings responders build their answers from.
    pub fn globals(&self) -> discoveryd_api::Globals {
        discoveryd_api::Globals {
            message: self.message.clone(),
            response_prefix: self.response_prefix.clone(),
            service_port: self.service_port,
        }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// One thing wrong with a configuration, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{path}: cannot read the config file: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The config file became empty while running (a half-written save,
    /// most likely); applying it would reset every key to its default.
    #[error("{path}: the file is empty; an empty file would reset every key to its default, so it is ignored while running (write a comment in it to mean that)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The config file is not valid TOML.
    #[error("{path}:{line}:{column}: invalid TOML: {reason}; fix the syntax there")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser said.
        reason: String,
    },
    /// A key is unknown or has a bad value.
    #[error("{origin}: key `{key}`: {reason}")]
    Key {
        /// Where the value came from: a file, an environment variable, a flag.
        origin: String,
        /// The dotted key.
        key: String,
        /// What is wrong, and the fix.
        reason: String,
    },
}

/// Everything wrong with one configuration (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// The command-line flags that override config keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Overrides {
    /// `--port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `--message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `--duration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    /// `--timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// `--pidfile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<PathBuf>,
    /// `--log-file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
}

/// Where a configuration comes from: an optional file plus flag overrides.
/// Loading it again re-reads the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The config file, if any.
    pub path: Option<PathBuf>,
    /// The flags given on the command line.
    pub overrides: Overrides,
}

const FILE_LAYER: &str = "config file";
const FLAG_LAYER: &str = "command-line flags";

/// The keys the environment may set; other `DISCOVERYD_*` variables are
/// ignored rather than breaking start-up.
const ENV_KEYS: &[&str] = &[
    "port",
    "bind",
    "message",
    "response_prefix",
    "timeout",
    "buffer_size",
    "workers",
    "recv_buffer",
    "logging",
    "log_level",
    "advertise_ip",
    "service_port",
    "duration",
    "pidfile",
    "log_file",
    "supervision.restart_on_failure.max_restarts",
    "supervision.restart_on_failure.within",
    "supervision.restart_on_failure.backoff",
    "supervision.restart_on_failure.backoff_max",
    "supervision.retry_after_cleanup.attempts",
    "supervision.retry_after_cleanup.delay",
    "security.refused_source_ports",
    "security.max_amplification",
    "security.allow",
    "security.deny",
    "security.on_link_only",
    "security.rate_limit_exempt",
    "security.rate_limit.per_source",
    "security.rate_limit.burst",
    "security.rate_limit.global",
    "security.rate_limit.sources",
];

impl ConfigSource {
    /// A source reading `path`, with no overrides.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            overrides: Overrides::default(),
        }
    }

    /// Loads and validates the layered configuration.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        self.load_file(Emptiness::Allowed)
    }

    /// Loads again while running: as [`load`](Self::load), but an empty
    /// file is rejected instead of resetting everything to defaults.
    pub fn reload(&self) -> Result<Config, ConfigErrors> {
        self.load_file(Emptiness::Rejected)
    }

    fn load_file(&self, empty: Emptiness) -> Result<Config, ConfigErrors> {
        let file = self
            .path
            .as_deref()
            .map(|path| FileLayer::read(path, empty))
            .transpose()?;
        self.load_layers(file)
    }

    /// Loads `text` as if it were the config file `config.toml`, with no
    /// flags (for fuzzing and property tests).
    pub fn load_text(text: &str) -> Result<Config, ConfigErrors> {
        let file = FileLayer::parse(Path::new("config.toml"), text, Emptiness::Allowed)?;
        Self::default().load_layers(Some(file))
    }

    fn load_layers(&self, file: Option<FileLayer>) -> Result<Config, ConfigErrors> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if file.table.get("port").and_then(toml::Value::as_integer) == Some(0) {
                return Err(ConfigError::Key {
                    origin: file.path.display().to_string(),
                    key: "port".into(),
                    reason: "0 is not a port clients can find; use 1 to 65535".into(),
                }
                .into());
            }
            figment = figment.merge(file);
        }
        let env = EnvScan::now();
        if !env.errors.is_empty() {
            return Err(ConfigErrors(env.errors));
        }
        let figment = figment
            .merge(Env::prefixed(ENV_PREFIX).split("__").filter(|k| {
                ENV_KEYS
                    .iter()
                    .any(|known| k.as_str().eq_ignore_ascii_case(known))
            }))
            .merge(FlagLayer(&self.overrides));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigErrors(figment_errors(e)))?;
        let mut problems = validate(&config);
        problems.extend(path_collisions(&config, self.path.as_deref()));
        if problems.is_empty() {
            return Ok(config);
        }
        Err(ConfigErrors(
            problems
                .into_iter()
                .map(|(key, reason)| {
                    let key = user_set_key(&figment, key);
                    ConfigError::Key {
                        origin: origin(&figment, &key),
                        key,
                        reason,
                    }
                })
                .collect(),
        ))
    }

    /// The `DISCOVERYD_*` variables that name no config key (such as a
    /// test script's own `DISCOVERYD_BIN`): ignored, but worth a warning.
    pub fn ignored_env() -> Vec<String> {
        EnvScan::now().ignored
    }

    /// The pidfile, found leniently: a running instance must stay reachable
    /// (to stop it, ask its status, reload it) even after its config file
    /// became invalid. Only a file that is not TOML at all, or whose
    /// `pidfile` is not a string, is an error.
    pub fn pidfile(&self) -> Result<PathBuf, ConfigErrors> {
        if let Some(path) = &self.overrides.pidfile {
            return Ok(path.clone());
        }
        if let Some(path) = std::env::var_os(format!("{ENV_PREFIX}PIDFILE")) {
            let origin = format!("environment variable {ENV_PREFIX}PIDFILE");
            let bad = |reason: &str| ConfigError::Key {
                origin: origin.clone(),
                key: "pidfile".into(),
                reason: reason.to_owned(),
            };
            return match path.to_str() {
                Some("") => Err(bad("must not be empty; unset it to use the default").into()),
                Some(path) => Ok(path.into()),
                None => Err(bad("is not valid UTF-8; give the path as text").into()),
            };
        }
        if let Some(path) = &self.path {
            match FileLayer::read(path, Emptiness::Allowed)?
                .table
                .get("pidfile")
            {
                Some(toml::Value::String(pidfile)) => return Ok(pidfile.into()),
                Some(_) => {
                    return Err(self
                        .error("pidfile", "must be a path (a string)".into())
                        .into())
                }
                None => {}
            }
        }
        Ok(default_pidfile())
    }

    /// Names the layer that set `key`, for errors found after loading (such
    /// as an unknown responder type).
    pub fn error(&self, key: &str, reason: String) -> ConfigError {
        let origin = match &self.path {
            Some(path) => path.display().to_string(),
            None => "built-in default".to_owned(),
        };
        ConfigError::Key {
            origin,
            key: key.to_owned(),
            reason,
        }
    }

    /// The file name to point users at when they must change a key.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "a config file (see config/discoveryd.toml)".to_owned(),
        }
    }
}

/// The keys read only when the service starts; a reload that changes them
/// says so and goes on with the old values.
pub(crate) const START_ONLY_KEYS: &[&str] = &["duration", "pidfile", "log_file"];

/// As root `/run/discoveryd/discoveryd.pid` (the shipped unit's, so a bare
/// `discoveryd status` finds it); else `$XDG_RUNTIME_DIR/discoveryd.pid`;
/// else a directory of this user's in the temporary directory, which must
/// be its own (see `daemon::files`): no predictable shared file name.
fn default_pidfile() -> PathBuf {
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

/// Files that would be one another: the pidfile, its control socket and
/// the log file among themselves, or any of them and the config file.
/// Paths are compared as the kernel resolves them (`..`, symlinks), not
/// as text.
fn path_collisions(c: &Config, config_file: Option<&Path>) -> Vec<(String, String)> {
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
        .filter(|(_, a, _, b)| resolved(a) == resolved(b))
        .map(|(key, path, what, _)| {
            (
                key.to_owned(),
                format!("{} is also {what}; choose another path", path.display()),
            )
        })
        .collect()
}

/// `path` as the kernel resolves it: the longest existing part
/// canonicalized (symlinks and `..` resolved), the rest appended.
fn resolved(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => resolved(dir).join(name),
        _ => path,
    }
}

/// Checks what types alone cannot; returns `(key, reason)` pairs.
fn validate(c: &Config) -> Vec<(String, String)> {
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
    for (key, reason) in c.security.problems() {
        check(false, &key, reason);
    }
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

/// The `DISCOVERYD_*` environment, checked: a variable whose first part
/// names a config key must be one the environment can set, and text.
/// Others are someone else's (a script's `DISCOVERYD_BIN`), and ignored.
struct EnvScan {
    errors: Vec<ConfigError>,
    ignored: Vec<String>,
}

impl EnvScan {
    fn now() -> Self {
        let mut scan = Self {
            errors: Vec::new(),
            ignored: Vec::new(),
        };
        for (name, value) in std::env::vars_os() {
            let bytes = name.as_encoded_bytes();
            let prefixed = bytes.len() > ENV_PREFIX.len()
                && bytes[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX.as_bytes());
            if !prefixed {
                continue;
            }
            let shown = name.to_string_lossy().into_owned();
            let key = shown[ENV_PREFIX.len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            let top = key.split('.').next().unwrap_or_default();
            let related: Vec<&str> = ENV_KEYS
                .iter()
                .copied()
                .filter(|k| k.split('.').next() == Some(top))
                .collect();
            let reason = if ENV_KEYS.contains(&key.as_str()) {
                match value.to_str() {
                    Some(_) if name.to_str().is_some() => continue,
                    _ => "is not valid UTF-8; discoveryd reads its settings as text".to_owned(),
                }
            } else if top == "responders" {
                "responders cannot be set from the environment; list them as [[responders]] in the config file".to_owned()
            } else if related.is_empty() {
                scan.ignored.push(shown);
                continue;
            } else {
                let names: Vec<String> = related.iter().map(|k| env_name(k)).collect();
                format!(
                    "names no key the environment can set; expected one of: {}",
                    names.join(", ")
                )
            };
            scan.errors.push(ConfigError::Key {
                origin: format!("environment variable {shown}"),
                key,
                reason,
            });
        }
        scan
    }
}

/// The environment variable that sets the dotted `key`.
fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// The largest config file read, in bytes.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads a config file: a regular file (symlinks followed, as a
/// ConfigMap's are) of at most [`MAX_CONFIG_BYTES`], as UTF-8 text. A FIFO
/// or device there is refused at once, never read: opening is
/// non-blocking, and nothing past the limit is read.
fn read_config_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("{e}; check the path given to --config"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(
            "not a regular file (a FIFO, device or directory); point --config at a file".into(),
        );
    }
    let too_big = || format!("larger than the limit of {MAX_CONFIG_BYTES} bytes (1 MiB)");
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (a bad byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Whether an empty config file is acceptable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Emptiness {
    Allowed,
    Rejected,
}

/// The config file, read once and parsed with a precise syntax error.
struct FileLayer {
    path: PathBuf,
    table: toml::Table,
}

impl FileLayer {
    fn read(path: &Path, empty: Emptiness) -> Result<Self, ConfigError> {
        let text = read_config_file(path).map_err(|reason| ConfigError::Read {
            path: path.to_owned(),
            reason,
        })?;
        Self::parse(path, &text, empty)
    }

    fn parse(path: &Path, text: &str, empty: Emptiness) -> Result<Self, ConfigError> {
        if empty == Emptiness::Rejected && text.trim().is_empty() {
            return Err(ConfigError::Empty {
                path: path.to_owned(),
            });
        }
        let table = text.parse::<toml::Table>().map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_column(text, s.start));
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                reason: e.message().to_owned(),
            }
        })?;
        Ok(Self {
            path: path.to_owned(),
            table,
        })
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Provider for FileLayer {
    fn metadata(&self) -> Metadata {
        Metadata::from(FILE_LAYER, Source::File(self.path.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(&self.table).data()
    }
}

struct FlagLayer<'a>(&'a Overrides);

impl Provider for FlagLayer<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(FLAG_LAYER)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self.0).data()
    }
}

/// Checks that involve several keys, by the key they report: the others
/// that can make them fail.
const RELATED_KEYS: &[(&str, &[&str])] = &[
    (
        "message",
        &[
            "response_prefix",
            "bind",
            "advertise_ip",
            "service_port",
            "security.max_amplification",
            "buffer_size",
        ],
    ),
    (
        "supervision.restart_on_failure.backoff",
        &["supervision.restart_on_failure.backoff_max"],
    ),
];

/// An error must name a key the user set: when the reported key still has
/// its built-in default, the first related key some layer did set is named
/// instead (a long `response_prefix` in a file, say, makes the default
/// `message` too short).
fn user_set_key(figment: &Figment, key: String) -> String {
    if origin(figment, &key) != DEFAULT_ORIGIN {
        return key;
    }
    let related = RELATED_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(&[][..], |(_, r)| *r);
    related
        .iter()
        .find(|k| origin(figment, k) != DEFAULT_ORIGIN)
        .map_or(key, |k| (*k).to_owned())
}

const DEFAULT_ORIGIN: &str = "built-in default";

/// Names the layer that set `key`.
fn origin(figment: &Figment, key: &str) -> String {
    describe_metadata(figment.find_metadata(key), key)
}

fn describe_metadata(metadata: Option<&Metadata>, key: &str) -> String {
    match metadata {
        Some(Metadata {
            source: Some(Source::File(path)),
            ..
        }) => path.display().to_string(),
        Some(m) if m.name == FLAG_LAYER => format!("flag --{}", key.replace('_', "-")),
        Some(m) if m.name.contains("environment") => {
            format!("environment variable {}", env_name(key))
        }
        _ => DEFAULT_ORIGIN.to_owned(),
    }
}

fn figment_errors(error: figment::Error) -> Vec<ConfigError> {
    error
        .into_iter()
        .map(|e| {
            // For an unknown field, the path already ends with the field.
            let reason = match &e.kind {
                figment::error::Kind::UnknownField(_, expected) => {
                    format!("unknown key; expected one of: {}", expected.join(", "))
                }
                kind => kind.to_string(),
            };
            // A list's item is reported under the list's key.
            let mut path = e.path.clone();
            let item = path
                .last()
                .and_then(|p| p.parse::<usize>().ok())
                .inspect(|_| drop(path.pop()));
            let reason = match item {
                Some(i) => format!("item {i}: {reason}"),
                None => reason,
            };
            let key = if path.is_empty() {
                "(top level)".to_owned()
            } else {
                path.join(".")
            };
            ConfigError::Key {
                origin: describe_metadata(e.metadata.as_ref(), &key),
                key,
                reason,
            }
        })
        .collect()
}

/// What changed between two configurations, as dotted keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ConfigDiff {
    /// The keys whose values differ, sorted.
    pub changed: Vec<String>,
}

impl ConfigDiff {
    /// Compares two configurations.
    pub(crate) fn between(old: &Config, new: &Config) -> Self {
        let table = |c: &Config| toml::Table::try_from(c).expect("the config model serializes");
        let mut changed = Vec::new();
        diff_tables("", &table(old), &table(new), &mut changed);
        changed.sort();
        Self { changed }
    }

    /// True when nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }
}

impl fmt::Display for ConfigDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.changed.join(", "))
    }
}

fn diff_tables(prefix: &str, old: &toml::Table, new: &toml::Table, out: &mut Vec<String>) {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (old.get(key), new.get(key)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
                diff_tables(&dotted, a, b, out)
            }
            (a, b) if a != b => out.push(dotted),
            _ => {}
        }
    }
}

#[cfg(test)]
// figment's `Jail` closures return its large error type; not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load(jail: &mut Jail, toml: &str) -> Result<Config, ConfigErrors> {
        jail.create_file("d.toml", toml).unwrap();
        ConfigSource::file("d.toml").load()
    }

    fn one_error(r: Result<Config, ConfigErrors>) -> String {
        let errors = r.unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].to_string()
    }

    #[test]
    fn defaults_match_the_python_original() {
        let c = ConfigSource::default().load().unwrap();
        assert_eq!(c.port, 9999);
        assert_eq!(c.message, "DISCOVER_SERVER");
        assert_eq!(c.response_prefix, "SERVER_IP:");
        assert_eq!(c.buffer_size, 1024);
        assert_eq!(c.timeout.get(), std::time::Duration::from_millis(500));
        assert!(c.logging);
        assert_eq!(c.responders, vec![ResponderConfig::classic()]);
    }

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "d.toml",
                "port = 1000\nmessage = \"FROM_THE_FILE\"\nbuffer_size = 512\n",
            )?;
            jail.set_env("DISCOVERYD_MESSAGE", "FROM_THE_ENV");
            jail.set_env("DISCOVERYD_SUPERVISION__RETRY_AFTER_CLEANUP__ATTEMPTS", "7");
            jail.set_env("DISCOVERYD_UNRELATED", "ignored, not an error");
            let mut source = ConfigSource::file("d.toml");
            let c = source.load().unwrap();
            assert_eq!(
                (c.port, c.message.as_str(), c.buffer_size),
                (1000, "FROM_THE_ENV", 512)
            );
            assert_eq!(c.supervision.retry_after_cleanup.attempts, 7);
            source.overrides.message = Some("FROM_THE_FLAG".into());
            source.overrides.port = Some(0);
            let c = source.load().unwrap();
            assert_eq!((c.port, c.message.as_str()), (0, "FROM_THE_FLAG"));
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        Jail::expect_with(|jail| {
            let e = one_error(load(jail, "port = 70000\n"));
            assert!(
                e.starts_with("d.toml: key `port`:") && e.contains("1 to 65535"),
                "{e}"
            );
            let e = one_error(load(jail, "port = 0\n"));
            assert!(e.starts_with("d.toml: key `port`:"), "{e}");
            let e = one_error(load(jail, "message = \"\"\n"));
            assert!(
                e.starts_with("d.toml: key `message`: must not be empty"),
                "{e}"
            );
            let e = one_error(load(jail, "colour = 1\n"));
            assert!(e.starts_with("d.toml: key `colour`: unknown key"), "{e}");
            let e = one_error(load(jail, "[supervision.retry_after_cleanup]\ntries = 1\n"));
            assert!(
                e.contains("key `supervision.retry_after_cleanup.tries`"),
                "{e}"
            );
            let e = one_error(load(jail, "duration = \"0s\"\n"));
            assert!(e.contains("key `duration`") && e.contains("zero"), "{e}");
            let e = one_error(load(jail, "bind = \"nowhere\"\n"));
            assert!(
                e.contains("key `bind`") && e.contains("not an IP address"),
                "{e}"
            );
            let e = one_error(load(jail, "port = 99\nmessage = \n"));
            assert!(e.starts_with("d.toml:2:11: invalid TOML"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn an_empty_file_is_defaults_at_start_but_rejected_on_reload() {
        Jail::expect_with(|jail| {
            jail.create_file("d.toml", "\n")?;
            let source = ConfigSource::file("d.toml");
            assert_eq!(source.load().unwrap(), Config::default());
            let e = one_error(source.reload());
            assert!(e.starts_with("d.toml: the file is empty"), "{e}");
            jail.create_file("d.toml", "# defaults, on purpose\n")?;
            assert_eq!(source.reload().unwrap(), Config::default());
            Ok(())
        });
    }

    #[test]
    fn env_errors_name_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("DISCOVERYD_BUFFER_SIZE", "3");
            let e = one_error(ConfigSource::default().load());
            assert!(
                e.starts_with("environment variable DISCOVERYD_BUFFER_SIZE: key `buffer_size`"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn any_message_works_with_the_defaults_over_ipv4_and_ipv6() {
        Jail::expect_with(|jail| {
            for message in ["A", "ABC", "ALPHA"] {
                let toml = format!(
                    "message = \"{message}\"\nservice_port = 65535\nbind = [\"0.0.0.0\", \"::\"]\n"
                );
                assert_eq!(load(jail, &toml).unwrap().message, message);
            }
            jail.set_env("DISCOVERYD_MESSAGE", "ENVMSG");
            assert_eq!(ConfigSource::default().load().unwrap().message, "ENVMSG");
            Ok(())
        });
    }

    #[test]
    fn the_cap_still_bites_answers_that_really_grow() {
        Jail::expect_with(|jail| {
            // 100-byte prefix: 115 + 28 bytes on the wire against 3 x (1 + 28).
            let toml = format!(
                "message = \"A\"\nresponse_prefix = \"{}\"\n",
                "P".repeat(100)
            );
            let e = one_error(load(jail, &toml));
            assert!(
                e.starts_with("d.toml: key `message`: `message` is 1 bytes, too short")
                    && e.contains("at least 20 bytes")
                    && e.contains("28 bytes of IPv4 and UDP headers"),
                "{e}"
            );
            // Over IPv6 the worst case is a 41-byte bracketed address.
            let toml = "message = \"A\"\nservice_port = 1\nbind = \"::\"\n[security]\nmax_amplification = 1.5\n";
            let e = one_error(load(jail, toml));
            assert!(e.contains("IPv6") && e.contains("at least 22 bytes"), "{e}");
            let e = one_error(load(jail, "[security]\nmax_amplification = nan\n"));
            assert!(
                e.starts_with("d.toml: key `security.max_amplification`: must be a number of at least 1.0 (not nan or inf)"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_config_that_would_answer_nothing_is_rejected() {
        Jail::expect_with(|jail| {
            let e = one_error(load(jail, "response_prefix = \"DISCOVER_\"\n"));
            assert!(
                e.starts_with("d.toml: key `response_prefix`: `message` (\"DISCOVER_SERVER\") starts with `response_prefix` (\"DISCOVER_\")"),
                "{e}"
            );
            let e = one_error(load(jail, "message = \"SERVER_IP:please\"\n"));
            assert!(
                e.starts_with(
                    "d.toml: key `message`: `message` (\"SERVER_IP:please\") starts with"
                ),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn bind_entries_must_be_bindable_and_distinct() {
        Jail::expect_with(|jail| {
            for (bind, expected) in [
                ("[\"127.0.0.1\", \"127.0.0.1\"]", "lists 127.0.0.1 twice"),
                ("[\"127.0.0.1\", \"0.0.0.0\"]", "0.0.0.0 already covers 127.0.0.1"),
                ("[\"::\", \"::1\"]", ":: already covers ::1"),
                ("\"::ffff:127.0.0.1\"", "IPv4-mapped IPv6 address, and IPv6 sockets here are IPv6-only; write 127.0.0.1 instead"),
                ("\"fe80::1\"", "fe80::1 is link-local"),
            ] {
                let e = one_error(load(jail, &format!("bind = {bind}\n")));
                assert!(e.starts_with("d.toml: key `bind`: ") && e.contains(expected), "{bind}: {e}");
            }
            // IPv4 and IPv6 wildcards do not overlap: IPv6 sockets are IPv6-only.
            assert_eq!(
                load(jail, "bind = [\"0.0.0.0\", \"::\"]\n")
                    .unwrap()
                    .bind
                    .len(),
                2
            );
            Ok(())
        });
    }

    #[test]
    fn empty_paths_are_errors_naming_their_source() {
        Jail::expect_with(|jail| {
            let e = one_error(load(jail, "pidfile = \"\"\n"));
            assert!(
                e.starts_with("d.toml: key `pidfile`: must not be empty"),
                "{e}"
            );
            let e = one_error(load(jail, "log_file = \"\"\n"));
            assert!(
                e.starts_with("d.toml: key `log_file`: must not be empty"),
                "{e}"
            );
            jail.set_env("DISCOVERYD_PIDFILE", "");
            let e = one_error(ConfigSource::default().load());
            assert!(
                e.starts_with(
                    "environment variable DISCOVERYD_PIDFILE: key `pidfile`: must not be empty"
                ),
                "{e}"
            );
            let e = ConfigSource::default().pidfile().unwrap_err().to_string();
            assert!(
                e.starts_with(
                    "environment variable DISCOVERYD_PIDFILE: key `pidfile`: must not be empty"
                ),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn environment_variables_for_our_keys_must_name_one() {
        Jail::expect_with(|jail| {
            jail.set_env("DISCOVERYD_RESPONDERS", "5");
            let e = one_error(ConfigSource::default().load());
            assert!(e.starts_with("environment variable DISCOVERYD_RESPONDERS: key `responders`: responders cannot be set from the environment"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("DISCOVERYD_SECURITY__RATE_LIMIT__FOO", "1");
            let e = one_error(ConfigSource::default().load());
            assert!(
                e.starts_with("environment variable DISCOVERYD_SECURITY__RATE_LIMIT__FOO: key `security.rate_limit.foo`: names no key the environment can set; expected one of: DISCOVERYD_SECURITY__REFUSED_SOURCE_PORTS"),
                "{e}"
            );
            // A variable sharing only the prefix is someone else's.
            jail.set_env("DISCOVERYD_SECURITY__RATE_LIMIT__FOO", "");
            Ok(())
        });
    }

    #[test]
    fn bind_takes_one_or_many_addresses() {
        Jail::expect_with(|jail| {
            assert_eq!(
                load(jail, "bind = \"127.0.0.1\"").unwrap().bind,
                vec![IpAddr::from([127, 0, 0, 1])]
            );
            let c = load(jail, "bind = [\"127.0.0.1\", \"::1\"]").unwrap();
            assert_eq!(c.bind.len(), 2);
            Ok(())
        });
    }

    #[test]
    fn effective_config_round_trips_through_toml() {
        Jail::expect_with(|jail| {
            let c = load(
                jail,
                "service_port = 8080\nduration = \"2m\"\n[[responders]]\ntype = \"json\"\nname = \"x\"\n",
            )
            .unwrap();
            let again = load(jail, &c.to_toml()).unwrap();
            assert_eq!(c, again);
            Ok(())
        });
    }

    #[test]
    fn diff_lists_changed_keys() {
        let a = Config::default();
        let mut b = a.clone();
        b.message = "X".into();
        b.supervision.retry_after_cleanup.attempts = 9;
        let d = ConfigDiff::between(&a, &b);
        assert_eq!(
            d.changed,
            ["message", "supervision.retry_after_cleanup.attempts"]
        );
        b.port = 1;
        assert!(ConfigDiff::between(&a, &b)
            .changed
            .contains(&"port".to_owned()));
        assert!(ConfigDiff::between(&a, &a).is_empty());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn validation_never_panics_and_accepts_only_valid_values(
            port in any::<i64>(),
            buffer_size in -10i64..70_000,
            message in ".{0,30}",
            amplification in -2.0f64..10.0,
        ) {
            let text = format!(
                "port = {port}\nbuffer_size = {buffer_size}\nmessage = {}\n[security]\nmax_amplification = {amplification:?}\n",
                toml::Value::String(message.clone()),
            );
            match ConfigSource::load_text(&text) {
                Ok(c) => {
                    prop_assert!((1..=65535).contains(&port) && c.port as i64 == port);
                    prop_assert!((16..=65_507).contains(&buffer_size) && c.buffer_size as i64 == buffer_size);
                    prop_assert!(!message.is_empty() && message.len() <= c.buffer_size);
                    prop_assert!(amplification >= 1.0);
                }
                Err(errors) => {
                    for e in errors.0 {
                        let line = e.to_string();
                        prop_assert!(line.starts_with("config.toml") && !line.contains('\n'), "{}", line);
                    }
                }
            }
        }
    }

    /// Found by the config fuzzer: a long prefix makes the default message
    /// too short, and the error must name what the file set.
    #[test]
    fn a_cross_key_error_names_the_key_the_file_set() {
        let e = ConfigSource::load_text(&format!("response_prefix = \"{}\"\n", "P".repeat(100)))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config.toml: key `response_prefix`: `message` is 15 bytes, too short"),
            "{e}"
        );
        let e =
            ConfigSource::load_text("[supervision.restart_on_failure]\nbackoff_max = \"10ms\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("config.toml: key `supervision.restart_on_failure.backoff_max`"),
            "{e}"
        );
    }

    #[test]
    fn load_text_reads_like_a_file() {
        let c = ConfigSource::load_text("port = 4242\nmessage = \"HELLO_WORLD\"\n").unwrap();
        assert_eq!((c.port, c.message.as_str()), (4242, "HELLO_WORLD"));
        let e = ConfigSource::load_text("port = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config.toml: key `port`"), "{e}");
    }
}
