"""Discover with django-udp-discovery-client 1.0.0; print "ip:port,ip:port SECONDS" on one line.

Usage: python python_client.py PORT TIMEOUT_SECONDS
"""
import sys
import time

from discovery_client import discover, load_config

port, timeout = int(sys.argv[1]), float(sys.argv[2])
start = time.monotonic()
servers = discover(load_config(timeout=timeout, discovery_port=port))
elapsed = time.monotonic() - start
print(",".join(sorted(f"{s.ip}:{s.port}" for s in servers)) or "-", f"{elapsed:.3f}")
