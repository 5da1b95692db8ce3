"""The kiosk's USB/IP server for one device, against a device emulated for libusb by umockdev.

    umockdev-wrapper python -m tests.usb.umockdev_export

The device is the YubiKey of tests/usb/data in sysfs, and a usbmon recording of its answers to two
GET_DESCRIPTOR requests (the device descriptor, the configuration) that umockdev replays to libusb's
usbfs ioctls. This process plays vhci_hcd: it writes the CMD_SUBMITs the kernel would write when a
device is attached, reads the returns with the server side's reader, and prints them as JSON; then it
sends garbage and prints what the exporter said. Nothing but the kernel is left out.
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
from wayray.usb.descriptors import parse
from wayray.usb.export import UsbipExport
from wayray.usb.usbip import (
    NOT_ISO,
    CmdSubmit,
    CmdUnlink,
    Direction,
    RetSubmit,
    RetUnlink,
    UsbipReader,
    encode,
)

DEVICE_DESCRIPTOR = bytes.fromhex("8006000100001200")


def config_request(length: int) -> bytes:
    return bytes.fromhex("80060002 0000") + length.to_bytes(2, "little")


async def main() -> None:
    import usb1

    c = load("yubikey")
    desc = parse(c.raw)
    testbed = UMockdev.Testbed.new()
    text, paths = describe(c, 2)
    testbed.add_from_string(text)
    recording = Path(tempfile.mkdtemp(prefix="wayray-usbmon-")) / "yubikey.pcap"
    usbmon.write(recording, 1, 3, [usbmon.Control(DEVICE_DESCRIPTOR, c.raw[:18]),
                                   usbmon.Control(config_request(len(c.raw) - 18), c.raw[18:])])  # fmt: skip
    testbed.load_pcap(paths[-1], str(recording))
    context = usb1.USBContext()
    (device,) = context.getDeviceList()
    handle = device.open()

    returns = UsbipReader(commands=False)
    got: list[RetSubmit] = []
    unlinks: list[RetUnlink] = []
    faults: list[str] = []
    arrived = asyncio.Event()

    def send(data: bytes) -> None:
        for m in returns.feed(data):
            (got if isinstance(m, RetSubmit) else unlinks).append(m)  # type: ignore[arg-type]
        arrived.set()

    export = UsbipExport(handle, desc, send, faults.append, context=context)
    export.claim()  # the YubiKey's three interfaces, as usbip-host binds the whole device
    for seqnum, setup, length in (
        (1, DEVICE_DESCRIPTOR, 18),
        (2, config_request(len(c.raw) - 18), len(c.raw) - 18),
    ):
        cmd = CmdSubmit(seqnum, 0x10002, Direction.IN, 0, 0, length, 0, NOT_ISO, 0, setup)
        returns.sent(cmd)
        export.feed(encode(cmd))
        while len(got) < seqnum:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 30)
    # CLEAR_FEATURE(ENDPOINT_HALT) on 0x81 goes through libusb's clearHalt (an ioctl umockdev answers),
    # not as a transfer: the recording has none for it.
    halt = CmdSubmit(6, 0x10002, Direction.OUT, 0, 0, 0, 0, NOT_ISO, 0, bytes.fromhex("0201000081000000"))
    returns.sent(halt)
    export.feed(encode(halt))
    while len(got) < 3:
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), 30)
    claimed = sorted(export._claimed)
    # An interrupt IN nobody answers (a key waiting for a touch), then unlinked: answered at once, and
    # the read waiting in libusb ends within a slice, with no return for it.
    waiting = CmdSubmit(3, 0x10002, Direction.IN, 1, 0, 8, 0, NOT_ISO, 0, bytes(8))
    returns.sent(waiting)
    export.feed(encode(waiting))
    await asyncio.sleep(0.3)
    unlinked_at = time.monotonic()
    export.feed(encode(CmdUnlink(4, 0x10002, 3)))
    while export._pending and time.monotonic() - unlinked_at < 10:
        await asyncio.sleep(0.05)
    read_ended_s = time.monotonic() - unlinked_at
    export.feed(bytes(range(48)))
    rows = [
        {"seqnum": r.seqnum, "status": r.status, "actual": r.actual_length, "data": r.data.hex()}
        for r in got
    ]
    expected = [c.raw[:18].hex(), c.raw[18:].hex()]
    print(json.dumps({"returns": rows, "faults": faults, "expected": expected, "read_ended_s": read_ended_s,
                      "claimed": claimed,
                      "unlinks": [[u.seqnum, u.status] for u in unlinks]}), flush=True)  # fmt: skip
    export.close()
    handle.close()


if __name__ == "__main__":
    asyncio.run(main())
