"""wrclient's kiosk mode: badges drive the connection, and there is nothing else to do.

A :class:`Kiosk` owns one display backend for its whole life and one token source
(``wayray.client.tokens``). A badge going in starts a :class:`~wayray.client.viewer.Viewer` presenting
it (the server shows that badge's session, or a login screen); taking the badge out stops the viewer
(the server detaches the session, which keeps running) and the kiosk shows its idle screen ("Present
your badge"). A different badge switches. The viewer reconnects for ever, with backoff, while the
badge is in.

What the server says ends a viewer for good is handled here, not by exiting:

- the session moved to another kiosk (hot-desk), an operator detached it, or the server refused the
  token → idle screen; the badge counts as taken out (:meth:`TokenSource.forget`), so presenting it
  here again takes the session back;
- the session ended (logout, policy, operator) → idle screen; if the badge is still in, a new
  connection after a moment gives it a fresh login screen, as on a Sun Ray;
- the server's identity is refused → the reason on screen, retried now and then (a kiosk never exits
  to a desktop: there is none behind it).

Close requests from the window are ignored by the kiosk backend itself; one that still arrives means
the display went away, and the kiosk stops (its service manager starts it again).

The session's sound plays through the kiosk's own sound server unless client.toml says
``play_audio = false`` (docs/audio.md §3): the kiosk asks its sound server at start and, while it has
none, again at each badge; without one it says so in its log, offers sessions no sound, and shows them
silent. What the kiosk
shows is also written, for tests and monitoring, to a *state file* (JSON, replaced atomically).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from wayray.audio.playback import Player, sound_server_problem
from wayray.audio.receive import AudioReceiver
from wayray.client.backend import (
    CloseRequestedEvent,
    ConnectionState,
    CursorImage,
    DisplayBackend,
    InputEvent,
    ScreenChangedEvent,
)
from wayray.client.tokens import BadgeInserted, BadgeRemoved, TokenSource
from wayray.client.tokens.events import redact
from wayray.client.viewer import Ending, Viewer, ViewerOptions
from wayray.codec.geometry import RectLike
from wayray.common.files import write_atomic
from wayray.transport import ClientSettings
from wayray.wire import Capability, ErrorCode, SessionEventKind

if TYPE_CHECKING:
    from wayray.usb.kiosk import KioskUsb

log = logging.getLogger("wayray.client.kiosk")

#: After the session ended with the badge still in: wait this long, then connect again (a new login).
RECONNECT_AFTER_END = 1.0
#: After the server's identity was refused: try again this often (someone may fix the pin).
RETRY_REFUSED = 30.0
IDLE_TEXT = "Present your badge"


class Showing(enum.StrEnum):
    """What the person at the kiosk sees (the state file's ``state``)."""

    IDLE = "idle"  # the "Present your badge" screen
    CONNECTING = "connecting"  # a badge is in; no picture of its session yet
    SESSION = "session"  # the session's picture (login screen or desktop: see ``screen``)
    RECONNECTING = "reconnecting"  # the picture, dimmed: the connection is being re-made
    NOT_RESPONDING = "not-responding"  # the picture, dimmed, frozen: the session answers nothing
    FAILED = "failed"  # an error the kiosk cannot fix by itself, on screen


@dataclass(frozen=True)
class KioskOptions:
    host: str
    port: int
    client: ClientSettings
    client_version: str = ""
    #: Where to write what the kiosk shows (JSON); None: nowhere.
    state_file: Path | None = None
    backoff_first: float = 0.25
    backoff_longest: float = 5.0
    #: Further servers, tried in order when the one before does not answer (ViewerOptions.fallbacks).
    fallbacks: tuple[tuple[str, int], ...] = ()
    #: The access key of servers that require one, and this kiosk's identity (ViewerOptions).
    access_key: str = field(default="", repr=False)
    terminal_key: str = field(default="", repr=False)
    #: A pool's members as discovery finds them, and the pool's name (ViewerOptions).
    discover: Callable[[], tuple[tuple[str, int], ...]] | None = None
    pool: str = ""
    unanswered: Callable[[tuple[str, int]], None] | None = None
    #: Play the sessions' sound through this machine's sound server (client.toml's play_audio), on
    #: its default sink or ``audio_sink``.
    play_audio: bool = False
    audio_sink: str | None = None


@dataclass
class KioskStatus:
    """What the kiosk shows, as written to the state file."""

    state: Showing = Showing.IDLE
    detail: str = IDLE_TEXT
    #: "greeter" (a login or unlock screen) or "desktop", from the server's session events.
    screen: str | None = None
    session_id: str | None = None
    #: The badge presented now, redacted (never the badge itself).
    badge: str | None = None
    #: CLOCK_MONOTONIC seconds: when the badge went in, when its session's picture was complete.
    presented_at: float | None = None
    picture_at: float | None = None
    changed_at: float = field(default_factory=time.monotonic)
    #: Counts every change, so a reader can tell two equal-looking states apart.
    serial: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "detail": self.detail,
            "screen": self.screen,
            "session_id": self.session_id,
            "badge": self.badge,
            "presented_at": self.presented_at,
            "picture_at": self.picture_at,
            "changed_at": self.changed_at,
            "serial": self.serial,
            "pid": os.getpid(),
        }


#: How long the kiosk waits for its sound server's answer before it goes on (at its start, and at a
#: badge when the sound was missing): a healthy one answers in milliseconds; one that hangs is given
#: up on after 10 s by the check itself, which goes on meanwhile.
SOUND_CHECK_WAIT = 2.0


class Kiosk:
    def __init__(
        self,
        options: KioskOptions,
        backend: DisplayBackend,
        source: TokenSource,
        usb: KioskUsb | None = None,
    ) -> None:
        """``usb``: the kiosk's USB devices, offered to the session it shows (docs/usb.md)."""
        self.options = options
        self.usb = usb
        self.backend = backend
        self.source = source
        self.status = KioskStatus()
        self.viewer: Viewer | None = None
        self._badge: BadgeInserted | None = None
        self._viewer_task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Notified on every status change (the control socket's ``wait``).
        self.changed = asyncio.Condition()
        #: The display (the kiosk compositor) went away: wrclient exits with a failure.
        self.display_lost = False
        #: What plays the sessions' sound here (one for the kiosk's life), and whether this machine's
        #: sound server answered when last asked (None: not asked yet).
        self.player = Player(options.audio_sink) if options.play_audio else None
        self.sound: bool | None = None
        #: The sound check under way (``pactl info``; one at a time, however many badges come).
        self._sound_check: asyncio.Task[None] | None = None

    # --- life --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop`. Raises what keeps the token source from starting."""
        await self.backend.start(self._input)
        # "Present your badge" (and "idle" in the state file) only once a badge presented is heard.
        await self.source.start()
        self._show(Showing.IDLE, IDLE_TEXT)
        await self._check_sound()
        log.info(
            "kiosk ready: %s; %s",
            self.source.description,
            f"servers of pool {self.options.pool}"
            if self.options.pool
            else f"server {self.options.host}:{self.options.port}",
        )
        events = asyncio.get_running_loop().create_task(self._events(), name="kiosk-badges")
        try:
            done, _ = await asyncio.wait(
                {events, asyncio.ensure_future(self._stop.wait())}, return_when=asyncio.FIRST_COMPLETED
            )
            if events in done:
                events.result()  # the source failed: raise it
        finally:
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await events
            await self._drop_viewer("the kiosk is stopping")
            if self.player is not None:
                self.player.stop()
                await self.player.wait_closed()
            await self.source.close()
            for task in list(self._tasks):
                task.cancel()

    def stop(self) -> None:
        self._stop.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _events(self) -> None:
        async for event in self.source:
            if isinstance(event, BadgeInserted):
                log.info("badge %s presented (%s)", redact(event.token), event.source or event.kind.name)
                await self._drop_viewer("another badge was presented")
                self._badge = event
                if self.player is not None and (not self.sound or self.player.failed):
                    await self._check_sound()  # it may have come (back) since it was last asked
                self._start_viewer(event)
            elif isinstance(event, BadgeRemoved):
                log.info("badge taken out (%s)", event.reason or "no reason given")
                self._badge = None
                await self._drop_viewer(
                    f"badge taken out ({event.reason})" if event.reason else "badge taken out"
                )
                self._show(Showing.IDLE, IDLE_TEXT)

    async def _check_sound(self) -> None:
        """Ask this machine's sound server whether it answers, waiting at most SOUND_CHECK_WAIT for its
        answer: a sound server that hangs must not hold up the kiosk's start or a badge's session
        (the check goes on beside them, and its answer counts from the next badge on)."""
        if self.player is None:
            return
        if self._sound_check is None or self._sound_check.done():
            self._sound_check = asyncio.get_running_loop().create_task(
                self._ask_sound_server(), name="kiosk-sound-check"
            )
            self._tasks.add(self._sound_check)
            self._sound_check.add_done_callback(self._tasks.discard)
        done, _ = await asyncio.wait({self._sound_check}, timeout=SOUND_CHECK_WAIT)
        if not done:
            log.info(
                "this machine's sound server has not answered within %g s; the kiosk goes on without "
                "waiting (the session shown next is silent unless it answers before)",
                SOUND_CHECK_WAIT,
            )

    async def _ask_sound_server(self) -> None:
        """Ask the sound server; say so when the answer changed."""
        problem = await sound_server_problem()
        sound = problem is None
        if sound and self.sound is not True:
            log.info("sound: the sessions shown here play through this machine's sound server")
        elif problem is not None and self.sound is not False:
            log.warning(
                "no sound server answers on this kiosk (%s): the sessions shown here are silent. "
                "Start PulseAudio, or PipeWire with pipewire-pulse, for the user wrclient runs as "
                "(it is asked again at the next badge); a kiosk without sound: play_audio = false "
                "in client.toml",
                problem,
            )
        self.sound = sound

    # --- viewers -----------------------------------------------------------------------------------

    def _start_viewer(self, badge: BadgeInserted) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        o = self.options
        client, audio = o.client, None
        if self.player is not None and self.sound:
            audio = AudioReceiver(None, self.player)
        else:  # no sound here: none offered, so the session captures none for this kiosk
            caps = client.wire.capabilities - {Capability.AUDIO, Capability.MICROPHONE, Capability.AV_SYNC}
            client = replace(client, wire=replace(client.wire, capabilities=caps))
        options = ViewerOptions(
            host=o.host,
            port=o.port,
            client=client,
            token=badge.token,
            token_kind=badge.kind,
            reconnect=True,
            backoff_first=o.backoff_first,
            backoff_longest=o.backoff_longest,
            client_version=o.client_version,
            fallbacks=o.fallbacks,
            access_key=o.access_key,
            terminal_key=o.terminal_key,
            discover=o.discover,
            pool=o.pool,
            unanswered=o.unanswered,
        )
        viewer: Viewer

        def picture() -> None:
            if self.viewer is viewer:
                self._show(Showing.SESSION, "", session_id=viewer.session_id, picture=True)

        def session_event(kind: SessionEventKind, detail: str) -> None:
            if self.viewer is not viewer:
                return
            if kind is SessionEventKind.GREETER:
                self._show(self.status.state, self.status.detail, screen="greeter")
            elif kind is SessionEventKind.DESKTOP:
                self._show(self.status.state, detail, screen="desktop")

        viewer = Viewer(
            options,
            _ViewerBackend(self, self.backend),
            manage_backend=False,
            on_picture=picture,
            on_session_event=session_event,
            usb=self.usb,
            audio=audio,
        )
        self.viewer = viewer
        self.status.presented_at = time.monotonic()
        self._show(
            Showing.CONNECTING, "Connecting\u2026", badge=redact(badge.token), screen=None, session_id=None
        )
        self._viewer_task = asyncio.get_running_loop().create_task(self._watch(viewer, badge), name="viewer")

    async def _drop_viewer(self, reason: str) -> None:
        viewer, task = self.viewer, self._viewer_task
        self.viewer, self._viewer_task = None, None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if viewer is not None:
            viewer.stop(reason)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _watch(self, viewer: Viewer, badge: BadgeInserted) -> None:
        ending = await viewer.run()
        if self.viewer is not viewer:
            return  # replaced or stopped by the kiosk itself
        self.viewer = None
        detail = viewer.ending_detail
        log.info("viewer ended (%s): %s", ending, detail)
        if ending is Ending.SESSION_MOVED:
            self.source.forget()
            self._badge = None
            self._show(Showing.IDLE, IDLE_TEXT + " \u2014 your session moved to another kiosk")
        elif ending is Ending.DETACHED:
            self.source.forget()
            self._badge = None
            self._show(Showing.IDLE, f"{IDLE_TEXT} \u2014 {detail}")
        elif ending is Ending.SESSION_ENDED:
            self._show(Showing.IDLE, f"{IDLE_TEXT} \u2014 {detail or 'the session ended'}")
            if self._badge is badge:  # still in: a fresh login screen for it
                self._later(RECONNECT_AFTER_END, badge)
        elif ending is Ending.REFUSED and viewer.ending_code == ErrorCode.TOKEN_REJECTED:
            self.source.forget()  # the server refused the badge itself: taken out
            self._badge = None
            self._show(Showing.FAILED, detail)
        elif ending is not Ending.STOPPED:
            self._show(Showing.FAILED, detail)
            if self._badge is badge:
                self._later(RETRY_REFUSED, badge)

    def _later(self, delay: float, badge: BadgeInserted) -> None:
        def again() -> None:
            self._retry = None
            if self._badge is badge and self.viewer is None:
                self._start_viewer(badge)

        self._retry = asyncio.get_running_loop().call_later(delay, again)

    def _viewer_state(self, viewer: Viewer, state: ConnectionState, detail: str) -> None:
        if self.viewer is not viewer:
            return
        if state is ConnectionState.RECONNECTING:
            self._show(Showing.RECONNECTING, detail or "Reconnecting\u2026")
        elif state is ConnectionState.NOT_RESPONDING:
            self._show(Showing.NOT_RESPONDING, detail)
        elif state is ConnectionState.CONNECTED and self.status.state is Showing.NOT_RESPONDING:
            self._show(Showing.SESSION, "")
        elif state is ConnectionState.CONNECTING and self.status.state is not Showing.SESSION:
            self._show(Showing.CONNECTING, "Connecting\u2026")

    # --- what the person sees -----------------------------------------------------------------------

    def _show(self, state: Showing, detail: str, *, picture: bool = False, **fields: str | None) -> None:
        """Show ``state``; ``fields`` change the status's ``screen``, ``session_id`` or ``badge``."""
        st = self.status
        changes: dict[str, Any] = {"state": state, "detail": detail, **fields}
        if state is Showing.IDLE:
            changes.update(screen=None, session_id=None, badge=None, presented_at=None, picture_at=None)
        if picture:
            changes["picture_at"] = time.monotonic()
        new = replace(st, **changes, changed_at=time.monotonic(), serial=st.serial + 1)
        self.status = new
        backend_state = {
            Showing.IDLE: ConnectionState.IDLE,
            Showing.CONNECTING: ConnectionState.CONNECTING,
            Showing.SESSION: ConnectionState.CONNECTED,
            Showing.RECONNECTING: ConnectionState.RECONNECTING,
            Showing.FAILED: ConnectionState.FAILED,
            Showing.NOT_RESPONDING: ConnectionState.NOT_RESPONDING,
        }[state]
        # The idle screen has "Present your badge" as its title: the backend gets only what follows.
        shown = detail.removeprefix(IDLE_TEXT).lstrip(" \u2014") if state is Showing.IDLE else detail
        self.backend.set_state(backend_state, shown)
        if self.options.state_file is not None:
            _write_json(self.options.state_file, new.to_json())
        self._spawn(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _input(self, event: InputEvent) -> None:
        if isinstance(event, CloseRequestedEvent):
            # A kiosk's window ignores close requests itself (the person cannot close it); what
            # still arrives means the display is gone: stop, and let the service manager start over.
            log.error("the display went away; the kiosk stops")
            self.display_lost = True
            self.stop()
            return
        viewer = self.viewer
        if viewer is not None:
            viewer.handle_input(event)


class _ViewerBackend:
    """What a kiosk's viewer sees of the backend: everything but the connection state, which the
    kiosk decides (the viewer's states are only hints to it), and start/close, which the kiosk does."""

    def __init__(self, kiosk: Kiosk, backend: DisplayBackend) -> None:
        self._kiosk = kiosk
        self._backend = backend

    async def start(self, on_input: Callable[[InputEvent], None]) -> None:
        return None

    def screen(self) -> ScreenChangedEvent:
        return self._backend.screen()

    def keymap(self) -> str | None:
        return self._backend.keymap()

    def present(self, framebuffer: npt.NDArray[np.uint32], damage: Sequence[RectLike]) -> None:
        self._backend.present(framebuffer, damage)

    def set_cursor(self, image: CursorImage | None) -> None:
        self._backend.set_cursor(image)

    def move_cursor(self, x: int, y: int, visible: bool) -> None:
        self._backend.move_cursor(x, y, visible)

    def set_state(self, state: ConnectionState, detail: str = "") -> None:
        viewer = self._kiosk.viewer
        if viewer is not None and viewer.backend is self:
            self._kiosk._viewer_state(viewer, state, detail)

    def set_microphone(self, live: bool) -> None:
        self._backend.set_microphone(live)

    def set_clipboard(self, text: str) -> None:
        self._backend.set_clipboard(text)

    async def close(self) -> None:
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        write_atomic(path, json.dumps(data).encode(), mode=0o644, fsync=False)
    except OSError as err:
        log.warning("cannot write the state file %s: %s", path, err.strerror)
