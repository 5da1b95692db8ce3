"""A USB device's isochronous endpoints emulated at usbfs's ioctls, for libusb under umockdev.

umockdev 0.17's recordings cannot give libusb an isochronous packet's actual length or status (they
carry ``struct usbdevfs_urb`` and its buffer, never the packet descriptors after it: docs/usb.md,
section 7). This handler answers the device node's ioctls itself (``Testbed.attach_ioctl``), as the
kernel's usbfs does: USBDEVFS_SUBMITURB queues the URB, USBDEVFS_REAPURB(NDELAY) hands back a
completed one with each packet's ``actual_length`` and ``status`` written into the client's
``iso_frame_desc[]``, USBDEVFS_DISCARDURB cancels one (reaped with -ENOENT, as the kernel does).
What the device does is scripted, per endpoint:

- an IN endpoint in ``microphone`` answers every URB: packet i gets ``microphone[i % len]`` bytes
  (at most its length; a negative number is that status with no data), the bytes ``fill(n, i)``;
- an OUT endpoint in ``speaker`` takes every URB: each packet gets its whole length (status 0), and
  what it carried is kept in ``received`` (per URB, per packet);
- an endpoint in ``broken`` makes usbfs fail: from its URB's submit until that URB is discarded,
  every reap fails with EIO (libusb's event handling then fails);
- any other endpoint never completes (a device that does not answer): its URBs wait for a discard.

Interface claims and alternate settings are accepted. libusb, usb1 and everything above them are
unchanged; only the kernel's usbfs is played here.
"""

from __future__ import annotations

import errno
import struct
import threading
from typing import Any

from tests.client.tokens.umockdev_harness import UMockdev

# linux/usbdevice_fs.h on x86_64/aarch64: _IOR/_IOW('U', n, size).
SUBMITURB, DISCARDURB, REAPURB, REAPURBNDELAY = 0x8038550A, 0x550B, 0x4008550C, 0x4008550D
CLAIMINTERFACE, RELEASEINTERFACE, SETINTERFACE, CLEAR_HALT = 0x8004550F, 0x80045510, 0x80085504, 0x80045515
URB = struct.Struct("<BBxxiI4xQiiiiiIQ")  # type, endpoint, status, flags, buffer, buffer_length,
# actual_length, start_frame, number_of_packets, error_count, signr, usercontext
ISO_DESC = struct.Struct("<IIi")  # length, actual_length, status
assert URB.size == 56
URB_TYPE_ISO = 0


def raw(data: Any) -> bytes:
    """The bytes of a umockdev IoctlData (``data`` itself loses its length in the GI binding)."""
    return bytes(data.retrieve())


def fill(n: int, packet: int) -> bytes:
    """What packet ``packet`` of a microphone URB carries: bytes that tell packets and shifts apart."""
    return bytes((packet * 31 + i * 7) % 256 for i in range(n))


class IsoDevice(UMockdev.IoctlBase):  # type: ignore[misc]
    def __init__(
        self, microphone: dict[int, list[int]], speaker: set[int], broken: frozenset[int] = frozenset()
    ) -> None:
        super().__init__()
        self.microphone = microphone
        self.speaker = speaker
        self.broken = broken
        self.failing: int | None = None  # the address of the broken endpoint's URB, until discarded
        self.reap_failures = 0
        self.lock = threading.Lock()
        self.done: list[tuple[Any, Any]] = []  # (client's request data, urb data) ready to reap
        self.waiting: dict[int, tuple[Any, Any]] = {}  # urb address -> urb data, never completed
        self.received: list[list[bytes]] = []
        self.discarded = 0

    def do_handle_ioctl(self, client: Any) -> bool:
        request = client.get_request()
        if request in (CLAIMINTERFACE, RELEASEINTERFACE, SETINTERFACE, CLEAR_HALT):
            client.complete(0, 0)
        elif request == SUBMITURB:
            self._submit(client)
        elif request in (REAPURB, REAPURBNDELAY):
            with self.lock:
                if self.failing is not None:
                    self.reap_failures += 1
                    client.complete(-1, errno.EIO)
                    return True
                ready = self.done.pop(0) if self.done else None
            if ready is None:
                client.complete(-1, errno.EAGAIN)
                return True
            where = client.get_arg().resolve(0, 8)
            where.set_ptr(0, ready)
            client.complete(0, 0)
        elif request == DISCARDURB:
            address = struct.unpack_from("<Q", raw(client.get_arg()))[0]
            with self.lock:
                urb = self.waiting.pop(address, None)
                if address == self.failing:
                    self.failing = None
                if urb is not None:
                    urb.update(4, struct.pack("<i", -errno.ENOENT))
                    self.done.append(urb)
                    self.discarded += 1
            client.complete(0 if urb is not None else -1, 0 if urb is not None else errno.EINVAL)
        else:
            return False
        return True

    def _submit(self, client: Any) -> None:
        arg = client.get_arg()
        pointer = raw(arg)[:8]  # the URB's address in the client
        head = URB.unpack(raw(arg.resolve(0, URB.size)))
        kind, endpoint, _status, _flags, _buf, length, _actual, _start, packets = head[:9]
        if kind != URB_TYPE_ISO or not 0 < packets <= 1024:
            client.complete(-1, errno.EINVAL)
            return
        # Again with the packet descriptors after the struct: resolving replaced the address with a
        # local one, which reload() does not undo for the argument itself.
        arg.reload()
        arg.update(0, pointer)
        urb = arg.resolve(0, URB.size + packets * ISO_DESC.size)
        buffer = urb.resolve(16, length) if length else None
        descs = [ISO_DESC.unpack_from(raw(urb), URB.size + i * ISO_DESC.size) for i in range(packets)]
        if endpoint in self.microphone:
            script = self.microphone[endpoint]
            data, at, total, errors = bytearray(length), 0, 0, 0
            for i, (plen, _a, _s) in enumerate(descs):
                n = script[i % len(script)]
                got, status = (min(n, plen), 0) if n >= 0 else (0, n)
                data[at : at + got] = fill(got, i)
                urb.update(URB.size + i * ISO_DESC.size, ISO_DESC.pack(plen, got, status))
                at, total, errors = at + plen, total + got, errors + (1 if status else 0)
            if buffer is not None:
                buffer.update(0, bytes(data))
            self._finish(urb, total, errors)
        elif endpoint in self.speaker:
            sent = raw(buffer) if buffer is not None else b""
            at, parts = 0, []
            for i, (plen, _a, _s) in enumerate(descs):
                parts.append(sent[at : at + plen])
                urb.update(URB.size + i * ISO_DESC.size, ISO_DESC.pack(plen, plen, 0))
                at += plen
            with self.lock:
                self.received.append(parts)
            self._finish(urb, at, 0)
        else:
            with self.lock:
                self.waiting[urb.client_addr] = urb
                if endpoint in self.broken:
                    self.failing = urb.client_addr
        client.complete(0, 0)

    def _finish(self, urb: Any, actual: int, errors: int) -> None:
        urb.update(4, struct.pack("<i", 0))
        urb.update(28, struct.pack("<i", actual))
        urb.update(40, struct.pack("<i", errors))
        with self.lock:
            self.done.append(urb)
