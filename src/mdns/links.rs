//! The addresses of the interfaces mDNS runs on, kept by the daemon's event
//! thread: where an address that goes away was (its goodbye goes to that
//! link only), and a guard on each.
//!
//! The guard is a socket bound to that address and port 5353, which is
//! never read: a unicast datagram to the address lands there (a bound
//! address outranks mdns-sd's wildcard socket) and is dropped, so mdns-sd
//! only hears what is sent to the mDNS group, which never crosses a router.
//! Without it, anyone who could reach port 5353 could have a query answered
//! to a forged source, on any port: a reflector (RFC 6762 §11 says to
//! ignore queries from off the link).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::{if_nametoindex, InterfaceFlags};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::warn;

use super::announcer::Selection;

pub(crate) const MDNS_PORT: u16 = 5353;

/// The smallest receive buffer the kernel grants: the guard holds nothing.
const GUARD_BUFFER: usize = 1;

struct Link {
    interface: String,
    _guard: Option<Socket>,
}

/// The selected interfaces' addresses, each with its guard.
pub(crate) struct Links {
    selection: Selection,
    addrs: BTreeMap<IpAddr, Link>,
}

impl Links {
    /// The addresses `selection` covers now.
    pub(crate) fn new(selection: Selection) -> Self {
        let mut links = Self {
            selection,
            addrs: BTreeMap::new(),
        };
        links.refresh();
        links
    }

    /// Looks at the interfaces again: guards new addresses, forgets gone
    /// ones.
    pub(crate) fn refresh(&mut self) {
        let now = match addresses(&self.selection) {
            Ok(now) => now,
            Err(e) => return warn!(error = %e, "mDNS: cannot list the interfaces"),
        };
        self.addrs.retain(|ip, _| now.iter().any(|(_, a)| a == ip));
        for (interface, ip) in now {
            self.addrs.entry(ip).or_insert_with(|| Link {
                _guard: guard(ip, &interface)
                    .map_err(|e| warn!(%ip, error = %e, "mDNS: cannot guard the address against unicast queries"))
                    .ok(),
                interface,
            });
        }
    }

    /// The interface `ip` is (or was, before the last refresh) on.
    pub(crate) fn interface_of(&self, ip: IpAddr) -> Option<String> {
        self.addrs.get(&ip).map(|l| l.interface.clone())
    }

    /// Another address of `interface`, of `ip`'s family.
    pub(crate) fn other_address(&self, interface: &str, ip: IpAddr) -> Option<IpAddr> {
        self.addrs
            .iter()
            .find(|(a, l)| l.interface == interface && **a != ip && a.is_ipv4() == ip.is_ipv4())
            .map(|(a, _)| *a)
    }

    /// The interfaces in use, by name.
    pub(crate) fn interfaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.addrs.values().map(|l| l.interface.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Every address of the selected interfaces that are up and multicast.
fn addresses(selection: &Selection) -> io::Result<Vec<(String, IpAddr)>> {
    let mut out = Vec::new();
    for ifa in getifaddrs().map_err(io::Error::from)? {
        let flags = ifa.flags;
        if !flags.contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_MULTICAST)
            || !selection.allows(
                &ifa.interface_name,
                flags.contains(InterfaceFlags::IFF_LOOPBACK),
            )
        {
            continue;
        }
        let ip = ifa.address.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        });
        if let Some(ip) = ip {
            out.push((ifa.interface_name, ip));
        }
    }
    Ok(out)
}

/// A socket on `ip`:5353 beside mdns-sd's (SO_REUSEADDR, SO_REUSEPORT).
pub(crate) fn bound_beside(ip: IpAddr, interface: &str) -> io::Result<Socket> {
    let addr = match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            let index = if_nametoindex(interface).map_err(io::Error::from)?;
            SocketAddr::V6(SocketAddrV6::new(v6, MDNS_PORT, 0, index))
        }
        ip => SocketAddr::new(ip, MDNS_PORT),
    };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn guard(ip: IpAddr, interface: &str) -> io::Result<Socket> {
    let socket = bound_beside(ip, interface)?;
    socket.set_recv_buffer_size(GUARD_BUFFER)?;
    Ok(socket)
}

/// Binds 0.0.0.0:5353 as mdns-sd does (SO_REUSEADDR and SO_REUSEPORT),
/// then closes it: mdns-sd only logs a failure to bind, in its own thread.
pub(crate) fn probe_port() -> io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::from(([0, 0, 0, 0], MDNS_PORT)).into())
}
