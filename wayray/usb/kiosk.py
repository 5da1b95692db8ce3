"""The kiosk's USB side (docs/usb.md, section 3): devices found and followed through udev, judged by
the kiosk's own ``usb.toml``, offered to the session the kiosk shows, withdrawn when unplugged.

pyudev (and libudev) are Linux-only and imported when the watcher starts, so this module imports
anywhere. The watcher lives as long as wrclient; connections come and go under it (``connected`` /
``disconnected``): each connection is offered every allowed device afresh, with new handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wayray.common.errors import WayRayError
from wayray.config.model.usb import UsbConfig
from wayray.usb.descriptors import MAX_DESCRIPTORS, parse
from wayray.usb.devlist import DevlistServer, Exported
from wayray.usb.export import UsbipExport
from wayray.usb.filters import DeviceIdentity, Judgement, judge
from wayray.wire.messages import UsbDetached, UsbOffer, UsbSpeed, UsbVerdict, UsbWithdraw
from wayray.wire.protocol import MAX_USB_BUSID, MAX_USB_STRING

log = logging.getLogger("wayray.usb")

#: sysfs ``speed`` (Mbit/s) → the wire's UsbSpeed.
_SPEEDS = {"1.5": UsbSpeed.LOW, "12": UsbSpeed.FULL, "480": UsbSpeed.HIGH, "53.3-480": UsbSpeed.WIRELESS,
           "5000": UsbSpeed.SUPER, "10000": UsbSpeed.SUPER_PLUS, "20000": UsbSpeed.SUPER_PLUS}  # fmt: skip
#: Most devices offered on one connection at once (the server refuses more: docs/protocol.md).
MAX_OFFERED = 32


def import_pyudev() -> Any:
    try:
        import pyudev

        pyudev.Context()
    except (ImportError, OSError) as err:
        raise WayRayError(
            f"USB forwarding needs udev: {err}",
            hint="install pyudev and libudev (Debian: libudev1), or turn USB forwarding off",
        ) from None
    return pyudev


def import_usb1() -> Any:
    """libusb1's ``usb1`` with the system's libusb-1.0 loaded: the kiosk serves accepted devices
    through it, so forwarding without it is refused when wrclient starts."""
    try:
        import usb1

        usb1.loadLibrary()
    except ImportError as err:
        raise WayRayError(
            f"USB forwarding needs libusb-1.0 and its Python binding: {err}",
            hint="install WayRay with its dependencies (libusb1), or turn USB forwarding off "
            "(usb = false in client.toml)",
        ) from None
    except OSError as err:
        raise WayRayError(
            f"USB forwarding needs libusb-1.0, which cannot be loaded on this machine: "
            f"{err.strerror or err}",
            hint="install it (Debian: apt install libusb-1.0-0), or turn USB forwarding off "
            "(usb = false in client.toml)",
        ) from None
    return usb1


@dataclass
class KioskDevice:
    sys_path: str
    busid: str
    identity: DeviceIdentity
    speed: UsbSpeed
    descriptors: bytes
    judgement: Judgement
    #: The handle it was offered under on the current connection (None: not offered on it).
    handle: int | None = None
    #: What the server said about it on the current connection ("" before it answered).
    verdict: str = ""
    #: Where libusb finds it.
    bus: int = 0
    address: int = 0
    #: While attached: its USB/IP server and libusb handle.
    export: UsbipExport | None = None
    usb_handle: Any = None


class KioskUsb:
    """Follows the kiosk's USB devices; offers the allowed ones on the current connection.

    ``send`` puts a message on the current connection (set by ``connected``). ``excluded(vendor,
    product)`` names devices that are the kiosk's own (its badge reader): never judged, never offered.
    ``on_change`` is called after anything changed (for the kiosk's status)."""

    def __init__(
        self,
        rules: UsbConfig,
        *,
        excluded: Callable[[int, int], bool] = lambda _v, _p: False,
        on_change: Callable[[], None] = lambda: None,
        list_port: int | None = None,
    ) -> None:
        self.rules = rules
        #: Diagnostics: answer ``usbip list -r`` on this loopback TCP port (wayray.usb.devlist).
        self.list_port = list_port
        self._devlist: DevlistServer | None = None
        self.excluded = excluded
        self.on_change = on_change
        self.devices: dict[str, KioskDevice] = {}
        self._send: Callable[[Any], None] | None = None
        self._stream: Callable[[int, bytes, bool], None] | None = None
        self._context: Any = None
        self._handles = itertools.count(1)
        self._monitor: Any = None

    # --- life -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start following devices (in the running loop): listen first, then look at what is there,
        so a device plugged in meanwhile is not missed."""
        pyudev = import_pyudev()
        context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by("usb", "usb_device")
        monitor.start()
        asyncio.get_running_loop().add_reader(monitor.fileno(), self._on_uevents, monitor)
        self._monitor = monitor
        for device in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
            self._added(device)
        log.info("usb: following the kiosk's USB devices (%d plugged in)", len(self.devices))
        if self.list_port is not None:
            self._devlist = DevlistServer(self.exported)
            asyncio.get_running_loop().create_task(self._devlist.start(self.list_port)).add_done_callback(
                _listing_started
            )

    def exported(self) -> list[Exported]:
        """What ``usbip list -r`` shows: the devices this kiosk's rules allow (what it offers)."""
        return [
            Exported(d.sys_path, d.busid, d.bus, d.address, int(d.speed), d.descriptors)
            for d in sorted(self.devices.values(), key=lambda d: d.busid)
            if d.judgement.allowed
        ]

    def stop(self) -> None:
        if self._devlist is not None:
            self._devlist.close()
            self._devlist = None
        if self._monitor is not None:
            asyncio.get_running_loop().remove_reader(self._monitor.fileno())
            self._monitor = None

    def connected(self, send: Callable[[Any], None], stream: Callable[[int, bytes, bool], None]) -> None:
        """A connection to a session is established: offer it every allowed device. ``stream(device,
        data, end)`` sends on a device's stream."""
        self._send = send
        self._stream = stream
        for dev in self.devices.values():
            dev.handle, dev.verdict = None, ""
            self._offer(dev)
        self.on_change()

    def disconnected(self) -> None:
        """The connection is gone: nothing is offered any more (the server let go of it all)."""
        self._send = None
        self._stream = None
        for dev in self.devices.values():
            self._unexport(dev)
            dev.handle, dev.verdict = None, ""
        self.on_change()

    def stream_data(self, device: int, data: bytes, end: bool) -> None:
        """What the server sent on a device's stream (the submits and unlinks of the host's vhci)."""
        dev = next((d for d in self.devices.values() if d.handle == device), None)
        if dev is not None and dev.export is not None:
            dev.export.feed(data, end=end)

    # --- the server's answers --------------------------------------------------------------------

    def message(self, msg: UsbVerdict | UsbDetached) -> None:
        dev = next((d for d in self.devices.values() if d.handle == msg.device), None)
        if dev is None:  # withdrawn meanwhile
            return
        if isinstance(msg, UsbVerdict):
            dev.verdict = ("accepted: " if msg.accepted else "refused: ") + msg.reason
            level = logging.INFO if msg.accepted else logging.WARNING
            log.log(level, "usb: %s: the server %s", dev.identity.describe(), dev.verdict)
            if msg.accepted:
                self._export(dev)
            else:
                self._unexport(dev)
        else:
            dev.verdict = "detached: " + msg.reason
            log.info("usb: %s: the server detached it: %s", dev.identity.describe(), msg.reason)
            self._unexport(dev)
        self.on_change()

    # --- udev ------------------------------------------------------------------------------------

    def _on_uevents(self, monitor: Any) -> None:
        while True:
            try:
                device = monitor.poll(timeout=0)
            except OSError as err:
                log.warning("usb: reading a udev event failed: %s", err)
                return
            if device is None:
                return
            if device.action == "add":
                self._added(device)
            elif device.action == "remove":
                self._removed(device.sys_path)

    def _added(self, device: Any) -> None:
        if device.sys_path in self.devices:
            return
        attrs = device.attributes
        try:
            vendor = int(_text(attrs, "idVendor"), 16)
            product = int(_text(attrs, "idProduct"), 16)
        except ValueError:
            log.warning("usb: %s: no USB ids in sysfs; left alone", device.sys_path)
            return
        if self.excluded(vendor, product):
            log.info("usb: %04x:%04x at %s is the kiosk's own (its badge reader): never offered",
                     vendor, product, device.sys_name)  # fmt: skip
            return
        identity = DeviceIdentity(
            vendor,
            product,
            manufacturer=_text(attrs, "manufacturer"),
            name=_text(attrs, "product"),
            serial=_text(attrs, "serial"),
            where=device.sys_name,
        )
        raw = _descriptors(device.sys_path)
        judgement = judge(self.rules, raw, identity, user=None, side="kiosk")
        dev = KioskDevice(device.sys_path, device.sys_name, identity, _SPEEDS.get(_text(attrs, "speed"),
                          UsbSpeed.UNKNOWN), raw, judgement, bus=_number(attrs, "busnum"),
                          address=_number(attrs, "devnum"))  # fmt: skip
        self.devices[device.sys_path] = dev
        self._offer(dev)
        self.on_change()

    def _removed(self, sys_path: str) -> None:
        dev = self.devices.pop(sys_path, None)
        if dev is None:
            return
        log.info("usb: %s unplugged", dev.identity.describe())
        self._unexport(dev)
        if dev.handle is not None and self._send is not None:
            self._send(UsbWithdraw(device=dev.handle, reason="unplugged at the kiosk"))
        self.on_change()

    def _export(self, dev: KioskDevice) -> None:
        """The server attached the device: serve it, through libusb, on its stream."""
        if dev.export is not None or dev.handle is None:
            return
        handle_id = dev.handle
        try:
            import usb1

            if self._context is None:
                self._context = usb1.USBContext()
            found = [d for d in self._context.getDeviceList(skip_on_error=True)
                     if (d.getBusNumber(), d.getDeviceAddress()) == (dev.bus, dev.address)]  # fmt: skip
            if not found:
                raise OSError(f"libusb does not see bus {dev.bus} device {dev.address}")
            dev.usb_handle = found[0].open()
        except Exception as err:  # no usb1 (ImportError), no device (OSError), libusb's own (USBError)
            reason = f"this kiosk cannot open the device: {err}"
            log.warning("usb: %s: %s", dev.identity.describe(), reason)
            if self._send is not None:
                self._send(UsbWithdraw(device=handle_id, reason=reason[:1000]))
            dev.handle = None
            return
        stream = self._stream

        def send(data: bytes) -> None:
            if stream is not None:
                stream(handle_id, data, False)

        def fault(reason: str) -> None:
            log.warning(
                "usb: %s: %s; giving the device up on this connection", dev.identity.describe(), reason
            )
            self._unexport(dev)
            if self._send is not None and dev.handle == handle_id:
                self._send(UsbWithdraw(device=handle_id, reason=reason[:1000]))
                dev.handle = None

        dev.export = UsbipExport(dev.usb_handle, parse(dev.descriptors), send, fault, context=self._context)
        dev.export.claim()
        log.info("usb: %s is served to the session", dev.identity.describe())

    def _unexport(self, dev: KioskDevice) -> None:
        if dev.export is not None:
            dev.export.close()
            dev.export.release()
            dev.export = None
            if self._stream is not None and dev.handle is not None:
                self._stream(dev.handle, b"", True)
        if dev.usb_handle is not None:
            with contextlib.suppress(Exception):
                dev.usb_handle.close()
            dev.usb_handle = None

    def _offer(self, dev: KioskDevice) -> None:
        if self._send is None or not dev.judgement.allowed or dev.handle is not None:
            return
        if sum(1 for d in self.devices.values() if d.handle is not None) >= MAX_OFFERED:
            log.warning(
                "usb: %s not offered: %d devices are offered already", dev.identity.describe(), MAX_OFFERED
            )
            return
        dev.handle = next(self._handles)
        ident = dev.identity
        self._send(
            UsbOffer(
                device=dev.handle,
                busid=_cut(dev.busid, MAX_USB_BUSID),
                speed=dev.speed,
                descriptors=dev.descriptors,
                manufacturer=_cut(ident.manufacturer, MAX_USB_STRING),
                product=_cut(ident.name, MAX_USB_STRING),
                serial=_cut(ident.serial, MAX_USB_STRING),
            )
        )
        log.info("usb: %s offered to the session", ident.describe())


def _number(attrs: Any, name: str) -> int:
    try:
        return int(_text(attrs, name))
    except ValueError:
        return 0


def _text(attrs: Any, name: str) -> str:
    try:
        value = attrs.get(name)
    except (KeyError, OSError, UnicodeDecodeError):
        return ""
    if value is None:
        return ""
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()


def _descriptors(sys_path: str) -> bytes:
    """The device's descriptors as sysfs has them (read as a file: libudev's attribute values are C
    strings, which end at the first zero byte). At most one byte past the limit, so an oversized
    set is refused by the parser, not cut to a size that parses."""
    try:
        with open(os.path.join(sys_path, "descriptors"), "rb") as f:
            return f.read(MAX_DESCRIPTORS + 1)
    except OSError as err:
        log.warning("usb: cannot read the descriptors of %s: %s", sys_path, err.strerror)
        return b""


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, at a character boundary."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _listing_started(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        err = task.exception()
        log.error("usb: cannot answer usbip list -r: %s (choose another --usb-list-port)", err)
