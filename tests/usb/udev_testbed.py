"""``udevadm test`` over a umockdev testbed, for tests/usb/test_udev_rule.py.

    umockdev-wrapper python -m tests.usb.udev_testbed OWNERS-JSON

Run inside a private mount namespace (the test makes it: tmpfs on /run and /etc/udev/rules.d, the
rule copied there), so that the db files ``udevadm test`` writes and the owner files stay there. The
testbed is a USB device on vhci_hcd.0's root hub (bus 3, port 1: what ``usbip attach`` makes), its HID
interface and hidraw node, an empty port's neighbour (3-2, no owner file) and a kiosk-local device on a
PCI controller (1-2). Each device is given to ``udevadm test`` parent first, as udevd orders events;
stdout is one JSON object: devpath → what udevadm printed.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.client.tokens.umockdev_harness import UMockdev

VHCI = "/devices/platform/vhci_hcd.0"
DEVICES = f"""P: {VHCI}
E: SUBSYSTEM=platform

P: {VHCI}/usb3
N: bus/usb/003/001
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
E: DEVNAME=/dev/bus/usb/003/001
A: busnum=3
A: devnum=1
A: speed=480
A: dev=189:256

P: {VHCI}/usb3/3-1
N: bus/usb/003/002
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
E: DEVNAME=/dev/bus/usb/003/002
A: busnum=3
A: devnum=2
A: dev=189:257

P: {VHCI}/usb3/3-1/3-1:1.0
E: SUBSYSTEM=usb
E: DEVTYPE=usb_interface
E: INTERFACE=3/1/1

P: {VHCI}/usb3/3-1/3-1:1.0/0003:1050:0407.0001
E: SUBSYSTEM=hid
E: HID_ID=0003:00001050:00000407

P: {VHCI}/usb3/3-1/3-1:1.0/0003:1050:0407.0001/hidraw/hidraw0
N: hidraw0
E: SUBSYSTEM=hidraw
E: DEVNAME=/dev/hidraw0
A: dev=243:0

P: {VHCI}/usb3/3-2
N: bus/usb/003/003
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
E: DEVNAME=/dev/bus/usb/003/003
A: busnum=3
A: devnum=3
A: dev=189:258

P: /devices/pci0000:00/0000:00:14.0/usb1/1-2
N: bus/usb/001/002
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
E: DEVNAME=/dev/bus/usb/001/002
A: busnum=1
A: devnum=2
A: dev=189:1
"""
ORDER = [
    f"{VHCI}/usb3",
    f"{VHCI}/usb3/3-1",
    f"{VHCI}/usb3/3-1/3-1:1.0",
    f"{VHCI}/usb3/3-1/3-1:1.0/0003:1050:0407.0001",
    f"{VHCI}/usb3/3-1/3-1:1.0/0003:1050:0407.0001/hidraw/hidraw0",
    f"{VHCI}/usb3/3-2",
    "/devices/pci0000:00/0000:00:14.0/usb1/1-2",
]


def main() -> None:
    testbed = UMockdev.Testbed.new()
    testbed.add_from_string(DEVICES)
    out = {}
    for devpath in ORDER:
        done = subprocess.run(
            ["udevadm", "test", "--action=add", devpath], capture_output=True, text=True, timeout=120
        )
        out[devpath] = {"rc": done.returncode, "out": done.stdout + done.stderr}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
