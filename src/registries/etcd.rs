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

/// An etcd client: the endpoints, credentials, and an HTTP agent.
pub(crate) struct Client {
    endpoints: Vec<Endpoint>,
    /// The endpoint that answered last.
    current: usize,
    agent: ureq::Agent,
    credentials: Option<(String, String)>,
    /// The auth token, once authenticated.
    token: Option<String>,
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

impl Client {
    /// A client of `endpoints` whose every call takes at most `timeout`
    /// per endpoint; `credentials` (user, password) when etcd has auth on.
    pub(crate) fn new(
        endpoints: Vec<Endpoint>,
        timeout: Duration,
        credentials: Option<(String, String)>,
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
            skipped: Vec::new(),
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
    /// answer, or why none came. Authenticates first when needed, and
    /// again when the token has expired.
    fn call<T: DeserializeOwned>(&mut self, path: &str, body: &Value) -> Result<T, EtcdError> {
        if self.credentials.is_some() && self.token.is_none() {
            self.authenticate()?;
        }
        match self.call_once(path, body) {
            Err(EtcdError::Refused(e)) if self.credentials.is_some() && is_auth_error(&e) => {
                self.authenticate()?;
                self.call_once(path, body)
            }
            other => other,
        }
    }

    fn call_once<T: DeserializeOwned>(&mut self, path: &str, body: &Value) -> Result<T, EtcdError> {
        self.skipped.clear();
        for attempt in 0..self.endpoints.len() {
            let i = (self.current + attempt) % self.endpoints.len();
            let endpoint = self.endpoints[i].to_string();
            let url = format!("{}/v3/{path}", self.endpoints[i]);
            let mut request = self.agent.post(&url);
            if let Some(token) = &self.token {
                request = request.header("Authorization", token);
            }
            let mut response = match request.send_json(body) {
                Ok(r) => r,
                Err(e) => {
                    self.skipped.push((endpoint, e.to_string()));
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
                Err(e) => {
                    self.skipped.push((endpoint, e.to_string()));
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
                    self.skipped.push((endpoint, error.message));
                    continue;
                }
                self.current = i;
                return Err(EtcdError::Refused(error.message));
            }
            if !status.is_success() {
                self.skipped.push((endpoint, format!("HTTP {status}")));
                continue;
            }
            self.current = i;
            return serde_json::from_str(&text).map_err(|e| {
                EtcdError::Refused(format!(
                    "an answer that is not etcd's ({e}): is this an etcd v3.4+ client URL?"
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

    fn authenticate(&mut self) -> Result<(), EtcdError> {
        let Some((name, password)) = self.credentials.clone() else {
            return Ok(());
        };
        self.token = None;
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let token: Token = self
            .call_once(
                "auth/authenticate",
                &json!({ "name": name, "password": password }),
            )
            .map_err(|e| match e {
                EtcdError::Refused(m) => {
                    EtcdError::Refused(format!("cannot authenticate as `{name}`: {m}"))
                }
                other => other,
            })?;
        self.token = Some(token.token);
        Ok(())
    }

    /// A new lease of `ttl`.
    pub(crate) fn grant(&mut self, ttl: Duration) -> Result<LeaseId, EtcdError> {
        #[derive(Deserialize)]
        struct Granted {
            #[serde(rename = "ID")]
            id: Number,
        }
        let granted: Granted = self.call("lease/grant", &json!({ "TTL": ttl.as_secs().max(1) }))?;
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
        let answer: Stream = self.call("lease/keepalive", &json!({ "ID": lease.to_string() }))?;
        match answer.result.ttl {
            Some(Number(ttl)) if ttl > 0 => Ok(()),
            _ => Err(EtcdError::LeaseGone),
        }
    }

    /// Revokes `lease`: its keys go at once.
    pub(crate) fn revoke(&mut self, lease: LeaseId) -> Result<(), EtcdError> {
        match self.call::<Value>("lease/revoke", &json!({ "ID": lease.to_string() })) {
            Err(EtcdError::Refused(m)) if m.contains("lease not found") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Puts `key` = `value` under `lease`.
    pub(crate) fn put(&mut self, key: &str, value: &str, lease: LeaseId) -> Result<(), EtcdError> {
        let body = json!({ "key": b64(key), "value": b64(value), "lease": lease.to_string() });
        match self.call::<Value>("kv/put", &body) {
            Err(EtcdError::Refused(m)) if m.contains("lease not found") => {
                Err(EtcdError::LeaseGone)
            }
            other => other.map(drop),
        }
    }

    /// Deletes `key`.
    pub(crate) fn delete(&mut self, key: &str) -> Result<(), EtcdError> {
        self.call::<Value>("kv/deleterange", &json!({ "key": b64(key) }))
            .map(drop)
    }

    /// The keys under `prefix`, with their values, at most `limit` (and
    /// whether there were more).
    pub(crate) fn range(&mut self, prefix: &str, limit: usize) -> Result<(Kvs, bool), EtcdError> {
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
            more: bool,
        }
        let body = json!({
            "key": b64(prefix),
            "range_end": b64_bytes(&prefix_end(prefix.as_bytes())),
            "limit": limit.to_string(),
        });
        let range: Range = self.call("kv/range", &body)?;
        let decode = |s: &str| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| EtcdError::Refused(format!("a key or value that is not base64: {e}")))
        };
        let kvs = range
            .kvs
            .iter()
            .map(|kv| Ok((decode(&kv.key)?, decode(&kv.value)?)))
            .collect::<Result<_, EtcdError>>()?;
        Ok((kvs, range.more))
    }
}

/// Whether etcd's message says the token is missing or stale.
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
        let mut client = Client::new(endpoints, Duration::from_secs(2), None);
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
