"""Where a keypress's time goes: a time stamp at every hop from the viewer's key to the frame that
answers it, for ``bench/trace_hops.py`` and for an engineer chasing latency. Off unless
``WAYRAY_TRACE`` names a directory when the process starts; when off, each hop costs one test of
:data:`ENABLED` at its call site.

Every process writes its own file there (``PROGRAM-PID.trace``, created 0600), a line per hop::

    MONOTONIC_NS HOP ID

``MONOTONIC_NS`` is ``CLOCK_MONOTONIC``, one clock for every process of the machine, so a benchmark
on one machine lines the files up without correcting anything. ``ID`` names a keypress as
``k<viewer's time_ms>.<n>`` up to the frame that answers it (``n`` counts presses stamped with the same
millisecond, in the order every process sees them) and that frame as ``f<seq>`` after; the hop
``frame`` (ID ``k…``, extra field ``f<seq>``) joins the two. Only key presses are traced: a release or
a pointer event draws nothing worth timing. Which key was pressed is never written: a password typed
while tracing is not in the files.

In one process a key waits between hops it cannot name itself (a client's commit does not say which
key it answers): :func:`hold` parks it at a hop, :func:`pass_on` moves everything parked at one hop to
the next, :func:`join` hands what waits to a frame. Nothing here is read back by the product; the
lines carry no content (no key names, no text), only codes and times.
"""

from __future__ import annotations

import os
import sys
import time

#: Whether this process traces (read once, at import: a process traces for its whole life or not at all).
ENABLED = bool(os.environ.get("WAYRAY_TRACE"))

_fd: int | None = None
#: What waits at a hop: (ident, owner); an owner (the client a key went to) lets only that client's
#: commit pass the key on (a video in another window commits every frame without answering it).
_parked: dict[str, list[tuple[str, object]]] = {}
#: A key nobody answers (a key the focused client ignores) must not wait forever: at most this many wait.
MAX_PARKED = 64


_last_ms = -1
_same_ms = 0


def key_id(time_ms: int) -> str:
    """The name of the next keypress stamped ``time_ms`` by its viewer, the same in every process it
    crosses (call it once per press)."""
    global _last_ms, _same_ms
    if time_ms == _last_ms:
        _same_ms += 1
    else:
        _last_ms, _same_ms = time_ms, 0
    return f"k{time_ms}.{_same_ms}"


def frame_id(seq: int) -> str:
    return f"f{seq}"


def _open() -> int | None:
    global _fd
    if _fd is None:
        directory = os.environ.get("WAYRAY_TRACE", "")
        program = os.path.basename(sys.argv[0]) or "python"
        path = os.path.join(directory, f"{program}-{os.getpid()}.trace")
        try:
            _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as err:
            global ENABLED
            ENABLED = False
            print(f"wayray: tracing off: cannot write {path}: {err.strerror}", file=sys.stderr)
            return None
    return _fd


def mark(hop: str, ident: str, extra: str = "") -> None:
    """``ident`` reached ``hop`` now (one line, written whole by one ``write``)."""
    if not ENABLED:
        return
    fd = _open()
    if fd is None:
        return
    line = f"{time.monotonic_ns()} {hop} {ident}{' ' + extra if extra else ''}\n"
    try:
        os.write(fd, line.encode())
    except OSError:
        pass


def hold(hop: str, ident: str, owner: object = None) -> None:
    """Mark ``ident`` at ``hop`` and park it there until something passes it on; with ``owner``, only
    a :func:`pass_on` for that owner (or for anyone) moves it."""
    if not ENABLED:
        return
    mark(hop, ident)
    waiting = _parked.setdefault(hop, [])
    waiting.append((ident, owner))
    del waiting[:-MAX_PARKED]


def pass_on(parked_at: str, hop: str, owner: object = None) -> None:
    """What is parked at ``parked_at`` reaches ``hop`` now, and waits there: everything, or with
    ``owner`` what has that owner or none."""
    if not ENABLED:
        return
    waiting = _parked.pop(parked_at, None)
    if not waiting:
        return
    if owner is not None:
        stay = [(i, o) for i, o in waiting if o is not None and o is not owner]
        if stay:
            _parked[parked_at] = stay
        waiting = [(i, o) for i, o in waiting if o is None or o is owner]
    for ident, _ in waiting:
        mark(hop, ident)
    _parked.setdefault(hop, []).extend((i, None) for i, _ in waiting)


def taken(parked_at: str) -> list[str]:
    """Everything parked at ``parked_at``, no longer parked (to go along with one piece of work)."""
    return [ident for ident, _ in _parked.pop(parked_at, [])] if ENABLED else []


def join(idents: list[str], seq: int) -> None:
    """These keys are answered by frame ``seq``: from here on that frame's hops stand for them."""
    for ident in idents:
        mark("frame", ident, frame_id(seq))
