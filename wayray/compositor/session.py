"""``SessionCompositor``: the session compositor as the rest of WayRay uses it, in process.

Runs on the caller's asyncio loop::

    comp = SessionCompositor(size=(1920, 1080))
    await comp.start()                      # listening on comp.runtime_dir / comp.socket_name
    frames = comp.consumer()                # frames out (see frames.py)
    comp.key(KEY_A, True); comp.key(KEY_A, False)
    comp.pointer_motion(400, 300); comp.pointer_button(BTN_LEFT, True)
    comp.touch_down(0, 200, 100); comp.touch_frame(); comp.touch_up(0); comp.touch_frame()
    comp.resize_output(2560, 1440)
    comp.set_selection({"text/plain;charset=utf-8": b"hi"})
    await comp.close()

Coordinates in this API are output pixels; evdev codes for keys and buttons.
"""

from __future__ import annotations

import asyncio
import enum
import io
import logging
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wayray.common.errors import WayRayError
from wayray.common.files import write_atomic
from wayray.common.inputmethod import input_method_environment
from wayray.compositor.core import Core
from wayray.compositor.cursor import CursorState
from wayray.compositor.data_device import CompositorSource, Selection, SelectionKind
from wayray.compositor.extensions import register_extensions
from wayray.compositor.frames import FrameConsumer
from wayray.compositor.geometry import Rect
from wayray.compositor.limits import check_output_size
from wayray.compositor.seat import Axis
from wayray.compositor.wm_protocol import WmProcess
from wayray.compositor.xdisplay import XDisplay
from wayray.compositor.xwayland import Xwayland, find_xwayland

log = logging.getLogger(__name__)

__all__ = ["Axis", "CursorState", "Decorations", "SelectionKind", "SessionCompositor", "WindowInfo"]


class Decorations(enum.StrEnum):
    """Who draws title bars for clients that speak xdg-decoration: the client, or the compositor."""

    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True)
class WindowInfo:
    """A toplevel as a person sees it (for tests, the greeter and admin tools)."""

    title: str
    app_id: str
    rect: Rect  # window geometry in output pixels
    focused: bool
    maximized: bool
    fullscreen: bool
    minimized: bool
    pid: int
    #: Drawn: not minimized, not hidden by the window manager, on the workspace shown.
    shown: bool = True
    workspace: int = 0


class SessionCompositor:
    def __init__(
        self,
        size: tuple[int, int] = (1280, 720),
        *,
        scale: int = 1,
        refresh_hz: float = 60.0,
        idle_hz: float = 1.0,
        socket_name: str | None = None,
        runtime_dir: Path | str | None = None,
        decorations: Decorations | str = Decorations.CLIENT,
        on_selection: Callable[[SelectionKind, list[str] | None], None] | None = None,
        x11: bool = False,
        window_manager: tuple[str, ...] = (),
        window_manager_env: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        """``window_manager``: a program to start as the session's window manager once the socket is
        up (or call ``start_window_manager`` later); () = the built-in floating one."""
        check_output_size(size[0], size[1], scale)
        if refresh_hz <= 0 or idle_hz <= 0:
            raise WayRayError(f"frame rates must be positive (refresh {refresh_hz} Hz, idle {idle_hz} Hz)")
        self._size = size
        self._scale = scale
        self._refresh_hz = refresh_hz
        self._idle_hz = idle_hz
        self._requested_socket = socket_name
        self._runtime_dir = Path(runtime_dir) if runtime_dir is not None else None
        self.decorations = Decorations(decorations)
        self._on_selection = on_selection
        self.x11 = x11
        self.window_manager = tuple(window_manager)
        self._wm_env = window_manager_env
        self.wm_process: WmProcess | None = None
        self._core: Core | None = None
        self.socket_name = ""

    # Life -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the display, listen on the socket and start serving clients on the running loop."""
        runtime = self._runtime_dir
        if runtime is None:
            env = os.environ.get("XDG_RUNTIME_DIR")
            if not env:
                raise WayRayError(
                    "XDG_RUNTIME_DIR is not set and no runtime_dir was given",
                    hint="set XDG_RUNTIME_DIR to a private directory (mode 0700) owned by the session user",
                )
            runtime = Path(env)
        if not runtime.is_dir():
            raise WayRayError(f"runtime directory {runtime} does not exist")
        self._runtime_dir = runtime
        loop = asyncio.get_running_loop()
        core = Core(loop, self._size, self._scale, self._refresh_hz, self._idle_hz)
        core.create_globals()
        register_extensions(core.display, core.seat, self.decorations.value)
        self._core = core
        if self.x11:
            core.xwayland = start_x11(core, lambda: self.client_env(x11=False))
            # Whoever starts the session's programs once the Wayland socket exists (wrsessd) finds
            # the X display next to it (docs/xwayland.md §8): written before the socket appears.
            if core.xwayland is not None and self._requested_socket:
                _write_x_display(runtime / self._requested_socket, core.xwayland.display.name)
        try:
            self.socket_name = core.display.add_socket(runtime, self._requested_socket)
        except OSError as err:
            self._core = None
            core.destroy()
            if self._requested_socket:
                Path(f"{runtime / self._requested_socket}{X_DISPLAY_SUFFIX}").unlink(missing_ok=True)
            raise WayRayError(
                f"cannot create the Wayland socket: {err}",
                hint="pick another socket name or clean the runtime dir",
            ) from err
        if self._on_selection is not None:
            core.clipboard.listeners.append(self._on_selection)
            core.primary.listeners.append(self._on_selection)
        core.display.attach(loop)
        if core.xwayland is not None and not self._requested_socket:
            _write_x_display(runtime / self.socket_name, core.xwayland.display.name)
        core.schedule_frame()
        if self.window_manager:
            self.start_window_manager(self.window_manager, self._wm_env)
        log.info(
            "session compositor on %s (%dx%d@%d, %g Hz)",
            self.socket_path,
            self._size[0],
            self._size[1],
            self._scale,
            self._refresh_hz,
        )

    def start_window_manager(
        self, argv: tuple[str, ...], env: Callable[[], dict[str, str]] | None = None
    ) -> None:
        """Start ``argv`` as the session's window manager: the only client that may bind
        wayray_wm_manager_v1, started again whenever it ends (docs/wm-protocol.md). ``env`` makes its
        environment (default: ``client_env``)."""
        if self.wm_process is not None:
            raise WayRayError("the session already has a window manager")
        core = self.core
        self.window_manager = tuple(argv)
        self.wm_process = WmProcess(core.wm_service, self.window_manager, env or self.client_env, core.loop)
        self.wm_process.start()

    async def close(self) -> None:
        """Disconnect every client and remove the socket."""
        if self.wm_process is not None:
            await self.wm_process.close()
            self.wm_process = None
        if self._core is not None:
            for c in list(self._core.consumers):
                c.close()
            self._core.destroy()
            self._core = None
            if self._runtime_dir is not None and self.socket_name:
                Path(f"{self._runtime_dir / self.socket_name}{X_DISPLAY_SUFFIX}").unlink(missing_ok=True)

    async def __aenter__(self) -> SessionCompositor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def running(self) -> bool:
        return self._core is not None

    @property
    def core(self) -> Core:
        if self._core is None:
            raise WayRayError("the session compositor is not running (call start() first)")
        return self._core

    @property
    def runtime_dir(self) -> Path:
        if self._runtime_dir is None:
            raise WayRayError("the session compositor is not running (call start() first)")
        return self._runtime_dir

    @property
    def socket_path(self) -> Path:
        return self.runtime_dir / self.socket_name

    @property
    def x_display(self) -> str | None:
        """The session's X display (``:N``), if X11 is on and a display could be reserved."""
        xw = self.core.xwayland
        return xw.display.name if xw is not None else None

    def client_env(self, base: dict[str, str] | None = None, *, x11: bool = True) -> dict[str, str]:
        """Environment for a client of this session (WAYLAND_DISPLAY, XDG_RUNTIME_DIR, DISPLAY...)."""
        env = dict(os.environ if base is None else base)
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DEBUG", None)
        env.update(
            WAYLAND_DISPLAY=self.socket_name,
            XDG_RUNTIME_DIR=str(self.runtime_dir),
            XDG_SESSION_TYPE="wayland",
            GDK_BACKEND="wayland",
            QT_QPA_PLATFORM="wayland",
            SDL_VIDEODRIVER="wayland",
            MOZ_ENABLE_WAYLAND="1",
            LIBGL_ALWAYS_SOFTWARE="1",
            GSK_RENDERER="cairo",
        )
        env.update(input_method_environment(env))  # Qt 5 reaches fcitx5 through its own plugin
        display = self.x_display if x11 and self.running else None
        if display is not None:
            env["DISPLAY"] = display
        return env

    # Frames ---------------------------------------------------------------------------------------

    @property
    def viewed(self) -> bool:
        return self.core.viewed

    @viewed.setter
    def viewed(self, value: bool) -> None:
        """When False frame callbacks run at ``idle_hz`` and consumers are woken at most that often."""
        self.core.set_viewed(bool(value))

    def park(self) -> bool:
        """Free the output framebuffer while the session is not viewed and has no frame consumer
        (True if it is freed); the next consumer's first frame, a screenshot or ``framebuffer``
        draws it again whole, exactly as it would have been."""
        return self.core.park()

    def consumer(self, on_change: Callable[[], None] | None = None) -> FrameConsumer:
        """A new frame consumer; its first frame has full damage."""
        c = FrameConsumer(self.core, on_change)
        self.core.add_consumer(c)
        return c

    @property
    def framebuffer(self) -> np.ndarray:
        """The live framebuffer (read-only view; changes with every composite)."""
        view = self.core.renderer.framebuffer.view()
        view.flags.writeable = False
        return view

    @property
    def size(self) -> tuple[int, int]:
        return (self.core.output.width, self.core.output.height)

    @property
    def scale(self) -> int:
        return self.core.output.scale

    @property
    def frame_seq(self) -> int:
        return self.core.frame_seq

    def cursor(self) -> CursorState:
        return self.core.seat.cursor_state()

    def screenshot_png(self, *, include_cursor: bool = False) -> bytes:
        """The output as a PNG (composited now, so it shows everything committed so far)."""
        from PIL import Image

        self.core.composite()
        fb = self.core.renderer.framebuffer
        rgb = np.empty(fb.shape + (3,), dtype=np.uint8)
        rgb[..., 0] = (fb >> 16) & 0xFF
        rgb[..., 1] = (fb >> 8) & 0xFF
        rgb[..., 2] = fb & 0xFF
        if include_cursor:
            _draw_cursor(rgb, self.cursor())
        out = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(out, "PNG")
        return out.getvalue()

    def screenshot(self, path: Path | str, *, include_cursor: bool = False) -> None:
        """Write a PNG of the output to ``path`` (atomically: a reader never sees half a file)."""
        path = Path(path)
        write_atomic(path, self.screenshot_png(include_cursor=include_cursor), mode=None, fsync=False)

    # Input ----------------------------------------------------------------------------------------

    def set_keymap(self, keymap_text: str | None) -> None:
        """Use the viewer's XKB keymap (text, xkb v1 format); None restores the default US layout.

        Raises ``KeymapError`` (a ValueError) when the text does not compile; the old keymap stays.
        """
        self.core.seat.set_keymap(keymap_text)

    @property
    def keymap_text(self) -> str:
        return self.core.seat.keymap.text

    def key(self, evdev_code: int, pressed: bool) -> None:
        self.core.seat.key(evdev_code, pressed)

    def pointer_motion(self, x: float, y: float) -> None:
        """Absolute pointer position in output pixels."""
        s = self.core.output.scale
        self.core.seat.pointer_motion(x / s, y / s)

    def pointer_button(self, evdev_button: int, pressed: bool) -> None:
        self.core.seat.pointer_button(evdev_button, pressed)

    def pointer_axis(self, axis: Axis | int, value: float, discrete: int | None = None) -> None:
        """Scroll: ``value`` in surface pixels (positive: down/right), ``discrete`` wheel notches if any."""
        self.core.seat.pointer_axis(Axis(axis), value, discrete)

    def touch_down(self, touch_id: int, x: float, y: float) -> bool:
        """A touch point goes down at (x, y) output pixels; False when it is ignored (that id is down
        already, or too many points are)."""
        s = self.core.output.scale
        return self.core.seat.touch.down(touch_id, x / s, y / s)

    def touch_motion(self, touch_id: int, x: float, y: float) -> bool:
        """Touch point ``touch_id`` moved to (x, y) output pixels; False when it is not down."""
        s = self.core.output.scale
        return self.core.seat.touch.motion(touch_id, x / s, y / s)

    def touch_up(self, touch_id: int) -> bool:
        """Touch point ``touch_id`` was lifted; False when it is not down."""
        return self.core.seat.touch.up(touch_id)

    def touch_frame(self) -> None:
        """The touch events since the previous frame belong together (``wl_touch.frame``)."""
        self.core.seat.touch.frame()

    def touch_cancel(self) -> None:
        """Every touch point is gone and none of it was meant (``wl_touch.cancel``)."""
        self.core.seat.touch.cancel()

    def release_all(self) -> None:
        """The viewer is gone: release every held key and button."""
        self.core.seat.release_all()

    # Output ---------------------------------------------------------------------------------------

    def resize_output(self, width: int, height: int, scale: int = 1) -> None:
        check_output_size(width, height, scale)
        self.core.resize_output(width, height, scale)

    def reconfiguring(self) -> bool:
        """Whether a mapped window or layer surface was asked to change (a configure, e.g. after an output
        resize) and has not answered yet."""
        core = self.core
        if any(w.mapped and w.toplevel.alive and w.toplevel.redrawing for w in core.wm.windows):
            return True
        return any(ls.mapped and ls.alive and ls.sent_serials for ls in core.layers.surfaces)

    async def settle(self, timeout: float) -> bool:
        """Give the clients up to ``timeout`` seconds to answer their configures (draw at a new output
        size), then composite, so the next frame shows them as they are now. Returns whether every one
        answered in time (one that did not is shown as it was)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.reconfiguring() and loop.time() < deadline:
            self.core.display.flush()  # the configures out now, not at the next frame
            await asyncio.sleep(0.005)
        self.core.scene_changed()
        self.core.composite()
        return not self.reconfiguring()

    # Selection ------------------------------------------------------------------------------------

    def _selection(self, primary: bool) -> Selection:
        return self.core.primary if primary else self.core.clipboard

    def set_selection(self, data: dict[str, bytes] | None, *, primary: bool = False) -> None:
        """Offer ``{mime: bytes}`` to clients as the selection (None clears it)."""
        sel = self._selection(primary)
        source = CompositorSource(self.core.pipe_writer, data) if data else None
        sel.set(source, from_client=False)

    def selection_mime_types(self, *, primary: bool = False) -> list[str] | None:
        src = self._selection(primary).source
        return list(src.mime_types) if src is not None else None

    async def get_selection(self, mime: str, *, primary: bool = False) -> bytes | None:
        """The current selection's data as ``mime`` (None when nobody offers that type)."""
        return await self._selection(primary).read(mime)

    # Picture and sound ----------------------------------------------------------------------------

    def set_av_sync(self, pids: Collection[int], delay_ms: float) -> None:
        """Show the pixels of the windows whose client pid is in ``pids`` ``delay_ms`` late, so their
        picture meets their sound (issue 13); ``set_av_sync((), 0)`` turns it off.

        ``pid`` is ``WindowInfo.pid``: a Wayland client's (from its socket), or an X window's
        ``_NET_WM_PID`` (0, never matched, when the program does not set it). Only the pixels of the
        window's surfaces, subsurfaces and popups wait: commits, frame callbacks, geometry, input and
        focus are current, and other windows are not delayed. The delay is clamped to 500 ms and the
        pixels held to 64 MiB a session (docs/compositor.md, "Picture held back for its sound").
        Call it whenever the set or the delay changes. Raises ValueError for a delay that is not a
        finite number."""
        self.core.set_av_sync(pids, delay_ms)

    # Windows --------------------------------------------------------------------------------------

    def windows(self) -> list[WindowInfo]:
        """Mapped toplevels, bottom to top."""
        core = self.core
        s = core.output.scale
        out = []
        for w in list(core.wm.stack) + [w for w in core.wm.windows if w.mapped and w not in core.wm.stack]:
            out.append(
                WindowInfo(
                    title=w.title,
                    app_id=w.app_id,
                    rect=w.rect.scale(s),
                    focused=core.wm.focused is w,
                    maximized=w.maximized,
                    fullscreen=w.fullscreen,
                    minimized=w.minimized,
                    pid=w.toplevel.pid,
                    shown=w.shown,
                    workspace=w.workspace,
                )
            )
        return out


#: ``<runtime dir>/<Wayland socket><suffix>`` holds the session's ``DISPLAY`` (``:N`` and a newline).
X_DISPLAY_SUFFIX = ".x11"


def _write_x_display(socket_path: Path, name: str) -> None:
    write_atomic(Path(f"{socket_path}{X_DISPLAY_SUFFIX}"), f"{name}\n".encode(), mode=0o600, fsync=False)


def start_x11(core: Core, env: Callable[[], dict[str, str]]) -> Xwayland | None:
    """Reserve the session's X display for Xwayland to serve on demand (None: X11 is unavailable,
    which is logged: Wayland clients are served all the same)."""
    binary = find_xwayland()
    if binary is None:
        log.warning("X11 is on but Xwayland is not installed (package xwayland): X clients cannot run")
        return None
    try:
        display = XDisplay.reserve()
    except OSError as err:
        log.error("cannot reserve an X display: %s; X clients cannot run in this session", err)
        return None
    log.info("X display %s reserved; Xwayland starts with its first client", display.name)
    return Xwayland(core, display, binary, env)


def _draw_cursor(rgb: np.ndarray, cursor: CursorState) -> None:
    """Blend the cursor (premultiplied ARGB) over ``rgb`` (H x W x 3 uint8) where it is on screen."""
    if not cursor.visible or cursor.image is None:
        return
    img = cursor.image
    h, w = img.shape
    x0, y0 = cursor.x - cursor.hotspot[0], cursor.y - cursor.hotspot[1]
    H, W = rgb.shape[:2]
    x1, y1, x2, y2 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if x2 <= x1 or y2 <= y1:
        return
    src = img[y1 - y0 : y2 - y0, x1 - x0 : x2 - x0].astype(np.uint32)
    dst = rgb[y1:y2, x1:x2]
    keep = 255 - (src >> 24)  # in uint32: c + under * (255 - a) overflows uint8 (it wrapped before)
    for i, shift in enumerate((16, 8, 0)):
        blended = ((src >> shift) & 0xFF) + dst[..., i].astype(np.uint32) * keep // 255
        dst[..., i] = np.minimum(blended, 255)
