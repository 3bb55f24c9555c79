//! Replies held back for `reply_jitter`: a bounded queue, one per receive
//! loop, of answers waiting for their random send time.
//!
//! Everything is allocated when the queue is made (when a loop first sees
//! a `reply_jitter`), never per reply: a heap of deadlines with room for
//! every slot, a free list, and one fixed buffer per slot. A reply that
//! finds no room (the queue is full, or the reply is longer than a slot)
//! is not held: the caller sends it at once and counts it. Losing an
//! answer to a full queue would make jitter, meant to lose fewer, lose
//! more.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::IoSlice;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::time::Instant;

use nix::sys::socket::{MultiHeaders, SockaddrStorage};

use super::batch::{send_from, Datagram, Sent, BATCH};

/// Replies one receive loop holds at most.
pub(crate) const CAPACITY: usize = 1024;

/// The longest reply held, in bytes; a longer one is sent at once.
pub(crate) const SLOT: usize = 512;

#[derive(Clone, Copy)]
struct Held {
    peer: Option<SockaddrStorage>,
    local: Option<IpAddr>,
    ifindex: u32,
    len: usize,
}

/// The replies waiting for their send time.
pub(crate) struct Delayed {
    due: BinaryHeap<Reverse<(Instant, u32)>>,
    free: Vec<u32>,
    held: Vec<Held>,
    bytes: Vec<u8>,
    headers: MultiHeaders<SockaddrStorage>,
    addrs: [Option<SockaddrStorage>; BATCH],
}

impl Delayed {
    /// An empty queue with room for [`CAPACITY`] replies.
    pub(crate) fn new() -> Self {
        let empty = Held {
            peer: None,
            local: None,
            ifindex: 0,
            len: 0,
        };
        Self {
            due: BinaryHeap::with_capacity(CAPACITY),
            free: (0..CAPACITY as u32).rev().collect(),
            held: vec![empty; CAPACITY],
            bytes: vec![0; CAPACITY * SLOT],
            headers: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(libc::in6_pktinfo))),
            addrs: [None; BATCH],
        }
    }

    /// True when no reply is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// The earliest send time waiting, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Holds `reply` to the request `d` until `at`. False when it cannot be
    /// held (no room, too long, no peer): then the caller sends it now.
    pub(crate) fn hold(&mut self, d: &Datagram, reply: &[u8], at: Instant) -> bool {
        if reply.len() > SLOT || d.raw_peer.is_none() {
            return false;
        }
        let Some(slot) = self.free.pop() else {
            return false;
        };
        let i = slot as usize;
        self.bytes[i * SLOT..i * SLOT + reply.len()].copy_from_slice(reply);
        self.held[i] = Held {
            peer: d.raw_peer,
            local: d.local,
            ifindex: d.ifindex,
            len: reply.len(),
        };
        self.due.push(Reverse((at, slot)));
        true
    }

    /// Sends every reply due by `now` (all of them with `None`), each from
    /// the local address its request arrived on.
    pub(crate) fn send_due(&mut self, fd: RawFd, now: Option<Instant>) -> Sent {
        let mut out = Sent::default();
        loop {
            let mut order = [0u32; BATCH];
            let mut count = 0;
            while count < BATCH {
                match self.due.peek() {
                    Some(Reverse((at, slot))) if now.is_none_or(|now| *at <= now) => {
                        order[count] = *slot;
                        count += 1;
                        self.due.pop();
                    }
                    _ => break,
                }
            }
            if count == 0 {
                return out;
            }
            let mut start = 0;
            while start < count {
                let first = self.held[order[start] as usize];
                let mut end = start + 1;
                while end < count && self.held[order[end] as usize].local == first.local {
                    end += 1;
                }
                out.send_each(end - start, |done| {
                    self.send_group(fd, &order[start + done..end], first.local, first.ifindex)
                });
                start = end;
            }
            self.free.extend_from_slice(&order[..count]);
        }
    }

    fn send_group(
        &mut self,
        fd: RawFd,
        group: &[u32],
        local: Option<IpAddr>,
        ifindex: u32,
    ) -> nix::Result<usize> {
        let (bytes, held) = (&self.bytes, &self.held);
        let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|k| {
            [IoSlice::new(group.get(k).map_or(&[][..], |&slot| {
                let i = slot as usize;
                &bytes[i * SLOT..i * SLOT + held[i].len]
            }))]
        });
        for (addr, &slot) in self.addrs.iter_mut().zip(group) {
            *addr = held[slot as usize].peer;
        }
        send_from(
            fd,
            &mut self.headers,
            &iovs[..group.len()],
            &self.addrs[..group.len()],
            local,
            ifindex,
        )
    }
}

impl std::fmt::Debug for Delayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delayed")
            .field("held", &self.due.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use crate::net::Batch;

    #[test]
    fn holds_until_due_then_sends_in_deadline_order_and_refuses_when_full() {
        let server = crate::net::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.send_to(b"x", server.local_addr().unwrap()).unwrap();
        let mut batch = Batch::new(16);
        assert_eq!(batch.recv(server.as_raw_fd(), true).unwrap(), 1);
        let d = batch.datagrams()[0];

        let mut q = Delayed::new();
        let t0 = Instant::now();
        assert!(q.hold(&d, b"second", t0 + Duration::from_millis(20)));
        assert!(q.hold(&d, b"first", t0 + Duration::from_millis(10)));
        assert!(!q.hold(&d, &[b'x'; SLOT + 1], t0), "longer than a slot");
        assert_eq!(q.next_due(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(q.send_due(server.as_raw_fd(), Some(t0)), Sent::default());
        let sent = q.send_due(server.as_raw_fd(), Some(t0 + Duration::from_millis(15)));
        assert_eq!(sent.sent, 1);
        let sent = q.send_due(server.as_raw_fd(), None);
        assert_eq!(sent.sent, 1);
        assert!(q.is_empty());
        let mut buf = [0u8; 64];
        for want in [&b"first"[..], b"second"] {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
            assert_eq!(from, server.local_addr().unwrap());
        }

        for _ in 0..CAPACITY {
            assert!(q.hold(&d, b"r", t0 + Duration::from_secs(60)));
        }
        assert!(!q.hold(&d, b"r", t0), "full");
    }
}
