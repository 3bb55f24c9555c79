"""Run avahi-browse in parseable mode and print its events as JSON lines.

    avahi_browse.py [--type TYPE] [--timeout T]

Runs `avahi-browse -p -r -t -a` (or `-p -r -t TYPE`), which needs a running
avahi-daemon reachable on DBUS_SYSTEM_BUS_ADDRESS (see start_avahi in
lib.sh), and prints one JSON line per event, in the shape
zeroconf_browse.py uses:

    {"event": "resolved", "name": "inst", "type": "_x._udp", "domain": "local",
     "interface": "eth0", "protocol": "IPv4", "server": "host.local",
     "addresses": ["192.0.2.1"], "port": 4242, "txt": {"k": "v"}}

for each "=" (resolved) line; "+" and "-" lines give "added" and
"removed" with the name, type, domain, interface and protocol only. "t" is
time.monotonic() when the line was read. Avahi's escapes in names
(\\DDD decimal, \\. and \\\\) are undone. avahi-browse -t exits once it has
dumped its cache ("all for now"); past --timeout (default 5 s) it is
killed and this exits 1. The exit status is avahi-browse's otherwise, so a
missing daemon or bus fails loudly.
"""

import argparse
import json
import queue
import re
import subprocess
import sys
import threading
import time


def unescape(label):
    return re.sub(r"\\(\d{3}|.)",
                  lambda m: chr(int(m.group(1))) if m.group(1).isdigit() else m.group(1),
                  label)


def split_fields(line):
    """Splits on ';' that avahi did not escape (it escapes them as \\059)."""
    return line.split(";")


def parse_txt(text):
    """avahi-browse -p prints TXT as space-separated "quoted" strings."""
    out = {}
    for item in re.findall(r'"((?:[^"\\]|\\.)*)"', text):
        item = unescape(item)
        key, sep, value = item.partition("=")
        out[key] = value if sep else None
    return out


def parse(line):
    f = split_fields(line.rstrip("\n"))
    kind = {"+": "added", "-": "removed", "=": "resolved"}.get(f[0])
    if kind is None or len(f) < 6:
        return None
    record = {"event": kind, "t": time.monotonic(), "interface": f[1], "protocol": f[2],
              "name": unescape(f[3]), "type": f[4], "domain": f[5]}
    if kind == "resolved" and len(f) >= 10:
        record.update({"server": f[6], "addresses": [f[7]], "port": int(f[8]),
                       "txt": parse_txt(";".join(f[9:]))})
    return record


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--type", default=None, help="service type; default: all (-a)")
    p.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args()
    cmd = ["avahi-browse", "-p", "-r", "-t"]
    cmd += [args.type] if args.type else ["-a"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + args.timeout
    code = None
    while True:
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(left, 0))
        except queue.Empty:
            proc.kill()
            sys.stderr.write("avahi_browse.py: avahi-browse did not finish within %ss\n" % args.timeout)
            code = 1
            break
        if line is None:
            break
        record = parse(line)
        if record is not None:
            print(json.dumps(record, sort_keys=True), flush=True)
    err = proc.stderr.read()
    returncode = proc.wait()
    if code is None:
        code = returncode
    if code != 0:
        sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
