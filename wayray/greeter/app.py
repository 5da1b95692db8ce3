"""wrlogin's event loop: the window, the keyboard, and the conversation with wrsessd.

The Wayland side runs on asyncio (wayray.toolkit). wrsessd is spoken to with the blocking greeter
client of ``wayray.launcher.client`` from a worker thread, one request at a time, so a slow PAM
module (``pam_faildelay``, a network directory) never freezes the screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from PIL import Image, ImageDraw

from wayray.greeter.model import LoginModel, Phase, Request
from wayray.greeter.view import changed_boxes, render
from wayray.launcher import protocol as p
from wayray.launcher.client import LauncherClient, LauncherError
from wayray.toolkit.display import Client
from wayray.toolkit.draw import Canvas
from wayray.toolkit.seat import Key, PointerButton, PointerEnter, PointerMotion, SeatEvent
from wayray.toolkit.shm import PixelFormat, Swapchain
from wayray.toolkit.widgets import Keysym
from wayray.toolkit.window import WindowState

log = logging.getLogger(__name__)

APP_ID = "org.wayray.wrlogin"
BTN_LEFT = 0x110


class Greeter:
    """The greeter program. :meth:`run` returns the exit code (0 once a session started)."""

    def __init__(
        self,
        model: LoginModel,
        *,
        socket_path: str | None,
        client: LauncherClient | None = None,
        windowed: bool = False,
        size: tuple[int, int] = (1024, 768),
    ) -> None:
        self.model = model
        self.socket_path = socket_path
        self.launcher = client
        self.windowed = windowed
        self.size = size
        self.wl: Client | None = None
        self.canvas: Canvas | None = None
        self.state: WindowState | None = None
        self.fields: list[tuple[tuple[int, int, int, int], int]] = []
        self.pointer = (0.0, 0.0)
        self._queue: asyncio.Queue[Request] = asyncio.Queue()
        self._redraw_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._finished: asyncio.Event = asyncio.Event()
        self._exit_code = 1

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._finished.set)
        wl = await Client.connect(self._seat_event, key_repeat=True)
        self.wl = wl
        window = wl.create_window(
            title="WayRay login", app_id=APP_ID, size=self.size, fullscreen=not self.windowed
        )
        self.canvas = Canvas(
            window.surface, wl.conn.own(Swapchain(wl.conn, wl.shm, PixelFormat.XRGB8888, 2))
        )
        window.on_configure = self._configured
        window.on_close = lambda: log.info("close request ignored: the greeter stays until a login succeeds")
        await window.wait_configured()
        pump = loop.create_task(self._pump())
        lost = loop.create_task(wl.conn.wait_closed())
        for request in self.model.start():
            self._queue.put_nowait(request)
        self._redraw()
        finished = loop.create_task(self._finished.wait())
        try:
            await asyncio.wait({finished, lost, pump}, return_when=asyncio.FIRST_COMPLETED)
            if lost.done():
                if self.model.phase is Phase.DONE or self._finished.is_set():
                    # The login succeeded (or wrsessd is ending the login screen): wrsrvd ends this
                    # greeter's session now, compositor first. That is the end of its job, no error.
                    lost.exception()  # retrieved, whatever it is
                    if self.model.phase is Phase.DONE:
                        log.info("its session ended after the login, as a login screen's does")
                    else:
                        log.info("its session ended: the session launcher is ending the login screen")
                else:
                    lost.result()  # raises what ended the Wayland connection
            if pump.done():
                pump.result()
        finally:
            for task in (pump, lost, finished):
                task.cancel()
            if self._timer is not None:
                self._timer.cancel()
            if self.launcher is not None:
                self.launcher.close()
            await wl.close()
        return self._exit_code

    # Drawing --------------------------------------------------------------------------------------

    def _configured(self, state: WindowState) -> None:
        assert self.canvas is not None
        self.state = state
        w, h = state.buffer_size
        self.canvas.resize(w, h, state.scale)
        self.canvas.surface.set_opaque(state.width, state.height)
        self._draw_now()

    def _redraw(self) -> None:
        if not self._redraw_scheduled and self.wl is not None:
            self._redraw_scheduled = True
            self.wl.conn.loop.call_soon(self._draw_now)

    def _draw_now(self) -> None:
        self._redraw_scheduled = False
        canvas = self.canvas
        if canvas is None or self.state is None:
            return
        new = Image.new("RGBA", canvas.size)
        self.fields = render(self.model, new, time.monotonic())
        for box in changed_boxes(canvas.image if canvas.image.size == new.size else None, new):
            canvas.invalidate(box)
        canvas.image = new
        canvas.draw = ImageDraw.Draw(new)
        canvas.present()
        self._schedule_timer()

    def _schedule_timer(self) -> None:
        """Wake for the rate-limit countdown (each second) or the clock (each minute); else sleep."""
        if self._timer is not None:
            self._timer.cancel()
        assert self.wl is not None
        if self.model.phase is Phase.BLOCKED:
            delay = 1.0 - (time.monotonic() % 1.0) + 0.01
        else:
            delay = 60.5 - time.time() % 60
        self._timer = self.wl.conn.loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._send(self.model.tick(time.monotonic()))
        self._redraw()

    # Input ----------------------------------------------------------------------------------------

    def _seat_event(self, event: SeatEvent) -> None:
        if isinstance(event, Key) and event.pressed:
            self._key(event)
        elif isinstance(event, PointerEnter):
            self.pointer = (event.x, event.y)
            if self.wl is not None and self.wl.seat is not None and self.wl.seat.pointer is not None:
                self.wl.seat.pointer.set_default_cursor()
        elif isinstance(event, PointerMotion):
            self.pointer = (event.x, event.y)
        elif isinstance(event, PointerButton) and event.pressed and event.button == BTN_LEFT:
            self._click()

    def _key(self, event: Key) -> None:
        model, now = self.model, time.monotonic()
        sym = event.keysym
        if sym in (Keysym.Return, Keysym.KP_Enter):
            if event.repeat:
                return
            self._send(model.submit(now))
        elif sym == Keysym.Escape:
            if event.repeat:
                return
            self._send(model.escape())
        elif sym in (Keysym.Tab, Keysym.ISO_Left_Tab, Keysym.Down, Keysym.Up):
            model.tab(backwards=sym in (Keysym.ISO_Left_Tab, Keysym.Up) or event.modifiers.shift)
        elif not model.key(event):
            return
        self._redraw()

    def _click(self) -> None:
        """A click in a text field focuses it."""
        if self.state is None:
            return
        s = self.state.scale
        px, py = self.pointer[0] * s, self.pointer[1] * s
        for (x, y, w, h), focus in self.fields:
            if x <= px < x + w and y <= py < y + h:
                before = self.model.focus
                self.model.focus = focus
                if self.model.focused_field() is None:
                    self.model.focus = before
                self._redraw()
                return

    # wrsessd --------------------------------------------------------------------------------------

    def _send(self, requests: list[Request]) -> None:
        for request in requests:
            self._queue.put_nowait(request)
        self._redraw()

    async def _pump(self) -> None:
        """Send the model's requests in order; feed every answer back to it."""
        while True:
            request = await self._queue.get()
            try:
                response = await self._request(request)
            except (OSError, LauncherError) as err:
                log.warning("wrsessd cannot be reached: %s", err)
                if self.launcher is not None:
                    self.launcher.close()
                    self.launcher = None
                while not self._queue.empty():
                    self._queue.get_nowait()
                self.model.on_connection_lost()
                self._redraw()
                continue
            if isinstance(response, p.Error):
                log.info("wrsessd: %s: %s", response.error_type.value, response.description)
            for follow in self.model.on_response(request, response, time.monotonic()):
                self._queue.put_nowait(follow)
            self._redraw()
            if self.model.phase is Phase.DONE:
                started = self.model.started
                assert started is not None
                log.info(
                    "session %s of %s %s",
                    started.session.session_id,
                    started.session.user,
                    "unlocked" if started.resumed else "started",
                )
                self._exit_code = 0
                await self._shown()
                self._finished.set()
                return

    async def _request(self, request: Request) -> p.Message:
        """One request and its answer. wrsessd closes a connection that stays idle between logins
        (``idle_timeout_s``) — the login screen's, while nobody is at the kiosk — so a request that
        begins a conversation finds it closed and is sent again on a new connection; the closed one
        had carried nothing of it."""
        fresh = isinstance(request, p.CreateSession | p.CancelSession)
        for attempt in (1, 2):
            try:
                if self.launcher is None:
                    self.launcher = await asyncio.to_thread(LauncherClient, self.socket_path)
                return await asyncio.to_thread(self.launcher.request, request)
            except (OSError, LauncherError) as err:
                if self.launcher is not None:
                    self.launcher.close()
                    self.launcher = None
                if attempt == 2 or not fresh:
                    raise
                log.debug("wrsessd closed the connection (%s); connecting again", err)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _shown(self) -> None:
        """Give the last picture ("Welcome, …") a moment on screen before the greeter exits."""
        await asyncio.sleep(0)
        if self.canvas is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def shown() -> None:
            if not done.done():
                done.set_result(None)

        self.canvas.surface.request_frame(shown)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, 2.0)


def socket_path_from_env(env: dict[str, str]) -> str | None:
    from wayray.launcher.client import SOCKET_ENV

    value = env.get(SOCKET_ENV)
    return str(Path(value)) if value else None
