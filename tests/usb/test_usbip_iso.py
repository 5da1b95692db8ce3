"""Isochronous URBs on a device's stream (docs/usb.md, section 4), as the kernel's USB/IP protocol
lays them out (Documentation/usb/usbip_protocol.rst): ``number_of_packets``, ``start_frame`` and
``interval`` in the submit's fixed part, then, after any transfer buffer, one 16-byte descriptor per
packet (offset, length, actual_length, status; big-endian). A return carries, for an IN transfer,
only the bytes each packet really got, packed in packet order (``actual_length`` in all, the sum of
the packets'), then the descriptors. The byte strings below are written out field by field from that
document, not produced by the code under test. What vhci_hcd or a kiosk could send that the kernel
would trip over (descriptors outside the buffer, lengths that do not add up) is refused: the reader's
UsbipError, on which the device's stream alone is closed (tests/usb/test_relay.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayray.usb.relay import DeviceRelay
from wayray.usb.usbip import (
    MAX_ISO_PACKETS,
    CmdSubmit,
    Direction,
    RetSubmit,
    UsbipError,
    UsbipReader,
    encode,
    pack_iso_in,
)


def be32(n: int) -> str:
    return (n & 0xFFFFFFFF).to_bytes(4, "big").hex()


# A headset's microphone: 3 packets of up to 192 bytes on endpoint 0x81 (IN), as vhci_hcd writes the
# CMD_SUBMIT: 20-byte basic header, 28 bytes of cmd_submit, no buffer (IN), 3 descriptors.
ISO_IN_SUBMIT = bytes.fromhex(
    be32(1) + be32(0x21) + be32(0x10003) + be32(1) + be32(1)  # command, seqnum, devid, direction IN, ep 1
    + be32(0x0002)  # transfer_flags: URB_ISO_ASAP
    + be32(576)  # transfer_buffer_length
    + be32(17)  # start_frame
    + be32(3)  # number_of_packets
    + be32(1)  # interval
    + "00" * 8  # setup: unused for isochronous
    + be32(0) + be32(192) + be32(0) + be32(0)  # packet 0: offset, length, actual_length, status
    + be32(192) + be32(192) + be32(0) + be32(0)
    + be32(384) + be32(192) + be32(0) + be32(0)
)  # fmt: skip

# The device's RET_SUBMIT for it: packet 0 got 192 bytes, packet 1 100, packet 2 none (-EXDEV: missed
# its frame). The data is the 292 bytes received, packed, then the descriptors with the offsets and
# lengths of the submit.
IN_DATA = [bytes([0xA0]) * 192, bytes([0xB1]) * 100, b""]
ISO_IN_RETURN = bytes.fromhex(
    be32(3) + be32(0x21) + be32(0) + be32(0) + be32(0)  # command, seqnum; devid, direction, ep: 0
    + be32(0)  # status
    + be32(292)  # actual_length: the sum of the packets'
    + be32(17)  # start_frame
    + be32(3)  # number_of_packets
    + be32(1)  # error_count
    + "00" * 8  # padding
    + "a0" * 192 + "b1" * 100
    + be32(0) + be32(192) + be32(192) + be32(0)
    + be32(192) + be32(192) + be32(100) + be32(0)
    + be32(384) + be32(192) + be32(0) + be32(-18)  # -EXDEV
)  # fmt: skip

# A headset's speaker: 2 packets of 96 bytes OUT on endpoint 2; the buffer precedes the descriptors.
OUT_DATA = bytes(range(96)) + bytes(range(96, 192))
ISO_OUT_SUBMIT = bytes.fromhex(
    be32(1) + be32(0x22) + be32(0x10003) + be32(0) + be32(2)
    + be32(0x0002) + be32(192) + be32(0) + be32(2) + be32(1) + "00" * 8
    + OUT_DATA.hex()
    + be32(0) + be32(96) + be32(0) + be32(0)
    + be32(96) + be32(96) + be32(0) + be32(0)
)  # fmt: skip
ISO_OUT_RETURN = bytes.fromhex(
    be32(3) + be32(0x22) + be32(0) + be32(0) + be32(0)
    + be32(0) + be32(192) + be32(0) + be32(2) + be32(0) + "00" * 8  # no data: OUT
    + be32(0) + be32(96) + be32(96) + be32(0)
    + be32(96) + be32(96) + be32(96) + be32(0)
)  # fmt: skip

IN_PACKETS = ((0, 192, 0, 0), (192, 192, 0, 0), (384, 192, 0, 0))
IN_CMD = CmdSubmit(0x21, 0x10003, Direction.IN, 1, 2, 576, 17, 3, 1, bytes(8), b"", IN_PACKETS)
IN_RET = RetSubmit(0x21, 0, 292, 17, 3, 1, b"\xa0" * 192 + b"\xb1" * 100,
                   ((0, 192, 192, 0), (192, 192, 100, 0), (384, 192, 0, -18)))  # fmt: skip
OUT_CMD = CmdSubmit(0x22, 0x10003, Direction.OUT, 2, 2, 192, 0, 2, 1, bytes(8), OUT_DATA,
                    ((0, 96, 0, 0), (96, 96, 0, 0)))  # fmt: skip
OUT_RET = RetSubmit(0x22, 0, 192, 0, 2, 0, b"", ((0, 96, 96, 0), (96, 96, 96, 0)))


def test_an_isochronous_in_submit_and_its_return_are_the_documented_bytes() -> None:
    assert encode(IN_CMD) == ISO_IN_SUBMIT
    assert UsbipReader(commands=True).feed(ISO_IN_SUBMIT, end=True) == [IN_CMD]
    assert encode(IN_RET) == ISO_IN_RETURN
    server = UsbipReader(commands=False)
    server.sent(IN_CMD)
    assert server.feed(ISO_IN_RETURN, end=True) == [IN_RET]


def test_an_isochronous_out_submit_and_its_return_are_the_documented_bytes() -> None:
    assert encode(OUT_CMD) == ISO_OUT_SUBMIT
    assert UsbipReader(commands=True).feed(ISO_OUT_SUBMIT, end=True) == [OUT_CMD]
    assert encode(OUT_RET) == ISO_OUT_RETURN
    server = UsbipReader(commands=False)
    server.sent(OUT_CMD)
    assert server.feed(ISO_OUT_RETURN, end=True) == [OUT_RET]


def test_an_in_return_is_packed_in_packet_order_with_only_what_each_packet_got() -> None:
    packets = [(0, 192), (192, 192), (384, 192)]
    results = [(0, IN_DATA[0]), (0, IN_DATA[1]), (-18, b"")]
    assert pack_iso_in(packets, results) == (
        b"\xa0" * 192 + b"\xb1" * 100,
        ((0, 192, 192, 0), (192, 192, 100, 0), (384, 192, 0, -18)),
        1,
    )


@st.composite
def iso_urbs(draw: st.DrawFn) -> tuple[CmdSubmit, RetSubmit]:
    direction = draw(st.sampled_from(Direction))
    lengths = draw(st.lists(st.integers(0, 1024), min_size=1, max_size=40))
    gaps = draw(st.lists(st.integers(0, 8), min_size=len(lengths), max_size=len(lengths)))
    packets, at = [], 0
    for length, gap in zip(lengths, gaps, strict=True):
        at += gap
        packets.append((at, length))
        at += length
    buffer_length = at + draw(st.integers(0, 16))
    outcomes = [draw(st.tuples(st.integers(0, length), st.sampled_from([0, 0, -18, -71, -75])))
                for _o, length in packets]  # fmt: skip
    start, interval = draw(st.integers(0, 2**31 - 1)), draw(st.integers(1, 16))
    data = (
        draw(st.binary(min_size=buffer_length, max_size=buffer_length))
        if direction == Direction.OUT
        else b""
    )
    cmd = CmdSubmit(draw(st.integers(0, 2**32 - 1)), 0x10003, direction, draw(st.integers(1, 15)), 2,
                    buffer_length, start, len(packets), interval, bytes(8), data,
                    tuple((o, n, 0, 0) for o, n in packets))  # fmt: skip
    got = [(status, bytes([i % 251]) * actual) for i, (actual, status) in enumerate(outcomes)]
    if direction == Direction.IN:
        packed, descriptors, errors = pack_iso_in(packets, got)
    else:
        descriptors = tuple((o, n, len(b), s) for (o, n), (s, b) in zip(packets, got, strict=True))
        packed, errors = b"", sum(1 for s, _b in got if s)
    total = sum(d[2] for d in descriptors)
    return cmd, RetSubmit(cmd.seqnum, 0, total, start, len(packets), errors, packed, descriptors)


@settings(deadline=None, max_examples=200)
@given(urb=iso_urbs(), cut=st.integers(1, 97))
def test_isochronous_urbs_round_trip_however_the_bytes_are_cut(
    urb: tuple[CmdSubmit, RetSubmit], cut: int
) -> None:
    cmd, ret = urb
    for message, reader in ((cmd, UsbipReader(commands=True)), (ret, UsbipReader(commands=False))):
        if isinstance(message, RetSubmit):
            reader.sent(cmd)
        raw = encode(message)
        got = []
        for at in range(0, len(raw), cut):
            got += reader.feed(raw[at : at + cut])
        assert reader.feed(b"", end=True) == []
        assert got == [message]


def _with(raw: bytes, at: int, value: int) -> bytes:
    return raw[:at] + (value & 0xFFFFFFFF).to_bytes(4, "big") + raw[at + 4 :]


DESC_IN = 48  # an IN submit's first descriptor
DESC_RET = 48 + 292  # the IN return's first descriptor


def _bad() -> list[tuple[str, bool, bytes, str]]:
    overlapping = _with(_with(ISO_IN_SUBMIT, DESC_IN + 16, 0), DESC_IN + 20, 576)
    short = _with(ISO_IN_RETURN, 24, 291)[: 48 + 291] + ISO_IN_RETURN[48 + 292 :]
    return [
        ("a packet past the buffer's end", True, _with(ISO_IN_SUBMIT, DESC_IN + 32, 400),
         "packet 2 at offset 400 of 192 bytes ends past the buffer of 576"),
        ("an offset far out of range", True, _with(ISO_IN_SUBMIT, DESC_IN, 0xFFFFFFF0),
         "packet 0 at offset 4294967280 of 192 bytes ends past the buffer of 576"),
        ("packets longer than the buffer in all", True, overlapping,
         "packets of 960 bytes in all for a buffer of 576"),
        ("isochronous packets on endpoint 0", True, _with(ISO_IN_SUBMIT, 16, 0),
         "isochronous packets on endpoint 0"),
        ("a packet given more than its length", False, _with(ISO_IN_RETURN, DESC_RET + 24, 193),
         "packet 1 got 193 bytes of 192"),
        ("packets that do not add up to actual_length", False, short,
         "the packets got 292 bytes, actual_length says 291"),
        ("a packet moved from where the submit put it", False, _with(ISO_IN_RETURN, DESC_RET + 16, 200),
         "packet 1 at offset 200 of 192 bytes, the submit's was at 192 of 192"),
        ("a return with too many packets", False, _with(ISO_IN_RETURN, 32, 4),
         "4 packets for a submit of 3"),
        ("more packets than the limit", True, _with(ISO_IN_SUBMIT, 32, MAX_ISO_PACKETS + 1),
         f"{MAX_ISO_PACKETS + 1} isochronous packets"),
    ]  # fmt: skip


@pytest.mark.parametrize(("what", "commands", "data", "message"), _bad(), ids=[b[0] for b in _bad()])
def test_isochronous_descriptors_the_kernel_would_trip_over_are_refused(
    what: str, commands: bool, data: bytes, message: str
) -> None:
    reader = UsbipReader(commands=commands)
    if not commands:
        reader.sent(IN_CMD)
    with pytest.raises(UsbipError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reader.feed(data, end=True)


def test_a_kiosk_return_with_bad_descriptors_ends_only_that_device_and_never_reaches_the_host() -> None:
    to_kiosk: list[tuple[bytes, bool]] = []
    faults: list[str] = []
    relay = DeviceRelay(lambda data, end: to_kiosk.append((data, end)), faults.append)
    written: list[bytes] = []

    class Writer:
        def write(self, data: bytes) -> None:
            written.append(data)

        def close(self) -> None:
            written.append(b"<closed>")

    relay.writer = Writer()  # type: ignore[assignment]
    relay.from_host(ISO_IN_SUBMIT)
    assert to_kiosk == [(ISO_IN_SUBMIT, False)]
    relay.from_kiosk(_with(ISO_IN_RETURN, DESC_RET + 24, 193), False)
    assert faults == [
        "the kiosk sent what a USB/IP device should not: RET_SUBMIT 33: packet 1 got 193 bytes of 192"
    ]
    assert written == [b"<closed>"]  # the host's peer got nothing of it, and its socket is closed
    assert relay.closed
