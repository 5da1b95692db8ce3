"""The front door's USB part (docs/usb.md): a viewer's offers judged for the session it shows, judged
again when that changes (a login became the user's desktop) or the rules were reloaded, released when
the viewer goes. The judging itself is ``wayray.usb.acceptance``; this part knows viewers and sessions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd

from wayray.server.live import Viewer
from wayray.server.model import SessionState
from wayray.server.table import SessionTable
from wayray.transport import ConnectionClosedError
from wayray.usb.acceptance import Shown, UsbViolation, groups_of
from wayray.wire import ErrorCode, UsbOffer, UsbVerdict, UsbWithdraw, WireUsageError

log = logging.getLogger("wayray.server")


class UsbSide:
    def __init__(self, table: SessionTable) -> None:
        self.table = table

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
                self._send(viewer, usb.offer(viewer.key, self.kiosk(viewer), self.shown(viewer), message))
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

    def reloaded(self) -> None:
        """The rules may have changed: every viewer's devices are judged again."""
        keys = self.table.usb.viewers()
        for viewer in list(self.table.viewers):
            if viewer.key in keys and not viewer.conn.closed:
                self.rejudge(viewer)

    def left(self, viewer: Viewer, reason: str) -> None:
        self.table.usb.viewer_left(viewer.key, reason)

    def _send(self, viewer: Viewer, verdict: UsbVerdict) -> None:
        with contextlib.suppress(ConnectionClosedError, WireUsageError):
            viewer.conn.send(verdict)


def _own_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
