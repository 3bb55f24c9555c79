//! The defences: what a datagram must pass before anything answers it, and
//! what an answer must pass before it leaves. Each has a threat it answers
//! (README, "Security"), a config key under `[security]`, and a counter.
//!
//! Everything here runs per datagram on the receive loop's thread: no lock,
//! no allocation. The rate limiter's source table is per worker, bounded,
//! and allocated when the loop starts.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Why a datagram got no answer (besides "no responder wanted it").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Empty datagram.
    Empty,
    /// Longer than `buffer_size`.
    Oversize,
    /// Source port 0: no reply can reach it.
    SourcePortZero,
    /// A well-known reflector port (a spoofed victim's service).
    ReflectorPort,
    /// Our own port: another responder, or ourselves, looping.
    OwnPort,
    /// A multicast, broadcast or unspecified source address.
    SourceAddress,
    /// Starts with a response prefix: another responder's answer.
    Loop,
    /// Outside `allow`, or inside `deny`.
    Denied,
    /// Not on a directly connected subnet (`on_link_only`).
    OffLink,
    /// Over the per-source rate.
    RateLimited,
    /// Over the global rate.
    GlobalRate,
    /// The reply would be more than `max_amplification` times the request.
    Amplification,
}

impl Refusal {
    /// Every reason, in counter order.
    pub(crate) const ALL: [Refusal; 12] = [
        Refusal::Empty,
        Refusal::Oversize,
        Refusal::SourcePortZero,
        Refusal::ReflectorPort,
        Refusal::OwnPort,
        Refusal::SourceAddress,
        Refusal::Loop,
        Refusal::Denied,
        Refusal::OffLink,
        Refusal::RateLimited,
        Refusal::GlobalRate,
        Refusal::Amplification,
    ];

    /// The counter's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Refusal::Empty => "empty",
            Refusal::Oversize => "oversize",
            Refusal::SourcePortZero => "source_port_zero",
            Refusal::ReflectorPort => "reflector_port",
            Refusal::OwnPort => "own_port",
            Refusal::SourceAddress => "source_address",
            Refusal::Loop => "loop",
            Refusal::Denied => "denied",
            Refusal::OffLink => "off_link",
            Refusal::RateLimited => "rate_limited",
            Refusal::GlobalRate => "global_rate",
            Refusal::Amplification => "amplification",
        }
    }

    /// The counter's index.
    pub(crate) fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every reason is listed")
    }
}

/// The `[security]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// Source ports never answered: reflector services a spoofed request
    /// would turn us against.
    pub refused_source_ports: Vec<u16>,
    /// A reply may be at most this many times the request's size.
    #[serde(deserialize_with = "de_number")]
    pub max_amplification: f64,
    /// If not empty, only sources in these networks are answered.
    pub allow: Vec<IpNet>,
    /// Sources in these networks are never answered.
    pub deny: Vec<IpNet>,
    /// Answer only sources on a directly connected subnet, or loopback.
    pub on_link_only: bool,
    /// Sources the rate limits do not apply to.
    pub rate_limit_exempt: Vec<IpNet>,
    /// The rate limits.
    pub rate_limit: RateLimit,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            refused_source_ports: vec![
                7, 9, 13, 17, 19, 37, 53, 123, 161, 389, 1900, 3702, 5353, 11211,
            ],
            max_amplification: 3.0,
            allow: Vec::new(),
            deny: Vec::new(),
            on_link_only: true,
            rate_limit_exempt: vec![
                "127.0.0.0/8".parse().expect("literal"),
                "::1/128".parse().expect("literal"),
            ],
            rate_limit: RateLimit::default(),
        }
    }
}

/// `[security.rate_limit]`: token buckets. Each worker keeps its own
/// buckets and its share of `global`, so no lock is taken per datagram. On a
/// real interface, receive-side scaling keeps a flow on one CPU, hence one
/// worker; a source that reaches several workers gets up to `workers`
/// times `per_source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Replies per second to one source address (IPv6: one /64).
    #[serde(deserialize_with = "de_number")]
    pub per_source: f64,
    /// Replies one source may get at once.
    #[serde(deserialize_with = "de_number")]
    pub burst: f64,
    /// Replies per second in all, across every source not exempt.
    #[serde(deserialize_with = "de_number")]
    pub global: f64,
    /// Sources tracked at most, in two generations: a source not seen for a
    /// whole generation is forgotten (an approximation of LRU).
    pub sources: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_source: 20.0,
            burst: 40.0,
            global: 10_000.0,
            sources: 65_536,
        }
    }
}

/// A number as users write it: TOML's integers and floats, and text such
/// as `1e3` (environment variables reach us as text).
fn de_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number, such as 3.0 or 1e3")
        }
        fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
            v.trim().parse().map_err(|_| {
                E::custom(format!(
                    "`{v}` is not a number; write one such as 3.0 or 1e3"
                ))
            })
        }
    }
    d.deserialize_any(Visitor)
}

impl Security {
    /// True when `max_amplification` is a usable cap (checks that depend
    /// on it are skipped otherwise, so they say nothing nonsensical).
    pub(crate) fn max_amplification_ok(&self) -> bool {
        self.max_amplification.is_finite() && self.max_amplification >= 1.0
    }

    /// Problems, as `(key, reason)` pairs under `security.`.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let r = &self.rate_limit;
        let mut check = |ok: bool, key: &str, reason: &str| {
            if !ok {
                out.push((format!("security.{key}"), reason.to_owned()));
            }
        };
        check(
            self.max_amplification_ok(),
            "max_amplification",
            "must be a number of at least 1.0 (not nan or inf); the default is 3.0",
        );
        check(
            r.per_source.is_finite() && r.per_source > 0.0,
            "rate_limit.per_source",
            "must be a number above 0 (not nan or inf); the default is 20 replies/s",
        );
        check(
            r.burst.is_finite() && r.burst >= 1.0,
            "rate_limit.burst",
            "must be a number of at least 1 (not nan or inf); the default is 40",
        );
        check(
            r.global.is_finite() && r.global > 0.0,
            "rate_limit.global",
            "must be a number above 0 (not nan or inf); the default is 10000 replies/s",
        );
        check(
            (16..=MAX_SOURCES).contains(&r.sources),
            "rate_limit.sources",
            "use 16 to 1048576 (about 100 bytes of memory each); the default is 65536",
        );
        out
    }
}

/// The most sources the rate limiter may track, over all workers.
const MAX_SOURCES: usize = 1 << 20;

/// The compiled defences of one configuration.
#[derive(Debug)]
pub(crate) struct Policy {
    refused_ports: Box<[u64; 1024]>,
    loop_prefix: Vec<u8>,
    max_amplification: f64,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    on_link_only: bool,
    exempt: Vec<IpNet>,
    pub(crate) rate: RateLimit,
}

impl Policy {
    /// Compiles `security`; `response_prefix` is what loops look like.
    pub(crate) fn new(security: &Security, response_prefix: &str) -> Self {
        let mut refused_ports = Box::new([0u64; 1024]);
        for &port in &security.refused_source_ports {
            refused_ports[usize::from(port) / 64] |= 1 << (port % 64);
        }
        Self {
            refused_ports,
            loop_prefix: response_prefix.as_bytes().to_vec(),
            max_amplification: security.max_amplification,
            allow: security.allow.clone(),
            deny: security.deny.clone(),
            on_link_only: security.on_link_only,
            exempt: security.rate_limit_exempt.clone(),
            rate: security.rate_limit.clone(),
        }
    }

    /// Checks a request before any responder sees it. `Ok(true)` when the
    /// source is exempt from the rate limits.
    pub(crate) fn admit(
        &self,
        peer: SocketAddr,
        own_port: u16,
        payload: &[u8],
        on_link: &[IpNet],
    ) -> Result<bool, Refusal> {
        let (ip, port) = (canonical(peer.ip()), peer.port());
        if port == 0 {
            return Err(Refusal::SourcePortZero);
        }
        if self.refused_ports[usize::from(port) / 64] & (1 << (port % 64)) != 0 {
            return Err(Refusal::ReflectorPort);
        }
        if port == own_port {
            return Err(Refusal::OwnPort);
        }
        let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_multicast() || ip.is_unspecified() || broadcast {
            return Err(Refusal::SourceAddress);
        }
        if self.deny.iter().any(|n| n.contains(&ip))
            || (!self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&ip)))
        {
            return Err(Refusal::Denied);
        }
        if on_link.iter().any(|n| is_broadcast_of(n, ip)) {
            return Err(Refusal::SourceAddress);
        }
        if self.on_link_only && !ip.is_loopback() && !on_link.iter().any(|n| n.contains(&ip)) {
            return Err(Refusal::OffLink);
        }
        if !self.loop_prefix.is_empty() && payload.starts_with(&self.loop_prefix) {
            return Err(Refusal::Loop);
        }
        Ok(self.exempt.iter().any(|n| n.contains(&ip)))
    }

    /// Checks an answer's size against its request's, as they go on the
    /// wire: with their IP and UDP headers, as bandwidth amplification is
    /// judged. `ipv6` is the peer's family.
    pub(crate) fn reply_fits(&self, request: usize, reply: usize, ipv6: bool) -> bool {
        fits(request, reply, ipv6, self.max_amplification)
    }

    /// The longest answer [`Policy::reply_fits`] lets through for a
    /// `request` of that many bytes (at most one datagram), which
    /// responders size their answers to.
    pub(crate) fn max_reply(&self, request: usize, ipv6: bool) -> usize {
        let h = wire_overhead(ipv6);
        let wire = ((request + h) as f64 * self.max_amplification).floor();
        (wire as usize)
            .saturating_sub(h)
            .min(crate::config::MAX_DATAGRAM)
    }
}

/// The IP and UDP headers in front of every datagram: 20 + 8 bytes over
/// IPv4, 40 + 8 over IPv6.
pub(crate) const fn wire_overhead(ipv6: bool) -> usize {
    if ipv6 {
        48
    } else {
        28
    }
}

/// Whether a `reply` of that many payload bytes, answering a `request`,
/// stays within `cap` times the request on the wire.
pub(crate) fn fits(request: usize, reply: usize, ipv6: bool, cap: f64) -> bool {
    let h = wire_overhead(ipv6);
    (reply + h) as f64 <= (request + h) as f64 * cap
}

/// True when `ip` is the broadcast address of the IPv4 subnet `net` (a
/// /31 or /32 has none: RFC 3021).
fn is_broadcast_of(net: &IpNet, ip: IpAddr) -> bool {
    matches!((net, ip), (IpNet::V4(n), IpAddr::V4(v4)) if n.prefix_len() < 31 && n.broadcast() == v4)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

mod limiter;

pub(crate) use limiter::Limiter;

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(&Security::default(), "SERVER_IP:")
    }

    fn admit(p: &Policy, peer: &str, payload: &[u8]) -> Result<bool, Refusal> {
        let on_link: Vec<IpNet> = vec![
            "192.168.1.0/24".parse().unwrap(),
            "fe80::/64".parse().unwrap(),
        ];
        p.admit(peer.parse().unwrap(), 9999, payload, &on_link)
    }

    #[test]
    fn refuses_spoofable_and_looping_sources_by_reason() {
        let p = policy();
        assert_eq!(
            admit(&p, "192.168.1.5:40000", b"DISCOVER_SERVER"),
            Ok(false)
        );
        assert_eq!(admit(&p, "127.0.0.1:40000", b"DISCOVER_SERVER"), Ok(true));
        assert_eq!(
            admit(&p, "192.168.1.5:0", b"x"),
            Err(Refusal::SourcePortZero)
        );
        for port in [7, 19, 53, 123, 1900, 5353, 11211] {
            assert_eq!(
                admit(&p, &format!("192.168.1.5:{port}"), b"x"),
                Err(Refusal::ReflectorPort),
                "{port}"
            );
        }
        assert_eq!(admit(&p, "192.168.1.5:9999", b"x"), Err(Refusal::OwnPort));
        assert_eq!(
            admit(&p, "255.255.255.255:4000", b"x"),
            Err(Refusal::SourceAddress)
        );
        assert_eq!(
            admit(&p, "224.0.0.251:4000", b"x"),
            Err(Refusal::SourceAddress)
        );
        assert_eq!(admit(&p, "0.0.0.0:4000", b"x"), Err(Refusal::SourceAddress));
        assert_eq!(
            admit(&p, "192.168.1.255:4000", b"x"),
            Err(Refusal::SourceAddress),
            "an on-link subnet's broadcast address"
        );
        assert_eq!(
            admit(&p, "192.168.1.5:4000", b"SERVER_IP:1.2.3.4"),
            Err(Refusal::Loop)
        );
        assert_eq!(
            admit(&p, "10.9.9.9:4000", b"DISCOVER_SERVER"),
            Err(Refusal::OffLink)
        );
        assert_eq!(admit(&p, "[fe80::7]:4000", b"DISCOVER_SERVER"), Ok(false));
        assert_eq!(
            admit(&p, "[::ffff:10.9.9.9]:4000", b"DISCOVER_SERVER"),
            Err(Refusal::OffLink)
        );
    }

    #[test]
    fn allow_and_deny_lists_apply() {
        let security = Security {
            allow: vec!["192.168.1.0/25".parse().unwrap()],
            deny: vec!["192.168.1.66/32".parse().unwrap()],
            on_link_only: false,
            ..Security::default()
        };
        let p = Policy::new(&security, "SERVER_IP:");
        assert_eq!(admit(&p, "192.168.1.5:4000", b"M"), Ok(false));
        assert_eq!(admit(&p, "192.168.1.66:4000", b"M"), Err(Refusal::Denied));
        assert_eq!(admit(&p, "192.168.1.200:4000", b"M"), Err(Refusal::Denied));
        let open = Policy::new(
            &Security {
                on_link_only: false,
                ..Security::default()
            },
            "SERVER_IP:",
        );
        assert_eq!(admit(&open, "10.9.9.9:4000", b"M"), Ok(false));
    }

    #[test]
    fn the_cap_counts_the_headers_on_the_wire() {
        let p = policy();
        // The longest classic answers with the default prefix, to a 1-byte
        // request: 59 bytes on the wire against 29 (IPv4), 105 against 49
        // (IPv6, bracketed address and port).
        let longest_v4 = "SERVER_IP:255.255.255.255:65535".len();
        let longest_v6 = "SERVER_IP:[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".len();
        assert!(p.reply_fits(1, longest_v4, false));
        assert!(p.reply_fits(1, longest_v6, true));
        // 3x on the wire, exactly: (n + 28) <= 3 * (10 + 28).
        assert!(p.reply_fits(10, 86, false));
        assert!(!p.reply_fits(10, 87, false));
        assert!(p.reply_fits(10, 126, true));
        assert!(!p.reply_fits(10, 127, true));
        // max_reply is the longest answer reply_fits takes.
        for (request, ipv6) in [
            (1, false),
            (10, false),
            (10, true),
            (1024, false),
            (40_000, true),
        ] {
            let max = p.max_reply(request, ipv6);
            assert!(p.reply_fits(request, max, ipv6) || max == 65_507);
            assert!(!p.reply_fits(request, max + 1, ipv6) || max == 65_507);
        }
        assert_eq!(p.max_reply(10, false), 86);
        assert_eq!(p.max_reply(40_000, false), 65_507);
    }
}
