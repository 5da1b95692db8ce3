"""Connecting a viewer to a pool's member: following its Redirects (docs/pools.md §4), with the
handshakes to the other members made ahead while the first member looks the badge up, and a pool
kiosk going straight to the member a Redirect sent a badge to lately at that badge's next badge-in."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from typing import NamedTuple

from wayray.client.viewing import ViewerOptions, ViewerStats
from wayray.transport import ClientConnection, ConnectError, PinnedFingerprint, Redirected, connect
from wayray.transport.client import ClientSettings, DialledAhead
from wayray.transport.trust import host_key
from wayray.wire import HelloParams

log = logging.getLogger("wayray.client")

#: Redirects a viewer follows in a row before it calls it a loop (docs/pools.md §4).
MAX_REDIRECTS = 2
#: Members of its pool a viewer dials ahead while the member it reached looks its badge up.
DIAL_AHEAD = 2
#: A pool viewer remembers where a Redirect sent a badge for this long (seconds), for at most this
#: many badges, and gives that member's handshake this long before it dials as if it knew nothing.
REMEMBER_FOR = 1800.0
REMEMBER_AT_MOST = 1024
REMEMBERED_WAIT = 0.5


class _Sent(NamedTuple):
    host: str
    port: int
    fingerprint: str
    at: float


#: Keyed digests of badges (a key of this process only: never the badge, never written anywhere) →
#: the member a Redirect sent each to, and the identity its redirecting member vouched for.
_KEY = secrets.token_bytes(32)
_SENT: dict[str, _Sent] = {}


def _badge(hello: HelloParams) -> str:
    return hmac.new(_KEY, f"{hello.token_kind}:{hello.token}".encode(), hashlib.sha256).hexdigest()


def _recall(badge: str) -> _Sent | None:
    sent = _SENT.get(badge)
    if sent is not None and time.monotonic() - sent.at > REMEMBER_FOR:
        del _SENT[badge]
        return None
    return sent


def _remember(badge: str, host: str, port: int, fingerprint: str) -> None:
    _SENT.pop(badge, None)
    _SENT[badge] = _Sent(host, port, fingerprint, time.monotonic())
    while len(_SENT) > REMEMBER_AT_MOST:
        del _SENT[next(iter(_SENT))]  # the oldest


async def connect_following(
    host: str, port: int, hello: HelloParams, options: ViewerOptions, stats: ViewerStats
) -> tuple[ClientConnection, tuple[str, int]]:
    """Connect to ``host``, following the Redirects of its pool (at most :data:`MAX_REDIRECTS` in a
    row): the member a Redirect names is accepted with exactly the identity the redirecting member,
    which this viewer trusts, vouched for. Returns the connection and the server it is to."""
    client = options.client
    badge = _badge(hello) if options.pool else None
    reached = (host, port, client)
    straight = await _straight(badge, host, port, hello, options, stats)
    if straight is not None:
        host, port, client = straight.host, straight.port, straight.settings
    # Going straight, nothing is dialled ahead: a session that moved is rare, and a second handshake
    # at once slows the one this badge-in waits for on a busy kiosk.
    ahead = _dial_ahead(host, port, hello, options) if straight is None else {}
    redirects = stats.redirects
    hop = 0
    try:
        while True:
            try:
                if straight is not None:
                    conn = await straight.use(hello)
                else:
                    conn = await _connect_or_use(host, port, client, hello, ahead, stats)
            except ConnectError:
                if straight is None:
                    raise
                # The member remembered took the handshake but not the Hello: back to the one reached.
                straight = None
                _SENT.pop(badge or "", None)
                host, port, client = reached
                continue
            except Redirected as err:
                target = err.redirect
                if hop == MAX_REDIRECTS:
                    raise ConnectError(
                        f"{err.message}: redirected {hop + 1} times in a row; not following (a loop?)",
                        hint="the pool's members disagree about where the session is: see their logs",
                    ) from None
                log.info("%s", err.message)
                straight = None
                host, port = target.host, target.port
                client = _pinned(client, target.fingerprint)
                stats.redirects += 1
                hop += 1
                continue
            if badge is not None and conn.server_fingerprint is not None:
                if stats.redirects > redirects or straight is not None:
                    _remember(badge, host, port, conn.server_fingerprint)
                else:  # the member reached holds it: nothing to remember
                    _SENT.pop(badge, None)
            return conn, (host, port)
    finally:
        if straight is not None:
            straight.close()
        for a in ahead.values():
            a.close()


async def _straight(
    badge: str | None, host: str, port: int, hello: HelloParams, options: ViewerOptions, stats: ViewerStats
) -> DialledAhead | None:
    """The handshake made with the member a Redirect sent this badge to lately (its session is likely
    there still), on a viewer's first connection; None when there is none, or it does not come at
    once (the member went, or moved): the member reached is dialled then as if nothing was known.
    Only a member the viewer still knows of (discovered in its pool, or listed), with the identity its
    redirecting member vouched for, is gone to."""
    sent = _recall(badge) if badge is not None and stats.connects == 0 else None
    if sent is None or (sent.host, sent.port) == (host, port):
        return None
    if (sent.host, sent.port) not in options.servers:  # no longer a member this kiosk knows of
        _SENT.pop(badge or "", None)
        return None
    straight = DialledAhead(sent.host, sent.port, _pinned(options.client, sent.fingerprint), hello)
    try:
        ready = await asyncio.wait_for(straight.ready(sent.fingerprint), REMEMBERED_WAIT)
    except (TimeoutError, ConnectError):
        ready = False
    if not ready:
        straight.close()
        _SENT.pop(badge or "", None)
        return None
    log.info(
        "%s: going straight to the member this badge was sent to lately", host_key(sent.host, sent.port)
    )
    return straight


def _pinned(client: ClientSettings, fingerprint: str) -> ClientSettings:
    """``client`` accepting exactly ``fingerprint`` (a member a trusted member vouched for)."""
    return dataclasses.replace(client, trust=PinnedFingerprint(fingerprint))


def _dial_ahead(
    host: str, port: int, hello: HelloParams, options: ViewerOptions
) -> dict[tuple[str, int], DialledAhead]:
    """A pool viewer dials the other members it knows (up to :data:`DIAL_AHEAD`) while the one it
    reached looks the badge up: a Redirect to one of them then finds its handshake done (the second
    handshake was most of a redirect's cost, docs/benchmarks.md). Nothing but the handshake happens
    on them: the Hello, and so the token, goes only to the member a Redirect names, checked against
    the identity it vouched for."""
    if not options.pool or DIAL_AHEAD <= 0:
        return {}
    others = [s for s in options.servers if s != (host, port)][:DIAL_AHEAD]
    return {s: DialledAhead(s[0], s[1], options.client, hello) for s in others}


async def _connect_or_use(
    host: str,
    port: int,
    client: ClientSettings,
    hello: HelloParams,
    ahead: dict[tuple[str, int], DialledAhead],
    stats: ViewerStats,
) -> ClientConnection:
    dialled = ahead.pop((host, port), None)
    if dialled is None:
        return await connect(host, port, client, hello)
    trust = client.trust
    if isinstance(trust, PinnedFingerprint) and await dialled.ready(trust.fingerprint):
        stats.redirects_dialled_ahead += 1
        where = host_key(host, port)
        log.info("%s: its handshake was made while the first member looked the badge up", where)
        return await dialled.use(hello)
    dialled.close()
    return await connect(host, port, client, hello)
