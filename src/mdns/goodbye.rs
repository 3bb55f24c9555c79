//! A goodbye for an address that left an interface. mdns-sd re-announces
//! the addresses that remain, with the cache-flush bit (RFC 6762 §10.2),
//! but sends no goodbye for the one removed; this does (TTL 0, §10.1), so a
//! browser drops it at once. Sent from port 5353 (receivers ignore
//! responses from any other) on each interface in the selection, from one
//! of its own addresses, by a socket that lives for this one datagram.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::{if_nametoindex, InterfaceFlags};
use socket2::{Domain, Protocol, Socket, Type};

use super::announcer::Selection;

const MDNS_PORT: u16 = 5353;
const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);

/// Sends the goodbye for `host`'s address `gone` on every interface of
/// `selection` that has an address of its family; returns how many.
pub(crate) fn send(host: &str, gone: IpAddr, selection: &Selection) -> io::Result<usize> {
    let packet = packet(host, gone)?;
    let mut sent = 0;
    let mut last_error = None;
    for (name, from) in sources(gone, selection)? {
        match send_from(&packet, &name, from) {
            Ok(()) => sent += 1,
            Err(e) => last_error = Some(e),
        }
    }
    match (sent, last_error) {
        (0, Some(e)) => Err(e),
        _ => Ok(sent),
    }
}

/// One address of each selected, up, multicast interface, of `gone`'s family.
fn sources(gone: IpAddr, selection: &Selection) -> io::Result<Vec<(String, IpAddr)>> {
    let mut out: Vec<(String, IpAddr)> = Vec::new();
    for ifa in getifaddrs().map_err(io::Error::from)? {
        let flags = ifa.flags;
        if !flags.contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_MULTICAST)
            || !selection.allows(
                &ifa.interface_name,
                flags.contains(InterfaceFlags::IFF_LOOPBACK),
            )
            || out.iter().any(|(name, _)| *name == ifa.interface_name)
        {
            continue;
        }
        let ip = ifa.address.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        });
        if let Some(ip) = ip.filter(|ip| ip.is_ipv4() == gone.is_ipv4() && *ip != gone) {
            out.push((ifa.interface_name, ip));
        }
    }
    Ok(out)
}

fn send_from(packet: &[u8], interface: &str, from: IpAddr) -> io::Result<()> {
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(from, 0)),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    // Beside mdns-sd's own sockets on port 5353.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    let to = match from {
        IpAddr::V4(v4) => {
            socket.set_multicast_if_v4(&v4)?;
            socket.set_multicast_ttl_v4(255)?;
            socket.set_multicast_loop_v4(false)?;
            socket.bind(&SocketAddr::new(from, MDNS_PORT).into())?;
            SocketAddr::new(GROUP_V4.into(), MDNS_PORT)
        }
        IpAddr::V6(v6) => {
            let index = if_nametoindex(interface).map_err(io::Error::from)?;
            socket.set_multicast_if_v6(index)?;
            socket.set_multicast_hops_v6(255)?;
            socket.set_multicast_loop_v6(false)?;
            let scope = if v6.is_unicast_link_local() { index } else { 0 };
            socket.bind(&SocketAddrV6::new(v6, MDNS_PORT, 0, scope).into())?;
            SocketAddrV6::new(GROUP_V6, MDNS_PORT, 0, index).into()
        }
    };
    socket.send_to(packet, &to.into())?;
    Ok(())
}

/// A response with one record: `host` A (or AAAA) `gone`, TTL 0, with the
/// cache-flush bit (an address record is unique to its host).
fn packet(host: &str, gone: IpAddr) -> io::Result<Vec<u8>> {
    let mut p = Vec::with_capacity(64);
    // ID 0; QR and AA; no question, one answer.
    p.extend_from_slice(&[0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    for label in host.split('.').filter(|l| !l.is_empty()) {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|&n| n <= 63)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a host name label over 63 bytes",
                )
            })?;
        p.push(len);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    let (rtype, rdata): (u16, Vec<u8>) = match gone {
        IpAddr::V4(v4) => (1, v4.octets().to_vec()),
        IpAddr::V6(v6) => (28, v6.octets().to_vec()),
    };
    p.extend_from_slice(&rtype.to_be_bytes());
    p.extend_from_slice(&0x8001u16.to_be_bytes()); // cache-flush | IN
    p.extend_from_slice(&0u32.to_be_bytes()); // TTL 0: goodbye
    p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    p.extend_from_slice(&rdata);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_goodbye_is_one_ttl_0_address_record() {
        let p = packet("vm-2.local.", "192.0.2.5".parse().unwrap()).unwrap();
        assert_eq!(&p[..12], &[0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&p[12..24], b"\x04vm-2\x05local\x00");
        assert_eq!(&p[24..], &[0, 1, 0x80, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 5]);
        let v6 = packet("h.local", "fe80::1".parse().unwrap()).unwrap();
        assert_eq!(&v6[21..23], &[0, 28], "AAAA");
        assert_eq!(v6.len(), 12 + 9 + 10 + 16);
        assert!(packet(&"x".repeat(64), "192.0.2.5".parse().unwrap()).is_err());
    }
}
