//! Protocol v1, wire-compatible with django-udp-discovery 1.0.0: the
//! request is `message` byte for byte, the answer is
//! `response_prefix + <ip>` with `:<service_port>` when one is set.
//!
//! The built-in `classic` responder implements it, as a plugin like any
//! other.

use std::io::Write as _;
use std::net::IpAddr;

use discoveryd_api::{Action, BuildError, Registry, Request, Responder, ResponderContext};
use serde::Deserialize;

/// The name of the protocol v1 responder.
pub const CLASSIC: &str = "classic";

/// Registers the `classic` responder.
pub(crate) fn register(registry: &mut Registry) {
    registry.register(CLASSIC, build_classic);
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
pub fn write_reply(out: &mut Vec<u8>, prefix: &[u8], ip: IpAddr, service_port: Option<u16>) {
    out.extend_from_slice(prefix);
    // Writing to a Vec cannot fail.
    let _ = match (ip, service_port) {
        (ip, None) => write!(out, "{ip}"),
        (IpAddr::V4(ip), Some(port)) => write!(out, "{ip}:{port}"),
        (IpAddr::V6(ip), Some(port)) => write!(out, "[{ip}]:{port}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use discoveryd_api::Globals;

    fn classic(service_port: Option<u16>) -> Box<dyn Responder> {
        let globals = Globals {
            message: "DISCOVER_SERVER".into(),
            response_prefix: "SERVER_IP:".into(),
            service_port,
        };
        build_classic(&ResponderContext {
            name: CLASSIC,
            options: &toml::Table::new(),
            globals: &globals,
        })
        .unwrap()
    }

    fn ask(r: &dyn Responder, payload: &[u8], ip: &str) -> (Action, String) {
        let advertised_ip: IpAddr = ip.parse().unwrap();
        let request = Request {
            payload,
            peer: "192.0.2.9:40000".parse().unwrap(),
            local: (advertised_ip, 9999).into(),
            advertised_ip,
        };
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
        let globals = Globals {
            message: "M".into(),
            response_prefix: "P".into(),
            service_port: None,
        };
        let ctx = ResponderContext {
            name: CLASSIC,
            options: &options,
            globals: &globals,
        };
        let err = build_classic(&ctx).err().unwrap().to_string();
        assert!(err.contains("message"), "{err}");
    }
}
