"""The pointer drawn into the frames of a viewer that does not draw it (no ``cursor`` capability).

docs/protocol.md promises it: without ``cursor`` the server composites the pointer's image into the
picture. The compositor's framebuffer never holds the cursor (other viewers, screenshots and the
encoder's damage tracking must not see it), so the pump keeps its own copy of the picture with the
cursor blended in: each frame copies the damaged rectangles in, puts back the pixels the cursor covered
where it was, blends it where it is now, and adds both places to the frame's damage. Moving the pointer
alone is a frame of those two small rectangles.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wayray.compositor.cursor import CursorState
from wayray.compositor.frames import Frame
from wayray.compositor.geometry import Rect


def _key(state: CursorState) -> tuple[int, int, int, bool]:
    return (state.serial, state.x, state.y, state.visible and state.image is not None)


class DrawnCursor:
    def __init__(self) -> None:
        self._fb: npt.NDArray[np.uint32] | None = None
        #: Where the cursor is drawn in ``_fb`` now (clipped to the output), or None.
        self._rect: Rect | None = None
        self._drawn: tuple[int, int, int, bool] | None = None

    def changed(self, state: CursorState) -> bool:
        """Whether the picture's cursor differs from ``state`` (a frame should go out)."""
        return _key(state) != self._drawn

    def apply(self, frame: Frame, state: CursorState) -> tuple[npt.NDArray[np.uint32], list[Rect]]:
        """The frame's picture with the cursor blended in, and the damage to encode (the frame's plus
        where the cursor was and is). The array stays valid until the next call."""
        pixels = frame.pixels
        h, w = pixels.shape
        damage = list(frame.damage)
        if self._fb is None or self._fb.shape != (h, w):
            self._fb = np.array(pixels, dtype=np.uint32, copy=True)
            self._rect = None
            damage = [Rect(0, 0, w, h)]
        else:
            fb = self._fb
            for r in frame.damage:
                fb[r.y : r.y + r.height, r.x : r.x + r.width] = pixels[
                    r.y : r.y + r.height, r.x : r.x + r.width
                ]
            old = self._rect
            if old is not None:
                fb[old.y : old.y + old.height, old.x : old.x + old.width] = pixels[
                    old.y : old.y + old.height, old.x : old.x + old.width
                ]
                damage.append(old)
        self._rect = self._blend(state)
        if self._rect is not None:
            damage.append(self._rect)
        self._drawn = _key(state)
        return self._fb, damage

    def _blend(self, state: CursorState) -> Rect | None:
        """Blend the cursor (premultiplied ARGB) over ``_fb`` where it is on screen; its rectangle."""
        fb = self._fb
        image = state.image
        if fb is None or image is None or not state.visible:
            return None
        ih, iw = image.shape
        H, W = fb.shape
        x0, y0 = state.x - state.hotspot[0], state.y - state.hotspot[1]
        x1, y1, x2, y2 = max(0, x0), max(0, y0), min(W, x0 + iw), min(H, y0 + ih)
        if x2 <= x1 or y2 <= y1:
            return None
        src = np.asarray(image[y1 - y0 : y2 - y0, x1 - x0 : x2 - x0], dtype=np.uint32)
        dst = fb[y1:y2, x1:x2]
        keep = 255 - (src >> 24)
        out = dst & np.uint32(0xFF000000)
        for shift in (16, 8, 0):
            channel = ((src >> shift) & 0xFF) + ((dst >> shift) & 0xFF) * keep // 255
            out |= np.minimum(channel, 255).astype(np.uint32) << shift
        fb[y1:y2, x1:x2] = out
        return Rect(x1, y1, x2 - x1, y2 - y1)
