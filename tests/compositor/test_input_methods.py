"""Input methods and shortcut inhibitors in the session compositor, with scripted and real clients.

The whole path with a real input method (fcitx5's pinyin) is tests/e2e/test_input_method.py; here a
scripted input method commits text into foot (the protocol path without fcitx5), and clients that
get the protocols wrong are disconnected while the session carries on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.compositor.harness import Client, Session, running_session
from wayray.compositor.session import WindowInfo

pytestmark = pytest.mark.slow

CLIENT = str(Path(__file__).parent / "clients" / "input_method.py")
FIELD = str(Path(__file__).parent / "clients" / "text_field.py")
REPO = str(Path(__file__).resolve().parents[2])
KEY_A, KEY_E = 30, 18


async def test_a_scripted_input_method_commits_text_into_foot(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(800, 600)) as s:
        out = s.workdir / "composed.txt"
        im = await s.spawn(sys.executable, CLIENT, "commit", "汉字", env={"PYTHONPATH": REPO}, name="im")
        await s.wait_for(lambda: "ready" in im.output(), "the input method")
        # A terminal that passes on what it gets byte by byte (no line to end): what foot puts in it
        # is the input method's text alone. (A key typed right after the commit could reach foot
        # first: foot ignores a done whose serial is stale and applies its text at the next one.)
        await s.spawn("foot", "sh", "-c", f"stty -icanon && head -c 6 > {out}")
        # foot enables its text input when it gets the focus: the input method is activated and
        # commits its text at once, and foot must get it although it commits again meanwhile (its
        # cursor rectangle, drawn after the focus came): see the test below. (Nothing waits for foot's
        # window here: with the six bytes read, the shell and foot end, perhaps before it is seen.)
        await s.wait_for(lambda: "committed" in im.output(), "the input method's commit")
        await s.wait_for(lambda: out.exists() and len(out.read_bytes()) >= 6, "foot's text in the file")
        assert out.read_text(encoding="utf-8") == "汉字"


async def test_text_committed_at_activation_reaches_a_field_that_committed_again_meanwhile(
    tmp_path: Path,
) -> None:
    """The race behind foot losing the input method's first text, made to happen every time.

    The field enables its text input (commit 1); the input method, activated, commits 汉字 at once,
    and the compositor passes it on with ``done(1)``; but the field has meanwhile committed again
    (commit 2: its cursor rectangle, as foot does when it draws its cursor after the focus came), so
    it ignores that stale ``done`` and keeps the text pending, as foot does. It must get a ``done``
    for its latest commit, or the text never reaches it.
    """
    async with running_session(tmp_path) as s:
        go = s.workdir / "go"
        field_cmd = (sys.executable, FIELD, str(go))
        im = await s.spawn(sys.executable, CLIENT, "commit", "汉字", env={"PYTHONPATH": REPO}, name="im")
        await s.wait_for(lambda: "ready" in im.output(), "the input method")
        field = await s.spawn(*field_cmd, env={"PYTHONPATH": REPO}, name="field")
        await s.wait_for(lambda: "enabled" in field.output(), "the field's text input enabled")
        await s.wait_for(lambda: "committed" in im.output(), "the input method's commit")
        go.touch()
        lines = await s.wait_for(
            lambda: [ln for ln in field.output().splitlines() if ln.startswith("text: ")], "the field's text"
        )
        assert lines[0] == "text: 汉字", field.output()


async def test_a_key_the_input_method_sends_after_its_text_reaches_the_field_after_that_text(
    tmp_path: Path,
) -> None:
    """What a person typing pinyin, then Latin, saw go wrong in foot: 汉字 landed in the middle of
    what they typed after it (seen in the fcitx5 end-to-end test under load: 'echo [] > /tmp/befor汉字e...').

    The input method commits 汉字 and at once passes on the next key through its virtual keyboard
    (fcitx5 does so with a key it does not use). The field had committed again before it read the
    ``done`` carrying the text (foot: its cursor rectangle), so it ignores that stale ``done`` and
    applies the text only at the next one; a key sent meanwhile would be typed before the text. The
    key must reach the field after the text it followed."""
    async with running_session(tmp_path) as s:
        go = s.workdir / "go"
        im_cmd = (sys.executable, CLIENT, "commit-then-key", "汉字", str(KEY_E))
        im = await s.spawn(*im_cmd, env={"PYTHONPATH": REPO}, name="im")
        await s.wait_for(lambda: "ready" in im.output(), "the input method")
        field = await s.spawn(sys.executable, FIELD, str(go), env={"PYTHONPATH": REPO}, name="field")
        await s.wait_for(lambda: "enabled" in field.output(), "the field's text input enabled")
        await s.wait_for(lambda: "committed" in im.output(), "the input method's text and key")
        go.touch()

        def text_and_key() -> list[str]:
            got = [ln for ln in field.output().splitlines() if ln.startswith(("text: 汉", "key: "))]
            return got if len(got) >= 2 else []

        lines = await s.wait_for(text_and_key, "the field's text and key")
        assert lines[:2] == ["text: 汉字", f"key: {KEY_E}"], field.output()


async def test_keys_behind_the_input_methods_text_reach_a_field_that_commits_at_every_done(
    tmp_path: Path,
) -> None:
    """Seen with fcitx5 and foot under load: a key typed without end. The keys the input method
    passes on after its text wait until the field has read the text (the test above); foot, while a
    key it holds repeats, commits its moved cursor after every character, and each commit started
    the wait again, so the keys, the repeating key's release among them, waited for ever.

    The field here, once it has the text, commits at every ``done`` it reads (500 times, then it
    prints "calm"). The key that followed the text must reach it after the text and while it is
    still committing, not only once it stops."""
    async with running_session(tmp_path) as s:
        go = s.workdir / "go"
        im_cmd = (sys.executable, CLIENT, "commit-then-key", "汉字", str(KEY_E))
        im = await s.spawn(*im_cmd, env={"PYTHONPATH": REPO}, name="im")
        await s.wait_for(lambda: "ready" in im.output(), "the input method")
        field_cmd = (sys.executable, FIELD, str(go), "--restless")
        field = await s.spawn(*field_cmd, env={"PYTHONPATH": REPO}, name="field")
        await s.wait_for(lambda: "enabled" in field.output(), "the field's text input enabled")
        await s.wait_for(lambda: "committed" in im.output(), "the input method's text and key")
        go.touch()

        def key_or_calm() -> list[str]:
            got = [ln for ln in field.output().splitlines() if ln.startswith(("text: 汉", "key: ", "calm"))]
            got = [ln for i, ln in enumerate(got) if got.index(ln) == i]  # the first of each
            return got if "calm" in got or any(ln.startswith("key: ") for ln in got) else []

        lines = await s.wait_for(key_or_calm, "the key, or the field's end of committing")
        assert lines[:2] == ["text: 汉字", f"key: {KEY_E}"], field.output()


async def test_keys_an_input_method_left_unsent_reach_the_field(tmp_path: Path) -> None:
    """Seen with fcitx5 and foot under load: the command's last keys ('d.txt' and Return) never
    reached foot, though fcitx5 had read every one of them. Busy, fcitx5 read a burst of keys and
    passed each on through its virtual keyboard, flushing after each; the compositor, busy too, did
    not read them as fast, the socket filled, and fcitx5 kept the rest in its buffer: it flushes
    again only once it hears from the compositor, and nothing more came. The compositor wakes an
    input method that sent it keys (an event it needs no answer to), so the rest goes out.

    The input method here passes on one key, then leaves the next unsent until it hears anything
    from the compositor. Both must reach the field."""
    async with running_session(tmp_path) as s:
        im_cmd = (sys.executable, CLIENT, "keys-left-unsent", str(KEY_A), str(KEY_E))
        im = await s.spawn(*im_cmd, env={"PYTHONPATH": REPO}, name="im")
        await s.wait_for(lambda: "ready" in im.output(), "the input method")
        field_cmd = (sys.executable, FIELD, "--cursor", "0", "0", "1", "1")
        field = await s.spawn(*field_cmd, env={"PYTHONPATH": REPO}, name="field")
        await s.wait_for(lambda: f"sent {KEY_A}" in im.output(), "the input method's first key")

        def keys() -> list[str]:
            got = [ln for ln in field.output().splitlines() if ln.startswith("key: ")]
            return got if len(got) >= 2 else []

        lines = await s.wait_for(keys, "both keys in the field")
        assert lines == [f"key: {KEY_A}", f"key: {KEY_E}"], (field.output(), im.output())


async def test_a_second_input_method_is_refused_and_the_first_keeps_working(tmp_path: Path) -> None:
    async with running_session(tmp_path) as s:
        c = await s.spawn(sys.executable, CLIENT, "second", env={"PYTHONPATH": REPO}, name="second")
        assert await s.wait_exit(c) == 0
        assert c.output().splitlines() == ["second unavailable"]


@pytest.mark.parametrize("scenario", ["vk-no-keymap", "double-inhibit"])
async def test_protocol_mistakes_disconnect_only_that_client(tmp_path: Path, scenario: str) -> None:
    async with running_session(tmp_path) as s:
        await s.spawn("weston-simple-shm")
        c = await s.spawn(sys.executable, CLIENT, scenario, env={"PYTHONPATH": REPO}, name=scenario)
        assert await s.wait_exit(c) == 3
        assert "protocol error" in c.output()
        await s.wait_window(lambda w: w.rect.width > 0, "weston-simple-shm still there")


CANDIDATES = 0xC03090  # the scripted candidate window's colour


async def _field_and_candidates(
    s: Session, cursor: tuple[int, int, int, int], popup: tuple[int, int]
) -> tuple[Client, Client, WindowInfo]:
    """A text field with its text cursor at ``cursor`` (on its surface) and a scripted input method
    whose candidate window is ``popup`` (width, height) in one colour, on screen."""
    im = await s.spawn(
        sys.executable, CLIENT, "popup", str(popup[0]), str(popup[1]), f"{CANDIDATES:06x}",
        env={"PYTHONPATH": REPO}, name="im",
    )  # fmt: skip
    await s.wait_for(lambda: "ready" in im.output(), "the input method")
    field = await s.spawn(
        sys.executable, FIELD, "--cursor", *map(str, cursor), env={"PYTHONPATH": REPO}, name="field"
    )
    win = await s.wait_window(lambda w: w.focused and w.rect.width > 0, "the text field focused")
    await s.wait_for(lambda: "popup shown" in im.output(), "the candidate window")
    return im, field, win


def _candidates_at(s: Session, x: int, y: int, w: int, h: int) -> bool:
    """The candidate window's colour fills exactly (x, y, w, h): not a pixel more above or left."""
    px = s.pixels()
    inside = bool((px[y : y + h, x : x + w] == CANDIDATES).all())
    edge = [px[y - 1, x : x + w]] if y > 0 else []
    edge += [px[y : y + h, x - 1]] if x > 0 else []
    return inside and not any((e == CANDIDATES).any() for e in edge)


async def test_the_candidate_window_is_drawn_below_the_text_cursor_and_goes_with_the_focus(
    tmp_path: Path,
) -> None:
    async with running_session(tmp_path, size=(1024, 768)) as s:
        im, field, win = await _field_and_candidates(s, (10, 20, 2, 14), (120, 40))
        x, y = win.rect.x + 10, win.rect.y + 20 + 14  # just below the cursor, at its left
        await s.wait_for(lambda: _candidates_at(s, x, y, 120, 40), "the candidates below the cursor")
        # The input method is told where the cursor is, relative to its window: just above it.
        await s.wait_for(lambda: "rect 0 -14 2 14" in im.output(), "the cursor's rectangle")
        # The field goes away: no text field is active, and the candidates are not drawn.
        field.proc.terminate()
        await s.wait_exit(field)
        await s.wait_for(lambda: not (s.pixels() == CANDIDATES).any(), "the candidates gone")


async def test_the_candidate_window_goes_above_the_cursor_where_there_is_no_room_below(
    tmp_path: Path,
) -> None:
    async with running_session(tmp_path, size=(320, 240)) as s:
        im, field, win = await _field_and_candidates(s, (10, 30, 2, 14), (100, 120))
        cx, cy = win.rect.x + 10, win.rect.y + 30
        assert cy + 14 + 120 > 240 and cy - 120 >= 0, win.rect  # no room below, room above
        await s.wait_for(lambda: _candidates_at(s, cx, cy - 120, 100, 120), "the candidates above")
        await s.wait_for(lambda: "rect 0 120 2 14" in im.output(), "the cursor's rectangle")
