//! Binding UDP sockets the way discoveryd needs them: arrival-address
//! reporting on, IPv6 sockets IPv6-only, and never `SO_REUSEADDR` or
//! `SO_REUSEPORT`, so a second instance gets a conflict instead of a silent
//! share of the port.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{getsockopt, setsockopt, shutdown, sockopt, Shutdown};
use socket2::{Domain, Protocol, Socket, Type};

/// Why a bind failed, as far as supervision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindErrorKind {
    /// Another socket holds the port (`EADDRINUSE`): retry after cleanup.
    InUse,
    /// The address is not (yet) on this host (`EADDRNOTAVAIL`): retry.
    NotAvailable,
    /// Not allowed, such as a port below 1024 without the capability: fatal.
    PermissionDenied,
    /// Anything else: fatal.
    Other,
}

/// A failed bind, with the address it was for.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {addr}/udp: {source}")]
pub(crate) struct BindError {
    /// The address we tried to bind.
    pub addr: SocketAddr,
    /// The classification.
    pub kind: BindErrorKind,
    /// What the OS said.
    pub source: io::Error,
}

/// Binds `workers` sockets to `addr`, each for its own receive loop. With
/// more than one they share the port through `SO_REUSEPORT`, but only
/// among themselves: a plain bind first proves the port free (and resolves
/// port 0), and afterwards the kernel's socket table must hold no stranger
/// in the group.
pub(crate) fn bind_group(addr: SocketAddr, workers: usize) -> Result<Vec<UdpSocket>, BindError> {
    if workers <= 1 {
        return Ok(vec![bind_udp(addr)?]);
    }
    let probe = bind_udp(addr)?;
    let port = probe
        .local_addr()
        .map_err(|source| BindError {
            addr,
            kind: BindErrorKind::Other,
            source,
        })?
        .port();
    drop(probe);
    let addr = SocketAddr::new(addr.ip(), port);
    let sockets = (0..workers)
        .map(|_| bind(addr, true))
        .collect::<Result<Vec<_>, _>>()?;
    let ours: Vec<u64> = sockets
        .iter()
        .filter_map(|s| nix::sys::stat::fstat(s).ok())
        .map(|st| st.st_ino)
        .collect();
    if crate::net::holder::inodes_at(addr)
        .iter()
        .any(|inode| !ours.contains(inode))
    {
        let source = io::Error::from(io::ErrorKind::AddrInUse);
        return Err(BindError {
            addr,
            kind: BindErrorKind::InUse,
            source,
        });
    }
    // Without steering the kernel hashes each sender's 4-tuple onto a
    // socket, and a few clients can all land on one worker.
    let _ = steer_by_cpu(&sockets[0], workers);
    Ok(sockets)
}

/// Sends each datagram to the worker whose index is the receiving CPU's
/// (modulo the workers), with a classic BPF program on the group. If the
/// kernel refuses it, the group keeps hashing.
fn steer_by_cpu(socket: &UdpSocket, workers: usize) -> nix::Result<()> {
    let op = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let mut program = [
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32,
        ),
        op(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, workers as u32),
        op(libc::BPF_RET | libc::BPF_A, 0),
    ];
    // The kernel copies the program during the call.
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    setsockopt(socket, sockopt::AttachReusePortCbpf, &fprog)
}

/// Asks for a kernel receive buffer of `bytes` (forcing it past
/// `net.core.rmem_max` where permitted); returns what the kernel granted.
pub(crate) fn set_recv_buffer(socket: &UdpSocket, bytes: usize) -> usize {
    if setsockopt(socket, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &bytes);
    }
    // The kernel doubles the value it stores, for its own bookkeeping.
    getsockopt(socket, sockopt::RcvBuf).map_or(0, |n| n / 2)
}

/// Binds a blocking UDP socket to `addr`, with the local arrival address
/// reported on every datagram (`IP_PKTINFO` / `IPV6_RECVPKTINFO`).
pub(crate) fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, BindError> {
    bind(addr, false)
}

fn bind(addr: SocketAddr, reuse_port: bool) -> Result<UdpSocket, BindError> {
    let fail = |source: io::Error| {
        let kind = match source.kind() {
            io::ErrorKind::AddrInUse => BindErrorKind::InUse,
            io::ErrorKind::AddrNotAvailable => BindErrorKind::NotAvailable,
            io::ErrorKind::PermissionDenied => BindErrorKind::PermissionDenied,
            _ => BindErrorKind::Other,
        };
        BindError { addr, kind, source }
    };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(fail)?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(|e| fail(e.into()))?;
    } else {
        setsockopt(&socket, sockopt::Ipv4PacketInfo, &true).map_err(|e| fail(e.into()))?;
    }
    // Replies to broadcast requests are unicast, but a client may address
    // a subnet's broadcast address, which the kernel delivers to us anyway.
    socket.set_broadcast(true).map_err(fail)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(fail)?;
    }
    socket.bind(&addr.into()).map_err(fail)?;
    Ok(socket.into())
}

/// Wakes a thread blocked receiving on `socket`. On Linux, `shutdown` on an
/// unconnected UDP socket fails with `ENOTCONN` but still marks the socket
/// shut and wakes its readers, which then see queued datagrams first and
/// zero-length reads after.
pub(crate) fn wake(socket: &impl AsRawFd) {
    let _ = shutdown(socket.as_raw_fd(), Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_bind_on_the_same_port_is_a_conflict() {
        let first = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind_udp(addr).unwrap_err();
        assert_eq!(err.kind, BindErrorKind::InUse);
        // The wildcard address overlaps it too.
        let err = bind_udp(SocketAddr::from(([0, 0, 0, 0], addr.port()))).unwrap_err();
        assert_eq!(err.kind, BindErrorKind::InUse);
    }

    #[test]
    fn a_worker_group_shares_its_port_but_admits_no_stranger() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let port = group[0].local_addr().unwrap().port();
        assert!(group.iter().all(|s| s.local_addr().unwrap().port() == port));
        // A plain socket cannot join, and neither can a second group.
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(bind_udp(addr).unwrap_err().kind, BindErrorKind::InUse);
        assert_eq!(bind_group(addr, 2).unwrap_err().kind, BindErrorKind::InUse);
        assert!(
            steer_by_cpu(&group[0], 3).is_ok(),
            "the kernel takes the steering program"
        );
        // A stranger already in a SO_REUSEPORT group on a free-looking port
        // is caught by the check after binding.
        drop(group);
        let stranger = bind(addr, true).unwrap();
        assert_eq!(bind_group(addr, 2).unwrap_err().kind, BindErrorKind::InUse);
        drop(stranger);
    }

    #[test]
    fn an_address_not_on_this_host_is_not_available() {
        // 192.0.2.0/24 is TEST-NET-1: never assigned. Binding sends nothing.
        let err = bind_udp("192.0.2.1:0".parse().unwrap()).unwrap_err();
        assert_eq!(err.kind, BindErrorKind::NotAvailable);
    }
}
