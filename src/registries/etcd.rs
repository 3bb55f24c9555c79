//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/...`, keys
//! and values in base64, 64-bit numbers as strings): what publishing and
//! discovering need (leases, put, delete, range, authenticate), with no
//! gRPC or protobuf compiler to build. Blocking, with timeouts: it runs on
//! a publisher's own thread, and in `discover --etcd`.
//!
//! Every call tries the endpoints in turn, from the last that answered, so
//! the loss of a cluster member (its leader, say) costs one failed attempt.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::Endpoint;

/// The most a response body may hold (a range of 4,096 keys fits).
const MAX_BODY: u64 = 16 << 20;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EtcdError {
    /// No endpoint answered (each one's error).
    #[error("no etcd endpoint answered: {0}")]
    Unreachable(String),
    /// etcd answered with an error.
    #[error("etcd refused: {0}")]
    Refused(String),
    /// The lease is gone (expired, or revoked).
    #[error("the lease is gone")]
    LeaseGone,
}

/// A lease's id (etcd's int64).
pub(crate) type LeaseId = i64;

/// Keys with their values, as etcd holds them (bytes).
pub(crate) type Kvs = Vec<(Vec<u8>, Vec<u8>)>;

/// Where the user and password come from: read again at each
/// authentication, so a rotated password file is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// etcd's auth is off: no token.
    None,
    /// A user and its password.
    Password {
        /// The user.
        user: String,
        /// Its password.
        password: String,
    },
    /// A user, and a file whose first line is its password.
    File {
        /// The user.
        user: String,
        /// The file.
        path: std::path::PathBuf,
    },
}

impl Credentials {
    /// The user and password now, if any.
    pub(crate) fn read(&self) -> Result<Option<(String, String)>, String> {
        match self {
            Credentials::None => Ok(None),
            Credentials::Password { user, password } => Ok(Some((user.clone(), password.clone()))),
            Credentials::File { user, path } => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot read the etcd password_file {}: {e}; check the path and its permissions",
                        path.display()
                    )
                })?;
                let password = text.lines().next().unwrap_or("").to_owned();
                Ok(Some((user.clone(), password)))
            }
        }
    }
}

/// Whether a call needs the auth token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Keys and leases: authenticated when etcd's auth is on.
    Token,
    /// Keep-alives, which etcd takes without a token: the lease lives on
    /// while authentication fails (a rotated password, say).
    Without,
}

/// An etcd client: the endpoints, credentials, and an HTTP agent.
pub(crate) struct Client {
    endpoints: Vec<Endpoint>,
    /// The endpoint that answered last.
    current: usize,
    agent: ureq::Agent,
    credentials: Credentials,
    /// The auth token, once authenticated.
    token: Option<String>,
    /// Whether etcd said its auth is off (no token to get).
    auth_off: bool,
    /// The endpoints the last call passed over, and why.
    skipped: Vec<(String, String)>,
}

/// etcd's error document.
#[derive(Deserialize)]
struct ErrorDoc {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
}

/// The most of a message from the network that errors and logs carry.
const MAX_MESSAGE: usize = 300;

/// A message from the network (an endpoint's error), fit for a log line
/// or a terminal: its control characters escaped, at most 300 characters.
fn clean(message: &str) -> String {
    let cut: String = message.chars().take(MAX_MESSAGE).collect();
    let more = if cut.len() < message.len() { "..." } else { "" };
    format!("{}{more}", crate::client::escape_controls(&cut))
}

impl Client {
    /// A client of `endpoints` whose every call takes at most `timeout`
    /// per endpoint, authenticating with `credentials` when etcd's auth
    /// is on.
    pub(crate) fn new(
        endpoints: Vec<Endpoint>,
        timeout: Duration,
        credentials: Credentials,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .proxy(None)
            .max_idle_connections_per_host(2)
            .build()
            .into();
        Self {
            endpoints,
            current: 0,
            agent,
            credentials,
            token: None,
            auth_off: false,
            skipped: Vec::new(),
        }
    }

    /// Authenticates with these credentials from now on.
    pub(crate) fn set_credentials(&mut self, credentials: Credentials) {
        if credentials != self.credentials {
            self.credentials = credentials;
            self.token = None;
            self.auth_off = false;
        }
    }

    /// The endpoints the last call tried before one answered, and why
    /// each did not.
    pub(crate) fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }

    /// The endpoint that answered last (or will be tried first).
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoints[self.current % self.endpoints.len().max(1)]
    }

    /// `POST /v3/<path>` with `body`, on the endpoints in turn; the
    /// answer, or why none came. With `Auth::Token`, authenticates first
    /// when etcd's auth is on, and again when the token has expired.
    fn call<T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &Value,
        auth: Auth,
    ) -> Result<T, EtcdError> {
        let authenticating = auth == Auth::Token && self.credentials != Credentials::None;
        if authenticating && self.token.is_none() && !self.auth_off {
            self.authenticate()?;
        }
        match self.call_once(path, body, auth) {
            Err(EtcdError::Refused(e)) if authenticating && is_auth_error(&e) => {
                self.auth_off = false;
                self.authenticate()?;
                self.call_once(path, body, auth)
            }
            other => other,
        }
    }

    fn call_once<T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &Value,
        auth: Auth,
    ) -> Result<T, EtcdError> {
        self.skipped.clear();
        for attempt in 0..self.endpoints.len() {
            let i = (self.current + attempt) % self.endpoints.len();
            let endpoint = self.endpoints[i].to_string();
            let url = format!("{}/v3/{path}", self.endpoints[i]);
            let mut request = self.agent.post(&url);
            if let (Auth::Token, Some(token)) = (auth, &self.token) {
                request = request.header("Authorization", token);
            }
            let mut response = match request.send_json(body) {
                Ok(r) => r,
                Err(e) => {
                    self.skipped.push((endpoint, clean(&e.to_string())));
                    continue;
                }
            };
            let status = response.status();
            let text = match response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
            {
                Ok(text) => text,
                Err(ureq::Error::BodyExceedsLimit(_)) => {
                    self.current = i;
                    return Err(EtcdError::Refused(format!(
                        "the answer is over {} MiB: the values there are too large to read",
                        MAX_BODY >> 20
                    )));
                }
                Err(e) => {
                    self.skipped.push((endpoint, clean(&e.to_string())));
                    continue;
                }
            };
            // A member without a leader (during an election) or being
            // stopped answers 503 or "Unavailable" (14): another may not.
            let error: Option<ErrorDoc> = serde_json::from_str::<ErrorDoc>(&text)
                .ok()
                .filter(|e| e.code != 0 || !status.is_success());
            if let Some(error) = error {
                if error.code == 14 || error.code == 4 || status.as_u16() == 503 {
                    self.skipped.push((endpoint, clean(&error.message)));
                    continue;
                }
                self.current = i;
                return Err(EtcdError::Refused(clean(&error.message)));
            }
            if !status.is_success() {
                self.skipped.push((endpoint, format!("HTTP {status}")));
                continue;
            }
            self.current = i;
            return serde_json::from_str(&text).map_err(|e| {
                EtcdError::Refused(format!(
                    "an answer that is not etcd's ({}): is this an etcd v3.4+ client URL?",
                    clean(&e.to_string())
                ))
            });
        }
        let each: Vec<String> = self
            .skipped
            .iter()
            .map(|(endpoint, why)| format!("{endpoint}: {why}"))
            .collect();
        Err(EtcdError::Unreachable(each.join("; ")))
    }

    /// Gets a token with the credentials as they are now. etcd with its
    /// auth off needs none: that is remembered, not an error.
    fn authenticate(&mut self) -> Result<(), EtcdError> {
        self.token = None;
        let Some((name, password)) = self.credentials.read().map_err(EtcdError::Refused)? else {
            return Ok(());
        };
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let body = json!({ "name": name, "password": password });
        match self.call_once::<Token>("auth/authenticate", &body, Auth::Without) {
            Ok(token) => {
                self.token = Some(token.token);
                self.auth_off = false;
                Ok(())
            }
            Err(EtcdError::Refused(m)) if m.contains("authentication is not enabled") => {
                self.auth_off = true;
                Ok(())
            }
            Err(EtcdError::Refused(m)) => Err(EtcdError::Refused(format!(
                "cannot authenticate as `{}`: {m}",
                clean(&name)
            ))),
            Err(other) => Err(other),
        }
    }

    /// A new lease of `ttl`.
    pub(crate) fn grant(&mut self, ttl: Duration) -> Result<LeaseId, EtcdError> {
        #[derive(Deserialize)]
        struct Granted {
            #[serde(rename = "ID")]
            id: Number,
        }
        let body = json!({ "TTL": ttl.as_secs().max(1) });
        let granted: Granted = self.call("lease/grant", &body, Auth::Token)?;
        Ok(granted.id.0)
    }

    /// Refreshes `lease`; `LeaseGone` when it has expired.
    pub(crate) fn keep_alive(&mut self, lease: LeaseId) -> Result<(), EtcdError> {
        #[derive(Deserialize)]
        struct Alive {
            #[serde(default, rename = "TTL")]
            ttl: Option<Number>,
        }
        #[derive(Deserialize)]
        struct Stream {
            result: Alive,
        }
        // A stream of answers, one here: the first line.
        let body = json!({ "ID": lease.to_string() });
        let answer: Stream = self.call("lease/keepalive", &body, Auth::Without)?;
        match answer.result.ttl {
            Some(Number(ttl)) if ttl > 0 => Ok(()),
            _ => Err(EtcdError::LeaseGone),
        }
    }

    /// The keys attached to `lease`; `LeaseGone` when it has expired.
    pub(crate) fn lease_keys(&mut self, lease: LeaseId) -> Result<Vec<String>, EtcdError> {
        #[derive(Deserialize)]
        struct Lease {
            #[serde(default, rename = "TTL")]
            ttl: Option<Number>,
            #[serde(default)]
            keys: Vec<String>,
        }
        let body = json!({ "ID": lease.to_string(), "keys": true });
        let answer: Lease = self.call("lease/timetolive", &body, Auth::Token)?;
        if !matches!(answer.ttl, Some(Number(ttl)) if ttl > 0) {
            return Err(EtcdError::LeaseGone);
        }
        answer
            .keys
            .iter()
            .map(|k| decode(k).map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect()
    }

    /// Revokes `lease`: its keys go at once.
    pub(crate) fn revoke(&mut self, lease: LeaseId) -> Result<(), EtcdError> {
        let body = json!({ "ID": lease.to_string() });
        match self.call::<Value>("lease/revoke", &body, Auth::Token) {
            Err(EtcdError::Refused(m)) if m.contains("lease not found") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Puts `key` = `value` under `lease`.
    pub(crate) fn put(&mut self, key: &str, value: &str, lease: LeaseId) -> Result<(), EtcdError> {
        let body = json!({ "key": b64(key), "value": b64(value), "lease": lease.to_string() });
        match self.call::<Value>("kv/put", &body, Auth::Token) {
            Err(EtcdError::Refused(m)) if m.contains("lease not found") => {
                Err(EtcdError::LeaseGone)
            }
            other => other.map(drop),
        }
    }

    /// Deletes `key` if it is under `lease`: a key another publisher put
    /// since (under its own lease) is left alone.
    pub(crate) fn delete_own(&mut self, key: &str, lease: LeaseId) -> Result<(), EtcdError> {
        let body = json!({
            "compare": [{ "key": b64(key), "target": "LEASE", "result": "EQUAL", "lease": lease.to_string() }],
            "success": [{ "request_delete_range": { "key": b64(key) } }],
        });
        self.call::<Value>("kv/txn", &body, Auth::Token).map(drop)
    }

    /// The value of `key`, if it is there.
    pub(crate) fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, EtcdError> {
        let (kvs, _) = self.range_from(key, None, 1)?;
        Ok(kvs.into_iter().next().map(|(_, value)| value))
    }

    /// The keys under `prefix`, with their values, at most `limit`, and
    /// how many more there are.
    pub(crate) fn range(&mut self, prefix: &str, limit: usize) -> Result<(Kvs, u64), EtcdError> {
        self.range_from(prefix, Some(&prefix_end(prefix.as_bytes())), limit)
    }

    fn range_from(
        &mut self,
        key: &str,
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Kvs, u64), EtcdError> {
        #[derive(Deserialize)]
        struct Kv {
            key: String,
            #[serde(default)]
            value: String,
        }
        #[derive(Deserialize)]
        struct Range {
            #[serde(default)]
            kvs: Vec<Kv>,
            #[serde(default)]
            count: Option<Number>,
        }
        let mut body = json!({ "key": b64(key), "limit": limit.to_string() });
        if let Some(end) = end {
            body["range_end"] = Value::String(b64_bytes(end));
        }
        let range: Range = self.call("kv/range", &body, Auth::Token)?;
        let kvs: Kvs = range
            .kvs
            .iter()
            .map(|kv| Ok((decode(&kv.key)?, decode(&kv.value)?)))
            .collect::<Result<_, EtcdError>>()?;
        let total = range
            .count
            .map_or(0, |Number(n)| u64::try_from(n).unwrap_or(0));
        let more = total.saturating_sub(kvs.len() as u64);
        Ok((kvs, more))
    }
}

/// Bytes from etcd's base64.
fn decode(text: &str) -> Result<Vec<u8>, EtcdError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| EtcdError::Refused(format!("a key or value that is not base64: {e}")))
}

/// Whether etcd's message says a token is needed, or the one sent is stale.
fn is_auth_error(message: &str) -> bool {
    message.contains("invalid auth token") || message.contains("user name is empty")
}

/// An int64 as etcd's JSON gateway writes it: a string (or a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Number(i64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => s.parse().map(Number).map_err(serde::de::Error::custom),
            Value::Number(n) => n
                .as_i64()
                .map(Number)
                .ok_or_else(|| serde::de::Error::custom("not an int64")),
            other => Err(serde::de::Error::custom(format!("{other} is not an int64"))),
        }
    }
}

fn b64(text: &str) -> String {
    b64_bytes(text.as_bytes())
}

fn b64_bytes(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The end of the range of keys starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff plus one.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or none): to the end of the keyspace.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_end_where_etcd_ends_them() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn int64s_come_as_strings_or_numbers() {
        let n: Number = serde_json::from_str("\"4954419470676681477\"").unwrap();
        assert_eq!(n, Number(4954419470676681477));
        let n: Number = serde_json::from_str("7").unwrap();
        assert_eq!(n, Number(7));
        assert!(serde_json::from_str::<Number>("\"x\"").is_err());
    }

    #[test]
    fn an_unreachable_cluster_names_every_endpoint() {
        // Port 1 on loopback: nothing listens, the refusal is immediate.
        let endpoints = ["http://127.0.0.1:1", "http://127.0.0.2:1"]
            .iter()
            .map(|e| Endpoint::parse(e).unwrap())
            .collect();
        let mut client = Client::new(endpoints, Duration::from_secs(2), Credentials::None);
        match client.grant(Duration::from_secs(10)) {
            Err(EtcdError::Unreachable(why)) => {
                assert!(
                    why.contains("127.0.0.1:1") && why.contains("127.0.0.2:1"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
