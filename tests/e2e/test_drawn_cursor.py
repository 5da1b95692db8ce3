"""The pointer for viewers that do not draw it: without the ``cursor`` capability the server draws it
into their frames (docs/protocol.md §5), where the pointer is, and takes it away where it was.

The viewer is the real transport and frame decoder (wrclient always offers ``cursor``); the pictures
are compared with the session's own screenshot, with and without the cursor drawn in.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from tests.e2e.harness import DEADLINE, Harness, WrServer, png_pixels
from wayray.codec import Decoder
from wayray.server.admin import AdminClient
from wayray.transport import ClientSettings, PinnedFingerprint, connect
from wayray.wire import (
    IMPLEMENTED_CAPABILITIES,
    Capability,
    FrameAck,
    FrameUpdate,
    HelloParams,
    PointerMotion,
    TokenKind,
    WireConfig,
)

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=60x15", "sh"]


def _rgb(fb: np.ndarray) -> np.ndarray:
    """XRGB words → (H, W, 3) uint8, as the screenshots are."""
    out = np.empty(fb.shape + (3,), dtype=np.uint8)
    out[..., 0] = (fb >> 16) & 0xFF
    out[..., 1] = (fb >> 8) & 0xFF
    out[..., 2] = fb & 0xFF
    return out


def _screenshot(srv: WrServer, cursor: bool) -> np.ndarray:
    with AdminClient(srv.runtime / "admin.sock") as c:
        return png_pixels(c.screenshot(srv.session()["id"], include_cursor=cursor))[..., :3]


async def _view(srv: WrServer, *, cursor_capability: bool, moves: list[tuple[int, int]]) -> list[Any]:
    """A viewer offering (or not) ``cursor``: for each pointer position, waits until the picture it
    shows equals the session's screenshot with the cursor drawn (or without it); returns, per position,
    that picture and the screenshot without the cursor taken with it."""
    caps = IMPLEMENTED_CAPABILITIES - {Capability.AUDIO, Capability.MICROPHONE}
    if not cursor_capability:
        caps = caps - {Capability.CURSOR}
    settings = ClientSettings(
        trust=PinnedFingerprint(srv.fingerprint),
        own_server=srv.own_server,
        wire=WireConfig(capabilities=caps),
    )
    hello = HelloParams(
        token="drawn-cursor", token_kind=TokenKind.SOFTWARE, screen_width=800, screen_height=600
    )
    conn = await connect("127.0.0.1", srv.port, settings, hello)
    assert (Capability.CURSOR in conn.capabilities) == cursor_capability
    decoder = Decoder()
    results: list[Any] = []
    loop = asyncio.get_running_loop()

    async def frames_until(done: Any, what: str) -> None:
        end = loop.time() + DEADLINE
        while loop.time() < end:
            try:
                message = await asyncio.wait_for(conn.receive(), 1.0)
            except TimeoutError:
                message = None
            if isinstance(message, FrameUpdate):
                decoder.apply(message)
                conn.send(FrameAck(seq=message.seq, decode_us=0))
            if decoder.framebuffer is not None and not decoder.needs_keyframe:
                if await asyncio.to_thread(done, _rgb(decoder.framebuffer)):
                    return
        raise AssertionError(f"timed out waiting for {what}")

    try:
        await frames_until(lambda _px: True, "the first picture")
        for x, y in moves:
            conn.send(PointerMotion(x=float(x), y=float(y), time_ms=0))
            want: dict[str, np.ndarray] = {}

            def shows_it(px: np.ndarray, want: dict[str, np.ndarray] = want) -> bool:
                # Screenshots without, with, and again without the cursor: the session's picture must
                # not have changed meanwhile (foot may still be starting), or the pair proves nothing.
                before = _screenshot(srv, cursor=False)
                want["it"] = _screenshot(srv, cursor=not cursor_capability)
                want["plain"] = _screenshot(srv, cursor=False)
                return bool(np.array_equal(before, want["plain"]) and np.array_equal(px, want["it"]))

            await frames_until(shows_it, f"the picture with the pointer at {x},{y}")
            results.append((want["it"], want["plain"]))
    finally:
        await conn.aclose()
    return results


def test_a_viewer_without_the_cursor_capability_sees_the_pointer_in_its_frames(harness: Harness) -> None:
    srv = harness.server(FOOT)
    moves = [(40, 50), (400, 300), (790, 590)]  # the background, over foot, half off the output's corner
    shown = asyncio.run(_view(srv, cursor_capability=False, moves=moves))
    # What the viewer showed was the session's picture with the cursor drawn in, at each place: the
    # cursor is there (it differs from the picture without it) and only there (the old place is clean).
    for (x, y), (picture, plain) in zip(moves, shown, strict=True):
        differs = np.argwhere((picture != plain).any(axis=2))
        assert len(differs) > 20, f"no cursor drawn at {x},{y}"
        ys, xs = differs[:, 0], differs[:, 1]
        assert xs.min() >= x - 32 and xs.max() <= x + 32 and ys.min() >= y - 32 and ys.max() <= y + 32


def test_a_viewer_that_draws_the_pointer_itself_gets_frames_without_it(harness: Harness) -> None:
    srv = harness.server(FOOT)
    # The frames equal the screenshot without the cursor, wherever the pointer is.
    asyncio.run(_view(srv, cursor_capability=True, moves=[(40, 50), (400, 300)]))
