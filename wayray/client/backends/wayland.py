"""The Wayland display backend: the session in a window (or full screen under a kiosk compositor).

Surfaces (all in one ``xdg_toplevel``)::

    window surface     the letterbox: one black pixel stretched over the window (wp_viewport)
    └ picture          subsurface, desynchronized: the session framebuffer at its own resolution,
                       scaled to fit the window with its aspect ratio kept (wp_viewport), centred
      └ overlay        subsurface above it, no input region: the dimmed picture with a status bar,
                       or the idle / failure screen; unmapped while the session is live

Frames upload only their damage (plus what a reused buffer missed) into a swapchain of three shm
buffers and are paced by ``wl_surface.frame``: when the host shows frames slower than they come,
damage accumulates and the newest picture is drawn at the next callback. The session's cursor is
the host's own cursor (``wl_pointer.set_cursor``), so it moves without a round trip to the server.
Input is forwarded in session-output pixels; keys as evdev codes; the host's keymap text is sent as
:class:`KeymapChangedEvent` so the session types with the viewer's layout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from wayray.client.backend import (
    ClipboardChangedEvent,
    CloseRequestedEvent,
    ConnectionState,
    CursorImage,
    InputEvent,
    KeyEvent,
    KeymapChangedEvent,
    PointerAxisEvent,
    PointerButtonEvent,
    PointerMotionEvent,
    ScreenChangedEvent,
    TouchCancelEvent,
    TouchDownEvent,
    TouchFrameEvent,
    TouchMotionEvent,
    TouchUpEvent,
)
from wayray.client.backends.passthrough import KeyboardPassthrough
from wayray.client.backends.screens import draw_idle, draw_microphone, draw_status
from wayray.codec.geometry import RectLike
from wayray.toolkit.display import Client
from wayray.toolkit.draw import Canvas
from wayray.toolkit.seat import (
    Key,
    KeyboardFocus,
    KeymapEvent,
    PointerAxis,
    PointerButton,
    PointerEnter,
    PointerLeave,
    PointerMotion,
    SeatEvent,
    TouchCancel,
    TouchDown,
    TouchFrame,
    TouchMotion,
    TouchUp,
)
from wayray.toolkit.shm import Buffer, PixelFormat, Swapchain, single_pixel
from wayray.toolkit.surface import Subsurface
from wayray.toolkit.window import Window, WindowState
from wayray.wayland.pixman import Region

log = logging.getLogger(__name__)

APP_ID = "org.wayray.wrclient"
LETTERBOX = 0xFF000000


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the session picture sits in the window: logical offset and session px → logical factor."""

    x: int
    y: int
    width: int  # logical size the picture covers
    height: int
    factor: float  # logical pixels per session pixel


def fit(window: tuple[int, int], picture: tuple[int, int], scale: int, can_scale: bool) -> Layout:
    """Letterbox ``picture`` (session pixels) into ``window`` (logical pixels): aspect kept, centred.

    Without wp_viewporter nothing can be scaled: the picture is shown at one session pixel per
    physical pixel, centred (cut at the edges when larger).
    """
    ww, wh = window
    pw, ph = picture
    if pw <= 0 or ph <= 0:
        return Layout(0, 0, ww, wh, 1 / scale)
    factor = min(ww / pw, wh / ph) if can_scale else 1 / scale
    dw, dh = max(1, round(pw * factor)), max(1, round(ph * factor))
    return Layout((ww - dw) // 2, (wh - dh) // 2, dw, dh, factor)


class WaylandBackend:
    """A :class:`~wayray.client.backend.DisplayBackend` that is a Wayland client.

    ``options`` is wrclient's ``BackendOptions`` (its fields override the keywords of the same name).
    ``kiosk``: full screen, close requests ignored, the idle screen when no session is attached.
    ``fullscreen`` alone asks for full screen but keeps the close button meaningful. ``size`` is the
    window's size when the compositor leaves it to us. ``display`` names the Wayland socket
    (default ``$WAYLAND_DISPLAY``). ``clipboard``: exchange clipboard text with the host.
    ``keymap``: report this XKB keymap instead of the host's (and no host keymap changes).
    """

    def __init__(
        self,
        options: object | None = None,
        *,
        kiosk: bool = False,
        fullscreen: bool = False,
        size: tuple[int, int] = (1280, 720),
        title: str = "WayRay",
        app_id: str = APP_ID,
        display: str | None = None,
        clipboard: bool = True,
        keymap: str | None = None,
    ) -> None:
        if options is not None:
            # wrclient's BackendOptions (wayray.client.backend): read by name, so either side can grow.
            kiosk = bool(getattr(options, "kiosk", kiosk))
            fullscreen = bool(getattr(options, "fullscreen", fullscreen))
            size = getattr(options, "size", None) or size
            title = str(getattr(options, "title", title))
            keymap = getattr(options, "keymap", keymap)
            clipboard = bool(getattr(options, "clipboard", clipboard))
        self.kiosk = kiosk
        self.fullscreen = fullscreen or kiosk
        self.size = (int(size[0]), int(size[1]))
        self.keymap_override = keymap
        self.title = title
        self.app_id = app_id
        self.display_name = display
        self.clipboard_enabled = clipboard
        self._on_input: Callable[[InputEvent], None] = lambda _e: None
        self._started = False
        self._client: Client | None = None
        self._window: Window | None = None
        self._letterbox: Buffer | None = None
        self._letterbox_full: Buffer | None = None
        self._picture: Subsurface | None = None
        self._overlay: Subsurface | None = None
        self._swapchain: Swapchain | None = None
        self._canvas: Canvas | None = None
        self._wstate: WindowState | None = None
        self._layout = Layout(0, 0, size[0], size[1], 1.0)
        self._fb: npt.NDArray[np.uint32] | None = None
        self._pending = Region()
        self._draw_scheduled = False
        self._waiting_frame = False
        self._picture_mapped = False
        self._state = ConnectionState.CONNECTING
        #: The session hears this machine's microphone: a mark stays over the picture.
        self._microphone = False
        self._detail = ""
        self._cursor: CursorImage | None = None
        self._cursor_set = False
        self._cursor_pointer: Any = None
        self._keymap: str | None = None
        self._screen: ScreenChangedEvent | None = None
        self._keys_down: set[int] = set()
        self._buttons_down: set[int] = set()
        self._pointer_surface: Any = None
        self._touch_surfaces: dict[int, Any] = {}  # the surface each touch point went down on
        self._passthrough: KeyboardPassthrough | None = None
        self._clock: asyncio.TimerHandle | None = None
        self._watch: asyncio.Task[None] | None = None

    # DisplayBackend -------------------------------------------------------------------------------

    async def start(self, on_input: Callable[[InputEvent], None]) -> None:
        self._on_input = on_input
        client = await Client.connect(
            self._seat_event,
            name=self.display_name,
            key_repeat=False,  # the session's applications repeat keys themselves
            on_clipboard_text=self._clipboard_text if self.clipboard_enabled else None,
        )
        self._client = client
        try:
            await self._open_window(client)
        except BaseException:
            await self.close()
            raise
        self._started = True
        self._watch = asyncio.get_running_loop().create_task(self._watch_connection())
        log.info(
            "Wayland window %dx%d@%d%s",
            *self._screen_logical(),
            self._scale(),
            " (kiosk)" if self.kiosk else "",
        )

    async def _open_window(self, client: Client) -> None:
        window = client.create_window(
            title=self.title, app_id=self.app_id, size=self.size, fullscreen=self.fullscreen
        )
        self._window = window
        self._letterbox = client.conn.own(single_pixel(client.conn, client.shm, LETTERBOX))
        self._picture = client.conn.own(Subsurface(client, window.surface))
        self._overlay = client.conn.own(Subsurface(client, window.surface))
        self._overlay.place_above(self._picture.surface)
        self._overlay.surface.set_input_region([])  # clicks go through to the picture
        self._overlay.set_position(0, 0)
        self._swapchain = Swapchain(client.conn, client.shm, PixelFormat.XRGB8888, count=3)
        client.conn.own(self._swapchain)
        self._canvas = Canvas(
            self._overlay.surface, Swapchain(client.conn, client.shm, PixelFormat.ARGB8888, 2)
        )
        client.conn.own(self._canvas.swapchain)
        window.on_configure = self._configured
        window.on_close = self._close_requested
        await window.wait_configured()
        await client.conn.roundtrip()
        self._screen = self.screen()
        self._apply_cursor()  # set_cursor may have come before the pointer existed
        self._passthrough = KeyboardPassthrough(
            client.shortcuts_inhibit_manager, client.conn, kiosk=self.kiosk
        )
        self._update_passthrough()

    def _update_passthrough(self) -> None:
        """Take the local desktop's shortcuts while full screen (always in kiosk mode)."""
        if self._passthrough is None or self._window is None or self._client is None:
            return
        seat = self._client.seat
        self._passthrough.update(
            surface=self._window.surface.proxy,
            seat=seat.proxy if seat is not None else None,
            fullscreen=self._wstate is not None and self._wstate.fullscreen,
        )

    def screen(self) -> ScreenChangedEvent:
        st = self._wstate
        if st is None:
            return ScreenChangedEvent(self.size[0], self.size[1], 120)
        w, h = st.buffer_size
        return ScreenChangedEvent(w, h, st.scale * 120)

    def keymap(self) -> str | None:
        return self.keymap_override if self.keymap_override is not None else self._keymap

    def present(self, framebuffer: npt.NDArray[np.uint32], damage: Sequence[RectLike]) -> None:
        if self._swapchain is None:
            return
        h, w = framebuffer.shape
        if (w, h) != (self._swapchain.width, self._swapchain.height):
            self._swapchain.resize(w, h)
            self._pending = Region.rect(0, 0, w, h)
            self._relayout()
        else:
            rects = []
            for r in damage:
                x, y, rw, rh = int(r.x), int(r.y), int(r.width), int(r.height)
                self._pending.add_rect(x, y, rw, rh)
                rects.append((x, y, rw, rh))
            self._swapchain.damage(rects)
        first = self._fb is None
        self._fb = framebuffer
        self._schedule_draw()
        if first and self._state in (ConnectionState.CONNECTING, ConnectionState.RECONNECTING):
            self._draw_overlay()  # from the full "connecting" screen to the dimmed picture

    def set_cursor(self, image: CursorImage | None) -> None:
        self._cursor = image
        self._cursor_set = True
        self._apply_cursor()

    def move_cursor(self, x: int, y: int, visible: bool) -> None:
        """The host compositor draws the cursor where the viewer's pointer is: nothing to do."""

    def set_state(self, state: ConnectionState, detail: str = "") -> None:
        if (state, detail) == (self._state, self._detail) and self._started:
            return
        was_idle = self._state is ConnectionState.IDLE
        self._state, self._detail = state, detail
        if was_idle and state is not ConnectionState.IDLE:
            self._schedule_draw()
        if state is ConnectionState.IDLE:
            # Privacy: the last user's picture must not linger behind the idle screen.
            self._fb = None
            self._pending = Region()
            if self._picture is not None and self._picture_mapped:
                self._picture.surface.attach(None)
                self._picture.surface.commit()
                self._picture_mapped = False
        self._draw_overlay()
        self._apply_cursor()
        self._schedule_clock()

    def set_microphone(self, live: bool) -> None:
        if live != self._microphone:
            self._microphone = live
            self._draw_overlay()

    def set_clipboard(self, text: str) -> None:
        if self._client is not None and self._client.clipboard is not None:
            self._client.clipboard.set_text(text)

    async def close(self) -> None:
        if self._letterbox_full is not None:
            self._letterbox_full.destroy()
            self._letterbox_full = None
        if self._clock is not None:
            self._clock.cancel()
        if self._watch is not None:
            self._watch.cancel()
        if self._client is not None:
            await self._client.close()
            self._client = None

    # Window and layout ----------------------------------------------------------------------------

    def _scale(self) -> int:
        return self._wstate.scale if self._wstate is not None else 1

    def _screen_logical(self) -> tuple[int, int]:
        st = self._wstate
        return (st.width, st.height) if st is not None else self.size

    def _configured(self, state: WindowState) -> None:
        self._wstate = state
        assert self._window is not None and self._client is not None
        surface = self._window.surface
        if surface.set_destination(state.width, state.height):
            background = self._letterbox  # one black pixel, stretched
        else:
            # No wp_viewporter: a black buffer of the window's size.
            w, h = state.buffer_size
            if self._letterbox_full is None or (self._letterbox_full.width, self._letterbox_full.height) != (
                w,
                h,
            ):
                if self._letterbox_full is not None:
                    self._letterbox_full.destroy()
                self._letterbox_full = Buffer(
                    self._client.conn, self._client.shm, w, h, PixelFormat.XRGB8888
                )
                self._letterbox_full.pixels[:] = LETTERBOX
            background = self._letterbox_full
            surface.set_buffer_scale(state.scale)
        assert background is not None
        surface.set_opaque(state.width, state.height)
        surface.attach(background, [(0, 0, background.width, background.height)])
        self._window.set_geometry(state.width, state.height)
        self._relayout()
        self._draw_overlay()
        surface.commit()
        self._update_passthrough()
        screen = self.screen()
        if self._started and screen != self._screen:
            self._screen = screen
            self._on_input(screen)

    def _relayout(self) -> None:
        if self._picture is None or self._swapchain is None:
            return
        client = self._client
        assert client is not None
        size = (self._swapchain.width, self._swapchain.height)
        layout = fit(self._screen_logical(), size, self._scale(), client.viewporter is not None)
        changed = layout != self._layout
        self._layout = layout
        self._picture.set_position(layout.x, layout.y)
        if client.viewporter is not None:
            self._picture.surface.set_destination(layout.width, layout.height)
        else:
            s = self._scale()
            self._picture.surface.set_buffer_scale(s if size[0] % s == 0 and size[1] % s == 0 else 1)
        if self._window is not None:
            self._window.surface.commit()  # the subsurface position is parent state
        if self._picture_mapped:
            self._picture.surface.commit()  # the viewport is the picture's own state
        if changed:
            self._apply_cursor()

    # The picture ----------------------------------------------------------------------------------

    def _schedule_draw(self) -> None:
        if self._draw_scheduled or self._client is None or self._state is ConnectionState.IDLE:
            return
        self._draw_scheduled = True
        self._client.conn.loop.call_soon(self._draw_picture)

    def _draw_picture(self) -> None:
        self._draw_scheduled = False
        picture, swapchain, fb = self._picture, self._swapchain, self._fb
        if picture is None or swapchain is None or fb is None or not self._pending:
            return
        if picture.surface.frame_pending:
            self._wait_frame()
            return
        buf = swapchain.acquire()
        if buf is None:
            self._wait_frame()
            return
        h, w = fb.shape
        if (buf.width, buf.height) != (w, h):
            return  # a resize is under way; the next present() brings the new size
        if not self._picture_mapped:
            self._pending = Region.rect(0, 0, w, h)  # an unmapped surface shows nothing: send it all
        for box in buf.stale.boxes():
            x1, y1, x2, y2 = max(box.x1, 0), max(box.y1, 0), min(box.x2, w), min(box.y2, h)
            if x2 > x1 and y2 > y1:
                buf.pixels[y1:y2, x1:x2] = fb[y1:y2, x1:x2]
        buf.stale = Region()
        self._pending.intersect_rect(0, 0, w, h)
        damage = [(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1) for b in self._pending.boxes()]
        self._pending = Region()
        picture.surface.attach(buf, damage)
        picture.surface.request_frame(lambda: None)
        picture.surface.commit()
        if not self._picture_mapped:
            self._picture_mapped = True
            self._relayout()

    def _wait_frame(self) -> None:
        if self._waiting_frame or self._picture is None:
            return
        self._waiting_frame = True

        def again() -> None:
            self._waiting_frame = False
            self._schedule_draw()

        self._picture.surface.request_frame(again)

    # The overlay ----------------------------------------------------------------------------------

    def _draw_overlay(self) -> None:
        canvas, overlay, st = self._canvas, self._overlay, self._wstate
        if canvas is None or overlay is None or st is None:
            return
        if self._state is ConnectionState.CONNECTED and not self._microphone:
            canvas.hide()
            return
        w, h = st.buffer_size
        canvas.resize(w, h, st.scale)
        canvas.image.paste((0, 0, 0, 0), (0, 0, w, h))
        if self._state is ConnectionState.CONNECTED:
            draw_microphone(canvas.image)
        elif self._state is ConnectionState.IDLE:
            draw_idle(canvas.image, self._detail)
        else:
            draw_status(canvas.image, self._state, self._detail, has_picture=self._fb is not None)
        canvas.invalidate()
        canvas.present()

    def _schedule_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
        if self._state is ConnectionState.IDLE and self._client is not None:
            delay = 60.5 - time.time() % 60  # just after the minute turns
            self._clock = self._client.conn.loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._clock = None
        self._draw_overlay()
        self._schedule_clock()

    # Cursor ---------------------------------------------------------------------------------------

    def _apply_cursor(self) -> None:
        client = self._client
        if client is None or client.seat is None or client.seat.pointer is None:
            return
        pointer = client.seat.pointer
        self._cursor_pointer = pointer
        if self._state in (ConnectionState.IDLE, ConnectionState.FAILED):
            pointer.set_cursor(None)
            return
        if not self._cursor_set:
            pointer.set_default_cursor()
            return
        image = self._cursor
        if image is None:
            pointer.set_cursor(None)
            return
        f = self._layout.factor
        h, w = image.pixels.shape
        hotspot = (round(image.hotspot_x * f), round(image.hotspot_y * f))
        if client.viewporter is not None:
            pointer.set_cursor(image.pixels, hotspot, size=(max(1, round(w * f)), max(1, round(h * f))))
        else:
            s = self._scale()
            pointer.set_cursor(image.pixels, hotspot, buffer_scale=s if w % s == 0 and h % s == 0 else 1)

    # Input ----------------------------------------------------------------------------------------

    def _emit(self, event: InputEvent) -> None:
        if self._started:
            self._on_input(event)

    def _to_session(self, x: float, y: float, surface: Any = None) -> tuple[float, float]:
        """Surface-local coordinates of ``surface`` (default: the one under the pointer) → session
        output pixels."""
        lx, ly = x, y
        surface = self._pointer_surface if surface is None else surface
        if self._picture is not None and surface is not self._picture.surface.proxy:
            lx, ly = x - self._layout.x, y - self._layout.y  # on the letterbox: window → picture
        f = self._layout.factor
        sx, sy = lx / f, ly / f
        if self._swapchain is not None and self._swapchain.width > 0:
            sx = min(max(sx, 0.0), self._swapchain.width - 1.0)
            sy = min(max(sy, 0.0), self._swapchain.height - 1.0)
        return sx, sy

    def _seat_event(self, event: SeatEvent) -> None:
        match event:
            case KeymapEvent():
                self._keymap_event(event)
            case Key():
                self._key_event(event)
            case KeyboardFocus():
                self._keyboard_focus(event)
            case PointerEnter():
                self._pointer_enter(event)
            case PointerMotion():
                self._emit(PointerMotionEvent(*self._to_session(event.x, event.y)))
            case PointerButton():
                self._pointer_button(event)
            case PointerAxis():
                self._emit(PointerAxisEvent(event.axis, event.value / self._layout.factor, event.discrete))
            case PointerLeave():
                self._pointer_leave()
            case TouchDown() | TouchMotion() | TouchUp() | TouchFrame() | TouchCancel():
                self._touch_event(event)

    def _keymap_event(self, event: KeymapEvent) -> None:
        if event.text != self._keymap:
            self._keymap = event.text
            if self.keymap_override is None:  # a keymap given on the command line stays
                self._emit(KeymapChangedEvent(event.text))

    def _key_event(self, event: Key) -> None:
        m = event.modifiers
        if self._passthrough is not None and self._passthrough.escape(
            event.evdev_code, event.pressed, m.ctrl, m.alt, m.shift
        ):
            return  # the escape chord's Escape is the viewer's, not the session's
        if event.pressed:
            self._keys_down.add(event.evdev_code)
        elif event.evdev_code not in self._keys_down:
            return  # released a key pressed before we had focus
        else:
            self._keys_down.discard(event.evdev_code)
        self._emit(KeyEvent(event.evdev_code, event.pressed))

    def _keyboard_focus(self, event: KeyboardFocus) -> None:
        if event.surface is None:
            # Focus went elsewhere: release what the session still thinks is held.
            for code in sorted(self._keys_down):
                self._emit(KeyEvent(code, False))
            self._keys_down.clear()
        elif self._client is not None and self._client.clipboard is not None:
            self._client.clipboard.focus_gained()

    def _pointer_enter(self, event: PointerEnter) -> None:
        self._pointer_surface = event.surface
        if self._client is not None and self._client.seat is not None:
            if self._cursor_pointer is not self._client.seat.pointer:
                self._apply_cursor()  # a pointer that appeared after the cursor was set
        self._emit(PointerMotionEvent(*self._to_session(event.x, event.y)))

    def _pointer_button(self, event: PointerButton) -> None:
        if event.pressed:
            self._buttons_down.add(event.button)
        else:
            self._buttons_down.discard(event.button)
        self._emit(PointerButtonEvent(event.button, event.pressed))

    def _pointer_leave(self) -> None:
        """The pointer left the window: release the buttons the session still thinks are held."""
        self._pointer_surface = None
        for button in sorted(self._buttons_down):
            self._emit(PointerButtonEvent(button, False))
        self._buttons_down.clear()

    def _touch_event(self, event: TouchDown | TouchMotion | TouchUp | TouchFrame | TouchCancel) -> None:
        """A touch screen's points, in session pixels, each mapped from the surface it went down on."""
        match event:
            case TouchDown():
                self._touch_surfaces[event.id] = event.surface
                self._emit(TouchDownEvent(event.id, *self._to_session(event.x, event.y, event.surface)))
            case TouchMotion():
                surface = self._touch_surfaces.get(event.id)
                if surface is not None:
                    self._emit(TouchMotionEvent(event.id, *self._to_session(event.x, event.y, surface)))
            case TouchUp():
                if self._touch_surfaces.pop(event.id, None) is not None:
                    self._emit(TouchUpEvent(event.id))
            case TouchFrame():
                self._emit(TouchFrameEvent())
            case TouchCancel():
                self._touch_surfaces.clear()
                self._emit(TouchCancelEvent())

    def _clipboard_text(self, text: str) -> None:
        self._emit(ClipboardChangedEvent(text))

    def _close_requested(self) -> None:
        if self.kiosk:
            log.info("close request ignored (kiosk mode)")
            return
        self._emit(CloseRequestedEvent())

    async def _watch_connection(self) -> None:
        """The host compositor going away ends the viewer: tell the session logic to close."""
        assert self._client is not None
        try:
            await self._client.conn.wait_closed()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.error("%s", err)
            self._on_input(CloseRequestedEvent())
