"""umockdev descriptions of USB keyboards (keyboard-wedge badge readers are USB keyboards to the kernel).

The records follow what ``umockdev-record /dev/input/eventN`` writes for a real USB keyboard: the USB
device and its HID interface, the HID device, the input device and its event node, with the sysfs
attributes and udev properties that pyudev and WayRay look at.
"""

from __future__ import annotations

#: An OMNIKEY 5427 CK (HID Global), a badge reader that can act as a keyboard wedge.
READER = (0x076B, 0x5427, "HID Global OMNIKEY 5427 CK")
#: An ordinary USB keyboard, which must never be taken for the badge reader.
KEYBOARD = (0x046D, 0xC31C, "Logitech USB Keyboard")


def usb_port(number: int) -> str:
    return f"/sys/devices/pci0000:00/0000:00:14.0/usb1/1-{number}"


def event_node(number: int) -> str:
    return f"/dev/input/event{10 + number}"


def describe_usb_keyboard(number: int, vendor: int, product: int, name: str) -> str:
    """Records for a USB keyboard on port 1-``number``; its event node is :func:`event_node`."""
    usb = usb_port(number)[len("/sys") :]
    intf = f"{usb}/1-{number}:1.0"
    hid = f"{intf}/0003:{vendor:04X}:{product:04X}.{number:04X}"
    inp = f"{hid}/input/input{20 + number}"
    ev = f"{inp}/event{10 + number}"
    return f"""P: {usb}
N: bus/usb/001/{number + 1:03d}
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
E: DEVNAME=/dev/bus/usb/001/{number + 1:03d}
E: ID_VENDOR_ID={vendor:04x}
E: ID_MODEL_ID={product:04x}
A: idVendor={vendor:04x}
A: idProduct={product:04x}
A: product={name}
A: bDeviceClass=00
A: dev=189:{number}

P: {intf}
E: SUBSYSTEM=usb
E: DEVTYPE=usb_interface
E: INTERFACE=3/1/1
A: bInterfaceClass=03
A: bInterfaceSubClass=01
A: bInterfaceProtocol=01

P: {hid}
E: SUBSYSTEM=hid
E: HID_NAME={name}

P: {inp}
E: SUBSYSTEM=input
E: ID_INPUT=1
E: ID_INPUT_KEY=1
E: ID_INPUT_KEYBOARD=1
E: ID_VENDOR_ID={vendor:04x}
E: ID_MODEL_ID={product:04x}
A: name={name}
A: id/vendor={vendor:04x}
A: id/product={product:04x}
A: id/bustype=0003

P: {ev}
N: input/event{10 + number}
E: SUBSYSTEM=input
E: DEVNAME=/dev/input/event{10 + number}
E: MAJOR=13
E: MINOR={74 + number}
E: ID_INPUT=1
E: ID_INPUT_KEYBOARD=1
A: dev=13:{74 + number}
"""


def sys_paths(number: int, vendor: int, product: int) -> list[str]:
    """The device's sysfs paths, children first (the order the kernel reports their removal)."""
    usb = usb_port(number)
    intf = f"{usb}/1-{number}:1.0"
    hid = f"{intf}/0003:{vendor:04X}:{product:04X}.{number:04X}"
    inp = f"{hid}/input/input{20 + number}"
    return [f"{inp}/event{10 + number}", inp, hid, intf, usb]
