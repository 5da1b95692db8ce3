"""wrsrvd's relay of one attached device (docs/usb.md, sections 4 and 5): returns from the kiosk go to
the host's USB/IP peer only when they answer a submit it sent; what breaks USB/IP from either side
ends that device (``on_fault`` with the reason) and nothing more goes either way."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path
from typing import Any

from wayray.usb.relay import DeviceRelay, HostEndpoint, SocketEndpoint
from wayray.usb.usbip import NOT_ISO, CmdSubmit, Direction, RetSubmit, encode

SETUP = bytes.fromhex("8006000100001200")
#: Seconds a step on real sockets may take on a loaded machine.
DEADLINE = 60


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


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = await asyncio.wait_for(loop.sock_recv(sock, n - len(data)), DEADLINE)
        assert more, f"closed after {len(data)} of {n} bytes"
        data += more
    return data


async def _until(check: Any, what: str) -> None:
    async with asyncio.timeout(DEADLINE):
        while not check():
            await asyncio.sleep(0.01)


def test_the_socket_endpoint_serves_one_driver_at_a_time_both_ways(tmp_path: Path) -> None:
    """`wrsrvd --usb-sockets`: a driver's submit reaches the kiosk's stream, the kiosk's return reaches
    the driver; a second driver meanwhile is turned away; when the first leaves, its stream to the kiosk
    ends and the next driver is served."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        to_kiosk: list[tuple[bytes, bool]] = []
        faults: list[str] = []
        relay = DeviceRelay(lambda data, end: to_kiosk.append((data, end)), faults.append)
        endpoint = SocketEndpoint(tmp_path / "dev.sock", relay)
        await endpoint.start()
        assert stat.S_IMODE((tmp_path / "dev.sock").stat().st_mode) == 0o600
        first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        first.setblocking(False)
        await loop.sock_connect(first, str(tmp_path / "dev.sock"))
        cmd = encode(CmdSubmit(7, 2, Direction.IN, 0, 0, 18, 0, NOT_ISO, 0, SETUP))
        await loop.sock_sendall(first, cmd)
        await _until(lambda: to_kiosk == [(cmd, False)], "the submit on the kiosk's stream")
        answer = encode(RetSubmit(7, 0, 18, 0, NOT_ISO, 0, bytes(range(18))))
        relay.from_kiosk(answer, False)
        assert await _recv_exactly(loop, first, len(answer)) == answer

        second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        second.setblocking(False)
        await loop.sock_connect(second, str(tmp_path / "dev.sock"))
        assert await asyncio.wait_for(loop.sock_recv(second, 64), DEADLINE) == b""  # turned away
        second.close()

        first.close()
        await _until(lambda: to_kiosk[-1] == (b"", True), "the stream's end")
        third = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        third.setblocking(False)
        await loop.sock_connect(third, str(tmp_path / "dev.sock"))
        cmd = encode(CmdSubmit(8, 2, Direction.IN, 0, 0, 18, 0, NOT_ISO, 0, SETUP))
        await loop.sock_sendall(third, cmd)
        await _until(lambda: to_kiosk[-1] == (cmd, False), "the next driver's submit")
        third.close()
        endpoint.close()
        assert faults == []

    asyncio.run(main())


def test_the_host_endpoint_relays_both_ways_and_says_when_vhci_lets_go() -> None:
    """The socket pair whose other end vhci_hcd holds: submits out, returns in, and the host closing its
    end gives the device up with that reason."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ours, vhci = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        vhci.setblocking(False)
        to_kiosk: list[tuple[bytes, bool]] = []
        faults: list[str] = []
        relay = DeviceRelay(lambda data, end: to_kiosk.append((data, end)), faults.append)
        endpoint = HostEndpoint(ours, relay)
        task = asyncio.create_task(endpoint.start())
        cmd = encode(CmdSubmit(1, 2, Direction.IN, 0, 0, 18, 0, NOT_ISO, 0, SETUP))
        await loop.sock_sendall(vhci, cmd)
        await _until(lambda: to_kiosk == [(cmd, False)], "the submit on the kiosk's stream")
        answer = encode(RetSubmit(1, 0, 18, 0, NOT_ISO, 0, bytes(18)))
        relay.from_kiosk(answer, False)
        assert await _recv_exactly(loop, vhci, len(answer)) == answer
        vhci.close()
        await asyncio.wait_for(task, DEADLINE)
        assert faults == ["vhci_hcd let go of the device (detached on the host, or it failed)"]
        endpoint.close()

    asyncio.run(main())
