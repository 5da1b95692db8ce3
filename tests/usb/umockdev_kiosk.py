"""A real wrclient whose USB devices are umockdev devices, plugged and unplugged on command.

    umockdev-wrapper python -m tests.usb.umockdev_kiosk -- WRCLIENT-ARGS...

The testbed is made in this process before wrclient's main() runs in it (the wrapper preloads
libumockdev-preload from the process's start). Each device is a sysfs USB device with the attributes
the kernel gives one (ids, strings, speed, and ``descriptors``: the bytes of an lsusb capture from
tests/usb/data) and its interfaces; plugging one emits udev's ``add`` uevent, unplugging ``remove``.
Lines on stdin: ``{"plug": "yubikey", "port": 2}``, ``{"unplug": "yubikey"}``; each is answered on
stdout with ``{"done": ...}`` once the testbed has it. Everything else is wrclient unchanged: pyudev,
libudev, the kiosk's rules, QUIC.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from tests.client.tokens.umockdev_harness import UMockdev
from tests.usb import usbmon
from tests.usb.lsusb import Capture, load
from wayray.usb.descriptors import parse

ROOT_HUB = "/sys/devices/pci0000:00/0000:00:14.0/usb1"
#: The emulated isochronous devices by name: {"received": NAME} on stdin answers what their OUT
#: endpoints got.
EMULATED: dict[str, Any] = {}


def describe(c: Capture, port: int) -> tuple[str, list[str]]:
    """umockdev records for the device on port 1-``port`` and its interfaces; its sysfs paths,
    children first (the order the kernel removes them)."""
    d = parse(c.raw)
    path = f"{ROOT_HUB}/1-{port}"
    speed = "480" if d.usb_version >= 0x0200 else "12"
    text = f"""P: {path[len("/sys") :]}
N: bus/usb/001/{port + 1:03d}
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
E: DEVNAME=/dev/bus/usb/001/{port + 1:03d}
E: PRODUCT={c.vendor:x}/{c.product:x}/{d.bcd_device:x}
A: idVendor={c.vendor:04x}
A: idProduct={c.product:04x}
A: bDeviceClass={d.cls:02x}
A: busnum=1
A: devnum={port + 1}
A: speed={speed}
A: manufacturer={c.manufacturer}
A: product={c.product_name}
A: serial={c.serial}
H: descriptors={c.raw.hex()}
A: dev=189:{port}
"""
    paths = []
    for intf in d.configurations[0].interfaces:
        if intf.alternate:
            continue
        ipath = f"{path}/1-{port}:1.{intf.number}"
        paths.append(ipath)
        text += f"""
P: {ipath[len("/sys") :]}
E: SUBSYSTEM=usb
E: DEVTYPE=usb_interface
E: INTERFACE={intf.cls}/{intf.subclass}/{intf.protocol}
A: bInterfaceClass={intf.cls:02x}
A: bInterfaceSubClass={intf.subclass:02x}
A: bInterfaceProtocol={intf.protocol:02x}
"""
    return text, [*paths, path]


def record(testbed: object, c: Capture, port: int, paths: list[str]) -> None:
    """A usbmon recording of the device's answers to GET_DESCRIPTOR for itself and its configuration
    (in that order), which umockdev replays to libusb on the device's node (with
    $WAYRAY_USB_IOCTL="NAME=FILE,...", that ioctl-tree recording for the device NAME instead, or with
    NAME=emulated, tests/usb/usbfs_iso.py's isochronous device). The benchmark
    (bench/usb_roundtrip.py) asks for more: $WAYRAY_USB_BENCH="CONTROLS:BULKS:SIZE" appends that many
    device descriptors, then bulk INs of SIZE bytes on endpoint 0x81."""
    ioctl = dict(i.split("=", 1) for i in os.environ.get("WAYRAY_USB_IOCTL", "").split(",") if i)
    node = f"/dev/bus/usb/001/{port + 1:03d}"
    if ioctl.get(c.name) == "emulated":
        # usbfs's isochronous ioctls played by tests/usb/usbfs_iso.py (tests/usb/umockdev_iso.py's script).
        from tests.usb.umockdev_iso import emulated

        EMULATED[c.name] = emulated()
        testbed.attach_ioctl(node, EMULATED[c.name])  # type: ignore[attr-defined]
        return
    if c.name in ioctl:
        # An ioctl-tree recording instead (umockdev's own format: tests/usb/umockdev_iso.py).
        testbed.load_ioctl(node, ioctl[c.name])  # type: ignore[attr-defined]
        return
    directory = Path(tempfile.mkdtemp(prefix="wayray-usbmon-"))
    total = len(c.raw) - 18
    device = usbmon.Control(bytes.fromhex("8006000100001200"), c.raw[:18])
    exchanges: list[usbmon.Control | usbmon.BulkIn] = [
        device,
        usbmon.Control(bytes.fromhex("800600020000") + total.to_bytes(2, "little"), c.raw[18:]),
    ]
    if os.environ.get("WAYRAY_USB_BENCH"):
        controls, bulks, size = (int(n) for n in os.environ["WAYRAY_USB_BENCH"].split(":"))
        exchanges += [device] * controls + [usbmon.BulkIn(0x81, usbmon.bulk_data(size))] * bulks
    usbmon.write(directory / "device.pcap", 1, port + 1, exchanges)
    testbed.load_pcap(paths[-1], str(directory / "device.pcap"))  # type: ignore[attr-defined]


def main() -> None:
    sep, *argv = sys.argv[1:]
    assert sep == "--"
    testbed = UMockdev.Testbed.new()
    plugged: dict[str, list[str]] = {}
    lock = threading.Lock()

    def commands() -> None:
        for line in sys.stdin:
            cmd = json.loads(line)
            answer: dict[str, Any] = {"done": cmd}
            with lock:
                if "received" in cmd:
                    device = EMULATED[cmd["received"]]
                    with device.lock:
                        answer["received"] = [[p.hex() for p in urb] for urb in device.received]
                elif "plug" in cmd:
                    c = load(cmd["plug"])
                    text, paths = describe(c, cmd["port"])
                    testbed.add_from_string(text)
                    record(testbed, c, cmd["port"], paths)
                    plugged[cmd["plug"]] = paths
                else:
                    for path in plugged.pop(cmd["unplug"]):
                        testbed.uevent(path, "remove")
                        testbed.remove_device(path)
            print(json.dumps(answer), flush=True)

    # Devices plugged in before wrclient starts: --plug NAME:PORT before wrclient's arguments.
    while argv and argv[0] == "--plug":
        name, port = argv[1].split(":")
        c = load(name)
        text, paths = describe(c, int(port))
        testbed.add_from_string(text)
        record(testbed, c, int(port), paths)
        plugged[name] = paths
        argv = argv[2:]
    threading.Thread(target=commands, daemon=True).start()
    from wayray.client.cli import main as wrclient

    sys.exit(wrclient(argv))


if __name__ == "__main__":
    main()
