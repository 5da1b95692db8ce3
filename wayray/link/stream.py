"""The link over an asyncio Unix stream: read messages, write them with a bound.

Both ends use :class:`LinkStream`. Writes never wait: what the peer has not read yet stays in the
socket's buffer, and a peer that lets more than ``write_limit`` bytes pile up there is not reading
(wedged, or hostile): :meth:`LinkStream.send` then raises :class:`LinkOverflow` and the owner aborts
the link (:meth:`LinkStream.abort`: the stale backlog is thrown away, not delivered). Senders that
produce a lot (the compositor's frames) wait for room with :meth:`LinkStream.drain`, and are bounded
anyway by the viewer's frame credit; wrsrvd keeps what a viewer may add well below the limit
(``pending_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator

from wayray.link.protocol import Close, CloseCode, LinkDecoder, LinkError, LinkMessage, LinkRole, encode
from wayray.wire.layout import KiB, MiB

log = logging.getLogger("wayray.link")

READ_CHUNK = 256 * KiB
#: Default bound on bytes written and not yet read by the peer.
WRITE_LIMIT = 32 * MiB


class LinkOverflow(LinkError):
    """The peer does not read: more than the write limit waits for it."""


class LinkStream:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        me: LinkRole,
        *,
        write_limit: int = WRITE_LIMIT,
        name: str = "link",
    ) -> None:
        self.me = me
        self.name = name
        self._reader = reader
        self._writer = writer
        self._decoder = LinkDecoder(me.peer)
        self._write_limit = write_limit
        self._inbox: deque[LinkMessage] = deque()
        self._eof = False
        self.closed = False

    @classmethod
    async def connect(cls, path: str, me: LinkRole, **kw: object) -> LinkStream:
        reader, writer = await asyncio.open_unix_connection(path, limit=READ_CHUNK)
        return cls(reader, writer, me, **kw)  # type: ignore[arg-type]

    def peer_uid(self) -> int | None:
        """The uid of the process at the other end (SO_PEERCRED), where the platform tells it."""
        sock = self._writer.get_extra_info("socket")
        if sock is None or not hasattr(socket, "SO_PEERCRED"):
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[1])

    def limit(self, max_body: int | None) -> None:
        """Refuse frames over ``max_body`` bytes from now on (None: the peer's normal limit)."""
        self._decoder.limit(max_body)

    async def receive(self) -> LinkMessage | None:
        """The next message, or None once the peer closed the socket; :class:`LinkError` for a
        broken stream."""
        while not self._inbox:
            if self._eof:
                return None
            try:
                data = await self._reader.read(READ_CHUNK)
            except (ConnectionError, OSError) as err:
                raise LinkError(f"the {self.me.peer} connection broke: {err}") from None
            if not data:
                self._eof = True
                self._decoder.check_finished()
                return None
            self._inbox.extend(self._decoder.feed(data))
        return self._inbox.popleft()

    async def messages(self) -> AsyncIterator[LinkMessage]:
        """Messages until the peer closes the socket; :class:`LinkError` for a broken stream."""
        while (message := await self.receive()) is not None:
            yield message

    def send(self, message: LinkMessage) -> None:
        if self.closed:
            return
        self.send_raw(encode(message, self.me))

    def send_raw(self, frame: bytes) -> None:
        """Send an already encoded link frame."""
        if self.closed:
            return
        pending = self._writer.transport.get_write_buffer_size()
        if pending + len(frame) > self._write_limit and pending:
            raise LinkOverflow(
                f"the {self.me.peer} does not read: {pending} bytes wait for it (limit {self._write_limit})"
            )
        self._writer.write(frame)

    @property
    def pending_bytes(self) -> int:
        return 0 if self.closed else self._writer.transport.get_write_buffer_size()

    async def drain(self) -> None:
        if not self.closed:
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.drain()

    def close(self, code: CloseCode | None = None, reason: str = "") -> None:
        """Say why (when ``code`` is given), then close the socket once what was written before has gone
        out. Idempotent."""
        if self.closed:
            return
        if code is not None:
            with contextlib.suppress(Exception):
                self._writer.write(encode(Close(code=code, reason=reason[:1000]), self.me))
        self.closed = True
        with contextlib.suppress(Exception):
            self._writer.close()

    def abort(self) -> None:
        """Close the socket now, throwing away what the peer has not read yet (a peer that does not
        read: what waits for it is stale, and it must not act on it when it wakes up). The peer sees
        the connection reset, with no reason: the owner logs why. Idempotent."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._writer.transport.abort()

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
