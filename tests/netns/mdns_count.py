"""Count the mDNS packets that hosts send on a link, over a time window.

    mdns_count.py --seconds T [--source ADDR]... [--lines] [--until-name TEXT]

A passive observer: run it in a namespace of its own on the link to watch
(it must have an address there). It binds 0.0.0.0:5353 with SO_REUSEADDR
and SO_REUSEPORT, joins 224.0.0.251 on every IPv4 interface of the
namespace, never sends, and parses each datagram with python-zeroconf's
DNSIncoming. Multicast mDNS is what it sees: every query, announcement,
answer and goodbye sent to 224.0.0.251:5353 on the link; unicast replies
(to legacy or QU queries) go to their asker and are not counted.

Prints, flushed at once:

    {"event": "ready", "t": ...}          joined; the window starts now
    {"event": "packet", "t": ..., "source": "192.0.2.1", "qr": "response",
     "questions": [...], "answers": [...], "ttl0": [...]}     with --lines
    {"event": "summary", "t_start": ..., "t_end": ..., "packets": N,
     "by_source": {"192.0.2.1": N, ...}, "names": [...], "goodbyes": N}

"questions"/"answers" are record names (answers include the authority and
additional sections); "ttl0" names the records sent with TTL 0 (goodbyes).
"packets", "names" and "goodbyes" (packets with a TTL-0 record) count only
the --source addresses, or everything without --source.
"by_source" always counts every sender. Times are time.monotonic().
--until-name ends the window early, once a packet from a counted source
names a record containing TEXT (the exit status is then 0; 1 if the window
ended without it). Without --until-name the exit status is 0.
"""

import argparse
import fcntl
import json
import socket
import struct
import sys
import time

from zeroconf import DNSIncoming

GROUP = "224.0.0.251"
SIOCGIFADDR = 0x8915


def ipv4_addresses():
    out = []
    for _, name in socket.if_nameindex():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            out.append(socket.inet_ntoa(packed[20:24]))
        except OSError:
            pass
        finally:
            s.close()
    return out


def emit(record):
    print(json.dumps(record, sort_keys=True), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--source", action="append", default=[])
    p.add_argument("--lines", action="store_true")
    p.add_argument("--until-name", default=None)
    args = p.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("", 5353))
    joined = 0
    for addr in ipv4_addresses():
        if addr.startswith("127."):
            continue
        mreq = socket.inet_aton(GROUP) + socket.inet_aton(addr)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        joined += 1
    if joined == 0:
        sys.stderr.write("mdns_count.py: no IPv4 interface to watch in this namespace\n")
        return 2

    t_start = time.monotonic()
    deadline = t_start + args.seconds
    emit({"event": "ready", "t": t_start})
    packets = 0
    goodbyes = 0
    by_source = {}
    names = set()
    met = args.until_name is None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, (source, _port) = s.recvfrom(9000)
        except socket.timeout:
            break
        t = time.monotonic()
        by_source[source] = by_source.get(source, 0) + 1
        if args.source and source not in args.source:
            continue
        packets += 1
        try:
            msg = DNSIncoming(data)
            msg_is_query = msg.is_query()
            questions = sorted({q.name for q in msg.questions})
            answers = msg.answers()
        except Exception as e:  # a malformed packet is still a packet
            questions, answers, msg_is_query = [], [], False
            emit({"event": "unparsable", "t": t, "source": source, "error": str(e)})
        answer_names = sorted({a.name for a in answers})
        ttl0 = sorted({a.name for a in answers if a.ttl == 0})
        goodbyes += bool(ttl0)
        names.update(questions)
        names.update(answer_names)
        if args.lines:
            emit({"event": "packet", "t": t, "source": source,
                  "qr": "query" if msg_is_query else "response",
                  "questions": questions, "answers": answer_names, "ttl0": ttl0})
        if args.until_name and any(args.until_name in n for n in questions + answer_names):
            met = True
            break
    emit({"event": "summary", "t_start": t_start, "t_end": time.monotonic(), "packets": packets,
          "by_source": by_source, "names": sorted(names), "goodbyes": goodbyes})
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
