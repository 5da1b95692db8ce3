"""An ``xdg_toplevel`` window: configure/ack, size negotiation, title, fullscreen, close, scale."""

from __future__ import annotations

import asyncio
import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from wayray.toolkit.surface import Surface

if TYPE_CHECKING:
    from wayray.toolkit.display import Client


class ToplevelState(enum.IntEnum):
    """xdg_toplevel.state values we act on."""

    MAXIMIZED = 1
    FULLSCREEN = 2
    RESIZING = 3
    ACTIVATED = 4


@dataclass(frozen=True, slots=True)
class WindowState:
    """A configured window: size in surface (logical) pixels, the scale to draw at, and its states."""

    width: int
    height: int
    scale: int = 1
    fullscreen: bool = False
    maximized: bool = False
    activated: bool = False

    @property
    def buffer_size(self) -> tuple[int, int]:
        """Size of a buffer that fills the window at full resolution (physical pixels)."""
        return self.width * self.scale, self.height * self.scale


class Window:
    """A toplevel window. Set ``on_configure`` (draw and commit a buffer of the new size) and ``on_close``.

    ``size`` is what we ask for when the compositor leaves the size to us (a 0x0 configure). With
    ``fullscreen`` the window asks to cover an output from its first commit (kiosks under cage).
    Server-side decorations are requested where xdg-decoration exists; elsewhere the window has none.
    """

    def __init__(
        self,
        client: Client,
        *,
        title: str,
        app_id: str,
        size: tuple[int, int] = (1280, 720),
        fullscreen: bool = False,
        min_size: tuple[int, int] | None = None,
    ) -> None:
        self.client = client
        self.conn = client.conn
        self.surface = Surface(client)
        self.preferred_size = size
        self.on_configure: Callable[[WindowState], None] | None = None
        self.on_close: Callable[[], None] | None = None
        self.state: WindowState | None = None
        self._pending: WindowState = WindowState(size[0], size[1])
        self._configured: asyncio.Future[None] = client.conn.loop.create_future()
        self.xdg_surface = self.conn.track(client.wm_base.get_xdg_surface(self.surface.proxy))
        self.toplevel = self.conn.track(self.xdg_surface.get_toplevel())
        self.decoration: Any = None
        self.conn.listen(self.xdg_surface, configure=self._surface_configure)
        self.conn.listen(
            self.toplevel,
            configure=self._toplevel_configure,
            close=self._close,
            configure_bounds=lambda _w, _h: None,
            wm_capabilities=lambda _caps: None,
        )
        self.toplevel.set_title(title)
        self.toplevel.set_app_id(app_id)
        if min_size is not None:
            self.toplevel.set_min_size(*min_size)
        if client.decoration_manager is not None:
            self.decoration = self.conn.track(
                client.decoration_manager.get_toplevel_decoration(self.toplevel)
            )
            self.conn.listen(self.decoration, configure=lambda _mode: None)
            self.decoration.set_mode(2)  # server_side: a title bar where the compositor draws them
        if fullscreen:
            self.toplevel.set_fullscreen(None)
        self.surface.on_scale.append(self._scale_changed)
        self.surface.commit()  # the initial commit, without a buffer: asks for the first configure

    async def wait_configured(self) -> WindowState:
        closed = asyncio.ensure_future(self.conn.wait_closed())
        try:
            await asyncio.wait({self._configured, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if self.state is None:
            await self.conn.wait_closed()
            raise RuntimeError("the window was never configured")
        return self.state

    def set_title(self, title: str) -> None:
        self.toplevel.set_title(title)
        self.conn.flush()

    def set_fullscreen(self, on: bool) -> None:
        if on:
            self.toplevel.set_fullscreen(None)
        else:
            self.toplevel.unset_fullscreen()
        self.conn.flush()

    def set_geometry(self, width: int, height: int) -> None:
        """The window's visible bounds (subsurfaces beyond them are not counted as window)."""
        self.xdg_surface.set_window_geometry(0, 0, width, height)

    def _toplevel_configure(self, width: int, height: int, states: bytes) -> None:
        codes = set(struct.unpack(f"={len(states) // 4}I", states)) if states else set()
        base = self.state or WindowState(*self.preferred_size)
        w = width if width > 0 else base.width
        h = height if height > 0 else base.height
        self._pending = WindowState(
            width=w,
            height=h,
            scale=self.surface.scale,
            fullscreen=ToplevelState.FULLSCREEN in codes,
            maximized=ToplevelState.MAXIMIZED in codes,
            activated=ToplevelState.ACTIVATED in codes,
        )

    def _surface_configure(self, serial: int) -> None:
        self.xdg_surface.ack_configure(serial)
        self.state = replace(self._pending, scale=self.surface.scale)
        if not self._configured.done():
            self._configured.set_result(None)
        if self.on_configure is not None:
            self.on_configure(self.state)

    def _scale_changed(self, scale: int) -> None:
        if self.state is not None and self.state.scale != scale:
            self.state = replace(self.state, scale=scale)
            if self.on_configure is not None:
                self.on_configure(self.state)

    def _close(self) -> None:
        if self.on_close is not None:
            self.on_close()

    def destroy(self) -> None:
        if self.decoration is not None:
            self.conn.destroy(self.decoration)
            self.decoration = None
        self.conn.destroy(self.toplevel)
        self.conn.destroy(self.xdg_surface)
        self.surface.destroy()
