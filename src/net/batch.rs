//! Batched datagram I/O: one `recvmmsg` fills up to [`BATCH`] datagrams
//! with their peer and local arrival address, and replies leave through
//! `sendmmsg` from the address each request arrived on.
//!
//! Every buffer is allocated when the batch is made (or when
//! `buffer_size` changes), never per datagram.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders,
    SockaddrStorage,
};

/// Datagrams received (and replies sent) per system call at most.
pub(super) const BATCH: usize = 32;

/// One received datagram's envelope.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Datagram {
    /// Payload bytes received (at most `buffer_size + 1`).
    pub len: usize,
    /// True when the datagram was longer than `buffer_size`.
    pub oversize: bool,
    /// Who sent it.
    pub peer: Option<SocketAddr>,
    /// The local address it arrived on (for a broadcast, the receiving
    /// interface's address).
    pub local: Option<IpAddr>,
    pub(super) raw_peer: Option<SockaddrStorage>,
    pub(super) ifindex: u32,
}

/// What one [`Batch::send`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Replies the kernel accepted.
    pub sent: usize,
    /// Replies that failed (unreachable peer, full buffer, ...).
    pub failed: usize,
}

impl Sent {
    /// Sends `count` messages sharing a local address: `send(done)` sends
    /// what is left from `done` on in one `sendmmsg` and says how many left.
    /// A message the kernel refuses is counted and skipped; EINTR retries.
    #[inline(always)]
    pub(crate) fn send_each(
        &mut self,
        count: usize,
        mut send: impl FnMut(usize) -> nix::Result<usize>,
    ) {
        let mut done = 0;
        while done < count {
            match send(done) {
                Ok(n) if n > 0 => {
                    self.sent += n;
                    done += n;
                }
                Err(Errno::EINTR) => {}
                // The first message of the rest failed: skip it, go on.
                _ => {
                    self.failed += 1;
                    done += 1;
                }
            }
        }
    }
}

/// Preallocated buffers and headers for one socket's receive loop.
pub(crate) struct Batch {
    buffer_size: usize,
    bufs: Vec<u8>,
    recv_headers: MultiHeaders<SockaddrStorage>,
    datagrams: [Datagram; BATCH],
    received: usize,
    replies: [Vec<u8>; BATCH],
    answer: [bool; BATCH],
    send_headers: MultiHeaders<SockaddrStorage>,
    send_addrs: [Option<SockaddrStorage>; BATCH],
}

impl Batch {
    /// Buffers for requests of up to `buffer_size` bytes.
    pub(crate) fn new(buffer_size: usize) -> Self {
        let cmsg = || Some(cmsg_space!(libc::in6_pktinfo));
        Self {
            buffer_size,
            bufs: vec![0; BATCH * (buffer_size + 1)],
            recv_headers: MultiHeaders::preallocate(BATCH, cmsg()),
            datagrams: [Datagram::default(); BATCH],
            received: 0,
            replies: std::array::from_fn(|_| Vec::with_capacity(256)),
            answer: [false; BATCH],
            send_headers: MultiHeaders::preallocate(BATCH, cmsg()),
            send_addrs: [None; BATCH],
        }
    }

    /// The request size limit these buffers were made for.
    pub(crate) fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// Receives up to [`BATCH`] datagrams. With `wait`, blocks until at least
    /// one arrives; without, returns `EAGAIN` when none is queued.
    // Inlined into the receive loop: out of line (the client calls it too)
    // it cost about 100 more instructions per ping-pong request (callgrind).
    #[inline(always)]
    pub(crate) fn recv(&mut self, fd: RawFd, wait: bool) -> nix::Result<usize> {
        let stride = self.buffer_size + 1;
        let mut chunks = self.bufs.chunks_exact_mut(stride);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().expect("BATCH chunks"))]);
        let flags = if wait {
            MsgFlags::MSG_WAITFORONE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let results = recvmmsg(fd, &mut self.recv_headers, iovs.iter_mut(), flags, None)?;
        let mut n = 0;
        for (msg, slot) in results.zip(self.datagrams.iter_mut()) {
            let mut d = Datagram {
                len: msg.bytes,
                oversize: msg.bytes > self.buffer_size || msg.flags.contains(MsgFlags::MSG_TRUNC),
                raw_peer: msg.address,
                peer: msg.address.and_then(to_std),
                ..Datagram::default()
            };
            for cmsg in msg.cmsgs().into_iter().flatten() {
                match cmsg {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        d.local =
                            Some(Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)).into());
                        d.ifindex = info.ipi_ifindex as u32;
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        d.local = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr).into());
                        d.ifindex = info.ipi6_ifindex;
                    }
                    _ => {}
                }
            }
            *slot = d;
            n += 1;
        }
        self.received = n;
        self.answer = [false; BATCH];
        Ok(n)
    }

    /// The datagrams of the last [`recv`](Self::recv).
    pub(crate) fn datagrams(&self) -> &[Datagram] {
        &self.datagrams[..self.received]
    }

    /// The datagrams of the last [`recv`](Self::recv), with their payloads
    /// (at most `buffer_size + 1` bytes: a longer one is `oversize`).
    pub(crate) fn payloads(&self) -> impl Iterator<Item = (&Datagram, &[u8])> {
        let stride = self.buffer_size + 1;
        self.datagrams()
            .iter()
            .enumerate()
            .map(move |(i, d)| (d, &self.bufs[i * stride..i * stride + d.len.min(stride)]))
    }

    /// Calls `f` on every datagram received, with its payload and a cleared
    /// reply buffer; `f` returns whether the buffer is to be sent back.
    pub(crate) fn process(&mut self, mut f: impl FnMut(&Datagram, &[u8], &mut Vec<u8>) -> bool) {
        let stride = self.buffer_size + 1;
        for i in 0..self.received {
            let d = &self.datagrams[i];
            let payload = &self.bufs[i * stride..i * stride + d.len.min(stride)];
            let reply = &mut self.replies[i];
            reply.clear();
            self.answer[i] = f(d, payload, reply);
        }
    }

    /// Offers every reply [`process`](Self::process) kept to `f`, with its
    /// request; those `f` takes (returns true for) are not sent by
    /// [`send`](Self::send).
    pub(crate) fn defer(&mut self, mut f: impl FnMut(&Datagram, &[u8]) -> bool) {
        for i in 0..self.received {
            if self.answer[i] && f(&self.datagrams[i], &self.replies[i]) {
                self.answer[i] = false;
            }
        }
    }

    /// Sends the replies [`process`](Self::process) kept, each from the local
    /// address its request arrived on, grouped into as few calls as possible.
    pub(crate) fn send(&mut self, fd: RawFd) -> Sent {
        let mut out = Sent::default();
        let mut order = [0usize; BATCH];
        let mut count = 0;
        for i in 0..self.received {
            if self.answer[i] && self.datagrams[i].raw_peer.is_some() {
                order[count] = i;
                count += 1;
            }
        }
        let mut start = 0;
        while start < count {
            let local = self.datagrams[order[start]].local;
            let mut end = start + 1;
            while end < count && self.datagrams[order[end]].local == local {
                end += 1;
            }
            let group = &order[start..end];
            out.send_each(group.len(), |done| self.send_group(fd, &group[done..]));
            start = end;
        }
        out
    }

    /// One `sendmmsg` for replies that share a local address.
    fn send_group(&mut self, fd: RawFd, group: &[usize]) -> nix::Result<usize> {
        let first = &self.datagrams[group[0]];
        let (local, ifindex) = (first.local, first.ifindex);
        let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|k| {
            [IoSlice::new(
                group
                    .get(k)
                    .map_or(&[][..], |&i| self.replies[i].as_slice()),
            )]
        });
        // Only the addresses sent to are copied: a whole array of them is
        // 4 KiB of memcpy per call.
        for (slot, &i) in self.send_addrs.iter_mut().zip(group) {
            *slot = self.datagrams[i].raw_peer;
        }
        let n = group.len();
        send_from(
            fd,
            &mut self.send_headers,
            &iovs[..n],
            &self.send_addrs[..n],
            local,
            ifindex,
        )
    }
}

/// One `sendmmsg` of `iovs` to `addrs`, all from the `local` address (the
/// interface `ifindex` for IPv6); the kernel's choice when unspecified.
// Inlined into its callers, as it was before it was shared (see `recv`).
#[inline(always)]
pub(super) fn send_from(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    iovs: &[[IoSlice<'_>; 1]],
    addrs: &[Option<SockaddrStorage>],
    local: Option<IpAddr>,
    ifindex: u32,
) -> nix::Result<usize> {
    let v4;
    let v6;
    let cmsg: &[ControlMessage<'_>] = match local {
        Some(IpAddr::V4(ip)) if !ip.is_unspecified() => {
            v4 = [libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            }];
            &[ControlMessage::Ipv4PacketInfo(&v4[0])]
        }
        Some(IpAddr::V6(ip)) if !ip.is_unspecified() => {
            v6 = [libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: ifindex,
            }];
            &[ControlMessage::Ipv6PacketInfo(&v6[0])]
        }
        _ => &[],
    };
    let results = sendmmsg(
        fd,
        headers,
        iovs.iter(),
        addrs,
        cmsg,
        MsgFlags::MSG_DONTWAIT,
    )?;
    Ok(results.count())
}

fn to_std(addr: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("buffer_size", &self.buffer_size)
            .field("received", &self.received)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn receives_with_arrival_address_and_replies_from_it() {
        let server = crate::net::bind_udp("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        client.send_to(b"hello", ("127.0.0.1", port)).unwrap();
        client.send_to(&[7u8; 20], ("127.0.0.1", port)).unwrap();

        let mut batch = Batch::new(16);
        let mut got = 0;
        while got < 2 {
            got += batch.recv(server.as_raw_fd(), true).unwrap();
            let mut seen = Vec::new();
            batch.process(|d, payload, reply| {
                seen.push((d.len, d.oversize, d.local, d.peer));
                if d.oversize {
                    return false;
                }
                reply.extend_from_slice(b"re:");
                reply.extend_from_slice(payload);
                true
            });
            for (len, oversize, local, peer) in seen {
                assert_eq!(local, Some(IpAddr::from([127, 0, 0, 1])));
                assert_eq!(peer, Some(client.local_addr().unwrap()));
                assert_eq!(oversize, len > 16, "len {len}");
            }
            batch.send(server.as_raw_fd());
        }
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"re:hello");
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], port)));
    }
}
