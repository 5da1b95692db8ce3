"""A Unix socket that a badge-reader program sends commands to.

The protocol is one command per line (UTF-8, ``\\n`` or ``\\r\\n``), one reply line per command::

    insert <token>      a badge went in            -> ok
    remove              the badge came out          -> ok
    anything else                                    -> error <why>   (and nothing changes)

Empty lines are ignored. A program may keep its connection open or connect per command
(``printf 'insert 0042\\n' | socat - UNIX-CONNECT:/run/wayray/badge.sock``); closing a connection
removes nothing. A line longer than :data:`MAX_LINE` bytes gets an error and ends that connection; the
source and other connections carry on.

The socket is created mode 0600 (or as given), so only wrclient's user (and root) can present badges.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import stat
from pathlib import Path

from wayray.client.tokens.events import MAX_TOKEN_BYTES, InvalidToken, TokenKind, validate_token
from wayray.client.tokens.source import TokenSource
from wayray.common.errors import WayRayError
from wayray.common.unixsock import bind_private_socket

log = logging.getLogger("wayray.client.tokens")

#: Longest command line accepted, in bytes (``insert`` + a space + the longest token + CR LF).
MAX_LINE = MAX_TOKEN_BYTES + 16


class Command(enum.StrEnum):
    INSERT = "insert"
    REMOVE = "remove"


class SocketTokenSource(TokenSource):
    """Listens on the Unix socket ``path`` for ``insert <token>`` / ``remove`` lines."""

    def __init__(self, path: Path, kind: TokenKind = TokenKind.BADGE, *, mode: int = 0o600) -> None:
        super().__init__(f"token socket {path}")
        self.path = Path(path)
        self.kind = kind
        self.mode = mode
        # Open connections. At close their transports are closed (so their handlers end on EOF) rather
        # than their tasks cancelled: asyncio 3.11's stream server logs a cancelled handler as an error.
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._bound_inode: int | None = None

    async def _produce(self) -> None:
        sock = self._bind()
        server: asyncio.Server | None = None
        try:
            server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)
            log.info("%s: listening", self.description)
            self._set_ready()
            await asyncio.get_running_loop().create_future()  # until closed
        finally:
            if server is not None:
                server.close()
            else:
                sock.close()
            for writer in list(self._clients.values()):
                writer.transport.abort()
            if self._clients:
                await asyncio.wait(list(self._clients))
            self._unlink_if_ours()

    # --- the socket file ----------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        directory = self.path.parent
        try:
            dst = directory.stat()
        except OSError as err:
            raise WayRayError(
                f"{directory}: cannot create the token socket there: {err.strerror}",
                hint="create the directory (systemd: RuntimeDirectory=), or fix the socket's path",
            ) from None
        if dst.st_mode & 0o002 and not dst.st_mode & stat.S_ISVTX:
            raise WayRayError(
                f"{directory}: every user may replace files here (mode {stat.S_IMODE(dst.st_mode):04o}), "
                "so the token socket would not be safe there",
                hint="use a directory that only wrclient's user can write",
            )
        sock = bind_private_socket(
            self.path,
            mode=self.mode,
            backlog=8,
            in_use="another program is listening on this socket",
            in_use_hint="is another wrclient running? Stop it, or choose another path",
            not_a_socket_hint="remove it, or choose another path for the token socket",
            too_long_hint="choose a shorter path for the token socket",
        )
        self._bound_inode = os.lstat(self.path).st_ino  # what _unlink_if_ours removes
        return sock

    def _unlink_if_ours(self) -> None:
        # Only remove the path if it is still the socket we bound (not one a successor bound since).
        if self._bound_inode is None:
            return
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self._bound_inode:
                os.unlink(self.path)

    # --- one connection -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return  # the program closed the connection (a last line without \n is dropped)
                except asyncio.LimitOverrunError:
                    writer.write(f"error line longer than {MAX_LINE} bytes\n".encode())
                    log.warning("%s: a client sent an over-long line; connection closed", self.description)
                    return
                reply = self._handle(raw)
                if reply is not None:
                    writer.write(reply.encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, BrokenPipeError):
            return
        finally:
            del self._clients[task]
            writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                await writer.wait_closed()

    def _handle(self, raw: bytes) -> str | None:
        """The reply to one line (None: no reply, for an empty line)."""
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            return self._refuse("the line is not UTF-8")
        if not line.strip():
            return None
        word, _, argument = line.partition(" ")
        if word == Command.INSERT:
            try:
                token = validate_token(argument)
            except InvalidToken as err:
                return self._refuse(f"insert: {err}")
            self._present(token, self.kind)
            return "ok"
        if word == Command.REMOVE:
            if argument.strip():
                return self._refuse("remove takes no argument")
            self._withdraw("reader program: removed")
            return "ok"
        # Never echo the line: it may well be a token sent without its command.
        return self._refuse("unknown command; expected 'insert <token>' or 'remove'")

    def _refuse(self, why: str) -> str:
        log.warning("%s: refused a command: %s", self.description, why)
        return f"error {why}"
