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
import socket

from wayray.server.live import Viewer
from wayray.server.model import SessionState
from wayray.server.table import SessionTable
from wayray.transport import ConnectionClosedError, UsbStreamFull
from wayray.usb.acceptance import Offered, Shown, UsbViolation, groups_of
from wayray.usb.attach_client import AttachClient, AttachError
from wayray.usb.relay import DeviceRelay, HostEndpoint, SocketEndpoint
from wayray.wire import ErrorCode, UsbDetached, UsbOffer, UsbVerdict, UsbWithdraw, WireUsageError

log = logging.getLogger("wayray.server")


class UsbSide:
    def __init__(self, table: SessionTable) -> None:
        self.table = table
        #: Attached devices' data paths, by (viewer key, device handle).
        self.relays: dict[
            tuple[str, int], tuple[Viewer, DeviceRelay, SocketEndpoint | HostEndpoint | None]
        ] = {}
        #: Devices the attach helper is attaching now (their verdicts go out once it answered).
        self.pending: set[tuple[str, int]] = set()
        self._helper: AttachClient | None = None
        table.usb.on_detach = self._detach
        if table.settings.usb_sockets is not None:
            table.usb.host_problem = lambda: None  # each device is served on a socket instead

    @property
    def helper(self) -> AttachClient | None:
        """The attach helper wrsrvd asks (None: --usb-sockets, or no USB in standalone mode)."""
        settings = self.table.settings
        if settings.usb_sockets is not None or settings.usb_attach_socket is None:
            return None
        if self._helper is None or self._helper.path != settings.usb_attach_socket:
            self._helper = AttachClient(settings.usb_attach_socket)
        return self._helper

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
                self._verdict(viewer, usb.offer(viewer.key, self.kiosk(viewer), self.shown(viewer), message))
            else:
                usb.withdraw(viewer.key, message)
        except UsbViolation as err:
            log.warning("%s: %s; closing that viewer", viewer.conn.peer_address, err)
            viewer.conn.close(ErrorCode.PROTOCOL_VIOLATION, str(err))
        self.table.changed()

    def rejudge(self, viewer: Viewer) -> None:
        """The viewer shows another session now: its devices are judged for that one."""
        for verdict in self.table.usb.rejudge(viewer.key, self.shown(viewer)):
            self._verdict(viewer, verdict)

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

    def _verdict(self, viewer: Viewer, verdict: UsbVerdict) -> None:
        """Tell the kiosk; a device the rules allow is attached to the host first (the verdict waits
        for the attach helper's answer, and becomes a refusal saying why when it fails)."""
        key = (viewer.key, verdict.device)
        helper = self.helper
        if not verdict.accepted or helper is None or key in self.relays:
            self._send(viewer, verdict)
            if verdict.accepted:
                self._attach(viewer, verdict.device)
            return
        if key in self.pending:
            return
        offered = self.table.usb.offers[key]
        offered.pending = True
        self.pending.add(key)
        self.table.spawn(self._attach_to_host(viewer, offered, helper), name=f"usb-attach-{verdict.device}")

    async def _attach_to_host(self, viewer: Viewer, offered: Offered, helper: AttachClient) -> None:
        key = (viewer.key, offered.handle)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with theirs:  # the kernel keeps its own reference; ours goes with the helper's answer
                port = await helper.attach(theirs, offered.speed, offered.devid, _uid(offered.user))
        except AttachError as err:
            ours.close()
            self.pending.discard(key)
            if self.table.usb.offers.get(key) is offered and offered.accepted:
                self._send(viewer, self.table.usb.attach_failed(offered, str(err)))
            return
        finally:
            self.pending.discard(key)
            offered.pending = False
        if self.table.usb.offers.get(key) is not offered or not offered.accepted or viewer.conn.closed:
            # Let go of while the helper worked (withdrawn, the kiosk left): the host lets go too.
            await self._detach_port(helper, port, ours)
            return
        offered.port = port
        log.info("usb: %s is attached on vhci_hcd port %d", offered.identity.describe(), port)
        self._send(viewer, offered.verdict())
        self._attach(viewer, offered.handle, ours)

    async def _detach_port(
        self, helper: AttachClient, port: int, ours: socket.socket | HostEndpoint
    ) -> None:
        """The helper detaches the port, then our end closes (in that order: the port is not taken by
        another device before its detach)."""
        try:
            await helper.detach(port)
        except AttachError as err:  # vhci_hcd may have let go already (our end closed)
            log.info("usb: detaching vhci_hcd port %d: %s", port, err)
        ours.close()

    def _attach(self, viewer: Viewer, handle: int, host: socket.socket | None = None) -> None:
        """An accepted device: its relay, and where the host's USB/IP peer reaches it: ``host``, the
        socket whose other end vhci_hcd holds, or one on --usb-sockets."""
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
        endpoint: SocketEndpoint | HostEndpoint | None = None
        if host is not None:
            endpoint = HostEndpoint(host, relay)
            self.table.spawn(endpoint.start(), name=f"usb-host-{handle}")
        elif directory is not None:
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
        helper = self.helper
        if isinstance(endpoint, HostEndpoint) and offered.port is not None and helper is not None:
            self.table.spawn(self._detach_port(helper, offered.port, endpoint), name="usb-detach")
        elif endpoint is not None:
            endpoint.close()
        with contextlib.suppress(ConnectionClosedError, UsbStreamFull):
            viewer.conn.usb_send(offered.handle, b"", end=True)


def _uid(user: str | None) -> int | None:
    """The uid udev gives the device's nodes to (docs/usb.md, section 5); None when the user is not
    known on this host (the device is attached all the same, its nodes as udev makes them)."""
    if not user:
        return None
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        log.warning("usb: user %s is not known on this host: the device's nodes are not given to them", user)
        return None


def _own_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
