"""wrsrvd's admin socket: malformed requests get a reason and close only their connection."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from wayray.server.admin import AdminClient, AdminServer


def _exchange(path: Path, raw: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    (length,) = struct.unpack("=I", data[:4])
    answer: dict[str, Any] = json.loads(data[4 : 4 + length])
    return answer


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (struct.pack("=I", 5) + b"{nope", "bad request: Expecting property name"),
        (struct.pack("=I", 2) + b"[]", "a request is a JSON object"),
        (struct.pack("=I", 60_000) + b"[" * 60_000, "bad request: nested too deeply"),
        (struct.pack("=I", 10_000_000), "request of 10000000 bytes is too large"),
    ],
)
def test_a_malformed_request_is_answered_and_others_are_served(
    tmp_path: Path, raw: bytes, reason: str
) -> None:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"type": "status", "name": "test"}

    async def main() -> None:
        server = AdminServer(tmp_path / "admin.sock", handler)
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            with AdminClient(tmp_path / "admin.sock") as bystander:
                answer = await loop.run_in_executor(None, _exchange, tmp_path / "admin.sock", raw)
                assert answer["type"] == "error" and reason in answer["description"], answer
                status = await loop.run_in_executor(None, bystander.request, "status")
                assert status == {"type": "status", "name": "test"}
        finally:
            await server.close()

    asyncio.run(main())


def _held(path: Path, partial: int, silent: int) -> list[tuple[str, bytes]]:
    """Connections that send half a request or nothing; what each saw before wrsrvd closed it."""
    socks = []
    for i in range(partial + silent):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(path))
        if i < partial:
            s.sendall(struct.pack("=I", 100) + b'{"type"')
        socks.append(s)
    seen = []
    deadline = time.monotonic() + 10  # far beyond the server's timeouts: only a hang reaches it
    for s in socks:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
            seen.append(("closed", data))
        except TimeoutError:
            seen.append(("still open", data))
        s.close()
    return seen


def test_connections_that_send_half_a_request_or_nothing_are_closed(tmp_path: Path) -> None:
    """L2: 300 idle connections stayed open for ever. Now silence between requests ends a connection
    after idle_timeout, and a half-sent request after frame_timeout (with an error saying so), while
    a client that asks something now and then is served throughout."""

    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"type": "status", "name": "test"}

    async def main() -> None:
        path = tmp_path / "admin.sock"
        server = AdminServer(path, handler, idle_timeout=1.0, frame_timeout=0.5)
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            with AdminClient(path) as regular:
                held = loop.run_in_executor(None, _held, path, 5, 50)
                for _ in range(6):  # 3 s of requests, each well within the idle timeout
                    status = await loop.run_in_executor(None, regular.request, "status")
                    assert status["name"] == "test"
                    await asyncio.sleep(0.5)
                seen = await held
            assert [state for state, _ in seen] == ["closed"] * 55
            for _, data in seen[:5]:
                answer = json.loads(data[4:])
                assert "unfinished request" in answer["description"] and "0.5 s" in answer["description"]
            assert [data for _, data in seen[5:]] == [b""] * 50
        finally:
            await server.close()

    asyncio.run(main())
