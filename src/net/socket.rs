//! Binding UDP sockets the way discoveryd needs them: arrival-address
//! reporting on, IPv6 sockets IPv6-only, and `SO_REUSEPORT` only among our
//! own sockets (checked), so a second instance gets a conflict instead of a
//! silent share of the port, while a rebind on the same port can bind the
//! new sockets before the old ones close.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Weak;

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
    /// Out of file descriptors (`EMFILE`, `ENFILE`): fatal, and no fault
    /// of the configuration.
    OutOfFiles,
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

/// Sockets of ours that a new group may bind beside: the sockets of the
/// incarnation being replaced, during a make-before-break rebind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Beside<'a> {
    /// The inodes of all of them (no stranger has these).
    pub(crate) inodes: &'a [u64],
    /// How many of them are bound to exactly the new group's address: the
    /// new sockets join their SO_REUSEPORT group after them.
    pub(crate) joining: usize,
}

/// Binds `workers` sockets to `addr`, each for its own receive loop. They
/// share the port through `SO_REUSEPORT`, but only among themselves and
/// with our own sockets `beside` them:
///
/// - a fresh group first proves the port free with a plain bind (which
///   also resolves port 0);
/// - afterwards the kernel's socket table must show no stranger on the
///   port at an overlapping address (a process of the same user that set
///   `SO_REUSEPORT` too could otherwise share it silently).
///
/// Beside our own sockets, the new group takes the traffic at once: its
/// steering program sends datagrams past the old sockets, to the new ones.
pub(crate) fn bind_group(
    addr: SocketAddr,
    workers: usize,
    beside: Beside<'_>,
) -> Result<Vec<UdpSocket>, BindError> {
    let in_use = |addr| BindError {
        addr,
        kind: BindErrorKind::InUse,
        source: io::Error::from(io::ErrorKind::AddrInUse),
    };
    let addr = if beside.inodes.is_empty() {
        let probe = bind(addr, false)?;
        let port = probe
            .local_addr()
            .map_err(|source| BindError {
                addr,
                kind: BindErrorKind::Other,
                source,
            })?
            .port();
        SocketAddr::new(addr.ip(), port)
    } else {
        addr
    };
    let sockets = (0..workers.max(1))
        .map(|_| bind(addr, true))
        .collect::<Result<Vec<_>, _>>()?;
    let ours: Vec<u64> = sockets
        .iter()
        .filter_map(|s| nix::sys::stat::fstat(s).ok())
        .map(|st| st.st_ino)
        .chain(beside.inodes.iter().copied())
        .collect();
    if crate::net::holder::inodes_overlapping(addr)
        .iter()
        .any(|inode| !ours.contains(inode))
    {
        return Err(in_use(addr));
    }
    // Without steering the kernel hashes each sender's 4-tuple onto a
    // socket, and a few clients can all land on one worker.
    if let Err(e) = steer(&sockets[0], beside.joining, sockets.len()) {
        tracing::warn!(error = %e, %addr, "cannot steer datagrams by CPU");
    }
    Ok(sockets)
}

/// Sends each datagram to the socket at index `first + cpu % workers` of
/// the SO_REUSEPORT group (the receiving CPU's worker), with a classic BPF
/// program on the group. `first` skips the sockets that were in the group
/// before. If the kernel refuses it, the group keeps hashing; an index
/// past the group's end (once older sockets closed) also falls back to
/// hashing, until [`steer`] is called again with `first` 0.
pub(crate) fn steer(socket: &UdpSocket, first: usize, workers: usize) -> nix::Result<()> {
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
        op(
            libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K,
            workers.max(1) as u32,
        ),
        op(libc::BPF_ALU | libc::BPF_ADD | libc::BPF_K, first as u32),
        op(libc::BPF_RET | libc::BPF_A, 0),
    ];
    // The kernel copies the program during the call.
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    setsockopt(socket, sockopt::AttachReusePortCbpf, &fprog)
}

/// Takes a socket that is being replaced out of the kernel's choice for
/// new datagrams: connected to its own address, it only matches datagrams
/// from itself, so others go to the sockets that replace it. What is
/// already queued stays readable.
pub(crate) fn retire(socket: &UdpSocket) -> io::Result<()> {
    let local = socket.local_addr()?;
    let ip = match local.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    socket.connect(SocketAddr::new(ip, local.port()))
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
            _ if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                BindErrorKind::OutOfFiles
            }
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
    // No SO_BROADCAST: receiving a broadcast request needs none, and
    // without it the kernel refuses to send to a broadcast address, so a
    // request spoofed from one can never be answered to a whole subnet.
    if reuse_port {
        socket.set_reuse_port(true).map_err(fail)?;
    }
    socket.bind(&addr.into()).map_err(fail)?;
    Ok(socket.into())
}

/// Wakes a thread blocked receiving on `socket`. On Linux, `shutdown` on an
/// unconnected UDP socket fails with `ENOTCONN` but still marks the socket
/// shut and wakes its readers, which then see queued datagrams first and
/// zero-length reads after. Only reading is shut: the replies to what is
/// still queued must go out.
pub(crate) fn wake(socket: &impl AsRawFd) {
    let _ = shutdown(socket.as_raw_fd(), Shutdown::Read);
}

/// The sockets of a running incarnation, which a newer one binds beside.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sockets {
    /// Their addresses, as bound.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Sockets per address.
    pub(crate) workers: usize,
    /// Their inodes.
    pub(crate) inodes: Vec<u64>,
    /// The first socket of each address, to steer its group by; weak, so
    /// the sockets close when the listener is done with them.
    pub(crate) leaders: Vec<Weak<UdpSocket>>,
}

impl Sockets {
    /// Steers each group over its own `workers` sockets (once the sockets
    /// that shared it are closed). Done synchronously by the supervisor,
    /// so it can never overwrite the steering of a newer incarnation.
    pub(crate) fn steer_own(&self) {
        for leader in self.leaders.iter().filter_map(Weak::upgrade) {
            let _ = steer(&leader, 0, self.workers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_may_never_send_to_a_broadcast_address() {
        let socket = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        assert!(!getsockopt(&socket, sockopt::Broadcast).unwrap());
    }

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
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3, Beside::default()).unwrap();
        let port = group[0].local_addr().unwrap().port();
        assert!(group.iter().all(|s| s.local_addr().unwrap().port() == port));
        // A plain socket cannot join, and neither can a second group.
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(bind_udp(addr).unwrap_err().kind, BindErrorKind::InUse);
        assert_eq!(
            bind_group(addr, 2, Beside::default()).unwrap_err().kind,
            BindErrorKind::InUse
        );
        assert!(
            steer(&group[0], 0, 3).is_ok(),
            "the kernel takes the steering program"
        );
        // Our own group can be joined, and overlapped by the wildcard.
        let inodes: Vec<u64> = group
            .iter()
            .map(|s| nix::sys::stat::fstat(s).unwrap().st_ino)
            .collect();
        let beside = Beside {
            inodes: &inodes,
            joining: 3,
        };
        let joined = bind_group(addr, 2, beside).unwrap();
        let wide = SocketAddr::from(([0, 0, 0, 0], port));
        let all: Vec<u64> = inodes
            .iter()
            .copied()
            .chain(
                joined
                    .iter()
                    .map(|s| nix::sys::stat::fstat(s).unwrap().st_ino),
            )
            .collect();
        let wildcard = bind_group(
            wide,
            1,
            Beside {
                inodes: &all,
                joining: 0,
            },
        )
        .unwrap();
        drop((joined, wildcard));
        // A stranger already in a SO_REUSEPORT group on a free-looking port
        // is caught by the check after binding.
        drop(group);
        let stranger = bind(addr, true).unwrap();
        assert_eq!(
            bind_group(addr, 2, Beside::default()).unwrap_err().kind,
            BindErrorKind::InUse
        );
        // Beside our own sockets, a stranger in the group is still found.
        let beside = Beside {
            inodes: &[1],
            joining: 0,
        };
        assert_eq!(
            bind_group(addr, 2, beside).unwrap_err().kind,
            BindErrorKind::InUse
        );
        // And so is one on an overlapping address.
        let wide = SocketAddr::from(([0, 0, 0, 0], port));
        assert_eq!(
            bind_group(wide, 1, beside).unwrap_err().kind,
            BindErrorKind::InUse
        );
        drop(stranger);
    }

    #[test]
    fn an_address_not_on_this_host_is_not_available() {
        // 192.0.2.0/24 is TEST-NET-1: never assigned. Binding sends nothing.
        let err = bind_udp("192.0.2.1:0".parse().unwrap()).unwrap_err();
        assert_eq!(err.kind, BindErrorKind::NotAvailable);
    }
}

#[cfg(test)]
mod steering {
    use super::*;

    fn inodes(sockets: &[UdpSocket]) -> Vec<u64> {
        sockets
            .iter()
            .map(|s| nix::sys::stat::fstat(s).unwrap().st_ino)
            .collect()
    }

    fn queued(sockets: &[UdpSocket]) -> usize {
        let mut buf = [0u8; 16];
        sockets
            .iter()
            .map(|s| {
                s.set_nonblocking(true).unwrap();
                std::iter::from_fn(|| s.recv(&mut buf).ok()).count()
            })
            .sum()
    }

    #[test]
    fn sockets_joining_a_group_take_all_its_traffic_at_once() {
        for (old_n, new_n) in [(2, 4), (1, 3), (3, 2), (4, 1), (2, 2)] {
            let old = bind_group("127.0.0.1:0".parse().unwrap(), old_n, Beside::default()).unwrap();
            let addr = old[0].local_addr().unwrap();
            let own = inodes(&old);
            let beside = Beside {
                inodes: &own,
                joining: old_n,
            };
            let new = bind_group(addr, new_n, beside).unwrap();
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..100 {
                client.send_to(b"x", addr).unwrap();
            }
            assert_eq!(
                queued(&old),
                0,
                "{old_n} -> {new_n}: the old sockets still got datagrams"
            );
            assert_eq!(queued(&new), 100, "{old_n} -> {new_n}");
        }
    }

    #[test]
    fn retired_sockets_get_nothing_while_they_close() {
        // Closing a socket compacts the group, which can make the steering
        // index point past its end: the kernel then hashes, and skips
        // connected (retired) sockets. Without retiring, the old sockets
        // that are not closed yet get datagrams, lost when they close.
        let old = bind_group("127.0.0.1:0".parse().unwrap(), 4, Beside::default()).unwrap();
        let addr = old[0].local_addr().unwrap();
        let own = inodes(&old);
        let beside = Beside {
            inodes: &own,
            joining: 4,
        };
        let new = bind_group(addr, 1, beside).unwrap();
        for socket in &old {
            retire(socket).unwrap();
        }
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut old = old;
        while let Some(closing) = old.pop() {
            drop(closing);
            for _ in 0..50 {
                client.send_to(b"x", addr).unwrap();
            }
            assert_eq!(queued(&old), 0, "{} old sockets left", old.len());
            assert_eq!(queued(&new), 50);
        }
    }

    #[test]
    fn each_generation_takes_the_traffic_from_the_one_before() {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut current = bind_group("127.0.0.1:0".parse().unwrap(), 2, Beside::default()).unwrap();
        let addr = current[0].local_addr().unwrap();
        for (generation, n) in [4, 1, 3, 2, 4, 1].into_iter().enumerate() {
            let own = inodes(&current);
            let beside = Beside {
                inodes: &own,
                joining: current.len(),
            };
            let next = bind_group(addr, n, beside).unwrap();
            for _ in 0..100 {
                client.send_to(b"x", addr).unwrap();
            }
            assert_eq!(
                queued(&current),
                0,
                "generation {generation}: the old sockets got datagrams"
            );
            assert_eq!(queued(&next), 100, "generation {generation}");
            drop(std::mem::replace(&mut current, next));
            steer(&current[0], 0, current.len()).unwrap();
            for s in &current {
                s.set_nonblocking(false).unwrap();
            }
        }
    }
}
