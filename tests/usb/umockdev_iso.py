"""The kiosk's USB/IP server doing isochronous URBs through libusb, against devices umockdev emulates.

    umockdev-wrapper python -m tests.usb.umockdev_iso

Three webcams (tests/usb/data): the one on port 2 answers libusb's usbfs ioctls from an ioctl-tree
recording (umockdev's own format: one isochronous OUT URB on endpoint 0x02, whose bytes umockdev
compares with what libusb submits, and one isochronous IN URB on 0x81); the one on port 3 from a
usbmon recording with no isochronous transfer in it, so an isochronous URB submitted there stays
pending in libusb until it is cancelled; the one on port 4 from tests/usb/usbfs_iso.py, which plays
usbfs's isochronous ioctls itself and so gives libusb each packet's actual length and status (a
microphone on 0x81, a speaker on 0x02, an endpoint 0x83 that never answers, and 0x84 on which
usbfs fails). This process plays
vhci_hcd: it writes CMD_SUBMITs and CMD_UNLINKs, reads what the kiosk returns with the server's
reader (which checks every descriptor), and prints it as JSON.

What umockdev 0.17's recordings cannot do (docs/usb.md, section 7): give libusb an isochronous
packet's actual length or status. Both its replay paths copy only ``struct usbdevfs_urb`` (without
the packet descriptors that follow it) and the buffer between the process and the recording, so
libusb reads each packet's ``actual_length`` as the 0 it set itself; the recorded IN bytes reach
libusb's buffer but no packet says it got them. Hence the third webcam.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from tests.client.tokens.umockdev_harness import UMockdev
from tests.usb import usbmon
from tests.usb.lsusb import load
from tests.usb.umockdev_kiosk import describe
from tests.usb.usbfs_iso import IsoDevice
from wayray.usb.descriptors import parse
from wayray.usb.export import UsbipExport
from wayray.usb.usbip import CmdSubmit, CmdUnlink, Direction, RetSubmit, RetUnlink, UsbipReader, encode

DEVID = 0x10003
ISO_ASAP = 0x0002
#: The speaker's two 96-byte packets as the device must receive them (end to end, as libusb lays them).
SPEAKER = bytes(range(96)) + bytes(range(128, 224))
#: The USB/IP buffer they come in: packet 1 at offset 104, with 8 bytes between that must not be sent.
OUT_BUFFER = SPEAKER[:96] + b"\xee" * 8 + SPEAKER[96:]
OUT_PACKETS = ((0, 96, 0, 0), (104, 96, 0, 0))
IN_PACKETS = ((0, 192, 0, 0), (192, 192, 0, 0), (384, 192, 0, 0))
MICROPHONE = bytes((i * 7) % 256 for i in range(500))
#: What the emulated microphone's packets get: 192 bytes, 100 bytes, none (missed its frame: -EXDEV).
MICROPHONE_SCRIPT = [192, 100, -18]


def emulated() -> IsoDevice:
    """The emulated webcam's usbfs: the microphone on 0x81, the speaker on 0x02, 0x84 broken."""
    return IsoDevice({0x81: MICROPHONE_SCRIPT}, {0x02}, frozenset({0x84}))


def ioctl_recording(path: Path) -> None:
    """umockdev's text format: ``USBDEVFS_REAPURBNDELAY <ret> <type> <endpoint> <status> <flags>
    <buffer_length> <actual_length> <error_count> <buffer>``; type 0 is isochronous. libusb submits
    with USBDEVFS_URB_ISO_ASAP and reaps with REAPURBNDELAY."""
    path.write_text(
        "@DEV /dev/bus/usb/001/003\n"
        f"USBDEVFS_REAPURBNDELAY 0 0 2 0 {ISO_ASAP} {len(SPEAKER)} {len(SPEAKER)} 0 {SPEAKER.hex()}\n"
        f"USBDEVFS_REAPURBNDELAY 0 0 129 0 {ISO_ASAP} 576 500 0 {MICROPHONE.hex()}\n"
    )


async def main() -> None:
    import usb1

    c = load("webcam")
    testbed = UMockdev.Testbed.new()
    directory = Path(tempfile.mkdtemp(prefix="wayray-usbiso-"))
    text, _paths = describe(c, 2)
    testbed.add_from_string(text)
    ioctl_recording(directory / "webcam.ioctl")
    testbed.load_ioctl("/dev/bus/usb/001/003", str(directory / "webcam.ioctl"))
    text, paths = describe(c, 3)
    testbed.add_from_string(text)
    usbmon.write(
        directory / "idle.pcap", 1, 4, [usbmon.Control(bytes.fromhex("8006000100001200"), c.raw[:18])]
    )
    testbed.load_pcap(paths[-1], str(directory / "idle.pcap"))
    text, _paths = describe(c, 4)
    testbed.add_from_string(text)
    device = emulated()
    testbed.attach_ioctl("/dev/bus/usb/001/005", device)

    context = usb1.USBContext()
    devices = {d.getDeviceAddress(): d for d in context.getDeviceList()}
    result: dict[str, object] = {}

    def rig(
        address: int,
    ) -> tuple[UsbipExport, UsbipReader, list[RetSubmit | RetUnlink], list[str], asyncio.Event]:
        returns = UsbipReader(commands=False)
        got: list[RetSubmit | RetUnlink] = []
        faults: list[str] = []
        arrived = asyncio.Event()

        def send(data: bytes) -> None:
            got.extend(returns.feed(data))  # type: ignore[arg-type]
            arrived.set()

        handle = devices[address].open()
        export = UsbipExport(handle, parse(c.raw), send, faults.append, context=context)
        export.claim()
        return export, returns, got, faults, arrived

    async def answered(got: list, n: int, arrived: asyncio.Event) -> None:
        while len(got) < n:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 60)

    # The recorded device: the speaker's packets (gathered from their offsets), the same URB with
    # other bytes (umockdev has no such URB: libusb's submit fails), the microphone's packets.
    export, returns, got, faults, arrived = rig(3)
    for cmd in (
        CmdSubmit(1, DEVID, Direction.OUT, 2, ISO_ASAP, len(OUT_BUFFER), 0, 2, 1, bytes(8), OUT_BUFFER,
                  OUT_PACKETS),
        CmdSubmit(2, DEVID, Direction.OUT, 2, ISO_ASAP, len(OUT_BUFFER), 0, 2, 1, bytes(8),
                  bytes(len(OUT_BUFFER)), OUT_PACKETS),
        CmdSubmit(3, DEVID, Direction.IN, 1, ISO_ASAP, 576, 0, 3, 1, bytes(8), b"", IN_PACKETS),
    ):  # fmt: skip
        returns.sent(cmd)
        export.feed(encode(cmd))
        await answered(got, cmd.seqnum, arrived)
    result["recorded"] = [
        {"seqnum": r.seqnum, "status": r.status, "actual": r.actual_length, "errors": r.error_count,
         "data": r.data.hex(), "iso": [list(p) for p in r.iso]}
        for r in got if isinstance(r, RetSubmit)
    ]  # fmt: skip
    result["recorded_faults"] = faults
    export.close()
    export.release()

    # The idle device: an isochronous IN nobody answers, unlinked; another one, then the device closed.
    export, returns, got, faults, arrived = rig(4)
    waiting = CmdSubmit(4, DEVID, Direction.IN, 1, ISO_ASAP, 576, 0, 3, 1, bytes(8), b"", IN_PACKETS)
    returns.sent(waiting)
    export.feed(encode(waiting))
    worker = export._pending[4]
    while not worker.running():
        await asyncio.sleep(0.05)
    unlinked_at = time.monotonic()
    export.feed(encode(CmdUnlink(5, DEVID, 4)))
    await answered(got, 1, arrived)
    while not worker.done() and time.monotonic() - unlinked_at < 60:
        await asyncio.sleep(0.05)
    result["unlink_worker_ended_s"] = time.monotonic() - unlinked_at if worker.done() else None
    await asyncio.sleep(0)  # the worker's completion callback, had it sent anything, runs now
    second = CmdSubmit(6, DEVID, Direction.IN, 1, ISO_ASAP, 576, 0, 3, 1, bytes(8), b"", IN_PACKETS)
    returns.sent(second)
    export.feed(encode(second))
    worker = export._pending[6]
    while not worker.running():
        await asyncio.sleep(0.05)
    closed_at = time.monotonic()
    export.close()
    while not worker.done() and time.monotonic() - closed_at < 60:
        await asyncio.sleep(0.05)
    result["close_worker_ended_s"] = time.monotonic() - closed_at if worker.done() else None
    await asyncio.sleep(0)
    result["idle"] = [
        {"unlink": r.seqnum, "status": r.status} if isinstance(r, RetUnlink) else {"submit": r.seqnum}
        for r in got
    ]
    result["idle_faults"] = faults
    result["worker_errors"] = [
        repr(f.exception()) for f in (export._pending.get(4), worker) if f and f.exception()
    ]
    export.release()

    # The emulated device: the microphone's packets with what each got, the speaker's from their
    # offsets, and a URB on an endpoint that never answers, unlinked (its discard reaches usbfs).
    export, returns, got, faults, arrived = rig(5)
    for cmd in (
        CmdSubmit(7, DEVID, Direction.IN, 1, ISO_ASAP, 576, 0, 3, 1, bytes(8), b"", IN_PACKETS),
        CmdSubmit(8, DEVID, Direction.OUT, 2, ISO_ASAP, len(OUT_BUFFER), 0, 2, 1, bytes(8), OUT_BUFFER,
                  OUT_PACKETS),
    ):  # fmt: skip
        returns.sent(cmd)
        export.feed(encode(cmd))
        await answered(got, cmd.seqnum - 6, arrived)
    silent = CmdSubmit(9, DEVID, Direction.IN, 3, ISO_ASAP, 576, 0, 3, 1, bytes(8), b"", IN_PACKETS)
    returns.sent(silent)
    export.feed(encode(silent))
    worker = export._pending[9]
    while not worker.running():
        await asyncio.sleep(0.05)
    export.feed(encode(CmdUnlink(10, DEVID, 9)))
    await answered(got, 3, arrived)
    unlinked_at = time.monotonic()
    while not worker.done() and time.monotonic() - unlinked_at < 60:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0)
    result["emulated_discarded"] = device.discarded  # the unlinked one
    result["emulated_worker_ended"] = worker.done()
    # usbfs failing under a URB on 0x84: libusb's event handling fails; the URB is cancelled and
    # answered -EPROTO, and the microphone works again after it.
    for cmd in (
        CmdSubmit(11, DEVID, Direction.IN, 4, ISO_ASAP, 576, 0, 3, 1, bytes(8), b"", IN_PACKETS),
        CmdSubmit(12, DEVID, Direction.IN, 1, ISO_ASAP, 576, 0, 3, 1, bytes(8), b"", IN_PACKETS),
    ):  # fmt: skip
        returns.sent(cmd)
        export.feed(encode(cmd))
        await answered(got, cmd.seqnum - 7, arrived)
    result["emulated_reap_failures"] = device.reap_failures
    result["emulated"] = [
        {"seqnum": r.seqnum, "status": r.status, "actual": r.actual_length, "errors": r.error_count,
         "data": r.data.hex(), "iso": [list(p) for p in r.iso]} if isinstance(r, RetSubmit)
        else {"unlink": r.seqnum, "status": r.status}
        for r in got
    ]  # fmt: skip
    result["emulated_faults"] = faults
    result["emulated_received"] = [[p.hex() for p in urb] for urb in device.received]
    export.close()
    export.release()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
