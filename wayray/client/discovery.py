"""The kiosk's side of a server pool (docs/pools.md): finding the pool's servers by mDNS, and the
trust a pool needs (pinned fingerprints or a CA, never trust on first use)."""

from __future__ import annotations

from wayray.common.errors import UsageError
from wayray.pool.mdns import MemberAd, PoolBrowser
from wayray.transport import ClientSettings, KnownHosts, PinnedFingerprint, ServerIdentityError, ServerTrust
from wayray.wire import PROTOCOL_MAJOR


def check_pool_trust(pool: str, client: ClientSettings) -> None:
    """A pool's servers are found by multicast, which anyone on the network can answer: they are
    trusted only through pinned fingerprints or a CA, never on first use."""
    if pool and client.server_ca is None and isinstance(client.trust, KnownHosts | None):
        raise UsageError(
            f"pool {pool}: no trust for its servers: anyone on the network can answer an mDNS "
            "question, so trusting on first use would show your badge to whoever answers first",
            hint="pin the pool's servers (--fingerprint, client.toml's fingerprints) or give the pool's "
            "CA (--ca, client.toml's tls.ca)",
        )


#: Seconds without an answer to the viewer's pings (two a second) after which a viewer of a pool
#: gives its member up and goes to another (docs/pools.md §7); 6 s (WireConfig's, one a second) for a
#: single server. A member that only stalls for longer loses nothing: the member the viewer goes to
#: finds its session in the directory and sends it back.
POOL_IDLE_TIMEOUT = 2.0
POOL_PING_INTERVAL = 0.5
#: Seconds a viewer of a pool waits at start for the first member to be found (it goes on looking).
DISCOVERY_WAIT = 5.0


async def discovery(pool: str, client: ClientSettings) -> PoolBrowser | None:
    """The pool's browser, started (None without a pool)."""
    if not pool:
        return None
    pins = _pins(client.trust)

    def accept(ad: MemberAd) -> str | None:
        if ad.protocol[0] != PROTOCOL_MAJOR:
            return f"it speaks protocol {ad.protocol[0]}.{ad.protocol[1]}, this client {PROTOCOL_MAJOR}.x"
        if pins is not None and ad.fingerprint not in pins:
            return f"it advertises the identity {ad.fingerprint or '(none)'}, not one of the pool's"
        return None

    browser = PoolBrowser(pool, accept=accept)
    await browser.start()
    return browser


def _pins(trust: ServerTrust | None) -> frozenset[str] | None:
    """The fingerprints a trust accepts, when it is pins only (None: it accepts others too)."""
    if isinstance(trust, PinnedFingerprint):
        return frozenset({trust.fingerprint})
    if isinstance(trust, AnyOf):
        return frozenset(p.fingerprint for p in trust.pins)
    return None


class AnyOf:
    """Trust any of several pinned fingerprints (client.toml's ``fingerprints``)."""

    def __init__(self, pins: tuple[PinnedFingerprint, ...]) -> None:
        self.pins = pins

    def check(self, host: str, port: int, fingerprint: str) -> None:
        for pin in self.pins:
            try:
                pin.check(host, port, fingerprint)
                return
            except ServerIdentityError:
                continue
        raise ServerIdentityError(
            f"{host}:{port} presented the identity {fingerprint}, which is not among the fingerprints "
            "configured in client.toml",
            hint="if the server's identity was renewed on purpose, add its new fingerprint",
        )
