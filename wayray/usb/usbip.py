"""USB/IP's messages after the import phase, sans-IO (docs/usb.md, section 4): what one forwarded
device's stream carries, byte for byte as the kernel's ``vhci_hcd`` and ``usbip-host`` write them.

Every field is big-endian. Each message starts with a 20-byte basic header (command, seqnum, devid,
direction, endpoint) followed by 28 bytes that depend on the command, then data:

- ``USBIP_CMD_SUBMIT`` (1, vhci → device): transfer flags, buffer length, start frame, number of
  isochronous packets, interval, the 8-byte setup packet; the buffer follows for an OUT transfer,
  then one 16-byte descriptor per isochronous packet.
- ``USBIP_RET_SUBMIT`` (3, device → vhci): status, actual length, start frame, number of packets,
  error count, 8 bytes of padding; the data follows for an IN transfer, then the packet descriptors.
- ``USBIP_CMD_UNLINK`` (2): the seqnum to cancel, 24 bytes of padding.
- ``USBIP_RET_UNLINK`` (4): status, 24 bytes of padding.

:class:`UsbipReader` takes one direction's bytes as they come and gives whole messages, refusing
(``UsbipError``) anything a peer should never send: an unknown or misdirected command, an endpoint or
direction out of range, a buffer over :data:`MAX_TRANSFER` (as soon as the header says so, before the
data arrives), a return for a seqnum not outstanding, more data than was asked for, a stream that ends
inside a message. The caller then closes that device's stream only.

Isochronous URBs (``number_of_packets`` neither 0 nor 0xFFFFFFFF) carry one descriptor per packet
(offset, length, actual_length, status). A submit's packets must lie inside its buffer and add up to
no more than it; a return must keep each packet's offset and length as the submit gave them, give no
packet more than its length, and its ``actual_length`` must be the sum of the packets' (the kernel's
``usbip_recv_iso`` and ``usbip_pad_iso`` rely on all of this). An IN return's data is what each packet
got, packed in packet order (:func:`pack_iso_in`); vhci_hcd moves each packet to its offset.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from wayray.common.errors import WayRayError

#: Largest transfer buffer in one URB this side accepts (the kernel's own largest are smaller).
MAX_TRANSFER = 1024 * 1024
#: Most isochronous packets in one URB.
MAX_ISO_PACKETS = 1024
#: Most submits outstanding on one device (a peer with more is broken or hostile).
MAX_OUTSTANDING = 1024
#: ``number_of_packets`` of a transfer that is not isochronous (older kernels send 0).
NOT_ISO = 0xFFFFFFFF

HEADER = struct.Struct(">IIIII")  # command, seqnum, devid, direction, ep
SUBMIT = struct.Struct(">IiiIi8s")  # transfer_flags, buffer_length, start_frame, packets, interval, setup
RET_SUBMIT = struct.Struct(">iiiIi8x")  # status, actual_length, start_frame, packets, error_count
UNLINK = struct.Struct(">I24x")  # unlink_seqnum
RET_UNLINK = struct.Struct(">i24x")  # status
ISO = struct.Struct(">IIIi")  # offset, length, actual_length, status (signed: -EXDEV, ...)
SIZE = HEADER.size + SUBMIT.size  # every message's fixed part: 48 bytes
assert (
    SIZE == HEADER.size + RET_SUBMIT.size == HEADER.size + UNLINK.size == HEADER.size + RET_UNLINK.size == 48
)


class Command(enum.IntEnum):
    CMD_SUBMIT = 0x0001
    CMD_UNLINK = 0x0002
    RET_SUBMIT = 0x0003
    RET_UNLINK = 0x0004


class Direction(enum.IntEnum):
    OUT = 0
    IN = 1


class UsbipError(WayRayError):
    """A USB/IP message a peer should never send; the device's stream is closed with this reason."""


@dataclass(frozen=True)
class CmdSubmit:
    seqnum: int
    devid: int
    direction: Direction
    ep: int
    transfer_flags: int
    buffer_length: int
    start_frame: int
    packets: int  # NOT_ISO unless isochronous
    interval: int
    setup: bytes
    data: bytes = b""  # an OUT transfer's buffer
    iso: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True)
class RetSubmit:
    seqnum: int
    status: int
    actual_length: int
    start_frame: int
    packets: int
    error_count: int
    data: bytes = b""  # an IN transfer's data
    iso: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True)
class CmdUnlink:
    seqnum: int
    devid: int
    unlink_seqnum: int


@dataclass(frozen=True)
class RetUnlink:
    seqnum: int
    status: int


Message = CmdSubmit | RetSubmit | CmdUnlink | RetUnlink
IsoPacket = tuple[int, int, int, int]  # offset, length, actual_length, status


def pack_iso_in(
    packets: list[tuple[int, int]], results: list[tuple[int, bytes]]
) -> tuple[bytes, tuple[IsoPacket, ...], int]:
    """An isochronous IN return's parts from the submit's packets (offset, length) and what each one
    got (status, data): the data packed in packet order (only the bytes received), the descriptors
    (offset and length as submitted, actual_length, status) and the error count."""
    descriptors = tuple((o, n, len(b), s) for (o, n), (s, b) in zip(packets, results, strict=True))
    return b"".join(b for _s, b in results), descriptors, sum(1 for s, _b in results if s)


def _iso(packets: int) -> int:
    return 0 if packets in (0, NOT_ISO) else packets


def encode(msg: Message, *, direction: Direction | None = None) -> bytes:
    """The bytes of one message. A return's header carries no direction (the kernel writes 0)."""
    if isinstance(msg, CmdSubmit):
        out = HEADER.pack(Command.CMD_SUBMIT, msg.seqnum, msg.devid, msg.direction, msg.ep)
        out += SUBMIT.pack(msg.transfer_flags, msg.buffer_length, msg.start_frame, msg.packets, msg.interval,
                           msg.setup)  # fmt: skip
        out += msg.data
    elif isinstance(msg, RetSubmit):
        out = HEADER.pack(Command.RET_SUBMIT, msg.seqnum, 0, 0, 0)
        out += RET_SUBMIT.pack(msg.status, msg.actual_length, msg.start_frame, msg.packets, msg.error_count)
        out += msg.data
    elif isinstance(msg, CmdUnlink):
        out = HEADER.pack(Command.CMD_UNLINK, msg.seqnum, msg.devid, 0, 0) + UNLINK.pack(msg.unlink_seqnum)
    else:
        out = HEADER.pack(Command.RET_UNLINK, msg.seqnum, 0, 0, 0) + RET_UNLINK.pack(msg.status)
    return out + b"".join(ISO.pack(*p) for p in getattr(msg, "iso", ()))


@dataclass
class _Pending:
    direction: Direction
    buffer_length: int
    packets: int
    iso: tuple[IsoPacket, ...] = ()


@dataclass
class UsbipReader:
    """One direction of a device's stream. ``commands``: this side reads what vhci sends (the kiosk);
    else it reads the device's returns (the server), and ``sent`` must be told of every submit that
    went the other way, so a return can be checked against what it answers."""

    commands: bool
    _buffer: bytearray = field(default_factory=bytearray)
    _outstanding: dict[int, _Pending] = field(default_factory=dict)
    _need: int | None = None  # bytes of the message being read, once its header is known

    @property
    def partial(self) -> int:
        """Bytes held of a message not complete yet (the last ones fed)."""
        return len(self._buffer)

    def sent(self, cmd: CmdSubmit | CmdUnlink) -> None:
        """The server relayed ``cmd`` to the device: a return for it may come."""
        if isinstance(cmd, CmdSubmit):
            self._outstanding[cmd.seqnum] = _Pending(
                cmd.direction, cmd.buffer_length, _iso(cmd.packets), cmd.iso
            )

    def feed(self, data: bytes, *, end: bool = False) -> list[Message]:
        """The messages ``data`` completes, in order; UsbipError at the first fault."""
        self._buffer += data
        out = []
        while True:
            message = self._next()
            if message is None:
                break
            out.append(message)
        if end and self._buffer:
            raise UsbipError(f"the stream ended inside a message ({len(self._buffer)} bytes of it)")
        return out

    def _next(self) -> Message | None:
        if len(self._buffer) < SIZE:
            return None
        if self._need is None:
            self._need = SIZE + self._check_header()
        if len(self._buffer) < self._need:
            return None
        raw = bytes(self._buffer[: self._need])
        del self._buffer[: self._need]
        self._need = None
        return self._decode(raw)

    def _check_header(self) -> int:
        """Check a message's fixed part; the bytes that follow it."""
        command, seqnum, _devid, direction, ep = HEADER.unpack_from(self._buffer)
        wanted = (
            (Command.CMD_SUBMIT, Command.CMD_UNLINK)
            if self.commands
            else (Command.RET_SUBMIT, Command.RET_UNLINK)
        )
        if command not in wanted:
            side = "vhci" if self.commands else "the device"
            raise UsbipError(f"command {command:#x} (seqnum {seqnum}) is not one {side} sends")
        if command == Command.CMD_SUBMIT:
            if direction not in (0, 1) or ep > 15:
                raise UsbipError(f"CMD_SUBMIT {seqnum}: direction {direction}, endpoint {ep} out of range")
            _flags, length, _sf, packets, _int, _setup = SUBMIT.unpack_from(self._buffer, HEADER.size)
            packets = _iso(packets)
            self._limits(f"CMD_SUBMIT {seqnum}", length, packets)
            if packets and ep == 0:
                raise UsbipError(f"CMD_SUBMIT {seqnum}: isochronous packets on endpoint 0")
            if seqnum in self._outstanding:
                raise UsbipError(f"CMD_SUBMIT {seqnum}: that seqnum is outstanding already")
            if len(self._outstanding) >= MAX_OUTSTANDING:
                raise UsbipError(f"more than {MAX_OUTSTANDING} submits outstanding")
            return (length if direction == Direction.OUT else 0) + packets * ISO.size
        if command == Command.RET_SUBMIT:
            pending = self._outstanding.get(seqnum)
            if pending is None:
                raise UsbipError(f"RET_SUBMIT {seqnum}: no such submit is outstanding")
            _status, actual, _sf, packets, _errors = RET_SUBMIT.unpack_from(self._buffer, HEADER.size)
            packets = _iso(packets)
            self._limits(f"RET_SUBMIT {seqnum}", actual, packets)
            if actual > pending.buffer_length:
                raise UsbipError(
                    f"RET_SUBMIT {seqnum}: {actual} bytes for a buffer of {pending.buffer_length}"
                )
            if packets != pending.packets:
                raise UsbipError(f"RET_SUBMIT {seqnum}: {packets} packets for a submit of {pending.packets}")
            return (actual if pending.direction == Direction.IN else 0) + packets * ISO.size
        return 0  # the unlinks: nothing follows

    @staticmethod
    def _limits(what: str, length: int, packets: int) -> None:
        if not 0 <= length <= MAX_TRANSFER:
            raise UsbipError(f"{what}: a transfer of {length} bytes (the limit is {MAX_TRANSFER})")
        if packets > MAX_ISO_PACKETS:
            raise UsbipError(f"{what}: {packets} isochronous packets (the limit is {MAX_ISO_PACKETS})")

    def _decode(self, raw: bytes) -> Message:
        command, seqnum, devid, direction, ep = HEADER.unpack_from(raw)
        rest = raw[SIZE:]
        if command == Command.CMD_SUBMIT:
            flags, length, start, packets, interval, setup = SUBMIT.unpack_from(raw, HEADER.size)
            n = _iso(packets)
            data_len = len(rest) - n * ISO.size
            iso = tuple(ISO.unpack_from(rest, data_len + i * ISO.size) for i in range(n))
            _check_submitted(f"CMD_SUBMIT {seqnum}", length, iso)
            self._outstanding[seqnum] = _Pending(Direction(direction), length, n, iso)
            how = Direction(direction)
            return CmdSubmit(
                seqnum, devid, how, ep, flags, length, start, packets, interval, setup, rest[:data_len], iso
            )
        if command == Command.RET_SUBMIT:
            status, actual, start, packets, errors = RET_SUBMIT.unpack_from(raw, HEADER.size)
            pending = self._outstanding.pop(seqnum)
            data_len = len(rest) - pending.packets * ISO.size
            iso = tuple(ISO.unpack_from(rest, data_len + i * ISO.size) for i in range(pending.packets))
            if pending.packets:
                _check_returned(f"RET_SUBMIT {seqnum}", actual, pending.iso, iso)
            return RetSubmit(seqnum, status, actual, start, packets, errors, rest[:data_len], iso)
        if command == Command.CMD_UNLINK:
            (target,) = UNLINK.unpack_from(raw, HEADER.size)
            return CmdUnlink(seqnum, devid, target)
        (status,) = RET_UNLINK.unpack_from(raw, HEADER.size)
        return RetUnlink(seqnum, status)

    def answered(self, seqnum: int) -> None:
        """The kiosk answered (or dropped) submit ``seqnum``: it is no longer outstanding."""
        self._outstanding.pop(seqnum, None)


def _check_submitted(what: str, buffer_length: int, iso: tuple[IsoPacket, ...]) -> None:
    """A submit's packets lie inside its buffer and add up to no more than it."""
    total = 0
    for i, (offset, length, _actual, _status) in enumerate(iso):
        if offset + length > buffer_length:
            raise UsbipError(
                f"{what}: packet {i} at offset {offset} of {length} bytes "
                f"ends past the buffer of {buffer_length}"
            )
        total += length
    if total > buffer_length:
        raise UsbipError(f"{what}: packets of {total} bytes in all for a buffer of {buffer_length}")


def _check_returned(
    what: str, actual_length: int, submitted: tuple[IsoPacket, ...], returned: tuple[IsoPacket, ...]
) -> None:
    """A return's packets are the submit's (offset, length), none got more than its length, and
    together they got ``actual_length`` bytes."""
    total = 0
    for i, ((offset, length, _a, _s), (r_offset, r_length, actual, _status)) in enumerate(
        zip(submitted, returned, strict=True)
    ):
        if (r_offset, r_length) != (offset, length):
            raise UsbipError(
                f"{what}: packet {i} at offset {r_offset} of {r_length} bytes, "
                f"the submit's was at {offset} of {length}"
            )
        if actual > length:
            raise UsbipError(f"{what}: packet {i} got {actual} bytes of {length}")
        total += actual
    if total != actual_length:
        raise UsbipError(f"{what}: the packets got {total} bytes, actual_length says {actual_length}")
