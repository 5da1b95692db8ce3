"""Socket activation and readiness notification, with and without systemd.

systemd passes the listening socket as fd 3 (``LISTEN_FDS``/``LISTEN_PID``) and reads readiness from
``$NOTIFY_SOCKET``. Elsewhere (no systemd as PID 1, illumos/SMF) wrsessd binds its own socket and the
notifications are no-ops. systemd-python is used when installed; a few lines of stdlib do the same
otherwise. Readiness and the watchdog go through ``wayray.common.notify`` like every daemon's.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import socket
from pathlib import Path

from wayray.common.errors import WayRayError
from wayray.common.files import refuse_directories_others_change
from wayray.common.unixsock import bind_private_socket

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3


def activated_socket() -> socket.socket | None:
    """The socket systemd passed us, or None when not socket-activated. Clears the LISTEN_* vars."""
    fds: list[int]
    try:
        from systemd import daemon

        fds = list(daemon.listen_fds(True))
    except ImportError:
        fds = []
        if os.environ.get("LISTEN_PID") == str(os.getpid()):
            try:
                count = int(os.environ.get("LISTEN_FDS", "0"))
            except ValueError:
                count = 0
            fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not fds:
        return None
    if len(fds) > 1:
        log.warning("socket activation passed %d sockets; using the first", len(fds))
    sock = socket.socket(fileno=fds[0])
    os.set_inheritable(sock.fileno(), False)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise WayRayError("the activated socket is not a Unix stream socket", hint="check wrsessd.socket")
    return sock


def bind_socket(path: Path, *, group: str | None, mode: int) -> socket.socket:
    """Bind ``path`` as a listening Unix socket owned by root:``group`` with ``mode``.

    A stale socket file left by a crashed wrsessd is replaced; a live one (something accepts
    connections on it) is an error, so two daemons never fight over the path; so is anything else
    at the path.
    """
    gid = -1
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise WayRayError(
                f"socket group {group!r} does not exist",
                hint=f"create it (groupadd --system {group}) or set socket_group",
            ) from None
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    # wrsessd (root) sets the socket's owner and mode by path: nobody else may swap a directory above it.
    refuse_directories_others_change(
        path,
        f"the socket {path}",
        hint="make {parent} root-owned and not group/world-writable, or move the socket",
    )
    return bind_private_socket(
        path,
        mode=mode,
        gid=gid,
        in_use="another wrsessd is already listening on this socket",
        in_use_hint=None,
        not_a_socket_hint="remove it or choose another path (launcher_socket in host.toml)",
        too_long_hint="choose a shorter path (launcher_socket in host.toml)",
    )


def unlink_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
