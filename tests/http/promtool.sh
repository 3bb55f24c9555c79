#!/usr/bin/env bash
# /metrics against Prometheus's own linter: discoveryd with [http] on an
# ephemeral loopback port, one discovery answered and one refused, a
# service registered, then
# `promtool check metrics` (Debian's prometheus package) on the scrape.
# Loopback only. Fails loudly if promtool is missing.
set -uo pipefail
cd "$(dirname "$0")/../.."
die() { echo "promtool: $*" >&2; exit 1; }
command -v promtool > /dev/null || die "promtool is missing; install it: apt-get install prometheus (.ci/run does)"
BIN=${DISCOVERYD_BIN:-target/debug/discoveryd}
[ -x "$BIN" ] || cargo build -q --bin discoveryd || die "cannot build discoveryd"
WORK=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2> /dev/null; wait 2> /dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

printf 'bind = "127.0.0.1"\n[http]\nlisten = "127.0.0.1:0"\n' > "$WORK/d.toml"
"$BIN" run --port 0 --config "$WORK/d.toml" --pidfile "$WORK/d.pid" > "$WORK/out" 2>&1 &
pid=$!
deadline=$((SECONDS + 10))
until grep -q "HTTP endpoint listening" "$WORK/out"; do # poll, with a deadline
  [ $SECONDS -lt $deadline ] || die "discoveryd did not start: $(cat "$WORK/out")"
  sleep 0.05
done
http=$(grep -o 'HTTP endpoint listening listen=[0-9.:]*' "$WORK/out" | sed 's/.*listen=//')
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/out" | grep -o '[0-9]*$' | head -1)
python3 - "$port" "$http" > "$WORK/metrics" << 'PY' || die "cannot scrape /metrics"
import socket, sys, urllib.request
port, http = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(b"DISCOVER_SERVER", ("127.0.0.1", port))
assert s.recv(64) == b"SERVER_IP:127.0.0.1"
s.sendto(b"", ("127.0.0.1", port))  # refused: empty
put = urllib.request.Request("http://%s/v1/services/api-1" % http, method="PUT",
                             data=b'{"name": "api", "port": 8080, "ttl": "1m"}')
assert urllib.request.urlopen(put, timeout=5).status == 201
print(urllib.request.urlopen("http://%s/metrics" % http, timeout=5).read().decode(), end="")
PY
echo "scraped $(wc -l < "$WORK/metrics") lines from http://$http/metrics"
if promtool check metrics < "$WORK/metrics"; then
  echo "ok - promtool check metrics accepts the scrape"
else
  echo "not ok - promtool check metrics:"; cat "$WORK/metrics"; exit 1
fi
grep -q '^discoveryd_answers_total 1$' "$WORK/metrics" || die "answers_total is not 1: $(cat "$WORK/metrics")"
echo "ok - the scrape counts the answered request"
grep -q '^discoveryd_registrations 1$' "$WORK/metrics" || die "registrations is not 1: $(cat "$WORK/metrics")"
echo "ok - and the registered service"
