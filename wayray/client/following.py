"""Connecting a viewer to a pool's member: following its Redirects (docs/pools.md §4), with the
handshakes to the other members made ahead while the first member looks the badge up."""

from __future__ import annotations

import dataclasses
import logging

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


async def connect_following(
    host: str, port: int, hello: HelloParams, options: ViewerOptions, stats: ViewerStats
) -> tuple[ClientConnection, tuple[str, int]]:
    """Connect to ``host``, following the Redirects of its pool (at most :data:`MAX_REDIRECTS` in a
    row): the member a Redirect names is accepted with exactly the identity the redirecting member,
    which this viewer trusts, vouched for. Returns the connection and the server it is to."""
    client = options.client
    ahead = _dial_ahead(host, port, hello, options)
    try:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                return await _connect_or_use(host, port, client, hello, ahead, stats), (host, port)
            except Redirected as err:
                target = err.redirect
                if hop == MAX_REDIRECTS:
                    raise ConnectError(
                        f"{err.message}: redirected {hop + 1} times in a row; not following (a loop?)",
                        hint="the pool's members disagree about where the session is: see their logs",
                    ) from None
                log.info("%s", err.message)
                host, port = target.host, target.port
                client = dataclasses.replace(client, trust=PinnedFingerprint(target.fingerprint))
                stats.redirects += 1
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        for a in ahead.values():
            a.close()


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
