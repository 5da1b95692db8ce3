"""wrsrvd's admin socket: malformed requests get a reason and close only their connection; wradm reads
every answer as it was given; the reference in docs/running.md is the code's."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, script
from wayray.server import admin_protocol
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


STATUS = {
    "type": "status", "name": "lab", "mode": "instance", "sessions_start": "login",
    "launcher": {"socket": "/run/wayray/wrsessd.sock", "connected": True}, "version": "0.1.0", "pid": 4242,
    "listen": ["::"], "port": 7800, "fingerprint": "sha256:ab12", "sessions": 3,
    "by_state": {"active": 1, "detached": 1, "greeter": 1}, "viewers": 2, "access_key": True,
    "access_key_file": "/var/lib/wayray/lab/access.key", "client_ca": None, "not_responding": ["c0de"],
    "unlocking": 0, "max_sessions": 500, "draining": True,
    "pool": {"name": "lab", "member": "6f1c0a9e3b2d4c15", "announced_as": "lab on srv1", "announcements": 3,
             "shares_directory": True, "key_refused": None,
             "refused_members": ["lab on srv3 (9d0e5f1a2b3c4d5e)"]},
    "policy": {"detached_timeout_s": 86400.0, "idle_timeout_s": None, "reauth_on_reattach": False},
    "config": {"digests": {"restart": "d1", "reload": "d2"}},
}  # fmt: skip
SESSIONS = {
    "type": "sessions",
    "sessions": [
        {"id": "3f1c0a9e", "state": "active", "token": "badge:0123abcd", "user": "alice", "viewer": "v1",
         "kiosk": "10.0.0.7", "since": 1700000000.25, "launcher_session": "a1b2c3", "linked": True,
         "responding": True, "not_responding_since": None, "pid": 4343, "wayland_display": "wayland-wr-a1",
         "output": [1920, 1080, 120], "created_at": 1699999999.5, "changed_at": 1700000000,
         "sent_bytes": 48_213_000, "received_bytes": 91_204, "cpu_s": 754.25, "memory_bytes": 47_395_000,
         "measured_by": "cgroup"},
        {"id": "c0de", "state": "greeter", "token": "badge:fedc", "user": None, "viewer": None,
         "kiosk": None, "since": 1700000001.0, "launcher_session": None, "linked": False, "responding": None,
         "not_responding_since": None, "pid": None, "wayland_display": None, "output": None,
         "created_at": 1700000001.0, "changed_at": 1700000001.0, "sent_bytes": None, "received_bytes": None,
         "cpu_s": None, "memory_bytes": None, "measured_by": None},
    ],
}  # fmt: skip
ANSWERS = {
    "status": STATUS,
    "sessions": SESSIONS,
    "kill": {"type": "killed", "session_id": "3f1c0a9e"},
    "reload": {"type": "reloaded", "needs_restart": ["port"], "diagnostics": ["host.toml:3:1: warning: x"]},
}


def test_wradm_reads_every_field_and_prints_the_answers_as_wrsrvd_gave_them(tmp_path: Path) -> None:
    asked: list[dict[str, Any]] = []

    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        return ANSWERS[request["type"]]

    def wradm(*args: str) -> str:
        res = subprocess.run(
            [script("wradm"), *args, "--admin-socket", str(tmp_path / "admin.sock")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    async def main() -> None:
        server = AdminServer(tmp_path / "admin.sock", handler)
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(None, wradm, "status", "--json")
            assert out == json.dumps(STATUS, indent=1) + "\n"
            out = await loop.run_in_executor(None, wradm, "sessions", "--json")
            assert out == json.dumps(SESSIONS["sessions"], indent=1) + "\n"
            out = await loop.run_in_executor(None, wradm, "session", "kill", "3f1c0a9e", "--json")
            assert json.loads(out) == ANSWERS["kill"]
            out = await loop.run_in_executor(None, wradm, "reload", "--json")
            assert json.loads(out) == ANSWERS["reload"]
            text = await loop.run_in_executor(None, wradm, "status")
            assert "wrsrvd lab (instance), version 0.1.0, pid 4242" in text
            assert "1 NOT RESPONDING: c0de" in text
            assert "login screens through wrsessd (/run/wayray/wrsessd.sock: connected)" in text
            assert "the access key in /var/lib/wayray/lab/access.key, then a login" in text
            assert "detached timeout 24 h, idle logout never" in text
            assert "pool lab, member 6f1c0a9e3b2d4c15 (shares the session directory); DRAINED" in text
            rows = (await loop.run_in_executor(None, wradm, "sessions")).splitlines()
            assert rows[1].split()[:4] == ["3f1c0a9e", "alice", "active", "10.0.0.7"]
            assert rows[1].split()[-5:] == ["12:34", "45.2", "MiB", "46.0", "MiB"]  # CPU, MEMORY, SENT
            assert rows[2].split()[-3:] == ["-", "-", "-"]
            assert rows[2].split()[:5] == ["c0de", "(login", "screen)", "greeter", "-"]
        finally:
            await server.close()
        assert asked == [
            {"type": "status"},
            {"type": "sessions", "usage": True},
            {"type": "kill", "session_id": "3f1c0a9e"},
            {"type": "reload"},
            {"type": "status"},
            {"type": "sessions", "usage": True},
        ]

    asyncio.run(main())


def test_the_reference_in_docs_running_md_matches_the_code() -> None:
    doc = (REPO / "docs" / "running.md").read_text()
    begin = "<!-- BEGIN GENERATED: python -m wayray.server.admin_protocol -->\n"
    start = doc.index(begin) + len(begin)
    generated = doc[start : doc.index("<!-- END GENERATED -->", start)]
    assert generated == admin_protocol.markdown_reference(), (
        "regenerate it: python -m wayray.server.admin_protocol"
    )
