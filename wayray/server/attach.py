"""Showing a session on a viewer: Attach on its compositor's link, a keyframe first; switching a viewer
over to another compositor on the same connection (a login, an unlock); taking a session from the
viewer it moved away from.
"""

from __future__ import annotations

import asyncio
import logging
import time

from wayray.config import AudioPolicy
from wayray.link import Attach, Attached, CloseCode, LinkError
from wayray.link.protocol import AUDIO_LINK_VERSION
from wayray.server.live import ServedSession, SessionNotResponding, Viewer
from wayray.server.table import SessionTable
from wayray.server.usb import UsbSide
from wayray.server.watch import CompositorWatch
from wayray.transport import ConnectionClosedError
from wayray.wire import Capability, ErrorCode, SessionEventKind

log = logging.getLogger("wayray.server")

ATTACH_TIMEOUT = 15.0
#: Switching a viewer to another compositor: how long it may take to acknowledge the frames it has.
DRAIN_TIMEOUT = 5.0
NOT_RESPONDING_REFUSAL = "the session is not responding; waiting for it (trying again)"


def withheld_by_policy(audio: AudioPolicy) -> frozenset[str]:
    """Capabilities a viewer is not given, whatever it offers: policy.audio's (docs/audio.md §5)."""
    if not audio.playback:
        return frozenset({Capability.AUDIO, Capability.MICROPHONE, Capability.AV_SYNC})
    if not audio.microphone:
        return frozenset({Capability.MICROPHONE})
    return frozenset()


class Attacher:
    def __init__(self, table: SessionTable, watch: CompositorWatch, usb: UsbSide | None = None) -> None:
        self.table = table
        self.watch = watch
        self.usb = usb

    async def attach(self, viewer: Viewer, session: ServedSession, *, first: bool) -> bool:
        """Show ``session`` on ``viewer``: Attach on its compositor's link, a keyframe first.

        ``first``: the viewer's Hello is answered by the compositor's Attached (``LinkSide``).
        Otherwise the viewer already shows something (a greeter whose login started the user's
        session, an unlock greeter that succeeded): it is switched on the same connection, its frame
        seqs continuing. Returns whether the viewer now shows ``session``."""
        conn = viewer.conn
        if not await self._reachable(viewer, session):
            return False
        displaced = session.viewer
        if displaced is not None and displaced is not viewer:
            self.displace(displaced, f"the session moved to {conn.peer_address}")
        viewer.session = session
        viewer.attach_id = 0
        session.viewer = viewer
        first_seq = 1
        if not first:
            try:
                await asyncio.wait_for(conn.wait_frames_acked(), DRAIN_TIMEOUT)
            except TimeoutError:
                conn.close(ErrorCode.SEND_BUFFER_FULL, "the viewer does not acknowledge its frames")
                return False
            except ConnectionClosedError:
                return False
            if session.viewer is not viewer or session.link is None:
                return False
            first_seq = (conn.last_frame_seq or 0) + 1
        attached = await self._attached(viewer, session, first_seq)
        if attached is None or session.viewer is not viewer or conn.closed or conn.server_hello is None:
            return False
        log.info(
            "%s: %s session %s (%dx%d)",
            conn.peer_address,
            "attached to" if first else "switched to",
            session.id,
            attached.width,
            attached.height,
        )
        self.table.changed()
        return True

    async def _reachable(self, viewer: Viewer, session: ServedSession) -> bool:
        """Whether ``session``'s compositor is on its link and responds (waiting, until its deadline,
        for one that starts or comes back after a wrsrvd restart); else the viewer is told why."""
        conn = viewer.conn
        try:
            # Starting, or back after a wrsrvd restart: give it until its deadline to register. Its
            # link may also drop again between the registration and this task's turn (the event was
            # set, then cleared): that is waited for the same way, not taken for the session's end.
            while not session.ended and session.link is None and not session.linked.is_set():
                wait = max(1.0, (session.relink_by or 0) - time.monotonic())
                await asyncio.wait_for(session.linked.wait(), wait)
        except TimeoutError:
            if session.ended:
                conn.close(ErrorCode.SESSION_ENDED, "the session ended while it started")
            else:
                conn.close(ErrorCode.SERVER_BUSY, "the session's compositor is not reachable; try again")
            return False
        if session.ended or session.link is None:
            conn.close(ErrorCode.SESSION_ENDED, "the session ended")
            return False
        if conn.closed:
            return False
        if not session.responding:
            # Attaching would wait for an answer that does not come. The viewer that shows it (if any)
            # keeps it, with the notice; this one is told why and tries again (SERVER_BUSY).
            log.info("%s: session %s is not responding; refused for now", conn.peer_address, session.id)
            conn.close(ErrorCode.SERVER_BUSY, NOT_RESPONDING_REFUSAL)
            return False
        return True

    async def _attached(self, viewer: Viewer, session: ServedSession, first_seq: int) -> Attached | None:
        """Send Attach and wait for the compositor's Attached; None (the viewer told why) without it."""
        conn = viewer.conn
        settings = self.table.settings
        viewer.attach_id = next(session.attach_ids)
        hello = conn.hello
        width, height = self.table.fit(session, hello.screen_width, hello.screen_height, hello.scale_120)
        if conn.server_hello is None:  # what the policy withholds, read at each attach (a reload acts)
            conn.withhold_capabilities(withheld_by_policy(settings.audio))
        answer: asyncio.Future[Attached] = asyncio.get_running_loop().create_future()
        session.attaching[viewer.attach_id] = answer
        assert session.link is not None  # checked by the caller, with no wait since
        try:
            session.link.send(
                Attach(
                    attach_id=viewer.attach_id,
                    width=width,
                    height=height,
                    scale_120=min(max(hello.scale_120, 1), 65535),
                    match_size=bool(hello.screen_width and hello.screen_height),
                    keymap=hello.keymap,
                    capabilities=sorted(conn.offered_capabilities),
                    frame_window=settings.wire.frame_window,
                    clipboard=str(settings.clipboard),
                    first_seq=first_seq,
                    audio_bitrate=(
                        settings.audio_bitrate if session.link_version >= AUDIO_LINK_VERSION else None
                    ),
                )
            )
            return await asyncio.wait_for(asyncio.shield(answer), ATTACH_TIMEOUT)
        except LinkError as err:
            self.watch.drop_link(session, CloseCode.PROTOCOL_ERROR, err.reason)
            conn.close(ErrorCode.SERVER_BUSY, "the session's compositor is not reachable; try again")
            return None
        except SessionNotResponding:
            conn.close(ErrorCode.SERVER_BUSY, NOT_RESPONDING_REFUSAL)
            return None
        except TimeoutError:
            conn.close(ErrorCode.INTERNAL_ERROR, "the session's compositor did not answer in time")
            return None
        except asyncio.CancelledError:
            if conn.closed:  # displaced, or the session ended, while attaching
                return None
            raise
        finally:
            session.attaching.pop(viewer.attach_id, None)

    async def switch(
        self, viewer: Viewer, session: ServedSession, event: SessionEventKind, detail: str
    ) -> None:
        """Move a viewer that shows a greeter over to ``session`` without a new connection."""
        if await self.attach(viewer, session, first=False):
            viewer.tell(event, detail)
            if self.usb is not None:  # a login became its user's session: devices judged for it
                self.usb.rejudge(viewer)

    def displace(self, viewer: Viewer, detail: str) -> None:
        """The session this viewer shows moved to another viewer: tell it, close its connection."""
        session = viewer.session
        if session is not None and session.viewer is viewer:
            session.viewer = None
            # One that does not read: the next Ping drops it.
            session.send_detach(viewer, "the session moved to another viewer")
        viewer.tell_and_close(SessionEventKind.MOVED, ErrorCode.SESSION_MOVED, detail)
