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


def refuse_directories_others_change(path: Path, what: str, *, hint: str) -> None:
    """Refuse ``path`` when a directory above it may be changed by another user.

    Whoever may rename entries in a directory above ``path`` can swap ``path`` (or a directory on the
    way to it) for one of their own: sockets there would be theirs, and a root process that sets a
    file's owner or mode by path could be pointed at a file of their choice. So every existing
    directory above it, as written and with symbolic links resolved, must belong to root or to this
    process's user and not be writable by group or others, unless it is sticky (``/tmp``: nobody
    renames what is not theirs there). Directories that do not exist yet are skipped (this process
    makes them).

    ``what`` names ``path`` in the message ("the socket /run/x.sock"); ``hint`` says what to do,
    ``{parent}`` in it standing for the directory at fault."""
    me = os.geteuid()
    seen: set[Path] = set()
    written = path.absolute()
    for parent in [*written.parents, *Path(os.path.realpath(written)).parents]:
        if parent in seen:
            continue
        seen.add(parent)
        try:
            st = parent.stat()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise WayRayError(f"{parent}: cannot check what is above {what}: {err.strerror}") from None
        sticky = bool(st.st_mode & stat.S_ISVTX)
        if st.st_uid not in (0, me) or (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky):
            raise WayRayError(
                f"{parent}: a directory above {what} may be changed by other users "
                f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})",
                hint=hint.replace("{parent}", str(parent)),
            )
