"""Sends mDNS PTR queries for a service type, at a steady rate.

    mdns_query.py TYPE COUNT RATE SOURCE_ADDRESS [--legacy] [--known INSTANCE] [--to ADDR]

From port 5353 (a full mDNS querier, answered by multicast), or with
--legacy from an ephemeral port (a one-shot querier, answered by unicast;
the answers are counted and printed as `unicast answers: N`). --known
lists INSTANCE (a full name) as a known answer, which a responder must then
suppress (RFC 6762 section 7.1). --to sends each query by unicast to
ADDR:5353 instead of to the group. Runs only
inside a test's network namespace.
"""
import argparse
import select
import socket
import time

from zeroconf import DNSIncoming, DNSOutgoing, DNSPointer, DNSQuestion
from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_PTR

MDNS = ("224.0.0.251", 5353)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("type")
    p.add_argument("count", type=int)
    p.add_argument("rate", type=float)
    p.add_argument("source")
    p.add_argument("--legacy", action="store_true")
    p.add_argument("--known")
    p.add_argument("--to")
    a = p.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", 0 if a.legacy else 5353))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.source))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)

    query = DNSOutgoing(_FLAGS_QR_QUERY, True)
    query.add_question(DNSQuestion(a.type, _TYPE_PTR, _CLASS_IN))
    if a.known:
        query.add_answer_at_time(DNSPointer(a.type, _TYPE_PTR, _CLASS_IN, 4500, a.known), 0)
    packet = query.packets()[0]

    answers = 0
    next_send = time.monotonic()
    sent = 0
    deadline = None
    while True:
        now = time.monotonic()
        if sent < a.count and now >= next_send:
            s.sendto(packet, (a.to, 5353) if a.to else MDNS)
            sent += 1
            next_send += 1 / a.rate
            if sent == a.count:
                deadline = now + 1.0  # late answers (PTR answers wait up to 120 ms)
        if deadline is not None and now >= deadline:
            break
        wait = max(0.0, (next_send if sent < a.count else deadline) - now)
        ready, _, _ = select.select([s], [], [], wait)
        if ready:
            data, src = s.recvfrom(9000)
            if a.legacy and src[1] == 5353 and not DNSIncoming(data).is_query():
                answers += 1
    if a.legacy:
        print(f"unicast answers: {answers}")


if __name__ == "__main__":
    main()
