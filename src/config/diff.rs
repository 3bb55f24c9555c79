//! What a reload changes: the keys whose values differ, and what each
//! change takes (in place, new sockets, or the next start).

use std::fmt;

use super::Config;

/// What applying a changed key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Applied to the running service, without a rebind.
    InPlace,
    /// New sockets (make-before-break): `port`, `bind`, `workers`,
    /// `recv_buffer`.
    Rebind,
    /// Read at start only: `duration`, `pidfile`, `log_file`, `log_format`.
    NextStart,
}

impl Effect {
    /// What a change of the dotted `key` takes.
    pub(crate) fn of(key: &str) -> Self {
        match key {
            "port" | "bind" | "workers" | "recv_buffer" => Effect::Rebind,
            "duration" | "pidfile" | "log_file" | "log_format" => Effect::NextStart,
            _ => Effect::InPlace,
        }
    }
}

/// What changed between two configurations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ConfigDiff {
    /// The dotted keys whose values differ, sorted.
    keys: Vec<String>,
}

impl ConfigDiff {
    /// Compares two configurations.
    pub(crate) fn between(old: &Config, new: &Config) -> Self {
        let table = |c: &Config| toml::Table::try_from(c).expect("the config model serializes");
        let mut keys = Vec::new();
        diff_tables("", &table(old), &table(new), &mut keys);
        keys.sort();
        Self { keys }
    }

    /// True when nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The changed keys that apply only from the next start.
    pub(crate) fn next_start(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .map(String::as_str)
            .filter(|k| Effect::of(k) == Effect::NextStart)
    }

    /// True when the dotted `key` changed.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// The changed keys, sorted.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> &[String] {
        &self.keys
    }
}

impl fmt::Display for ConfigDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.keys.join(", "))
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
