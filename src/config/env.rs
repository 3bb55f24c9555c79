//! The environment layer: `DISCOVERYD_<KEY>` variables, nested keys joined
//! with `__`. The keys they may set are derived from the model itself, so
//! a new config key is settable from the environment without a list to
//! keep in step.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use super::{Config, ConfigError, ConfigOrigin};
use crate::duration::HumanDuration;

/// The prefix of the environment variables that override config keys.
pub(crate) const ENV_PREFIX: &str = "DISCOVERYD_";

/// Every dotted key the environment may set: each leaf of the model, but
/// the `[[responders]]` and `[[registries]]` lists (tables belong in the
/// file).
pub(super) fn env_keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let table = toml::Table::try_from(full_sample()).expect("the config model serializes");
        let mut keys = Vec::new();
        leaves("", &table, &mut keys);
        keys.retain(|k| k != "responders" && k != "registries");
        keys
    })
}

/// The configuration with every optional key set, so that it shows the
/// whole schema. The destructuring lists every field: a new one does not
/// compile until it is considered here.
fn full_sample() -> Config {
    let Config {
        port,
        bind,
        message,
        response_prefix,
        timeout,
        buffer_size,
        recv_buffer,
        workers: _,
        logging,
        log_level,
        log_format,
        advertise_ip: _,
        service_port: _,
        reply_jitter: _,
        duration: _,
        pidfile: _,
        log_file: _,
        supervision,
        security,
        mdns,
        http,
        responders,
        registries,
    } = Config::default();
    Config {
        port,
        bind,
        message,
        response_prefix,
        timeout,
        buffer_size,
        recv_buffer,
        workers: Some(1),
        logging,
        log_level,
        log_format,
        advertise_ip: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        service_port: Some(1),
        reply_jitter: Some(HumanDuration::from_millis(1)),
        duration: Some(HumanDuration::from_millis(1)),
        pidfile: Some("discoveryd.pid".into()),
        log_file: Some("discoveryd.log".into()),
        supervision,
        security,
        mdns: crate::mdns::Mdns {
            instance: Some("discoveryd".into()),
            ..mdns
        },
        http: crate::http::Http {
            listen: Some("127.0.0.1:1".parse().expect("an address")),
            token: Some("t".into()),
            token_file: Some("token".into()),
            ..http
        },
        responders,
        registries,
    }
}

fn leaves(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => leaves(&dotted, inner, out),
            _ => out.push(dotted),
        }
    }
}

/// The `DISCOVERYD_*` environment, checked: a variable whose first part
/// names a config key must be one the environment can set, and text.
/// Others are someone else's (a script's `DISCOVERYD_BIN`), and ignored.
pub(super) struct EnvScan {
    pub(super) errors: Vec<ConfigError>,
    pub(super) ignored: Vec<String>,
}

impl EnvScan {
    pub(super) fn now() -> Self {
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
            let keys = env_keys();
            let under = |prefix: &str| -> Vec<&str> {
                keys.iter()
                    .map(String::as_str)
                    .filter(|k| k.starts_with(prefix))
                    .collect()
            };
            // The keys of the same table, or else of the same top-level key.
            let parent = key.rsplit_once('.').map(|(p, _)| format!("{p}."));
            let related = parent
                .map(|p| under(&p))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| {
                    keys.iter()
                        .map(String::as_str)
                        .filter(|k| k.split('.').next() == Some(top))
                        .collect()
                });
            let reason = if keys.contains(&key) {
                match value.to_str() {
                    Some(_) if name.to_str().is_some() => continue,
                    _ => "is not valid UTF-8; discoveryd reads its settings as text".to_owned(),
                }
            } else if top == "responders" || top == "registries" {
                format!("{top} cannot be set from the environment; list them as [[{top}]] in the config file")
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
                origin: ConfigOrigin::Env(shown),
                key,
                reason,
            });
        }
        scan
    }
}

/// The environment variable that sets the dotted `key`.
pub(super) fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_can_set_every_key_of_the_model_but_the_responders() {
        let keys = env_keys();
        for key in [
            "port",
            "workers",
            "service_port",
            "reply_jitter",
            "pidfile",
            "log_format",
            "supervision.retry_after_cleanup.delay",
            "security.rate_limit.sources",
            "http.max_registrations",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
        assert!(!keys.iter().any(|k| k.starts_with("responders")));
        assert_eq!(keys.len(), 43, "{keys:?}");
    }
}
