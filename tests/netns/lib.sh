# shellcheck shell=bash
# Shared pieces for the network-namespace tests that speak mDNS (sourced).
#
# Everything here runs inside network namespaces that the sourcing script
# created and removes: mDNS never touches this machine's own interfaces.
# Real peers (a D-Bus system bus, avahi-daemon, avahi-browse/-publish,
# python-zeroconf) are started per namespace, with private files under $WORK.
#
# Use:
#   source tests/netns/lib.sh
#   netns_setup sw srv ca          # namespaces "$TAG-<name>", cleanup trap set
#   bridge_add a; plug srv eth-a a 192.0.2.1/24
#   start_avahi srv eth-a,eth-b    # a bus + avahi-daemon in srv, ready
#   avahi_publish srv NAME _x._udp 4242 k=v   # returns once announced
#   in_ns ca "$PY" tests/netns/zeroconf_browse.py _x._udp --timeout 5 --until first
#   in_ns_avahi av tests/netns/avahi_browse.py --type _x._udp
#   in_ns mon "$PY" tests/netns/mdns_count.py --seconds 3 --source 192.0.2.1
#   ... | resolved NAME; event_within / goodbye_within FILE ...
#
# Start long-running peers with spawn_in_ns (the pid is the peer's own, so
# a signal reaches it); mono_now stamps a cue (a SIGTERM, a publish) on the
# clock the JSON lines use.
#
# Needs root, iproute2, util-linux (unshare), dbus (dbus-daemon, dbus-send),
# avahi-daemon, avahi-utils, and python-zeroconf in $PY's environment; each
# missing one fails loudly (see need_tools).

die() { echo "netns: $*" >&2; exit 1; }

# Monotonic seconds (CLOCK_MONOTONIC, the clock zeroconf_browse.py and
# mdns_count.py stamp their events with; comparable across processes).
mono_now() { python3 -c 'import time; print("%.6f" % time.monotonic())'; }

# need_root: root and iproute2 (to make namespaces), or die.
need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root to create network namespaces (CI runs as root)"
  command -v ip > /dev/null || die "iproute2 (the ip command) is missing; install it: apt-get install iproute2"
}

# use_discoveryd: BIN, the discoveryd binary: $DISCOVERYD_BIN, or the
# debug build (built if missing), as an absolute path.
use_discoveryd() {
  BIN=${DISCOVERYD_BIN:-target/debug/discoveryd}
  [ -x "$BIN" ] || cargo build -q --bin discoveryd || die "cannot build discoveryd"
  BIN=$(realpath "$BIN")
}

# need_tools: every tool the mDNS checks use, or die naming its package;
# sets PY (the venv's python, with python-zeroconf) unless given.
need_tools() {
  PY=${PY:-${DISCOVERYD_PY_VENV:-$PWD/target/py-venv}/bin/python}
  need_root
  local tool pkg
  for tool in ip:iproute2 unshare:util-linux dbus-daemon:dbus dbus-send:dbus \
    avahi-daemon:avahi-daemon avahi-browse:avahi-utils avahi-publish:avahi-utils; do
    pkg=${tool#*:}; tool=${tool%%:*}
    command -v "$tool" > /dev/null || die "$tool is missing; install it: apt-get install $pkg (.ci/run does)"
  done
  "$PY" -c 'import zeroconf' 2> /dev/null \
    || die "python-zeroconf is missing from $PY; install it: $PY -m pip install zeroconf (.ci/run pins the version)"
}

# netns_setup NAME...: creates "$TAG-NAME" for each (lo up, IPv6 off), sets
# WORK (a temp dir) and a trap that, even on failure, kills every process
# in them, deletes them and removes WORK.
netns_setup() {
  NAMESPACES=("$@")
  WORK=$(mktemp -d)
  TAG=${TAG:-"md$$"}
  trap netns_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local ns
  for ns in "${NAMESPACES[@]}"; do
    ip netns add "$TAG-$ns" || die "cannot create network namespace $TAG-$ns"
    ip -n "$TAG-$ns" link set lo up
    ip netns exec "$TAG-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  done
}

netns_cleanup() {
  local ns
  for ns in "${NAMESPACES[@]}"; do
    ip netns pids "$TAG-$ns" 2> /dev/null | xargs -r kill 2> /dev/null
  done
  # Give them until a deadline to go, then force (a process that ignores
  # SIGTERM must not keep a namespace, or its mount namespace, alive).
  local deadline=$((SECONDS + 3)) left
  while :; do
    left=$(for ns in "${NAMESPACES[@]}"; do ip netns pids "$TAG-$ns" 2> /dev/null; done)
    [ -z "$left" ] && break
    [ $SECONDS -lt $deadline ] || { echo "$left" | xargs -r kill -9 2> /dev/null; break; }
    sleep 0.05
  done
  for ns in "${NAMESPACES[@]}"; do
    ip netns del "$TAG-$ns" 2> /dev/null
  done
  # NETNS_KEEP=DIR keeps the logs and outputs, to read after a failure.
  [ -n "${NETNS_KEEP:-}" ] && cp -r "$WORK" "$NETNS_KEEP"
  rm -rf "$WORK"
}

in_ns() { local ns=$1; shift; ip netns exec "$TAG-$ns" "$@"; }

# spawn_in_ns NS OUT CMD...: CMD in NS in the background, stdout and stderr
# to OUT; sets SPAWNED_PID to CMD's own pid (ip netns exec and env exec
# without forking), so a signal reaches CMD itself. (`in_ns ... &` would
# give the pid of a subshell: killing it leaves CMD running.)
spawn_in_ns() {
  local ns=$1 out=$2; shift 2
  ip netns exec "$TAG-$ns" "$@" > "$out" 2>&1 &
  SPAWNED_PID=$!
}

# bridge_add NAME: a bridge "br-NAME" in the switch namespace "$TAG-sw".
bridge_add() {
  ip -n "$TAG-sw" link add "br-$1" type bridge forward_delay 0 || die "cannot create bridge br-$1"
  ip -n "$TAG-sw" link set "br-$1" up
}

# plug HOST IFNAME SUBNET ADDRESS: a veth from HOST's IFNAME to bridge SUBNET.
# Multicast is on for veths by default; the bridge floods 224.0.0.251
# (link-local groups are never snooped away).
plug() {
  local host=$1 ifname=$2 subnet=$3 addr=$4 port="p-$1-$2"
  ip -n "$TAG-sw" link add "${port:0:15}" type veth peer name "$ifname" netns "$TAG-$host" || die "cannot create veth"
  ip -n "$TAG-sw" link set "${port:0:15}" master "br-$subnet" up
  ip -n "$TAG-$host" addr add "$addr" brd + dev "$ifname"
  ip -n "$TAG-$host" link set "$ifname" up
}

# lan_ab: the two subnets every suite starts from (namespaces sw, srv, ca
# and cb made by netns_setup): bridges a and b; srv two-homed, 192.0.2.1
# on A (eth-a) and 198.51.100.1 on B (eth-b); a client on each, ca
# 192.0.2.10 and cb 198.51.100.10.
lan_ab() {
  bridge_add a
  bridge_add b
  plug srv eth-a a 192.0.2.1/24
  plug srv eth-b b 198.51.100.1/24
  plug ca eth0 a 192.0.2.10/24
  plug cb eth0 b 198.51.100.10/24
}

# http_call NS PIDFILE METHOD PATH [BODY]: a request to the HTTP endpoint
# of the discoveryd in NS with PIDFILE (its address from its status), from
# inside NS; prints the status code and the body.
http_call() {
  local ns=$1 pidfile=$2 http; shift 2
  http=$(in_ns "$ns" "$BIN" status --json --pidfile "$pidfile" | python3 -c 'import json, sys; print(json.load(sys.stdin)["http"])')
  in_ns "$ns" python3 -c '
import sys, urllib.request, urllib.error
req = urllib.request.Request("http://%s%s" % (sys.argv[1], sys.argv[3]), method=sys.argv[2],
                             data=sys.argv[4].encode() if len(sys.argv) > 4 else None)
try:
    with urllib.request.urlopen(req, timeout=5) as r: print(r.status, r.read().decode())
except urllib.error.HTTPError as e: print(e.code, e.read().decode())' "$http" "$@"
}

passed=0; failed=0
check() {
  local name=$1; shift
  if "$@"; then echo "ok - $name"; passed=$((passed + 1)); else echo "not ok - $name"; failed=$((failed + 1)); fi
}
expect() { # expect WHAT GOT WANT
  [ "$2" = "$3" ] && return 0
  echo "  $1: got [$2], want [$3]"; return 1
}

# wait_until SECONDS WHAT CMD...: runs CMD until it succeeds, at most
# SECONDS; false (saying WHAT did not happen) past the deadline.
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline; deadline=$(($(date +%s%N) + limit * 1000000000))
  until "$@"; do
    [ "$(date +%s%N)" -lt "$deadline" ] || { echo "  $what: not within ${limit} s"; return 1; }
    sleep 0.05
  done
}

# --- D-Bus and Avahi -------------------------------------------------------

# bus_address NS: the D-Bus address of NS's private system bus.
bus_address() { echo "unix:path=$WORK/$1/bus.sock"; }

# in_ns_bus NS CMD...: CMD in NS, with NS's private bus as the system bus
# (avahi-browse, avahi-publish, dbus-send).
in_ns_bus() {
  local ns=$1; shift
  in_ns "$ns" env DBUS_SYSTEM_BUS_ADDRESS="$(bus_address "$ns")" "$@"
}

# start_bus NS: a dbus-daemon for NS, listening on $WORK/NS/bus.sock, with
# a config written here (no pidfile, no syslog, no service activation, no
# user switch). Returns once the bus answers.
start_bus() {
  local ns=$1 dir="$WORK/$1"
  mkdir -p "$dir"
  cat > "$dir/bus.conf" << EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
EOF
  in_ns "$ns" dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile \
    > "$dir/bus.out" 2> "$dir/bus.err" &
  wait_until 10 "the D-Bus bus of $ns answering" \
    in_ns_bus "$ns" dbus-send --system --print-reply --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.GetId > /dev/null 2>&1 \
    || die "dbus-daemon did not start in $ns: $(cat "$dir/bus.err")"
}

# avahi_state NS: the Avahi server state (2 = running: host name
# established, ready to browse and publish), or nothing.
avahi_state() {
  in_ns_bus "$1" dbus-send --system --print-reply --dest=org.freedesktop.Avahi / \
    org.freedesktop.Avahi.Server.GetState 2> /dev/null | awk '/int32/ { print $2 }'
}

# start_avahi NS IFACES [HOSTNAME]: start_bus NS, then avahi-daemon on the
# comma-separated IFACES of NS only (IPv4, no wide-area, no reflector),
# with host name HOSTNAME (default NS; a namespace shares the machine's
# UTS name, so each needs its own or they would conflict). It runs in a
# private mount namespace with a tmpfs on /run (its pidfile and socket
# live in /run/avahi-daemon) and on /etc/avahi/services (no static
# services), as root (--no-drop-root: the bus socket is root's),
# unchrooted, logging to $WORK/NS/avahi.log. Returns once the server state
# is "running".
start_avahi() {
  local ns=$1 ifaces=$2 host=${3:-$1} dir="$WORK/$1"
  start_bus "$ns"
  cat > "$dir/avahi.conf" << EOF
[server]
host-name=$host
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=$ifaces
enable-dbus=yes
disallow-other-stacks=no
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
publish-addresses=yes
[reflector]
enable-reflector=no
[rlimits]
EOF
  in_ns_bus "$ns" unshare --mount --propagation private sh -c '
    mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon || exit 1
    [ ! -d /etc/avahi/services ] || mount -t tmpfs tmpfs /etc/avahi/services || exit 1
    exec avahi-daemon --file="$1" --no-chroot --no-drop-root --no-rlimits --no-proc-title --debug
  ' sh "$dir/avahi.conf" > "$dir/avahi.log" 2>&1 &
  wait_until 15 "avahi-daemon in $ns running" eval '[ "$(avahi_state "$ns")" = 2 ]' \
    || die "avahi-daemon did not start in $ns: $(tail -20 "$dir/avahi.log")"
}

# avahi_publish NS NAME TYPE PORT [TXT...]: avahi-publish -s in NS, in the
# background; returns once Avahi says the service is established (false
# after 10 s, or if it exits). Sets AVAHI_PUBLISH_PID; its output is in
# $WORK/NS/publish-<NAME>.out (the established name may differ after a
# conflict: see avahi_published_name).
avahi_publish() {
  local ns=$1 name=$2 out="$WORK/$1/publish-${2//[^A-Za-z0-9_-]/_}.out"
  shift 2
  spawn_in_ns "$ns" "$out" env DBUS_SYSTEM_BUS_ADDRESS="$(bus_address "$ns")" avahi-publish -s "$name" "$@"
  AVAHI_PUBLISH_PID=$SPAWNED_PID
  wait_until 10 "avahi-publish '$name' in $ns established" \
    eval 'grep -q "^Established under name" "$out" || ! kill -0 $AVAHI_PUBLISH_PID 2> /dev/null'
  grep -q "^Established under name" "$out" && return 0
  echo "  avahi-publish '$name' in $ns: $(cat "$out")"; return 1
}

# avahi_published_name NS NAME: the name avahi-publish established NAME under.
avahi_published_name() {
  sed -n "s/^Established under name '\(.*\)'$/\1/p" "$WORK/$1/publish-${2//[^A-Za-z0-9_-]/_}.out" | tail -1
}

# --- reading the JSON lines of zeroconf_browse.py, avahi_browse.py and
# mdns_count.py ---------------------------------------------------------------

# resolved NAME: from JSON lines on stdin, the first resolved event (one
# with a port) of instance NAME, as "name|addresses|port|txt" (addresses
# comma-joined, txt sorted k=v comma-joined); nothing if none.
resolved() {
  python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("port") is not None and e.get("name") == sys.argv[1]:
        txt = ",".join(k if v is None else "%s=%s" % (k, v) for k, v in sorted(e["txt"].items()))
        print("%s|%s|%s|%s" % (e["name"], ",".join(e["addresses"]), e["port"], txt))
        break' "$1"
}

# event_within FILE EVENT NAME T0 SECONDS: FILE (zeroconf_browse.py output)
# has EVENT (added, updated, removed; or resolved: any event with a port)
# for instance NAME at most SECONDS after T0 (mono_now), the first one at
# or after T0; prints the delay.
event_within() {
  python3 -c '
import json, sys
path, event, name, t0, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
for line in open(path):
    e = json.loads(line)
    hit = e["event"] == event or (event == "resolved" and e.get("port") is not None)
    if hit and e.get("name") == name and e["t"] >= t0:
        print("  %s %s %.3f s after the cue" % (name, event, e["t"] - t0))
        sys.exit(0 if e["t"] - t0 <= limit else 1)
print("  never %s: %s" % (event, name)); print(open(path).read()); sys.exit(1)' "$@"
}

# goodbye_within FILE RECORD T0 SECONDS: FILE (mdns_count.py --lines
# output) has a packet sending RECORD (a full name) with TTL 0 at most
# SECONDS after T0; prints the delay.
goodbye_within() {
  python3 -c '
import json, sys
path, name, t0, limit = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
for line in open(path):
    e = json.loads(line)
    if e["event"] == "packet" and name in e["ttl0"]:
        print("  goodbye on the wire %.3f s after the cue" % (e["t"] - t0))
        sys.exit(0 if e["t"] - t0 <= limit else 1)
print("  no goodbye for", name, "seen:", open(path).read()); sys.exit(1)' "$1" "$2" "$3" "$4"
}

# mdns_found NS ARGS...: `discoveryd discover --mdns ARGS --json` in NS, as
# "instance|addresses|port|txt" rows joined by ";" (sorted); its exit
# status is then in found_rc.
mdns_found() {
  local ns=$1; shift
  in_ns "$ns" "$BIN" discover --mdns "$@" --json > "$WORK/found.json" 2> "$WORK/found.err"
  echo $? > "$WORK/found.rc"
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
rows = []
for s in d["servers"]:
    txt = ",".join(k if v is None else "%s=%s" % (k, v) for k, v in sorted(s["txt"].items()))
    rows.append("%s|%s|%s|%s" % (s["instance"], ",".join(s["addresses"]), s["port"], txt))
print(";".join(sorted(rows)))' "$WORK/found.json" 2> /dev/null || cat "$WORK/found.err"
}
found_rc() { cat "$WORK/found.rc"; }
