#!/usr/bin/env bash
# discoveryd publishing into a real etcd (Debian's etcd-server), and
# `discoveryd discover --etcd` reading it back: publish, refresh, delete,
# revoke on stop, expiry under SIGSTOP and return on SIGCONT, etcd down at
# start and brought back, and a 3-member cluster losing its leader.
#
# Everything runs inside one network namespace this script creates, on its
# own loopback (so no port can be taken by anyone else), with a veth pair
# inside it (192.0.2.1) as the host's address; etcd's data lives under
# $WORK. Both are removed on exit, even on failure. Needs root, iproute2,
# etcd and etcdctl. Bounded in time: every wait has a deadline.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/netns/lib.sh

need_root
for tool in etcd:etcd-server etcdctl:etcd-client; do
  command -v "${tool%%:*}" > /dev/null || die "${tool%%:*} is missing; install it: apt-get install ${tool#*:} (.ci/run does)"
done
use_discoveryd
TAG=${TAG:-"et$$"}
netns_setup e
ip -n "$TAG-e" link add d0 type veth peer name d1
ip -n "$TAG-e" addr add 192.0.2.1/24 dev d0
ip -n "$TAG-e" link set d0 up
ip -n "$TAG-e" link set d1 up
export ETCDCTL_API=3
TTL=3

# ports N: N distinct free TCP ports on the namespace's loopback.
ports() {
  in_ns e python3 -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1"
}
read -r -a P <<< "$(ports 8)"

# start_member NAME CLIENT_PORT PEER_PORT CLUSTER: an etcd member in the
# namespace (its pid in PID_<NAME>), data under $WORK.
start_member() {
  local name=$1 cport=$2 pport=$3 cluster=$4
  spawn_in_ns e "$WORK/$name.log" etcd --name "$name" --data-dir "$WORK/$name.data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$TAG" \
    --auth-token-ttl 2
  printf -v "PID_$name" %s "$SPAWNED_PID"
}
member_ready() {
  wait_until 20 "etcd $1 ready" grep -q "ready to serve client requests" "$WORK/$1.log" \
    || die "etcd $1 did not start: $(tail -5 "$WORK/$1.log")"
}
ectl() { local ep=$1; shift; in_ns e etcdctl --endpoints "$ep" "$@"; }
# keys ENDPOINT: the keys under the prefix (as the user in AUTH, if any).
AUTH=()
keys() { ectl "$1" "${AUTH[@]}" get --prefix /discoveryd/services/ --keys-only | sed '/^$/d' | sort | tr '\n' ' '; }

# start_d ENDPOINT...: discoveryd $D (d unless set: its files are
# $WORK/$D.*) in the namespace, publishing into them, with the lines of
# $EXTRA in its [[registries]] entry; DPID, DPORT.
start_d() {
  local d=${D:-d} eps; eps=$(printf '"%s", ' "$@")
  printf 'service_port = 8080\npidfile = "%s"\n[http]\nlisten = "127.0.0.1:0"\n[[registries]]\ntype = "etcd"\nendpoints = [%s]\nttl = "%ss"\n%s\n' \
    "$WORK/$d.pid" "${eps%, }" "$TTL" "${EXTRA:-}" > "$WORK/$d.toml"
  : > "$WORK/$d.out"
  spawn_in_ns e "$WORK/$d.out" "$BIN" run --port 0 --config "$WORK/$d.toml"
  DPID=$SPAWNED_PID
  wait_until 10 "discoveryd listening" grep -q "listening on" "$WORK/$d.out" \
    || die "discoveryd did not start: $(cat "$WORK/$d.out")"
  DPORT=$(grep -o 'listening on 0.0.0.0:[0-9]*' "$WORK/$d.out" | grep -o '[0-9]*$')
}
api() { http_call e "$WORK/d.pid" "$@"; }
registry_state() {
  in_ns e "$BIN" status --json --pidfile "$WORK/d.pid" | python3 -c 'import json, sys; r = json.load(sys.stdin)["registries"][0]; print(r["state"], r["keys"])'
}
# watch ENDPOINT OUT: tests/etcd/watch.py in the background (WATCH_PID),
# once its watch runs.
watch() {
  spawn_in_ns e "$2" python3 tests/etcd/watch.py "$1" /discoveryd/services/
  WATCH_PID=$SPAWNED_PID
  wait_until 10 "the etcd watch ready" grep -q '"ready"' "$2" || die "watch.py did not start: $(cat "$2")"
}
OWN=/discoveryd/services/discoveryd/192.0.2.1:8080

# --- one member: publish, refresh, delete, revoke ---------------------------------
start_member m1 "${P[0]}" "${P[1]}" "m1=http://127.0.0.1:${P[1]}"
member_ready m1
EP1=http://127.0.0.1:${P[0]}
watch "$EP1" "$WORK/w1.out"
t_start=$(mono_now)
start_d "$EP1"
check "discoveryd's own service is published (its host's address, service_port) within 2 s of its start" \
  event_within "$WORK/w1.out" PUT "$OWN" "$t_start" 2
check "etcdctl get --prefix shows the documented key and value" \
  expect "etcdctl get" "$(ectl "$EP1" get --prefix /discoveryd/services/ | tr '\n' ' ')" \
  "$OWN {\"Addr\":\"192.0.2.1:8080\",\"Metadata\":{\"message\":\"DISCOVER_SERVER\",\"port\":\"$DPORT\"}} "

# timed METHOD PATH [BODY]: a request to discoveryd's HTTP endpoint;
# prints the monotonic time it was sent at.
timed() {
  local http
  http=$(in_ns e "$BIN" status --json --pidfile "$WORK/d.pid" | python3 -c 'import json, sys; print(json.load(sys.stdin)["http"])')
  in_ns e python3 -c '
import sys, time, urllib.request
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request("http://%s%s" % (sys.argv[1], sys.argv[3]), method=sys.argv[2], data=data)
t = time.monotonic()
urllib.request.urlopen(req, timeout=5).read()
print("%.6f" % t)' "$http" "$@"
}
t_put=$(timed PUT /v1/services/w1 '{"name": "judge", "port": 7000, "ttl": "30s", "address": "192.0.2.50", "txt": {"queue": "fast"}}')
check "a registration elsewhere is published at its own address within 1 s of the PUT" \
  event_within "$WORK/w1.out" PUT /discoveryd/services/judge/192.0.2.50:7000 "$t_put" 1
api PUT /v1/services/here '{"name": "api", "port": 7001, "ttl": "30s"}' > /dev/null
value() { ectl "$EP1" get "$1" --print-value-only | sed '/^$/d'; }
wait_until 2 "api published" eval '[ -n "$(value /discoveryd/services/api/192.0.2.1:7001)" ]'
check "one on this host is published at the host's address, with its id as Metadata" \
  expect "its value" "$(value /discoveryd/services/api/192.0.2.1:7001)" '{"Addr":"192.0.2.1:7001","Metadata":{"id":"here"}}'
check "one elsewhere carries its id and TXT as Metadata" \
  expect "its value" "$(value /discoveryd/services/judge/192.0.2.50:7000)" '{"Addr":"192.0.2.50:7000","Metadata":{"id":"w1","queue":"fast"}}'

found() { in_ns e "$BIN" discover --etcd "$EP1" --json "$@" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(sorted("%s:%s:%s" % (s["service"], s["ip"], s["port"]) for s in d["servers"])))'; }
check "discover --etcd lists what is published" \
  expect "discover --etcd" "$(found)" "api:192.0.2.1:7001 discoveryd:192.0.2.1:8080 judge:192.0.2.50:7000"
check "discover --etcd --service judge lists only judge" \
  expect "discover --etcd --service judge" "$(found --service judge)" "judge:192.0.2.50:7000"
check "and its table names the service and metadata" \
  grep -q '^192.0.2.50 .* 7000 .*judge  *id=w1 queue=fast$' <(in_ns e "$BIN" discover --etcd "$EP1" 2> /dev/null)

# Kept alive: two TTLs later, nothing was deleted and every key is there.
kept_alive() {
  local deadline=$((SECONDS + 2 * TTL + 1)) want; want=$(keys "$EP1")
  while [ $SECONDS -lt $deadline ]; do
    [ "$(keys "$EP1")" = "$want" ] || { echo "  keys changed: $(keys "$EP1")"; return 1; }
  done
  ! grep -q '"DELETE"' "$WORK/w1.out" || { echo "  deleted: $(grep DELETE "$WORK/w1.out")"; return 1; }
}
check "the keys outlive two TTLs ($((2 * TTL)) s): the lease is kept alive" kept_alive

# Someone deletes a key under discoveryd's feet: it is put back at the
# next keep-alive's check, within a third of the TTL.
ectl "$EP1" del "$OWN" > /dev/null
t_gone=$(mono_now)
check "a key someone else deletes is put back within a third of the TTL and a second" \
  wait_until 2 "the key put back" eval '[ -n "$(ectl "$EP1" get "$OWN" --keys-only)" ]'
python3 -c 'import time, sys; print("  back %.3f s after the delete" % (time.monotonic() - float(sys.argv[1])))' "$t_gone"

# Two daemons with the same registration share its key: one's DELETE (or
# stop) leaves it to the other.
D1PID=$DPID
D=d2 start_d "$EP1"
D2PID=$DPID
DPID=$D1PID
SHARED=/discoveryd/services/shared/192.0.2.60:7100
body='{"name": "shared", "port": 7100, "ttl": "1m", "address": "192.0.2.60"}'
api PUT /v1/services/s1 "$body" > /dev/null
http_call e "$WORK/d2.pid" PUT /v1/services/s2 "$body" > /dev/null
wait_until 2 "the shared key published" eval '[ -n "$(ectl "$EP1" get "$SHARED" --keys-only)" ]' \
  || die "the shared registration was not published"
http_call e "$WORK/d2.pid" DELETE /v1/services/s2 > /dev/null
shared_stays() {
  local deadline=$((SECONDS + TTL)) back=0
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$(ectl "$EP1" get "$SHARED" --keys-only)" ] && back=1
  done
  [ "$back" = 1 ] && [ -n "$(ectl "$EP1" get "$SHARED" --keys-only)" ]
}
check "two daemons publish one registration: one's DELETE leaves the key, the other still has it" shared_stays
kill -TERM "$D2PID"; wait "$D2PID"
check "and the other's SIGTERM too (its lease revoked, the key comes back within a third of the TTL)" \
  wait_until 3 "the shared key there" eval '[ -n "$(ectl "$EP1" get "$SHARED" --keys-only)" ]'
api DELETE /v1/services/s1 > /dev/null
check "the last one's DELETE deletes it" \
  wait_until 2 "the shared key gone" eval '[ -z "$(ectl "$EP1" get "$SHARED" --keys-only)" ]'

t_del=$(timed DELETE /v1/services/w1)
check "a DELETE of the registration deletes its key within 1 s" \
  event_within "$WORK/w1.out" DELETE /discoveryd/services/judge/192.0.2.50:7000 "$t_del" 1
t_term=$(mono_now)
kill -TERM "$DPID"; wait "$DPID"
check "SIGTERM revokes the lease: the keys are gone within 1 s" \
  event_within "$WORK/w1.out" DELETE "$OWN" "$t_term" 1
check "and nothing is left" expect "keys" "$(keys "$EP1")" ""
check "discover --etcd then finds nothing (exit 1)" \
  expect "exit status" "$(in_ns e "$BIN" discover --etcd "$EP1" > /dev/null 2>&1; echo $?)" 1

kill "$WATCH_PID" 2> /dev/null; wait "$WATCH_PID" 2> /dev/null

# --- SIGSTOP: gone within the TTL; SIGCONT: back -------------------------------------
start_d "$EP1"
wait_until 3 "own service published" eval '[ -n "$(keys "$EP1")" ]' || die "not published again"
watch "$EP1" "$WORK/w2.out"
t_stop=$(mono_now)
kill -STOP "$DPID"
check "SIGSTOP: the keys expire within the TTL (${TTL} s) and a second" \
  wait_until $((TTL + 2)) "the key deleted" grep -q '"DELETE"' "$WORK/w2.out"
check "  (the lease's own expiry, not sooner than a third of the TTL)" \
  python3 -c '
import json, sys
t0, ttl = float(sys.argv[2]), float(sys.argv[3])
e = [json.loads(l) for l in open(sys.argv[1]) if "DELETE" in l][0]
print("  deleted %.3f s after SIGSTOP (ttl %g s)" % (e["t"] - t0, ttl))
sys.exit(0 if ttl / 3 <= e["t"] - t0 <= ttl + 1 else 1)' "$WORK/w2.out" "$t_stop" "$TTL"
t_cont=$(mono_now)
kill -CONT "$DPID"
check "SIGCONT: published again within 1 s" \
  event_within "$WORK/w2.out" PUT "$OWN" "$t_cont" 1
kill -TERM "$DPID"; wait "$DPID"
kill "$WATCH_PID" 2> /dev/null; wait "$WATCH_PID" 2> /dev/null

# --- etcd down at start, brought back ------------------------------------------------
kill -TERM "$PID_m1"; wait "$PID_m1"
start_d "$EP1"
check "with etcd down, discoveryd starts and answers discovery requests" \
  in_ns e "$BIN" discover --target "127.0.0.1:$DPORT" --no-services --first --timeout 2s
check "status shows the registry unreachable" \
  wait_until 5 "registry unreachable" eval '[ "$(registry_state | cut -d" " -f1)" = unreachable ]'
check "and /metrics shows discoveryd_registry_up 0" \
  grep -q '^discoveryd_registry_up{type="etcd",endpoints="'"$EP1"'",prefix="/discoveryd/services/"} 0$' <(api GET /metrics)
: > "$WORK/m1.log"
start_member m1 "${P[0]}" "${P[1]}" "m1=http://127.0.0.1:${P[1]}"
member_ready m1
t_up=$(mono_now)
check "etcd back: everything is published again within a third of the TTL and a second" \
  wait_until 3 "published again" eval '[ "$(keys "$EP1")" = "$OWN " ]'
python3 -c 'import time, sys; print("  published %.3f s after etcd was ready" % (time.monotonic() - float(sys.argv[1])))' "$t_up"
check "status shows it publishing" \
  wait_until 2 "publishing" eval '[ "$(registry_state)" = "publishing 1" ]'
kill -TERM "$DPID"; wait "$DPID"

# --- under the shipped unit's sandbox ---------------------------------------------
# Its seccomp filter (RestrictAddressFamilies=, through Debian's
# python3-seccomp) and an unprivileged user, as DynamicUser= gives.
/usr/bin/python3 -c 'import seccomp' 2> /dev/null \
  || die "Debian's python3-seccomp is missing; install it: apt-get install python3-seccomp"
chmod 755 "$WORK"
mkdir -p "$WORK/unit-run" && chown 65534:65534 "$WORK/unit-run"
chmod 644 "$WORK/d.toml"
spawn_in_ns e "$WORK/unit.out" /usr/bin/python3 tests/netns/unit_sandbox.py config/discoveryd.service -- \
  setpriv --reuid=65534 --regid=65534 --clear-groups \
  "$BIN" run --port 0 --config "$WORK/d.toml" --pidfile "$WORK/unit-run/discoveryd.pid"
UNIT_PID=$SPAWNED_PID
check "under the unit's sandbox and an unprivileged user, it publishes into etcd" \
  wait_until 5 "published under the sandbox" eval '[ "$(keys "$EP1")" = "$OWN " ]'
kill -TERM "$UNIT_PID"; wait "$UNIT_PID"
check "and revokes its lease on SIGTERM" expect "keys" "$(keys "$EP1")" ""

# --- etcd's auth on: a user whose password is rotated ----------------------------------
# (etcd's tokens last 2 s here, --auth-token-ttl: discoveryd authenticates
# again often.)
root=(--user root:rootpw)
ectl "$EP1" user add root:rootpw > /dev/null
ectl "$EP1" role add disc > /dev/null
ectl "$EP1" role grant-permission disc --prefix=true readwrite /discoveryd/services/ > /dev/null
ectl "$EP1" user add disc:pw-one > /dev/null
ectl "$EP1" user grant-role disc disc > /dev/null
ectl "$EP1" auth enable > /dev/null || die "cannot enable etcd's auth"
AUTH=("${root[@]}")
echo pw-one > "$WORK/pw"
EXTRA="user = \"disc\"
password_file = \"$WORK/pw\"" start_d "$EP1"
check "with etcd's auth on, it publishes as its user" \
  wait_until 3 "published with auth" eval '[ "$(keys "$EP1")" = "$OWN " ]'
printf 'pw-two\n' | ectl "$EP1" "${root[@]}" user passwd disc --interactive=false > /dev/null
echo pw-two > "$WORK/pw"
t_rot=$(mono_now)
api PUT /v1/services/after '{"name": "rotated", "port": 7200, "ttl": "1m", "address": "192.0.2.70"}' > /dev/null
check "its password rotated (and the file with it): a new registration is published with the new one" \
  wait_until 3 "published after the rotation" eval '[ -n "$(ectl "$EP1" "${root[@]}" get /discoveryd/services/rotated/192.0.2.70:7200 --keys-only)" ]'
# The password changed in etcd, not in the file: the token goes with the
# old password, and a change needs a new one, which the file cannot get.
printf 'pw-three\n' | ectl "$EP1" "${root[@]}" user passwd disc --interactive=false > /dev/null
refused_after_change() {
  api PUT /v1/services/stale "{\"name\": \"stale\", \"port\": 7300, \"ttl\": \"1m\", \"address\": \"192.0.2.71\", \"txt\": {\"t\": \"$SECONDS\"}}" > /dev/null
  [ "$(registry_state | cut -d" " -f1)" = refused ]
}
check "its password changed in etcd but not in the file: status says refused" \
  wait_until 8 "refused" refused_after_change
kept_with_bad_password() {
  local deadline=$((SECONDS + TTL + 1))
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$(ectl "$EP1" "${root[@]}" get "$OWN" --keys-only)" ] || { echo "  the key went"; return 1; }
  done
}
check "while it cannot authenticate, its keys are kept alive (keep-alives need no token)" kept_with_bad_password
echo pw-three > "$WORK/pw"
check "the password file fixed: it publishes again" \
  wait_until 5 "publishing again" eval '[ -n "$(ectl "$EP1" "${root[@]}" get /discoveryd/services/stale/192.0.2.71:7300 --keys-only)" ]'
kill -TERM "$DPID"; wait "$DPID"
check "and revokes its lease on SIGTERM" expect "keys" "$(keys "$EP1")" ""
AUTH=()
kill -TERM "$PID_m1"; wait "$PID_m1"

# --- a 3-member cluster loses its leader -------------------------------------------
cluster="c1=http://127.0.0.1:${P[3]},c2=http://127.0.0.1:${P[5]},c3=http://127.0.0.1:${P[7]}"
start_member c1 "${P[2]}" "${P[3]}" "$cluster"
start_member c2 "${P[4]}" "${P[5]}" "$cluster"
start_member c3 "${P[6]}" "${P[7]}" "$cluster"
for m in c1 c2 c3; do member_ready "$m"; done
EPS=("http://127.0.0.1:${P[2]}" "http://127.0.0.1:${P[4]}" "http://127.0.0.1:${P[6]}")
# With a user and password although this cluster's auth is off: no token
# is needed, and none is asked for again.
EXTRA="user = \"disc\"
password = \"unused\"" start_d "${EPS[@]}"
check "credentials set while the cluster's auth is off: it publishes all the same" \
  wait_until 5 "published into the cluster" eval '[ "$(keys "${EPS[0]}")" = "$OWN " ]' || die "not published into the cluster"
leader=$(ectl "$(IFS=,; echo "${EPS[*]}")" endpoint status -w json | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["Status"]["leader"] == e["Status"]["header"]["member_id"]:
        print(e["Endpoint"])')
case "$leader" in
  *"${P[2]}") victim=c1; survivor=${EPS[1]} ;;
  *"${P[4]}") victim=c2; survivor=${EPS[2]} ;;
  *"${P[6]}") victim=c3; survivor=${EPS[0]} ;;
  *) die "cannot tell the cluster's leader: [$leader]" ;;
esac
victim_pid=PID_$victim
kill -9 "${!victim_pid}"; wait "${!victim_pid}" 2> /dev/null
echo "  killed the leader, $victim ($leader)"
survives() {
  local deadline=$((SECONDS + 3 * TTL)) got
  while [ $SECONDS -lt $deadline ]; do
    got=$(keys "$survivor")
    [ "$got" = "$OWN " ] || { echo "  the key was missing: [$got]"; return 1; }
  done
}
check "with the leader killed, the key stays for three TTLs: the lease is kept alive through the election" survives
check "and status still says publishing" expect "state" "$(registry_state)" "publishing 1"
t_term=$(mono_now)
kill -TERM "$DPID"; wait "$DPID"
check "SIGTERM on the cluster revokes the lease" \
  wait_until 2 "keys gone" eval '[ -z "$(keys "$survivor")" ]'
for m in c1 c2 c3; do
  pid=PID_$m
  [ "$m" = "$victim" ] || { kill -TERM "${!pid}"; wait "${!pid}" 2> /dev/null; }
done

echo "etcd: $passed passed, $failed failed"
[ "$failed" = 0 ]
