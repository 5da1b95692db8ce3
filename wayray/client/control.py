"""A headless kiosk's control socket: script commands, one per line, for tests and synthetic checks.

``wrclient --kiosk --headless --control-socket PATH`` listens on PATH (mode 0600: wrclient's user and
root). Each line is one command of the script language (``wayray.client.script``: ``type``, ``key``,
``click``, ``settle``, ``snapshot``, …) played against the session the kiosk shows now, or
``state``. One reply line per command:

- ``ok`` (``state``: ``ok`` and the kiosk's status as JSON, as in the state file);
- ``error <why>`` (a command that does not parse, no session shown, a wait that timed out).

While the kiosk is idle, ``snapshot PATH`` writes its idle screen ("Present your badge").

Commands run one at a time, in order. A line longer than 64 KiB ends that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from wayray.client.keyboard import Keyboard
from wayray.client.kiosk import Kiosk
from wayray.client.runner import ScriptRunner
from wayray.client.script import Op, parse
from wayray.common.errors import WayRayError
from wayray.common.files import write_atomic
from wayray.common.unixsock import bind_private_socket

log = logging.getLogger("wayray.client.control")

MAX_LINE = 64 * 1024


class ControlServer:
    def __init__(self, path: Path, kiosk: Kiosk, keyboard: Keyboard, *, timeout: float) -> None:
        self.path = path
        self.kiosk = kiosk
        self.keyboard = keyboard
        self.timeout = timeout
        self._server: asyncio.AbstractServer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        sock = bind_private_socket(self.path)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)
        log.info("control socket on %s", self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(b"error line too long\n")
                    return
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").strip()
                if not line or line.startswith("#"):
                    continue
                async with self._lock:
                    reply = await self._run(line)
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _run(self, line: str) -> str:
        if line == "state":
            return "ok " + json.dumps(self.kiosk.status.to_json())
        try:
            script = parse(line, "control")
        except WayRayError as err:
            return f"error {err.message}"
        viewer = self.kiosk.viewer
        if viewer is None:
            (command,) = script.commands if len(script.commands) == 1 else (None,)
            screen = getattr(self.kiosk.backend, "snapshot_png", None)
            if command is not None and command.op is Op.SNAPSHOT and command.path and callable(screen):
                try:
                    write_atomic(command.path, screen(), mode=None)  # the idle screen, as the person sees it
                except (OSError, ValueError) as err:
                    return f"error cannot write the snapshot: {err}"
                return "ok"
            return "error no session is shown (the kiosk is idle)"
        try:
            await ScriptRunner(script, viewer, self.keyboard, timeout=self.timeout).run()
        except WayRayError as err:
            return f"error {err.message}"
        return "ok"
