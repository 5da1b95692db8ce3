"""USB descriptors as a device gives them: the device descriptor, then each configuration descriptor
with everything it carries (interfaces, endpoints, interface associations, class descriptors).

This is the layout of a device's ``descriptors`` file in sysfs and of what reading its usbfs node
returns, and what a kiosk's UsbOffer carries (docs/usb.md). The parser is strict and bounded: it reads
only what the lengths say, refuses a length that overruns or does not fit its type, and never loops on
a zero length. Standard library only; no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wayray.common.errors import WayRayError

#: Most bytes of descriptors a device may have here (a device with many alternate settings, a
#: webcam, has a few KiB; USB's wTotalLength is 16 bits per configuration).
MAX_DESCRIPTORS = 64 * 1024
#: Most configurations read (USB allows 255; real devices have one, rarely two).
MAX_CONFIGURATIONS = 8

DEVICE = 0x01
CONFIGURATION = 0x02
INTERFACE = 0x04
ENDPOINT = 0x05

#: Device classes that mean "the interfaces say what this is": 0x00, and 0xEF (miscellaneous, the
#: class of devices with interface associations).
PER_INTERFACE = frozenset({0x00, 0xEF})
HUB = 0x09

_DEVICE = struct.Struct("<BBHBBBBHHHBBBB")
_CONFIG = struct.Struct("<BBHBBBBB")
_INTERFACE = struct.Struct("<BBBBBBBBB")


class DescriptorError(WayRayError):
    """Descriptor bytes that do not parse; the message says where and what."""


@dataclass(frozen=True)
class Interface:
    number: int
    alternate: int
    cls: int
    subclass: int
    protocol: int
    endpoints: int

    @property
    def function(self) -> tuple[int, int, int]:
        return (self.cls, self.subclass, self.protocol)


@dataclass(frozen=True)
class Configuration:
    value: int
    interfaces: tuple[Interface, ...]


@dataclass(frozen=True)
class Descriptors:
    usb_version: int  # bcdUSB, e.g. 0x0200
    cls: int
    subclass: int
    protocol: int
    vendor: int
    product: int
    bcd_device: int
    configurations: tuple[Configuration, ...]
    #: The bytes these were parsed from.
    raw: bytes

    @property
    def functions(self) -> tuple[tuple[int, int, int], ...]:
        """The device class triple (unless it defers to the interfaces) and every interface's, each
        once, in the order the descriptors give them."""
        out: list[tuple[int, int, int]] = []
        if self.cls not in PER_INTERFACE:
            out.append((self.cls, self.subclass, self.protocol))
        for config in self.configurations:
            for intf in config.interfaces:
                if intf.function not in out:
                    out.append(intf.function)
        return tuple(out)

    @property
    def is_hub(self) -> bool:
        return self.cls == HUB or any(i.cls == HUB for c in self.configurations for i in c.interfaces)

    @property
    def ids(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"


def parse(data: bytes) -> Descriptors:
    """Parse a device descriptor followed by its configuration descriptors; DescriptorError if the
    bytes are not that."""
    data = bytes(data)
    if len(data) > MAX_DESCRIPTORS:
        raise DescriptorError(f"{len(data)} bytes of descriptors: more than {MAX_DESCRIPTORS}")
    if len(data) < _DEVICE.size:
        raise DescriptorError(f"{len(data)} bytes: too short for a device descriptor ({_DEVICE.size})")
    (length, kind, bcd_usb, cls, sub, proto, _mps0, vendor, product, bcd_dev, _im, _ip, _is, n_configs) = (
        _DEVICE.unpack_from(data)
    )
    if kind != DEVICE or length != _DEVICE.size:
        raise DescriptorError(f"not a device descriptor (bLength {length}, bDescriptorType {kind:#04x})")
    if n_configs == 0:
        raise DescriptorError("the device descriptor says it has no configuration")
    configurations: list[Configuration] = []
    at = _DEVICE.size
    while at < len(data):
        if len(configurations) >= min(n_configs, MAX_CONFIGURATIONS):
            raise DescriptorError(f"{len(data) - at} bytes after the last configuration (at offset {at})")
        config, at = _configuration(data, at)
        configurations.append(config)
    if not configurations:
        raise DescriptorError("no configuration descriptor follows the device descriptor")
    return Descriptors(bcd_usb, cls, sub, proto, vendor, product, bcd_dev, tuple(configurations), data)


def _configuration(data: bytes, at: int) -> tuple[Configuration, int]:
    if len(data) - at < _CONFIG.size:
        raise DescriptorError(f"a configuration descriptor cut short at offset {at}")
    length, kind, total, _n_intf, value, _iconf, _attrs, _power = _CONFIG.unpack_from(data, at)
    if kind != CONFIGURATION or length < _CONFIG.size:
        raise DescriptorError(
            f"not a configuration descriptor at offset {at} (bLength {length}, bDescriptorType {kind:#04x})"
        )
    end = at + total
    if total < length or end > len(data):
        raise DescriptorError(
            f"configuration {value}: wTotalLength {total} at offset {at} overruns the {len(data)} bytes"
        )
    interfaces: list[Interface] = []
    pos = at + length
    while pos < end:
        if end - pos < 2:
            raise DescriptorError(f"configuration {value}: a descriptor cut short at offset {pos}")
        d_len, d_kind = data[pos], data[pos + 1]
        if d_len < 2 or pos + d_len > end:
            raise DescriptorError(
                f"configuration {value}: a descriptor at offset {pos} has bLength {d_len}, "
                f"which {'is too small' if d_len < 2 else 'overruns its configuration'}"
            )
        if d_kind == INTERFACE:
            if d_len < _INTERFACE.size:
                raise DescriptorError(
                    f"configuration {value}: an interface descriptor of {d_len} bytes at {pos}"
                )
            _l, _k, number, alt, n_ep, i_cls, i_sub, i_proto, _ii = _INTERFACE.unpack_from(data, pos)
            interfaces.append(Interface(number, alt, i_cls, i_sub, i_proto, n_ep))
        pos += d_len
    if not interfaces:
        raise DescriptorError(f"configuration {value} has no interface")
    return Configuration(value, tuple(interfaces)), end
