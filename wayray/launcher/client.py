"""Clients of wrsessd's IPC: a blocking one (wrlogin, wradm, tests) and an asyncio one (wrsrvd).

Both speak :mod:`wayray.launcher.protocol`; they add nothing to it but the socket handling and a
helper that drives a whole login through a callback. Stdlib only.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from wayray.common import jsonframe
from wayray.launcher import protocol
from wayray.launcher.channel import Channel

#: Where a greeter finds the socket and its ticket (set by wrsessd in greeter sessions).
SOCKET_ENV = "WAYRAY_SESSD_SOCK"
TICKET_ENV = "WAYRAY_LOGIN_TICKET"
DEFAULT_SOCKET = "/run/wayray/wrsessd.sock"

#: Answers an auth_message: a string for prompts, None for info and error messages.
Answerer = Callable[[protocol.AuthMessage], "str | None"]


class LauncherError(Exception):
    """The daemon answered with ``error`` (``response`` holds it) or broke the protocol."""

    def __init__(self, message: str, response: protocol.Error | None = None) -> None:
        super().__init__(message)
        self.response = response


class LauncherClient:
    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout: float | None = 120.0) -> None:
        self.path = str(path or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)
        self.timeout = timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        sock.connect(self.path)
        self._chan = Channel(sock)

    def __enter__(self) -> LauncherClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._chan.close()

    def send(self, msg: protocol.Message) -> None:
        if not self._chan.send(msg.to_json()):
            raise LauncherError("wrsessd closed the connection")

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (for tests of malformed input)."""
        self._chan.sock.sendall(data)

    def recv(self, timeout: float | None = None) -> protocol.Message:
        obj = self._chan.recv(timeout if timeout is not None else self.timeout)
        if obj is None:
            raise LauncherError("wrsessd closed the connection")
        try:
            return protocol.parse_response(obj)
        except protocol.IpcProtocolError as err:
            raise LauncherError(f"bad response from wrsessd: {err}") from None

    def request(self, msg: protocol.Message) -> protocol.Message:
        """Send one request and return the first response (which may be an ``error``)."""
        self.send(msg)
        return self.recv()

    def call(self, msg: protocol.Message) -> protocol.Message:
        """Like :meth:`request`, but raise :class:`LauncherError` on an ``error`` response."""
        response = self.request(msg)
        if isinstance(response, protocol.Error):
            raise LauncherError(response.description, response)
        return response

    def login(self, create: protocol.CreateSession, answer: Answerer) -> protocol.Message:
        """Run a login to its end: ``success`` or ``error`` (returned, not raised)."""
        response = self.request(create)
        while isinstance(response, protocol.AuthMessage):
            reply = answer(response)
            response = self.request(protocol.PostAuthMessageResponse(response=reply))
        return response

    def list_sessions(self) -> tuple[protocol.SessionInfo, ...]:
        response = self.call(protocol.ListSessions())
        assert isinstance(response, protocol.SessionList)
        return response.sessions

    def kill_session(
        self, session_id: str, reason: protocol.EndReason = protocol.EndReason.OPERATOR
    ) -> None:
        self.call(protocol.KillSession(session_id=session_id, reason=reason))

    def events(self, timeout: float | None = None) -> protocol.Message:
        """After ``subscribe``: the next event."""
        return self.recv(timeout)


class AsyncLauncherClient:
    """asyncio client for wrsrvd: requests, and a subscription to session events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, path: str | os.PathLike[str] | None = None) -> AsyncLauncherClient:
        target = str(path or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)
        reader, writer = await asyncio.open_unix_connection(target, limit=protocol.MAX_MESSAGE_BYTES + 16)
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()

    async def recv(self) -> protocol.Message:
        try:
            body = await jsonframe.read_frame(self._reader, protocol.MAX_MESSAGE_BYTES)
            if body is None:
                raise LauncherError("wrsessd closed the connection")
            return protocol.parse_response(protocol.decode_body(body))
        except jsonframe.FrameCut:
            raise LauncherError("wrsessd closed the connection") from None
        except jsonframe.FrameTooLarge as err:
            raise LauncherError(f"oversized response ({err.length} bytes)") from None
        except protocol.IpcProtocolError as err:
            raise LauncherError(f"bad response from wrsessd: {err}") from None

    async def request(self, msg: protocol.Message) -> protocol.Message:
        self._writer.write(msg.encode())
        await self._writer.drain()
        return await self.recv()

    async def subscribe(
        self,
    ) -> tuple[tuple[protocol.SessionInfo, ...], AsyncIterator[protocol.SessionEvent]]:
        """A snapshot of the sessions and an iterator over the events that follow it."""
        snapshot = await self.request(protocol.Subscribe())
        if not isinstance(snapshot, protocol.SessionList):
            raise LauncherError(f"subscribe refused: {snapshot}")

        async def events() -> AsyncIterator[protocol.SessionEvent]:
            while True:
                event = await self.recv()
                if isinstance(event, protocol.SessionEvent):
                    yield event

        return snapshot.sessions, events()


def greeter_client(path: Path | None = None) -> tuple[LauncherClient, str]:
    """For wrlogin: a client on the socket named by the environment and this greeter's ticket."""
    ticket = os.environ.get(TICKET_ENV)
    if not ticket:
        raise LauncherError(f"{TICKET_ENV} is not set: wrlogin must run inside a greeter session")
    return LauncherClient(path), ticket
