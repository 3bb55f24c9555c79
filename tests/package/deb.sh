#!/usr/bin/env bash
# The Debian package, as a user gets it: built with cargo-deb from what
# `cargo xtask dist` generates, installed on this machine with `dpkg -i`,
# checked where it put its files (the config with `discoveryd check`, the
# unit with `systemd-analyze verify`, the man page with `man -l`, the bash
# completions, `--version`), then purged, even on failure. The package
# installs its unit without enabling or starting it: nothing may run.
# Needs root, dpkg, cargo-deb, systemd-analyze, man and file (.ci/run
# installs them).
set -uo pipefail
cd "$(dirname "$0")/../.."

die() { echo "deb: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root, to install the package (CI runs as root)"
for tool in dpkg cargo-deb systemd-analyze man file; do
  command -v "$tool" > /dev/null || die "$tool is missing (.ci/run installs it)"
done
dpkg -s discoveryd > /dev/null 2>&1 && die "a discoveryd package is installed already; this would replace it: dpkg --purge discoveryd first"

cargo xtask dist > /dev/null || die "cargo xtask dist failed"
rm -f target/debian/discoveryd_*.deb
cargo deb --locked > /dev/null || die "cargo deb failed"
deb=$(ls target/debian/discoveryd_*.deb)
echo "built $deb ($(stat -c %s "$deb") bytes)"

trap 'dpkg --purge discoveryd > /dev/null 2>&1' EXIT INT TERM
dpkg -i "$deb" > /dev/null || die "dpkg -i $deb failed"

passed=0; failed=0
check() {
  local name=$1; shift
  if "$@"; then echo "ok - $name"; passed=$((passed + 1)); else echo "not ok - $name"; failed=$((failed + 1)); fi
}
stripped() { file -b /usr/bin/discoveryd 2> /dev/null | grep -q 'stripped' && ! file -b /usr/bin/discoveryd | grep -q 'not stripped'; }
check "the binary is at /usr/bin/discoveryd, and runs: $(/usr/bin/discoveryd --version)" /usr/bin/discoveryd --version > /dev/null
check "and is stripped" stripped
passes_check() { /usr/bin/discoveryd check --config /etc/discoveryd/discoveryd.toml > /dev/null; }
check "the installed config passes discoveryd check" passes_check
check "and is a conffile (an upgrade keeps the operator's edits)" \
  grep -qx /etc/discoveryd/discoveryd.toml /var/lib/dpkg/info/discoveryd.conffiles
unit=/usr/lib/systemd/system/discoveryd.service
verify_unit() {
  local said
  said=$(systemd-analyze verify "$unit" 2>&1) || { echo "  exit status $?: $said"; return 1; }
  [ -z "$said" ] || { echo "  systemd-analyze said: $said"; return 1; }
}
check "the installed unit verifies cleanly (systemd-analyze verify)" verify_unit
check "and runs /usr/bin/discoveryd" grep -q '^ExecStart=/usr/bin/discoveryd run' "$unit"
check "the man page renders (man -l)" \
  eval 'man -l /usr/share/man/man1/discoveryd.1.gz 2> /dev/null | grep -q "discoveryd-discover(1)"'
check "with a page per command" \
  eval 'man -l /usr/share/man/man1/discoveryd-discover.1.gz 2> /dev/null | grep -q -- "--etcd"'

check "the bash completions load" \
  bash -c '. /usr/share/bash-completion/completions/discoveryd && complete -p discoveryd > /dev/null'
check "zsh and fish completions are installed" \
  test -s /usr/share/zsh/vendor-completions/_discoveryd -a -s /usr/share/fish/vendor_completions.d/discoveryd.fish
check "the licences are in /usr/share/doc/discoveryd" \
  test -s /usr/share/doc/discoveryd/copyright -a -s /usr/share/doc/discoveryd/LICENSE-APACHE
check "nothing was started by the install" eval '! pgrep -f "^/usr/bin/discoveryd" > /dev/null'

dpkg --purge discoveryd > /dev/null || die "dpkg --purge discoveryd failed"
check "purged: no file left" eval '[ ! -e /usr/bin/discoveryd ] && [ ! -e /etc/discoveryd/discoveryd.toml ] && [ ! -e "$unit" ]'
echo "deb: $passed passed, $failed failed"
[ "$failed" = 0 ]
