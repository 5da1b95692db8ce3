"""wrsrvd's side of USB (docs/usb.md, sections 3 and 5): every offer judged again by the server's rules
for the session's user (the server's answer is final), and attached to the host when they allow it,
which needs the kernel's ``vhci_hcd``.

One :class:`UsbAcceptance` per wrsrvd holds every device offered to it, by viewer connection, for the
verdicts, the log and ``wradm usb``. The rules are read where they are needed (a reload replaces
them), and a reload or a change of the session a viewer shows judges the offers again: the latest
UsbVerdict for a device holds. An offer the rules allow is attached to the host by wrsrvd's USB side
(``wayray.server.usb``, through the attach helper) before its verdict goes out; a failed attach turns
the verdict into a refusal saying why (:meth:`UsbAcceptance.attach_failed`).
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wayray.config.model.usb import UsbConfig
from wayray.usb.filters import DeviceIdentity, judge
from wayray.wire.messages import UsbOffer, UsbVerdict, UsbWithdraw

log = logging.getLogger("wayray.usb")

#: Most devices one viewer may have offered at once (docs/protocol.md, UsbOffer).
MAX_OFFERS = 32


class UsbViolation(Exception):
    """A viewer broke the USB exchange's rules: its connection is closed with PROTOCOL_VIOLATION."""


@dataclass(frozen=True)
class Shown:
    """What a viewer shows, as the rules need it: the session and whose it is (None: a login or unlock
    screen, given no device)."""

    session: str
    user: str | None
    groups: frozenset[str] = frozenset()
    #: Why there is no user ("the kiosk shows a login screen").
    no_user: str = ""


@dataclass
class Offered:
    viewer: str
    kiosk: str
    handle: int
    identity: DeviceIdentity
    descriptors: bytes
    session: str = ""
    user: str | None = None
    accepted: bool = False
    reason: str = ""
    since: float = 0.0
    #: The kernel's speed number of the device (UsbSpeed), for vhci_hcd.
    speed: int = 0
    #: Allowed, and being attached to the host (its verdict is sent once it is).
    pending: bool = False
    #: The vhci_hcd port it is attached on.
    port: int | None = None

    @property
    def devid(self) -> int:
        """The id vhci_hcd puts in every command for it: bus << 16 | device, as usbip-host's are
        (the bus from the kiosk's bus id, the device from the kiosk's handle)."""
        bus = self.identity.where.split("-", 1)[0]
        number = int(bus) if bus.isdigit() and len(bus) <= 5 else 0
        return (min(number, 0xFFFF) << 16) | (self.handle & 0xFFFF)

    def verdict(self) -> UsbVerdict:
        return UsbVerdict(device=self.handle, accepted=self.accepted, reason=self.reason[:1000])

    def to_json(self) -> dict[str, Any]:
        i = self.identity
        return {
            "kiosk": self.kiosk,
            "busid": i.where,
            "device": f"{i.vendor:04x}:{i.product:04x}",
            "manufacturer": i.manufacturer,
            "product": i.name,
            "serial": i.serial,
            "session": self.session,
            "user": self.user,
            "state": "attaching" if self.pending else "attached" if self.accepted else "refused",
            "reason": self.reason,
            "port": self.port,
            "since": self.since,
        }


def groups_of(user: str) -> frozenset[str]:
    """The names of ``user``'s groups (primary and supplementary); none for an unknown user."""
    try:
        gid = pwd.getpwnam(user).pw_gid
        gids = os.getgrouplist(user, gid)
    except (KeyError, OSError):
        return frozenset()
    names = set()
    for g in gids:
        try:
            names.add(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    return frozenset(names)


def host_without_usbip() -> str | None:
    """Why no device can be attached on this host whatever the rules say, or None (then the attach
    helper says what it finds: wrsrvd's sandbox sees no more of the host than it must)."""
    if not sys.platform.startswith("linux"):
        return "this host's kernel has no USB/IP host controller (vhci_hcd is Linux's)"
    return None


class UsbAcceptance:
    """Every device offered to this wrsrvd, judged and (when allowed) attached."""

    def __init__(
        self, rules: Callable[[], UsbConfig], host_problem: Callable[[], str | None] = host_without_usbip
    ):
        self.rules = rules
        self.host_problem = host_problem
        self.offers: dict[tuple[str, int], Offered] = {}
        #: Called for an attached device let go of (the host side detaches it then).
        self.on_detach: Callable[[Offered, str], None] = lambda _o, _r: None

    def offer(self, viewer: str, kiosk: str, shown: Shown, msg: UsbOffer) -> UsbVerdict:
        """Judge a viewer's offer; the verdict to send it. UsbViolation for a handle offered twice or
        one offer too many."""
        if (viewer, msg.device) in self.offers:
            raise UsbViolation(f"UsbOffer: device {msg.device} was offered already on this connection")
        if sum(1 for v, _h in self.offers if v == viewer) >= MAX_OFFERS:
            raise UsbViolation(f"UsbOffer: more than {MAX_OFFERS} devices offered at once")
        vendor, product = _ids(msg.descriptors)
        identity = DeviceIdentity(vendor, product, msg.manufacturer, msg.product, msg.serial, msg.busid)
        offered = Offered(viewer, kiosk, msg.device, identity, msg.descriptors, speed=int(msg.speed))
        self.offers[(viewer, msg.device)] = offered
        return self._judge(offered, shown)

    def withdraw(self, viewer: str, msg: UsbWithdraw) -> None:
        offered = self.offers.pop((viewer, msg.device), None)
        if offered is None:
            raise UsbViolation(f"UsbWithdraw: device {msg.device} was never offered on this connection")
        self._released(offered, f"withdrawn by the kiosk: {_clean(msg.reason)}")

    def rejudge(self, viewer: str, shown: Shown) -> list[UsbVerdict]:
        """The viewer shows another session now (a login became a desktop), or the rules changed:
        judge its offers again; the verdicts that changed, to send."""
        out = []
        for offered in self._of(viewer):
            before = (offered.accepted, offered.reason)
            if offered.accepted and shown.session != offered.session:
                self._released(offered, f"the kiosk shows session {shown.session} now")
            attached = offered.accepted
            verdict = self._judge(offered, shown)
            if attached and not verdict.accepted:  # the rules no longer allow it: detached now
                offered.accepted = True
                self._released(offered, f"no longer allowed: {verdict.reason}")
            if (verdict.accepted, verdict.reason) != before:
                out.append(verdict)
        return out

    def viewer_left(self, viewer: str, reason: str) -> None:
        for offered in self._of(viewer):
            del self.offers[(viewer, offered.handle)]
            self._released(offered, reason)

    def viewers(self) -> set[str]:
        return {v for v, _h in self.offers}

    def listing(self) -> list[dict[str, Any]]:
        return [o.to_json() for o in sorted(self.offers.values(), key=lambda o: (o.kiosk, o.identity.where))]

    # --- inside --------------------------------------------------------------------------------------

    def _of(self, viewer: str) -> Iterable[Offered]:
        return [o for (v, _h), o in list(self.offers.items()) if v == viewer]

    def _judge(self, offered: Offered, shown: Shown) -> UsbVerdict:
        side = f"kiosk {offered.kiosk}, session {shown.session}"
        offered.session, offered.user, offered.since = shown.session, shown.user, time.time()
        if shown.user is None:
            allowed, reason = False, f"refused: {shown.no_user or 'no user session is shown'}"
            log.info("usb: %s: %s: %s", side, offered.identity.describe(), reason)
        else:
            judgement = judge(
                self.rules(), offered.descriptors, offered.identity, user=shown.user, groups=shown.groups,
                side=side, denied_level=logging.WARNING,
            )  # fmt: skip
            allowed, reason = judgement.allowed, judgement.reason
            problem = self.host_problem() if allowed else None
            if problem is not None:
                log.warning("usb: %s: cannot attach %s: %s", side, offered.identity.describe(), problem)
                allowed, reason = False, f"{reason}, but {problem}"
        offered.accepted, offered.reason = allowed, reason
        return offered.verdict()

    def attach_failed(self, offered: Offered, problem: str) -> UsbVerdict:
        """The rules allowed ``offered`` but the host could not take it: refused, saying why."""
        side = f"kiosk {offered.kiosk}, session {offered.session}"
        log.warning("usb: %s: cannot attach %s: %s", side, offered.identity.describe(), problem)
        offered.accepted, offered.pending = False, False
        offered.reason = f"{offered.reason}, but {problem}"
        return offered.verdict()

    def detached(self, viewer: str, handle: int, reason: str) -> None:
        """The device's data path failed: it stays offered, no longer attached."""
        offered = self.offers.get((viewer, handle))
        if offered is not None and offered.accepted:
            self._released(offered, reason)
            offered.reason = f"detached: {reason}"

    def _released(self, offered: Offered, reason: str) -> None:
        if offered.accepted:
            self.on_detach(offered, reason)
        what = "detached" if offered.accepted else "released"
        offered.port = None
        where = f"kiosk {offered.kiosk}, session {offered.session or '-'}"
        log.info("usb: %s: %s %s: %s", where, offered.identity.describe(), what, reason)
        offered.accepted = False


def _ids(descriptors: bytes) -> tuple[int, int]:
    """The vendor and product ids the descriptors claim (0:0 when too short: the rules deny it)."""
    if len(descriptors) >= 12:
        return int.from_bytes(descriptors[8:10], "little"), int.from_bytes(descriptors[10:12], "little")
    return 0, 0


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:200]
