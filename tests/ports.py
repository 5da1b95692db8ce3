"""Port numbers for tests whose server must be told its port before it starts (a configuration file,
a restart on the same port, a command line of a peer).

Asking the kernel for a free port (bind to 0) and handing the number on is a race: until the server
binds it, anything else that binds to 0 on this machine may be given the same number, and with two
suites at once something did. So a port is drawn from below the kernel's ephemeral range (which
bind-to-0 and outgoing connections never hand out), checked free for TCP and UDP on both loopbacks,
and claimed in a directory every suite on this machine shares, for as long as the process that
claimed it lives.
"""

from __future__ import annotations

import errno
import os
import random
import socket
from pathlib import Path

from wayray.common.processes import pid_alive

#: Claims: one file per port, holding the claiming process's pid. Shared by every suite on the machine.
CLAIMS = Path("/tmp/wayray-test-ports")
#: Below Linux's default ephemeral range (32768-60999) and above the well-known and common service ports.
LOW, HIGH = 20000, 32767


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1 and ::1, claimed for this process."""
    CLAIMS.mkdir(mode=0o1777, exist_ok=True)
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randint(LOW, HIGH)
        if _bindable(port) and _claim(port):
            return port
    raise RuntimeError(f"no free port between {LOW} and {HIGH} after 1000 tries (claims in {CLAIMS})")


def _bindable(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                with socket.socket(family, kind) as s:
                    s.bind((host, port))
            except OSError as err:
                if err.errno == errno.EADDRNOTAVAIL:  # no IPv6 loopback here: that family cannot clash
                    continue
                return False
    return True


def _claim(port: int) -> bool:
    path = CLAIMS / str(port)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _alive(path):
                return False
            path.unlink(missing_ok=True)  # its process has gone: the claim with it
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def _alive(path: Path) -> bool:
    try:
        pid = int(path.read_text() or "0")
    except (OSError, ValueError):
        return True  # being written by its claimer just now: leave it
    return pid <= 0 or pid_alive(pid)  # 0: its claimer is writing it just now
