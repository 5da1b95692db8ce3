"""Alt+Tab at a full-screen window viewer reaches the session, not the local desktop around it.

The local desktop is our own compositor (in the test process), which offers
zwp_keyboard_shortcuts_inhibit_manager_v1 as a desktop compositor does; it runs a terminal of its own
and wrclient full screen over it. The session runs two terminals. Alt+Tab pressed at the local
desktop must switch the session's windows (its built-in WM), the local focus staying on wrclient;
after the escape chord (Ctrl+Alt+Shift+Escape) Alt+Tab is the local desktop's again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.compositor.harness import Session, running_session
from tests.conftest import script
from tests.e2e.harness import Harness
from wayray.compositor.testing import KEY_LEFTALT, KEY_LEFTCTRL, KEY_LEFTSHIFT, chord, type_text

pytestmark = pytest.mark.slow

KEY_TAB, KEY_ESC = 15, 1
SCREEN = (1024, 640)


async def _run_in_focused(host: Session, dirs: list[Path], name: str) -> Path:
    """Type ``touch NAME`` into whichever session terminal has the focus; the directory it ran in.

    Typed again on a fresh line until it runs: keys typed before a terminal has the keyboard are lost."""

    def ran() -> Path | None:
        return next((d for d in dirs if (d / name).exists()), None)

    loop = asyncio.get_running_loop()
    end = loop.time() + 90
    while loop.time() < end:
        await type_text(host.comp, f"\ntouch {name}\n")
        for _ in range(40):
            if (found := ran()) is not None:
                return found
            await asyncio.sleep(0.1)
    raise AssertionError(f"'touch {name}' never ran in a session terminal")


def _focused_pid(host: Session) -> int | None:
    return next((w.pid for w in host.comp.windows() if w.focused), None)


def test_alt_tab_at_a_fullscreen_viewer_switches_the_sessions_windows(harness: Harness) -> None:
    dirs = [harness.home / "one", harness.home / "two"]
    for d in dirs:
        d.mkdir()
    srv = harness.server(["sh", "-c", f"foot -W 60x15 -D {dirs[0]} sh & exec foot -W 60x15 -D {dirs[1]} sh"])
    local_dir = harness.tmp / "local"
    local_dir.mkdir()

    async def desktop() -> None:
        async with running_session(local_dir, size=SCREEN) as host:
            local_term = await host.spawn("foot", "-W", "40x10", "sh", name="local-foot")
            await host.wait_window(lambda w: w.pid == local_term.pid, "the local terminal")
            viewer = await host.spawn(
                script("wrclient"),
                f"127.0.0.1:{srv.port}",
                "--token",
                "shortcuts-viewer",
                "--fingerprint",
                srv.fingerprint,
                "--fullscreen",
                env={"HOME": str(harness.home), "XDG_STATE_HOME": harness.env["XDG_STATE_HOME"]},
                name="wrclient",
            )
            await host.wait_window(
                lambda w: w.pid == viewer.pid and w.fullscreen and w.focused, "the viewer"
            )
            first = await _run_in_focused(host, dirs, "before")
            # Alt+Tab at the local desktop: the session's WM switches to its other terminal.
            await chord(host.comp, KEY_LEFTALT, KEY_TAB)
            second = await _run_in_focused(host, dirs, "after")
            assert second != first, "Alt+Tab did not switch the session's windows"
            assert _focused_pid(host) == viewer.pid, "the local desktop switched its windows"
            # The escape chord gives the shortcuts back: Alt+Tab switches the local desktop's windows.
            await chord(host.comp, KEY_LEFTCTRL, KEY_LEFTALT, KEY_LEFTSHIFT, KEY_ESC)
            await host.wait_for(
                lambda: not host.comp.core.seat.shortcuts.inhibitors, "the shortcuts given back"
            )
            await chord(host.comp, KEY_LEFTALT, KEY_TAB)
            await host.wait_for(lambda: _focused_pid(host) == local_term.pid, "the local terminal focused")

    asyncio.run(desktop())
    assert viewer_log_mentions(harness, local_dir)


def viewer_log_mentions(harness: Harness, local_dir: Path) -> bool:
    logs = "".join(p.read_text(errors="replace") for p in local_dir.glob("**/wrclient-*.log"))
    return "keyboard shortcuts go to the session" in logs and "go to the local desktop again" in logs
