"""wrsrvd's admin socket: a small JSON protocol for operators' tools (``wradm``) and tests.

A Unix stream socket (mode 0600: wrsrvd's own user, and root), framed like wrsessd's IPC: a 32-bit
length in native byte order, then that many bytes of UTF-8 JSON, one object with a ``"type"``.
Requests are at most 64 KiB; answers at most 64 MiB (a screenshot). Requests:

- ``{"type": "status"}`` → ``{"type": "status", "name", "mode", "sessions_start" ("login" |
  "command"), "launcher" (null, or {"socket", "connected"}), "version", "pid", "listen", "port",
  "fingerprint", "sessions", "by_state": {state: n}, "viewers", "not_responding": [ids of sessions
  whose compositor answers nothing], "unlocking", "max_sessions", what viewers must present:
  "access_key" (true/false), "access_key_file" and "client_ca" (paths, or null),
  "policy": {"detached_timeout_s", "idle_timeout_s", "reauth_on_reattach"}, "config": null (standalone)
  or {"digests": {"restart", "reload"}}}`` (digests of the running configuration, by what a change of
  it needs: ``wradm apply`` compares them with the files to decide between reload and restart)
- ``{"type": "sessions"}`` → ``{"type": "sessions", "sessions": [{"id", "state", "token", "user",
  "viewer", "kiosk", "since", "launcher_session", "linked", "responding", "not_responding_since",
  "pid", "wayland_display", "output": [w, h, scale_120], "created_at", "changed_at"}, ...]}``
  (``token`` is the short digest form, never the token; ``kiosk`` the host of the viewer showing it;
  ``since`` when it entered its state; ``responding`` whether its compositor answers the link's pings,
  null when it is not on its link; ``not_responding_since`` since when it does not, or null)
- ``{"type": "kill", "session_id": ID}`` → ``{"type": "killed", "session_id"}``: ended (login mode:
  through wrsessd, which closes its PAM session); its kiosk is told and shows its idle screen
- ``{"type": "detach", "session_id": ID}`` → ``{"type": "detached", "session_id"}``: taken off its
  viewer (SessionEvent DETACHED, then Close NO_ERROR); it keeps running
- ``{"type": "screenshot", "session_id": ID, "include_cursor": false}`` → ``{"type": "screenshot",
  "png_base64": ...}`` (the compositor's own picture of its output)
- ``{"type": "reload"}`` → ``{"type": "reloaded", "needs_restart": [keys that changed but keep their
  running value until a restart], "diagnostics": [warnings]}``, or ``{"type": "reload_refused",
  "errors": ["file:line:col: error: ..."], "diagnostics": [...]}`` when the files have errors (the
  running configuration stays). Instance mode only; answered once the files are read and checked.

Any failure is answered ``{"type": "error", "description": ...}``; a malformed frame closes the
connection, and so does a request left unfinished for ``frame_timeout`` seconds (10; it is answered
with an error saying so) or a connection silent for ``idle_timeout`` seconds between requests (60;
closed without a word, as an answer nobody asked for would be taken for the next one's).
``wradm status|sessions|session kill|detach`` (``wayray/admin/``) are built on this.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wayray.common.unixsock import bind_private_socket

log = logging.getLogger("wayray.server.admin")

_LEN = struct.Struct("=I")
MAX_REQUEST = 64 * 1024
MAX_ANSWER = 64 * 1024 * 1024
#: A connection may stay silent this long between requests (wradm makes its requests at once).
IDLE_TIMEOUT = 60.0
#: A request whose first byte came must be complete within this long.
FRAME_TIMEOUT = 10.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class AdminError(Exception):
    pass


def encode(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    return _LEN.pack(len(data)) + data


class AdminServer:
    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        frame_timeout: float = FRAME_TIMEOUT,
    ) -> None:
        self.path = path
        self._handler = handler
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        sock = bind_private_socket(self.path)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
            self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    first = await asyncio.wait_for(reader.readexactly(1), self.idle_timeout)
                except (asyncio.IncompleteReadError, TimeoutError):
                    return  # closed by the client, or silent for too long
                try:
                    head = first + await asyncio.wait_for(
                        reader.readexactly(_LEN.size - 1), self.frame_timeout
                    )
                    (length,) = _LEN.unpack(head)
                    if length > MAX_REQUEST:
                        writer.write(
                            encode(
                                {"type": "error", "description": f"request of {length} bytes is too large"}
                            )
                        )
                        return
                    body = await asyncio.wait_for(reader.readexactly(length), self.frame_timeout)
                except TimeoutError:
                    writer.write(
                        encode(
                            {
                                "type": "error",
                                "description": "an unfinished request: the rest of it did not come "
                                f"within {self.frame_timeout:g} s",
                            }
                        )
                    )
                    return
                try:
                    request = json.loads(body.decode("utf-8"))
                    if not isinstance(request, dict) or not isinstance(request.get("type"), str):
                        raise ValueError("a request is a JSON object with a string 'type'")
                except (ValueError, RecursionError) as err:
                    why = "nested too deeply" if isinstance(err, RecursionError) else err
                    writer.write(encode({"type": "error", "description": f"bad request: {why}"}))
                    return
                try:
                    answer = await self._handler(request)
                except AdminError as err:
                    answer = {"type": "error", "description": str(err)}
                except Exception as err:
                    log.exception("admin request %s failed", request.get("type"))
                    answer = {"type": "error", "description": f"internal error: {type(err).__name__}"}
                writer.write(encode(answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


class AdminClient:
    """A blocking client (wradm, tests)."""

    def __init__(self, path: Path | str, *, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        self.sock.sendall(encode({"type": type_, **fields}))
        (length,) = _LEN.unpack(self._read(_LEN.size))
        if length > MAX_ANSWER:
            raise AdminError(f"answer of {length} bytes is too large")
        answer: dict[str, Any] = json.loads(self._read(length))
        if answer.get("type") == "error":
            raise AdminError(str(answer.get("description")))
        return answer

    def screenshot(self, session_id: str, *, include_cursor: bool = False) -> bytes:
        answer = self.request("screenshot", session_id=session_id, include_cursor=include_cursor)
        return base64.b64decode(answer["png_base64"])

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise AdminError("wrsrvd closed the admin connection")
            buf += chunk
        return bytes(buf)
