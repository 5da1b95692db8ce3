"""The toolkit's entry point: a connection plus the globals a windowed client uses.

::

    client = await Client.connect(on_event)          # on_event gets seat events (keys, pointer)
    window = client.create_window(title="Hi", app_id="org.example.hi")
    window.on_configure = draw                       # draw and commit a buffer of the new size
    await window.wait_configured()
    ...
    await client.close()                            # destroys everything, then disconnects

Versions bound (lowest accepted … highest used): wl_compositor 4…6, wl_shm 1, wl_subcompositor 1,
xdg_wm_base 1…6, wl_seat 1…9 (9: no server-side key repeat events), wl_output 2…4, and when present
wp_viewporter 1, zxdg_decoration_manager_v1 1, wl_data_device_manager 1…3, wp_cursor_shape_manager_v1 1,
zwp_keyboard_shortcuts_inhibit_manager_v1 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pywayland.protocol.cursor_shape_v1 import WpCursorShapeManagerV1
from pywayland.protocol.keyboard_shortcuts_inhibit_unstable_v1 import ZwpKeyboardShortcutsInhibitManagerV1
from pywayland.protocol.viewporter import WpViewporter
from pywayland.protocol.wayland import (
    WlCompositor,
    WlDataDeviceManager,
    WlOutput,
    WlSeat,
    WlShm,
    WlSubcompositor,
)
from pywayland.protocol.xdg_decoration_unstable_v1 import ZxdgDecorationManagerV1
from pywayland.protocol.xdg_shell import XdgWmBase

from wayray.toolkit.clipboard import Clipboard
from wayray.toolkit.connection import GlobalInfo, WaylandConnection
from wayray.toolkit.seat import Seat, SeatEvent
from wayray.toolkit.surface import Output, Surface
from wayray.toolkit.window import Window


class Client:
    """A connected Wayland client: its globals, outputs, first seat and (optionally) clipboard."""

    def __init__(self, conn: WaylandConnection) -> None:
        self.conn = conn
        self.compositor: Any = conn.bind(WlCompositor, 4, 6)
        self.shm: Any = conn.bind(WlShm, 1, 1)
        self.subcompositor: Any = conn.bind(WlSubcompositor, 1, 1)
        self.wm_base: Any = conn.bind(XdgWmBase, 1, 6)
        conn.listen(self.wm_base, ping=self._ping)
        self.viewporter: Any = self._optional(WpViewporter, 1, 1)
        self.decoration_manager: Any = self._optional(ZxdgDecorationManagerV1, 1, 1)
        self.data_device_manager: Any = self._optional(WlDataDeviceManager, 1, 3)
        self.cursor_shape_manager: Any = self._optional(WpCursorShapeManagerV1, 1, 1)
        self.shortcuts_inhibit_manager: Any = self._optional(ZwpKeyboardShortcutsInhibitManagerV1, 1, 1)
        self.outputs: list[Output] = []
        self.surfaces: list[Surface] = []
        self.seat: Seat | None = None
        self.clipboard: Clipboard | None = None
        conn.on_global.append(self._global_added)
        conn.on_global_remove.append(self._global_removed)
        for info in conn.globals_named(WlOutput.name):
            self._add_output(info)

    @classmethod
    async def connect(
        cls,
        on_event: Callable[[SeatEvent], None],
        *,
        name: str | None = None,
        key_repeat: bool = True,
        on_clipboard_text: Callable[[str], None] | None = None,
    ) -> Client:
        """Connect, bind the globals and the first seat; returns once the seat's devices are known.

        ``key_repeat``: synthesize repeats of held keys from ``repeat_info`` (off when keys are
        forwarded to something that repeats them itself). ``on_clipboard_text`` turns on the clipboard.
        """
        conn = await WaylandConnection.connect(name)
        try:
            client = cls(conn)
            conn.own(client)
            seats = conn.globals_named(WlSeat.name)
            if seats:
                proxy = conn.bind(WlSeat, 1, 9, seats[0])
                client.seat = conn.own(Seat(client, proxy, on_event, key_repeat))
                if on_clipboard_text is not None and client.data_device_manager is not None:
                    client.clipboard = conn.own(Clipboard(client, client.seat, on_clipboard_text))
            await conn.roundtrip()  # capabilities -> wl_keyboard/wl_pointer
            await conn.roundtrip()  # their keymap, repeat_info; the outputs' scale
        except BaseException:
            conn.close()
            raise
        return client

    def _optional(self, interface: Any, lo: int, hi: int) -> Any:
        return self.conn.bind(interface, lo, hi) if self.conn.has(interface) else None

    def _ping(self, serial: int) -> None:
        self.wm_base.pong(serial)

    # Outputs --------------------------------------------------------------------------------------

    def _global_added(self, info: GlobalInfo) -> None:
        if info.interface == WlOutput.name:
            self._add_output(info)

    def _global_removed(self, info: GlobalInfo) -> None:
        for out in list(self.outputs):
            if out.global_name == info.name:
                self.outputs.remove(out)
                self.conn.destroy(out.proxy, "release" if out.proxy.user_data >= 3 else None)

    def _add_output(self, info: GlobalInfo) -> None:
        if info.version < 2:
            return  # no scale event: useless to us
        proxy = self.conn.bind(WlOutput, 2, 4, info)
        out = Output(proxy, info.name)
        self.outputs.append(out)

        def mode(flags: int, width: int, height: int, _refresh: int) -> None:
            if flags & 1:
                out.width, out.height = width, height

        def scale(factor: int) -> None:
            out.scale = max(1, factor)

        def done() -> None:
            for s in list(self.surfaces):
                s.outputs_changed()

        self.conn.listen(
            proxy,
            geometry=lambda *_a: None,
            mode=mode,
            scale=scale,
            done=done,
            name=lambda n: setattr(out, "name", n),
            description=lambda _d: None,
        )

    def output_for(self, proxy: Any) -> Output | None:
        return next((o for o in self.outputs if o.proxy is proxy), None)

    # Objects --------------------------------------------------------------------------------------

    def create_surface(self) -> Surface:
        s = Surface(self)
        self.surfaces.append(s)
        return s

    def create_window(
        self,
        *,
        title: str,
        app_id: str,
        size: tuple[int, int] = (1280, 720),
        fullscreen: bool = False,
        min_size: tuple[int, int] | None = None,
    ) -> Window:
        window = Window(
            self, title=title, app_id=app_id, size=size, fullscreen=fullscreen, min_size=min_size
        )
        self.surfaces.append(window.surface)
        return self.conn.own(window)

    async def close(self) -> None:
        """Destroy every object in protocol order and disconnect."""
        self.conn.close()

    def destroy(self) -> None:
        """Called by the connection as it closes, after everything created later."""
        for out in self.outputs:
            self.conn.destroy(out.proxy, "release" if out.proxy.user_data >= 3 else None)
        self.outputs.clear()
        for proxy in (
            self.shortcuts_inhibit_manager,
            self.cursor_shape_manager,
            self.decoration_manager,
            self.viewporter,
            self.wm_base,
        ):
            if proxy is not None:
                self.conn.destroy(proxy)
        if self.data_device_manager is not None:
            self.conn.destroy(self.data_device_manager, None)
        for proxy in (self.subcompositor,):
            self.conn.destroy(proxy)
        self.conn.destroy(self.shm, "release" if self.shm.user_data >= 2 else None)
        self.conn.destroy(self.compositor, None)
