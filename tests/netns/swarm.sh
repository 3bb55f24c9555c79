#!/usr/bin/env bash
# Discovery at the scale of a real LAN: one broadcast, 1,000 answers.
#
#   subnet 198.18.0.0/22 (RFC 2544 benchmarking range), one bridge
#   swarm  tests/netns/swarm.py: 1,000 addresses 198.18.0.1-198.18.3.232 on
#          one interface; answers each request once from every one of them
#   cl     the clients, one after the other:   198.18.3.254
#          discoveryd discover, and the Python client (django-udp-discovery-client 1.0.0)
#
# For each answer spread the swarm emulates (none: all at once; 0-20 ms;
# 20-120 ms, as mDNS spreads shared answers; 0-200 ms, as a fleet with
# reply_jitter = "200ms" does), each client discovers RUNS times.
# discoveryd must find at least MIN_FOUND of the 1,000 every time (it
# finds all: its receive buffer holds the whole burst); the Python
# client's counts are reported, not asserted. Everything lives in
# namespaces removed on exit, even on failure; the swarm exits by itself,
# and the whole script is stopped after 3 minutes (it takes about 40 s;
# SIGTERM, so that the trap still removes the namespaces).
# Needs root, iproute2 and the venv tests/netns/run.sh makes.
#
# Knobs: DISCOVERYD_BIN (another build, e.g. an older one, with
# SWARM_MIN_FOUND=0 to only report), SWARM_RUNS, SWARM_SPREADS ("0-0 20-120").
set -uo pipefail
if [ -z "${SWARM_WATCHDOG:-}" ]; then
  SWARM_WATCHDOG=1 exec timeout 180 bash "$0" "$@"
fi
cd "$(dirname "$0")/../.."

source tests/netns/lib.sh
need_root
use_discoveryd
VENV=${DISCOVERYD_PY_VENV:-$PWD/target/py-venv}
[ -x "$VENV/bin/python" ] || die "no venv at $VENV with the Python client; run tests/netns/run.sh first"
COUNT=1000
RUNS=${SWARM_RUNS:-3}
MIN_FOUND=${SWARM_MIN_FOUND:-1000}
SPREADS=${SWARM_SPREADS:-"0-0 0-20 20-120 0-200"}

# --- topology --------------------------------------------------------------
TAG="sw$$"
netns_setup sw swarm cl
bridge_add 0
plug swarm eth0 0 198.18.0.1/22
plug cl eth0 0 198.18.3.254/22
# The swarm's 1,000 addresses, in one batch (the first is primary, the
# rest secondary; promote_secondaries keeps them if it goes).
in_ns swarm sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1
python3 -c '
import ipaddress, itertools
hosts = ipaddress.ip_network("198.18.0.0/22").hosts()
for ip in itertools.islice(hosts, 1, int('"$COUNT"')):  # the first is plugged
    print(f"addr add {ip}/22 brd + dev eth0")' | ip -n "$TAG-swarm" -batch - || die "cannot add the swarm addresses"
got=$(ip -n "$TAG-swarm" -4 -o addr show dev eth0 | wc -l)
[ "$got" = "$COUNT" ] || die "set-up: the swarm has $got addresses, not $COUNT"

# A guard on the set-up: both bridge ports forward before anything is sent.
deadline=$((SECONDS + 10))
until [ "$(bridge -n "$TAG-sw" link show | grep -c 'state forwarding')" = 2 ]; do
  [ $SECONDS -lt $deadline ] || die "set-up: the bridge ports do not forward: $(bridge -n "$TAG-sw" link show)"
  sleep 0.05
done

# --- runs ------------------------------------------------------------------
port=$(in_ns swarm python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 0)); print(s.getsockname()[1])')
discoveryd_count() {
  in_ns cl timeout 20 "$BIN" discover --json --port "$port" --timeout 1s 2>"$WORK/client.err" \
    | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["servers"]))'
}
python_count() {
  in_ns cl timeout 20 "$VENV/bin/python" tests/netns/python_client.py "$port" 1.0 2>"$WORK/client.err" \
    | awk '{ print ($1 == "-") ? 0 : split($1, a, ",") }'
}
# answered_all N: the swarm's log reports N requests, each answered in full
# (so a shortfall is the client's, not the swarm's).
swarm_answered_all() {
  local deadline=$((SECONDS + 10))
  until [ "$(grep -c '^answered' "$WORK/swarm.out")" -ge "$1" ]; do
    [ $SECONDS -lt $deadline ] || die "the swarm did not finish answering: $(cat "$WORK/swarm.out"); the client said: $(cat "$WORK/client.err")"
    sleep 0.05
  done
  if grep '^answered' "$WORK/swarm.out" | grep -qv "^answered $COUNT of $COUNT .*(0 failed)"; then
    die "the swarm could not send every answer: $(grep '^answered' "$WORK/swarm.out")"
  fi
}

failed=0
rows=()
for spread in $SPREADS; do
  lo=${spread%-*} hi=${spread#*-}
  # Not through in_ns: $! must be the swarm itself (ip netns exec execs it).
  ip netns exec "$TAG-swarm" python3 tests/netns/swarm.py "$port" 198.18.0.0/22 "$COUNT" "$lo" "$hi" 90 \
    > "$WORK/swarm.out" 2>&1 &
  swarm=$!
  deadline=$((SECONDS + 10))
  until grep -q "swarm ready" "$WORK/swarm.out" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "the swarm did not start: $(cat "$WORK/swarm.out")"
    sleep 0.05
  done
  # Warm-up, polled with a deadline: the first request that the swarm
  # answers (the topology settled, the client's address resolved).
  deadline=$((SECONDS + 10))
  until grep -q '^answered' "$WORK/swarm.out"; do
    [ $SECONDS -lt $deadline ] || die "the swarm never answered a warm-up request: $(cat "$WORK/swarm.out"); the client said: $(cat "$WORK/client.err")"
    in_ns cl "$BIN" discover --port "$port" --timeout 300ms > /dev/null 2> "$WORK/client.err"
  done
  requests=$(grep -c '^answered' "$WORK/swarm.out")
  ours=() theirs=()
  for _ in $(seq "$RUNS"); do
    n=$(discoveryd_count); ours+=("${n:-0}")
    requests=$((requests + 1)); swarm_answered_all "$requests"
    n=$(python_count); theirs+=("${n:-0}")
    requests=$(grep -c '^answered' "$WORK/swarm.out"); swarm_answered_all "$requests"
  done
  kill "$swarm" 2>/dev/null; wait "$swarm" 2>/dev/null
  label=$([ "$hi" = 0 ] && echo "none" || echo "$lo-$hi ms")
  rows+=("$(printf '%-12s %-22s %s' "$label" "${ours[*]}" "${theirs[*]}")")
  for n in "${ours[@]}"; do
    if [ "$n" -lt "$MIN_FOUND" ]; then
      echo "not ok - spread $label: discoveryd discover found $n of $COUNT (want at least $MIN_FOUND)"
      failed=$((failed + 1))
    fi
  done
done

echo "swarm: servers found of $COUNT, $RUNS runs each (answer spread emulated by the swarm)"
printf '  %-12s %-22s %s\n' "spread" "discoveryd discover" "python client"
for row in "${rows[@]}"; do echo "  $row"; done
[ "$failed" = 0 ] && echo "ok - discoveryd discover found at least $MIN_FOUND of $COUNT in every run"
[ "$failed" = 0 ]
