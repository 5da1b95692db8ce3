"""Descriptor bytes from an ``lsusb -v`` capture (``tests/usb/data/*.lsusb``).

``lsusb -v`` prints every field of the standard descriptors (device, configuration, interface
association, interface, endpoint) in order with its value, and the class descriptors it does not
decode as ``** UNRECOGNIZED:`` hex bytes: enough to give back the bytes the device sent, which is what
a kiosk reads from sysfs (``descriptors``) and offers. Field widths follow USB's naming: ``w``, ``bcd``
and ``id`` fields are 16 bits, the others 8; ``MaxPower`` is in 2 mA units. Each descriptor's packed
size is checked against its bLength and each configuration's against its wTotalLength, so a capture
with a typo fails loudly instead of testing something else.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data"

_BLOCKS = {
    "Device Descriptor:": 1,
    "Configuration Descriptor:": 2,
    "Interface Association:": 11,
    "Interface Descriptor:": 4,
    "Endpoint Descriptor:": 5,
}
_FIELD = re.compile(r"^\s+((?:b|w|i|bm|bcd|id)[A-Z]\w*|MaxPower)\s+(\S+)\s*(.*)$")
_RAW = re.compile(r"^\s+\*\* UNRECOGNIZED:\s+([0-9a-f ]+)$")


@dataclass(frozen=True)
class Capture:
    name: str
    raw: bytes
    vendor: int
    product: int
    manufacturer: str
    product_name: str
    serial: str


def _value(name: str, text: str) -> int:
    if name == "MaxPower":
        return int(text.removesuffix("mA")) // 2
    if text.startswith("0x"):
        return int(text, 16)
    if "." in text:  # bcd: "2.10" is 0x0210
        major, minor = text.split(".")
        return int(major, 16) << 8 | int(minor, 16)
    return int(text)


def _pack(fields: list[tuple[str, int]]) -> bytes:
    out = b""
    for name, value in fields:
        out += struct.pack("<H" if name.startswith(("w", "bcd", "id")) else "<B", value)
    return out


def load(name: str) -> Capture:
    lines = (DATA / f"{name}.lsusb").read_text().splitlines()
    pieces: list[bytes] = []  # descriptors in order
    fields: list[tuple[str, int]] | None = None
    strings: dict[str, str] = {}
    configs: list[int] = []  # indexes in pieces of configuration descriptors

    def end_block() -> None:
        nonlocal fields
        if fields is not None:
            packed = _pack(fields)
            assert packed[0] == len(packed), f"{name}: {len(packed)} bytes packed, bLength {packed[0]}"
            pieces.append(packed)
        fields = None

    for line in lines[1:]:
        header = line.strip()
        if header in _BLOCKS:
            end_block()
            fields = []
            if _BLOCKS[header] == 2:
                configs.append(len(pieces))
            continue
        raw = _RAW.match(line)
        if raw:
            end_block()
            data = bytes.fromhex(raw.group(1))
            assert data[0] == len(data), f"{name}: {len(data)} unrecognized bytes, bLength {data[0]}"
            pieces.append(data)
            continue
        field = _FIELD.match(line)
        if field and fields is not None:
            fname, value, rest = field.groups()
            fields.append((fname, _value(fname, value)))
            if fname in ("iManufacturer", "iProduct", "iSerial") and rest:
                strings[fname] = rest.strip()
    end_block()
    for n, start in enumerate(configs):
        end = configs[n + 1] if n + 1 < len(configs) else len(pieces)
        total = sum(len(p) for p in pieces[start:end])
        declared = struct.unpack_from("<H", pieces[start], 2)[0]
        assert total == declared, f"{name}: configuration {n} is {total} bytes, wTotalLength says {declared}"
    raw_bytes = b"".join(pieces)
    vendor, product = struct.unpack_from("<HH", raw_bytes, 8)
    return Capture(
        name,
        raw_bytes,
        vendor,
        product,
        strings.get("iManufacturer", ""),
        strings.get("iProduct", ""),
        strings.get("iSerial", ""),
    )
