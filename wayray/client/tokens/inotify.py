"""Just enough of Linux inotify, through ctypes, to watch one directory from asyncio.

No third-party package: the few calls needed are stable libc API, and the token file source must stay
importable where there is no inotify (illumos): there :func:`available` is False and it polls instead.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from wayray.common.libc import libc as c_library

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
#: struct inotify_event { int wd; uint32_t mask, cookie, len; char name[]; }
_HEADER = struct.Struct("iIII")


@dataclass(frozen=True, slots=True)
class InotifyEvent:
    wd: int
    mask: int
    cookie: int
    #: File name inside the watched directory (b"" for events about the directory itself).
    name: bytes


class InotifyUnavailable(OSError):
    pass


@functools.cache
def _libc() -> ctypes.CDLL:
    if not sys.platform.startswith("linux"):
        raise InotifyUnavailable("inotify exists on Linux only")
    libc = c_library()
    if not hasattr(libc, "inotify_init1"):
        raise InotifyUnavailable("this C library has no inotify")
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_init1.restype = ctypes.c_int
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_add_watch.restype = ctypes.c_int
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.inotify_rm_watch.restype = ctypes.c_int
    return libc


def available() -> bool:
    try:
        _libc()
    except OSError:
        return False
    return True


class Inotify:
    """One non-blocking inotify instance. ``fileno()`` becomes readable when :meth:`read` has events."""

    def __init__(self) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise InotifyUnavailable(err, f"inotify_init1: {os.strerror(err)}")
        self._fd: int | None = fd
        self._buffer = b""

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("inotify instance is closed")
        return self._fd

    def add_watch(self, path: Path, mask: int) -> int:
        wd = self._libc.inotify_add_watch(self.fileno(), os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fileno(), wd)  # errors only mean it is gone already

    def read(self) -> list[InotifyEvent]:
        """Every event queued now (an empty list when there is none)."""
        while True:
            try:
                chunk = os.read(self.fileno(), 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        events = []
        data = self._buffer
        offset = 0
        while len(data) - offset >= _HEADER.size:
            wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length
            if end > len(data):
                break
            name = data[offset + _HEADER.size : end].rstrip(b"\0")
            events.append(InotifyEvent(wd, mask, cookie, name))
            offset = end
        self._buffer = data[offset:]
        return events

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
