"""An input method in a session: fcitx5 (Debian's, with its pinyin engine) composes 汉字 into foot.

The whole path: wrclient's script types Latin keys as a person at the viewer would; wrsrvd relays
them; the session compositor gives them to fcitx5 through input-method-v2's keyboard grab while
foot's text field (text-input-v3) has the focus; fcitx5 composes "hanzi" + space into 汉字 and
commits it into foot; the keys it does not use (while it is switched off with Ctrl+Space) come back
through its virtual keyboard. What foot got is read from the shell: the command writes it to a file.
(No CJK font is installed here, so the pixels show boxes; the text itself is checked.) fcitx5's
candidate window, drawn by the compositor by foot's text cursor, is found in the session's pixels.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from tests.e2e.harness import Harness, eventually, failure

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("fcitx5") is None, reason="fcitx5 is not installed (tools/apt-packages.txt)"
    ),
]

T = TypeVar("T")

PROFILE = """[Groups/0]
Name=Default
Default Layout=us
DefaultIM=pinyin

[Groups/0/Items/0]
Name=keyboard-us
Layout=

[Groups/0/Items/1]
Name=pinyin
Layout=

[GroupOrder]
0=Default
"""


def _session(harness: Harness) -> list[str]:
    """fcitx5 first (without D-Bus and X11: the session's Wayland is its only front end), then foot
    once fcitx5's Wayland input method is up (its log says so). The file ``_grabbed`` names appears
    once fcitx5, activated by foot's text field, holds the keyboard (its Wayland front end logged the
    grab's keymap); the script types after that: keys typed before it go to foot as they are, as they
    would for a person typing that early (fcitx5, starved, can take longer than the screen to settle)."""
    config = harness.tmp / "config-home" / "fcitx5"
    config.mkdir(parents=True, exist_ok=True)
    (config / "profile").write_text(PROFILE)
    (config / "config").write_text("[Behavior]\nActiveByDefault=False\n")
    log = harness.tmp / "fcitx5.log"
    start = (
        "DBUS_SESSION_BUS_ADDRESS=disabled: fcitx5 --disable=dbus,xcb,xim --verbose=waylandim=5 "
        f"> {log} 2>&1 & "
        f"until grep -q 'Loaded addon waylandim' {log}; do sleep 0.1; done; "
        f"(until grep -q keymapCallback {log}; do sleep 0.1; done; touch {_grabbed(harness)}) & "
        "exec foot --window-size-chars=60x10 sh"
    )
    return ["sh", "-c", start]


def _grabbed(harness: Harness) -> Path:
    return harness.tmp / "fcitx5-grabbed"


def test_fcitx5_composes_pinyin_into_hanzi_in_foot(harness: Harness) -> None:
    srv = harness.server(_session(harness))
    out = harness.home / "composed.txt"
    script = harness.write_script(
        "pinyin.txt",
        f"""wait-for {_grabbed(harness)}
settle 1000
type echo [
key ctrl+space
type hanzi
key space
key ctrl+space
type ] > {out}
key Return
settle
""",
    )
    result = harness.run_client(srv, "--script", str(script))
    assert result.returncode == 0, failure(result)
    text = eventually(lambda: out.exists() and out.read_text(encoding="utf-8"), "the command's output")
    assert text == "[汉字]\n", (text, (harness.tmp / "fcitx5.log").read_text(errors="replace")[-3000:])


TERMINAL = (17, 17, 17)  # foot's background


def _candidate_window(shot: np.ndarray) -> tuple[int, int, int, int] | None:
    """Where a list of candidates is drawn over foot's terminal below its first line (left, top,
    width, height, relative to the terminal; clipped to it), or None. Below the prompt's line the
    terminal is empty: only fcitx5's windows can be there."""
    rgb = shot[..., :3].astype(int)
    dark = (rgb == TERMINAL).all(axis=2)
    rows = np.nonzero(dark.sum(axis=1) >= 200)[0]  # the terminal's rows (not the title's text)
    if len(rows) == 0:
        return None  # foot is not on screen yet
    xs = np.nonzero(dark[rows[0] : rows[-1] + 1].any(axis=0))[0]
    top, left, right = int(rows[0]), int(xs.min()), int(xs.max())
    below = rgb[top + 16 :, left : right + 1]  # a line of foot's 8 pt font is 14 pixels
    ly, lx = np.nonzero(below.min(axis=2) >= 100)
    if len(ly) == 0:
        return None
    box = (int(lx.min()), 16 + int(ly.min()), int(lx.max() - lx.min() + 1), int(ly.max() - ly.min() + 1))
    # fcitx5 also shows a small box naming the input method ("en") when the field gets the focus;
    # a list of candidates is wider.
    return box if box[2] >= 150 else None


def _waiting(harness: Harness, check: Callable[[], T | None], what: str) -> T:
    """``eventually``, saying what fcitx5 logged when it fails."""
    try:
        return eventually(check, what)
    except AssertionError as err:
        log = (harness.tmp / "fcitx5.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{err}\n--- fcitx5:\n{log}") from None


def test_fcitx5s_candidate_window_is_drawn_below_the_text_cursor(harness: Harness) -> None:
    srv = harness.server(_session(harness))
    go, end = harness.tmp / "commit", harness.tmp / "end"
    script = harness.write_script(
        "candidates.txt",
        f"""wait-for {_grabbed(harness)}
settle 1000
key ctrl+space
type hanzi
wait-for {go}
key space
wait-for {end}
""",
    )
    viewer = harness.start_client(srv, "--script", str(script))
    sid = srv.wait_linked()["id"]
    # The prompt "$ " and the preedit "han zi" are on the terminal's first line; fcitx5's candidates
    # go just below it, starting where the preedit starts (after the prompt's two cells).
    box = _waiting(harness, lambda: _candidate_window(srv.screenshot(sid)), "fcitx5's candidate window")
    left, top, width, height = box
    assert 12 <= left <= 20 and 14 <= top <= 24, box
    assert height >= 15, box
    # A candidate chosen (space commits the first), the window goes.
    go.touch()
    _waiting(harness, lambda: _candidate_window(srv.screenshot(sid)) is None, "the candidate window gone")
    end.touch()
    assert viewer.wait() == 0, viewer.stderr()
