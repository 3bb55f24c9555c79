#!/usr/bin/env bash
# discoveryd on a simulated LAN, built from network namespaces.
#
#   subnet A 192.0.2.0/24 (TEST-NET-1)          subnet B 198.51.100.0/24 (TEST-NET-2)
#   ca   client            192.0.2.10           cb   client            198.51.100.10
#   srv  discoveryd        192.0.2.1  <-- same host -->                198.51.100.1  (two-homed)
#   srv2 discoveryd        192.0.2.2
#   pya  Python original   192.0.2.3  (no default route)
#   pyb  Python original                        198.51.100.3 (default route into B)
#
# All hosts hang off two bridges in a switch namespace; no namespace has a
# route out of it. discoveryd hosts have no default route at all. Every
# address used lives inside these namespaces, which are removed on exit,
# even on failure. Needs root and iproute2; fails loudly without them.
set -uo pipefail
cd "$(dirname "$0")/../.."

source tests/netns/lib.sh
need_root
use_discoveryd
VENV=${DISCOVERYD_PY_VENV:-$PWD/target/py-venv}

# --- topology --------------------------------------------------------------
TAG="dd$$"
netns_setup sw srv srv2 ca cb pya pyb
lan_ab
plug srv2 eth0 a 192.0.2.2/24
plug pya eth0 a 192.0.2.3/24
plug pyb eth0 b 198.51.100.3/24
ip -n "$TAG-pyb" route add default via 198.51.100.254
# A guard on the set-up, not a check: the discoveryd hosts must have no
# default route, or test 3 below would prove nothing.
for ns in srv srv2; do
  [ -z "$(ip -n "$TAG-$ns" route show default)" ] || die "set-up: $TAG-$ns has a default route"
done

# --- helpers (check, expect and the topology's are in lib.sh) ------------
# A port free in srv's namespace. Nothing else runs in these namespaces,
# so nothing can take it before discoveryd binds it (unlike on the host,
# where tests run in parallel).
free_port() {
  in_ns srv python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 0)); print(s.getsockname()[1])'
}
# wait_for FILE TEXT: poll FILE for TEXT, with a 10 s deadline.
wait_for() {
  local deadline=$((SECONDS + 10))
  until grep -q "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "  no '$2' in $1 within 10 s:"; cat "$1"; return 1; }
    sleep 0.05
  done
}
# found NS ARGS...: "ip:port ..." sorted, as discoveryd discover (JSON) reports it from NS.
found() {
  local ns=$1; shift
  in_ns "$ns" "$BIN" discover --json "$@" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(sorted("%s:%s" % (s["ip"], s["port"] or "-") for s in d["servers"])))'
}
elapsed_ms() {
  local ns=$1; shift
  in_ns "$ns" "$BIN" discover --json "$@" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["elapsed_ms"])'
}
start_discoveryd() { # start_discoveryd NS CONFIG
  in_ns "$1" "$BIN" run --config "$2" > "$WORK/$1.out" 2> "$WORK/$1.err" &
  wait_for "$WORK/$1.out" "listening on" || die "discoveryd did not start in $1: $(cat "$WORK/$1.err")"
}

# --- servers ---------------------------------------------------------------
P=$(free_port)
# Hosts share this machine's filesystem: each server needs its own pidfile.
printf 'port = %s\nservice_port = 8080\npidfile = "%s"\n' "$P" "$WORK/srv.pid" > "$WORK/srv.toml"
printf 'port = %s\npidfile = "%s"\n' "$P" "$WORK/srv2.pid" > "$WORK/srv2.toml"
start_discoveryd srv "$WORK/srv.toml"
start_discoveryd srv2 "$WORK/srv2.toml"

# 1. Broadcast discovery from each client finds exactly its subnet's
#    servers, each with its address on that subnet.
check "client on A finds srv and srv2 by their A addresses" \
  expect "from ca" "$(found ca --port "$P" --timeout 1s)" "192.0.2.1:8080 192.0.2.2:-"
check "client on B finds only srv, by its B address" \
  expect "from cb" "$(found cb --port "$P" --timeout 1s)" "198.51.100.1:8080"

echo "  what a user on A sees:"
in_ns ca "$BIN" discover --port "$P" --timeout 1s 2>&1 | sed 's/^/    /'

# 2. --first returns well before the timeout.
first_ms=$(elapsed_ms ca --port "$P" --timeout 5s --first)
echo "  --first answered in ${first_ms} ms (timeout 5 s)"
check "--first returns well before the timeout" awk -v ms="${first_ms:-99999}" 'BEGIN { exit !(ms < 1000) }'

# 3. No default route (guarded above): never 127.0.0.1 to a remote client
#    (the exact sets above prove it); the Python original, in the same
#    spot, does answer it (the control below).

# --- interop with the Python originals --------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || die "cannot create a venv at $VENV"
fi
"$VENV/bin/pip" install -q django django-udp-discovery==1.0.0 "django-udp-discovery-client[network]==1.0.0" \
  || die "cannot install the Python originals from PyPI"

read -r py_found py_secs < <(in_ns ca "$VENV/bin/python" tests/netns/python_client.py "$P" 1.0)
check "the Python client finds discoveryd with the service port, or 8000" \
  expect "python client on A" "$py_found" "192.0.2.1:8080,192.0.2.2:8000"
echo "  the Python client took ${py_secs} s (it always waits its full 1 s timeout)"
read -r py_found_b _ < <(in_ns cb "$VENV/bin/python" tests/netns/python_client.py "$P" 1.0)
check "the Python client on B finds discoveryd's B address" \
  expect "python client on B" "$py_found_b" "198.51.100.1:8080"

PP=$(free_port)
for host in pya pyb; do
  in_ns "$host" "$VENV/bin/python" tests/netns/python_server.py "$PP" > "$WORK/$host.out" 2>&1 &
  wait_for "$WORK/$host.out" "python listener on port" || die "the Python server did not start in $host"
done
check "discoveryd discover finds the Python server (with a default route)" \
  expect "from cb" "$(found cb --port "$PP" --timeout 1s)" "198.51.100.3:-"
check "control: the Python server without a default route answers 127.0.0.1" \
  expect "from ca" "$(found ca --port "$PP" --timeout 1s)" "127.0.0.1:-"

# 4. A port and message hot-reloaded on srv2 are seen by the next discovery.
P2=$(free_port)
printf 'port = %s\nmessage = "DISCOVER_TWO"\npidfile = "%s"\n' "$P2" "$WORK/srv2.pid" > "$WORK/srv2.toml.new"
mv "$WORK/srv2.toml.new" "$WORK/srv2.toml"
reloaded() {
  local deadline=$((SECONDS + 10)) got
  while [ $SECONDS -lt $deadline ]; do
    got=$(found ca --port "$P2" --message DISCOVER_TWO --timeout 200ms)
    [ "$got" = "192.0.2.2:-" ] && return 0
  done
  echo "  after the reload: got [$got], want [192.0.2.2:-]"; return 1
}
check "srv2's new port and message are seen by the next discovery" reloaded
check "srv2 left the old port" \
  expect "from ca, old port" "$(found ca --port "$P" --timeout 500ms)" "192.0.2.1:8080"

# 5. Under the shipped unit's restrictions: the seccomp filter its
#    RestrictAddressFamilies= makes (read from the unit file), and an
#    unprivileged user, as DynamicUser= gives. getifaddrs() needs netlink.
/usr/bin/python3 -c 'import seccomp' 2>/dev/null \
  || die "Debian's python3-seccomp is missing; install it: apt-get install python3-seccomp"
SANDBOX=(/usr/bin/python3 tests/netns/unit_sandbox.py config/discoveryd.service)
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
chmod 755 "$WORK"
mkdir -p "$WORK/unit-run" && chown 65534:65534 "$WORK/unit-run"
PU=$(free_port)
printf 'port = %s\n' "$PU" > "$WORK/unit.toml"
in_ns srv "${SANDBOX[@]}" -- "${AS_NOBODY[@]}" "$BIN" run --config "$WORK/unit.toml" \
  --pidfile "$WORK/unit-run/discoveryd.pid" > "$WORK/unit.out" 2> "$WORK/unit.err" &
wait_for "$WORK/unit.out" "listening on" || die "discoveryd did not start under the unit's sandbox: $(cat "$WORK/unit.err")"
check "under the unit's sandbox, a client on A is answered with the A address" \
  expect "from ca" "$(found ca --port "$PU" --timeout 1s)" "192.0.2.1:-"
check "under the unit's sandbox, a client on B is answered with the B address" \
  expect "from cb" "$(found cb --port "$PU" --timeout 1s)" "198.51.100.1:-"
in_ns srv "${SANDBOX[@]}" --drop AF_NETLINK -- "${AS_NOBODY[@]}" "$BIN" run --config "$WORK/unit.toml" \
  --port 0 --pidfile "$WORK/unit-run/control.pid" > "$WORK/control.out" 2> "$WORK/control.err"
code=$?
no_netlink_is_loud() {
  [ "$code" = 1 ] && grep -q "cannot list this host's network interfaces" "$WORK/control.err" \
    && grep -q AF_NETLINK "$WORK/control.err" && return 0
  echo "  exit $code: $(cat "$WORK/control.err")"; return 1
}
check "control: without AF_NETLINK, start-up fails loudly (exit 1, naming AF_NETLINK)" no_netlink_is_loud

# 6. A request forged from subnet A's broadcast address (as anyone on A
#    could send) is refused: its answer would reach every host on A.
in_ns srv sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth-a.rp_filter=0
in_ns pya python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 5555))
print("ready", flush=True)
s.settimeout(1.5)
try:
    print("GOT", s.recvfrom(100)[0].decode(errors="replace"), flush=True)
except socket.timeout:
    print("nothing", flush=True)' > "$WORK/victim.out" &
victim=$!
wait_for "$WORK/victim.out" ready || die "the listener on pya did not start"
refused_source() {
  in_ns srv "$BIN" status --pidfile "$WORK/srv.pid" --json | python3 -c '
import json, sys
print(json.load(sys.stdin)["counters"]["refused"].get("source_address", 0))'
}
before=$(refused_source)
in_ns ca python3 tests/netns/spoof.py 192.0.2.255 5555 192.0.2.1 "$P" DISCOVER_SERVER
forged_broadcast_refused() {
  local deadline=$((SECONDS + 10))
  until [ "$(refused_source)" -gt "$before" ]; do
    [ $SECONDS -lt $deadline ] || { echo "  srv never counted the forged request"; return 1; }
    sleep 0.05
  done
  wait "$victim"
  grep -q nothing "$WORK/victim.out" && return 0
  echo "  a host on A received: $(cat "$WORK/victim.out")"; return 1
}
check "a request forged from A's broadcast address is refused, and nobody on A gets an answer" \
  forged_broadcast_refused

echo "netns: $passed passed, $failed failed"
[ "$failed" = 0 ]
