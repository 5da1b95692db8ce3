"""wrsrvd's admin socket: malformed requests get a reason and close only their connection."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
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
