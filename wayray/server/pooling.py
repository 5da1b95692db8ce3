"""The front door's pool membership (docs/pools.md): its mDNS advertisement, kept current as its
sessions come and go. What a pool member does beyond announcing itself (the directory, redirect,
placement, drain) joins here as it is built."""

from __future__ import annotations

import logging

from wayray.pool.mdns import Advertiser, Figures, advertised_addresses, load_or_create_member_id
from wayray.server.table import SessionTable
from wayray.wire import PROTOCOL_MAJOR, PROTOCOL_MINOR

log = logging.getLogger("wayray.server")


class PoolMembership:
    def __init__(self, table: SessionTable, advertiser: Advertiser) -> None:
        self.table = table
        self.advertiser = advertiser

    @classmethod
    async def start(
        cls, table: SessionTable, *, fingerprint: str, port: int, listening: list[str]
    ) -> PoolMembership:
        """Announce the instance in its pool (``settings.pool``) and follow its sessions."""
        settings = table.settings
        addresses = advertised_addresses(listening)
        if all(a.startswith("127.") or a == "::1" for a in addresses):
            log.warning(
                "pool %s: this instance listens on loopback only (%s): other hosts of the pool "
                "cannot reach it; listen on a LAN address",
                settings.pool,
                ", ".join(addresses),
            )
        advertiser = Advertiser(
            pool=settings.pool,
            instance=settings.name,
            member_id=load_or_create_member_id(settings.state_dir),
            fingerprint=fingerprint,
            port=port,
            addresses=addresses,
            protocol=(PROTOCOL_MAJOR, PROTOCOL_MINOR),
            figures=cls._figures(table),
        )
        await advertiser.start()
        member = cls(table, advertiser)
        table.on_change.append(member.changed)
        return member

    @staticmethod
    def _figures(table: SessionTable) -> Figures:
        return Figures(capacity=table.settings.max_sessions, used=len(table.live))

    def changed(self) -> None:
        self.advertiser.update(self._figures(self.table))

    async def stop(self) -> None:
        """Withdraw the advertisement (a goodbye: browsers drop this member at once)."""
        if self.changed in self.table.on_change:
            self.table.on_change.remove(self.changed)
        await self.advertiser.close()
