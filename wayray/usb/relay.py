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
from typing import Any

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
        self.writer: asyncio.StreamWriter | None = None
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


class SocketEndpoint:
    """A Unix socket where one user-space USB/IP driver at a time reaches the device (0600, the
    server's user only): what vhci_hcd would get, for diagnostics and tests."""

    def __init__(self, path: Path, relay: DeviceRelay) -> None:
        self.path = path
        self.relay = relay
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._driver, path=str(self.path))
        finally:
            os.umask(old)

    async def _driver(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.relay.writer is not None or self.relay.closed:
            writer.close()
            return
        self.relay.writer = writer
        try:
            while not self.relay.closed:
                data = await reader.read(64 * 1024)
                self.relay.from_host(data, end=not data)
                if not data:
                    break
        finally:
            if self.relay.writer is writer:
                self.relay.writer = None
            writer.close()

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
        self.writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=self.sock)
        self.writer = writer
        if self.relay.closed:
            writer.close()
            return
        self.relay.writer = writer
        try:
            while not self.relay.closed:
                data = await reader.read(64 * 1024)
                if not data:
                    self.relay.host_gone(
                        "vhci_hcd let go of the device (detached on the host, or it failed)"
                    )
                    break
                self.relay.from_host(data)
        except OSError as err:
            self.relay.host_gone(f"the device's socket to vhci_hcd failed: {err.strerror}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        else:
            self.sock.close()
