//! Sockets and addresses: binding with classified errors, batched datagram
//! I/O that knows the local arrival address, and who holds a busy port.

mod batch;
mod delayed;
pub(crate) mod holder;
mod socket;

pub(crate) use batch::{Batch, Datagram, Sent};
pub(crate) use delayed::Delayed;
pub(crate) use holder::port_holder;
pub use holder::ProcessInfo;
pub(crate) use socket::{
    bind_group, bind_udp, retire, set_recv_buffer, steer, wake, Beside, BindError, BindErrorKind,
    Sockets,
};

/// The subnets of this host's interfaces that are up: who is on-link.
/// Listing them needs a netlink socket (`AF_NETLINK`).
pub(crate) fn local_subnets() -> std::io::Result<Vec<ipnet::IpNet>> {
    Ok(local_addresses()?.into_iter().map(|n| n.trunc()).collect())
}

/// The addresses of the interfaces that are up, with their prefixes.
fn local_addresses() -> std::io::Result<Vec<ipnet::IpNet>> {
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
            net.ok()
        })
        .collect())
}

/// This host's addresses as other hosts reach it: every address of an
/// interface that is up, but loopback and link-local IPv6 (which needs a
/// zone), sorted; empty when the interfaces cannot be listed.
pub(crate) fn host_addresses() -> Vec<std::net::IpAddr> {
    let mut out: Vec<std::net::IpAddr> = local_addresses()
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.addr())
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
            std::net::IpAddr::V6(v6) => {
                !v6.is_loopback() && !v6.is_unicast_link_local() && !v6.is_unspecified()
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What a refresh of the subnet table is worth telling.
#[derive(Debug)]
pub(crate) enum SubnetNews {
    /// The interfaces cannot be listed (first failure since the last success).
    Failed(std::io::Error),
    /// They can be listed again.
    Recovered,
}

/// Keeps the directly connected subnets current. A failed listing keeps
/// the last good table (refusing every client would be worse) and is news
/// once, until a listing works again.
#[derive(Debug, Default)]
pub(crate) struct SubnetWatch {
    failing: bool,
}

impl SubnetWatch {
    /// Applies one listing to `table`; returns what to tell, if anything.
    pub(crate) fn update(
        &mut self,
        listing: std::io::Result<Vec<ipnet::IpNet>>,
        table: &arc_swap::ArcSwap<Vec<ipnet::IpNet>>,
    ) -> Option<SubnetNews> {
        match listing {
            Ok(subnets) => {
                table.store(std::sync::Arc::new(subnets));
                std::mem::take(&mut self.failing).then_some(SubnetNews::Recovered)
            }
            Err(e) if !self.failing => {
                self.failing = true;
                Some(SubnetNews::Failed(e))
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_listing_keeps_the_last_table_and_is_told_once() {
        let net = |s: &str| vec![s.parse::<ipnet::IpNet>().unwrap()];
        let table = arc_swap::ArcSwap::from_pointee(Vec::new());
        let mut watch = SubnetWatch::default();
        assert!(watch.update(Ok(net("192.0.2.0/24")), &table).is_none());
        let failure = || Err(std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        assert!(matches!(
            watch.update(failure(), &table),
            Some(SubnetNews::Failed(_))
        ));
        assert!(watch.update(failure(), &table).is_none(), "told once");
        assert_eq!(
            **table.load(),
            net("192.0.2.0/24"),
            "the last good table stays"
        );
        assert!(matches!(
            watch.update(Ok(net("198.51.100.0/24")), &table),
            Some(SubnetNews::Recovered)
        ));
        assert_eq!(**table.load(), net("198.51.100.0/24"));
    }
}
