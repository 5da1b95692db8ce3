"""The kernel's USB/IP host controller as its sysfs files show it (docs/usb.md, section 5): which ports
are free, and the lines ``usbip attach`` and ``usbip detach`` write. Standard library only, no I/O
beyond the directory it is given, so the attach helper's logic is tested against a copy of the
files (this machine has no vhci_hcd).

``status`` has a header, then one line per port: hub speed (``hs``/``ss``), port, state, speed,
device id, socket fd, local bus id; state 4 (``VDEV_ST_NULL``) is a free port. ``attach`` takes
``"<port> <sockfd> <devid> <speed>"``; ``detach`` takes ``"<port>"``. A super-speed device needs a
super-speed port, every other device a high-speed one.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from wayray.common.errors import WayRayError

#: Where the first USB/IP host controller shows itself once ``vhci_hcd`` is loaded.
SYSFS = Path("/sys/devices/platform/vhci_hcd.0")
#: ``status``: a free port.
FREE = 4
#: The kernel's ``enum usb_device_speed`` values that need a super-speed port.
SUPER_SPEEDS = frozenset({5, 6})


class VhciError(WayRayError):
    """vhci_hcd is missing or has no free port; the message says which."""


@dataclass(frozen=True)
class Port:
    number: int
    hub: str  # "hs" or "ss"
    state: int


def ports(sysfs: Path = SYSFS) -> list[Port]:
    """The controller's ports as ``status`` lists them; VhciError if there is no controller."""
    try:
        text = (sysfs / "status").read_text()
    except FileNotFoundError:
        raise VhciError(
            "vhci_hcd is not loaded on this host, so USB devices cannot be attached here",
            hint="modprobe vhci-hcd (Debian's kernels have it: linux-image-*; the module is vhci-hcd)",
        ) from None
    except OSError as err:
        raise VhciError(f"cannot read {sysfs / 'status'}: {err.strerror}") from None
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 7 or fields[0] not in ("hs", "ss"):
            continue
        try:
            out.append(Port(int(fields[1]), fields[0], int(fields[2])))
        except ValueError:
            continue
    return out


def free_port(speed: int, sysfs: Path = SYSFS) -> int:
    """A free port for a device of ``speed``; VhciError when there is none."""
    hub = "ss" if speed in SUPER_SPEEDS else "hs"
    for port in ports(sysfs):
        if port.hub == hub and port.state == FREE:
            return port.number
    raise VhciError(
        f"vhci_hcd has no free {'super' if hub == 'ss' else 'high'}-speed port", hint="detach a device"
    )


def busid(port: int, sysfs: Path = SYSFS) -> str:
    """The bus id the kernel gives the device attached on ``port`` (``"<bus>-<root port>"``, as in
    ``/sys/bus/usb/devices``): the port's root hub is the controller's ``usbN`` of the port's speed
    (``speed`` 480 for the high-speed hub), and its root port is the port's place among that hub's
    ports in ``status``, counted from 1 (the kernel's ``rhport + 1``)."""
    listed = ports(sysfs)
    mine = next((p for p in listed if p.number == port), None)
    if mine is None:
        raise VhciError(f"port {port} is not one of vhci_hcd's")
    rhport = [p.number for p in listed if p.hub == mine.hub].index(port) + 1
    for hub in sorted(sysfs.glob("usb[0-9]*")):
        try:
            speed = (hub / "speed").read_text().strip()
        except OSError:
            continue
        if (speed == "480") == (mine.hub == "hs") and hub.name[3:].isdigit():
            return f"{int(hub.name[3:])}-{rhport}"
    raise VhciError(f"vhci_hcd's {'super' if mine.hub == 'ss' else 'high'}-speed root hub is not in {sysfs}")


def attach_line(port: int, sockfd: int, devid: int, speed: int) -> str:
    """What ``attach`` takes; every value an integer this code checked (nothing from a request)."""
    for name, value, top in (("port", port, 1 << 16), ("sockfd", sockfd, 1 << 31), ("devid", devid, 1 << 32),
                             ("speed", speed, 7)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < top:
            raise VhciError(f"{name} {value!r} is out of range")
    return f"{port} {sockfd} {devid} {speed}"


def attach(port: int, sockfd: int, devid: int, speed: int, sysfs: Path = SYSFS) -> None:
    """Hand the socket ``sockfd`` (this process's) to port ``port``, as ``usbip attach`` does."""
    line = attach_line(port, sockfd, devid, speed)
    try:
        (sysfs / "attach").write_text(line)
    except OSError as err:
        raise VhciError(
            f"vhci_hcd refused to attach on port {port}: {err.strerror}", hint=_hint(err)
        ) from None


def detach(port: int, sysfs: Path = SYSFS) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 1 << 16:
        raise VhciError(f"port {port!r} is out of range")
    try:
        (sysfs / "detach").write_text(str(port))
    except OSError as err:
        raise VhciError(f"vhci_hcd refused to detach port {port}: {err.strerror}", hint=_hint(err)) from None


def _hint(err: OSError) -> str | None:
    if err.errno == errno.EROFS:  # wrusbattach.service makes only the directory there at start writable
        return "vhci_hcd was loaded after wrusbattach started: systemctl restart wrusbattach.service"
    return None
