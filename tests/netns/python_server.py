"""Run the listener of django-udp-discovery 1.0.0 (the Python original) standalone.

Usage: python python_server.py PORT   # answers DISCOVER_SERVER on 0.0.0.0:PORT until SIGTERM
Used by run.sh for interop, inside a test network namespace only.
"""
import signal
import sys
import time

import django
from django.conf import settings

port = int(sys.argv[1])
settings.configure(INSTALLED_APPS=[], DISCOVERY_PORT=port, ENABLE_LOGGING=False)
django.setup()

from django_udp_discovery.listener import is_running, start_udp_service, stop_udp_service  # noqa: E402

if not start_udp_service():
    sys.exit("python listener failed to start")
print(f"python listener on port {port}", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (stop_udp_service(), sys.exit(0)))
while is_running():
    time.sleep(0.2)
