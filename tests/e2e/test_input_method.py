"""An input method in a session: fcitx5 (Debian's, with its pinyin engine) composes 汉字 into foot.

The whole path: wrclient's script types Latin keys as a person at the viewer would; wrsrvd relays
them; the session compositor gives them to fcitx5 through input-method-v2's keyboard grab while
foot's text field (text-input-v3) has the focus; fcitx5 composes "hanzi" + space into 汉字 and
commits it into foot; the keys it does not use (while it is switched off with Ctrl+Space) come back
through its virtual keyboard, and reach foot after the 汉字 they followed (foot, busy drawing, may
take the text in late: the compositor holds the keys until it has). What foot got is read from the
shell: the command writes it to a file.
(No CJK font is installed here, so the pixels show boxes; the text itself is checked.)

fcitx5 repeats a key itself (the grab's repeat_info: 600 ms, then 25 a second), from a timer it starts
when it reads the press. When it is busy for longer than that after reading a press, it repeats the
key although the release came in time and waits in its socket, again and again until the timer has
caught up (fcitx5 5.0.21; foot, blocked the same way, does not). It is busy that long twice, once
each: loading its pinyin engine, a second after it starts, and at the first consonant it composes
(0.3-0.5 s alone, up to 1.5 s under load). A key typed then comes out many times ('eeeeeeeeeeeeeecho:
not found', and the command never ran), so the script types only once fcitx5 has loaded pinyin, and
composes a first syllable and cancels it (Escape) before the test proper.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import Harness, WrServer, eventually, failure
from tests.ocr import ocr
from wayray.server.admin import AdminClient, AdminError

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
    once fcitx5's Wayland input method is up (its log says so). The file ``_ready`` names appears
    once fcitx5, activated by foot's text field, holds the keyboard (its Wayland front end logged the
    grab's keymap) and has loaded its pinyin engine (it does so a second after it starts, busy until
    done); the script types after that: keys typed before the grab go to foot as they are, as they
    would for a person typing that early (fcitx5, starved, can take longer than the screen to settle),
    and a key fcitx5 read just before it got busy loading is repeated (see above)."""
    config = harness.tmp / "config-home" / "fcitx5"
    config.mkdir(parents=True, exist_ok=True)
    (config / "profile").write_text(PROFILE)
    (config / "config").write_text("[Behavior]\nActiveByDefault=False\n")
    log = harness.tmp / "fcitx5.log"
    start = (
        "DBUS_SESSION_BUS_ADDRESS=disabled: fcitx5 --disable=dbus,xcb,xim --verbose=waylandim=5 "
        f"> {log} 2>&1 & "
        f"until grep -q 'Loaded addon waylandim' {log}; do sleep 0.1; done; "
        f"(until grep -q keymapCallback {log} && grep -q 'Loaded addon pinyin$' {log}; do sleep 0.1; done; "
        f"touch {_ready(harness)}) & "
        "exec foot --window-size-chars=60x10 sh"
    )
    return ["sh", "-c", start]


def _ready(harness: Harness) -> Path:
    return harness.tmp / "fcitx5-ready"


def test_fcitx5_composes_pinyin_into_hanzi_in_foot(harness: Harness) -> None:
    srv = harness.server(_session(harness))
    out = harness.home / "composed.txt"
    script = harness.write_script(
        "pinyin.txt",
        f"""wait-for {_ready(harness)}
settle 1000
# fcitx5 is busy (loading) at the first consonant it composes, and may repeat it: cancelled with Escape
key ctrl+space
type ni
key Escape
key ctrl+space
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
    except AssertionError as err:  # what foot shows and fcitx5 did, for whoever reads the failure
        raise AssertionError(f"{err}\n{_what_happened(harness, srv)}") from None
    assert text == "[汉字]\n", (text, _what_happened(harness, srv))


def _what_happened(harness: Harness, srv: WrServer) -> str:
    """The session's screen as read by OCR (the command line as typed, the shell's complaint; the
    picture is kept as screen.png) and the end of fcitx5's log (the keys it was given)."""
    try:
        with AdminClient(srv.runtime / "admin.sock") as admin:
            png = admin.screenshot(srv.session()["id"])
        (harness.tmp / "screen.png").write_bytes(png)
        screen = ocr(png)
    except (OSError, AdminError, AssertionError) as err:
        screen = f"(no screenshot: {err})"
    log = (harness.tmp / "fcitx5.log").read_text(errors="replace")[-4000:]
    return f"the screen reads:\n{screen}\nfcitx5's log:\n{log}"
