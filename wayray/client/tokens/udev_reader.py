"""A keyboard-wedge badge reader, found through udev and read straight from its evdev node.

The reader is the input device whose USB vendor/product match ``client.toml``'s ``badge.vendor`` /
``badge.product``. Each of its ``/dev/input/event*`` nodes is opened and grabbed (``EVIOCGRAB``), so the
badge ID it types reaches only WayRay: not the session, not the kiosk's compositor, not a console. The
key events are turned into badge IDs here (:mod:`wayray.client.tokens.keystrokes`). Hotplug follows
udev: a reader plugged in later is picked up, and unplugging the reader removes the badge it presented.

pyudev and libudev are Linux-only; they are imported when the reader starts, so this module (and the
rest of the package) imports anywhere, and on illumos the reader fails with "no udev on this platform".
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from wayray.client.tokens.events import InvalidToken, TokenKind, validate_token
from wayray.client.tokens.keystrokes import (
    EVIOCGRAB,
    INPUT_EVENT,
    Dropped,
    KeystrokeAssembler,
    Line,
    parse_events,
)
from wayray.client.tokens.source import TokenSource
from wayray.common.errors import WayRayError
from wayray.config.types import Invalid, UsbId

log = logging.getLogger("wayray.client.tokens")

#: Read up to this many events at a time.
_READ_EVENTS = 64


@dataclass(frozen=True, slots=True)
class ReaderMatch:
    """Which device is the badge reader: a USB vendor id and a product id (None: any of the vendor's)."""

    vendor: int
    product: int | None = None

    @classmethod
    def parse(cls, text: str) -> ReaderMatch:
        """``VENDOR[:PRODUCT]`` in hex as lsusb prints them (``076b:5427``; ``076b`` or ``076b:*``: any
        product of the vendor). Raises ValueError."""
        vendor_text, _, product_text = text.partition(":")
        ids = UsbId(16)
        try:
            vendor = ids.parse(vendor_text)
            product = ids.parse(product_text) if product_text else None
        except Invalid as err:
            raise ValueError(f"{text!r}: {err}") from None
        if vendor is None:
            raise ValueError(
                f"{text!r}: give the reader's vendor id; any vendor would include every keyboard"
            )
        return cls(vendor, product)

    def matches(self, vendor: int | None, product: int | None) -> bool:
        return vendor == self.vendor and (self.product is None or product == self.product)

    def __str__(self) -> str:
        product = "*" if self.product is None else f"{self.product:04x}"
        return f"{self.vendor:04x}:{product}"


def import_pyudev() -> Any:
    """The pyudev module, with libudev loaded; or a WayRayError that says udev is missing."""
    if not sys.platform.startswith("linux"):
        raise WayRayError(
            f"no udev on this platform ({sys.platform}): the USB badge reader needs Linux",
            hint="use a badge-reader program with a token file or token socket instead",
        )
    try:
        import pyudev

        pyudev.Context()  # loads libudev
    except (ImportError, OSError) as err:
        raise WayRayError(
            f"no udev on this system: {err}",
            hint="install pyudev and libudev (Debian: libudev1), or use a token file or socket",
        ) from None
    return pyudev


def device_ids(device: Any) -> tuple[int | None, int | None]:
    """USB vendor and product ids of a pyudev input device (from its USB ancestor; for readers on other
    buses, from the input device's ``id/vendor`` and ``id/product``)."""
    usb = device.find_parent("usb", "usb_device")
    if usb is not None:
        return _hex_attribute(usb, "idVendor"), _hex_attribute(usb, "idProduct")
    node = device
    while node is not None and node.subsystem == "input":
        vendor = _hex_attribute(node, "id/vendor")
        if vendor is not None:
            return vendor, _hex_attribute(node, "id/product")
        node = node.parent
    return None, None


def _hex_attribute(device: Any, name: str) -> int | None:
    raw = device.attributes.get(name)
    if raw is None:
        return None
    try:
        return int(raw.decode("ascii", "replace").strip(), 16)
    except ValueError:
        return None


def device_label(device: Any) -> str:
    """The product name of the input device, for logs (e.g. "HID 076b:5427")."""
    node = device
    while node is not None and node.subsystem == "input":
        name = node.attributes.get("name")
        if name:
            return str(name.decode("utf-8", "replace").strip())
        node = node.parent
    return "unnamed input device"


@dataclass(eq=False)
class _OpenReader:
    """One grabbed event node of a reader."""

    sys_path: str
    node: str
    fd: int
    assembler: KeystrokeAssembler
    pending: bytes = field(default=b"")


class UdevBadgeReader(TokenSource):
    """Presents what a keyboard-wedge badge reader types, one badge ID per Enter.

    - ``removal_sequence``: what the reader types when a card is taken out, for readers that report it
      (None: only unplugging the reader removes the badge);
    - ``repeat_removes``: presenting the same badge again removes it (tap-style RFID readers that never
      report removal: tap in, tap out);
    - ``max_length`` / ``inter_key_timeout``: a longer line, or a pause inside one, is not a badge ID.
    """

    def __init__(
        self,
        match: ReaderMatch,
        kind: TokenKind = TokenKind.BADGE,
        *,
        removal_sequence: str | None = None,
        repeat_removes: bool = False,
        max_length: int = 256,
        inter_key_timeout: float = 0.5,
    ) -> None:
        super().__init__(f"badge reader {match}")
        self.match = match
        self.kind = kind
        self.removal_sequence = removal_sequence
        self.repeat_removes = repeat_removes
        self.max_length = max_length
        self.inter_key_timeout = inter_key_timeout
        self._readers: dict[str, _OpenReader] = {}
        self._refused: set[str] = set()  # nodes we could not open, reported once
        self._token_from: str | None = None  # sys_path of the node that typed the presented badge

    @property
    def open_nodes(self) -> list[str]:
        """Device nodes currently grabbed (for status output and tests)."""
        return sorted(r.node for r in self._readers.values())

    async def _produce(self) -> None:
        pyudev = import_pyudev()
        loop = asyncio.get_running_loop()
        context = pyudev.Context()
        # Listen before looking at what is there, so a reader plugged in meanwhile is not missed.
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by("input")
        monitor.start()
        loop.add_reader(monitor.fileno(), self._on_uevents, monitor)
        try:
            for device in context.list_devices(subsystem="input"):
                self._consider(device)
            if not self._readers:
                log.info("%s: none plugged in; waiting for one", self.description)
            self._set_ready()
            await loop.create_future()  # until closed
        finally:
            loop.remove_reader(monitor.fileno())
            for reader in list(self._readers.values()):
                self._release(reader)
            self._readers.clear()

    # --- devices ------------------------------------------------------------------------------------

    def _on_uevents(self, monitor: Any) -> None:
        while True:
            try:
                device = monitor.poll(timeout=0)
            except OSError as err:  # a uevent that could not be received: the next one may be fine
                log.warning("%s: reading a udev event failed: %s", self.description, err)
                return
            if device is None:
                return
            if device.action == "add":
                self._consider(device)
            elif device.action == "remove":
                self._refused.discard(device.sys_path)
                reader = self._readers.get(device.sys_path)
                if reader is not None:
                    self._drop(reader, "unplugged")

    def _consider(self, device: Any) -> None:
        node = device.device_node
        if not node or not device.sys_name.startswith("event") or device.sys_path in self._readers:
            return
        vendor, product = device_ids(device)
        if not self.match.matches(vendor, product):
            return
        label = device_label(device)
        try:
            fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            self._refuse(
                device.sys_path,
                f"{self.description}: cannot open {node} ({label}): {err.strerror}",
                "let wrclient's user read it with a udev rule for this reader that sets "
                'TAG+="uaccess" or GROUP=; see docs/kiosk.md, Token sources',
            )
            return
        try:
            fcntl.ioctl(fd, EVIOCGRAB, 1)
        except OSError as err:
            os.close(fd)
            why = "another program holds it exclusively" if err.errno == errno.EBUSY else err.strerror
            # Without the grab its keystrokes would also be typed into the session: do not read it.
            self._refuse(
                device.sys_path,
                f"{self.description}: cannot take {node} ({label}) for WayRay alone: {why}",
                "stop the program that grabbed it, such as evtest --grab or another wrclient",
            )
            return
        reader = _OpenReader(
            device.sys_path,
            node,
            fd,
            KeystrokeAssembler(max_length=self.max_length, inter_key_timeout=self.inter_key_timeout),
        )
        self._readers[device.sys_path] = reader
        self._refused.discard(device.sys_path)
        asyncio.get_running_loop().add_reader(fd, self._on_readable, reader)
        log.info("%s: using %s (%s); its keystrokes now reach WayRay only", self.description, node, label)

    def _refuse(self, sys_path: str, message: str, hint: str) -> None:
        if sys_path not in self._refused:
            self._refused.add(sys_path)
            log.error("%s (hint: %s)", message, hint)

    def _drop(self, reader: _OpenReader, why: str) -> None:
        self._readers.pop(reader.sys_path, None)
        self._release(reader)
        log.info("%s: %s %s", self.description, reader.node, why)
        if self._token_from == reader.sys_path:
            self._token_from = None
            self._withdraw(f"badge reader {why}")

    def _release(self, reader: _OpenReader) -> None:
        asyncio.get_running_loop().remove_reader(reader.fd)
        try:
            fcntl.ioctl(reader.fd, EVIOCGRAB, 0)
        except OSError:
            pass  # the device is gone: nothing to give back
        os.close(reader.fd)

    # --- keystrokes ---------------------------------------------------------------------------------

    def _on_readable(self, reader: _OpenReader) -> None:
        try:
            data = os.read(reader.fd, INPUT_EVENT.size * _READ_EVENTS)
        except BlockingIOError:
            return
        except OSError as err:  # before udev's remove event, reads fail with ENODEV
            self._drop(reader, "unplugged" if err.errno == errno.ENODEV else f"gone ({err.strerror})")
            return
        if not data:
            self._drop(reader, "gone")
            return
        events, reader.pending = parse_events(reader.pending + data)
        for event in events:
            for outcome in reader.assembler.feed(event):
                if isinstance(outcome, Dropped):
                    log.warning("%s: %s: ignored: %s", self.description, reader.node, outcome.reason)
                elif isinstance(outcome, Line):
                    self._on_line(reader, outcome.text)

    def _on_line(self, reader: _OpenReader, text: str) -> None:
        if self.removal_sequence is not None and text == self.removal_sequence:
            self._token_from = None
            self._withdraw("card removed")
            return
        try:
            token = validate_token(text)
        except InvalidToken as err:
            log.warning("%s: %s typed no badge ID: %s", self.description, reader.node, err)
            return
        current = self.current
        if self.repeat_removes and current is not None and current.token == token:
            self._token_from = None
            self._withdraw("badge presented again")
            return
        self._token_from = reader.sys_path
        self._present(token, self.kind, f"badge reader {reader.node}")
