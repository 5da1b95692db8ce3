"""Listening Unix sockets that nobody else can reach before their mode says so, bound over a stale
socket file (a crashed run's) but never over a live one, nor over anything that is not a socket."""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from pathlib import Path

from wayray.common.errors import WayRayError

log = logging.getLogger(__name__)

#: What the default words say: wrsrvd's sockets are in its runtime directory.
_IN_USE_HINT = "another wrsrvd uses this runtime directory; give this one its own --runtime-dir"
_TOO_LONG_HINT = "use a shorter runtime directory (--runtime-dir, or host.runtime_dir)"

#: sun_path holds 108 bytes on Linux (104 on illumos and the BSDs), including the final NUL.
MAX_SOCKET_PATH = 103


def bind_private_socket(
    path: Path,
    *,
    mode: int = 0o600,
    gid: int = -1,
    backlog: int = 64,
    in_use: str = "another process listens there",
    in_use_hint: str | None = _IN_USE_HINT,
    not_a_socket_hint: str = "remove it, or choose another path",
    too_long_hint: str = _TOO_LONG_HINT,
) -> socket.socket:
    """A listening, non-blocking Unix socket at ``path``.

    It is bound under a umask that leaves it 0600, then given group ``gid`` (unless -1), then
    ``mode``: never for a moment more open than asked. A socket file already at ``path`` that nobody
    listens on (left by a process that died) is replaced, and logged; one that somebody listens on is
    a WayRayError ``PATH: <in_use>`` (with ``in_use_hint``), and so is anything else at ``path``
    (a file, a directory, a symbolic link: ``not_a_socket_hint``), and a path too long for a socket
    address (``too_long_hint``)."""
    length = len(os.fsencode(path))
    if length > MAX_SOCKET_PATH:
        raise WayRayError(
            f"{path}: a socket path can be at most {MAX_SOCKET_PATH} bytes, this one has {length}",
            hint=too_long_hint,
        )
    _remove_stale(path, in_use, in_use_hint, not_a_socket_hint)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        if gid != -1:
            os.chown(path, -1, gid)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        raise WayRayError(f"cannot listen on {path}: {err.strerror or err}") from None
    sock.setblocking(False)
    return sock


def _remove_stale(path: Path, in_use: str, in_use_hint: str | None, not_a_socket_hint: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise WayRayError(f"cannot listen on {path}: {err.strerror or err}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise WayRayError(f"{path}: exists and is not a socket", hint=not_a_socket_hint)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(str(path))
    except OSError as err:
        if err.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise WayRayError(f"{path}: cannot check the existing socket: {err.strerror or err}") from None
        try:
            path.unlink(missing_ok=True)
        except OSError as unlink_err:
            raise WayRayError(
                f"{path}: cannot remove the stale socket: {unlink_err.strerror or unlink_err}"
            ) from None
        log.info("%s: removed a stale socket (nothing listened on it)", path)
    else:
        raise WayRayError(f"{path}: {in_use}", hint=in_use_hint)
    finally:
        probe.close()
