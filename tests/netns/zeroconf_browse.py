"""Browse one DNS-SD service type with python-zeroconf and print what is seen.

Run it inside a test's network namespace (it joins 224.0.0.251 on every
IPv4 interface there):

    zeroconf_browse.py TYPE [--timeout T] [--until first|removed|name=NAME]

TYPE is "_x._udp" or "_x._udp.local.". Prints one JSON line per event,
flushed at once:

    {"event": "ready", "t": ...}                       the browser is running
    {"event": "added"|"updated"|"removed", "t": ..., "name": "inst",
     "fullname": "inst._x._udp.local.", "server": "host.local.",
     "addresses": ["192.0.2.1"], "port": 4242, "txt": {"k": "v"}}

"t" is time.monotonic() (CLOCK_MONOTONIC, as `mono_now` in lib.sh) when
the event reached this process; for added/updated, server, addresses, port
and txt come from resolving the instance (null/empty if it could not be
resolved within 2 s). A TXT key without "=" has the value null.

--until stops early: "first" at the first resolved instance, "removed"
when an instance seen before is removed, "name=NAME" when instance NAME is
resolved. The exit status is 0 when the condition was met (or none was
given), 1 at the timeout without it, 2 on bad usage.
"""

import argparse
import json
import queue
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf


def service_type(text):
    t = text if text.endswith(".") else text + "."
    if not t.endswith(".local."):
        t += "local."
    return t


def emit(record):
    print(json.dumps(record, sort_keys=True), flush=True)


def txt_of(info):
    out = {}
    for k, v in (info.properties or {}).items():
        if k in (b"", "") and v is None:
            continue  # an empty TXT record is one empty string (RFC 6763 6.1)
        key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
        out[key] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("type")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to browse at most")
    p.add_argument("--until", default=None, help="first | removed | name=NAME")
    args = p.parse_args()
    if args.until not in (None, "first", "removed") and not (args.until or "").startswith("name="):
        p.error("--until takes first, removed or name=NAME")
    stype = service_type(args.type)

    events = queue.Queue()

    def on_change(zeroconf, service_type, name, state_change):
        events.put((time.monotonic(), name, state_change))

    deadline = time.monotonic() + args.timeout
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    met = args.until is None
    try:
        ServiceBrowser(zc, stype, handlers=[on_change])
        emit({"event": "ready", "t": time.monotonic(), "type": stype})
        known = {}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                t, fullname, change = events.get(timeout=left)
            except queue.Empty:
                break
            name = fullname[: -len(stype) - 1] if fullname.endswith("." + stype) else fullname
            record = {"t": t, "name": name, "fullname": fullname,
                      "server": None, "addresses": [], "port": None, "txt": {}}
            if change is ServiceStateChange.Removed:
                record.update(known.pop(fullname, {}))
                record["event"] = "removed"
                emit(record)
                if args.until == "removed":
                    met = True
                    break
                continue
            record["event"] = "added" if change is ServiceStateChange.Added else "updated"
            info = ServiceInfo(stype, fullname)
            if info.request(zc, 2000):
                record.update({
                    "server": info.server,
                    "addresses": sorted(info.parsed_addresses()),
                    "port": info.port,
                    "txt": txt_of(info),
                })
                known[fullname] = {k: record[k] for k in ("server", "addresses", "port", "txt")}
            emit(record)
            if record["port"] is not None and (
                args.until == "first" or args.until == "name=" + name
            ):
                met = True
                break
    finally:
        zc.close()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
