"""Joining a pool's shared session directory (docs/pools.md): the directory (the members' own over
the pool port, or etcd), the mDNS browser that finds members, this member's lease, and the state the
front door's pool membership (:mod:`wayray.server.pooling`) keeps about its claims."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass

from wayray.pool.directory import DirectoryError, Lease, Member
from wayray.pool.etcd import EtcdDirectory, KeyRefused, parse_endpoints
from wayray.pool.etcd_gateway import client_context
from wayray.pool.etcd_key import KeyCheck
from wayray.pool.lan import LEASE_TTL, LanDirectory, Peer
from wayray.pool.mdns import MemberAd, PoolBrowser
from wayray.pool.peers import PeerClient, PeerTrust, PoolKey, PoolListener
from wayray.server.settings import FrontDoorSettings
from wayray.server.table import SessionTable
from wayray.server.tokens import load_secret
from wayray.transport import ServerIdentity

log = logging.getLogger("wayray.server")

#: Seconds the directory's word on a badge, reached after its kiosk was told to try again (the
#: directory was slow), is kept for that badge's next Hello: a kiosk's reconnect backoff is 5 s at most.
DECIDED_FOR = 15.0


@dataclass(frozen=True)
class Decision:
    """What the pool's directory said of a badge without a session here: ``here`` (its session is
    this member's to start or show), a ``peer`` to redirect it to (``why`` says why), or neither: not
    now (``why`` is the reason its kiosk is told, with SERVER_BUSY: the kiosk tries again)."""

    here: bool = False
    peer: Peer | None = None
    why: str = ""
    at: float = dataclasses.field(default_factory=time.monotonic)

    def keeps(self, now: float) -> bool:
        """Whether a later Hello of the badge may take it (a "not now" is asked again)."""
        return (self.here or self.peer is not None) and now - self.at <= DECIDED_FOR


@dataclass
class Shared:
    """The directory side of the membership (only when the members trust each other)."""

    directory: LanDirectory | EtcdDirectory
    #: The pool port (a LAN directory's; None with etcd).
    listener: PoolListener | None
    browser: PoolBrowser
    lease: Lease
    #: Digests this member holds in the directory: the home it claimed each at, and its session id.
    claimed: dict[str, tuple[str, str]]
    #: Digests claimed for a viewer whose session is starting here (digest → when).
    pending: dict[str, float]
    #: Digests this member placed on another member (digest → when), until that one takes them over.
    placed: dict[str, float]
    #: Digests whose session here lost to an earlier session on another member (digest → that
    #: member): the badge goes there; the session here is left detached (docs/pools.md §3.2).
    yielded: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The members alive at the last round, and how many more rounds re-claim every entry (after a
    #: change of members: homes moved, and two members may hold one badge).
    last_alive: tuple[str, ...] = ()
    verify: int = 0
    #: Set when a round should come now rather than after its pause (a member was found dead: this
    #: member's entries are claimed again under the members left, and it says so, at once).
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    #: The directory's work on a badge (digest → its task): a Hello that stops waiting for it (the
    #: directory is slow) leaves it going, and the badge's next Hello takes its decision.
    deciding: dict[str, asyncio.Task[Decision]] = dataclasses.field(default_factory=dict)


async def join(
    table: SessionTable, identity: ServerIdentity, member_id: str, host: str, port: int
) -> Shared:
    """Join the pool's shared session directory (LAN members or etcd) as ``member_id``."""
    settings = table.settings
    ca = settings.pool_ca.read_bytes() if settings.pool_ca is not None else None
    trust = PeerTrust(frozenset(settings.pool_fingerprints), ca)
    me = Member(member_id, settings.name, host, port, identity.fingerprint)
    etcd = settings.pool_directory != "lan"
    directory: LanDirectory | EtcdDirectory
    listener = None
    token_key = load_secret(settings.token_key, "the pool token key")
    previous_key = (
        load_secret(settings.pool_previous_key_file, "the previous pool token key")
        if settings.pool_previous_key_file is not None
        else None
    )
    if etcd:
        assert settings.pool_etcd_ca and settings.pool_etcd_cert and settings.pool_etcd_key  # checked
        directory = EtcdDirectory(
            me,
            settings.pool,
            parse_endpoints(settings.pool_directory),
            client_context(settings.pool_etcd_ca, settings.pool_etcd_cert, settings.pool_etcd_key),
            key=KeyCheck(token_key, settings.token_key, previous_key),
            # With pins, only a pinned member is a redirect's target (a CA: the kiosk checks it).
            trusted=lambda m: (
                ca is not None or not trust.fingerprints or m.fingerprint in trust.fingerprints
            ),
        )
    else:
        key = PoolKey(settings.pool, member_id, token_key, previous_key)
        directory = LanDirectory(me, PeerClient(identity, trust, key))
        pool_port = settings.pool_port if settings.pool_port is not None else port + 1
        listener = await PoolListener.start(host, pool_port, identity, trust, directory.handle, key=key)

    def accept(ad: MemberAd) -> str | None:
        if ad.member_id == member_id:
            return "this instance"
        if ca is None and trust.fingerprints and ad.fingerprint not in trust.fingerprints:
            return f"its identity {ad.fingerprint} is not among the pool's fingerprints"
        if not etcd and not ad.pool_port:
            return "it shares no directory (no pool port)"
        return None

    browser = PoolBrowser(settings.pool, accept=accept)
    await browser.start()
    joined = True
    try:
        lease = await directory.join(me, LEASE_TTL)
    except KeyRefused:
        # Its key is not the pool's (logged, with what to do): it takes no new badge, and checks
        # again every round.
        lease = Lease("", member_id, LEASE_TTL)
    except DirectoryError as err:
        # It comes up anyway: the keep-alive rounds join when etcd answers; badges meanwhile are
        # told to try again (a wrsrvd that cannot start would cost the sessions it serves now).
        log.warning("pool %s: the session directory does not answer (%s); joining when it does",
                    settings.pool, err)  # fmt: skip
        lease = Lease("", member_id, LEASE_TTL)
        joined = False  # the keep-alive round that joins says so (EtcdDirectory.keep_alive_round)
    if joined:
        _say_joined(settings, directory, member_id, host, listener)
    shared = Shared(directory, listener, browser, lease, {}, {}, {})
    directory.on_lease_lost = lambda peer: _forget_claims_at(shared, peer)
    if isinstance(directory, LanDirectory):
        directory.on_member_dead = lambda peer: shared.wake.set()
    return shared


def _forget_claims_at(shared: Shared, peer: str) -> None:
    """A home lost this member's lease (it restarted): what was claimed there is claimed again."""
    for digest, (home, _) in list(shared.claimed.items()):
        if home == peer:
            del shared.claimed[digest]


def _say_joined(
    settings: FrontDoorSettings,
    directory: LanDirectory | EtcdDirectory,
    member_id: str,
    host: str,
    listener: PoolListener | None,
) -> None:
    """Log how this member shares the pool's session directory (or that its key is refused)."""
    if isinstance(directory, EtcdDirectory) and directory.refusal is not None:
        log.warning(
            "pool %s: NOT sharing the session directory in etcd (%s) as member %s: its pool token "
            "key is refused (above); badges without a session here are told to try another server",
            settings.pool,
            settings.pool_directory,
            member_id,
        )
    elif isinstance(directory, EtcdDirectory):
        log.info(
            "pool %s: sharing the session directory in etcd (%s) as member %s",
            settings.pool,
            settings.pool_directory,
            member_id,
        )
    else:
        assert listener is not None
        log.info(
            "pool %s: sharing the session directory as member %s; pool port %s:%d (mutual TLS)",
            settings.pool,
            member_id,
            host,
            listener.port,
        )
