//! Protocol v1, wire-compatible with django-udp-discovery 1.0.0: the
//! request is `message` byte for byte, the answer is
//! `response_prefix + <ip>` with `:<service_port>` when one is set.
//!
//! The built-in `classic` responder implements it, as a plugin like any
//! other.

use std::io::Write as _;
use std::net::IpAddr;

use discoveryd_api::{
    Action, BuildError, Registry, RegistryError, Request, Responder, ResponderContext,
};
use serde::Deserialize;

/// The name of the protocol v1 responder.
pub(crate) const CLASSIC: &str = "classic";

/// Registers the `classic` responder.
pub(crate) fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(CLASSIC, build_classic)
}

/// `classic` takes no options of its own: it follows the global `message`,
/// `response_prefix` and `service_port`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassicOptions {}

fn build_classic(ctx: &ResponderContext<'_>) -> Result<Box<dyn Responder>, BuildError> {
    let ClassicOptions {} = ctx.options()?;
    Ok(Box::new(Classic {
        message: ctx.globals.message.clone().into_bytes(),
        prefix: ctx.globals.response_prefix.clone().into_bytes(),
        service_port: ctx.globals.service_port,
    }))
}

/// The protocol v1 responder.
struct Classic {
    message: Vec<u8>,
    prefix: Vec<u8>,
    service_port: Option<u16>,
}

impl Responder for Classic {
    fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Action {
        if request.payload != self.message.as_slice() {
            return Action::Pass;
        }
        write_reply(
            reply,
            &self.prefix,
            request.advertised_ip,
            self.service_port,
        );
        Action::Reply
    }
}

/// Writes `prefix<ip>[:<port>]`. An IPv6 address is bracketed when a port
/// follows, so the answer stays unambiguous.
pub(crate) fn write_reply(out: &mut Vec<u8>, prefix: &[u8], ip: IpAddr, service_port: Option<u16>) {
    out.extend_from_slice(prefix);
    match ip {
        // The hot case, written by hand: `core::fmt` costs ~900
        // instructions here, this ~50 (measured with callgrind).
        IpAddr::V4(ip) => {
            let [a, b, c, d] = ip.octets();
            for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, octet.into());
            }
        }
        // Writing to a Vec cannot fail.
        IpAddr::V6(ip) if service_port.is_some() => drop(write!(out, "[{ip}]")),
        IpAddr::V6(ip) => drop(write!(out, "{ip}")),
    }
    if let Some(port) = service_port {
        out.push(b':');
        push_decimal(out, port);
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// A server's answer, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Announcement {
    /// The address the server advertises.
    pub ip: IpAddr,
    /// The service port, when the server sent one.
    pub service_port: Option<u16>,
}

/// Why an answer could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadReply {
    /// It does not start with the response prefix.
    #[error("wrong prefix")]
    Prefix,
    /// What follows the prefix is not an address.
    #[error("not an IP address")]
    Address,
    /// The port is not a number from 1 to 65535.
    #[error("bad port")]
    Port,
    /// Longer than any answer can be.
    #[error("oversize")]
    Oversize,
}

/// The longest answer a client accepts: the prefix, a bracketed IPv6
/// address and a port fit with room to spare.
pub(crate) const MAX_REPLY: usize = 512;

/// Parses `prefix<ip>[:<port>]` (or `prefix[<ipv6>]:<port>`), as
/// [`write_reply`] writes it.
pub(crate) fn parse_reply(prefix: &[u8], reply: &[u8]) -> Result<Announcement, BadReply> {
    if reply.len() > MAX_REPLY {
        return Err(BadReply::Oversize);
    }
    let rest = reply.strip_prefix(prefix).ok_or(BadReply::Prefix)?;
    let rest = std::str::from_utf8(rest).map_err(|_| BadReply::Address)?;
    if let Ok(ip) = rest.parse::<IpAddr>() {
        return Ok(Announcement {
            ip,
            service_port: None,
        });
    }
    let (host, port) = rest.rsplit_once(':').ok_or(BadReply::Address)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip = host.parse::<IpAddr>().map_err(|_| BadReply::Address)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or(BadReply::Port)?;
    Ok(Announcement {
        ip,
        service_port: Some(port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use discoveryd_api::Globals;

    fn classic(service_port: Option<u16>) -> Box<dyn Responder> {
        let globals = Globals::new("DISCOVER_SERVER", "SERVER_IP:", service_port);
        build_classic(&ResponderContext::new(
            CLASSIC,
            &toml::Table::new(),
            &globals,
        ))
        .unwrap()
    }

    fn ask(r: &dyn Responder, payload: &[u8], ip: &str) -> (Action, String) {
        let advertised_ip: IpAddr = ip.parse().unwrap();
        let request = Request::new(
            payload,
            "192.0.2.9:40000".parse().unwrap(),
            (advertised_ip, 9999).into(),
            advertised_ip,
        );
        let mut reply = Vec::new();
        let action = r.respond(&request, &mut reply);
        (action, String::from_utf8(reply).unwrap())
    }

    #[test]
    fn answers_the_exact_message_with_the_arrival_address() {
        let r = classic(None);
        assert_eq!(
            ask(r.as_ref(), b"DISCOVER_SERVER", "10.1.2.3"),
            (Action::Reply, "SERVER_IP:10.1.2.3".into())
        );
        let r = classic(Some(8080));
        assert_eq!(
            ask(r.as_ref(), b"DISCOVER_SERVER", "10.1.2.3"),
            (Action::Reply, "SERVER_IP:10.1.2.3:8080".into())
        );
        assert_eq!(
            ask(r.as_ref(), b"DISCOVER_SERVER", "fe80::1"),
            (Action::Reply, "SERVER_IP:[fe80::1]:8080".into())
        );
    }

    #[test]
    fn passes_anything_but_the_exact_message() {
        let r = classic(None);
        for junk in [
            &b""[..],
            b"DISCOVER_SERVE",
            b"DISCOVER_SERVER\n",
            b"discover_server",
            b"\xff\xfe",
        ] {
            assert_eq!(
                ask(r.as_ref(), junk, "10.0.0.1"),
                (Action::Pass, String::new()),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn rejects_options_it_does_not_have() {
        let mut options = toml::Table::new();
        options.insert("message".into(), "X".into());
        let globals = Globals::new("M", "P", None);
        let ctx = ResponderContext::new(CLASSIC, &options, &globals);
        let err = build_classic(&ctx).err().unwrap().to_string();
        assert!(err.contains("message"), "{err}");
    }
}

#[cfg(test)]
mod reply_tests {
    use super::*;

    #[test]
    fn writes_every_ipv4_octet_and_port_width() {
        for (ip, port, text) in [
            ([0, 0, 0, 0], Some(1), "P0.0.0.0:1"),
            ([9, 10, 99, 100], Some(65535), "P9.10.99.100:65535"),
            ([255, 254, 200, 1], None, "P255.254.200.1"),
        ] {
            let mut out = Vec::new();
            write_reply(&mut out, b"P", IpAddr::from(ip), port);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn parses_what_write_reply_writes() {
        for (ip, port) in [
            ("10.1.2.3", None),
            ("10.1.2.3", Some(8080)),
            ("fe80::1", None),
            ("fe80::1", Some(80)),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            write_reply(&mut out, b"SERVER_IP:", ip, port);
            assert_eq!(
                parse_reply(b"SERVER_IP:", &out),
                Ok(Announcement {
                    ip,
                    service_port: port
                })
            );
        }
    }

    #[test]
    fn rejects_malformed_replies_by_reason() {
        let bad = |r: &[u8]| parse_reply(b"SERVER_IP:", r).unwrap_err();
        assert_eq!(bad(b"SERVER_XX:10.0.0.1"), BadReply::Prefix);
        assert_eq!(bad(b"SERVER_IP:"), BadReply::Address);
        assert_eq!(bad(b"SERVER_IP:not-an-ip"), BadReply::Address);
        assert_eq!(bad(b"SERVER_IP:10.0.0.300"), BadReply::Address);
        assert_eq!(bad(b"SERVER_IP:10.0.0.1:"), BadReply::Port);
        assert_eq!(bad(b"SERVER_IP:10.0.0.1:0"), BadReply::Port);
        assert_eq!(bad(b"SERVER_IP:10.0.0.1:65536"), BadReply::Port);
        assert_eq!(bad(b"SERVER_IP:\xff"), BadReply::Address);
        assert_eq!(bad(&[b'S'; MAX_REPLY + 1]), BadReply::Oversize);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use discoveryd_api::Globals;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_reply_parses_back(ip in any::<IpAddr>(), port in proptest::option::of(1u16..)) {
            let mut out = Vec::new();
            write_reply(&mut out, b"SERVER_IP:", ip, port);
            prop_assert_eq!(parse_reply(b"SERVER_IP:", &out), Ok(Announcement { ip, service_port: port }));
        }

        #[test]
        fn the_classic_matcher_answers_exactly_its_message(
            message in "[ -~]{1,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let globals = Globals::new(message.clone(), "SERVER_IP:", None);
            let classic = build_classic(&ResponderContext::new(CLASSIC, &toml::Table::new(), &globals)).unwrap();
            let ask = |payload: &[u8]| {
                let request = Request::new(payload, "192.0.2.9:40000".parse().unwrap(), "192.0.2.1:9999".parse().unwrap(), "192.0.2.1".parse().unwrap());
                classic.respond(&request, &mut Vec::new())
            };
            let expected = if payload == message.as_bytes() { Action::Reply } else { Action::Pass };
            prop_assert_eq!(ask(&payload), expected);
            prop_assert_eq!(ask(message.as_bytes()), Action::Reply);
        }
    }
}
