"""Clipboard text through ``wl_data_device``: hear and read what others copy, offer our own text.

Reading and writing go through pipes serviced by the event loop (never a blocking read on the
compositor's or another client's behalf). Drag and drop is not handled: offers that come with a
drag are left alone until the next selection replaces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wayray.toolkit.display import Client
    from wayray.toolkit.seat import Seat

log = logging.getLogger(__name__)

#: Text types we offer and accept, best first.
TEXT_MIME_TYPES = ("text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "TEXT", "STRING")
#: Clipboard text larger than this is dropped (the wire caps clipboard text at 1 MiB anyway).
MAX_TEXT_BYTES = 16 << 20
READ_TIMEOUT_S = 5.0


class Clipboard:
    """The selection of one seat. ``on_text(text)`` hears new clipboard text copied by others."""

    def __init__(self, client: Client, seat: Seat, on_text: Callable[[str], None]) -> None:
        assert client.data_device_manager is not None
        self.client = client
        self.conn = client.conn
        self.seat = seat
        self.on_text = on_text
        self.device = self.conn.track(client.data_device_manager.get_data_device(seat.proxy))
        self._offers: dict[int, tuple[Any, list[str]]] = {}
        self._selection: Any = None
        self._source: Any = None
        self._own_text: str | None = None
        self._last_text: str | None = None
        self._pending_text: str | None = None
        self._read_task: asyncio.Task[None] | None = None
        self.conn.listen(
            self.device,
            data_offer=self._data_offer,
            selection=self._selection_changed,
            enter=lambda *_a: None,
            leave=lambda: None,
            motion=lambda *_a: None,
            drop=lambda: None,
        )

    # Receiving ------------------------------------------------------------------------------------

    def _data_offer(self, offer: Any) -> None:
        mimes: list[str] = []
        self._offers[id(offer)] = (self.conn.track(offer), mimes)
        self.conn.listen(offer, offer=mimes.append, source_actions=lambda _a: None, action=lambda _a: None)

    def _selection_changed(self, offer: Any) -> None:
        for key, (other, _mimes) in list(self._offers.items()):
            if other is not offer:
                self.conn.destroy(other)
                del self._offers[key]
        self._selection = offer
        if offer is None:
            return
        mimes = self._offers[id(offer)][1]
        mime = next((m for m in TEXT_MIME_TYPES if m in mimes), None)
        if mime is None:
            return
        if self._read_task is not None:
            self._read_task.cancel()
        self._read_task = self.conn.loop.create_task(self._read(offer, mime))

    async def _read(self, offer: Any, mime: str) -> None:
        data = await self.receive(offer, mime)
        if data is None or offer is not self._selection:
            return
        text = data.decode("utf-8", "replace")
        if text == self._own_text or text == self._last_text:
            return  # our own selection coming back, or nothing new
        self._last_text = text
        self.on_text(text)

    async def receive(self, offer: Any, mime: str) -> bytes | None:
        """Read ``offer`` as ``mime`` through a pipe (None on timeout or when it is too large)."""
        rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            offer.receive(mime, wfd)
            self.conn.flush()
        finally:
            os.close(wfd)  # libwayland sent a copy; EOF comes when the source closes its end
        chunks: list[bytes] = []
        total = 0
        done: asyncio.Future[bool] = self.conn.loop.create_future()

        def readable() -> None:
            nonlocal total
            try:
                chunk = os.read(rfd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                if not done.done():
                    done.set_result(True)
                return
            total += len(chunk)
            if total > MAX_TEXT_BYTES:
                if not done.done():
                    done.set_result(False)
                return
            chunks.append(chunk)

        self.conn.loop.add_reader(rfd, readable)
        try:
            ok = await asyncio.wait_for(done, READ_TIMEOUT_S)
        except TimeoutError:
            log.warning("clipboard owner did not send %s within %g s", mime, READ_TIMEOUT_S)
            ok = False
        finally:
            self.conn.loop.remove_reader(rfd)
            os.close(rfd)
        return b"".join(chunks) if ok else None

    # Offering -------------------------------------------------------------------------------------

    def set_text(self, text: str) -> None:
        """Put ``text`` on the clipboard (as soon as we have had input focus: Wayland needs a serial)."""
        if self._last_text == text or self._own_text == text and self._source is not None:
            return
        if self.seat.last_serial == 0:
            self._pending_text = text
            return
        self._pending_text = None
        if self._source is not None:
            self.conn.destroy(self._source)
        source = self.conn.track(self.client.data_device_manager.create_data_source())
        data = text.encode("utf-8")

        def send(_mime: str, fd: int) -> None:
            self._write(fd, data)

        def cancelled() -> None:
            if self._source is source:
                self._source = None
                self._own_text = None
            self.conn.destroy(source)

        self.conn.listen(
            source,
            send=send,
            cancelled=cancelled,
            target=lambda _m: None,
            dnd_drop_performed=lambda: None,
            dnd_finished=lambda: None,
            action=lambda _a: None,
        )
        for mime in TEXT_MIME_TYPES:
            source.offer(mime)
        self._source = source
        self._own_text = text
        self._last_text = text
        self.device.set_selection(source, self.seat.last_serial)
        self.conn.flush()

    def focus_gained(self) -> None:
        """Offer text that waited for a serial (call on keyboard focus)."""
        if self._pending_text is not None and self.seat.last_serial:
            self.set_text(self._pending_text)

    def _write(self, fd: int, data: bytes) -> None:
        """Write ``data`` to a reader's pipe without blocking the loop; close it when done."""
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        view = memoryview(data)
        loop = self.conn.loop

        def finish() -> None:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_writer(fd)
            os.close(fd)

        def writable() -> None:
            nonlocal view
            try:
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            except BlockingIOError:
                return
            except OSError:
                pass  # the reader went away
            finish()

        loop.add_writer(fd, writable)  # the event's fd is ours to close (libwayland-client keeps none)

    def destroy(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
        for offer, _mimes in self._offers.values():
            self.conn.destroy(offer)
        self._offers.clear()
        if self._source is not None:
            self.conn.destroy(self._source)
            self._source = None
        version = self.client.data_device_manager.user_data
        self.conn.destroy(self.device, "release" if version >= 2 else None)
