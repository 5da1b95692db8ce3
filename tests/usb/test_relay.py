"""wrsrvd's relay of one attached device (docs/usb.md, sections 4 and 5): returns from the kiosk go to
the host's USB/IP peer only when they answer a submit it sent; what breaks USB/IP from either side
ends that device (``on_fault`` with the reason) and nothing more goes either way."""

from __future__ import annotations

from typing import Any

from wayray.usb.relay import DeviceRelay
from wayray.usb.usbip import NOT_ISO, CmdSubmit, Direction, RetSubmit, encode

SETUP = bytes.fromhex("8006000100001200")


class Writer:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


def rig() -> tuple[DeviceRelay, list[Any], list[str], Writer]:
    to_kiosk: list[Any] = []
    faults: list[str] = []
    relay = DeviceRelay(lambda data, end: to_kiosk.append((data, end)), faults.append)
    writer = Writer()
    relay.writer = writer  # type: ignore[assignment]
    return relay, to_kiosk, faults, writer


def test_a_return_reaches_the_host_only_for_a_submit_it_sent() -> None:
    relay, to_kiosk, faults, writer = rig()
    cmd = encode(CmdSubmit(1, 2, Direction.IN, 0, 0, 18, 0, NOT_ISO, 0, SETUP))
    relay.from_host(cmd)
    assert to_kiosk == [(cmd, False)]
    answer = encode(RetSubmit(1, 0, 18, 0, NOT_ISO, 0, bytes(18)))
    relay.from_kiosk(answer, False)
    assert writer.data == answer and faults == []
    # The same answer again: its submit is answered already. The device is given up.
    relay.from_kiosk(answer, False)
    assert faults == [
        "the kiosk sent what a USB/IP device should not: RET_SUBMIT 1: no such submit is outstanding"
    ]
    assert writer.closed and relay.closed
    relay.from_host(cmd)  # nothing more goes either way
    assert to_kiosk == [(cmd, False)]


def test_oversized_and_garbage_from_either_side_end_the_device() -> None:
    relay, to_kiosk, faults, _writer = rig()
    relay.from_host(bytes(range(48)))
    assert to_kiosk == [] and faults[0].startswith("the host's USB/IP peer sent what it should not: command")

    relay, to_kiosk, faults, writer = rig()
    relay.from_host(encode(CmdSubmit(1, 2, Direction.IN, 1, 0, 512, 0, NOT_ISO, 0, bytes(8))))
    oversized = encode(RetSubmit(1, 0, 513, 0, NOT_ISO, 0, bytes(513)))
    relay.from_kiosk(oversized[:48], False)  # refused from the header, before the data comes
    assert faults == [
        "the kiosk sent what a USB/IP device should not: RET_SUBMIT 1: 513 bytes for a buffer of 512"
    ]
    assert writer.data == b""
