//! Sockets and addresses: binding with classified errors, batched datagram
//! I/O that knows the local arrival address, and who holds a busy port.

mod batch;
pub(crate) mod holder;
mod socket;

pub(crate) use batch::{Batch, Datagram};
pub(crate) use holder::port_holder;
pub use holder::ProcessInfo;
pub(crate) use socket::{
    bind_group, bind_udp, retire, set_recv_buffer, steer, wake, Beside, BindError, BindErrorKind,
};

/// The subnets of this host's interfaces that are up: who is on-link.
/// Listing them needs a netlink socket (`AF_NETLINK`).
pub(crate) fn local_subnets() -> std::io::Result<Vec<ipnet::IpNet>> {
    let interfaces = nix::ifaddrs::getifaddrs()?;
    Ok(interfaces
        .filter(|i| i.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP))
        .filter_map(|i| {
            let (addr, mask) = (i.address?, i.netmask?);
            let net = match (
                addr.as_sockaddr_in(),
                mask.as_sockaddr_in(),
                addr.as_sockaddr_in6(),
                mask.as_sockaddr_in6(),
            ) {
                (Some(a), Some(m), _, _) => {
                    ipnet::IpNet::with_netmask(a.ip().into(), m.ip().into())
                }
                (_, _, Some(a), Some(m)) => {
                    ipnet::IpNet::with_netmask(a.ip().into(), m.ip().into())
                }
                _ => return None,
            };
            net.ok().map(|n| n.trunc())
        })
        .collect())
}
