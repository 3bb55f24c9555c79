#!/usr/bin/env bash
# mDNS/DNS-SD against real peers (Avahi, python-zeroconf), on a simulated
# LAN built from network namespaces. mDNS never runs on this machine's own
# interfaces: every peer runs inside the namespaces below, which are
# removed on exit, even on failure.
#
#   subnet A 192.0.2.0/24 (TEST-NET-1)          subnet B 198.51.100.0/24 (TEST-NET-2)
#   srv  avahi-daemon (+ discoveryd later)  192.0.2.1 <-- same host --> 198.51.100.1
#   ca   client: python-zeroconf, discoveryd discover   192.0.2.10
#   cb   client: python-zeroconf, discoveryd discover                198.51.100.10
#   av   avahi-daemon: avahi-browse, and a conflicting avahi-publish  192.0.2.20
#   mon  mdns_count.py, a passive packet counter        192.0.2.30
#
# The pieces (lib.sh, zeroconf_browse.py, avahi_browse.py, mdns_count.py)
# are described in lib.sh. Needs root; every tool missing fails loudly.
# Bounded in time: each wait has a deadline of a few seconds.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/netns/lib.sh

need_tools
use_discoveryd

netns_setup sw srv ca cb av mon
echo "# namespaces $TAG-*, work dir $WORK"
lan_ab
plug av eth0 a 192.0.2.20/24
plug mon eth0 a 192.0.2.30/24

TYPE=_discoveryd._udp

# zc NS ARGS...: zeroconf_browse.py in NS.
zc() { local ns=$1; shift; in_ns "$ns" "$PY" tests/netns/zeroconf_browse.py "$@"; }

# --- the peers ---------------------------------------------------------------
start_avahi srv eth-a,eth-b
start_avahi av eth0
check "avahi-publish on srv announces a service" \
  avahi_publish srv "Harness Web" "$TYPE" 4242 path=/x mode=test

# 1. python-zeroconf on each subnet finds the instance with that subnet's
#    address, its port and its TXT record.
check "python-zeroconf on A resolves the Avahi service with its A address" \
  expect "zeroconf on ca" "$(zc ca "$TYPE" --timeout 5 --until first | resolved "Harness Web")" \
  "Harness Web|192.0.2.1|4242|mode=test,path=/x"
check "python-zeroconf on B resolves the Avahi service with its B address" \
  expect "zeroconf on cb" "$(zc cb "$TYPE" --timeout 5 --until first | resolved "Harness Web")" \
  "Harness Web|198.51.100.1|4242|mode=test,path=/x"

# 2. avahi-browse (through Avahi on av) finds it too, in the same shape.
avahi_finds() { # avahi_finds WANT [TYPE]: polls avahi-browse -t until it lists WANT
  local want=$1 got
  shift
  local deadline=$((SECONDS + 8))
  while [ $SECONDS -lt $deadline ]; do
    got=$(in_ns_bus av "$PY" tests/netns/avahi_browse.py "$@" --timeout 5 | resolved "Harness Web")
    [ "$got" = "$want" ] && return 0
  done
  echo "  avahi-browse on av: got [$got], want [$want]"; return 1
}
check "avahi-browse -a -r -t on A resolves it with its A address" \
  avahi_finds "Harness Web|192.0.2.1|4242|mode=test,path=/x"
check "avahi-browse -r -t $TYPE on A resolves it with its A address" \
  avahi_finds "Harness Web|192.0.2.1|4242|mode=test,path=/x" --type "$TYPE"

# 3. The packet counter sees the announcements of a new service, from
#    srv's A address only, and nothing from a host that stays silent.
in_ns mon "$PY" tests/netns/mdns_count.py --seconds 8 --source 192.0.2.1 --lines \
  --until-name "Counted._discoveryd" > "$WORK/count.out" &
counter=$!
wait_until 5 "the counter ready" grep -q '"ready"' "$WORK/count.out" || die "mdns_count.py did not start"
avahi_publish srv Counted "$TYPE" 4243 || die "avahi-publish Counted failed"
counted() {
  wait "$counter" || { echo "  the counter never saw Counted from 192.0.2.1:"; cat "$WORK/count.out"; return 1; }
  python3 -c '
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if "summary" in l][0]
ok = s["packets"] >= 1 and s["by_source"].get("192.0.2.1", 0) == s["packets"] and "192.0.2.10" not in s["by_source"]
ok = ok and any("Counted._discoveryd._udp.local." == n for n in s["names"])
print("  counted %d packet(s) from 192.0.2.1; all senders: %s" % (s["packets"], s["by_source"]))
sys.exit(0 if ok else 1)' "$WORK/count.out"
}
check "the packet counter sees srv announce a new service (and no packet from the silent ca)" counted

# 4. Removal: SIGTERM to avahi-publish makes Avahi send a goodbye (TTL 0);
#    the counter sees it on the wire and the zeroconf browser reports the
#    instance removed, both within 1 s.
avahi_publish srv Leaving "$TYPE" 4244 || die "avahi-publish Leaving failed"
leaving=$AVAHI_PUBLISH_PID
zc ca "$TYPE" --timeout 8 --until removed > "$WORK/leave.out" &
browser=$!
wait_until 5 "the browser on ca resolving Leaving" grep -q '"name": "Leaving".*"port": 4244' "$WORK/leave.out" \
  || die "zeroconf never saw Leaving: $(cat "$WORK/leave.out")"
# The counter's window starts after the announcements.
in_ns mon "$PY" tests/netns/mdns_count.py --seconds 5 --source 192.0.2.1 --lines \
  > "$WORK/goodbye.out" &
counter=$!
wait_until 5 "the second counter ready" grep -q '"ready"' "$WORK/goodbye.out" || die "mdns_count.py did not start"
t_term=$(mono_now)
kill -TERM "$leaving"
wait "$browser"
check "a service whose publisher gets SIGTERM is seen removed within 1 s" \
  event_within "$WORK/leave.out" removed Leaving "$t_term" 1.0
wait "$counter"
check "the packet counter sees its goodbye (TTL 0) within 1 s" \
  goodbye_within "$WORK/goodbye.out" "Leaving._discoveryd._udp.local." "$t_term" 1.0

# 5. Conflict: av publishes a name srv already holds; Avahi on av renames
#    its instance, and the zeroconf browser sees the new name. Avahi probes
#    (RFC 6762 8.1: up to 250 ms, then 3 probes 250 ms apart), loses, and
#    probes the new name again: about 2 s here, so the bound for Avahi is
#    4 s (RENAME_LIMIT; the discoveryd check will use 2 s).
RENAME_LIMIT=4.0
zc ca "$TYPE" --timeout 10 --until "name=Harness Web #2" > "$WORK/rename.out" &
browser=$!
wait_until 5 "the browser on ca ready" grep -q '"ready"' "$WORK/rename.out" || die "zeroconf did not start"
t_pub=$(mono_now)
avahi_publish av "Harness Web" "$TYPE" 5000 || die "avahi-publish on av failed"
renamed() {
  local name; name=$(avahi_published_name av "Harness Web")
  expect "the name av's Avahi chose" "$name" "Harness Web #2" || return 1
  wait "$browser" || { echo "  zeroconf never resolved it:"; cat "$WORK/rename.out"; return 1; }
  event_within "$WORK/rename.out" resolved "Harness Web #2" "$t_pub" "$RENAME_LIMIT"
}
check "a conflicting name is renamed by Avahi and the new name seen within ${RENAME_LIMIT} s" renamed

# --- discoveryd as the browser (discoveryd discover --mdns) -----------------
# mdns_found NS ARGS...: "instance|addresses|port|txt;..." sorted, from
# discoveryd discover --mdns --json in NS (its exit status: found_rc).
# Instances of $TYPE on A now: srv's two, and av's renamed one.
check "discover --mdns on A finds every instance of $TYPE with its A address, port and TXT" \
  expect "from ca" "$(mdns_found ca --timeout 3s)" \
  "Counted|192.0.2.1|4243|;Harness Web #2|192.0.2.20|5000|;Harness Web|192.0.2.1|4242|mode=test,path=/x"
check "discover --mdns on B finds srv's instances by their B address" \
  expect "from cb" "$(mdns_found cb --timeout 3s)" \
  "Counted|198.51.100.1|4243|;Harness Web|198.51.100.1|4242|mode=test,path=/x"
# Beside avahi-daemon on the same host (as on most Linux desktops): both
# share UDP 5353 (SO_REUSEPORT), and av's own instance is found too.
check "discover --mdns on a host running avahi-daemon finds the same instances" \
  expect "from av" "$(mdns_found av --timeout 3s)" \
  "Counted|192.0.2.1|4243|;Harness Web #2|192.0.2.20|5000|;Harness Web|192.0.2.1|4242|mode=test,path=/x"
avahi_publish srv Typed _ddtest._tcp 8080 k=v "flag" || die "avahi-publish Typed failed"
check "discover --mdns _ddtest._tcp.local. finds that type only" \
  expect "from ca" "$(mdns_found ca _ddtest._tcp.local. --timeout 3s)" "Typed|192.0.2.1|8080|flag,k=v"
echo "  what a user on A sees:"
in_ns ca "$BIN" discover --mdns _ddtest._tcp --timeout 2s 2>&1 | sed 's/^/    /'

first_ok() {
  local got rows ms
  got=$(mdns_found ca --first --timeout 5s)
  ms=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["elapsed_ms"])' "$WORK/found.json")
  rows=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["servers"]))' "$WORK/found.json")
  echo "  --first answered in ${ms} ms (timeout 5 s) with [$got]"
  [ "$(found_rc)" = 0 ] && [ "$rows" = 1 ] && awk -v ms="$ms" 'BEGIN { exit !(ms < 2000) }'
}
check "discover --mdns --first returns one instance well before the timeout" first_ok
none_found() {
  local got; got=$(mdns_found ca _nothing._tcp --timeout 1s)
  expect "exit status, nothing found" "$(found_rc)" 1 && expect "instances" "$got" ""
}
check "control: discover --mdns for a type nobody publishes finds nothing and exits 1" none_found
bad_type() {
  in_ns ca "$BIN" discover --mdns _http._sctp > "$WORK/bad.out" 2> "$WORK/bad.err"
  local rc=$?
  expect "exit status" "$rc" 2 && grep -qF 'must end in `._udp` or `._tcp`; use one such as "_discoveryd._udp"' "$WORK/bad.err" \
    && [ "$(wc -l < "$WORK/bad.err")" = 1 ] || { cat "$WORK/bad.err"; return 1; }
}
check "a bad service type is a usage error (exit 2) naming the fix, on one line" bad_type
port_held() {
  spawn_in_ns cb "$WORK/holder.out" python3 -c '
import signal, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
print("ready", flush=True)
signal.pause()'
  local holder=$SPAWNED_PID rc
  wait_until 5 "the port holder ready" grep -q ready "$WORK/holder.out" || return 1
  in_ns cb "$BIN" discover --mdns --timeout 1s > /dev/null 2> "$WORK/held.err"
  rc=$?
  kill "$holder"
  expect "exit status" "$rc" 3 && grep -q "cannot listen on 0.0.0.0:5353/udp" "$WORK/held.err" \
    && grep -q "stop it" "$WORK/held.err" || { cat "$WORK/held.err"; return 1; }
}
check "mDNS port held without SO_REUSEPORT: exit 3, naming the port and the fix" port_held

# --- discoveryd as the publisher ---------------------------------------------
# discoveryd as the publisher: tests/netns/mdns_discoveryd.sh.

echo "mdns: $passed passed, $failed failed"
[ "$failed" = 0 ]
