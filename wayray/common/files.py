"""Small files that matter: written whole or not at all (state, records, units), created private
and once (keys, identities), and read back refusing what others could have read or swapped."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from wayray.common.errors import WayRayError


def write_atomic(
    path: Path, data: bytes, *, mode: int | None = 0o600, exclusive: bool = False, fsync: bool = True
) -> bool:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half of
    one, and a crash leaves no half-written file: it goes into a temporary file beside ``path``,
    which then takes ``path``'s place. Returns True.

    ``mode`` is the new file's mode exactly (whatever the umask), and the file has it from its first
    byte; None gives what ``open()`` would (0666 less the umask). ``exclusive``: only when ``path``
    does not exist yet; another process that got there first wins, and this returns False (nothing
    written). ``fsync``: the data and the directory entry are on disk when this returns (a state
    file that is rewritten often may skip it). OSError (a full disk, no permission) leaves ``path``
    as it was and no temporary file behind."""
    path = Path(path)
    tmp = stage_file(path, data, mode=mode, fsync=fsync)
    try:
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        fsync_dir(path.parent)
    return True


def stage_file(
    path: Path, data: bytes, *, mode: int | None = 0o600, fsync: bool = True, suffix: str = ".tmp"
) -> Path:
    """A finished temporary file holding ``data`` beside ``path`` (hidden, named after it and ending in
    ``suffix``), for the caller to rename onto ``path`` with ``os.replace`` (:func:`write_atomic`
    does; a set of files staged first and renamed together is the other use). ``mode`` and
    ``fsync`` as for :func:`write_atomic`. On OSError nothing is left behind."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o666 if mode is None else 0o600)
    try:
        with open(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fsync_dir(directory: Path) -> None:
    """Put ``directory``'s entries on disk (after a rename or link into it). Best effort: some file
    systems refuse fsync on a directory, and the entry is there either way."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
