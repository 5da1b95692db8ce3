"""Reserving an X display number: the lock file and the listening sockets an X server would own.

``XDisplay.reserve()`` takes the lowest free number from ``first`` up: ``/tmp/.X<N>-lock`` created
exclusively with the pid in it (ten digits and a newline, as Xorg and Xwayland write it; a lock whose
pid is gone is stale and taken over), then ``/tmp/.X11-unix/X<N>`` and, on Linux, the abstract
socket ``@/tmp/.X11-unix/X<N>``. The sockets are handed to Xwayland (``-listenfd``), which accepts
on them; the compositor only watches them for the first client. ``close()`` releases it all.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

X11_UNIX = "/tmp/.X11-unix"
LOCK_DIR = "/tmp"
MAX_DISPLAY = 255


class XDisplayError(OSError):
    """No X display number could be reserved."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class XDisplay:
    """One reserved X display: its number, lock file and listening sockets (close-on-exec)."""

    def __init__(self, number: int, lock: Path, path: Path, sockets: list[socket.socket]) -> None:
        self.number = number
        self.lock = lock
        self.path = path
        self.sockets = sockets

    @property
    def name(self) -> str:
        """The ``DISPLAY`` value, e.g. ``:3``."""
        return f":{self.number}"

    def __repr__(self) -> str:
        return f"<X display {self.name}>"

    @classmethod
    def reserve(cls, first: int = 0, *, lock_dir: str = LOCK_DIR, socket_dir: str = X11_UNIX) -> XDisplay:
        """The lowest free display from ``first``; raises ``XDisplayError`` when none is free."""
        _ensure_socket_dir(Path(socket_dir))
        last: OSError | None = None
        for number in range(first, MAX_DISPLAY + 1):
            lock = Path(lock_dir) / f".X{number}-lock"
            if not _take_lock(lock):
                continue
            path = Path(socket_dir) / f"X{number}"
            try:
                sockets = _bind(path)
            except OSError as err:
                last = err
                lock.unlink(missing_ok=True)
                continue
            log.debug("reserved X display :%d", number)
            return cls(number, lock, path, sockets)
        raise XDisplayError(
            errno.EADDRINUSE, f"no free X display number in {first}..{MAX_DISPLAY} (last error: {last})"
        )

    def close(self) -> None:
        """Stop listening and release the number (the lock and the socket file go)."""
        for s in self.sockets:
            s.close()
        self.sockets = []
        self.path.unlink(missing_ok=True)
        self.lock.unlink(missing_ok=True)


def _ensure_socket_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o1777)
        os.chmod(directory, 0o1777)  # mkdir's mode goes through the umask
    except FileExistsError:
        pass
    st = directory.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise XDisplayError(errno.ENOTDIR, f"{directory} is not a directory")
    if st.st_uid not in (0, os.geteuid()):
        # Its owner may remove any socket in it (the sticky bit does not stop an owner) and put a
        # listener of theirs in its place: X programs of this session would talk to them.
        raise XDisplayError(
            errno.EPERM,
            f"{directory} is owned by uid {st.st_uid}, another user, who could replace this session's X "
            "socket; X11 is not offered (have root make it: systemd-tmpfiles --create x11.conf)",
        )
    if st.st_mode & 0o1777 != 0o1777 and st.st_uid == os.geteuid():
        os.chmod(directory, 0o1777)


def _take_lock(lock: Path) -> bool:
    """Create ``lock`` with our pid; take over a stale one (its pid gone). False when it is in use."""
    for _attempt in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        except FileExistsError:
            if not _stale(lock):
                return False
            try:
                lock.unlink()
            except OSError:
                return False
            continue
        except OSError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid():10d}\n")
        return True
    return False


def _stale(lock: Path) -> bool:
    try:
        text = lock.read_text().strip()
    except OSError:
        return False
    if not text.isdigit():
        # Being written this very moment, or garbage; garbage older than a minute is stale.
        try:
            return os.stat(lock).st_mtime < time.time() - 60
        except OSError:
            return False
    return not _pid_alive(int(text))


def _bind(path: Path) -> list[socket.socket]:
    sockets = []
    try:
        if path.exists() or path.is_symlink():
            # We hold the lock: a socket file without a live lock holder is stale.
            path.unlink()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sockets.append(s)
        s.bind(str(path))
        s.listen(128)
        if sys.platform == "linux":
            a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            sockets.append(a)
            a.bind(b"\0" + os.fsencode(path))
            a.listen(128)
    except OSError:
        for s in sockets:
            s.close()
        if sockets:
            path.unlink(missing_ok=True)
        raise
    return sockets
