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


def test_the_host_reads_only_whole_returns_however_the_kiosks_bytes_are_cut() -> None:
    """QUIC hands the kiosk's stream over packet by packet; the host's peer (vhci_hcd) gets each
    return whole, in one write, once it is checked: never the first part of a message whose end turns
    out wrong, and not one write per QUIC packet (the bulk figure in docs/benchmarks.md)."""
    relay, _to_kiosk, faults, writer = rig()
    writes: list[bytes] = []
    writer.write = writes.append  # type: ignore[method-assign]
    for seqnum in (1, 2):
        relay.from_host(encode(CmdSubmit(seqnum, 2, Direction.IN, 1, 0, 4096, 0, NOT_ISO, 0, bytes(8))))
    first = encode(RetSubmit(1, 0, 4096, 0, NOT_ISO, 0, bytes(range(256)) * 16))
    second = encode(RetSubmit(2, 0, 4096, 0, NOT_ISO, 0, bytes(4096)))
    stream = first + second
    cuts = [0, 1200, 1300, 2500, 4144, 4200, 5400, len(stream)]  # packets, as QUIC delivers them
    for a, b in zip(cuts, cuts[1:], strict=False):
        relay.from_kiosk(stream[a:b], False)
    assert writes == [first, second] and faults == []

    # A return whose stream ends inside it: the host never saw any of it.
    relay, _to_kiosk, faults, writer = rig()
    relay.from_host(encode(CmdSubmit(3, 2, Direction.IN, 1, 0, 4096, 0, NOT_ISO, 0, bytes(8))))
    relay.from_kiosk(encode(RetSubmit(3, 0, 4096, 0, NOT_ISO, 0, bytes(4096)))[:3000], False)
    relay.from_kiosk(b"", True)
    assert writer.data == b"" and faults and writer.closed
