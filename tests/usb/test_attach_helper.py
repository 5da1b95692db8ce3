"""The attach helper's logic (docs/usb.md, section 5) against a copy of vhci_hcd's sysfs files (this
machine has no vhci_hcd: the kernel's side of the write is not run): it answers only wrsrvd's uid,
takes one connected Unix stream socket, picks a free port of the device's speed, writes the line it
formatted itself, closes its copy of the descriptor, detaches only what it attached, and says
clearly when vhci_hcd is missing. Real sockets and SCM_RIGHTS throughout."""

from __future__ import annotations

import array
import contextlib
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from wayray.usb.attach_helper import AttachHelper

STATUS = """hub port sta spd dev      sockfd local_busid
hs  0000 006 003 00010002 000005 1-2
hs  0001 004 000 00000000 000000 0-0
ss  0008 004 000 00000000 000000 0-0
"""


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    (tmp_path / "status").write_text(STATUS)
    return tmp_path


def ask(helper: AttachHelper, request: Any, fds: list[int] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client, server:
        raw = request if isinstance(request, bytes) else json.dumps(request).encode()
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        client.sendmsg([raw], rights)
        answer = helper.serve_one(server)
        assert json.loads(client.recv(4096)) == answer
        return answer


def _descriptors_of(sock: socket.socket) -> int:
    """How many of this process's descriptors are ``sock`` (its own, and any copy received of it);
    other descriptors the process opens or closes meanwhile (other tests' leftovers, collected) do
    not count."""
    name = f"socket:[{os.fstat(sock.fileno()).st_ino}]"
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # gone since the listing
            found += os.readlink(f"/proc/self/fd/{fd}") == name
    return found


def test_attach_picks_a_free_port_of_the_right_speed_and_writes_its_own_line(sysfs: Path) -> None:
    helper = AttachHelper(os.getuid(), sysfs)
    device, ours = socket.socketpair()
    with device, ours:
        assert _descriptors_of(device) == 1
        assert ask(helper, {"op": "attach", "speed": 3, "devid": 0x10003}, [device.fileno()]) == {"port": 1}
        assert re.fullmatch(r"1 \d+ 65539 3", (sysfs / "attach").read_text())
        assert _descriptors_of(device) == 1  # its copy of the socket is closed
        assert ask(helper, {"op": "attach", "speed": 5, "devid": 7}, [device.fileno()]) == {"port": 8}
    assert ask(helper, {"op": "detach", "port": 1}) == {"detached": 1}
    assert (sysfs / "detach").read_text() == "1"
    assert "was not attached by this helper" in ask(helper, {"op": "detach", "port": 0})["error"]


def test_what_the_helper_refuses(sysfs: Path, tmp_path: Path) -> None:
    helper = AttachHelper(os.getuid(), sysfs)
    device, ours = socket.socketpair()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lonely = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    with device, ours, udp, lonely:
        attach = {"op": "attach", "speed": 3, "devid": 1}
        assert "exactly one socket, not 0" in ask(helper, attach)["error"]
        assert "exactly one socket, not 2" in ask(helper, attach, [device.fileno(), ours.fileno()])["error"]
        assert "not a Unix stream socket" in ask(helper, attach, [udp.fileno()])["error"]
        assert "not connected" in ask(helper, attach, [lonely.fileno()])["error"]
        assert "not a socket" in ask(helper, attach, [read_end])["error"]
        assert "not a USB speed" in ask(helper, {**attach, "speed": 9}, [device.fileno()])["error"]
        assert "out of range" in ask(helper, {**attach, "devid": -1}, [device.fileno()])["error"]
        assert (
            "unknown request" in ask(helper, {**attach, "path": "/etc/shadow"}, [device.fileno()])["error"]
        )
        assert ask(helper, b"\xff not json")["error"] == "not a JSON request"
        other = AttachHelper(os.getuid() + 1, sysfs)
        assert "may not ask" in ask(other, attach, [device.fileno()])["error"]
        missing = AttachHelper(os.getuid(), tmp_path / "no-vhci")
        error = ask(missing, attach, [device.fileno()])["error"]
        assert "vhci_hcd is not loaded on this host" in error and "modprobe vhci-hcd" in error
        assert not (sysfs / "attach").exists()  # nothing was written for any of them
    os.close(read_end)
    os.close(write_end)


def hubs(sysfs: Path) -> Path:
    """vhci_hcd's two root hubs as sysfs shows them: bus 3 high-speed, bus 4 super-speed."""
    for bus, speed in ((3, "480"), (4, "5000")):
        (sysfs / f"usb{bus}").mkdir()
        (sysfs / f"usb{bus}" / "speed").write_text(f"{speed}\n")
    return sysfs


def test_attach_for_a_user_tells_udev_whose_device_it_is_and_detach_forgets(
    sysfs: Path, tmp_path: Path
) -> None:
    """The owner file udev's rule imports (packaging/udev/70-wayray-usb.rules) is named by the bus
    id the kernel will give the device on that port, written before the attach line, removed by
    detach; an attach without a user, or one that fails, leaves none for that port."""
    owners = tmp_path / "owners"
    helper = AttachHelper(os.getuid(), hubs(sysfs), owners)
    device, ours = socket.socketpair()
    with device, ours:
        attach = {"op": "attach", "speed": 3, "devid": 0x10003, "uid": 1234}
        assert ask(helper, attach, [device.fileno()]) == {"port": 1}
        assert (owners / "3-2").read_text() == "WAYRAY_USB_UID=1234\nWAYRAY_USB_PORT=1\n"
        assert oct((owners / "3-2").stat().st_mode & 0o777) == "0o644"
        assert ask(helper, {**attach, "speed": 5}, [device.fileno()]) == {"port": 8}
        assert (owners / "4-1").read_text() == "WAYRAY_USB_UID=1234\nWAYRAY_USB_PORT=8\n"
        assert ask(helper, {"op": "detach", "port": 8}) == {"detached": 8}
        assert not (owners / "4-1").exists()
        # Without a uid (a user wrsrvd could not resolve): attached, nobody's; the file a previous
        # device left for that bus id does not give this one away (the copy's port 1 is still free).
        assert ask(helper, {"op": "attach", "speed": 3, "devid": 9}, [device.fileno()]) == {"port": 1}
        assert not (owners / "3-2").exists()
        for bad in (-1, True, "1234", 1 << 32):
            error = ask(helper, {**attach, "uid": bad}, [device.fileno()])["error"]
            assert "uid" in error, error
        (sysfs / "attach").unlink()
        (sysfs / "attach").mkdir()  # the write fails, as when vhci_hcd refuses
        error = ask(helper, {**attach, "speed": 5}, [device.fileno()])["error"]
        assert "refused to attach" in error
    assert list(owners.iterdir()) == []
