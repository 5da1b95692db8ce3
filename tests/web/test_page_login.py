"""The browser kiosk against wrsrvd in login mode, through every real process: Debian's Chromium
(headless) → WebTransport → wrsrvd → wrsessd (root, real PAM with a throwaway user) → the login
screen (wrlogin) → the user's session with foot; and the same badge taking the session between the
browser and a native headless kiosk (docs/web-kiosk.md)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import free_udp_port
from tests.e2e.login import LoginRig, login_rig, real_wrlogin_available, until
from tests.launcher.harness import Accounts, throwaway_accounts
from tests.ocr import ocr, shows
from tests.web.browser import CHROMIUM, Browser, Page
from tests.web.test_page import canvas_pixels, present_badge

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root: throwaway users, PAM, sessions as other users"
    ),
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (tools/apt-packages.txt)"
    ),
    pytest.mark.skipif(
        not real_wrlogin_available(), reason="the real greeter (wrlogin) is needed to log in"
    ),
]

BADGE = "77120934"


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    with throwaway_accounts() as acc:
        yield acc


@pytest.fixture
def rig(accounts: Accounts, tmp_path: Path) -> Iterator[LoginRig]:
    with login_rig(accounts, tmp_path) as r:
        yield r


def web_rig(rig: LoginRig) -> tuple[int, str]:
    port = free_udp_port()
    rig.configure(
        server=f"[server.lab.web]\nenabled = true\nport = {port}\n[server.lab.encoder]\nvideo = false\n"
    )
    rig.start()
    m = until(lambda: re.search(r"spki-list=(\S+)\)", rig.server_text()), "wrsrvd's browser kiosk line")
    return port, m[1]


def page_shows(page: Page, phrase: str, tmp: Path, timeout: float = 120) -> bytes:
    """Wait until ``phrase`` can be read on the page's canvas (tesseract), as a person reads it."""
    import base64

    end = time.monotonic() + timeout
    while True:
        url = page.evaluate("document.getElementById('screen').toDataURL('image/png')")
        png = base64.b64decode(url.split(",", 1)[1])
        if shows(png, phrase):
            return png
        if time.monotonic() > end:
            (tmp / "page.png").write_bytes(png)
            raise AssertionError(f"the page does not show {phrase!r}; it reads:\n{ocr(png)}")
        time.sleep(0.5)


def log_in_on_page(page: Page, tmp: Path, user: str, password: str) -> None:
    page.wait_for("window.wayray.screen === 'greeter'", what="the login screen on the page")
    page_shows(page, "Log in", tmp)
    page.evaluate("document.getElementById('screen').focus()")
    page.type(f"{user}\n")
    time.sleep(0.5)  # the greeter keeps typed keys for the prompt that comes; this is a person's pause
    page.type(f"{password}\n")
    page.wait_for("window.wayray.screen === 'desktop'", what="the user's desktop on the page", timeout=180)


def test_log_in_from_a_browser_and_type_into_foot(rig: LoginRig, accounts: Accounts, tmp_path: Path) -> None:
    port, spki = web_rig(rig)
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        present_badge(page, BADGE)
        log_in_on_page(page, tmp_path, accounts.user, accounts.password)
        session = until(
            lambda: next((s for s in rig.sessions() if s["user"] == accounts.user), None), "the session"
        )
        assert page.evaluate("window.wayray.sessionId") == session["id"]
        # foot comes up in the user's session; a command typed on the page runs there as the user.
        marker = f"/tmp/wr-web-{os.getpid()}-{int(time.time())}"
        until(lambda: len(set(map(tuple, canvas_pixels(page).reshape(-1, 3)[::97]))) > 3, "foot on the page")
        time.sleep(1)  # a person waits for the prompt; keys before foot has focus reach no window
        page.type(f"echo hello from the browser > {marker}\n")
        until(
            lambda: Path(marker).exists() and Path(marker).read_text(), "the command typed on the page ran"
        )
        assert Path(marker).read_text() == "hello from the browser\n"
        assert Path(marker).stat().st_uid == accounts.uid
        Path(marker).unlink()
        # The text is on the page, read off its canvas.
        page.type("echo webkiosk\n")
        page_shows(page, "webkiosk", tmp_path)
        assert page.evaluate("window.wayray.mismatches") == 0
    # Nothing of the badge or the password in wrsrvd's log (it logs a keyed digest of the badge).
    log = rig.server_text()
    assert BADGE not in log and accounts.password not in log
    assert "browser kiosk on port" in log


def test_the_badge_takes_the_session_between_the_browser_and_a_native_kiosk(
    rig: LoginRig, accounts: Accounts, tmp_path: Path
) -> None:
    port, spki = web_rig(rig)
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        present_badge(page, BADGE)
        log_in_on_page(page, tmp_path, accounts.user, accounts.password)
        session_id = page.evaluate("window.wayray.sessionId")
        # The same badge at a native kiosk: the session moves there; the page goes idle and says so.
        kiosk = rig.kiosk("native")
        kiosk.insert(BADGE)
        # At another kiosk the policy asks for the password again (an unlock screen), as for any kiosk.
        kiosk.wait_screen("greeter")
        rig.type_login(kiosk, None, accounts.password)
        shown = kiosk.wait_screen("desktop")
        assert shown["session_id"] == session_id
        page.wait_for("window.wayray.state === 'idle'", what="the page idle after the session moved")
        assert "moved" in page.evaluate("window.wayray.reason").lower()
        # And back: the badge at the browser takes it from the native kiosk (its unlock screen first).
        present_badge(page, BADGE)
        page.wait_for("window.wayray.screen === 'greeter'", what="the unlock screen on the page")
        page_shows(page, "Unlock", tmp_path)
        page.evaluate("document.getElementById('screen').focus()")
        page.type(f"{accounts.password}\n")
        page.wait_for(
            "window.wayray.screen === 'desktop' && window.wayray.complete",
            what="the desktop back on the page",
        )
        assert page.evaluate("window.wayray.sessionId") == session_id
        kiosk.wait_idle()
        assert [s["id"] for s in rig.sessions() if s["user"] == accounts.user] == [session_id]
        assert page.evaluate("window.wayray.mismatches") == 0
