"""A swarm of discovery servers in one process: every request it receives
is answered once from each of COUNT local addresses, with the classic
answer `SERVER_IP:<that address>`, sent from that address (IP_PKTINFO's
spec_dst), as COUNT separate hosts running the Python original would.

Usage: python3 swarm.py PORT NETWORK COUNT JITTER_MIN_MS JITTER_MAX_MS LIFETIME_S

The answering addresses are the first COUNT host addresses of NETWORK
(the caller has added them to an interface). Answers that are due leave
together, in one sendmmsg(2) (libc, through ctypes): hundreds of hosts
answering at once reach a client as a burst at wire speed, which one
Python loop sending them one by one would not be. Each answer waits a
uniformly random time in [JITTER_MIN_MS, JITTER_MAX_MS] (0 0: none), as a
fleet with `reply_jitter` would. Prints "swarm ready" once bound, then one
line per request: "answered SENT of COUNT to HOST:PORT (FAILED failed)".
Exits by itself after LIFETIME_S seconds.
"""
import ctypes
import heapq
import ipaddress
import random
import select
import socket
import struct
import sys
import time

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
libc = ctypes.CDLL(None, use_errno=True)


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(IoVec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


# struct cmsghdr (len, level, type) then struct in_pktinfo (ifindex,
# spec_dst, addr), padded to CMSG_SPACE.
CMSG_HEAD = struct.calcsize("@Nii")
CMSG_LEN = CMSG_HEAD + 12
CMSG_SPACE = CMSG_HEAD + ((12 + 7) & ~7)

port, network = int(sys.argv[1]), ipaddress.ip_network(sys.argv[2])
count, jmin, jmax = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
end = time.monotonic() + float(sys.argv[6])
hosts = [str(ip) for _, ip in zip(range(count), network.hosts())]
if len(hosts) < count:
    sys.exit(f"swarm: {network} has fewer than {count} host addresses")
answers = [f"SERVER_IP:{h}".encode() for h in hosts]
cmsgs = [
    struct.pack("@Nii", CMSG_LEN, socket.IPPROTO_IP, IP_PKTINFO)
    + struct.pack("I4s4s", 0, socket.inet_aton(h), b"\0" * 4).ljust(CMSG_SPACE - CMSG_HEAD, b"\0")
    for h in hosts
]

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
sock.bind(("0.0.0.0", port))
print("swarm ready", flush=True)


def send_all(due):
    """Sends [(host index, (ip, port))] in sendmmsg calls; returns (sent, failed)."""
    n = len(due)
    msgs = (MMsgHdr * n)()
    iovs = (IoVec * n)()
    keep = []
    for k, (i, to) in enumerate(due):
        name = ctypes.create_string_buffer(
            struct.pack("=HH4s8x", socket.AF_INET, socket.htons(to[1]), socket.inet_aton(to[0])), 16
        )
        data = ctypes.create_string_buffer(answers[i], len(answers[i]))
        control = ctypes.create_string_buffer(cmsgs[i], CMSG_SPACE)
        keep += [name, data, control]
        iovs[k] = IoVec(ctypes.cast(data, ctypes.c_void_p), len(answers[i]))
        msgs[k].hdr = MsgHdr(
            ctypes.cast(name, ctypes.c_void_p), 16, ctypes.pointer(iovs[k]), 1,
            ctypes.cast(control, ctypes.c_void_p), CMSG_SPACE, 0,
        )
    sent = failed = 0
    while sent + failed < n:
        chunk = min(n - sent - failed, 1024)
        r = libc.sendmmsg(sock.fileno(), ctypes.byref(msgs, (sent + failed) * ctypes.sizeof(MMsgHdr)), chunk, 0)
        if r > 0:
            sent += r
        elif r < 0 and ctypes.get_errno() == 4:  # EINTR: again
            continue
        else:
            failed += 1  # the first of the rest failed: skip it
    return sent, failed


pending = []  # (due, seq, host index, destination)
seq = 0
tally = {}  # destination -> [sent, failed, scheduled]
while time.monotonic() < end:
    now = time.monotonic()
    due = []
    while pending and pending[0][0] <= now:
        _, _, i, to = heapq.heappop(pending)
        due.append((i, to))
    if due:
        by_dest = {}
        for i, to in due:
            by_dest.setdefault(to, []).append((i, to))
        for to, group in by_dest.items():
            sent, failed = send_all(group)
            t = tally[to]
            t[0] += sent
            t[1] += failed
            if t[0] + t[1] == t[2]:
                print(f"answered {t[0]} of {count} to {to[0]}:{to[1]} ({t[1]} failed)", flush=True)
                del tally[to]
        continue
    wait = min(end, pending[0][0] if pending else end) - time.monotonic()
    readable, _, _ = select.select([sock], [], [], max(wait, 0))
    if not readable:
        continue
    data, peer = sock.recvfrom(2048)
    if data != b"DISCOVER_SERVER":
        continue
    now = time.monotonic()
    t = tally.setdefault(peer, [0, 0, 0])
    t[2] += count
    for i in range(count):
        seq += 1
        delay = random.uniform(jmin, jmax) / 1000 if jmax > 0 else 0.0
        heapq.heappush(pending, (now + delay, seq, i, peer))
