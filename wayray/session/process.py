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
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wayray.codec import EncoderSettings
from wayray.common.errors import EXIT_FAILURE, WayRayError
from wayray.common.secretfd import read_secret
from wayray.compositor.session import Decorations, SessionCompositor
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


async def run_session(opts: SessionOptions, env: dict[str, str]) -> int:
    """Run the session until it ends; returns the exit status (COMMAND's, or 0 without one)."""
    loop = asyncio.get_running_loop()
    ending = asyncio.Event()
    end_reason: list[str] = []

    def end(reason: str) -> None:
        if not end_reason:
            end_reason.append(reason)
        ending.set()

    link: LinkClient | None = None

    def selection_changed(kind: object, mimes: list[str] | None) -> None:
        if link is not None:
            link.selection_changed(kind, mimes)  # type: ignore[arg-type]

    comp = SessionCompositor(
        size=opts.size,
        scale=opts.scale,
        refresh_hz=opts.refresh_hz,
        idle_hz=opts.idle_hz,
        socket_name=opts.socket_name,
        runtime_dir=opts.runtime_dir,
        decorations=opts.decorations,
        on_selection=selection_changed,
    )
    # One encoding thread: frames of one session are encoded in order; sessions are processes.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
    for sig, why in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT"), (signal.SIGHUP, "SIGHUP")):
        loop.add_signal_handler(sig, end, f"the session process got {why}")
    if opts.screenshot is not None:
        shot_path = opts.screenshot

        def shot() -> None:
            if comp.running:
                try:
                    comp.screenshot(shot_path)
                    log.info("screenshot written to %s", shot_path)
                except OSError as err:
                    log.error("cannot write the screenshot to %s: %s", shot_path, err)

        loop.add_signal_handler(signal.SIGUSR1, shot)

    proc: asyncio.subprocess.Process | None = None
    link_task: asyncio.Task[None] | None = None
    status = 0
    try:
        await comp.start()
        comp.viewed = False  # nobody watches until wrsrvd attaches a viewer
        link = LinkClient(comp, opts.link, encoder_settings=opts.encoder, executor=executor, on_end=end)
        link_task = loop.create_task(link.run(), name="link")
        if opts.command:
            client_env = comp.client_env(base={k: v for k, v in env.items() if k not in LINK_ENV})
            try:
                proc = await asyncio.create_subprocess_exec(
                    *opts.command, env=client_env, stdin=asyncio.subprocess.DEVNULL
                )
            except OSError as err:
                raise WayRayError(f"cannot run {opts.command[0]}: {err.strerror or err}") from None
            log.info("running %s (pid %d) on %s", " ".join(opts.command), proc.pid, comp.socket_name)
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(ending.wait())}
        exited: asyncio.Future[int] | None = None
        if proc is not None:
            exited = asyncio.ensure_future(proc.wait())
            waits.add(exited)  # type: ignore[arg-type]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if exited is not None and exited.done():
            status = _status(exited.result())
            reason = f"{opts.command[0]} exited with status {status}"
        else:
            reason = end_reason[0] if end_reason else "the session ended"
            if proc is not None and exited is not None:
                status = _status(await _stop(proc, exited))
        log.info("session ending: %s", reason)
        for w in waits:
            w.cancel()
        if link is not None:
            link.send_ended(reason, status if opts.command else -1)
            await link.close()
    finally:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if link_task is not None:
            link_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link_task
        await comp.close()
        executor.shutdown(wait=True, cancel_futures=True)
    return status


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
