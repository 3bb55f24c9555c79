#!/usr/bin/env python3
"""Watches a prefix of a real etcd with etcdctl, and stamps each event.

    watch.py ENDPOINT PREFIX

One JSON line per event on stdout, flushed at once:
    {"event": "ready", "t": ...}                         the watch is running
    {"event": "PUT" | "DELETE", "name": KEY, "value": ..., "t": ...}
`t` is time.monotonic() (CLOCK_MONOTONIC, comparable across processes).
It runs until killed.
"""
import base64
import json
import os
import subprocess
import sys
import threading
import time


def emit(event):
    event["t"] = time.monotonic()
    print(json.dumps(event), flush=True)


def main():
    endpoint, prefix = sys.argv[1], sys.argv[2]
    env = dict(os.environ, ETCDCTL_API="3")
    watch = subprocess.Popen(
        ["etcdctl", "--endpoints", endpoint, "watch", "--prefix", prefix, "-w", "json"],
        stdout=subprocess.PIPE, env=env, text=True)
    # etcdctl prints nothing once the watch runs: a key of our own, put
    # until the watch sees it, tells when it does.
    marker = prefix + "~watch-ready"
    seen = threading.Event()

    def mark():
        deadline = time.monotonic() + 10
        while not seen.is_set() and time.monotonic() < deadline:
            subprocess.run(["etcdctl", "--endpoints", endpoint, "put", marker, "1"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seen.wait(0.1)

    threading.Thread(target=mark, daemon=True).start()
    for line in watch.stdout:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        for e in doc.get("Events") or []:
            kv = e.get("kv", {})
            key = base64.b64decode(kv.get("key", "")).decode(errors="replace")
            value = base64.b64decode(kv.get("value", "")).decode(errors="replace")
            if key == marker:
                if not seen.is_set():
                    seen.set()
                    subprocess.run(["etcdctl", "--endpoints", endpoint, "del", marker],
                                   env=env, stdout=subprocess.DEVNULL)
                    emit({"event": "ready"})
                continue
            emit({"event": "DELETE" if e.get("type") == 1 else "PUT", "name": key, "value": value})


if __name__ == "__main__":
    main()
