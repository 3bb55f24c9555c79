//! The `[http]` table: where the HTTP side listens, and who may change
//! things through it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The most registrations `max_registrations` may allow: each change
/// rebuilds what lists them (the json responder's document), which takes
/// about 18 ms at 8,192 (release build, measured), while status and
/// health requests wait.
const MAX_REGISTRATIONS: usize = 8_192;

/// The HTTP side: health, metrics, status, reload and registrations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// The address to listen on, such as `127.0.0.1:9998`; unset: no
    /// HTTP listener at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The bearer token the mutating endpoints require.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the token (its first line), instead of `token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The Host header values accepted (DNS-rebinding defence); empty:
    /// the loopback names for a loopback listener, anything otherwise.
    pub allowed_hosts: Vec<String>,
    /// The most services registered at once; beyond, a registration is
    /// refused (429).
    pub max_registrations: usize,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            token_file: None,
            allowed_hosts: Vec::new(),
            max_registrations: 1024,
        }
    }
}

impl Http {
    /// What is wrong, as (dotted key, reason with the fix).
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.token.is_some() && self.token_file.is_some() {
            out.push((
                "http.token_file".to_owned(),
                "both http.token and http.token_file are set; keep one".to_owned(),
            ));
        }
        if let Some(token) = &self.token {
            if let Err(reason) = check_token(token) {
                out.push(("http.token".to_owned(), reason));
            }
        }
        if let Some(path) = &self.token_file {
            if path.as_os_str().is_empty() {
                out.push((
                    "http.token_file".to_owned(),
                    "must not be empty; name the file holding the token, or remove the key"
                        .to_owned(),
                ));
            }
        }
        if let Some(listen) = self.listen {
            if !listen.ip().is_loopback() && self.token.is_none() && self.token_file.is_none() {
                out.push((
                    "http.listen".to_owned(),
                    format!("{listen} is not a loopback address, and no token is set: anyone on the network could reload this service; set http.token or http.token_file, or listen on 127.0.0.1"),
                ));
            }
        }
        if !(1..=MAX_REGISTRATIONS).contains(&self.max_registrations) {
            out.push((
                "http.max_registrations".to_owned(),
                format!(
                    "{} is out of range; use 1 to {MAX_REGISTRATIONS}",
                    self.max_registrations
                ),
            ));
        }
        for host in &self.allowed_hosts {
            if host.is_empty()
                || host
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                out.push((
                    "http.allowed_hosts".to_owned(),
                    format!("{host:?} is not a host name; use names such as \"localhost\" or \"discoveryd.lan:9998\""),
                ));
            }
        }
        out
    }
}

/// A usable bearer token: 16 to 4096 visible ASCII characters.
pub(crate) fn check_token(token: &str) -> Result<(), String> {
    if !(16..=4096).contains(&token.len()) {
        return Err(format!(
            "the token is {} characters; use 16 to 4096 (for example: `openssl rand -hex 32`)",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the token must be visible ASCII, without spaces (for example: `openssl rand -hex 32`)"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_off_loopback_needs_a_token() {
        let open = Http {
            listen: Some("0.0.0.0:9998".parse().unwrap()),
            ..Http::default()
        };
        assert_eq!(open.problems()[0].0, "http.listen");
        let with_token = Http {
            token: Some("0123456789abcdef".into()),
            ..open.clone()
        };
        assert!(with_token.problems().is_empty());
        let loopback = Http {
            listen: Some("127.0.0.1:9998".parse().unwrap()),
            ..Http::default()
        };
        assert!(loopback.problems().is_empty());
        let short = Http {
            token: Some("short".into()),
            ..loopback
        };
        assert_eq!(short.problems()[0].0, "http.token");
    }
}
