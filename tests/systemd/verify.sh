#!/usr/bin/env bash
# The shipped systemd unit, checked by systemd's own `systemd-analyze
# verify` (Debian's systemd package): the unit for systemd 252 and later
# must draw no complaint at all; with the notify-reload drop-in, systemd
# 253 and later must draw none either, and 252 only its known one (it does
# not know Type=notify-reload).
set -uo pipefail
cd "$(dirname "$0")/../.."

die() { echo "systemd: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || die "systemd-analyze is missing; install it: apt-get install systemd"
BIN=$(realpath "${DISCOVERYD_BIN:-target/debug/discoveryd}")
[ -x "$BIN" ] || die "build discoveryd first ($BIN)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
version=$(systemd-analyze --version | awk 'NR == 1 { print $2 }')

# verify DIR: the unit in DIR (with its drop-ins), ExecStart= pointing at
# the binary just built; prints what systemd-analyze said.
verify() {
  sed "s#/usr/local/bin/discoveryd#$BIN#g" config/discoveryd.service > "$1/discoveryd.service"
  systemd-analyze verify "$1/discoveryd.service" 2>&1 || echo "exit status $?"
}

passed=0; failed=0
check() {
  local name=$1; shift
  if "$@"; then echo "ok - $name"; passed=$((passed + 1)); else echo "not ok - $name"; failed=$((failed + 1)); fi
}
says_nothing() { [ -z "$1" ] || { echo "  systemd-analyze said: $1"; return 1; }; }
only_type_unknown() {
  local rest
  rest=$(printf '%s\n' "$1" | grep -v 'Failed to parse service type, ignoring: notify-reload' | grep -v '^$')
  [ -z "$rest" ] || { echo "  systemd-analyze said: $1"; return 1; }
}

mkdir -p "$WORK/base" "$WORK/variant/discoveryd.service.d"
cp config/discoveryd.service.d/notify-reload.conf "$WORK/variant/discoveryd.service.d/"
base=$(verify "$WORK/base")
variant=$(verify "$WORK/variant")
echo "systemd $version"
check "the unit verifies cleanly on systemd $version" says_nothing "$base"
if [ "$version" -ge 253 ]; then
  check "the notify-reload drop-in verifies cleanly on systemd $version" says_nothing "$variant"
else
  check "the notify-reload drop-in draws only 'unknown type' on systemd $version (< 253)" only_type_unknown "$variant"
  check "systemd $version really does not know notify-reload" test -n "$variant"
fi
echo "systemd: $passed passed, $failed failed"
[ "$failed" = 0 ]
