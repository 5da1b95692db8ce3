"""The thin client as a kiosk runs it: wrclient's Wayland window, full-screen under a host compositor.

The host here is our own compositor (in the test process) standing in for the kiosk's cage: it is a
real Wayland compositor, and its input API plays the person at the kiosk. The chain is the whole
product: foot → session compositor → encoder → link → wrsrvd → QUIC → wrclient (window backend) →
host compositor, and keys typed at the host travel back the same way to foot.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.compositor.harness import running_session
from tests.conftest import script
from tests.e2e.harness import Harness, shows_window
from wayray.compositor.testing import type_text
from wayray.server.admin import AdminClient, AdminError

pytestmark = pytest.mark.slow

KIOSK = (1024, 600)


def _session_picture(runtime: Path, session_id: str) -> np.ndarray | None:
    from tests.e2e.harness import png_pixels

    try:
        with AdminClient(runtime / "admin.sock") as admin:
            return png_pixels(admin.screenshot(session_id))
    except (OSError, AdminError):
        return None


def test_a_fullscreen_window_client_shows_the_session_and_types_into_it(harness: Harness) -> None:
    srv = harness.server(["foot", "sh"])
    out = harness.home / "from-the-kiosk.txt"

    kiosk_dir = harness.tmp / "kiosk"
    kiosk_dir.mkdir()

    async def kiosk() -> None:
        async with running_session(kiosk_dir, size=KIOSK) as host:
            client = await host.spawn(
                script("wrclient"),
                f"127.0.0.1:{srv.port}",
                "--token",
                "window-kiosk",
                "--fingerprint",
                srv.fingerprint,
                "--fullscreen",
                # The harness user's state: wrclient presents the server's key from there.
                env={"HOME": str(harness.home), "XDG_STATE_HOME": harness.env["XDG_STATE_HOME"]},
                name="wrclient",
            )
            window = await host.wait_window(
                lambda w: w.pid == client.pid and w.fullscreen, "wrclient's window, full-screen"
            )
            assert (window.rect.width, window.rect.height) == KIOSK

            # The session matched the kiosk's screen, so the window shows its picture 1:1: the host's
            # output must become exactly the session compositor's own picture (foot with its prompt:
            # a window on it, not the background before foot maps, where typed keys reach nobody).
            def same_picture() -> bool:
                sessions = srv.sessions()
                if not sessions:
                    return False
                theirs = _session_picture(srv.runtime, sessions[0]["id"])
                if theirs is None or theirs.shape[:2] != (KIOSK[1], KIOSK[0]) or not shows_window(theirs):
                    return False
                ours = host.pixels()
                rgb = np.stack([(ours >> 16) & 0xFF, (ours >> 8) & 0xFF, ours & 0xFF], axis=-1)
                return bool((rgb == theirs).all())

            await host.wait_for(
                same_picture, "the kiosk to show the session's picture (foot's window) exactly"
            )

            # The person types at the kiosk: the host compositor's keyboard goes to wrclient's
            # window, wrclient forwards evdev codes with the host's keymap, foot runs the command.
            await type_text(host.comp, f"echo typed at the kiosk > {out}\n")
            # (The shell creates the file before echo writes to it: wait for the whole line.)
            await host.wait_for(
                lambda: out.exists() and out.read_text().endswith("\n"),
                "foot to run the command typed at the kiosk",
            )
            await host.wait_for(same_picture, "the kiosk to show the command's output")
            host.save("kiosk-after-typing")

    asyncio.run(kiosk())
    assert out.read_text() == "typed at the kiosk\n"
