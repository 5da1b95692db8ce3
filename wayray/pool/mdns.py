"""A pool's members on the link: advertising one (wrsrvd) and browsing them (wrclient), with
python-zeroconf's asyncio API (docs/pools.md, §1).

Everything here is a *hint*: an advertisement says where a member may be and how full it says it is;
whether a viewer shows its badge there is the TLS handshake's decision against the pool's trust, never
this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from wayray.common.files import write_atomic
from wayray.pool.directory import MEMBER_ID

log = logging.getLogger("wayray.pool")

SERVICE_TYPE = "_wayray._udp.local."
TXT_VERSION = "1"
#: Least time between two announcements that only the load caused (RFC 6762 asks for at most one a
#: second; each one goes to every host on the link).
LOAD_UPDATE_INTERVAL = 10.0
#: Seconds between two readings of the known members' records (their load, their state).
REFRESH_EVERY = 1.0
#: Seconds a member that did not answer is dialled after the others.
UNANSWERED_FOR = 60.0
#: How long a browser waits for a member's SRV, TXT and addresses after it saw its name.
RESOLVE_TIMEOUT_MS = 3000


def pool_type(pool: str) -> str:
    """The subtype a pool's members are advertised under: ``_lab._sub._wayray._udp.local.``."""
    return f"_{pool}._sub.{SERVICE_TYPE}"


def load_or_create_member_id(state_dir: Path) -> str:
    """The member id kept in ``<state_dir>/server.id`` (16 hex digits, made on first use): stable
    across restarts and certificate renewals, so the pool knows a member that comes back."""
    path = state_dir / "server.id"
    with contextlib.suppress(FileExistsError):
        write_atomic(path, (secrets.token_hex(8) + "\n").encode(), exclusive=True)
    text = path.read_text().strip()
    if not MEMBER_ID.fullmatch(text):
        raise ValueError(f"{path}: not a member id (16 hex digits); delete it and restart")
    return text


@dataclass(frozen=True)
class Figures:
    """What a member says about its room, in its TXT record."""

    capacity: int
    used: int = 0
    weight: int = 100
    draining: bool = False
    #: Its pool token key is refused by the pool (the members' key check): it takes no badges.
    key_refused: bool = False

    @property
    def load(self) -> int:
        """Sessions held as a percentage of the capacity, rounded to tens (so that a session more
        or less does not make an announcement)."""
        if self.capacity <= 0:
            return 100
        return min(100, int(round(self.used * 100 / self.capacity, -1)))

    @property
    def state(self) -> str:
        return "drain" if self.draining else "online"


@dataclass(frozen=True)
class MemberAd:
    """One member as an advertisement describes it. ``fingerprint`` is a hint, never trust."""

    name: str
    pool: str
    member_id: str
    addresses: tuple[str, ...]
    port: int
    fingerprint: str
    protocol: tuple[int, int]
    figures: Figures
    pool_port: int = 0
    seen_at: float = field(default=0.0, compare=False)

    @property
    def free(self) -> int:
        return max(0, self.figures.capacity - self.figures.used)

    @property
    def takes_new_sessions(self) -> bool:
        figures = self.figures
        return not figures.draining and not figures.key_refused and figures.weight > 0 and self.free > 0


def txt_record(
    *,
    pool: str,
    member_id: str,
    fingerprint: str,
    protocol: tuple[int, int],
    figures: Figures,
    pool_port: int,
) -> dict[str, str]:
    """The TXT keys of docs/pools.md §1, ``txtvers`` first (``key`` only when it is refused)."""
    txt = {
        "txtvers": TXT_VERSION,
        "proto": f"{protocol[0]}.{protocol[1]}",
        "id": member_id,
        "pool": pool,
        "fp": fingerprint,
        "cap": str(figures.capacity),
        "used": str(figures.used),
        "load": str(figures.load),
        "w": str(figures.weight),
        "state": figures.state,
        "pp": str(pool_port),
    }
    if figures.key_refused:
        txt["key"] = "refused"
    return txt


def parse_ad(name: str, pool: str, info: AsyncServiceInfo) -> MemberAd | None:
    """A member from a resolved service (None: not one of ours, or not well formed; a browser
    ignores it, with a debug line: anyone on the link can advertise anything)."""
    props = {
        (k.decode("ascii", "replace") if isinstance(k, bytes) else str(k)).lower(): (
            v.decode("utf-8", "replace") if isinstance(v, bytes) else ""
        )
        for k, v in info.properties.items()
    }
    try:
        if props.get("txtvers") != TXT_VERSION or props.get("pool") != pool:
            raise ValueError(f"txtvers {props.get('txtvers')!r}, pool {props.get('pool')!r}")
        major, minor = (int(x) for x in props["proto"].split(".", 1))
        member_id = props["id"]
        if not MEMBER_ID.fullmatch(member_id):
            raise ValueError(f"id {member_id!r}")
        figures = Figures(
            capacity=int(props["cap"]),
            used=int(props.get("used", "0")),
            weight=int(props.get("w", "100")),
            draining=props.get("state") == "drain",
            key_refused=props.get("key") == "refused",
        )
        if info.port is None or not 0 < info.port < 65536:
            raise ValueError(f"port {info.port}")
        addresses = tuple(info.parsed_scoped_addresses(IPVersion.All))
        if not addresses:
            raise ValueError("no address")
        return MemberAd(
            name=name,
            pool=pool,
            member_id=member_id,
            addresses=addresses,
            port=info.port,
            fingerprint=props.get("fp", ""),
            protocol=(major, minor),
            figures=figures,
            pool_port=int(props.get("pp", "0") or 0),
            seen_at=time.monotonic(),
        )
    except (KeyError, ValueError) as err:
        log.debug("ignoring the advertisement %s: %s", name, err)
        return None


def advertised_addresses(listen: Iterable[str]) -> list[str]:
    """The addresses to advertise for an instance listening on ``listen``: those it names, or, for
    ``::`` and ``0.0.0.0``, the host's own (loopback ones only when it listens on nothing else)."""
    wanted: list[str] = []
    for addr in listen:
        if addr in ("::", "0.0.0.0"):
            wanted.extend(_host_addresses(ipv6=addr == "::"))
        else:
            wanted.append(addr)
    outside = [a for a in wanted if not ipaddress.ip_address(a.split("%", 1)[0]).is_loopback]
    return list(dict.fromkeys(outside or wanted))


def _host_addresses(*, ipv6: bool) -> list[str]:
    import ifaddr  # zeroconf's own dependency: the interfaces and their addresses

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(ip.ip)
            elif ipv6 and not ipaddress.ip_address(ip.ip[0]).is_link_local:
                found.append(ip.ip[0])
    return found


class Advertiser:
    """Announces one member while it runs; re-announces on material change only (docs/pools.md §1)."""

    def __init__(
        self,
        *,
        pool: str,
        instance: str,
        member_id: str,
        fingerprint: str,
        port: int,
        addresses: list[str],
        protocol: tuple[int, int],
        figures: Figures,
        pool_port: int = 0,
        host_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        host = (host_name or socket.gethostname()).split(".", 1)[0]
        self.pool = pool
        self.member_id = member_id
        self.fingerprint = fingerprint
        self.port = port
        self.addresses = addresses
        self.protocol = protocol
        self.pool_port = pool_port
        self.figures = figures
        self.instance_name = f"{instance} on {host}"[:63]
        self.server = f"{host}.local."
        self._clock = clock
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._announced = figures
        self._last_update = 0.0
        self._pending: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: How many announcements after the first (for tests and `wradm pool`).
        self.updates = 0

    def _service_info(self) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            pool_type(self.pool),
            f"{self.instance_name}.{SERVICE_TYPE}",
            port=self.port,
            properties=txt_record(
                pool=self.pool,
                member_id=self.member_id,
                fingerprint=self.fingerprint,
                protocol=self.protocol,
                figures=self.figures,
                pool_port=self.pool_port,
            ),
            server=self.server,
            parsed_addresses=self.addresses,
        )

    async def start(self) -> None:
        """Announce (after probing that the name is free; a taken one gets a number appended)."""
        self._zc = AsyncZeroconf(ip_version=_ip_version(self.addresses))
        self._info = self._service_info()
        try:
            await self._zc.async_register_service(self._info, allow_name_change=True)
        except BaseException:
            await self._zc.async_close()
            self._zc = None
            raise
        self._last_update = self._clock()
        log.info(
            "announcing %s in pool %s over mDNS (%s, port %d, member %s)",
            self._info.name.removesuffix("." + SERVICE_TYPE),
            self.pool,
            ", ".join(self.addresses),
            self.port,
            self.member_id,
        )

    def material(self, new: Figures) -> str | None:
        """Whether ``new`` differs from what was announced in a way worth an announcement: "now"
        (state, capacity, weight), "load" (another load bucket), None (nothing a chooser would use)."""
        old = self._announced
        if (old.draining, old.capacity, old.weight, old.key_refused) != (
            new.draining,
            new.capacity,
            new.weight,
            new.key_refused,
        ):
            return "now"
        if old.load != new.load:
            return "load"
        return None

    def update(self, figures: Figures) -> None:
        """The member's figures changed: announce at once (state), within LOAD_UPDATE_INTERVAL
        (load), or not at all (the rest rides along with the next announcement)."""
        self.figures = figures
        why = self.material(figures)
        if why is None or self._zc is None:
            return
        wait = 0.0 if why == "now" else self._last_update + LOAD_UPDATE_INTERVAL - self._clock()
        if self._pending is not None:
            if wait > 0:
                return  # an announcement is due already; it takes the latest figures
            self._pending.cancel()
        loop = asyncio.get_running_loop()
        self._pending = loop.call_later(max(0.0, wait), self._announce_now)

    def _announce_now(self) -> None:
        self._pending = None
        task = asyncio.get_running_loop().create_task(self._announce(), name="mdns-update")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce(self) -> None:
        if self._zc is None or self._info is None:
            return
        info = self._service_info()
        info = AsyncServiceInfo(
            info.type,
            self._info.name,  # the name it won at start
            port=info.port,
            properties=info.properties,
            server=info.server,
            parsed_addresses=self.addresses,
        )
        announced = self.figures
        try:
            await self._zc.async_update_service(info)
        except Exception as err:  # noqa: BLE001 - the next change tries again; serving goes on
            log.warning("cannot update the mDNS announcement: %s", err)
            return
        self._info = info
        self._announced = announced
        self._last_update = self._clock()
        self.updates += 1
        log.info(
            "mDNS: announcing %s, %d of %d sessions (load %d%%)",
            announced.state,
            announced.used,
            announced.capacity,
            announced.load,
        )

    async def close(self) -> None:
        """Say goodbye (so browsers drop this member at once) and stop."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        for task in list(self._tasks):
            task.cancel()
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            if self._info is not None:
                await asyncio.wait_for(zc.async_unregister_service(self._info), 5)
        except (Exception, TimeoutError) as err:  # noqa: BLE001 - stopping anyway
            log.warning("cannot withdraw the mDNS announcement: %s", err)
        finally:
            await zc.async_close()


class PoolBrowser:
    """The members of one pool on the link, kept current while it runs (wrclient's view)."""

    def __init__(self, pool: str, *, accept: Callable[[MemberAd], str | None] | None = None) -> None:
        """``accept(ad)`` says why an advertisement is of no use to this browser (None: it is), such
        as another protocol or a fingerprint the kiosk would refuse anyway."""
        self.pool = pool
        self._accept = accept
        self._ads: dict[str, MemberAd] = {}
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.changed = asyncio.Event()
        self._ignored: set[tuple[str, str]] = set()
        #: Servers (address, port) that did not answer lately, and when: dialled last for a while.
        self._unanswered: dict[tuple[str, int], float] = {}

    async def start(self) -> None:
        self._zc = AsyncZeroconf(ip_version=_ip_version(_host_addresses(ipv6=True), default_v4=True))
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, pool_type(self.pool), handlers=[self._on_change]
        )
        refresh = asyncio.get_running_loop().create_task(self._refresh(), name="mdns-refresh")
        self._tasks.add(refresh)
        log.info("looking for the servers of pool %s over mDNS", self.pool)

    async def _refresh(self) -> None:
        """Read the known members' records again from zeroconf's cache every second: a browser of a
        subtype hears of new members and goodbyes, but not of a member's changed TXT record (its
        name is not under the subtype), which the cache has all the same."""
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            if self._zc is None:
                return
            for name in list(self._ads):
                info = AsyncServiceInfo(pool_type(self.pool), name)
                if info.load_from_cache(self._zc.zeroconf):
                    self._take(name, info)

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            if self._ads.pop(name, None) is not None:
                log.info("pool %s: %s left", self.pool, name.removesuffix("." + SERVICE_TYPE))
                self.changed.set()
            return
        task = asyncio.get_running_loop().create_task(self._resolve(service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        if self._zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS):
            log.debug("pool %s: %s did not answer with its address", self.pool, name)
            return
        self._take(name, info)

    def _take(self, name: str, info: AsyncServiceInfo) -> None:
        ad = parse_ad(name, self.pool, info)
        if ad is None:
            return
        why = self._accept(ad) if self._accept is not None else None
        if why is not None:
            if (name, why) not in self._ignored:
                self._ignored.add((name, why))
                log.warning("pool %s: ignoring %s: %s", self.pool, _short(name), why)
            self._ads.pop(name, None)
            return
        old = self._ads.get(name)
        self._ads[name] = ad
        if old is None or replace(old, seen_at=0.0) != replace(ad, seen_at=0.0):
            log.info(
                "pool %s: %s at %s port %d, %s, %d of %d sessions",
                self.pool,
                _short(name),
                ", ".join(ad.addresses),
                ad.port,
                ad.figures.state,
                ad.figures.used,
                ad.figures.capacity,
            )
        self.changed.set()

    def members(self) -> list[MemberAd]:
        """The members seen, those that take new sessions first, then the ones with most room."""
        return sorted(self._ads.values(), key=lambda ad: (not ad.takes_new_sessions, -ad.free, ad.name))

    def addresses(self) -> tuple[tuple[str, int], ...]:
        """Where to dial, in the order of :meth:`members` (every address of each member), those that
        did not answer within :data:`UNANSWERED_FOR` last: a member that died without a goodbye stays
        announced until its records expire, and must not be every kiosk's first try meanwhile."""
        now = time.monotonic()
        found = [(addr, ad.port) for ad in self.members() for addr in ad.addresses]
        late = {s for s, at in self._unanswered.items() if now - at < UNANSWERED_FOR}
        return tuple([s for s in found if s not in late] + [s for s in found if s in late])

    def unanswered(self, server: tuple[str, int]) -> None:
        """``server`` did not answer (a connection to it was lost, or none could be made)."""
        self._unanswered[server] = time.monotonic()

    async def wait_for_members(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self._ads:
            self.changed.clear()
            left = end - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zc is not None:
            await self._zc.async_close()
            self._zc = None


def _short(name: str) -> str:
    return name.removesuffix("." + SERVICE_TYPE)


def _ip_version(addresses: list[str], *, default_v4: bool = False) -> IPVersion:
    """IPv4, IPv6 or both, as ``addresses`` have (loopback and link-local ones left out: zeroconf
    cannot multicast on them, and says so for every packet)."""
    usable = [a for a in addresses if not ipaddress.ip_address(a.split("%", 1)[0]).is_loopback]
    v6 = any(":" in a for a in usable)
    v4 = any(":" not in a for a in usable) or (default_v4 and not v6)
    if v6 and v4:
        return IPVersion.All
    return IPVersion.V6Only if v6 else IPVersion.V4Only
