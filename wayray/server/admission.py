"""Admission: whether a new session, login screen or unlock screen may start, before anything of it is
allocated. Pure functions and a small rate-limiter state; wrsrvd asks, then starts or refuses.

Anyone who can reach the port may present a token, and every new token costs the server a session:
a compositor with its output buffers (and in login mode a login screen, as the greeter user). So a
new one is weighed against:

- **the memory budget** (``admission.memory_percent`` of the machine's memory, or of
  ``limits.memory_max``): every live session's estimated memory (from its output size, see
  :func:`estimate`) plus the new one's must fit;
- **its source** (:func:`source_of`: an IPv4 address, an IPv6 /64, or a verified client certificate):
  the *unused* sessions it holds (login and unlock screens, sessions nobody has typed into or clicked
  yet) may number ``admission.unused_sessions_per_source`` and take a quarter of the budget;
- **its rate**: ``admission.new_sessions_per_minute`` new ones per source (a token bucket: that many
  at once, then one every 60/N seconds).

Sessions in use (a user logged in, or the viewer gave input) no longer count against their source:
they are somebody's work. Kiosks behind one NAT address share a source; sites with many of them
raise the per-source numbers, or give kiosks certificates (``tls.client_ca``), which are sources of
their own.
"""

from __future__ import annotations

import enum
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

from wayray.common.sizes import fit_output

__all__ = [
    "GREETER_MAX_PIXELS",
    "Admission",
    "Holding",
    "Kind",
    "Limits",
    "estimate",
    "fit_output",
    "source_of",
]

#: Output pixels of login and unlock screens at most (3840x2160 worth): they draw little, and anyone
#: may open one.
GREETER_MAX_PIXELS = 3840 * 2160
#: A source's unused sessions may take this share of the memory budget.
SOURCE_SHARE = 4
#: Rate-limiter entries kept at most (one per source seen recently); full buckets are dropped first.
MAX_BUCKETS = 10_000

MiB = 1024 * 1024


class Kind(enum.StrEnum):
    SESSION = "session"  # standalone / sessions = "command": the server's command, as its user
    LOGIN_SCREEN = "login screen"  # login mode: a greeter session for a new token
    UNLOCK_SCREEN = "unlock screen"  # login mode: the password of a session's owner


#: Estimated peak memory: a fixed part plus bytes per output pixel. Measured on Debian 12 (x86-64)
#: as the peak RSS of the session's process tree while a viewer was attached: a standalone session
#: running foot needed 83 MiB at 1280x720 and 571 MiB at 7680x4320 (about 15 bytes per pixel: the
#: compositor's output, the encoder's reference frame, foot's buffers); a login screen (compositor and
#: wrlogin, which draws with Pillow) 44 bytes per pixel (security review H2: 11.7 GB at 16384x16384).
_ESTIMATES = {
    Kind.SESSION: (96 * MiB, 16),
    Kind.LOGIN_SCREEN: (160 * MiB, 48),
    Kind.UNLOCK_SCREEN: (160 * MiB, 48),
}


def estimate(kind: Kind, width: int, height: int) -> int:
    """Bytes a session of ``kind`` with a ``width`` x ``height`` output is expected to take at most."""
    base, per_pixel = _ESTIMATES[kind]
    return base + per_pixel * max(0, width) * max(0, height)


def source_of(peer_address: str, client_subject: str | None = None) -> str:
    """Whom a connection counts against: its verified client certificate, else its address (IPv6
    addresses by their /64: one host usually has a whole /64 to pick addresses from)."""
    if client_subject:
        return f"certificate {client_subject}"
    host = peer_address
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.rpartition(":")[0]
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.is_loopback:
            return str(address)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True)
class Limits:
    new_per_minute: int = 30
    unused_per_source: int = 16
    #: Bytes all sessions may take by their estimates; None: no budget.
    memory_budget: int | None = None


def memory_budget(percent: int, memory_max: int | None) -> int | None:
    """``percent`` of ``memory_max`` (the instance's ceiling), else of this machine's memory."""
    total = memory_max
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (OSError, ValueError):
            return None
    return total * percent // 100


@dataclass(frozen=True)
class Holding:
    """What a live session holds, for admission: where it came from, what it takes, whether in use."""

    source: str
    kind: Kind
    memory: int
    used: bool


class Admission:
    """The per-source rate limiter, and the decision (:meth:`admit`)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        #: source → (tokens, when counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def admit(
        self, source: str, kind: Kind, memory: int, holdings: Iterable[Holding], now: float
    ) -> str | None:
        """None when a new ``kind`` of ``memory`` bytes from ``source`` may start (its rate is then
        charged), else why not, for the viewer and the log. ``now``: a monotonic clock."""
        lim = self.limits
        held = list(holdings)
        unused = [h for h in held if h.source == source and not h.used]
        if len(unused) >= lim.unused_per_source:
            return (
                f"{source} already has {len(unused)} login screens or unused sessions here (the limit is "
                f"{lim.unused_per_source}); use or close one, or try again later"
            )
        if lim.memory_budget is not None:
            taken = sum(h.memory for h in held)
            if taken + memory > lim.memory_budget:
                return (
                    f"the server's memory budget for sessions is taken ({_mib(taken)} of "
                    f"{_mib(lim.memory_budget)}; this {kind} needs about {_mib(memory)}); try another "
                    "server or later"
                )
            mine = sum(h.memory for h in unused)
            share = lim.memory_budget // SOURCE_SHARE
            if mine + memory > share:
                return (
                    f"{source}'s login screens and unused sessions take {_mib(mine)} of the "
                    f"{_mib(share)} one source may have; use or close one, or try again later"
                )
        tokens = self._tokens(source, now)
        if tokens < 1.0:
            wait = (1.0 - tokens) * 60.0 / lim.new_per_minute
            return (
                f"{source} started {lim.new_per_minute} sessions or login screens in the last minute (the "
                f"limit); try again in {wait:.0f} s"
            )
        self._buckets[source] = (tokens - 1.0, now)
        self._prune(now)
        return None

    def _tokens(self, source: str, now: float) -> float:
        rate = self.limits.new_per_minute
        tokens, at = self._buckets.get(source, (float(rate), now))
        return min(float(rate), tokens + (now - at) * rate / 60.0)

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= MAX_BUCKETS:
            return
        full = [s for s in self._buckets if self._tokens(s, now) >= self.limits.new_per_minute]
        for s in full:
            del self._buckets[s]
        while len(self._buckets) > MAX_BUCKETS:  # all busy: forget the oldest
            del self._buckets[min(self._buckets, key=lambda s: self._buckets[s][1])]


def _mib(n: int) -> str:
    return f"{n / MiB / 1024:.1f} GiB" if n >= 1024 * MiB else f"{n / MiB:.0f} MiB"
