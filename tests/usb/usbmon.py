"""A usbmon capture (pcap, LINKTYPE_USB_LINUX_MMAPPED) of a device's transfers, written from a list of
exchanges, for umockdev to replay to libusb (``Testbed.load_pcap``): what a capture of the device
with ``tcpdump -i usbmon1`` or Wireshark holds, for the transfers a test makes.

umockdev (0.17) matches a submitted URB with the recording's next submission by transfer type,
endpoint and length (for a control transfer, the data stage's length, as usbmon records it) and
completes it with the recorded completion's data and length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_USB_LINUX_MMAPPED = 220
CONTROL, BULK = 2, 3
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
# id, event, transfer type, endpoint, device, bus, setup flag, data flag, seconds, microseconds, status,
# urb length, data length, setup (8), interval, start frame, transfer flags, descriptors
_USBMON = struct.Struct("<QBBBBHBBqiiII8siiII")
assert _USBMON.size == 64


def bulk_data(size: int) -> bytes:
    """What a recorded bulk IN carries: bytes that tell a shifted, cut or repeated transfer apart."""
    return bytes((i * 7 + i // 256) % 256 for i in range(size))


@dataclass(frozen=True)
class Control:
    """A control transfer IN: the setup packet and the device's answer."""

    setup: bytes
    answer: bytes


@dataclass(frozen=True)
class BulkIn:
    """A bulk transfer IN on ``endpoint`` (0x81, ...) and the data the device sends."""

    endpoint: int
    answer: bytes


def write(path: Path, bus: int, device: int, exchanges: list[Control | BulkIn]) -> None:
    out = bytearray(_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_USB_LINUX_MMAPPED))
    t = 1_700_000_000.0
    for n, ex in enumerate(exchanges, 1):
        urb_id = 0xFFFF0000 + n
        packets = [
            (ord("S"), len(ex.answer), b"", 0),  # the submission: the setup packet in its header
            (ord("C"), len(ex.answer), ex.answer, 0),
        ]
        kind, endpoint, setup = (
            (CONTROL, 0x00, ex.setup) if isinstance(ex, Control) else (BULK, ex.endpoint, bytes(8))
        )
        for event, urb_len, data, status in packets:
            t += 0.001
            head = _USBMON.pack(urb_id, event, kind, endpoint, device, bus, 0 if event == ord("S") else 1,
                                0 if data else 1, int(t), int(t % 1 * 1e6), status, urb_len, len(data),
                                setup, 0, 0, 0, 0)  # fmt: skip
            record = head + data
            out += _RECORD.pack(int(t), int(t % 1 * 1e6), len(record), len(record)) + record
    path.write_bytes(bytes(out))
