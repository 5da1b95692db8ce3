"""The front door's pool membership (docs/pools.md): its mDNS advertisement, kept current as its
sessions come and go, and, when the pool's members trust each other (``peers``), the shared session
directory: a badge without a session here is claimed in the directory before anything starts for it,
and a badge whose session is on another member is redirected there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from wayray.pool.directory import DirectoryError, Entry, EntryState, Lease, LeaseExpired, Member
from wayray.pool.lan import LEASE_TTL, LanDirectory, Peer
from wayray.pool.mdns import (
    Advertiser,
    Figures,
    MemberAd,
    PoolBrowser,
    advertised_addresses,
    load_or_create_member_id,
)
from wayray.pool.peers import PeerClient, PeerTrust, PoolListener
from wayray.server.live import Viewer
from wayray.server.table import SessionTable
from wayray.server.tokens import TokenRef
from wayray.transport import ServerIdentity
from wayray.wire import PROTOCOL_MAJOR, PROTOCOL_MINOR, ErrorCode

log = logging.getLogger("wayray.server")

#: Seconds a placement's pending claim is kept while its session starts.
PENDING_FOR = 30.0


@dataclass
class _Shared:
    """The directory side of the membership (only when the members trust each other)."""

    directory: LanDirectory
    listener: PoolListener
    browser: PoolBrowser
    lease: Lease
    #: Digests this member holds in the directory: the home it claimed each at, and its session id.
    claimed: dict[str, tuple[str, str]]
    #: Digests claimed for a viewer whose session is starting here (digest → when).
    pending: dict[str, float]


class PoolMembership:
    def __init__(self, table: SessionTable, advertiser: Advertiser, shared: _Shared | None) -> None:
        self.table = table
        self.advertiser = advertiser
        self.shared = shared

    @classmethod
    async def start(
        cls, table: SessionTable, *, identity: ServerIdentity, port: int, listening: list[str]
    ) -> PoolMembership:
        """Announce the instance in its pool (``settings.pool``), follow its sessions, and with peer
        trust configured open the pool port and join the directory."""
        settings = table.settings
        addresses = advertised_addresses(listening)
        if all(a.startswith("127.") or a == "::1" for a in addresses):
            log.warning(
                "pool %s: this instance listens on loopback only (%s): other hosts of the pool "
                "cannot reach it; listen on a LAN address",
                settings.pool,
                ", ".join(addresses),
            )
        member_id = load_or_create_member_id(settings.state_dir)
        shared = None
        pool_port = 0
        if settings.shares_directory:
            shared = await cls._join(table, identity, member_id, addresses[0], port)
            pool_port = shared.listener.port
        else:
            log.warning(
                "pool %s: no peers' fingerprints or CA configured: this instance announces itself but "
                "shares no session directory (a badge that reaches another member gets a session there)",
                settings.pool,
            )
        advertiser = Advertiser(
            pool=settings.pool,
            instance=settings.name,
            member_id=member_id,
            fingerprint=identity.fingerprint,
            port=port,
            addresses=addresses,
            protocol=(PROTOCOL_MAJOR, PROTOCOL_MINOR),
            figures=cls._figures(table),
            pool_port=pool_port,
        )
        await advertiser.start()
        member = cls(table, advertiser, shared)
        table.on_change.append(member.changed)
        if shared is not None:
            table.spawn(member._keep_up(), "pool-directory")
        return member

    @staticmethod
    async def _join(
        table: SessionTable, identity: ServerIdentity, member_id: str, host: str, port: int
    ) -> _Shared:
        settings = table.settings
        ca = settings.pool_ca.read_bytes() if settings.pool_ca is not None else None
        trust = PeerTrust(frozenset(settings.pool_fingerprints), ca)
        me = Member(member_id, settings.name, host, port, identity.fingerprint)
        directory = LanDirectory(me, PeerClient(identity, trust))
        pool_port = settings.pool_port if settings.pool_port is not None else port + 1
        listener = await PoolListener.start(host, pool_port, identity, trust, directory.handle)

        def accept(ad: MemberAd) -> str | None:
            if ad.member_id == member_id:
                return "this instance"
            if ca is None and ad.fingerprint not in trust.fingerprints:
                return f"its identity {ad.fingerprint} is not among the pool's fingerprints"
            if not ad.pool_port:
                return "it shares no directory (no pool port)"
            return None

        browser = PoolBrowser(settings.pool, accept=accept)
        await browser.start()
        lease = await directory.join(me, LEASE_TTL)
        log.info(
            "pool %s: sharing the session directory as member %s; pool port %s:%d (mutual TLS)",
            settings.pool,
            member_id,
            host,
            listener.port,
        )
        shared = _Shared(directory, listener, browser, lease, {}, {})
        directory.on_lease_lost = lambda peer: _forget_claims_at(shared, peer)
        return shared

    @staticmethod
    def _figures(table: SessionTable) -> Figures:
        return Figures(capacity=table.settings.max_sessions, used=len(table.live))

    def changed(self) -> None:
        self.advertiser.update(self._figures(self.table))

    # --- the directory -----------------------------------------------------------------------------

    async def route(self, token: TokenRef, viewer: Viewer) -> bool:
        """A badge without a session here: claim it in the pool's directory. True: it is this
        member's (start its session here); False: the viewer was redirected or told why not."""
        shared = self.shared
        if shared is None:
            return True
        conn = viewer.conn
        entry = Entry(token.digest, shared.directory.me.id, "", EntryState.PENDING)
        try:
            claim = await shared.directory.claim(entry, shared.lease)
        except (DirectoryError, LeaseExpired) as err:
            log.warning(
                "%s: token %s: the pool's directory cannot answer: %s", conn.peer_address, token.short, err
            )
            conn.close(ErrorCode.SERVER_BUSY, "the pool's session directory does not answer now; try again")
            return False
        if claim.won:
            shared.pending[token.digest] = time.monotonic()
            return True
        holder = claim.entry.member
        peer = shared.directory.peer(holder)
        if peer is None:
            conn.close(
                ErrorCode.SERVER_BUSY,
                "this badge's session is on another member of the pool, which this server cannot reach "
                "now; try again",
            )
            return False
        where = f"{peer.member.name} ({peer.member.host}:{peer.member.port})"
        log.info(
            "%s: token %s has its session on member %s: %s", conn.peer_address, token.short, holder, where
        )
        if not conn.follows_redirects:
            conn.close(ErrorCode.SERVER_BUSY, f"this badge's session is on {where}; connect there")
            return False
        conn.redirect(
            host=peer.member.host,
            port=peer.member.port,
            fingerprint=peer.member.fingerprint,
            server_id=holder,
            reason=f"this badge's session is on {peer.member.name}",
        )
        return False

    async def _keep_up(self) -> None:
        """Every ttl/4: discovery's members into the directory, leases renewed, this member's
        sessions claimed at their homes (again when a home changed) and gone ones released."""
        shared = self.shared
        assert shared is not None
        while True:
            try:
                shared.directory.set_peers(
                    [
                        Peer(
                            Member(
                                ad.member_id,
                                ad.name.split(" on ", 1)[0],
                                ad.addresses[0],
                                ad.port,
                                ad.fingerprint,
                            ),
                            ad.addresses[0],
                            ad.pool_port,
                        )  # fmt: skip
                        for ad in shared.browser.members()
                    ]
                )
                await shared.directory.keep_alive_round()
                await self._reconcile(shared)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the next round tries again
                log.warning("pool: %s", err)
            await asyncio.sleep(LEASE_TTL / 4)

    async def _reconcile(self, shared: _Shared) -> None:
        table = self.table
        if table.closed:
            return
        now = time.monotonic()
        wanted: dict[str, str] = {}
        for session in table.registry.live_sessions():
            wanted[session.token.digest] = session.id
        for digest, since in list(shared.pending.items()):
            if now - since > PENDING_FOR:
                del shared.pending[digest]
            elif digest not in wanted:
                wanted[digest] = ""
        directory = shared.directory
        for digest, session_id in wanted.items():
            key = (directory.home(digest), session_id)
            if shared.claimed.get(digest) == key:
                continue
            state = EntryState.SESSION if session_id else EntryState.PENDING
            claim = await directory.claim(Entry(digest, directory.me.id, session_id, state), shared.lease)
            if claim.won:
                shared.claimed[digest] = key
            else:
                log.warning(
                    "pool: token digest %s: member %s holds it too (session %s); this member's session %s "
                    "keeps running, badges go there",
                    digest[:8],
                    claim.entry.member,
                    claim.entry.session_id or "starting",
                    session_id or "starting",
                )
        for digest in [d for d in shared.claimed if d not in wanted]:
            del shared.claimed[digest]
            with contextlib.suppress(DirectoryError, LeaseExpired):
                await directory.release(digest, shared.lease)

    async def stop(self) -> None:
        """Withdraw the advertisement (a goodbye: browsers drop this member at once) and leave."""
        if self.changed in self.table.on_change:
            self.table.on_change.remove(self.changed)
        await self.advertiser.close()
        shared = self.shared
        if shared is not None:
            shared.listener.close()
            await shared.browser.close()
            await shared.directory.close()


def _forget_claims_at(shared: _Shared, peer: str) -> None:
    """A home lost this member's lease (it restarted): what was claimed there is claimed again."""
    for digest, (home, _) in list(shared.claimed.items()):
        if home == peer:
            del shared.claimed[digest]
