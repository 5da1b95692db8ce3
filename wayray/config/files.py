"""Finding and reading configuration files safely: below ``--root`` exactly as ``systemctl --root``
does, never blocking, never reading without end.

- **Paths resolve inside the root.** Symlinks are followed one component at a time with the root as
  ``/``: an absolute target starts again at the root, ``..`` stops there (systemd's
  ``chase_symlinks()`` with a root prefix). With the root ``/`` this is what the kernel does anyway.
- **Only regular files are read.** A FIFO, a device (``/dev/zero``), a socket or a directory is
  refused before anything is read: the file is opened with ``O_NONBLOCK`` (opening a FIFO cannot
  wait for a writer) and checked with ``fstat``.
- **Sizes are bounded.** A file is read up to :data:`MAX_FILE_BYTES` (a configuration file is a few
  kilobytes; a bigger one is a mistake), all files together up to :data:`MAX_TOTAL_BYTES`, and a
  drop-in directory is listed up to :data:`MAX_DIR_ENTRIES` entries.

Standard library only (the generator reads the configuration at boot).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 8 << 20
MAX_DIR_ENTRIES = 1024
#: As the kernel (and systemd) allow on one path resolution.
MAX_SYMLINKS = 40

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}


class NotRegular(OSError):
    """The path is not a regular file (``kind`` says what it is instead)."""

    def __init__(self, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file")
        self.kind = kind


class TooLarge(OSError):
    """The file is larger than allowed; ``head`` holds the first ``limit`` bytes (for a position)."""

    def __init__(self, head: bytes, limit: int) -> None:
        super().__init__(errno.EFBIG, "file too large")
        self.head = head
        self.limit = limit


def kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def chase(root: Path, logical: str) -> Path:
    """``logical`` (an absolute path as the running system names it) resolved below ``root``.

    Every symlink on the way is followed inside ``root``. A component that does not exist ends the
    walk: the rest is appended as it is (reading it then fails with "No such file"). Raises
    ``OSError(ELOOP)`` after :data:`MAX_SYMLINKS` links.
    """
    if root == Path("/"):
        return Path(os.path.normpath("/" + logical.lstrip("/")))
    todo = [p for p in logical.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            done.append(part)
            done.extend(p for p in todo if p not in ("", "."))
            break
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(root.joinpath(*done, part)))
        target = os.readlink(candidate)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p not in ("", ".")] + todo
    return root.joinpath(*done)


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes.

    Raises :class:`NotRegular` for anything but a regular file (without blocking on a FIFO or
    reading a device), :class:`TooLarge` when there is more, ``OSError`` when it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(kind_of(st.st_mode))
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(data[:limit], limit)
    return data


def list_dir(path: Path, limit: int = MAX_DIR_ENTRIES) -> tuple[list[str], bool]:
    """Names in the directory ``path``, sorted; and whether there were more than ``limit``
    (only the first ``limit`` in directory order are kept then). Raises ``OSError``."""
    names: list[str] = []
    more = False
    with os.scandir(path) as entries:
        for entry in entries:
            if len(names) >= limit:
                more = True
                break
            names.append(entry.name)
    return sorted(names), more


def describe_size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} bytes"
