"""The front door's USB part (docs/usb.md): a viewer's offers judged for the session it shows, judged
again when that changes (a login became the user's desktop) or the rules were reloaded, released when
the viewer goes. The judging itself is ``wayray.usb.acceptance``; this part knows viewers and sessions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re

from wayray.server.live import Viewer
from wayray.server.model import SessionState
from wayray.server.table import SessionTable
from wayray.transport import ConnectionClosedError, UsbStreamFull
from wayray.usb.acceptance import Offered, Shown, UsbViolation, groups_of
from wayray.usb.relay import DeviceRelay, SocketEndpoint
from wayray.wire import ErrorCode, UsbDetached, UsbOffer, UsbVerdict, UsbWithdraw, WireUsageError

log = logging.getLogger("wayray.server")


class UsbSide:
    def __init__(self, table: SessionTable) -> None:
        self.table = table
        #: Attached devices' data paths, by (viewer key, device handle).
        self.relays: dict[tuple[str, int], tuple[Viewer, DeviceRelay, SocketEndpoint | None]] = {}
        table.usb.on_detach = self._detach
        if table.settings.usb_sockets is not None:
            table.usb.host_problem = lambda: None  # each device is served on a socket instead

    def shown(self, viewer: Viewer) -> Shown:
        """The session ``viewer`` shows and whose it is, as the rules need it."""
        table = self.table
        session = viewer.session
        if session is None:
            return Shown("-", None, no_user="the kiosk shows no session")
        if session.unlocks is not None:
            return Shown(session.id, None, no_user="the kiosk shows an unlock screen")
        record = table.record(session)
        if table.settings.login:
            if record is None or record.state is SessionState.GREETER or not record.user:
                return Shown(session.id, None, no_user="the kiosk shows a login screen")
            user = record.user
        else:  # sessions run as this server's user
            user = _own_user()
        return Shown(session.id, user, groups_of(user))

    def kiosk(self, viewer: Viewer) -> str:
        return viewer.kiosk[:12] if viewer.kiosk else viewer.conn.peer_address

    def handle(self, viewer: Viewer, message: UsbOffer | UsbWithdraw) -> None:
        usb = self.table.usb
        try:
            if isinstance(message, UsbOffer):
                verdict = usb.offer(viewer.key, self.kiosk(viewer), self.shown(viewer), message)
                self._send(viewer, verdict)
                if verdict.accepted:
                    self._attach(viewer, message.device)
            else:
                usb.withdraw(viewer.key, message)
        except UsbViolation as err:
            log.warning("%s: %s; closing that viewer", viewer.conn.peer_address, err)
            viewer.conn.close(ErrorCode.PROTOCOL_VIOLATION, str(err))
        self.table.changed()

    def rejudge(self, viewer: Viewer) -> None:
        """The viewer shows another session now: its devices are judged for that one."""
        for verdict in self.table.usb.rejudge(viewer.key, self.shown(viewer)):
            self._send(viewer, verdict)
            if verdict.accepted:
                self._attach(viewer, verdict.device)

    def reloaded(self) -> None:
        """The rules may have changed: every viewer's devices are judged again."""
        keys = self.table.usb.viewers()
        for viewer in list(self.table.viewers):
            if viewer.key in keys and not viewer.conn.closed:
                self.rejudge(viewer)

    def left(self, viewer: Viewer, reason: str) -> None:
        self.table.usb.viewer_left(viewer.key, reason)

    def _send(self, viewer: Viewer, message: UsbVerdict | UsbDetached) -> None:
        with contextlib.suppress(ConnectionClosedError, WireUsageError):
            viewer.conn.send(message)

    # --- the data path ------------------------------------------------------------------------------

    def _attach(self, viewer: Viewer, handle: int) -> None:
        """An accepted device: its relay, and its socket where the host's USB/IP peer reaches it."""
        key = (viewer.key, handle)
        if key in self.relays:
            return
        offered = self.table.usb.offers[key]

        def to_kiosk(data: bytes, end: bool) -> None:
            try:
                viewer.conn.usb_send(handle, data, end=end)
            except UsbStreamFull as err:
                self._fault(viewer, handle, str(err))
            except ConnectionClosedError:
                pass

        relay = DeviceRelay(to_kiosk, lambda reason: self._fault(viewer, handle, reason))
        directory = self.table.settings.usb_sockets
        endpoint = None
        if directory is not None:
            # The bus id is the kiosk's word: only letters, digits, '.' and '-' reach the file name.
            name = re.sub(r"[^A-Za-z0-9.-]", "-", f"{self.kiosk(viewer)}-{offered.identity.where}").strip(
                "."
            )
            endpoint = SocketEndpoint(directory / f"{name}.sock", relay)
            self.table.spawn(endpoint.start(), name=f"usb-socket-{name}")
            log.info(
                "usb: %s is served on %s (USB/IP after import)", offered.identity.describe(), endpoint.path
            )
        self.relays[key] = (viewer, relay, endpoint)
        viewer.conn.set_usb_handler(lambda device, data, end: self._from_kiosk(viewer, device, data, end))

    def _from_kiosk(self, viewer: Viewer, device: int, data: bytes, end: bool) -> None:
        entry = self.relays.get((viewer.key, device))
        if entry is None:  # a denied (or released) device never has a stream
            if self.table.usb.offers.get((viewer.key, device)) is None or not end:
                log.warning("%s: a stream for USB device %d, which is not attached; closing that viewer",
                            viewer.conn.peer_address, device)  # fmt: skip
                viewer.conn.close(
                    ErrorCode.PROTOCOL_VIOLATION, f"a stream for USB device {device}, not attached"
                )
            return
        entry[1].from_kiosk(data, end)

    def _fault(self, viewer: Viewer, handle: int, reason: str) -> None:
        log.warning("usb: %s: device %d: %s; that device is detached, the rest goes on",
                    viewer.conn.peer_address, handle, reason)  # fmt: skip
        self.table.usb.detached(viewer.key, handle, reason)
        self._send(viewer, UsbDetached(device=handle, reason=reason[:1000]))

    def _detach(self, offered: Offered, reason: str) -> None:
        entry = self.relays.pop((offered.viewer, offered.handle), None)
        if entry is None:
            return
        viewer, relay, endpoint = entry
        relay.close()
        if endpoint is not None:
            endpoint.close()
        with contextlib.suppress(ConnectionClosedError, UsbStreamFull):
            viewer.conn.usb_send(offered.handle, b"", end=True)


def _own_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
