"""Run a command under the address-family restriction of a systemd unit.

    /usr/bin/python3 unit_sandbox.py UNIT_FILE [--drop AF_NAME]... -- COMMAND [ARGS...]

Reads RestrictAddressFamilies= from UNIT_FILE and installs the seccomp
filter systemd builds for it (src/shared/seccomp-util.c, allow-list mode):
socket() with any other family fails with EAFNOSUPPORT. Then it execs
COMMAND, which inherits the filter. --drop removes a family from the
unit's list, for a control run.

Uses libseccomp through Debian's python3-seccomp, the library systemd uses.
"""
import errno
import os
import socket
import sys

import seccomp

# Linux's AF_MAX (include/linux/socket.h): families at or above it do not exist.
AF_MAX = 46


def allowed_families(unit_file, dropped):
    with open(unit_file) as f:
        lines = [l.strip() for l in f if l.strip().startswith("RestrictAddressFamilies=")]
    if len(lines) != 1:
        sys.exit(f"{unit_file}: expected one RestrictAddressFamilies= line, found {len(lines)}")
    names = lines[0].split("=", 1)[1].split()
    if names and names[0].startswith("~"):
        sys.exit("deny-list mode (~) is not what the shipped unit uses")
    return {getattr(socket, n) for n in names if n not in dropped}


def main():
    args = sys.argv[1:]
    if "--" not in args or not args:
        sys.exit(__doc__)
    split = args.index("--")
    unit_file, options, command = args[0], args[1:split], args[split + 1:]
    dropped = {options[i + 1] for i in range(len(options)) if options[i] == "--drop"}
    allowed = allowed_families(unit_file, dropped)
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    deny = seccomp.ERRNO(errno.EAFNOSUPPORT)
    for family in range(AF_MAX):
        if family not in allowed:
            f.add_rule(deny, "socket", seccomp.Arg(0, seccomp.EQ, family))
    f.add_rule(deny, "socket", seccomp.Arg(0, seccomp.GE, AF_MAX))
    f.load()
    # The filter is in place: prove it before handing over.
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
        sys.exit("the seccomp filter did not take effect")
    except OSError as e:
        if e.errno not in (errno.EAFNOSUPPORT,):
            raise
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
