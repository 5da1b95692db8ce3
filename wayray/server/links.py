"""The link side of the front door: session compositors connect to wrsrvd's link socket
(``wayray.link``, docs/link.md), register for their session with its secret, and from then on send the
finished frames wrsrvd relays to the session's viewer untouched (``send_encoded``: nothing here decodes
a pixel), and answer Attach, Ping and Screenshot.

A registration must come from the uid the session runs as, with the session's secret, within 10 s; a
uid may hold only a few connections that have not registered. Every failure closes that link with a
reason; the session it served waits for its compositor to come back (``watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator

import wayray
from wayray.link import (
    LINK_VERSION,
    Attached,
    Close,
    CloseCode,
    Ended,
    LinkError,
    LinkRole,
    OutputChanged,
    Pong,
    Register,
    ScreenshotFailed,
    ScreenshotResult,
    ToViewer,
    Welcome,
)
from wayray.link.keepalive import Change, LinkKeepAlive
from wayray.link.protocol import MAX_REGISTER_BODY, MIN_LINK_VERSION, PING_LINK_VERSION
from wayray.link.stream import LinkStream
from wayray.server.admin import AdminError
from wayray.server.ending import Ending
from wayray.server.live import ServedSession, sha256_hex
from wayray.server.logins import Logins
from wayray.server.model import EndReason, Session
from wayray.server.registry import RegistryError
from wayray.server.table import SessionTable
from wayray.server.watch import CompositorWatch
from wayray.transport import ConnectionClosedError
from wayray.wire import Channel, ClipboardText, ErrorCode, WireUsageError
from wayray.wire.framing import parse_header
from wayray.wire.protocol import BY_CLASS

log = logging.getLogger("wayray.server")

#: Link connections one uid may hold open before registering. The link socket is open to every local
#: user in login mode; each such connection costs a descriptor for up to 10 s (more while a login
#: event is awaited), and wrsrvd has about a thousand of them for everything it does.
MAX_UNREGISTERED_LINKS = 8
REGISTER_TIMEOUT = 10
_CLIPBOARD_TYPE = BY_CLASS[ClipboardText].number


class LinkSide:
    def __init__(
        self, table: SessionTable, watch: CompositorWatch, ending: Ending, logins: Logins | None
    ) -> None:
        self.table = table
        self.watch = watch
        self.ending = ending
        #: Login mode's part (its compositors may register before wrsessd's word about them is in).
        self.logins = logins
        #: Link connections that have not registered yet, by peer uid (see MAX_UNREGISTERED_LINKS).
        self.unregistered: Counter[int | None] = Counter()

    async def on_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A connection on the link socket, from its Register to its end."""
        stream = LinkStream(reader, writer, LinkRole.SERVER, name="link")
        session: ServedSession | None = None
        pinger: asyncio.Task[None] | None = None
        try:
            uid = stream.peer_uid()
            if not self._may_connect(stream, uid):
                return
            with self._unregistered_while(uid):
                session = await self._registration(stream, uid)
            if session is None:
                return
            stream.limit(None)  # registered: frames up to the display channel's limit
            if session.keepalive is not None:
                pinger = self.table.spawn(self.watch.keep_alive(session, stream), f"keep-alive-{session.id}")
            await self._serve(session, stream)
        except LinkError as err:
            log.warning("link%s: %s; closing it", f" of session {session.id}" if session else "", err.reason)
            stream.close(CloseCode.PROTOCOL_ERROR, err.reason)
        except Exception:
            log.exception("link%s: internal error", f" of session {session.id}" if session else "")
            stream.close(CloseCode.PROTOCOL_ERROR, "internal error in wrsrvd")
        finally:
            if pinger is not None:
                pinger.cancel()
            stream.close()
            self.table.retired.discard(stream)
            if session is not None and session.link is stream:
                self.watch.link_lost(session)

    def _may_connect(self, stream: LinkStream, uid: int | None) -> bool:
        if not self.table.settings.login and uid is not None and uid not in (os.geteuid(), 0):
            stream.close(CloseCode.PROTOCOL_ERROR, "this link serves only the server's own user")
            log.warning("link: refused a connection from uid %d", uid)
            return False
        if self.unregistered[uid] >= MAX_UNREGISTERED_LINKS:
            # SHUTDOWN: a compositor told this tries again later (its session does not end).
            stream.close(
                CloseCode.SHUTDOWN,
                f"uid {uid} has {MAX_UNREGISTERED_LINKS} link connections that have not registered; "
                "try again later",
            )
            log.warning("link: refused a connection from uid %s: too many unregistered ones", uid)
            return False
        return True

    @contextlib.contextmanager
    def _unregistered_while(self, uid: int | None) -> Iterator[None]:
        """Count a connection of ``uid`` as unregistered while it registers."""
        self.unregistered[uid] += 1
        try:
            yield
        finally:
            self.unregistered[uid] -= 1

    async def _registration(self, stream: LinkStream, uid: int | None) -> ServedSession | None:
        """The connection's Register, checked: the session it serves now, or None (closed, said why)."""
        stream.limit(MAX_REGISTER_BODY)  # nothing big from a peer that has not proven anything
        try:
            first = await asyncio.wait_for(stream.receive(), REGISTER_TIMEOUT)
        except TimeoutError:
            stream.close(CloseCode.PROTOCOL_ERROR, f"no registration within {REGISTER_TIMEOUT} s")
            return None
        if first is None:
            return None
        if not isinstance(first, Register):
            stream.close(
                CloseCode.PROTOCOL_ERROR,
                f"the first message must be Register, not {type(first).__name__}",
            )
            return None
        if self.logins is not None:
            await self.logins.before_register(first)
        found = self._check(stream, first, uid)
        if found is None:
            return None
        session, record = found
        self._take(stream, first, session, record)
        return session

    def _check(
        self, stream: LinkStream, reg: Register, uid: int | None
    ) -> tuple[ServedSession, Session | None] | None:
        """The session ``reg`` is for, and its registry record (None for an unlock screen), when the
        compositor may serve it: a link version we speak, a live session, its secret, from its uid."""
        table = self.table
        if not MIN_LINK_VERSION <= reg.link_version <= LINK_VERSION:
            stream.close(
                CloseCode.VERSION,
                f"this wrsrvd speaks link versions {MIN_LINK_VERSION} to {LINK_VERSION}, "
                f"the compositor {reg.link_version}",
            )
            return None
        unlock = table.unlocking.get(reg.session_id)
        record = table.registry.find(reg.session_id)
        session = unlock or table.live.get(reg.session_id)
        if (record is None and unlock is None) or session is None or session.ended or table.stopping:
            code = CloseCode.SHUTDOWN if table.stopping else CloseCode.UNKNOWN_SESSION
            stream.close(code, f"no live session {reg.session_id} here")
            if not table.stopping:
                log.warning(
                    "link: pid %d registered for unknown session %s; told it to end", reg.pid, reg.session_id
                )
            return None
        if unlock is not None:
            digest, expected_uid = unlock.transient_secret_sha256, unlock.uid
        else:
            assert record is not None
            digest, expected_uid = record.endpoint.link_secret_sha256, record.endpoint.uid
        if not digest or not hmac.compare_digest(sha256_hex(reg.secret), digest):
            stream.close(CloseCode.BAD_SECRET, "the secret does not match this session's")
            log.warning(
                "link: pid %d (uid %s) presented a wrong secret for session %s", reg.pid, uid, reg.session_id
            )
            return None
        if (
            table.settings.login
            and uid != 0
            and (uid is None or expected_uid is None or uid != expected_uid)
        ):
            # The secret alone is not enough: it must come from the uid the session runs as, so that a
            # secret that leaked (a core dump, a careless copy) is of no use to another local user.
            stream.close(CloseCode.BAD_SECRET, "the secret does not match this session's")
            log.warning(
                "link: pid %d of uid %s registered for session %s, which runs as uid %s; refused",
                reg.pid,
                uid,
                reg.session_id,
                expected_uid,
            )
            return None
        return session, record

    def _take(
        self, stream: LinkStream, reg: Register, session: ServedSession, record: Session | None
    ) -> None:
        """``stream`` becomes ``session``'s link (replacing one it had), its compositor is welcomed."""
        if session.link is not None:
            log.warning(
                "session %s: a new compositor link (pid %d) replaces the old one", session.id, reg.pid
            )
            old = session.link
            session.link = None
            old.close(CloseCode.REPLACED, "another compositor registered for this session")
        stale = session.viewer
        if stale is not None and stale.attach_id:
            # Attached through the link that went away: it must attach again. (A viewer being switched
            # over to this compositor has no attachment yet and waits for this registration.)
            session.viewer = None
            stale.conn.close(ErrorCode.SERVER_BUSY, "the session's compositor reconnected; try again")
        session.link = stream
        session.pid = reg.pid
        session.wayland_display = reg.wayland_display
        self.table.output_known(session, reg.width, reg.height, reg.scale_120)
        session.relink_by = None
        session.link_version = reg.link_version
        # A compositor of the previous release cannot answer pings: it goes without the keep-alive.
        session.keepalive = (
            LinkKeepAlive(time.monotonic()) if reg.link_version >= PING_LINK_VERSION else None
        )
        if record is not None and (
            record.endpoint.compositor_pid != reg.pid
            or record.endpoint.wayland_display != reg.wayland_display
        ):
            endpoint = dataclasses.replace(
                record.endpoint, compositor_pid=reg.pid, wayland_display=reg.wayland_display
            )
            try:
                self.table.registry.set_endpoint(record.id, endpoint, time.time())
            except RegistryError as err:  # a full disk: serve it all the same; recorded with its next change
                log.warning("session %s: %s", record.id, err)
        server = f"wrsrvd {wayray.__version__} ({self.table.settings.name})"
        stream.send(Welcome(link_version=reg.link_version, server=server))
        session.linked.set()
        if not session.responding:  # the compositor that hung came back on a new link
            self.watch.responding_again(session)
        log.info(
            "session %s: compositor pid %d on the link (%s, link version %d%s)",
            session.id,
            reg.pid,
            reg.wayland_display,
            reg.link_version,
            "" if session.keepalive else ": it cannot be pinged, so a hang goes unnoticed",
        )

    async def _serve(self, session: ServedSession, stream: LinkStream) -> None:
        async for message in stream.messages():
            if session.link is not stream:
                if stream in self.table.retired:
                    continue  # a greeter after its login: wrsessd ends it; nothing it says matters
                return  # replaced
            if not self._handle(session, message):
                return

    def _handle(self, session: ServedSession, message: object) -> bool:
        """One message of a registered compositor; False once it closed its link."""
        if isinstance(message, ToViewer):
            self._to_viewer(session, message)
        elif isinstance(message, Attached):
            self._attached(session, message)
        elif isinstance(message, Pong):
            self._pong(session, message)
        elif isinstance(message, OutputChanged):
            self.table.output_known(session, message.width, message.height, message.scale_120)
        elif isinstance(message, Ended):
            detail = f"the session ended: {message.reason}"
            self.ending.finish(session, EndReason.COMMAND_EXITED, detail)
        elif isinstance(message, ScreenshotResult | ScreenshotFailed):
            self._screenshot_done(session, message)
        elif isinstance(message, Close):
            log.info(
                "session %s: the compositor closed its link: %s: %s",
                session.id,
                message.code,
                message.reason,
            )
            return False
        else:
            raise LinkError(f"the compositor sent {type(message).__name__} after registering")
        return True

    def _pong(self, session: ServedSession, message: Pong) -> None:
        if session.keepalive is None:
            raise LinkError("the compositor sent Pong, which its link version does not have")
        if session.keepalive.answered(message, time.monotonic()) is Change.RESPONDING:
            self.watch.responding_again(session)

    @staticmethod
    def _screenshot_done(session: ServedSession, message: ScreenshotResult | ScreenshotFailed) -> None:
        shot = session.screenshots.pop(message.request_id, None)
        if shot is None or shot.done():
            return
        if isinstance(message, ScreenshotResult):
            shot.set_result(message.png)
        else:
            shot.set_exception(AdminError(f"the compositor could not take it: {message.reason}"))

    def _attached(self, session: ServedSession, message: Attached) -> None:
        """The compositor is ready for the viewer: answer its Hello now, before the frames that follow
        on the link are relayed (they may be read in the same batch)."""
        fut = session.attaching.get(message.attach_id)
        viewer = session.viewer
        if fut is None or fut.done() or viewer is None or viewer.attach_id != message.attach_id:
            return
        self.table.output_known(session, message.width, message.height, message.scale_120)
        if not viewer.conn.closed and viewer.conn.server_hello is None:
            try:
                viewer.conn.accept(
                    session_id=session.unlocks or session.id,  # an unlock screen stands for its session
                    output_width=message.width,
                    output_height=message.height,
                    output_scale_120=message.scale_120,
                    resumed=viewer.resumed,
                    keyframe_follows=True,
                )
            except ConnectionClosedError:
                pass
        fut.set_result(message)

    def _to_viewer(self, session: ServedSession, message: ToViewer) -> None:
        viewer = session.viewer
        if viewer is None or viewer.attach_id != message.attach_id or viewer.conn.closed:
            return  # frames of a viewer that left (or of one not yet accepted)
        if message.channel is Channel.CONTROL and not self.table.settings.clipboard.to_client:
            msg_type, _ = parse_header(message.frame)
            if msg_type == _CLIPBOARD_TYPE:
                return
        try:
            viewer.conn.send_encoded(message.channel, message.frame)
            session.sent_bytes += len(message.frame)
        except ConnectionClosedError:
            pass
        except WireUsageError as err:
            log.error(
                "session %s: cannot relay a frame to %s: %s", session.id, viewer.conn.peer_address, err
            )
            viewer.conn.close(
                ErrorCode.INTERNAL_ERROR, f"the session sent what the connection cannot carry: {err}"
            )
