#!/usr/bin/env bash
# discoveryd's mDNS announcer against real peers (python-zeroconf, Avahi),
# on a simulated LAN built from network namespaces. mDNS never runs on this
# machine's own interfaces: every peer runs inside the namespaces below,
# which are removed on exit, even on failure.
#
#   subnet A 192.0.2.0/24 (TEST-NET-1)            subnet B 198.51.100.0/24 (TEST-NET-2)
#   srv  discoveryd [mdns]  192.0.2.1  <-- same host -->  198.51.100.1  (two-homed)
#   srv2 discoveryd [mdns]  192.0.2.2  (a second host, for name conflicts)
#   ca   python-zeroconf    192.0.2.10
#   cb   python-zeroconf                                   198.51.100.10
#   av   avahi-daemon: avahi-browse, avahi-publish  192.0.2.20
#   avb  avahi-daemon: avahi-browse                                198.51.100.20
#   mon  mdns_count.py, a passive packet counter   192.0.2.30
#
# The pieces are in lib.sh. Needs root; every tool missing fails loudly.
# Bounded in time: each wait has a deadline of a few seconds.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/netns/lib.sh

need_tools
use_discoveryd

netns_setup sw srv srv2 ca cb av avb mon
lan_ab
plug srv2 eth0 a 192.0.2.2/24
plug av eth0 a 192.0.2.20/24
plug avb eth0 b 198.51.100.20/24
plug mon eth0 a 192.0.2.30/24
start_avahi av eth0
start_avahi avb eth0

TYPE=_discoveryd._udp

zc() { local ns=$1; shift; in_ns "$ns" "$PY" tests/netns/zeroconf_browse.py "$@"; }
# write_config FILE: stdin to FILE, by rename (as editors save).
write_config() { cat > "$1.new" && mv "$1.new" "$1"; }
# start_srv NS CONFIG: discoveryd run in NS, once it advertises; sets
# SRV_PID and SRV_PORT (the bound discovery port, under --port 0).
start_srv() {
  local ns=$1 config=$2 out="$WORK/$1.out"
  spawn_in_ns "$ns" "$out" "$BIN" run --port 0 --config "$config"
  SRV_PID=$SPAWNED_PID
  wait_until 10 "discoveryd in $ns advertising" grep -q "advertising over mDNS" "$out" \
    || die "discoveryd did not start in $ns: $(cat "$out")"
  SRV_PORT=$(grep -o 'listening on 0.0.0.0:[0-9]*' "$out" | grep -o '[0-9]*$')
}
# counter SECONDS OUT [ARGS...]: mdns_count.py in mon, counting what srv
# sends on A, in the background (COUNTER_PID); returns once it listens.
counter() {
  local seconds=$1 out=$2; shift 2
  spawn_in_ns mon "$out" "$PY" tests/netns/mdns_count.py --seconds "$seconds" \
    --source 192.0.2.1 --lines "$@"
  COUNTER_PID=$SPAWNED_PID
  wait_until 5 "the packet counter ready" grep -q '"ready"' "$out" || die "mdns_count.py did not start: $(cat "$out")"
}

srv_config() { # srv_config INSTANCE ROLE [EXTRA MDNS LINES]
  printf 'service_port = 8080\npidfile = "%s"\n[http]\nlisten = "127.0.0.1:0"\n[mdns]\nenabled = true\ninstance = "%s"\n%s\n[mdns.txt]\nrole = "%s"\n' \
    "$WORK/srv.pid" "$1" "${3:-}" "$2"
}
# api METHOD PATH [BODY]: a request to srv's HTTP endpoint (on its loopback,
# so a registration without an address is srv's own host's).
api() { http_call srv "$WORK/srv.pid" "$@"; }

# --- start-up: probing, then at least two announcements a second apart --------
srv_config lab-printer printer | write_config "$WORK/srv.toml"
counter 5 "$WORK/start.out"
start_srv srv "$WORK/srv.toml"
SRV1_PID=$SRV_PID
wait "$COUNTER_PID"
announced() {
  python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ours = [e for e in lines if e["event"] == "packet" and any("lab-printer" in n for n in e["answers"])]
probes = [e for e in ours if e["qr"] == "query"]
ann = [e for e in ours if e["qr"] == "response"]
gaps = [round(b["t"] - a["t"], 3) for a, b in zip(ann, ann[1:])]
print("  %d probe(s), %d announcement(s), gaps %s s" % (len(probes), len(ann), gaps))
sys.exit(0 if len(probes) >= 1 and 2 <= len(ann) <= 3 and all(g >= 0.95 for g in gaps) else 1)' "$1"
}
check "srv probes its name, then announces it 2 or 3 times, at least 1 s apart" announced "$WORK/start.out"

# --- third-party browsers on each subnet get that subnet's address only -------
WANT_TXT="message=DISCOVER_SERVER,port=$SRV_PORT,role=printer"
check "python-zeroconf on A resolves discoveryd with the A address only, service_port and TXT" \
  expect "zeroconf on ca" "$(zc ca "$TYPE" --timeout 5 --until first | resolved lab-printer)" \
  "lab-printer|192.0.2.1|8080|$WANT_TXT"
check "python-zeroconf on B resolves discoveryd with the B address only" \
  expect "zeroconf on cb" "$(zc cb "$TYPE" --timeout 5 --until first | resolved lab-printer)" \
  "lab-printer|198.51.100.1|8080|$WANT_TXT"
avahi_resolves() { # avahi_resolves NS WANT [avahi_browse.py ARGS]: polls avahi-browse in NS
  local ns=$1 want=$2 got=""; shift 2
  local deadline=$((SECONDS + 8))
  while [ $SECONDS -lt $deadline ]; do
    got=$(in_ns_bus "$ns" "$PY" tests/netns/avahi_browse.py "$@" --timeout 4 | resolved lab-printer)
    [ "$got" = "$want" ] && return 0
  done
  echo "  avahi-browse in $ns: got [$got], want [$want]"; return 1
}
check "avahi-browse -a -r -t (the meta-query) on A resolves discoveryd with the A address" \
  avahi_resolves av "lab-printer|192.0.2.1|8080|$WANT_TXT"
check "avahi-browse -a -r -t on B resolves it with the B address" \
  avahi_resolves avb "lab-printer|198.51.100.1|8080|$WANT_TXT"
check "discoveryd discover --mdns on B finds it with the B address, port and TXT" \
  expect "from cb" "$(mdns_found cb --first --timeout 3s)" "lab-printer|198.51.100.1|8080|$WANT_TXT"

# --- answers: rate limit, legacy unicast, known-answer suppression -----------
counter 3 "$WORK/rate.out"
in_ns ca "$PY" tests/netns/mdns_query.py "$TYPE.local." 60 20 192.0.2.10 > /dev/null
wait "$COUNTER_PID"
rate_limited() {
  python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ans = [e["t"] for e in lines if e["event"] == "packet" and e["qr"] == "response"
       and any(n.startswith("lab-printer.") for n in e["answers"])]
gaps = [round(b - a, 3) for a, b in zip(ans, ans[1:])]
print("  60 queries in 3 s: %d multicast answers, gaps %s s" % (len(ans), gaps))
sys.exit(0 if 1 <= len(ans) <= 4 and all(g >= 0.95 for g in gaps) else 1)' "$1"
}
check "60 queries in 3 s get at most one multicast answer a second" rate_limited "$WORK/rate.out"
legacy() { # legacy WANT [--known NAME]
  local want=$1; shift
  expect "unicast answers to 3 legacy queries" \
    "$(in_ns ca "$PY" tests/netns/mdns_query.py "$TYPE.local." 3 10 192.0.2.10 --legacy "$@")" \
    "unicast answers: $want"
}
check "a legacy query (from a port other than 5353) is answered by unicast" legacy 3
check "a query that lists the instance as a known answer gets no answer" \
  legacy 0 --known "lab-printer.$TYPE.local."
check "a query sent by unicast to srv's address (as from off the link) gets no answer: no reflection" \
  legacy 0 --to 192.0.2.1

# --- addresses come and go ----------------------------------------------------
zc ca "$TYPE" --timeout 8 > "$WORK/addr.out" &
browser=$!
wait_until 5 "the browser on ca resolving lab-printer" grep -q '"port": 8080' "$WORK/addr.out" \
  || die "zeroconf never saw lab-printer: $(cat "$WORK/addr.out")"
t_add=$(mono_now)
ip -n "$TAG-srv" addr add 192.0.2.5/24 dev eth-a
new_address() {
  wait_until 4 "192.0.2.5 announced" python3 -c '
import json, sys
sys.exit(not any(e["event"] == "updated" and "192.0.2.5" in e["addresses"]
                 for e in map(json.loads, open(sys.argv[1]))))' "$WORK/addr.out" || return 1
  event_within "$WORK/addr.out" updated lab-printer "$t_add" 3
}
check "an address added to an interface is announced within 3 s" new_address
kill "$browser" 2> /dev/null; wait "$browser" 2> /dev/null
counter 4 "$WORK/addr-count.out"
spawn_in_ns cb "$WORK/addr-count-b.out" "$PY" tests/netns/mdns_count.py --seconds 4 --source 198.51.100.1 --lines
counter_b=$SPAWNED_PID
wait_until 5 "the counter on B ready" grep -q '"ready"' "$WORK/addr-count-b.out" || die "mdns_count.py on cb did not start"
ip -n "$TAG-srv" addr del 192.0.2.5/24 dev eth-a
wait "$COUNTER_PID"
wait "$counter_b"
address_goodbye() { # a response from 192.0.2.1 with a TTL-0 host record
  python3 -c '
import json, sys
hits = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "packet"
        and e["qr"] == "response" and any(n.endswith(".local.") and "_udp" not in n for n in e["ttl0"])]
print("  goodbye for the removed address: %s" % (hits[0]["ttl0"] if hits else "none"))
sys.exit(0 if hits else 1)' "$WORK/addr-count.out"
}
check "a removed address gets a goodbye (TTL 0) on the wire" address_goodbye
check "and only on its own link: B hears no goodbye for A's address" \
  expect "TTL-0 records from srv on B" "$(grep -c '"ttl0": \["' "$WORK/addr-count-b.out")" 0
address_gone() {
  wait_until 5 "192.0.2.5 gone" eval \
    '[ "$(zc ca "$TYPE" --timeout 3 --until first | resolved lab-printer | cut -d"|" -f2)" = 192.0.2.1 ]'
}
check "a removed address is no longer announced" address_gone

# --- reloads --------------------------------------------------------------------
zc ca "$TYPE" --timeout 8 --until name=lab-scanner > "$WORK/reload.out" &
browser=$!
wait_until 5 "the browser on ca resolving lab-printer" grep -q '"port": 8080' "$WORK/reload.out" \
  || die "zeroconf never saw lab-printer: $(cat "$WORK/reload.out")"
t_edit=$(mono_now)
srv_config lab-scanner scanner | write_config "$WORK/srv.toml"
wait "$browser"
check "a reloaded instance name: the old one removed within 2 s" \
  event_within "$WORK/reload.out" removed lab-printer "$t_edit" 2
check "a reloaded instance name and TXT: the new one seen within 2 s" \
  event_within "$WORK/reload.out" added lab-scanner "$t_edit" 2
check "the new instance carries the new TXT" \
  expect "lab-scanner" "$(resolved lab-scanner < "$WORK/reload.out")" \
  "lab-scanner|192.0.2.1|8080|message=DISCOVER_SERVER,port=$SRV_PORT,role=scanner"

zc ca "$TYPE" --timeout 6 > "$WORK/txt.out" &
browser=$!
wait_until 5 "the browser on ca resolving lab-scanner" grep -q '"port": 8080' "$WORK/txt.out" \
  || die "zeroconf never saw lab-scanner: $(cat "$WORK/txt.out")"
t_edit=$(mono_now)
srv_config lab-scanner copier | write_config "$WORK/srv.toml"
txt_updated() {
  wait_until 3 "the new TXT seen" grep -q '"role": "copier"' "$WORK/txt.out" || { cat "$WORK/txt.out"; return 1; }
  event_within "$WORK/txt.out" updated lab-scanner "$t_edit" 2 || return 1
  ! grep -q 'lab-scanner (2)' "$WORK/txt.out" "$WORK/srv.out" || { echo "  renamed itself"; return 1; }
}
check "a reloaded TXT alone is announced in place within 2 s, the name kept" txt_updated
kill "$browser" 2> /dev/null; wait "$browser" 2> /dev/null
srv_config lab-scanner scanner | write_config "$WORK/srv.toml"
wait_until 5 "the TXT back to scanner" grep -q 'mdns.txt.role' <(grep "config reloaded" "$WORK/srv.out" | tail -1) \
  || die "srv did not reload its TXT back"

# --- services registered over HTTP ------------------------------------------------
# One elsewhere on A (its own address and host name), one on srv itself.
zc ca "$TYPE" --timeout 4 > "$WORK/reg-a.out" &
browser=$!
zc cb "$TYPE" --timeout 4 > "$WORK/reg-b.out" &
browser_b=$!
wait_until 5 "the browser on ca ready" grep -q '"ready"' "$WORK/reg-a.out" || die "zeroconf did not start on ca"
wait_until 5 "the browser on cb ready" grep -q '"ready"' "$WORK/reg-b.out" || die "zeroconf did not start on cb"
t_put=$(mono_now)
check "PUT /v1/services/worker-1 (address 192.0.2.40, on A) is accepted" \
  expect "the answer" "$(api PUT /v1/services/worker-1 '{"name": "judge", "port": 7000, "ttl": "30s", "address": "192.0.2.40", "txt": {"role": "grader"}}')" \
  '201 {"id":"worker-1","result":"created"}'
check "PUT /v1/services/here-1 (no address, from srv's loopback: srv itself) is accepted" \
  expect "the answer" "$(api PUT /v1/services/here-1 '{"name": "api", "port": 7001, "ttl": "30s"}' | cut -d' ' -f1)" 201
wait "$browser"; wait "$browser_b"
check "python-zeroconf on A resolves worker-1 at its own address, port and TXT" \
  expect "zeroconf on ca" "$(resolved worker-1 < "$WORK/reg-a.out")" "worker-1|192.0.2.40|7000|name=judge,role=grader"
check "within 2 s of the PUT (probing, then the announcement)" \
  event_within "$WORK/reg-a.out" resolved worker-1 "$t_put" 2
check "python-zeroconf on A resolves here-1 with srv's A address" \
  expect "zeroconf on ca" "$(resolved here-1 < "$WORK/reg-a.out")" "here-1|192.0.2.1|7001|name=api"
check "python-zeroconf on B resolves here-1 with srv's B address" \
  expect "zeroconf on cb" "$(resolved here-1 < "$WORK/reg-b.out")" "here-1|198.51.100.1|7001|name=api"
check "and B never sees worker-1, whose address is on A only (mDNS is link-local)" \
  expect "zeroconf on cb" "$(resolved worker-1 < "$WORK/reg-b.out")" ""
check "avahi-browse on A resolves worker-1 too" \
  expect "avahi-browse on av" "$(in_ns_bus av "$PY" tests/netns/avahi_browse.py --type "$TYPE" --timeout 4 | resolved worker-1)" \
  "worker-1|192.0.2.40|7000|name=judge,role=grader"

zc ca "$TYPE" --timeout 6 --until removed > "$WORK/dereg.out" &
browser=$!
wait_until 5 "the browser on ca resolving worker-1" grep -q '"name": "worker-1".*"port"' "$WORK/dereg.out" \
  || die "zeroconf never saw worker-1: $(cat "$WORK/dereg.out")"
t_del=$(mono_now)
api DELETE /v1/services/worker-1 > /dev/null
wait "$browser"
check "DELETE /v1/services/worker-1: the browser sees it removed within 1 s (a goodbye)" \
  event_within "$WORK/dereg.out" removed worker-1 "$t_del" 1

# A registration whose heartbeats stop: removed when its TTL ends.
api PUT /v1/services/brief '{"name": "api", "port": 7002, "ttl": "2s"}' > /dev/null
t_brief=$(mono_now)
zc ca "$TYPE" --timeout 8 --until removed > "$WORK/expire.out"
check "a registration without heartbeats (ttl 2s) is removed within 3 s of its PUT" \
  event_within "$WORK/expire.out" removed brief "$t_brief" 3
api DELETE /v1/services/here-1 > /dev/null

# A burst: 150 registrations, then their deletion, as fast as HTTP takes
# them (more than mdns-sd's command queue holds at once).
burst() { # burst PUT|DELETE
  local http
  http=$(in_ns srv "$BIN" status --json --pidfile "$WORK/srv.pid" | python3 -c 'import json, sys; print(json.load(sys.stdin)["http"])')
  in_ns srv python3 -c '
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port))
for i in range(150):
    body = b"{\"name\": \"b\", \"port\": 7100, \"ttl\": \"1m\", \"address\": \"192.0.2.%d\"}" % (100 + i % 100)
    c.request(sys.argv[2], "/v1/services/burst-%d" % i, body=body if sys.argv[2] == "PUT" else None)
    r = c.getresponse(); r.read()
    assert r.status in (200, 201), r.status' "$http" "$1"
}
mdns_threads() { # the mDNS responder threads srv runs
  grep -lx "mDNS_daemon" /proc/"$SRV1_PID"/task/*/comm 2> /dev/null | wc -l
}
counter 8 "$WORK/burst-count.out"
burst PUT
advertised() { # how many instances srv's status says it advertises
  in_ns srv "$BIN" status --json --pidfile "$WORK/srv.pid" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["mdns"]["services"]))'
}
check "a burst of 150 registrations is advertised, 10 at a time, within 4 s" \
  wait_until 4 "151 advertised" eval '[ "$(advertised)" = 151 ]'
burst DELETE
check "and their deletion withdrawn within 4 s" \
  wait_until 4 "1 advertised" eval '[ "$(advertised)" = 1 ]'
check "with one mDNS responder running throughout (none leaked)" expect "mDNS_daemon threads" "$(mdns_threads)" 1
wait "$COUNTER_PID"
burst_packets() {
  python3 -c '
import json, sys
n = sum(1 for e in map(json.loads, open(sys.argv[1])) if e["event"] == "packet")
print("  %d mDNS packets from srv in 8 s" % n)
sys.exit(0 if n < 2400 else 1)' "$WORK/burst-count.out"
}
check "the burst costs a bounded number of packets (under 300 a second)" burst_packets
check "and a browser on A finds none of them afterwards: goodbyes sent" \
  expect "burst instances seen" "$(zc ca "$TYPE" --timeout 3 | python3 -c '
import json, sys
print(sum(1 for e in map(json.loads, sys.stdin) if e.get("port") and e["name"].startswith("burst-")))')" 0

# --- conflicts --------------------------------------------------------------------
printf 'pidfile = "%s"\n[mdns]\nenabled = true\ninstance = "lab-scanner"\n' "$WORK/srv2.pid" \
  | write_config "$WORK/srv2.toml"
zc ca "$TYPE" --timeout 8 --until "name=lab-scanner (2)" > "$WORK/conflict.out" &
browser=$!
wait_until 5 "the browser on ca ready" grep -q '"ready"' "$WORK/conflict.out" || die "zeroconf did not start"
t_start2=$(mono_now)
start_srv srv2 "$WORK/srv2.toml"
SRV2_PID=$SRV_PID
wait "$browser"
check "a second discoveryd with the same name on A renames itself 'lab-scanner (2)' within 4 s" \
  event_within "$WORK/conflict.out" added "lab-scanner (2)" "$t_start2" 4
check "and says so in its log" grep -q "renamed.*lab-scanner (2)" "$WORK/srv2.out"
check "and discoveryd status shows the name it advertises now" \
  expect "status --json .mdns.services" \
  "$("$BIN" status --json --pidfile "$WORK/srv2.pid" | python3 -c 'import json, sys; print(json.load(sys.stdin)["mdns"]["services"])')" \
  "['lab-scanner (2)._discoveryd._udp.local.']"
avahi_yields() {
  avahi_publish av lab-scanner "$TYPE" 5000 || return 1
  expect "the name Avahi on av settled on" "$(avahi_published_name av lab-scanner)" "lab-scanner #2"
}
check "Avahi publishing a name discoveryd holds loses the probe and renames its own" avahi_yields
kill "$AVAHI_PUBLISH_PID" 2> /dev/null

# --- goodbyes -----------------------------------------------------------------------
zc ca "$TYPE" --timeout 6 --until removed > "$WORK/term.out" &
browser=$!
wait_until 5 "the browser on ca resolving lab-scanner (2)" grep -q '"name": "lab-scanner (2)".*"port"' "$WORK/term.out" \
  || die "zeroconf never saw lab-scanner (2): $(cat "$WORK/term.out")"
t_term=$(mono_now)
kill -TERM "$SRV2_PID"
wait "$browser"
check "SIGTERM: the browser sees the instance removed within 1 s" \
  event_within "$WORK/term.out" removed "lab-scanner (2)" "$t_term" 1

# Interfaces: only eth-a, by a reload. B sees the goodbye, then nothing.
zc cb "$TYPE" --timeout 6 --until removed > "$WORK/iface.out" &
browser=$!
wait_until 5 "the browser on cb resolving lab-scanner" grep -q '"port": 8080' "$WORK/iface.out" \
  || die "zeroconf on cb never saw lab-scanner: $(cat "$WORK/iface.out")"
t_edit=$(mono_now)
srv_config lab-scanner scanner 'interfaces = ["eth-a"]' | write_config "$WORK/srv.toml"
wait "$browser"
check "reloaded to interfaces = [\"eth-a\"]: B gets a goodbye within 2 s" \
  event_within "$WORK/iface.out" removed lab-scanner "$t_edit" 2
check "and a browser on B then finds nothing" \
  expect "zeroconf on cb" "$(zc cb "$TYPE" --timeout 3 | resolved lab-scanner)" ""
check "while A still resolves it" \
  expect "zeroconf on ca" "$(zc ca "$TYPE" --timeout 5 --until first | resolved lab-scanner | cut -d'|' -f2)" "192.0.2.1"

# Disabled by a reload: a goodbye, on the wire too.
zc ca "$TYPE" --timeout 6 --until removed > "$WORK/off.out" &
browser=$!
wait_until 5 "the browser on ca resolving lab-scanner" grep -q '"port": 8080' "$WORK/off.out" \
  || die "zeroconf never saw lab-scanner: $(cat "$WORK/off.out")"
counter 3 "$WORK/off-count.out" --until-name lab-scanner
t_edit=$(mono_now)
srv_config lab-scanner scanner | sed 's/^enabled = true/enabled = false/' | write_config "$WORK/srv.toml"
wait "$browser"
check "reloaded to enabled = false: the browser sees the instance removed within 2 s" \
  event_within "$WORK/off.out" removed lab-scanner "$t_edit" 2
goodbye_on_wire() {
  wait "$COUNTER_PID"
  goodbye_within "$WORK/off-count.out" "lab-scanner.$TYPE.local." "$t_edit" 2
}
check "and the goodbye (TTL 0) is on the wire" goodbye_on_wire
kill -TERM "$SRV1_PID"; wait "$SRV1_PID"

# --- under the shipped unit's sandbox ------------------------------------------------
/usr/bin/python3 -c 'import seccomp' 2> /dev/null \
  || die "Debian's python3-seccomp is missing; install it: apt-get install python3-seccomp"
chmod 755 "$WORK"
mkdir -p "$WORK/unit-run" && chown 65534:65534 "$WORK/unit-run"
printf '[mdns]\nenabled = true\ninstance = "sandboxed"\n' | write_config "$WORK/unit.toml"
chmod 644 "$WORK/unit.toml"
spawn_in_ns srv "$WORK/unit.out" /usr/bin/python3 tests/netns/unit_sandbox.py config/discoveryd.service -- \
  setpriv --reuid=65534 --regid=65534 --clear-groups \
  "$BIN" run --port 0 --config "$WORK/unit.toml" --pidfile "$WORK/unit-run/discoveryd.pid"
wait_until 10 "discoveryd advertising under the unit's sandbox" grep -q "advertising over mDNS" "$WORK/unit.out" \
  || die "discoveryd did not advertise under the unit's sandbox: $(cat "$WORK/unit.out")"
check "under the unit's sandbox and an unprivileged user, zeroconf on A resolves it with the A address" \
  expect "zeroconf on ca" "$(zc ca "$TYPE" --timeout 5 --until first | resolved sandboxed | cut -d'|' -f1,2)" \
  "sandboxed|192.0.2.1"
kill -TERM "$SPAWNED_PID" || { echo "discoveryd under the sandbox ended early:"; cat "$WORK/unit.out"; }
wait "$SPAWNED_PID"

# --- Avahi on the same host: refused, not a second mDNS stack -----------------------
avahi_pid=$(for p in $(ip netns pids "$TAG-av"); do [ "$(cat "/proc/$p/comm")" = avahi-daemon ] && echo "$p"; done | head -1)
[ -n "$avahi_pid" ] || die "cannot find av's avahi-daemon"
refused_beside_avahi() {
  local out rc
  out=$(nsenter -t "$avahi_pid" -m -n "$BIN" run --port 0 --pidfile "$WORK/beside.pid" \
    --config "$WORK/unit.toml" 2>&1); rc=$?
  expect "exit status" "$rc" 2 || return 1
  grep -q "mdns.enabled.*avahi-daemon already runs" <<< "$out" || { echo "  said: $out"; return 1; }
}
check "beside a running avahi-daemon, [mdns] enabled is refused at start (exit 2, naming Avahi)" \
  refused_beside_avahi

echo "mdns (discoveryd): $passed passed, $failed failed"
[ "$failed" = 0 ]
