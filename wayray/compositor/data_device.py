"""wl_data_device_manager (clipboard) and zwp_primary_selection (middle-click paste).

Both protocols are the same shape -- a source offering mime types, a device per client and seat,
offers the compositor creates for the focused client -- so one ``Selection`` implements both. The
selection is offered to the client with keyboard focus, and again whenever focus moves. From
outside (the remote clipboard) ``SessionCompositor.set_selection`` installs a compositor-owned
source, ``get_selection`` reads the current one through a pipe, and a listener hears when a client
sets a new selection. Drag and drop is not offered: ``start_drag`` cancels the source at once. What a
selection needs of the seat is ``KeyboardFocus``.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pywayland.protocol.wayland import WlDataDevice, WlDataDeviceManager, WlDataOffer, WlDataSource
from pywayland.protocol.wp_primary_selection_unstable_v1 import (
    ZwpPrimarySelectionDeviceManagerV1,
    ZwpPrimarySelectionDeviceV1,
    ZwpPrimarySelectionOfferV1,
    ZwpPrimarySelectionSourceV1,
)

from wayray.wayland.server import Client, Display, NewId, ProtocolError, Resource

if TYPE_CHECKING:
    from wayray.compositor.seat import SeatResource
    from wayray.compositor.surface import Surface

log = logging.getLogger(__name__)

MAX_SELECTION_BYTES = 16 * 1024 * 1024
READ_TIMEOUT = 5.0
#: Selection writes to readers' pipes in progress at once (see PipeWriter).
MAX_PIPE_WRITES = 16


class KeyboardFocus(Protocol):
    """What a selection needs of the seat (``seat.Seat``)."""

    def focused_client(self) -> Client | None:
        """The client with keyboard focus: only it hears the selection, and only it may set it."""


class SelectionKind(enum.StrEnum):
    CLIPBOARD = "clipboard"
    PRIMARY = "primary"


class Source:
    """Something that can provide the selection's data."""

    mime_types: list[str]

    def send(self, mime: str, fd: int) -> None:
        """Write the data for ``mime`` to ``fd``; the caller closes its copy of ``fd`` afterwards."""
        raise NotImplementedError

    def cancel(self) -> None:
        """This source is no longer the selection."""


class ClientSource(Source):
    def __init__(self, resource: DataSource | PrimarySource) -> None:
        self.resource = resource
        self.mime_types = resource.mime_types

    def send(self, mime: str, fd: int) -> None:
        self.resource.post("send", mime, fd)

    def cancel(self) -> None:
        self.resource.post("cancelled")


class CompositorSource(Source):
    """A selection the compositor itself owns (set from outside): it writes the bytes it was given."""

    def __init__(self, writer: PipeWriter, data: dict[str, bytes]) -> None:
        self.writer = writer
        self.data = dict(data)
        self.mime_types = list(data)

    def send(self, mime: str, fd: int) -> None:
        payload = self.data.get(mime)
        if payload is None:
            return
        self.writer.write(os.dup(fd), payload)


class PipeWriter:
    """Writes data into readers' pipes without blocking the compositor, each pipe closed when done.

    At most ``limit`` writes are in progress: a client may ask for the selection again and again
    through a pipe it never reads, and each write holds a descriptor until its reader has read it
    all. Past the limit the oldest write is abandoned (its reader sees the data end early).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = MAX_PIPE_WRITES) -> None:
        self.loop = loop
        self.limit = limit
        self._writes: dict[int, _PipeWrite] = {}  # by fd, oldest first

    @property
    def in_progress(self) -> int:
        return len(self._writes)

    def write(self, fd: int, data: bytes) -> None:
        """Write ``data`` to ``fd`` (a pipe; this takes ownership of the descriptor), then close it."""
        if len(self._writes) >= self.limit:
            log.warning("%d selection transfers wait for their readers; abandoning the oldest", self.limit)
            self._done(next(iter(self._writes)))
        write = _PipeWrite(fd, memoryview(data))
        try:
            os.set_blocking(fd, False)
            self.loop.add_writer(fd, self._writable, write)
        except (ValueError, OSError) as err:
            log.debug("cannot write the selection: %s", err)
            os.close(fd)
            return
        self._writes[fd] = write
        self._writable(write)

    def _writable(self, w: _PipeWrite) -> None:
        try:
            while w.pos < len(w.data):
                w.pos += os.write(w.fd, w.data[w.pos : w.pos + 65536])
        except BlockingIOError:
            return
        except OSError as err:
            if err.errno != errno.EPIPE:
                log.debug("writing the selection failed: %s", err)
        self._done(w.fd)

    def _done(self, fd: int) -> None:
        if self._writes.pop(fd, None) is None:
            return
        try:
            self.loop.remove_writer(fd)
        except (ValueError, OSError, RuntimeError):  # the loop is already closed
            pass
        os.close(fd)

    def close(self) -> None:
        """Abandon every write (the compositor is closing)."""
        for fd in list(self._writes):
            self._done(fd)


@dataclass
class _PipeWrite:
    fd: int
    data: memoryview
    pos: int = 0


class Selection:
    """One selection (clipboard or primary) of the seat."""

    def __init__(self, kind: SelectionKind, focus: KeyboardFocus, display: Display) -> None:
        self.kind = kind
        self.focus = focus
        self.display = display
        self.source: Source | None = None
        self.devices: list[DataDevice | PrimaryDevice] = []
        self.listeners: list[Callable[[SelectionKind, list[str] | None], None]] = []
        #: Told of every change, whoever made it (the X selection bridge): ``fn(kind, source)``.
        self.watchers: list[Callable[[SelectionKind, Source | None], None]] = []

    def set(self, source: Source | None, *, from_client: bool) -> None:
        old = self.source
        if old is source:
            return
        self.source = source
        if old is not None:
            old.cancel()
        self._offer_to_focus()
        if from_client:
            self._tell_listeners(list(source.mime_types) if source is not None else None)
        self._tell_watchers()

    def source_gone(self, source: Source) -> None:
        if self.source is source:
            self.source = None
            self._offer_to_focus()
            self._tell_listeners(None)
            self._tell_watchers()

    def _tell_watchers(self) -> None:
        for fn in list(self.watchers):
            try:
                fn(self.kind, self.source)
            except Exception:
                log.exception("selection watcher failed")

    def _offer_to_focus(self) -> None:
        focus = self.focus.focused_client()
        if focus is not None:
            self.offer_to(focus)

    def _tell_listeners(self, mimes: list[str] | None) -> None:
        for fn in self.listeners:
            try:
                fn(self.kind, mimes)
            except Exception:
                log.exception("selection listener failed")

    def offer_to(self, client: Client) -> None:
        for device in self.devices:
            if device.client is client:
                device.send_selection(self.source)

    async def read(self, mime: str, max_bytes: int = MAX_SELECTION_BYTES) -> bytes | None:
        """The current selection's data as ``mime``, or None if nothing offers that type."""
        source = self.source
        if source is None or mime not in source.mime_types:
            return None
        if isinstance(source, CompositorSource):
            return source.data.get(mime)
        rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            source.send(mime, wfd)
            self.display.flush()
        finally:
            os.close(wfd)
        return await _read_all(asyncio.get_running_loop(), rfd, max_bytes)


async def _read_all(loop: asyncio.AbstractEventLoop, fd: int, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    done = loop.create_future()

    def readable() -> None:
        nonlocal size
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as err:
            if not done.done():
                done.set_exception(err)
            return
        if not chunk or size + len(chunk) > max_bytes:
            if chunk:
                chunks.append(chunk[: max_bytes - size])
                log.warning("selection data truncated at %d bytes", max_bytes)
            if not done.done():
                done.set_result(None)
            return
        chunks.append(chunk)
        size += len(chunk)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(done, READ_TIMEOUT)
    except TimeoutError:
        log.warning("the selection owner sent no end of data within %.0f s", READ_TIMEOUT)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return b"".join(chunks)


# What the two protocols share -------------------------------------------------------------------
#
# wl_data_device and zwp_primary_selection_v1 have the same source, device and offer objects; the
# mixins below hold what they do alike, the Resource classes after them only what differs.


class _SourceRequests:
    """A client's source: the mime types it offers; when destroyed, the selection it was is gone."""

    selection: Selection
    mime_types: list[str]
    source: ClientSource

    def offer(self, mime_type: str) -> None:
        if mime_type not in self.mime_types:
            self.mime_types.append(mime_type)

    def destroy(self) -> None:
        pass

    def on_destroy(self) -> None:
        self.selection.source_gone(self.source)


class _DeviceRequests:
    """A client's device: hears the selection (a new offer each time) and sets it."""

    selection: Selection
    client: Client
    version: int
    offer_class: type[DataOffer | PrimaryOffer]

    if TYPE_CHECKING:  # Resource's, which every device also is (a method here would shadow it)

        def post(self, event: str, *args: object) -> None: ...

    def send_selection(self, source: Source | None) -> None:
        if source is None:
            self.post("selection", None)
            return
        offer = self.offer_class(NewId.server_allocated(self.client, self.version), source, self.selection)
        self.post("data_offer", offer)
        for mime in source.mime_types:
            offer.post("offer", mime)
        self.post("selection", offer)

    def _set(self, source: DataSource | PrimarySource | None) -> None:
        """set_selection from this device: only the client with keyboard focus may."""
        if self.selection.focus.focused_client() is not self.client:
            log.debug("%r set the %s without keyboard focus; ignored", self.client, self.selection.kind)
            if source is not None:
                source.post("cancelled")
            return
        self.selection.set(source.source if source is not None else None, from_client=True)

    def on_destroy(self) -> None:
        if self in self.selection.devices:
            self.selection.devices.remove(self)


class _OfferRequests:
    """An offer of the selection as it was when offered: reading it works while that stays so."""

    source: Source
    selection: Selection

    def receive(self, mime_type: str, fd: int) -> None:
        if self.selection.source is self.source and mime_type in self.source.mime_types:
            self.source.send(mime_type, fd)

    def destroy(self) -> None:
        pass


# wl_data_device ----------------------------------------------------------------------------------


class DataDeviceManager(Resource):
    interface = WlDataDeviceManager

    def __init__(self, new_id: NewId, clipboard: Selection) -> None:
        super().__init__(new_id)
        self.clipboard = clipboard

    def create_data_source(self, id: NewId) -> None:
        DataSource(id, self.clipboard)

    def get_data_device(self, id: NewId, seat: SeatResource) -> None:
        _add_device(DataDevice(id, self.clipboard))

    def release(self) -> None:  # version 4, not advertised
        pass


class DataSource(_SourceRequests, Resource):
    interface = WlDataSource

    def __init__(self, new_id: NewId, selection: Selection) -> None:
        super().__init__(new_id)
        self.selection = selection
        self.mime_types: list[str] = []
        self.used = False
        self.source = ClientSource(self)

    def set_actions(self, dnd_actions: int) -> None:
        pass


class DataDevice(_DeviceRequests, Resource):
    interface = WlDataDevice

    def __init__(self, new_id: NewId, selection: Selection) -> None:
        super().__init__(new_id)
        self.selection = selection
        self.offer_class = DataOffer

    def start_drag(
        self, source: DataSource | None, origin: Surface, icon: Surface | None, serial: int
    ) -> None:
        if source is not None:
            source.used = True
            source.post("cancelled")  # drag and drop is not supported: the drag ends at once

    def set_selection(self, source: DataSource | None, serial: int) -> None:
        if source is not None and source.used:
            raise ProtocolError(self, WlDataDevice.error.used_source, "the source was already used")
        if source is not None and self.selection.focus.focused_client() is self.client:
            source.used = True
        self._set(source)

    def release(self) -> None:
        pass


class DataOffer(_OfferRequests, Resource):
    interface = WlDataOffer

    def __init__(self, new_id: NewId, source: Source, selection: Selection) -> None:
        super().__init__(new_id)
        self.source = source
        self.selection = selection

    def accept(self, serial: int, mime_type: str | None) -> None:
        pass

    def finish(self) -> None:
        pass

    def set_actions(self, dnd_actions: int, preferred_action: int) -> None:
        pass


# zwp_primary_selection_v1 ------------------------------------------------------------------------


class PrimaryDeviceManager(Resource):
    interface = ZwpPrimarySelectionDeviceManagerV1

    def __init__(self, new_id: NewId, primary: Selection) -> None:
        super().__init__(new_id)
        self.primary = primary

    def create_source(self, id: NewId) -> None:
        PrimarySource(id, self.primary)

    def get_device(self, id: NewId, seat: SeatResource) -> None:
        _add_device(PrimaryDevice(id, self.primary))

    def destroy(self) -> None:
        pass


class PrimarySource(_SourceRequests, Resource):
    interface = ZwpPrimarySelectionSourceV1

    def __init__(self, new_id: NewId, selection: Selection) -> None:
        super().__init__(new_id)
        self.selection = selection
        self.mime_types: list[str] = []
        self.source = ClientSource(self)


class PrimaryDevice(_DeviceRequests, Resource):
    interface = ZwpPrimarySelectionDeviceV1

    def __init__(self, new_id: NewId, selection: Selection) -> None:
        super().__init__(new_id)
        self.selection = selection
        self.offer_class = PrimaryOffer

    def set_selection(self, source: PrimarySource | None, serial: int) -> None:
        self._set(source)

    def destroy(self) -> None:
        pass


class PrimaryOffer(_OfferRequests, Resource):
    interface = ZwpPrimarySelectionOfferV1

    def __init__(self, new_id: NewId, source: Source, selection: Selection) -> None:
        super().__init__(new_id)
        self.source = source
        self.selection = selection


def _add_device(device: DataDevice | PrimaryDevice) -> None:
    """A new device joins its selection, and hears it at once if its client has keyboard focus."""
    selection = device.selection
    selection.devices.append(device)
    if selection.focus.focused_client() is device.client:
        device.send_selection(selection.source)
