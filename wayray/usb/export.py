"""The kiosk serving one device with USB/IP semantics (docs/usb.md, section 4): the submits and unlinks
vhci sends come in as bytes, each submit becomes a transfer through libusb on the endpoint it names,
its completion goes back as the return, byte for byte as ``usbip-host`` would write it.

The binding is libusb1's ``usb1`` (pinned in pyproject.toml): maintained, over the system's
libusb-1.0, with asynchronous transfers for the next step. This first version makes each control,
bulk and interrupt transfer with the synchronous calls in a worker thread of the device's own pool
(a HID device keeps interrupt INs waiting for as long as nobody types: they must not take threads
from anything else). A read waits in slices of READ_SLICE_MS, so an unlinked or closed one ends
within a slice; an unlink is answered at once and its submit's late return is dropped.

Isochronous transfers (a headset's sound, a webcam's picture) have no synchronous call in libusb:
the worker submits one asynchronous isochronous transfer with the submit's packets (their lengths;
an OUT buffer gathered from the packets' offsets) and handles the context's events in slices until
it completes, cancelling it when it is unlinked or the device is closed. The return carries each
packet's actual length and status, an IN transfer's data packed in packet order (only the bytes
received), ``actual_length`` their sum, the error count, and the submit's ``start_frame`` (libusb
does not report the frame the kiosk's controller used; libusb schedules the packets as soon as it
can, at the endpoint's own interval). A message the reader refuses ends the device's stream:
``on_fault`` is told why, nothing more is read or answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from wayray.common import trace
from wayray.usb.descriptors import Descriptors
from wayray.usb.usbip import (
    NOT_ISO,
    CmdSubmit,
    CmdUnlink,
    Direction,
    IsoPacket,
    RetSubmit,
    RetUnlink,
    UsbipError,
    UsbipReader,
    encode,
    pack_iso_in,
)

log = logging.getLogger("wayray.usb")

#: Milliseconds a control transfer may take before it fails (-ETIMEDOUT), as the kernel's own limit.
CONTROL_TIMEOUT_MS = 5000
#: Standard requests (USB 2.0 chapter 9) the kiosk makes through libusb's calls.
CLEAR_FEATURE, SET_CONFIGURATION, SET_INTERFACE = 0x01, 0x09, 0x0B
ENDPOINT_HALT = 0
#: A bulk or interrupt read waits this long at a time, then looks whether it was unlinked.
READ_SLICE_MS = 500
#: Failures of libusb's event handling in a row after which an isochronous URB is given up.
EVENT_FAILURES = 10
#: Threads per device: the URBs it may have waiting at once in libusb (more wait their turn).
THREADS_PER_DEVICE = 16
#: Endpoint attribute bits of an interrupt endpoint (bmAttributes & 3).
_INTERRUPT = 3
#: libusb's transfer and packet statuses (LIBUSB_TRANSFER_*) as the kernel's URB statuses.
_LIBUSB_STATUS = {
    0: 0,  # COMPLETED
    1: -errno.EPROTO,  # ERROR
    2: -errno.ETIMEDOUT,  # TIMED_OUT
    3: -errno.ECONNRESET,  # CANCELLED
    4: -errno.EPIPE,  # STALL
    5: -errno.ENODEV,  # NO_DEVICE
    6: -errno.EOVERFLOW,  # OVERFLOW
}


@dataclass(frozen=True)
class _Done:
    """A transfer's outcome, as its RET_SUBMIT tells it."""

    status: int
    actual: int
    data: bytes = b""
    iso: tuple[IsoPacket, ...] = ()
    errors: int = 0


class UsbipExport:
    """One device's USB/IP server. ``send`` takes the bytes of each return, in the order they are made."""

    def __init__(
        self,
        handle: Any,
        descriptors: Descriptors,
        send: Callable[[bytes], None],
        on_fault: Callable[[str], None],
        *,
        context: Any,
    ) -> None:
        self.handle = handle
        self.context = context  # the handle's usb1.USBContext: isochronous transfers handle its events
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
        iso = cmd.packets not in (0, NOT_ISO)
        try:
            if iso:
                done = self._isochronous(cmd)
            else:
                status, data = self._transfer(cmd)
                actual = len(data) if cmd.direction is Direction.IN else (0 if status else len(cmd.data))
                done = _Done(status, actual, data)
        except Exception:  # a bug, not the device: the URB still gets its answer
            log.exception("usb: a transfer on endpoint %#04x failed", cmd.ep)
            done = _failed(cmd, -errno.EPROTO)
        if trace.ENABLED:
            trace.mark("usb_transfer_done", f"u{cmd.seqnum}")
        with contextlib.suppress(RuntimeError):  # the loop is closed: the kiosk is stopping
            loop.call_soon_threadsafe(self._complete, cmd, done)

    def _complete(self, cmd: CmdSubmit, done: _Done) -> None:
        if trace.ENABLED:
            trace.mark("usb_completed", f"u{cmd.seqnum}")
        self._pending.pop(cmd.seqnum, None)
        self.reader.answered(cmd.seqnum)
        if self.failed or cmd.seqnum in self._unlinked:
            self._unlinked.discard(cmd.seqnum)
            return
        packets = cmd.packets if done.iso else NOT_ISO
        start = cmd.start_frame if done.iso else 0
        ret = encode(RetSubmit(cmd.seqnum, done.status, done.actual, start, packets, done.errors, done.data,
                               done.iso))  # fmt: skip
        if trace.ENABLED:
            trace.mark("usb_kiosk_out", f"u{cmd.seqnum}")
        self.send(ret)

    def _isochronous(self, cmd: CmdSubmit) -> _Done:
        """An isochronous transfer through libusb's asynchronous call (it has no synchronous one), made
        now in a worker thread: submitted, then the context's events handled until it completes; an
        unlink or a close cancels it within a slice."""
        import usb1

        packets = [(offset, length) for offset, length, _actual, _status in cmd.iso]
        lengths = [length for _offset, length in packets]
        address = cmd.ep | (0x80 if cmd.direction is Direction.IN else 0)
        finished = threading.Event()
        transfer = self.handle.getTransfer(iso_packets=len(packets))
        # libusb lays the packets end to end; USB/IP gives each one's offset in the URB's buffer.
        buffer: int | bytearray = (
            sum(lengths)
            if cmd.direction is Direction.IN
            else bytearray(b"".join(cmd.data[o : o + n] for o, n in packets))
        )
        transfer.setIsochronous(
            address, buffer, callback=lambda _t: finished.set(), iso_transfer_length_list=lengths
        )
        try:
            transfer.submit()
        except usb1.USBError as err:
            log.info("usb: an isochronous transfer on endpoint %#04x was refused: %s", address, err)
            transfer.close()
            return _failed(cmd, _usb_error_status(usb1, err))
        cancelled, failures = False, 0
        while not finished.is_set():
            if not cancelled and (self.failed or cmd.seqnum in self._unlinked or failures):
                cancelled = True
                with contextlib.suppress(usb1.USBError):  # completed meanwhile: its callback comes
                    transfer.cancel()
            try:
                self.context.handleEventsTimeout(READ_SLICE_MS / 1000)
            except usb1.USBErrorInterrupted:
                continue
            except usb1.USBError as err:  # libusb's event handling failed (the device went away...)
                failures += 1
                if failures >= EVENT_FAILURES:
                    # Left to libusb: closing the handle frees it. The URB is answered now.
                    log.warning("usb: an isochronous transfer on endpoint %#04x is lost: %s", address, err)
                    return _failed(cmd, -errno.EPROTO)
        status = _LIBUSB_STATUS.get(transfer.getStatus(), -errno.EPROTO)
        if failures and status == -errno.ECONNRESET:  # cancelled because libusb failed, not unlinked
            log.info("usb: an isochronous transfer on endpoint %#04x failed in libusb's events", address)
            status = -errno.EPROTO
        if status:
            transfer.close()
            return _failed(cmd, status)
        if cmd.direction is Direction.IN:
            got = [(_LIBUSB_STATUS.get(s, -errno.EPROTO), bytes(b)) for s, b in transfer.iterISO()]
            data, iso, errors = pack_iso_in(packets, got)
        else:
            setups = transfer.getISOSetupList()
            iso = tuple(
                (o, n, int(p["actual_length"]), _LIBUSB_STATUS.get(p["status"], -errno.EPROTO))
                for (o, n), p in zip(packets, setups, strict=True)
            )
            data, errors = b"", sum(1 for p in iso if p[3])
        transfer.close()
        return _Done(0, sum(p[2] for p in iso), data, iso, errors)

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


def _failed(cmd: CmdSubmit, status: int) -> _Done:
    """The return of a transfer that failed as a whole: no data; an isochronous one keeps its
    packets (USB/IP's return has as many as the submit), none with data, each with the status."""
    if cmd.packets in (0, NOT_ISO):
        return _Done(status, 0)
    iso = tuple((offset, length, 0, status) for offset, length, _a, _s in cmd.iso)
    return _Done(status, 0, b"", iso, len(iso))


def _usb_error_status(usb1: Any, err: Exception) -> int:
    """The URB status for a libusb error raised when a transfer is made."""
    for kind, status in (
        (usb1.USBErrorPipe, -errno.EPIPE),
        (usb1.USBErrorTimeout, -errno.ETIMEDOUT),
        (usb1.USBErrorNoDevice, -errno.ENODEV),
        (usb1.USBErrorOverflow, -errno.EOVERFLOW),
    ):
        if isinstance(err, kind):
            return int(status)
    return -errno.EPROTO


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
