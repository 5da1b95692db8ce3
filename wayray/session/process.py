"""The session process: one headless compositor, the command inside it, and its link to wrsrvd.

Life: start the compositor (its Wayland socket), start COMMAND in it, connect to wrsrvd and register.
The session runs until COMMAND exits (the user quit it), wrsrvd ends it (``End``: an operator, a
policy, Ctrl-C at a standalone server), wrsrvd refuses it, or SIGTERM; then COMMAND is stopped
(SIGTERM, SIGKILL after a grace period), wrsrvd is told (``Ended``) and the process exits with
COMMAND's status. Losing the link does not end it: the link client reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wayray.audio.microphone import MicrophoneFeed
from wayray.audio.soundserver import SoundServer, SoundServerError
from wayray.codec import EncoderSettings
from wayray.common.errors import EXIT_FAILURE, WayRayError
from wayray.common.secretfd import read_secret
from wayray.compositor.session import Decorations, SessionCompositor
from wayray.config import AudioPolicy
from wayray.session import memory
from wayray.session.link_client import LinkClient, LinkSettings

log = logging.getLogger("wayray.session")

#: Environment variables that carry the link to the compositor; never passed on to its clients.
LINK_ENV = (
    "WAYRAY_LINK",
    "WAYRAY_LINK_SESSION",
    "WAYRAY_LINK_SECRET",
    "WAYRAY_LINK_SECRET_FD",
    "WAYRAY_LINK_SERVER_UID",
    "WAYRAY_WAYLAND_DISPLAY",
)
STOP_GRACE = 5.0


@dataclass(frozen=True)
class SessionOptions:
    link: LinkSettings
    command: tuple[str, ...]
    runtime_dir: Path
    size: tuple[int, int] = (1280, 720)
    scale: int = 1
    refresh_hz: float = 60.0
    idle_hz: float = 1.0
    socket_name: str | None = None
    decorations: Decorations = Decorations.CLIENT
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    #: Write a PNG of the output here on SIGUSR1.
    screenshot: Path | None = None
    #: The session's sound (docs/audio.md): OFF starts no sound server.
    audio: AudioPolicy = AudioPolicy.OFF
    #: Opus bit rate, kbit/s.
    audio_bitrate: int = 96
    #: An X display for X11 programs, served by Xwayland (docs/xwayland.md).
    x11: bool = True
    #: The session's window manager, started by the compositor (docs/wm-protocol.md); () = built-in.
    window_manager: tuple[str, ...] = ()


async def run_session(opts: SessionOptions, env: dict[str, str]) -> int:
    """Run the session until it ends; returns the exit status (COMMAND's, or 0 without one)."""
    return await _Session(opts, env).run()


class _Session:
    """The parts of one session process: the compositor, its link to wrsrvd, COMMAND, and why it ends."""

    def __init__(self, opts: SessionOptions, env: dict[str, str]) -> None:
        self.opts = opts
        self.env = env
        self.ending = asyncio.Event()
        self.end_reason: str | None = None  # the first reason given
        self.link: LinkClient | None = None
        self.link_task: asyncio.Task[None] | None = None
        self.proc: asyncio.subprocess.Process | None = None
        #: The session's own sound server (None: audio off, or it could not start).
        self.sound: SoundServer | None = None
        self.comp = SessionCompositor(
            size=opts.size,
            scale=opts.scale,
            refresh_hz=opts.refresh_hz,
            idle_hz=opts.idle_hz,
            socket_name=opts.socket_name,
            runtime_dir=opts.runtime_dir,
            decorations=opts.decorations,
            on_selection=self._selection_changed,
            x11=opts.x11,
        )
        # One encoding thread: frames of one session are encoded in order; sessions are processes.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")

    def end(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self.ending.set()

    async def run(self) -> int:
        self._handle_signals()
        status = 0
        try:
            await self._start()
            status, reason = await self._wait_for_end()
            log.info("session ending: %s", reason)
            if self.link is not None:
                self.link.send_ended(reason, status if self.opts.command else -1)
                await self.link.close()
        finally:
            await self._tear_down()
        return status

    def _handle_signals(self) -> None:
        """SIGTERM, SIGINT and SIGHUP end the session; SIGUSR1 writes a screenshot, if asked for."""
        loop = asyncio.get_running_loop()
        for sig, why in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT"), (signal.SIGHUP, "SIGHUP")):
            loop.add_signal_handler(sig, self.end, f"the session process got {why}")
        if self.opts.screenshot is not None:
            loop.add_signal_handler(signal.SIGUSR1, self._screenshot, self.opts.screenshot)

    def _screenshot(self, path: Path) -> None:
        if self.comp.running:
            try:
                self.comp.screenshot(path)
                log.info("screenshot written to %s", path)
            except OSError as err:
                log.error("cannot write the screenshot to %s: %s", path, err)

    def _selection_changed(self, kind: object, mimes: list[str] | None) -> None:
        """The session's clipboard changed: the link tells the viewer (once there is a link)."""
        if self.link is not None:
            self.link.selection_changed(kind, mimes)  # type: ignore[arg-type]

    async def _start(self) -> None:
        """The compositor, the link to wrsrvd, then COMMAND in the compositor."""
        await self.comp.start()
        self.comp.viewed = False  # nobody watches until wrsrvd attaches a viewer
        self.link = LinkClient(
            self.comp,
            self.opts.link,
            encoder_settings=self.opts.encoder,
            executor=self.executor,
            on_end=self.end,
        )
        # The link and the sound server side by side: pulseaudio takes 0.1-0.5 s to come up (more on
        # a loaded server), which the first viewer's first frame does not wait for (issue 15); that
        # viewer's sound starts once it is up (LinkClient.sound_ready).
        loop = asyncio.get_running_loop()
        sound = loop.create_task(self._start_sound(), name="sound-server")
        self.link.sound_ready = sound
        self.link_task = loop.create_task(self.link.run(), name="link")
        await sound
        if self.opts.window_manager:
            # After the sound server: what the window manager starts (a terminal) finds it too.
            self.comp.start_window_manager(self.opts.window_manager, self._client_env)
        if self.opts.command:
            self.proc = await self._start_command()
        # What starting took and let go (the fork's copies, the imports' and the compositor's
        # temporary buffers) back to the kernel, not kept resident for the session's whole life.
        asyncio.get_running_loop().call_soon(memory.trim)

    async def _start_sound(self) -> None:
        """The session's sound server, before COMMAND (which finds it through PULSE_SERVER). A sound
        server that cannot start costs the session its sound, nothing else."""
        if not self.opts.audio.playback or not self.comp.socket_name:
            return
        sound = SoundServer(self.opts.runtime_dir, self.comp.socket_name)
        try:
            await sound.start()
        except SoundServerError as err:
            log.error("the session has no sound: %s", err)
            return
        self.sound = sound
        if self.link is not None:
            self.link.audio_bitrate = self.opts.audio_bitrate
            self.link.sound_env = sound.client_env(
                {k: v for k, v in os.environ.items() if k not in LINK_ENV}
            )
            microphone = MicrophoneFeed(sound.microphone_fifo)
            if await microphone.start():
                self.link.microphone = microphone

    def _client_env(self) -> dict[str, str]:
        """The environment of the session's programs (COMMAND, the window manager): no link variables."""
        base = {k: v for k, v in self.env.items() if k not in LINK_ENV and not k.startswith("PULSE_")}
        return self.comp.client_env(base=self.sound.client_env(base) if self.sound is not None else base)

    async def _start_command(self) -> asyncio.subprocess.Process:
        """COMMAND, a client of the compositor, in an environment without the link's variables."""
        command, comp = self.opts.command, self.comp
        client_env = self._client_env()
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, env=client_env, stdin=asyncio.subprocess.DEVNULL
            )
        except OSError as err:
            raise WayRayError(f"cannot run {command[0]}: {err.strerror or err}") from None
        log.info("running %s (pid %d) on %s", " ".join(command), proc.pid, comp.socket_name)
        return proc

    async def _wait_for_end(self) -> tuple[int, str]:
        """Wait until COMMAND exits or the session is ended (then COMMAND is stopped): the exit
        status, and why the session ends."""
        proc = self.proc
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(self.ending.wait())}
        exited: asyncio.Future[int] | None = None
        if proc is not None:
            exited = asyncio.ensure_future(proc.wait())
            waits.add(exited)  # type: ignore[arg-type]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        status = 0
        if exited is not None and exited.done():
            status = _status(exited.result())
            reason = f"{self.opts.command[0]} exited with status {status}"
        else:
            reason = self.end_reason if self.end_reason is not None else "the session ended"
            if proc is not None and exited is not None:
                status = _status(await _stop(proc, exited))
        for w in waits:
            w.cancel()
        return status, reason

    async def _tear_down(self) -> None:
        """Whatever happened: COMMAND killed if it still runs, the link stopped, the compositor closed."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self.link_task is not None:
            self.link_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.link_task
        if self.link is not None and self.link.microphone is not None:
            await self.link.microphone.stop()
        if self.sound is not None:
            await self.sound.stop()
        await self.comp.close()
        self.executor.shutdown(wait=True, cancel_futures=True)


async def _stop(proc: asyncio.subprocess.Process, exited: asyncio.Future[int]) -> int:
    log.info("stopping the session's command (pid %d)", proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        return await asyncio.wait_for(asyncio.shield(exited), STOP_GRACE)
    except TimeoutError:
        log.warning("the command did not stop within %g s; killing it", STOP_GRACE)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await exited


def _status(rc: int) -> int:
    return rc if rc >= 0 else 128 - rc if rc > -128 else EXIT_FAILURE


def link_settings_from_environment(
    env: dict[str, str], *, link: str | None, session_id: str | None, orphan_timeout: float | None
) -> LinkSettings:
    """The link details: arguments first, then ``WAYRAY_LINK``/``WAYRAY_LINK_SESSION``; the uid of the
    server to register with from ``WAYRAY_LINK_SERVER_UID`` (default: this process's); the secret
    only from the pipe ``WAYRAY_LINK_SECRET_FD`` names (never argv, which every local user can read,
    nor the environment, which /proc shows for the process's whole life), or from
    ``WAYRAY_LINK_SECRET`` as earlier spawners gave it."""
    path = link or env.get("WAYRAY_LINK")
    sid = session_id or env.get("WAYRAY_LINK_SESSION")
    fd = env.get("WAYRAY_LINK_SECRET_FD")
    secret = read_secret("WAYRAY_LINK_SECRET_FD", fd) if fd else env.get("WAYRAY_LINK_SECRET")
    missing = [
        name
        for name, value in (
            ("--link or WAYRAY_LINK", path),
            ("--session-id or WAYRAY_LINK_SESSION", sid),
            ("WAYRAY_LINK_SECRET_FD", secret),
        )
        if not value
    ]
    if missing:
        raise WayRayError(
            f"the link to wrsrvd is not set up: missing {', '.join(missing)}",
            hint="session compositors are started by wrsrvd (or wrsessd); to run one by hand use "
            "`wrsrvd compositor`",
            exit_code=2,
        )
    uid_text = env.get("WAYRAY_LINK_SERVER_UID")
    try:
        server_uid = int(uid_text) if uid_text else None
    except ValueError:
        raise WayRayError(f"WAYRAY_LINK_SERVER_UID={uid_text!r} is not a uid", exit_code=2) from None
    assert path is not None and sid is not None and secret is not None
    return LinkSettings(
        path=path, session_id=sid, secret=secret, server_uid=server_uid, orphan_timeout=orphan_timeout
    )
