"""wrlogin's screen without wrsessd (no root needed): HiDPI output, typing, key repeat, the service away.

wrsessd is absent on purpose here: the greeter must still come up, say clearly that the login service
cannot be reached, and keep the typed name for the next try.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.compositor.harness import Session, running_session
from tests.conftest import script
from tests.ocr import contains, ocr
from wayray.compositor.testing import type_text

pytestmark = pytest.mark.slow
KEY_BACKSPACE = 14


async def read(s: Session, *phrases: str, absent: tuple[str, ...] = (), timeout: float = 90.0) -> str:
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        await s.settle(quiet=0.2)
        text = await asyncio.to_thread(ocr, s.comp.screenshot_png())
        if all(contains(text, ph) for ph in phrases) and not any(contains(text, a, edits=0) for a in absent):
            return text
        await asyncio.sleep(0.3)
    s.save("never-read")
    raise AssertionError(f"never read {phrases} (absent {absent}); last:\n{text}")


async def test_hidpi_typing_repeat_and_an_unreachable_service(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1920, 1080), scale=2) as s:
        env = {
            "WAYRAY_LOGIN_TICKET": "not-a-real-ticket",
            "WAYRAY_SESSD_SOCK": str(tmp_path / "no-wrsessd.sock"),
        }
        wrlogin = await s.spawn(script("wrlogin"), "-v", env=env, name="wrlogin")
        win = await s.wait_window(lambda w: w.app_id == "org.wayray.wrlogin", "the greeter")
        assert win.fullscreen and (win.rect.width, win.rect.height) == (1920, 1080)
        await read(s, "Log in", "User name")
        # Drawn at the output's scale (buffer scale 2), not a 960x540 picture blown up: neighbouring
        # physical pixels differ inside pairs, which an upscaled picture would never show.
        s.save("hidpi")
        px = s.pixels()[300:800, 500:1400]
        assert (px[:, 0::2] != px[:, 1::2]).any() and (px[0::2] != px[1::2]).any()
        await type_text(s.comp, "wrongname")
        await read(s, "wrongname")
        # Backspace held down repeats on the client until the field is empty.
        s.comp.key(KEY_BACKSPACE, True)
        try:
            await read(s, "User name", absent=("wrongnam", "wrong", "wro"))
        finally:
            s.comp.key(KEY_BACKSPACE, False)
        await type_text(s.comp, "alice\n")
        text = await read(s, "login service is not available", "try again in a moment", "alice")
        assert "Traceback" not in wrlogin.output()
        assert "not-a-real-ticket" not in wrlogin.output(), "the ticket is never logged"
        assert wrlogin.proc.returncode is None, text
