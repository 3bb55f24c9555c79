//! The `[[registries]]` tables: where the host's service and the HTTP
//! registrations are published beyond the LAN.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::etcd::Credentials;
use crate::duration::HumanDuration;

/// One registry to publish into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Registry {
    /// An etcd cluster, in etcd's endpoints naming format.
    Etcd(Etcd),
}

/// The shortest `ttl`: etcd raises shorter leases to about 1.5 election
/// timeouts anyway.
const MIN_TTL_MS: u64 = 2_000;

/// The longest `ttl`.
const MAX_TTL_MS: u64 = 3_600_000;

/// Publishing into etcd (v3, through its JSON gateway).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Etcd {
    /// The cluster's client URLs (`http://host:port`), tried in order.
    pub endpoints: Vec<String>,
    /// The key prefix; keys are `<prefix><service name>/<address:port>`.
    pub prefix: String,
    /// The lease every key is under: kept alive at a third of it, so the
    /// keys disappear within it when discoveryd stops answering.
    pub ttl: HumanDuration,
    /// The name this host's own service is published under.
    pub name: String,
    /// The user to authenticate as, if etcd has auth on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The user's password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A file whose first line is the password, instead of `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl Default for Etcd {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            prefix: DEFAULT_PREFIX.into(),
            ttl: HumanDuration::from_millis(10_000),
            name: "discoveryd".into(),
            user: None,
            password: None,
            password_file: None,
        }
    }
}

/// The default key prefix.
pub(crate) const DEFAULT_PREFIX: &str = "/discoveryd/services/";

/// An etcd client URL, checked: `http://host:port` (or `host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `http://host:port`, without a trailing slash.
    pub(crate) base: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl Endpoint {
    /// Parses an endpoint as etcd's own clients take it: `http://host:port`,
    /// or `host:port` (http).
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        let shown = raw.escape_debug();
        let fix = "give it as http://host:port, such as \"http://127.0.0.1:2379\"";
        if raw.starts_with("https://") || raw.starts_with("unix") {
            return Err(format!(
                "`{shown}`: only http:// endpoints are supported (TLS and unix sockets are not); {fix}, on a network you trust, or through a TLS-terminating proxy"
            ));
        }
        let rest = raw.strip_prefix("http://").unwrap_or(raw);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let port = rest
            .rsplit_once(':')
            .and_then(|(host, port)| (!host.is_empty()).then_some(port))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&p| p != 0);
        let clean = !rest.is_empty()
            && !rest.contains(['/', '?', '#', '@', ' '])
            && !rest.chars().any(char::is_control);
        if port.is_none() || !clean {
            return Err(format!("`{shown}` is not an etcd client URL; {fix}"));
        }
        Ok(Self {
            base: format!("http://{rest}"),
        })
    }
}

impl Etcd {
    /// The endpoints, parsed; the configuration was validated.
    pub(crate) fn endpoints(&self) -> Vec<Endpoint> {
        self.endpoints
            .iter()
            .filter_map(|e| Endpoint::parse(e).ok())
            .collect()
    }

    /// Where the user and password come from (read at each
    /// authentication).
    pub(crate) fn credentials(&self) -> Credentials {
        match (&self.user, &self.password, &self.password_file) {
            (Some(user), Some(password), _) => Credentials::Password {
                user: user.clone(),
                password: password.clone(),
            },
            (Some(user), None, Some(path)) => Credentials::File {
                user: user.clone(),
                path: path.clone(),
            },
            _ => Credentials::None,
        }
    }

    /// The same cluster and prefix as `other`: the endpoints compared as
    /// a set, written alike.
    pub(crate) fn same_place(&self, other: &Etcd) -> bool {
        let set = |e: &Etcd| {
            let mut v: Vec<String> = e.endpoints().iter().map(ToString::to_string).collect();
            v.sort();
            v.dedup();
            v
        };
        self.prefix == other.prefix && set(self) == set(other)
    }

    /// What is wrong, as (the key within the table, reason with the fix).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.endpoints.is_empty() {
            out.push((
                "endpoints",
                "is empty; list the cluster's client URLs, such as [\"http://127.0.0.1:2379\"]"
                    .to_owned(),
            ));
        }
        for endpoint in &self.endpoints {
            if let Err(reason) = Endpoint::parse(endpoint) {
                out.push(("endpoints", reason));
            }
        }
        if let Err(reason) = check_prefix(&self.prefix) {
            out.push(("prefix", reason));
        }
        let ms = self.ttl.get().as_millis();
        if !(u128::from(MIN_TTL_MS)..=u128::from(MAX_TTL_MS)).contains(&ms) {
            out.push((
                "ttl",
                format!(
                    "{} is out of range; use 2s to 1h (the default is 10s)",
                    self.ttl
                ),
            ));
        }
        if let Err(reason) = crate::services::check_name(&self.name) {
            out.push(("name", reason));
        }
        match (&self.user, &self.password, &self.password_file) {
            (_, Some(_), Some(_)) => out.push((
                "password_file",
                "both password and password_file are set; keep one".to_owned(),
            )),
            (None, Some(_), _) | (None, _, Some(_)) => out.push((
                "user",
                "a password is set without a user; set user too".to_owned(),
            )),
            (Some(_), None, None) => out.push((
                "password",
                "a user is set without a password; set password or password_file".to_owned(),
            )),
            _ => {}
        }
        if self.user.as_ref().is_some_and(|u| u.is_empty()) {
            out.push(("user", "must not be empty".to_owned()));
        }
        out
    }
}

/// A key prefix: ends with `/` (keys are `<prefix><name>/<address:port>`),
/// at most 256 bytes, without control characters.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = prefix.ends_with('/') && !prefix.chars().any(char::is_control) && prefix.len() <= 256;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` must end with `/` (keys are <prefix><name>/<address:port>), without control characters, at most 256 bytes; the default is \"{DEFAULT_PREFIX}\"",
            prefix.escape_debug()
        ))
    }
}

/// What is wrong with `[[registries]]`, as (dotted key, reason).
pub(crate) fn problems(registries: &[Registry]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, registry) in registries.iter().enumerate() {
        let Registry::Etcd(etcd) = registry;
        for (key, reason) in etcd.problems() {
            out.push((format!("registries[{i}].{key}"), reason));
        }
        let same = registries[..i].iter().position(|r| {
            let Registry::Etcd(other) = r;
            other.same_place(etcd)
        });
        if let Some(j) = same {
            out.push((
                format!("registries[{i}]"),
                format!("publishes into the same etcd and prefix as registries[{j}]; keep one"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_with_a_port() {
        for (raw, base) in [
            ("http://127.0.0.1:2379", "http://127.0.0.1:2379"),
            ("127.0.0.1:2379", "http://127.0.0.1:2379"),
            ("http://etcd-1.lan:2379/", "http://etcd-1.lan:2379"),
            ("http://[::1]:2379", "http://[::1]:2379"),
        ] {
            assert_eq!(Endpoint::parse(raw).unwrap().base, base, "{raw}");
        }
        for bad in [
            "",
            "http://",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://:2379",
            "http://a:2379/v3",
            "http://u@a:2379",
            "https://a:2379",
            "unix:///run/etcd.sock",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert!(Endpoint::parse("https://a:2379")
            .unwrap_err()
            .contains("only http://"));
    }

    #[test]
    fn each_problem_names_its_key() {
        let bad = Registry::Etcd(Etcd {
            endpoints: vec!["nope".into()],
            prefix: "/no-slash".into(),
            ttl: HumanDuration::from_millis(500),
            name: "a/b".into(),
            user: Some("u".into()),
            password: None,
            password_file: None,
        });
        let keys: Vec<String> = problems(&[bad]).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "registries[0].endpoints",
                "registries[0].prefix",
                "registries[0].ttl",
                "registries[0].name",
                "registries[0].password"
            ]
        );
        let good = Registry::Etcd(Etcd {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            ..Etcd::default()
        });
        assert!(problems(std::slice::from_ref(&good)).is_empty());
        let twice = problems(&[good.clone(), good.clone()]);
        assert_eq!(twice[0].0, "registries[1]");
        // The same cluster, written otherwise, and in another order.
        let Registry::Etcd(one) = &good;
        let alias = Etcd {
            endpoints: vec!["127.0.0.1:2379/".into(), "http://127.0.0.2:2379".into()],
            ..one.clone()
        };
        let other = Etcd {
            endpoints: vec![
                "http://127.0.0.2:2379".into(),
                "http://127.0.0.1:2379".into(),
            ],
            ..one.clone()
        };
        assert!(alias.same_place(&other));
        assert!(!alias.same_place(&Etcd {
            prefix: "/other/".into(),
            ..other.clone()
        }));
    }
}
