"""A session compositor per test, with real clients started inside it.

Tests are ``async def``; conftest runs them on a fresh event loop. ``running_session`` starts the
compositor in-process (private 0700 XDG_RUNTIME_DIR, LANG=C.UTF-8), and ``Session.spawn`` starts a
client in its own process group, so teardown can stop it and everything it forked.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

from wayray.compositor.scene import BACKGROUND
from wayray.compositor.session import SessionCompositor, WindowInfo

DEADLINE = 60.0  # generous: two cores shared with other helpers' suites


class Client:
    def __init__(self, proc: asyncio.subprocess.Process, name: str, log: Path) -> None:
        self.proc = proc
        self.name = name
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Session:
    def __init__(self, comp: SessionCompositor, workdir: Path) -> None:
        self.comp = comp
        self.workdir = workdir
        self.clients: list[Client] = []

    async def spawn(self, *cmd: str, env: dict[str, str] | None = None, name: str | None = None) -> Client:
        full_env = self.comp.client_env()
        full_env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", HOME=str(self.workdir), NO_AT_BRIDGE="1")
        full_env.pop("WAYLAND_DEBUG", None)
        if env:
            full_env.update(env)
        name = name or Path(cmd[0]).name
        log = self.workdir / f"{name}-{len(self.clients)}.log"
        with open(log, "wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                env=full_env,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        client = Client(proc, name, log)
        self.clients.append(client)
        return client

    async def wait_for(self, predicate: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() > end:
                logs = "\n".join(f"--- {c.name}:\n{c.output()[-2000:]}" for c in self.clients)
                raise AssertionError(f"timed out waiting for {what}\n{logs}")
            await asyncio.sleep(0.05)

    async def wait_window(self, match: Callable[[WindowInfo], bool], what: str) -> WindowInfo:
        def find() -> WindowInfo | None:
            for w in self.comp.windows():
                if match(w):
                    return w
            return None

        result: WindowInfo = await self.wait_for(find, what)
        return result

    async def wait_exit(self, client: Client, timeout: float = DEADLINE) -> int:
        return await asyncio.wait_for(client.proc.wait(), timeout)

    async def settle(self, quiet: float = 0.3, timeout: float = DEADLINE) -> None:
        """Wait until no frame was composited for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        seq, since = self.comp.frame_seq, loop.time()
        while loop.time() < end:
            await asyncio.sleep(0.05)
            if self.comp.frame_seq != seq:
                seq, since = self.comp.frame_seq, loop.time()
            elif loop.time() - since >= quiet:
                return

    def pixels(self) -> np.ndarray:
        """The output now, as (H, W) XRGB uint32 with the X byte masked out."""
        self.comp.core.composite()
        return np.asarray(self.comp.framebuffer) & np.uint32(0xFFFFFF)

    def save(self, name: str) -> Path:
        path = self.workdir / f"{name}.png"
        self.comp.screenshot(path)
        return path

    async def stop_clients(self) -> None:
        for c in self.clients:
            if c.proc.returncode is None:
                try:
                    os.killpg(c.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for c in self.clients:
            try:
                await asyncio.wait_for(c.proc.wait(), 5)
            except TimeoutError:
                try:
                    os.killpg(c.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await c.proc.wait()
            try:  # anything the client forked and left behind in its group
                os.killpg(c.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


BACKGROUND_RGB = BACKGROUND & 0xFFFFFF


@asynccontextmanager
async def running_session(
    tmp_path: Path, size: tuple[int, int] = (1024, 768), **kwargs: Any
) -> AsyncIterator[Session]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.chmod(runtime, 0o700)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    comp = SessionCompositor(size=size, runtime_dir=runtime, **kwargs)
    await comp.start()
    session = Session(comp, work)
    try:
        yield session
    finally:
        await session.stop_clients()
        await comp.close()
