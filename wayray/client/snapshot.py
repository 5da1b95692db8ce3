"""Writing a viewer's framebuffer as a PNG, optionally with the pointer drawn, atomically."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

from wayray.client.backend import ConnectionState, CursorImage


def png_bytes(
    framebuffer: npt.NDArray[np.uint32],
    cursor: CursorImage | None = None,
    at: tuple[int, int] | None = None,
    *,
    status: tuple[ConnectionState, str] | None = None,
) -> bytes:
    """PNG (RGB) of an XRGB8888 framebuffer; the cursor (premultiplied ARGB) blended at ``at``; the
    status overlay a window would show over the picture (``status``: state and detail) on top."""
    from PIL import Image

    fb = np.asarray(framebuffer, dtype=np.uint32)
    rgb = np.empty(fb.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = (fb >> 16) & 0xFF
    rgb[..., 1] = (fb >> 8) & 0xFF
    rgb[..., 2] = fb & 0xFF
    if cursor is not None and at is not None:
        _blend(rgb, cursor, at)
    image = Image.fromarray(rgb, "RGB")
    if status is not None:
        from wayray.client.backends.screens import draw_status

        overlay = Image.new("RGBA", image.size)
        draw_status(overlay, status[0], status[1], has_picture=True)
        image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _blend(rgb: npt.NDArray[np.uint8], cursor: CursorImage, at: tuple[int, int]) -> None:
    img = np.asarray(cursor.pixels, dtype=np.uint32)
    h, w = img.shape
    x0, y0 = at[0] - cursor.hotspot_x, at[1] - cursor.hotspot_y
    H, W = rgb.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(W, x0 + w), min(H, y0 + h)
    if dx1 <= dx0 or dy1 <= dy0:
        return
    src = img[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    a = ((src >> 24) & 0xFF).astype(np.uint16)[..., None]
    colour = np.stack([(src >> 16) & 0xFF, (src >> 8) & 0xFF, src & 0xFF], axis=-1).astype(np.uint16)
    dst = rgb[dy0:dy1, dx0:dx1].astype(np.uint16)
    rgb[dy0:dy1, dx0:dx1] = np.minimum(255, colour + dst * (255 - a) // 255).astype(np.uint8)
