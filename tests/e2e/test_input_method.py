"""An input method in a session: fcitx5 (Debian's, with its pinyin engine) composes 汉字 into foot.

The whole path: wrclient's script types Latin keys as a person at the viewer would; wrsrvd relays
them; the session compositor gives them to fcitx5 through input-method-v2's keyboard grab while
foot's text field (text-input-v3) has the focus; fcitx5 composes "hanzi" + space into 汉字 and
commits it into foot; the keys it does not use (while it is switched off with Ctrl+Space) come back
through its virtual keyboard, and reach foot after the 汉字 they followed (foot, busy drawing, may
take the text in late: the compositor holds the keys until it has). What foot got is read from the
shell: the command writes it to a file.
(No CJK font is installed here, so the pixels show boxes; the text itself is checked.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import Harness, eventually, failure

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("fcitx5") is None, reason="fcitx5 is not installed (tools/apt-packages.txt)"
    ),
]

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
    try:
        text = eventually(lambda: out.exists() and out.read_text(encoding="utf-8"), "the command's output")
    except AssertionError as err:  # what fcitx5 did with the keys, for whoever reads the failure
        raise AssertionError(f"{err}\nfcitx5's log:\n{_log_tail(harness)}") from None
    assert text == "[汉字]\n", (text, _log_tail(harness))


def _log_tail(harness: Harness) -> str:
    return (harness.tmp / "fcitx5.log").read_text(errors="replace")[-4000:]
