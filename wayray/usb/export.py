"""The kiosk serving one device with USB/IP semantics (docs/usb.md, section 4): the submits and unlinks
vhci sends come in as bytes, each submit becomes a transfer through libusb on the endpoint it names,
its completion goes back as the return, byte for byte as ``usbip-host`` would write it.

The binding is libusb1's ``usb1`` (pinned in pyproject.toml): maintained, over the system's
libusb-1.0, with asynchronous transfers for the next step. This first version makes each transfer
with the synchronous calls in a worker thread of the device's own pool (a HID device keeps
interrupt INs waiting for as long as nobody types: they must not take threads from anything else).
A read waits in slices of READ_SLICE_MS, so an unlinked or closed one ends within a slice; an unlink
is answered at once and its submit's late return is dropped. Isochronous transfers are answered
with an error (-EXDEV, as a host controller that cannot do them). A message the reader refuses ends
the device's stream: ``on_fault`` is told why, nothing more is read or answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from wayray.common import trace
from wayray.usb.descriptors import Descriptors
from wayray.usb.usbip import (
    NOT_ISO,
    CmdSubmit,
    CmdUnlink,
    Direction,
    RetSubmit,
    RetUnlink,
    UsbipError,
    UsbipReader,
    encode,
)

log = logging.getLogger("wayray.usb")

#: Milliseconds a control transfer may take before it fails (-ETIMEDOUT), as the kernel's own limit.
CONTROL_TIMEOUT_MS = 5000
#: Standard requests (USB 2.0 chapter 9) the kiosk makes through libusb's calls.
CLEAR_FEATURE, SET_CONFIGURATION, SET_INTERFACE = 0x01, 0x09, 0x0B
ENDPOINT_HALT = 0
#: A bulk or interrupt read waits this long at a time, then looks whether it was unlinked.
READ_SLICE_MS = 500
#: Threads per device: the URBs it may have waiting at once in libusb (more wait their turn).
THREADS_PER_DEVICE = 16
#: Endpoint attribute bits of an interrupt endpoint (bmAttributes & 3).
_INTERRUPT = 3


class UsbipExport:
    """One device's USB/IP server. ``send`` takes the bytes of each return, in the order they are made."""

    def __init__(
        self,
        handle: Any,
        descriptors: Descriptors,
        send: Callable[[bytes], None],
        on_fault: Callable[[str], None],
    ) -> None:
        self.handle = handle
        self.send = send
        self.on_fault = on_fault
        self.reader = UsbipReader(commands=True)
        self.interrupt_endpoints = _interrupt_endpoints(descriptors.raw)
        self.descriptors = descriptors
        self._claimed: set[int] = set()
        self._pending: dict[int, Future[None]] = {}
        self._threads = ThreadPoolExecutor(THREADS_PER_DEVICE, thread_name_prefix="usb-export")
        self._unlinked: set[int] = set()
        self.failed = False

    def feed(self, data: bytes, *, end: bool = False) -> None:
        if self.failed:
            return
        try:
            messages = self.reader.feed(data, end=end)
        except UsbipError as err:
            self.failed = True
            self.on_fault(err.message)
            return
        for message in messages:
            if isinstance(message, CmdSubmit):
                if trace.ENABLED:
                    trace.mark("usb_kiosk_in", f"u{message.seqnum}")
                loop = asyncio.get_running_loop()
                self._pending[message.seqnum] = self._threads.submit(self._run, loop, message)
            elif isinstance(message, CmdUnlink):
                self._unlink(message)

    def claim(self, configuration: int | None = None) -> None:
        """Take the interfaces of ``configuration`` (the first one when None) from the kiosk's own
        drivers, as usbip-host binds the whole device: transfers on an interface need it claimed.
        One that cannot be claimed (a driver that will not let go) is logged; its transfers fail."""
        import usb1

        with contextlib.suppress(usb1.USBError):
            self.handle.setAutoDetachKernelDriver(True)  # not on every platform: then drivers stay
        configs = self.descriptors.configurations
        config = next((c for c in configs if c.value == configuration), configs[0])
        for number in sorted({i.number for i in config.interfaces}):
            try:
                self._claim_one(usb1, number)
                self._claimed.add(number)
            except usb1.USBError as err:
                log.warning("usb: cannot claim interface %d: %s; its transfers will fail", number, err)

    def _claim_one(self, usb1: Any, number: int) -> None:
        try:
            self.handle.claimInterface(number)
        except usb1.USBError:
            # Detaching failed (a kernel that cannot, or umockdev): an interface no driver holds can
            # still be claimed as it is; one a driver holds fails again, and is reported.
            with contextlib.suppress(usb1.USBError):
                self.handle.setAutoDetachKernelDriver(False)
            try:
                self.handle.claimInterface(number)
            finally:
                with contextlib.suppress(usb1.USBError):
                    self.handle.setAutoDetachKernelDriver(True)

    def release(self) -> None:
        import usb1

        for number in sorted(self._claimed):
            with contextlib.suppress(usb1.USBError):
                self.handle.releaseInterface(number)
        self._claimed.clear()

    def close(self) -> None:
        """Stop serving: the reads waiting end within a slice; no return is sent any more."""
        self.failed = True
        self._unlinked.update(self._pending)
        self._pending.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _unlink(self, cmd: CmdUnlink) -> None:
        known = cmd.unlink_seqnum in self._pending
        if known:
            self._unlinked.add(cmd.unlink_seqnum)
        # -ECONNRESET: unlinked before it completed; 0: it had completed (its return went already).
        status = -errno.ECONNRESET if known else 0
        self.send(encode(RetUnlink(cmd.seqnum, status)))

    def _run(self, loop: asyncio.AbstractEventLoop, cmd: CmdSubmit) -> None:
        """In a worker thread: the transfer, then its completion handed straight to the loop (one
        callback, no task or future in between: the return leaves in the loop's next iteration)."""
        if trace.ENABLED:
            trace.mark("usb_transfer_start", f"u{cmd.seqnum}")
        try:
            status, data = self._transfer(cmd)
        except Exception:  # a bug, not the device: the URB still gets its answer
            log.exception("usb: a transfer on endpoint %#04x failed", cmd.ep)
            status, data = -errno.EPROTO, b""
        if trace.ENABLED:
            trace.mark("usb_transfer_done", f"u{cmd.seqnum}")
        with contextlib.suppress(RuntimeError):  # the loop is closed: the kiosk is stopping
            loop.call_soon_threadsafe(self._complete, cmd, status, data)

    def _complete(self, cmd: CmdSubmit, status: int, data: bytes) -> None:
        if trace.ENABLED:
            trace.mark("usb_completed", f"u{cmd.seqnum}")
        self._pending.pop(cmd.seqnum, None)
        self.reader.answered(cmd.seqnum)
        if self.failed or cmd.seqnum in self._unlinked:
            self._unlinked.discard(cmd.seqnum)
            return
        actual = len(data) if cmd.direction is Direction.IN else (0 if status else len(cmd.data))
        ret = encode(RetSubmit(cmd.seqnum, status, actual, 0, NOT_ISO, 0, data))
        if trace.ENABLED:
            trace.mark("usb_kiosk_out", f"u{cmd.seqnum}")
        self.send(ret)

    def _standard(self, request_type: int, request: int, value: int, index: int) -> bool:
        """SET_CONFIGURATION, SET_INTERFACE and CLEAR_FEATURE(ENDPOINT_HALT) go through libusb's own
        calls, as usbip-host makes them through the USB core's (a raw transfer would leave libusb and
        the kiosk's kernel with a stale view of the device). Whether it was one of them."""
        kind = _is_standard(request_type, request, value)
        if kind == "configuration":
            self.release()
            self.handle.setConfiguration(value)
            self.claim(value)
        elif kind == "interface":
            self.handle.setInterfaceAltSetting(index, value)
        elif kind == "halt":
            self.handle.clearHalt(index & 0xFF)
        return bool(kind)

    def _transfer(self, cmd: CmdSubmit) -> tuple[int, bytes]:
        """The transfer ``cmd`` asks for, made now (in a worker thread): (status, data read)."""
        import usb1

        if cmd.packets not in (0, NOT_ISO):
            return -errno.EXDEV, b""
        try:
            if cmd.ep == 0:
                request_type, request, value, index, length = _setup(cmd.setup)
                if self._standard(request_type, request, value, index):
                    return 0, b""
                if request_type & 0x80:
                    data = self.handle.controlRead(
                        request_type, request, value, index, length, CONTROL_TIMEOUT_MS
                    )
                    return 0, bytes(data)
                self.handle.controlWrite(request_type, request, value, index, cmd.data, CONTROL_TIMEOUT_MS)
                return 0, b""
            address = cmd.ep | (0x80 if cmd.direction is Direction.IN else 0)
            interrupt = address in self.interrupt_endpoints
            if cmd.direction is Direction.IN:
                read = self.handle.interruptRead if interrupt else self.handle.bulkRead
                while True:
                    try:
                        return 0, bytes(read(address, cmd.buffer_length, READ_SLICE_MS))
                    except usb1.USBErrorTimeout:
                        if self.failed or cmd.seqnum in self._unlinked:
                            return -errno.ECONNRESET, b""
            write = self.handle.interruptWrite if interrupt else self.handle.bulkWrite
            write(address, cmd.data, 0)
            return 0, b""
        except usb1.USBErrorPipe:
            return -errno.EPIPE, b""
        except usb1.USBErrorTimeout:
            return -errno.ETIMEDOUT, b""
        except usb1.USBErrorNoDevice:
            return -errno.ENODEV, b""
        except usb1.USBErrorOverflow:
            return -errno.EOVERFLOW, b""
        except usb1.USBError as err:
            log.info("usb: a transfer on endpoint %#04x failed: %s", cmd.ep, err)
            return -errno.EPROTO, b""


def _is_standard(request_type: int, request: int, value: int) -> str:
    """Which of the requests usbip-host makes with the USB core's calls rather than as a transfer."""
    if (request_type, request) == (0x00, SET_CONFIGURATION):
        return "configuration"
    if (request_type, request) == (0x01, SET_INTERFACE):
        return "interface"
    if (request_type, request, value) == (0x02, CLEAR_FEATURE, ENDPOINT_HALT):
        return "halt"
    return ""


def _setup(setup: bytes) -> tuple[int, int, int, int, int]:
    request_type, request = setup[0], setup[1]
    value = int.from_bytes(setup[2:4], "little")
    index = int.from_bytes(setup[4:6], "little")
    length = int.from_bytes(setup[6:8], "little")
    return request_type, request, value, index, length


def _interrupt_endpoints(raw: bytes) -> frozenset[int]:
    """Addresses of the interrupt endpoints in the descriptors (the others are bulk or isochronous)."""
    out = set()
    pos = 18
    while pos + 2 <= len(raw):
        length, kind = raw[pos], raw[pos + 1]
        if length < 2:
            break
        if kind == 0x05 and length >= 7 and raw[pos + 3] & 3 == _INTERRUPT:
            out.add(raw[pos + 2])
        pos += length
    return frozenset(out)
