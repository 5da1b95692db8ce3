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
from pathlib import Path

from tests.client.tokens.umockdev_harness import UMockdev
from tests.usb import usbmon
from tests.usb.lsusb import load
from tests.usb.umockdev_kiosk import describe
from wayray.usb.descriptors import parse
from wayray.usb.export import UsbipExport
from wayray.usb.usbip import NOT_ISO, CmdSubmit, Direction, RetSubmit, UsbipReader, encode

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
    faults: list[str] = []
    arrived = asyncio.Event()

    def send(data: bytes) -> None:
        got.extend(m for m in returns.feed(data) if isinstance(m, RetSubmit))
        arrived.set()

    export = UsbipExport(handle, desc, send, faults.append)
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
    export.feed(bytes(range(48)))
    rows = [
        {"seqnum": r.seqnum, "status": r.status, "actual": r.actual_length, "data": r.data.hex()}
        for r in got
    ]
    expected = [c.raw[:18].hex(), c.raw[18:].hex()]
    print(json.dumps({"returns": rows, "faults": faults, "expected": expected}), flush=True)
    export.close()
    handle.close()


if __name__ == "__main__":
    asyncio.run(main())
