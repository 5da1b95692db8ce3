"""A process that runs a real UdevBadgeReader inside a umockdev testbed, driven over stdin/stdout.

Run as ``umockdev-wrapper python -m tests.client.tokens.umockdev_harness '<reader options JSON>'``
(the wrapper preloads libumockdev-preload, which must be there from the process's start). The testbed
gives the process its own /sys, /dev/input/eventN nodes (ptys whose other end this harness writes
``struct input_event``\\ s to) and udev uevents for hotplug; pyudev, the reader's open/read and its
``EVIOCGRAB`` ioctl all go through it unchanged.

What umockdev cannot give is the kernel's evdev grab itself (there is no /dev/uinput here): a umockdev
ioctl handler answers ``EVIOCGRAB`` in its place and records what the reader asked for, so the tests can
check that a reader is grabbed before anything is read, released at the end, and not read at all when
the grab is refused.

stdin: one JSON command per line, ``{"id": n, "op": ..., ...}``. stdout: JSON lines, either a reply
``{"reply": n, ...}`` or an event ``{"event": "inserted" | "removed", ...}``. Logs (DEBUG) go to stderr,
for the tests to check that no token ever appears there.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.client.tokens.umockdev_devices import describe_usb_keyboard, event_node, sys_paths
from tests.client.tokens.util import KEY_CODES, KEY_LEFTSHIFT
from wayray.client.tokens import BadgeInserted, ReaderMatch, UdevBadgeReader
from wayray.common.log import setup

EVIOCGRAB = 0x40044590  # written out here: the harness checks the code, it does not borrow from it
EV_SYN, EV_KEY, EV_MSC, MSC_SCAN = 0, 1, 4, 4
EVENT = struct.Struct("@llHHi")


def import_gi() -> Any:
    """Debian's PyGObject (python3-gi) in this venv's Python: only its ``gi`` package is put on the
    path (through a symlink), not the rest of Debian's dist-packages."""
    system_gi = Path("/usr/lib/python3/dist-packages/gi")
    shim = Path(tempfile.mkdtemp(prefix="wayray-gi-"))
    (shim / "gi").symlink_to(system_gi)
    sys.path.append(str(shim))
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    return UMockdev


UMockdev = import_gi()


class EvdevNode(UMockdev.IoctlBase):  # type: ignore[misc]
    """Stands in for the kernel's evdev ioctls on one node: records opens and EVIOCGRAB requests."""

    def __init__(self, refuse_grab: bool) -> None:
        super().__init__()
        self.refuse_grab = refuse_grab
        self.lock = threading.Lock()
        self.opens = 0
        self.grabs: list[int] = []  # 1 = grab, 0 = release, in order

    def do_client_connected(self, client: Any) -> None:
        with self.lock:
            self.opens += 1

    def do_handle_ioctl(self, client: Any) -> bool:
        if client.get_request() != EVIOCGRAB:
            return False
        value = 1 if any(client.get_arg().data) else 0
        with self.lock:
            if self.refuse_grab and value:
                client.complete(-1, errno.EBUSY)
                return True
            self.grabs.append(value)
        client.complete(0, 0)
        return True


@dataclass
class Device:
    number: int
    vendor: int
    product: int
    node: str
    handler: EvdevNode
    plugged: bool = True
    vanished: bool = False


class Harness:
    def __init__(self, options: dict[str, Any]) -> None:
        self.testbed = UMockdev.Testbed.new()
        self.devices: dict[str, Device] = {}
        self.options = options
        self.reader: UdevBadgeReader | None = None

    def emit(self, message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    # --- commands -----------------------------------------------------------------------------------

    async def op_start(self, cmd: dict[str, Any]) -> dict[str, Any]:
        o = self.options
        self.reader = UdevBadgeReader(
            ReaderMatch(int(o["vendor"], 16), int(o["product"], 16) if o.get("product") else None),
            removal_sequence=o.get("removal_sequence"),
            repeat_removes=o.get("repeat_removes", False),
            inter_key_timeout=o.get("inter_key_timeout", 0.5),
            max_length=o.get("max_length", 256),
        )
        await self.reader.start()
        asyncio.get_running_loop().create_task(self.forward_events(self.reader))
        return {"open_nodes": self.reader.open_nodes}

    async def op_plug(self, cmd: dict[str, Any]) -> dict[str, Any]:
        number, vendor, product = cmd["number"], int(cmd["vendor"], 16), int(cmd["product"], 16)
        handler = EvdevNode(cmd.get("refuse_grab", False))
        self.testbed.add_from_string(describe_usb_keyboard(number, vendor, product, cmd["label"]))
        # Attached before this process's event loop runs again, so before the reader can open it.
        self.testbed.attach_ioctl(event_node(number), handler)
        self.devices[cmd["name"]] = Device(number, vendor, product, event_node(number), handler)
        return {"node": event_node(number)}

    async def op_type(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Key events as a keyboard-wedge reader sends them for ``text`` (MSC_SCAN, Shift, SYN)."""
        device = self.devices[cmd["name"]]
        t = cmd.get("t0", time.time())
        step = cmd.get("step", 0.004)
        data = b""
        for ch in cmd["text"]:
            code = KEY_CODES[ch.lower()]
            shifted = ch.isupper()
            if shifted:
                data += EVENT.pack(int(t), int(t % 1 * 1e6), EV_KEY, KEY_LEFTSHIFT, 1)
            for value in (1, 0):
                data += EVENT.pack(int(t), int(t % 1 * 1e6), EV_MSC, MSC_SCAN, 0x70000 + code)
                data += EVENT.pack(int(t), int(t % 1 * 1e6), EV_KEY, code, value)
                data += EVENT.pack(int(t), int(t % 1 * 1e6), EV_SYN, 0, 0)
                t += step / 2
            if shifted:
                data += EVENT.pack(int(t), int(t % 1 * 1e6), EV_KEY, KEY_LEFTSHIFT, 0)
        os.write(self.testbed.get_dev_fd(device.node), data)
        return {"bytes": len(data)}

    async def op_replay(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Play an evemu events file (a recording's format) into the device's node."""
        device = self.devices[cmd["name"]]
        self.testbed.load_evemu_events(device.node, cmd["file"])
        return {}

    async def op_unplug(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """The kernel's side of pulling the USB plug: remove uevents, children first; sysfs goes."""
        device = self.devices[cmd["name"]]
        paths = sys_paths(device.number, device.vendor, device.product)
        for path in paths:
            self.testbed.uevent(path, "remove")
        for path in paths:
            self.testbed.remove_device(path)
        device.plugged = False
        return {}

    async def op_vanish(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """The node fails under the reader with no uevent (yet): its other end is closed."""
        device = self.devices[cmd["name"]]
        os.close(self.testbed.get_dev_fd(device.node))
        device.vanished = True
        return {}

    async def op_status(self, cmd: dict[str, Any]) -> dict[str, Any]:
        devices = {}
        for name, device in self.devices.items():
            with device.handler.lock:
                devices[name] = {"opens": device.handler.opens, "grabs": list(device.handler.grabs)}
        return {"open_nodes": self.reader.open_nodes if self.reader else [], "devices": devices}

    async def op_stop(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if self.reader is not None:
            await self.reader.close()
        return await self.op_status(cmd)

    # --- plumbing -----------------------------------------------------------------------------------

    async def forward_events(self, reader: UdevBadgeReader) -> None:
        async for event in reader:
            if isinstance(event, BadgeInserted):
                self.emit(
                    {
                        "event": "inserted",
                        "token": event.token,
                        "kind": event.kind.name,
                        "source": event.source,
                    }
                )
            else:
                self.emit({"event": "removed", "reason": event.reason})

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        while line := await stdin.readline():
            cmd = json.loads(line)
            try:
                reply = await getattr(self, f"op_{cmd['op']}")(cmd)
            except Exception as err:  # report to the test, which fails with it
                reply = {"error": f"{type(err).__name__}: {err}"}
            self.emit({"reply": cmd["id"], **reply})
            if cmd["op"] == "stop":
                break


def main() -> None:
    setup("harness", verbose=1)
    asyncio.run(Harness(json.loads(sys.argv[1])).run())


if __name__ == "__main__":
    main()
