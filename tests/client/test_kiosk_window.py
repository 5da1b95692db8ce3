"""wrclient --kiosk with its real window: a client of our compositor (standing in for cage on a
kiosk), badges through its token socket, a standalone wrsrvd behind it. What the person at the kiosk
sees is read off the compositor's screen (tesseract); what they type goes in through the compositor's
seat, as from a keyboard."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from tests.client.tokens.util import KEY_CODES
from tests.compositor.harness import running_session
from tests.conftest import script
from tests.e2e.harness import Harness
from tests.ocr import ocr, shows

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]
KEY_LEFTALT, KEY_F4 = 56, 62


def badge(path: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(line.encode() + b"\n")
        return s.makefile().readline().strip()


async def test_a_kiosk_window_covers_the_screen_shows_badged_sessions_and_cannot_be_closed(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path)
    try:
        srv = await asyncio.to_thread(h.server, FOOT)
        async with running_session(tmp_path, size=(1024, 600)) as s:
            sock = h.short / "badge.sock"
            env = {k: v for k, v in h.env.items() if k not in ("XDG_RUNTIME_DIR",)}
            kiosk = await s.spawn(
                script("wrclient"), f"127.0.0.1:{srv.port}", "--fingerprint", srv.fingerprint, "--kiosk",
                "--badge-socket", str(sock), "-v", env=env, name="wrclient",
            )  # fmt: skip
            await s.wait_window(lambda w: w.app_id == "org.wayray.wrclient", "the kiosk's window")
            await s.wait_for(
                lambda: [(w.rect.width, w.rect.height) for w in s.comp.windows()] == [(1024, 600)],
                "the window to cover the screen",
            )
            await s.settle()
            [shown] = s.comp.windows()
            assert (shown.rect.x, shown.rect.y, shown.rect.width, shown.rect.height) == (0, 0, 1024, 600)
            png = s.comp.screenshot_png()
            assert shows(png, "Present your badge"), ocr(png)

            # A badge: its session (foot, remote) fills the screen; what is typed reaches it.
            assert await asyncio.to_thread(badge, sock, "insert badge-window-1") == "ok"
            await s.wait_for(
                lambda: srv.sessions() and srv.sessions()[0]["state"] == "active", "the session"
            )
            await s.settle(1.0)
            assert not shows(s.comp.screenshot_png(), "Present your badge")
            # The session is shown before its terminal may have the keyboard (foot starts in it
            # meanwhile): what is typed before that is lost, as it would be for a person, who types
            # again. So does the test, on a fresh line, until the command has run.
            for _attempt in range(4):
                for ch in "\ntouch kioskwindow\n":
                    s.comp.key(KEY_CODES[ch], True)
                    s.comp.key(KEY_CODES[ch], False)
                with contextlib.suppress(AssertionError):
                    await s.wait_for(lambda: (h.home / "kioskwindow").exists(), "the command", timeout=20)
                    break
            assert (h.home / "kioskwindow").exists(), "the command typed at the kiosk never ran"

            # The badge taken out: the session is detached, the idle screen is back.
            assert await asyncio.to_thread(badge, sock, "remove") == "ok"
            await s.wait_for(lambda: srv.sessions()[0]["state"] == "detached", "the session to detach")
            await s.settle()
            png = s.comp.screenshot_png()
            assert shows(png, "Present your badge"), ocr(png)
            # No way out: Alt+F4 does not close the kiosk. (While a session is shown the kiosk takes
            # the compositor's shortcuts: Alt+F4 would go to the session and close its window.)
            s.comp.key(KEY_LEFTALT, True)
            s.comp.key(KEY_F4, True)
            s.comp.key(KEY_F4, False)
            s.comp.key(KEY_LEFTALT, False)
            await s.settle()
            assert kiosk.proc.returncode is None and len(s.comp.windows()) == 1
            # The kiosk compositor goes away: wrclient exits with a failure, for its service manager to
            # start it again (it never lingers without a display).
            await s.comp.close()
            assert await asyncio.wait_for(kiosk.proc.wait(), 60) == 1
            assert "the display went away" in kiosk.output()
    finally:
        await asyncio.to_thread(h.cleanup)
