"""The headless backend: the framebuffer in memory, PNG snapshots, input only from scripts.

For tests, recording, operators' synthetic checks and machines without a display. It keeps a
reference to the decoder's framebuffer (no copy); :meth:`HeadlessBackend.snapshot_png` reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from wayray.client.backend import (
    BackendOptions,
    ConnectionState,
    CursorImage,
    InputEvent,
    ScreenChangedEvent,
)
from wayray.client.snapshot import png_bytes
from wayray.codec.geometry import RectLike

log = logging.getLogger("wayray.client")

DEFAULT_SIZE = (1280, 720)


class HeadlessBackend:
    def __init__(self, options: BackendOptions | None = None) -> None:
        options = options or BackendOptions(headless=True)
        self.size = options.size or DEFAULT_SIZE
        self.scale_120 = options.scale_120
        self._keymap = options.keymap
        self.framebuffer: npt.NDArray[np.uint32] | None = None
        self.presented = 0
        self.cursor: CursorImage | None = None
        self.cursor_at: tuple[int, int] = (0, 0)
        self.cursor_visible = False
        self.state = ConnectionState.CONNECTING
        self.state_detail = ""
        self.clipboard: str | None = None
        #: The session hears this machine's microphone (what a window or kiosk shows as a red mark).
        self.microphone_live = False
        self._on_input: Callable[[InputEvent], None] | None = None

    async def start(self, on_input: Callable[[InputEvent], None]) -> None:
        self._on_input = on_input

    def screen(self) -> ScreenChangedEvent:
        return ScreenChangedEvent(self.size[0], self.size[1], self.scale_120)

    def keymap(self) -> str | None:
        return self._keymap

    def present(self, framebuffer: npt.NDArray[np.uint32], damage: Sequence[RectLike]) -> None:
        self.framebuffer = framebuffer
        self.presented += 1

    def set_cursor(self, image: CursorImage | None) -> None:
        self.cursor = image

    def move_cursor(self, x: int, y: int, visible: bool) -> None:
        self.cursor_at = (x, y)
        self.cursor_visible = visible

    def set_state(self, state: ConnectionState, detail: str = "") -> None:
        if (state, detail) != (self.state, self.state_detail):
            log.info("connection %s%s", state, f": {detail}" if detail else "")
        self.state = state
        self.state_detail = detail

    def set_microphone(self, live: bool) -> None:
        if live != self.microphone_live:
            log.info("microphone indicator %s", "on" if live else "off")
        self.microphone_live = live

    def set_clipboard(self, text: str) -> None:
        self.clipboard = text

    async def close(self) -> None:
        self._on_input = None

    # --- what scripts and tests use ----------------------------------------------------------------

    def inject(self, event: InputEvent) -> None:
        """Input as if a person had made it (scripts)."""
        if self._on_input is not None:
            self._on_input(event)

    def resize(self, width: int, height: int) -> None:
        self.size = (width, height)
        self.inject(ScreenChangedEvent(width, height, self.scale_120))

    def snapshot_png(self, *, include_cursor: bool = False) -> bytes:
        """What the screen would show: the session's picture (with the notice while the session does
        not respond), or a kiosk's idle screen."""
        if self.state is ConnectionState.IDLE:
            return idle_png(self.size, self.state_detail)
        if self.framebuffer is None:
            raise ValueError("no frame has arrived yet")
        cursor = self.cursor if include_cursor and self.cursor_visible else None
        status = (self.state, self.state_detail) if self.state is ConnectionState.NOT_RESPONDING else None
        return png_bytes(self.framebuffer, cursor, self.cursor_at, status=status)


def idle_png(size: tuple[int, int], detail: str) -> bytes:
    """A kiosk's idle screen ("Present your badge") as a PNG, drawn as the window backend draws it."""
    import io

    from PIL import Image

    from wayray.client.backends.screens import draw_idle

    image = Image.new("RGBA", size)
    draw_idle(image, detail)
    out = io.BytesIO()
    image.convert("RGB").save(out, "PNG")
    return out.getvalue()
