//! Loading a configuration in layers: built-in defaults < config file <
//! `DISCOVERYD_*` environment < flags. Every error names where the bad
//! value came from and the key.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::Serialize;

use super::env::{env_keys, env_name, EnvScan, ENV_PREFIX};
use super::validate::{path_collisions, validate};
use super::{default_pidfile, Config, ConfigError, ConfigErrors, ConfigOrigin, LogLevel};
use crate::duration::HumanDuration;

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
    /// `--log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// Set (to `true`) by `--log-level`: a level asked for on the command
    /// line is shown even where the file says `logging = false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
}

impl Overrides {
    /// Adds `--log-level`, if given: it sets `log_level` and turns
    /// `logging` on.
    pub fn with_log_level(mut self, level: Option<LogLevel>) -> Self {
        if level.is_some() {
            self.log_level = level;
            self.logging = Some(true);
        }
        self
    }
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
                    origin: ConfigOrigin::File(file.path.clone()),
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
                env_keys()
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
            let origin = ConfigOrigin::Env(format!("{ENV_PREFIX}PIDFILE"));
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
            Some(path) => ConfigOrigin::File(path.clone()),
            None => ConfigOrigin::Default,
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
    if origin(figment, &key) != ConfigOrigin::Default {
        return key;
    }
    let related = RELATED_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(&[][..], |(_, r)| *r);
    related
        .iter()
        .find(|k| origin(figment, k) != ConfigOrigin::Default)
        .map_or(key, |k| (*k).to_owned())
}

/// Names the layer that set `key`.
fn origin(figment: &Figment, key: &str) -> ConfigOrigin {
    // An item of a list (`registries[0].ttl`) came with its list.
    let found = figment
        .find_metadata(key)
        .or_else(|| figment.find_metadata(key.split('[').next().unwrap_or(key)));
    describe_metadata(found, key)
}

fn describe_metadata(metadata: Option<&Metadata>, key: &str) -> ConfigOrigin {
    match metadata {
        Some(Metadata {
            source: Some(Source::File(path)),
            ..
        }) => ConfigOrigin::File(path.clone()),
        Some(m) if m.name == FLAG_LAYER => {
            ConfigOrigin::Flag(format!("--{}", key.replace('_', "-")))
        }
        Some(m) if m.name.contains("environment") => ConfigOrigin::Env(env_name(key)),
        _ => ConfigOrigin::Default,
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
                figment::error::Kind::UnknownVariant(found, expected) => {
                    format!(
                        "`{found}` is not a choice; use one of: {}",
                        expected.join(", ")
                    )
                }
                kind => kind.to_string(),
            };
            let mut path = e.path.clone();
            // Inside a tagged table (a `[[registries]]` entry), the path
            // stops at the table: the unknown key is named after it.
            if let figment::error::Kind::UnknownField(field, _) = &e.kind {
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
            }
            // A list's item is reported under the list's key.
            let item = path
                .last()
                .and_then(|p| p.parse::<usize>().ok())
                .inspect(|_| drop(path.pop()));
            let reason = match item {
                Some(i) => format!("item {i}: {reason}"),
                None => reason,
            };
            // An item inside the path is `list[i]`.
            let key = path.iter().fold(String::new(), |key, part| {
                match (part.parse::<usize>(), key.is_empty()) {
                    (Ok(i), false) => format!("{key}[{i}]"),
                    (_, true) => part.clone(),
                    (_, false) => format!("{key}.{part}"),
                }
            });
            let key = if key.is_empty() {
                "(top level)".to_owned()
            } else {
                key
            };
            ConfigError::Key {
                origin: describe_metadata(e.metadata.as_ref(), &key),
                key,
                reason,
            }
        })
        .collect()
}
