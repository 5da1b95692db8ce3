"""Reading small secret files (keys, identities) that must be private to the daemon's user."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from wayray.common.errors import WayRayError


def read_private_file(
    path: Path, what: str, *, leaked_hint: str, owner: str, owner_hint: str | None = None, limit: int = 4096
) -> bytes:
    """Up to ``limit`` bytes of ``path``, a regular file (not a link) of this process's user with no
    access for group or others. ``what`` names it in errors ("the token key"); ``leaked_hint``
    completes the advice for a file others could read ("otherwise delete it ..."); ``owner`` names
    this process's user. A missing file raises FileNotFoundError; anything else a WayRayError.

    A file others can read is refused, not silently fixed: someone may already have copied it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as err:
        why = "it is a symbolic link" if err.errno == errno.ELOOP else err.strerror
        raise WayRayError(f"{path}: cannot read {what}: {why}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise WayRayError(f"{path}: {what} is not a regular file")
        if st.st_mode & 0o077:
            raise WayRayError(
                f"{path}: {what} is readable by others (mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"if nobody copied it: chmod 600 {path}; otherwise {leaked_hint}",
            )
        if st.st_uid != os.geteuid():
            raise WayRayError(f"{path}: {what} belongs to uid {st.st_uid}, not to {owner}", hint=owner_hint)
        return os.read(fd, limit)
    finally:
        os.close(fd)
