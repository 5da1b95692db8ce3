"""wrsrvd's admin socket: a small JSON protocol for operators' tools (``wradm``) and tests.

A Unix stream socket (mode 0600: wrsrvd's own user, and root). Its requests and answers are declared
in :mod:`wayray.server.admin_protocol` (the reference in docs/running.md is generated from it): ``status``,
``sessions``, ``kill``, ``detach``, ``screenshot``, ``reload``. This module has the server, which
hands each request to wrsrvd's handler, and the client (wradm, tests).

Any failure is answered ``{"type": "error", "description": ...}``; a malformed frame closes the
connection, and so does a request left unfinished for ``frame_timeout`` seconds (10; it is answered
with an error saying so) or a connection silent for ``idle_timeout`` seconds between requests (60;
closed without a word, as an answer nobody asked for would be taken for the next one's).
``wradm status|sessions|session kill|detach|reload`` (``wayray/admin/``) are built on this.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from wayray.common import jsonframe
from wayray.common.schema import Message
from wayray.common.unixsock import bind_private_socket
from wayray.server import admin_protocol as ap
from wayray.server.admin_protocol import MAX_ANSWER, MAX_REQUEST, AdminError

log = logging.getLogger("wayray.server.admin")

__all__ = ["MAX_ANSWER", "MAX_REQUEST", "AdminClient", "AdminError", "AdminServer", "encode"]
#: A connection may stay silent this long between requests (wradm makes its requests at once).
IDLE_TIMEOUT = 60.0
#: A request whose first byte came must be complete within this long.
FRAME_TIMEOUT = 10.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def encode(obj: dict[str, Any]) -> bytes:
    """One frame of the admin socket holding ``obj``."""
    return jsonframe.encode(obj, ensure_ascii=True)


def _error(description: str) -> bytes:
    return ap.Error(description=description).encode()


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
                    body = await jsonframe.read_frame(
                        reader, MAX_REQUEST, idle_timeout=self.idle_timeout, frame_timeout=self.frame_timeout
                    )
                except (jsonframe.IdleTimeout, jsonframe.FrameCut):
                    return  # silent for too long, or closed in the middle of a request
                except jsonframe.FrameTooLarge as err:
                    writer.write(_error(f"request of {err.length} bytes is too large"))
                    return
                except jsonframe.FrameUnfinished:
                    writer.write(
                        _error(
                            "an unfinished request: the rest of it did not come "
                            f"within {self.frame_timeout:g} s"
                        )
                    )
                    return
                if body is None:
                    return  # closed by the client
                try:
                    request = json.loads(body.decode("utf-8"))
                    if not isinstance(request, dict) or not isinstance(request.get("type"), str):
                        raise ValueError("a request is a JSON object with a string 'type'")
                except (ValueError, RecursionError) as err:
                    why = "nested too deeply" if isinstance(err, RecursionError) else err
                    writer.write(_error(f"bad request: {why}"))
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
        except ConnectionError:
            return
        finally:
            writer.close()


A = TypeVar("A", bound=Message)


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
        """One request as plain JSON (tests; wradm asks with :meth:`ask`); an ``error`` answer is
        raised as :class:`AdminError`."""
        answer = self._exchange(encode({"type": type_, **fields}))
        if answer.get("type") == "error":
            raise AdminError(str(answer.get("description")))
        return answer

    def ask(self, request: Message, expect: type[A]) -> A:
        """One request; its answer, which must be an ``expect`` (an ``error`` is an AdminError)."""
        answer = ap.parse_answer(self._exchange(request.encode()))
        if not isinstance(answer, expect):
            raise AdminError(f"wrsrvd answered {request.type} with {answer.type}")
        return answer

    def screenshot(self, session_id: str, *, include_cursor: bool = False) -> bytes:
        answer = self.ask(
            ap.Screenshot(session_id=session_id, include_cursor=include_cursor), ap.ScreenshotAnswer
        )
        return base64.b64decode(answer.png_base64)

    def _exchange(self, frame: bytes) -> dict[str, Any]:
        self.sock.sendall(frame)
        length = jsonframe.header_length(self._read(jsonframe.HEADER_SIZE))
        if length > MAX_ANSWER:
            raise AdminError(f"answer of {length} bytes is too large")
        answer: dict[str, Any] = json.loads(self._read(length))
        return answer

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise AdminError("wrsrvd closed the admin connection")
            buf += chunk
        return bytes(buf)
