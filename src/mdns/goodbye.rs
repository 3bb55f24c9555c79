//! A goodbye for an address that left an interface. mdns-sd re-announces
//! the addresses that remain, with the cache-flush bit (RFC 6762 §10.2),
//! but sends no goodbye for the one removed; this does (TTL 0, §10.1), so a
//! browser drops it at once. It goes only to the link the address was on
//! (another link must not learn it), from port 5353 (receivers ignore
//! responses from any other) and another address of that interface, by a
//! socket that lives for this one datagram.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use nix::net::if_::if_nametoindex;

use super::links::{bound_beside, MDNS_PORT};

const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);

/// Sends the goodbye for `host`'s address `gone` on `interface`, from its
/// address `from`.
pub(crate) fn send(host: &str, gone: IpAddr, interface: &str, from: IpAddr) -> io::Result<()> {
    let packet = packet(host, gone)?;
    let socket = bound_beside(from, interface)?;
    let to = match from {
        IpAddr::V4(v4) => {
            socket.set_multicast_if_v4(&v4)?;
            socket.set_multicast_ttl_v4(255)?;
            socket.set_multicast_loop_v4(false)?;
            SocketAddr::new(GROUP_V4.into(), MDNS_PORT)
        }
        IpAddr::V6(_) => {
            let index = if_nametoindex(interface).map_err(io::Error::from)?;
            socket.set_multicast_if_v6(index)?;
            socket.set_multicast_hops_v6(255)?;
            socket.set_multicast_loop_v6(false)?;
            SocketAddrV6::new(GROUP_V6, MDNS_PORT, 0, index).into()
        }
    };
    socket.send_to(&packet, &to.into())?;
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
