"""USB/IP's post-import messages as a device's stream carries them (docs/usb.md, section 4): whole
messages out of bytes however they are cut, in both directions, checked against what was asked; and
every message a peer should never send refused with a reason, as soon as its header shows it."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.usb.lsusb import load
from wayray.usb.usbip import (
    HEADER,
    MAX_TRANSFER,
    NOT_ISO,
    SIZE,
    CmdSubmit,
    CmdUnlink,
    Direction,
    RetSubmit,
    RetUnlink,
    UsbipError,
    UsbipReader,
    encode,
)

GET_DEVICE_DESCRIPTOR = bytes.fromhex("8006000100001200")
DEVICE = load("yubikey").raw[:18]


def submit(seqnum: int, direction: Direction = Direction.IN, length: int = 18, **kw: object) -> CmdSubmit:
    values: dict = dict(devid=0x10002, direction=direction, ep=0, transfer_flags=0, buffer_length=length,
                        start_frame=0, packets=NOT_ISO, interval=0, setup=GET_DEVICE_DESCRIPTOR)  # fmt: skip
    values.update(kw)
    return CmdSubmit(seqnum, **values)  # type: ignore[arg-type]


def ret(seqnum: int, data: bytes = DEVICE, **kw: object) -> RetSubmit:
    values: dict = dict(status=0, actual_length=len(data), start_frame=0, packets=NOT_ISO, error_count=0,
                        data=data)  # fmt: skip
    values.update(kw)
    return RetSubmit(seqnum, **values)  # type: ignore[arg-type]


def test_the_fixed_part_is_48_bytes_as_the_kernel_writes_it() -> None:
    raw = encode(submit(7))
    assert len(raw) == SIZE == 48
    assert HEADER.unpack_from(raw) == (1, 7, 0x10002, 1, 0)
    assert raw[40:48] == GET_DEVICE_DESCRIPTOR
    assert struct.unpack_from(">i", raw, 24)[0] == 18  # transfer_buffer_length, big-endian


@settings(deadline=None, max_examples=50)
@given(cuts=st.lists(st.integers(1, 64), max_size=40))
def test_messages_come_whole_however_the_bytes_are_cut(cuts: list[int]) -> None:
    commands = [
        submit(1),
        submit(2, Direction.OUT, 5, ep=2, setup=bytes(8), data=b"hello"),
        submit(3, ep=1, length=96, packets=2, iso=((0, 48, 0, 0), (48, 48, 0, 0))),
        CmdUnlink(4, 0x10002, 2),
    ]
    stream = b"".join(encode(c) for c in commands)
    kiosk = UsbipReader(commands=True)
    got = []
    at = 0
    for n in cuts:
        got += kiosk.feed(stream[at : at + n])
        at += n
    got += kiosk.feed(stream[at:], end=True)
    assert got == commands

    server = UsbipReader(commands=False)
    for c in commands:
        server.sent(c)  # type: ignore[arg-type]
    returns = [ret(1), ret(2, b"", actual_length=5), ret(3, bytes(96), packets=2,
               iso=((0, 48, 48, 0), (48, 48, 48, 0))), RetUnlink(4, -104)]  # fmt: skip
    raw = b"".join(encode(r) for r in returns)
    assert server.feed(raw[:50]) == []
    assert server.feed(raw[50:], end=True) == returns


def _bad() -> list[tuple[str, bool, bytes, str]]:
    ok = encode(submit(1))
    return [
        ("a return sent to the kiosk", True, encode(ret(1)), "command 0x3 (seqnum 1) is not one vhci sends"),
        ("an unknown command", True, b"\x00\x00\x00\x09" + ok[4:], "command 0x9"),
        ("a direction of 2", True, ok[:12] + struct.pack(">I", 2) + ok[16:], "direction 2, endpoint 0"),
        ("endpoint 16", True, ok[:16] + struct.pack(">I", 16) + ok[20:], "endpoint 16 out of range"),
        ("an oversized buffer", True, ok[:24] + struct.pack(">i", MAX_TRANSFER + 1) + ok[28:],
         f"a transfer of {MAX_TRANSFER + 1} bytes"),
        ("a negative buffer", True, ok[:24] + struct.pack(">i", -1) + ok[28:], "a transfer of -1 bytes"),
        ("too many packets", True, ok[:32] + struct.pack(">I", 5000) + ok[36:], "5000 isochronous packets"),
        ("a seqnum twice", True, ok + ok, "CMD_SUBMIT 1: that seqnum is outstanding already"),
        ("a return for nothing", False, encode(ret(9)), "RET_SUBMIT 9: no such submit is outstanding"),
        ("more data than asked", False, encode(ret(1, bytes(19))), "19 bytes for a buffer of 18"),
        ("garbage", False, bytes(range(48)), "is not one the device sends"),
    ]  # fmt: skip


@pytest.mark.parametrize(("what", "commands", "data", "message"), _bad(), ids=[b[0] for b in _bad()])
def test_what_a_peer_should_never_send_is_refused_from_its_header(
    what: str, commands: bool, data: bytes, message: str
) -> None:
    reader = UsbipReader(commands=commands)
    if not commands:
        reader.sent(submit(1))
    with pytest.raises(UsbipError, match=message.replace("(", r"\(").replace(")", r"\)")):
        # The fixed part alone shows it (the data of an oversized transfer is never waited for).
        for n in range(0, len(data), 48):
            reader.feed(data[n : n + 48])


def test_a_stream_that_ends_inside_a_message_is_refused() -> None:
    reader = UsbipReader(commands=True)
    raw = encode(submit(1, Direction.OUT, 5, data=b"hello"))
    with pytest.raises(UsbipError, match="the stream ended inside a message"):
        reader.feed(raw[:-1], end=True)
