"""The kiosk's answer to ``usbip list -r`` (docs/usb.md, section 8): USB/IP's device-list exchange
(``OP_REQ_DEVLIST`` → ``OP_REP_DEVLIST``, the kernel's ``Documentation/usb/usbip_protocol.rst``), on a
TCP port of the kiosk's loopback, for diagnostics: it lists the devices the kiosk's own rules would
offer, as ``usbipd`` lists what it exports. An import (``OP_REQ_IMPORT``, ``usbip attach``) is refused:
a device goes to the session the kiosk shows, by the server's verdict, never to whoever asks.

Every field is big-endian. A request is 8 bytes (version 0x0111, code, status 0); the device list is
that header, the number of devices, then per device its 312-byte ``usbip_usb_device`` and 4 bytes per
interface of its configuration (class, subclass, protocol, padding).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wayray.usb.descriptors import DescriptorError, parse

log = logging.getLogger("wayray.usb")

VERSION = 0x0111
OP_REQ_DEVLIST = 0x8005
OP_REP_DEVLIST = 0x0005
OP_REQ_IMPORT = 0x8003
OP_REP_IMPORT = 0x0003
ST_OK = 0
ST_NA = 1  # "device not available"
OP_COMMON = struct.Struct(">HHI")
#: path[256], busid[32], busnum, devnum, speed, idVendor, idProduct, bcdDevice, class, subclass,
#: protocol, bConfigurationValue, bNumConfigurations, bNumInterfaces.
USB_DEVICE = struct.Struct(">256s32sIIIHHHBBBBBB")
USB_INTERFACE = struct.Struct(">BBBx")
#: How long a peer may take to send its request.
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Exported:
    """One device as ``usbip list -r`` shows it."""

    path: str  # its sysfs path
    busid: str
    busnum: int
    devnum: int
    speed: int
    descriptors: bytes


def encode_device(device: Exported) -> bytes:
    """Its ``usbip_usb_device`` and interfaces (those of its first configuration, first settings)."""
    try:
        d = parse(device.descriptors)
    except DescriptorError:
        return b""  # never offered either: the rules deny what does not parse
    config = d.configurations[0]
    interfaces = [i for i in config.interfaces if i.alternate == 0]
    head = USB_DEVICE.pack(
        device.path.encode()[:255], device.busid.encode()[:31], device.busnum, device.devnum, device.speed,
        d.vendor, d.product, d.bcd_device, d.cls, d.subclass, d.protocol, config.value,
        len(d.configurations), len(interfaces),
    )  # fmt: skip
    return head + b"".join(USB_INTERFACE.pack(i.cls, i.subclass, i.protocol) for i in interfaces)


def encode_devlist(devices: Iterable[Exported]) -> bytes:
    encoded = [e for e in (encode_device(d) for d in devices) if e]
    return (
        OP_COMMON.pack(VERSION, OP_REP_DEVLIST, ST_OK) + struct.pack(">I", len(encoded)) + b"".join(encoded)
    )


class DevlistServer:
    """``usbip list -r 127.0.0.1 --tcp-port PORT`` answered with ``devices()``; imports refused."""

    def __init__(self, devices: Callable[[], list[Exported]]) -> None:
        self.devices = devices
        self.server: asyncio.AbstractServer | None = None

    async def start(self, port: int, host: str = "127.0.0.1") -> int:
        self.server = await asyncio.start_server(self._peer, host, port)
        bound: int = self.server.sockets[0].getsockname()[1]
        log.info(
            "usb: answering usbip list -r on %s port %d (diagnostics; imports are refused)", host, bound
        )
        return bound

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readexactly(OP_COMMON.size), REQUEST_TIMEOUT)
            version, code, _status = OP_COMMON.unpack(raw)
            if code == OP_REQ_DEVLIST:
                writer.write(encode_devlist(self.devices()))
            elif code == OP_REQ_IMPORT:
                busid = (await asyncio.wait_for(reader.readexactly(32), REQUEST_TIMEOUT)).split(b"\0")[0]
                log.warning("usb: refused a usbip import of %r: devices go to the session this kiosk "
                            "shows, by the server's verdict", busid.decode(errors="replace"))  # fmt: skip
                writer.write(OP_COMMON.pack(VERSION, OP_REP_IMPORT, ST_NA))
            else:
                log.info("usb: a usbip peer sent operation %#06x (version %#06x); closed", code, version)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()
