#!/usr/bin/env bash
# UDP throughput with [mdns] off against on, in one run: the issue's "the
# UDP benchmark figures are unchanged with mDNS enabled".
#
#   bash benches/mdns_overhead.sh [ROUNDS] [SECONDS]
#
# discoveryd runs in a network namespace of its own (mDNS is never enabled
# on the machine's real interfaces), with a veth to a second namespace
# whose client keeps asking for the mDNS service (20 PTR queries/s) while
# mDNS is on. `discoveryd bench` loads the UDP responder on the server's
# loopback. Rounds alternate off/on; the medians are printed. Figures only:
# nothing is asserted. Needs root, iproute2, and python-zeroconf in the
# netns suite's venv (target/py-venv, made by tests/netns/run.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-3}

die() { echo "mdns_overhead: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces)"
cargo build -q --release --bin discoveryd || die "cannot build discoveryd"
BIN=$PWD/target/release/discoveryd
PY=${DISCOVERYD_PY_VENV:-$PWD/target/py-venv}/bin/python
"$PY" -c 'import zeroconf' 2>/dev/null || die "python-zeroconf is missing from $PY; run tests/netns/run.sh once, or pip install zeroconf there"

WORK=$(mktemp -d)
TAG="mo$$"
cleanup() {
  for ns in srv cli; do ip netns pids "$TAG-$ns" 2>/dev/null | xargs -r kill 2>/dev/null; done
  for ns in srv cli; do ip netns del "$TAG-$ns" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
for ns in srv cli; do
  ip netns add "$TAG-$ns" || die "cannot create a network namespace"
  ip -n "$TAG-$ns" link set lo up
  ip netns exec "$TAG-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n "$TAG-srv" link add eth0 type veth peer name eth0 netns "$TAG-cli"
ip -n "$TAG-srv" addr add 10.77.0.1/24 dev eth0 && ip -n "$TAG-srv" link set eth0 up
ip -n "$TAG-cli" addr add 10.77.0.2/24 dev eth0 && ip -n "$TAG-cli" link set eth0 up

# one_round on|off: prints the requests per second.
one_round() {
  local mdns=$1 log="$WORK/srv.log" port="" querier=""
  DISCOVERYD_MDNS__ENABLED=$([ "$mdns" = on ] && echo true || echo false) \
    ip netns exec "$TAG-srv" "$BIN" run --port 0 --pidfile "$WORK/d-$mdns-$RANDOM.pid" > "$log" 2>&1 &
  local pid=$!
  local ready="listening on" deadline=$((SECONDS + 10))
  [ "$mdns" = on ] && ready="advertising over mDNS"
  until grep -q "$ready" "$log" && port=$(grep -o 'listening on 0.0.0.0:[0-9][0-9]*$' "$log" | grep -o '[0-9]*$'); do
    [ $SECONDS -lt $deadline ] || die "discoveryd did not start (mdns $mdns): $(cat "$log")"
    sleep 0.05 # poll, with a deadline
  done
  if [ "$mdns" = on ]; then
    ip netns exec "$TAG-cli" "$PY" tests/netns/mdns_query.py _discoveryd._udp.local. $((SECS * 20 + 40)) 20 10.77.0.2 &
    querier=$!
  fi
  local before; before=$(mdns_ticks "$pid")
  ip netns exec "$TAG-srv" "$BIN" bench --target "127.0.0.1:$port" --duration "${SECS}s" --json \
    > "$WORK/bench.json" 2> "$WORK/bench.err" || die "bench failed (mdns $mdns): $(cat "$WORK/bench.err")"
  [ "$mdns" = on ] && echo $(($(mdns_ticks "$pid") - before)) >> "$WORK/ticks"
  "$PY" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["requests_per_sec"]))' "$WORK/bench.json"
  [ -n "$querier" ] && kill "$querier" 2>/dev/null && wait "$querier" 2>/dev/null
  kill "$pid" && wait "$pid" 2>/dev/null
}
# mdns_ticks PID: CPU time (clock ticks) of PID's mDNS threads so far.
mdns_ticks() {
  local t sum=0
  for t in /proc/"$1"/task/*; do
    case $(cat "$t/comm") in mDNS_daemon|mdns-events) sum=$((sum + $(awk '{print $14 + $15}' "$t/stat"))) ;; esac
  done
  echo "$sum"
}

off=() on=()
for _ in $(seq "$ROUNDS"); do
  off+=("$(one_round off)")
  on+=("$(one_round on)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_off=$(median "${off[@]}") m_on=$(median "${on[@]}")
echo "UDP responder, ${SECS}s rounds, req/s:"
echo "  mdns off: ${off[*]}  (median $m_off)"
echo "  mdns on:  ${on[*]}  (median $m_on, with 20 mDNS queries/s)"
awk -v a="$m_off" -v b="$m_on" 'BEGIN { printf "  on/off: %.3f\n", b / a }'
echo "  CPU time of the mDNS threads during the on rounds: $(awk '{ s += $1 } END { print s }' "$WORK/ticks") ticks of 1/$(getconf CLK_TCK) s in all"
