"""Listening Unix sockets that nobody else can reach before their mode says so."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from wayray.common.errors import WayRayError

#: sun_path holds 108 bytes on Linux (104 on illumos and the BSDs), including the final NUL.
MAX_SOCKET_PATH = 103


def bind_private_socket(path: Path, *, mode: int = 0o600) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from the start (never reachable by others), after
    removing a stale one; WayRayError when another process listens there or the path is unusable.
    ``mode`` opens it further once bound (login mode's link socket, whose peers are checked by uid
    and secret)."""
    length = len(os.fsencode(path))
    if length > MAX_SOCKET_PATH:
        raise WayRayError(
            f"{path}: a socket path can be at most {MAX_SOCKET_PATH} bytes, this one has {length}",
            hint="use a shorter runtime directory (--runtime-dir, or host.runtime_dir)",
        )
    try:
        return _bind(path, mode)
    except OSError as err:
        raise WayRayError(f"cannot listen on {path}: {err.strerror or err}") from None


def _bind(path: Path, mode: int) -> socket.socket:
    if path.is_socket() or path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
        else:
            raise WayRayError(
                f"{path}: another process listens there",
                hint="another wrsrvd uses this runtime directory; give this one its own --runtime-dir",
            )
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, mode)
    sock.listen(64)
    sock.setblocking(False)
    return sock
