"""What a headless wrclient shows while the session does not respond: the notice over the frozen
picture in its snapshots, and the bare picture again once it responds."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.e2e.harness import png_pixels
from tests.ocr import ocr, shows
from wayray.client.backend import ConnectionState
from wayray.client.backends.headless import HeadlessBackend
from wayray.client.snapshot import png_bytes


def test_the_notice_is_in_the_snapshot_while_the_session_does_not_respond() -> None:
    fb = np.full((600, 800), 0x3060C0, dtype=np.uint32)
    fb[300:, :] = 0xE0E0E0
    backend = HeadlessBackend()
    asyncio.run(backend.start(lambda event: None))
    backend.present(fb, [])
    backend.set_state(ConnectionState.CONNECTED, "session s1")
    live = backend.snapshot_png()
    assert np.array_equal(png_pixels(live), png_pixels(png_bytes(fb)))

    backend.set_state(ConnectionState.NOT_RESPONDING, "waiting for it\u2026")
    hung = backend.snapshot_png()
    assert shows(hung, "The session is not responding"), ocr(hung)
    assert shows(hung, "waiting for it"), ocr(hung)
    below = png_pixels(hung)[100:]
    assert (below != png_pixels(live)[100:]).any(), "the picture is dimmed under the notice"
    assert len(np.unique(below.reshape(-1, 3), axis=0)) == 2, "the picture is still there, dimmed"

    backend.set_state(ConnectionState.CONNECTED, "session s1")
    assert backend.snapshot_png() == live
