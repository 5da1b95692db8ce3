"""wrsrvd's side of one attached device's data (docs/usb.md, sections 4 and 5): between the device's
QUIC streams and its USB/IP peer on the host — the socket whose other end the attach helper handed to
``vhci_hcd`` (:class:`HostEndpoint`) or, for diagnostics and tests, a Unix socket a user-space USB/IP
driver connects to (``wrsrvd --usb-sockets DIR``, :class:`SocketEndpoint`).

Both directions are read as USB/IP messages before they go on: the kiosk's returns must answer
submits that were sent (the kernel trusts what it reads), and a driver's commands must be commands.
Whatever breaks that ends this device only: ``on_fault`` says why, both ends are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from wayray.common import trace
from wayray.usb.usbip import CmdSubmit, RetSubmit, UsbipError, UsbipReader

log = logging.getLogger("wayray.usb")


class DeviceRelay:
    """``to_kiosk(data, end)`` sends on the device's stream; ``on_fault(reason)`` gives the device up."""

    def __init__(self, to_kiosk: Callable[[bytes, bool], None], on_fault: Callable[[str], None]) -> None:
        self.to_kiosk = to_kiosk
        self.on_fault = on_fault
        self.commands = UsbipReader(commands=True)
        self.returns = UsbipReader(commands=False)
        self.writer: asyncio.WriteTransport | None = None
        #: Closing the relay closes the writer (not so for vhci_hcd's socket: the host endpoint
        #: closes it once the helper has detached the port).
        self.owns_writer = True
        self.closed = False
        #: The kiosk's bytes not passed on yet: only whole, checked messages reach the host (one
        #: write per message rather than per QUIC packet, and never half a message the kernel reads).
        self._held = bytearray()

    def from_host(self, data: bytes, end: bool = False) -> None:
        if self.closed:
            return
        try:
            messages = self.commands.feed(data, end=end)
            for message in messages:
                if isinstance(message, CmdSubmit):
                    self.returns.sent(message)
        except UsbipError as err:
            self._fault(f"the host's USB/IP peer sent what it should not: {err.message}")
            return
        if trace.ENABLED:
            _mark("usb_relay_in", messages)
        self.to_kiosk(data, end)

    def from_kiosk(self, data: bytes, end: bool) -> None:
        if self.closed:
            return
        try:
            messages = self.returns.feed(data, end=end)
            for message in messages:
                if isinstance(message, RetSubmit):
                    self.commands.answered(message.seqnum)
        except UsbipError as err:
            self._fault(f"the kiosk sent what a USB/IP device should not: {err.message}")
            return
        if end:
            self._fault("the kiosk ended the device's stream")
            return
        self._held += data
        whole = len(self._held) - self.returns.partial
        if whole:
            if trace.ENABLED:
                _mark("usb_relay_back", messages)
            if self.writer is not None:
                self.writer.write(bytes(self._held[:whole]))
            del self._held[:whole]

    def close(self) -> None:
        self.closed = True
        if self.writer is not None and self.owns_writer:
            self.writer.close()
        self.writer = None

    def host_gone(self, reason: str) -> None:
        if not self.closed:
            self._fault(reason)

    def _fault(self, reason: str) -> None:
        self.close()
        self.on_fault(reason)


def _mark(hop: str, messages: list[Any]) -> None:
    """Where each URB's time goes (``bench.usb_roundtrip --trace``): its seqnum reached ``hop``."""
    for message in messages:
        trace.mark(hop, f"u{message.seqnum}")


class _HostSide(asyncio.Protocol):
    """The socket of the host's USB/IP peer, read as its bytes arrive: each chunk goes to the relay in
    the loop iteration that read it (before: a stream reader woke a task, which read it in the next
    iteration: one iteration and a task switch more per URB, and whatever else was ready between)."""

    def __init__(self, relay: DeviceRelay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.serving = False  # this connection is the relay's host side
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.relay.writer is not None or self.relay.closed:
            transport.close()  # one peer at a time
            return
        self.serving = True
        self.relay.writer = self.transport

    def data_received(self, data: bytes) -> None:
        if self.serving:
            self.relay.from_host(data)

    def eof_received(self) -> bool:
        if self.serving:
            self.ended()
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self.serving:
            if exc is not None:
                self.failed(getattr(exc, "strerror", None) or str(exc))
            if self.relay.writer is self.transport:
                self.relay.writer = None
        if not self.done.done():
            self.done.set_result(None)

    def ended(self) -> None:
        """The peer closed its end."""
        self.relay.from_host(b"", end=True)

    def failed(self, reason: str) -> None:
        """The socket failed (not closed by the peer nor by us)."""


class _VhciSide(_HostSide):
    def ended(self) -> None:
        self.relay.host_gone("vhci_hcd let go of the device (detached on the host, or it failed)")

    def failed(self, reason: str) -> None:
        self.relay.host_gone(f"the device's socket to vhci_hcd failed: {reason}")


class SocketEndpoint:
    """A Unix socket where one user-space USB/IP driver at a time reaches the device (0600, the
    server's user only): what vhci_hcd would get, for diagnostics and tests."""

    def __init__(self, path: Path, relay: DeviceRelay) -> None:
        self.path = path
        self.relay = relay
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # The socket appears under its name only once it listens: bound and listening under a
        # temporary name first, then renamed (a driver that finds the name is never refused).
        ready = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(ready))
            sock.listen(8)
            sock.setblocking(False)
            os.replace(ready, self.path)
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                ready.unlink()
            raise
        finally:
            os.umask(old)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: _HostSide(self.relay), sock=sock)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class HostEndpoint:
    """Our end of the socket pair whose other end vhci_hcd reads and writes (the attach helper handed
    it over): the kernel's USB/IP peer, as after ``usbip attach``."""

    def __init__(self, sock: socket.socket, relay: DeviceRelay) -> None:
        self.sock = sock
        self.relay = relay
        relay.owns_writer = False
        self.writer: asyncio.Transport | None = None

    async def start(self) -> None:
        side = _VhciSide(self.relay)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_unix_connection(lambda: side, sock=self.sock)
        self.writer = transport
        await side.done

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        else:
            self.sock.close()
