"""The X window manager: X windows in the floating WM as a person sees them — titles and title bars,
their pixels where the WM put them, configure requests within their size hints, dialogs over their
parents, close through WM_DELETE_WINDOW, focus and stacking, override-redirect menus where X put them,
keys and clicks (docs/xwayland.md §5, §6). Real Xwayland; the X client is a scripted xcffib program
(tests/compositor/clients/xwin.py) so each property is exact, and xterm and xdotool where they do."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.compositor.harness import DEADLINE, Client, Session, running_session
from tests.e2e.test_x11 import _has_gtk3_for_python
from tests.ocr import shows
from wayray.compositor import session as session_module
from wayray.compositor import xselection
from wayray.compositor.session import Axis, WindowInfo
from wayray.compositor.testing import BTN_LEFT, KEY_LEFTALT, KEY_LEFTCTRL, chord, click, type_text
from wayray.compositor.titlebar import ACTIVE, HEIGHT
from wayray.compositor.xselection import XSource
from wayray.wayland.xkb import Keymap

pytestmark = pytest.mark.skipif(shutil.which("Xwayland") is None, reason="needs Xwayland (apt: xwayland)")

XWIN = (sys.executable, str(Path(__file__).parent / "clients" / "xwin.py"))
KEY_F4 = 62
RED, BLUE, GREEN = 0xFF0000, 0x0000FF, 0x00FF00


def _rgb(c: tuple[int, int, int]) -> int:
    return (c[0] << 16) | (c[1] << 8) | c[2]


async def _xwin(s: Session, title: str, *args: str) -> tuple[Client, WindowInfo]:
    client = await s.spawn(*XWIN, "--title", title, *args, name="xwin")
    win = await s.wait_window(lambda w: w.title == title, f"the X window {title!r}")
    # The program's own word that X mapped it (its window id) may come after the WM's.
    await s.wait_for(lambda: _lines(client, "mapped"), f"{title!r} to say it is mapped")
    return client, win


def _share(px: np.ndarray, r: object, color: int) -> float:
    x, y, w, h = r.x, r.y, r.width, r.height  # type: ignore[attr-defined]
    part = px[y : y + h, x : x + w]
    return float(np.count_nonzero(part == color)) / max(1, part.size)


def _lines(client: Client, word: str) -> list[list[str]]:
    return [line.split()[1:] for line in client.output().splitlines() if line.startswith(word + " ")]


async def test_a_managed_x_window_has_its_title_a_title_bar_and_its_pixels(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        client, win = await _xwin(s, "Xwin A", "--size", "300x200")
        assert win.app_id == "xwin" and win.pid == client.pid and win.focused
        assert (win.rect.width, win.rect.height) == (300, 200)
        await s.settle()
        px = s.pixels()
        assert _share(px, win.rect, RED) > 0.99, "the X window's pixels are not where the WM put it"
        bar = px[win.rect.y - HEIGHT : win.rect.y, win.rect.x : win.rect.x2]
        assert np.count_nonzero(bar == _rgb(ACTIVE)) > bar.size // 2, "no focused title bar above it"
        # X knows where the WM put it: its ConfigureNotify has the same root position.
        await s.wait_for(
            lambda: any(c[3:] == [str(win.rect.x), str(win.rect.y)] for c in _lines(client, "configure")),
            "X told where the window is",
        )
        if shutil.which("xdotool"):
            wid = _lines(client, "mapped")[0][0]
            await s.spawn("xdotool", "set_window", "--name", "Renamed by xdotool", wid)
            await s.wait_window(lambda w: w.title == "Renamed by xdotool", "the new title")


async def test_closing_an_x_window_sends_wm_delete_window(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        client, win = await _xwin(s, "Close me")
        await chord(s.comp, KEY_LEFTALT, KEY_F4)
        assert await s.wait_exit(client) == 0
        assert _lines(client, "delete"), "the client did not hear WM_DELETE_WINDOW"
        await s.wait_for(lambda: not any(w.title == "Close me" for w in s.comp.windows()), "the window gone")


async def test_configure_requests_are_kept_within_the_size_hints_and_the_output(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        client, win = await _xwin(
            s, "Hinted", "--size", "300x200", "--min", "250x150", "--max", "400x300",
            "--request", "1000x1000", "--request", "10x10", "--request", "350x260",
        )  # fmt: skip
        # Each request is answered; the last one is within the hints and is honoured exactly.
        await s.wait_window(
            lambda w: w.title == "Hinted" and (w.rect.width, w.rect.height) == (350, 260), "350x260"
        )
        sizes = [(int(c[1]), int(c[2])) for c in _lines(client, "configure") if c[1:3] != ["0", "0"]]
        assert (400, 300) in sizes and (250, 150) in sizes, sizes
        assert all(250 <= w <= 400 and 150 <= h <= 300 for w, h in sizes), sizes
        # A window asking for far more than the output gets at most the output.
        await _xwin(s, "Huge", "--size", "100x100", "--request", "100000x100000")

        def cut(w: WindowInfo) -> bool:
            return w.title == "Huge" and 100 < w.rect.width <= 1024 and 100 < w.rect.height <= 768

        await s.wait_window(cut, "the huge request cut to the output")


async def test_a_transient_dialog_is_centred_over_its_parent_and_above_it(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        await s.spawn(*XWIN, "--title", "Parent", "--size", "400x300", "--dialog", name="xwin")
        parent = await s.wait_window(lambda w: w.title == "Parent", "the parent")
        dialog = await s.wait_window(lambda w: w.title == "Parent dialog", "the dialog")
        pc = (parent.rect.x + parent.rect.width // 2, parent.rect.y + parent.rect.height // 2)
        dc = (dialog.rect.x + dialog.rect.width // 2, dialog.rect.y + dialog.rect.height // 2)
        assert abs(pc[0] - dc[0]) <= 1 and abs(pc[1] - dc[1]) <= 1, (parent.rect, dialog.rect)
        titles = [w.title for w in s.comp.windows()]
        assert titles.index("Parent dialog") > titles.index("Parent")
        assert [w for w in s.comp.windows() if w.focused][0].title == "Parent dialog"
        await s.settle()
        assert _share(s.pixels(), dialog.rect, BLUE) > 0.99


async def test_a_click_focuses_and_raises_an_x_window_and_x_hears_it(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        first, a = await _xwin(s, "First", "--size", "300x200")
        second, b = await _xwin(s, "Second", "--size", "300x200", "--color", "00FF00")
        assert [w.title for w in s.comp.windows()][-1] == "Second"
        # Click a part of First that Second does not cover (it is cascaded down and right).
        x, y = a.rect.x + 5, a.rect.y + 5
        await click(s.comp, x, y)
        await s.wait_for(lambda: [w.title for w in s.comp.windows()][-1] == "First", "First raised")
        assert [w for w in s.comp.windows() if w.focused][0].title == "First"
        await s.wait_for(lambda: _lines(first, "button"), "the click reaching First")
        bx, by = (int(v) for v in _lines(first, "button")[0][1:3])
        assert (bx, by) == (5, 5), "X got the click at another place in the window"
        await s.settle()
        assert _share(s.pixels(), a.rect, RED) > 0.99, "First is not drawn on top"
        if shutil.which("xdotool"):
            probe = await s.spawn("xdotool", "getactivewindow", name="xdotool")
            await s.wait_exit(probe)
            wid = _lines(first, "mapped")[0][0]
            assert probe.output().split() == [wid], "_NET_ACTIVE_WINDOW is not the focused window"


async def test_keys_reach_the_focused_x_window(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        client, _ = await _xwin(s, "Keys")
        await type_text(s.comp, "a")
        await s.wait_for(lambda: _lines(client, "key"), "a key press in X")
        assert _lines(client, "key")[0][1] == "38", "X's keycode for 'a' is 38 (evdev 30 + 8)"


async def test_typing_into_xterm_with_a_german_keymap(tmp_path: Path) -> None:
    """The viewer's keymap reaches X through Xwayland's wl_keyboard: a German viewer types z, y, ö
    and > (keys a US layout calls y, z, ; and Shift+<>) into xterm."""
    if shutil.which("xterm") is None:
        pytest.skip("needs xterm")
    async with running_session(tmp_path, x11=True) as s:
        s.comp.set_keymap(Keymap.from_names(layout="de").text)
        out = s.workdir / "typed.txt"
        script = f'read line; echo "$line" > {out}'
        await s.spawn("xterm", "-u8", "-T", "typing", "-e", "sh", "-c", script)
        await s.wait_window(lambda w: w.title == "typing" and w.focused, "the xterm, focused")
        await s.settle()
        await type_text(s.comp, "Hello, X11! zy ö <> 123\n")
        await s.wait_for(lambda: out.exists() and out.read_text().strip(), "xterm's shell reading the line")
        assert out.read_text().strip() == "Hello, X11! zy ö <> 123"
        # The same physical key: evdev 21 is Z on a German keyboard (Y on a US one).
        assert Keymap.from_names(layout="de").keys_for_char("z")[0] == 21


@pytest.mark.skipif(shutil.which("xterm") is None, reason="needs xterm")
async def test_xterms_ctrl_click_menu_is_an_override_redirect_window_at_the_pointer(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        await s.spawn("xterm", "-T", "menus", "-e", "sh", "-c", "sleep 600")
        win = await s.wait_window(lambda w: w.title == "menus" and w.focused, "the xterm, focused")
        await s.settle()
        x, y = win.rect.x + 60, win.rect.y + 80
        before = s.pixels()
        s.comp.pointer_motion(x, y)
        s.comp.key(KEY_LEFTCTRL, True)
        s.comp.pointer_button(BTN_LEFT, True)  # held: the menu shows while the button is down
        xwm = s.comp.core.xwm
        assert xwm is not None
        menu = await s.wait_for(
            lambda: next(
                (m for m in xwm.unmanaged if m.surface is not None and m.surface.has_content), None
            ),
            "xterm's Main Options menu",
        )
        assert [w.title for w in s.comp.windows()] == ["menus"], "the menu was managed as a window"
        # Xt places the menu around the pointer (its first entry under it): where X says, on screen.
        where = f"menu {menu.width}x{menu.height} at {menu.x},{menu.y}, pointer at {x},{y}"
        assert menu.x - 20 <= x <= menu.x + menu.width + 20 and menu.y - 20 <= y <= menu.y + menu.height, (
            where
        )
        await s.settle()
        s.save("xterm-menu")
        area = np.s_[menu.y : menu.y + menu.height, menu.x : menu.x + menu.width]
        changed = np.count_nonzero(s.pixels()[area] != before[area])
        assert changed > menu.width * menu.height // 20, "the menu is not drawn over xterm"
        s.comp.pointer_button(BTN_LEFT, False)
        s.comp.key(KEY_LEFTCTRL, False)
        await s.wait_for(lambda: not xwm.unmanaged, "the menu gone after the release")


async def test_an_override_redirect_window_is_shown_where_x_put_it_above_the_windows(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        _, under = await _xwin(s, "Under", "--size", "400x300")
        menu = await s.spawn(
            *XWIN, "--title", "Menu", "--size", "60x40", "--color", "00FF00",
            "--override-redirect", f"{under.rect.x + 20},{under.rect.y + 30}", name="xwin",
        )  # fmt: skip
        await s.wait_for(lambda: _lines(menu, "mapped"), "the menu mapped")
        x, y = under.rect.x + 20, under.rect.y + 30

        def shown() -> bool:
            px = s.pixels()
            return bool(np.all(px[y : y + 40, x : x + 60] == GREEN))

        await s.wait_for(shown, "the override-redirect window drawn at its X position over the window")
        assert "Menu" not in [w.title for w in s.comp.windows()], "an override-redirect window was managed"
        assert [w for w in s.comp.windows() if w.focused][0].title == "Under"


FOOT = ("foot", "-o", "font=monospace:size=11", "sh")


async def _xclip_out(s: Session, selection: str) -> str:
    out = await s.spawn("xclip", "-o", "-selection", selection, name="xclip-out")
    assert await s.wait_exit(out) == 0, out.output()
    return out.output()


@pytest.mark.skipif(shutil.which("xclip") is None, reason="needs xclip")
async def test_the_clipboard_goes_from_xclip_to_wl_paste_and_back(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot" and w.focused, "foot, focused")
        await s.settle()
        # Copied in X (xclip stays to serve it, as an X program owning the selection does) ...
        await s.spawn("sh", "-c", "printf 'copied in X' | xclip -selection clipboard", name="xclip-in")
        await s.wait_for(lambda: "text/plain;charset=utf-8" in (s.comp.selection_mime_types() or []),
                         "the X clipboard offered to Wayland")  # fmt: skip
        assert await s.comp.get_selection("text/plain;charset=utf-8") == b"copied in X"
        # ... pasted in foot with wl-paste.
        got = s.workdir / "got.txt"
        await type_text(s.comp, f"wl-paste --no-newline > {got}\n")
        await s.wait_for(lambda: got.exists() and got.read_text() == "copied in X", "wl-paste's output")
        # Copied in Wayland (wl-copy in foot) ... pasted in X with xclip.
        await type_text(s.comp, "printf 'copied in Wayland' | wl-copy\n")
        await s.wait_for(
            lambda: (
                s.comp.core.clipboard.source is not None
                and not isinstance(s.comp.core.clipboard.source, XSource)
            ),
            "wl-copy's selection",
        )
        assert await _xclip_out(s, "clipboard") == "copied in Wayland"


@pytest.mark.skipif(shutil.which("xclip") is None, reason="needs xclip")
async def test_the_primary_selection_goes_between_x_and_wayland(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        await s.spawn("sh", "-c", "printf 'primary from X' | xclip -selection primary", name="xclip-in")
        await s.wait_for(lambda: s.comp.selection_mime_types(primary=True), "X's primary offered to Wayland")
        assert await s.comp.get_selection("text/plain", primary=True) == b"primary from X"
        s.comp.set_selection(
            {"text/plain;charset=utf-8": "primary from the viewer ✓".encode()}, primary=True
        )
        assert await _xclip_out(s, "primary") == "primary from the viewer ✓"


async def test_misbehaving_x_clients_cost_only_themselves(tmp_path: Path) -> None:
    """Windows mapped and destroyed at once (the WM speaks of windows already gone: X errors), a
    flood of configure requests for 100000x100000 and 0x0, a window never mapped: a well-behaved X
    window and a Wayland one are served all the while."""
    async with running_session(tmp_path, x11=True) as s:
        never = await s.spawn(*XWIN, "--title", "Never", "--never-map", name="xwin")
        rude = await s.spawn(*XWIN, "--title", "Rude", "--flash", "40", "--flood", "600", name="xwin")
        await s.wait_for(lambda: "flooded" in rude.output().split(), "the flood sent")
        _, fine = await _xwin(s, "Fine", "--size", "200x100", "--color", "00FF00")
        await s.settle()
        assert _share(s.pixels(), fine.rect, GREEN) > 0.99
        rude_win = await s.wait_window(lambda w: w.title == "Rude", "the rude window")
        assert 0 < rude_win.rect.width <= 1024 and 0 < rude_win.rect.height <= 768
        assert "Never" not in [w.title for w in s.comp.windows()]
        assert never.proc.returncode is None and rude.proc.returncode is None
        assert [w.title for w in s.comp.windows() if w.title.startswith("flash")] == []
        await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot", "a Wayland window after it all")


@pytest.mark.skipif(shutil.which("gtk3-widget-factory") is None, reason="needs gtk-3-examples")
async def test_a_gtk_program_on_x_draws_its_own_frame_and_gets_no_second_title_bar(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        await s.spawn("gtk3-widget-factory", env={"GDK_BACKEND": "x11"})
        win = await s.wait_window(lambda w: w.title == "gtk3-widget-factory", "the GTK window on X")
        xwin = next(w for w in s.comp.core.wm.windows if w.title == "gtk3-widget-factory")
        assert not xwin.server_decorated, "_MOTIF_WM_HINTS without decorations: GTK draws its own"
        # Its minimum size (WM_NORMAL_HINTS) is wider than this output: its top-left corner stays on it.
        assert 0 <= win.rect.x < 1024 and 0 <= win.rect.y < 768
        r = win.rect

        def drawn() -> bool:  # (its spinners never let the session settle)
            body = s.pixels()[r.y : r.y2, r.x : r.x2]
            return np.count_nonzero(body == 0xF6F5F4) > body.size // 4

        await s.wait_for(drawn, "GTK's window background drawn")
        above = s.pixels()[max(0, r.y - HEIGHT) : r.y, r.x : r.x2]
        assert np.count_nonzero(above == _rgb(ACTIVE)) < above.size // 10, "a title bar over GTK's own"


@pytest.mark.parametrize("state", ["fullscreen", "maximized"])
async def test_an_x_client_asks_for_fullscreen_or_maximized_through_net_wm_state(
    tmp_path: Path, state: str
) -> None:
    async with running_session(tmp_path, x11=True) as s:
        client = await s.spawn(*XWIN, "--title", "Stateful", "--state", state, name="xwin")
        win = await s.wait_window(lambda w: w.title == "Stateful" and getattr(w, state), f"{state} window")
        want = (1024, 768) if state == "fullscreen" else (1024, 768 - HEIGHT)
        at = (0, 0) if state == "fullscreen" else (0, HEIGHT)
        win = await s.wait_window(
            lambda w: (
                w.title == "Stateful" and (w.rect.x, w.rect.y, w.rect.width, w.rect.height) == (*at, *want)
            ),
            f"{state}: the whole output (maximized: below its title bar)",
        )
        # X was told the size and the place (its ConfigureNotify), not only the compositor's picture.
        await s.wait_for(
            lambda: (
                [str(want[0]), str(want[1]), str(win.rect.x), str(win.rect.y)]
                in [c[1:] for c in _lines(client, "configure")]
            ),
            "X's idea of the window",
        )


async def _x_focus(s: Session) -> tuple[str, str]:
    """X's idea of the focus: (_NET_ACTIVE_WINDOW on the root, the input focus window), as ids."""
    active = await s.spawn("xprop", "-root", "_NET_ACTIVE_WINDOW", name="xprop")
    focus = await s.spawn("xdotool", "getwindowfocus", name="xdotool")
    await s.wait_exit(active)
    await s.wait_exit(focus)
    return active.output().split()[-1], focus.output().strip()


@pytest.mark.skipif(
    shutil.which("xdotool") is None or shutil.which("xprop") is None, reason="xdotool, xprop"
)
async def test_x_focus_follows_the_wm_into_and_out_of_x_and_respects_the_input_model(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        plain, _ = await _xwin(s, "Plain")
        wid = _lines(plain, "mapped")[0][0]
        active, focus = await _x_focus(s)
        assert int(active, 16) == int(wid) and focus == wid
        # A Wayland window takes the focus: no X window has it any more.
        await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot" and w.focused, "foot focused")
        active, focus = await _x_focus(s)
        assert int(active, 16) == 0 and focus != wid, "X still thinks its window has the focus"
        # A globally active client (WM_HINTS input False, WM_TAKE_FOCUS) is told to take it itself.
        taker, _ = await _xwin(s, "Taker", "--take-focus")
        await s.wait_for(lambda: _lines(taker, "take-focus"), "WM_TAKE_FOCUS sent")
        active, focus = await _x_focus(s)
        assert int(active, 16) == int(_lines(taker, "mapped")[0][0])
        assert focus != _lines(taker, "mapped")[0][0], (
            "the WM set the focus on a window that takes it itself"
        )


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="needs xdotool")
async def test_an_x_window_minimizes_itself_and_scrolls(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        client, win = await _xwin(s, "Scrolled", "--size", "300x200")
        s.comp.pointer_motion(win.rect.x + 50, win.rect.y + 50)
        s.comp.pointer_axis(Axis.VERTICAL, 15.0, discrete=1)
        s.comp.pointer_axis(Axis.VERTICAL, -15.0, discrete=-1)
        # X has no scroll events: a wheel notch is a press of button 5 (down) or 4 (up).
        await s.wait_for(lambda: len(_lines(client, "button")) >= 2, "two wheel notches in X")
        assert [b[3] for b in _lines(client, "button")][:2] == ["5", "4"]
        # xdotool windowminimize sends WM_CHANGE_STATE IconicState (ICCCM 4.1.4), as programs do.
        wid = _lines(client, "mapped")[0][0]
        await s.spawn("xdotool", "windowminimize", wid, name="xdotool")
        await s.wait_window(lambda w: w.title == "Scrolled" and w.minimized, "the X window minimized")


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="needs xdotool")
async def test_an_x_program_presents_its_window_with_net_active_window(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        first, _ = await _xwin(s, "Presented")
        await _xwin(s, "Other")
        assert [w for w in s.comp.windows() if w.focused][0].title == "Other"
        # xdotool windowactivate sends _NET_ACTIVE_WINDOW, as gtk_window_present and Java's toFront do.
        wid = _lines(first, "mapped")[0][0]
        await s.spawn("xdotool", "windowactivate", "--sync", wid, name="xdotool")
        await s.wait_window(lambda w: w.title == "Presented" and w.focused, "the presented window focused")
        assert s.comp.windows()[-1].title == "Presented", "the presented window was not raised"


@pytest.mark.skipif(shutil.which("xclip") is None, reason="needs xclip")
async def test_a_large_x_selection_sent_in_pieces_reaches_wayland_whole(tmp_path: Path) -> None:
    """xclip sends a selection larger than its X requests may be in INCR pieces (ICCCM 2.7.2)."""
    async with running_session(tmp_path, x11=True) as s:
        text = b"".join(b"line %07d of a large X selection\n" % i for i in range(160_000))  # 5.4 MB
        big = s.workdir / "big.txt"
        big.write_bytes(text)
        await s.spawn("sh", "-c", f"xclip -selection clipboard < {big}", name="xclip-in")
        await s.wait_for(lambda: s.comp.selection_mime_types(), "the X clipboard offered to Wayland")
        data = await s.comp.get_selection("text/plain;charset=utf-8")
        assert data is not None and len(data) == len(text) and data == text


async def test_x_windows_follow_an_output_resize(tmp_path: Path) -> None:
    """A viewer with another screen size resizes the session's output (hot-desk): a maximized X window
    fills the new output and X hears it; another is kept on it; Xwayland's root follows."""
    async with running_session(tmp_path, x11=True) as s:
        big, _ = await _xwin(s, "Big", "--state", "maximized")
        await s.wait_window(lambda w: w.title == "Big" and w.rect.width == 1024, "maximized at 1024x768")
        _, small = await _xwin(s, "Small", "--size", "780x560")
        assert small.rect.x2 > 800 or small.rect.y2 > 600, "place it so the smaller output cuts it"
        s.comp.resize_output(800, 600)
        want = (0, HEIGHT, 800, 600 - HEIGHT)
        await s.wait_window(
            lambda w: w.title == "Big" and (w.rect.x, w.rect.y, w.rect.width, w.rect.height) == want,
            "the maximized X window at the new output's size",
        )
        await s.wait_for(lambda: ["800", str(600 - HEIGHT), "0", str(HEIGHT)] in
                         [c[1:] for c in _lines(big, "configure")], "X told the new size")  # fmt: skip
        moved = await s.wait_window(lambda w: w.title == "Small", "the other X window")
        assert moved.rect.x2 <= 800 and moved.rect.y2 <= 600, moved.rect
        # Xwayland hears the new mode on its own wl_output, in its own time.
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while loop.time() < end:
            probe = await s.spawn("xdpyinfo", name="xdpyinfo")
            await s.wait_exit(probe)
            dims = [line for line in probe.output().splitlines() if "dimensions" in line]
            if dims and "800x600 pixels" in dims[0]:
                break
            await asyncio.sleep(0.1)
        assert dims and "800x600 pixels" in dims[0], f"Xwayland's root did not follow the output: {dims}"


async def _xclip_bytes(s: Session, *args: str) -> bytes:
    out = s.workdir / f"xclip-out-{len(s.clients)}.bin"
    proc = await s.spawn("sh", "-c", f"xclip -o {' '.join(args)} > {out}", name="xclip-out")
    assert await s.wait_exit(proc) == 0, proc.output()
    return out.read_bytes()


@pytest.mark.skipif(
    shutil.which("xclip") is None or shutil.which("wl-copy") is None, reason="xclip, wl-copy"
)
async def test_a_wayland_selection_larger_than_an_x_request_reaches_x_whole(tmp_path: Path) -> None:
    """wl-copy offers 20 MiB, more than one X request may carry (16 MiB with BIG-REQUESTS): X clients
    get it in INCR pieces (ICCCM 2.7.2), whole and in order."""
    async with running_session(tmp_path, x11=True) as s:
        text = b"".join(b"line %08d of a large Wayland selection\n" % i for i in range(520_000))
        assert len(text) > 20 * 1024 * 1024
        big = s.workdir / "big.txt"
        big.write_bytes(text)
        await s.spawn("sh", "-c", f"wl-copy < {big}", name="wl-copy")
        await s.wait_for(
            lambda: (
                s.comp.core.clipboard.source is not None
                and not isinstance(s.comp.core.clipboard.source, XSource)
            ),
            "wl-copy's selection",
        )
        got = await _xclip_bytes(s, "-selection", "clipboard")
        assert len(got) == len(text) and got == text
        # The transfer left nothing behind: a small one right after it still arrives in one piece.
        s.comp.set_selection({"text/plain;charset=utf-8": b"small after large"})
        assert await _xclip_out(s, "clipboard") == "small after large"


@pytest.mark.skipif(
    shutil.which("xclip") is None or shutil.which("wl-paste") is None, reason="xclip, wl-paste"
)
async def test_an_image_and_every_offered_type_go_between_x_and_wayland(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        png = s.comp.screenshot_png()
        html = b"<p>copied <b>rich</b> text</p>"
        # Wayland -> X: a source offering a picture, HTML and text; X's TARGETS lists each of them.
        s.comp.set_selection({"image/png": png, "text/html": html, "text/plain;charset=utf-8": b"plain"})
        targets = (await _xclip_bytes(s, "-selection", "clipboard", "-t", "TARGETS")).decode().split()
        for name in ("TARGETS", "TIMESTAMP", "image/png", "text/html", "UTF8_STRING", "STRING", "TEXT"):
            assert name in targets, (name, targets)
        assert await _xclip_bytes(s, "-selection", "clipboard", "-t", "image/png") == png
        assert await _xclip_bytes(s, "-selection", "clipboard", "-t", "text/html") == html
        assert await _xclip_bytes(s, "-selection", "clipboard", "-t", "UTF8_STRING") == b"plain"
        # X -> Wayland: xclip offers a picture; wl-paste (a Wayland client) lists and reads it.
        shot = s.workdir / "shot.png"
        shot.write_bytes(png)
        await s.spawn(
            "xclip", "-selection", "clipboard", "-t", "image/png", "-i", str(shot), name="xclip-in"
        )
        await s.wait_for(
            lambda: (
                isinstance(s.comp.core.clipboard.source, XSource)
                and "image/png" in (s.comp.selection_mime_types() or [])
            ),
            "X's picture offered to Wayland",
        )
        types = await s.spawn("wl-paste", "--list-types", name="wl-paste")
        assert await s.wait_exit(types) == 0, types.output()
        assert "image/png" in types.output().split(), types.output()
        out = s.workdir / "pasted.png"
        paste = await s.spawn("sh", "-c", f"wl-paste --type image/png > {out}", name="wl-paste")
        assert await s.wait_exit(paste) == 0, paste.output()
        assert out.read_bytes() == png


XREQUEST = (sys.executable, str(Path(__file__).parent / "clients" / "xrequest.py"))


async def test_an_x_client_that_stops_taking_a_large_selection_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requestor that reads the INCR start and never asks for a piece: the transfer is dropped after
    INCR_TIMEOUT (no descriptor or buffer kept), and other X clients paste meanwhile and after."""
    monkeypatch.setattr(xselection, "INCR_TIMEOUT", 1.0)
    async with running_session(tmp_path, x11=True) as s:
        data = bytes(range(256)) * 8192  # 2 MiB: more than one piece
        s.comp.set_selection({"application/octet-stream": data})
        first = await s.spawn(*XREQUEST, "--target", "application/octet-stream", name="xrequest")
        assert await s.wait_exit(first) == 0, first.output()
        assert "type INCR" in first.output() and f"got {len(data)}" in first.output(), first.output()
        assert s.comp.core.xwm is not None
        bridge = s.comp.core.xwm.selections
        fds = len(os.listdir("/proc/self/fd"))
        hung = await s.spawn(*XREQUEST, "--target", "application/octet-stream", "--stall", name="xrequest")
        await s.wait_for(lambda: "type INCR" in hung.output(), "the answer started as INCR")
        assert bridge._answers, "no transfer in progress"
        fine = await s.spawn(*XREQUEST, "--target", "application/octet-stream", name="xrequest")
        assert await s.wait_exit(fine) == 0, fine.output()
        assert f"got {len(data)}" in fine.output(), fine.output()
        await s.wait_for(lambda: not bridge._answers, "the stalled transfer dropped")
        assert hung.proc.returncode is None
        assert len(os.listdir("/proc/self/fd")) <= fds, "the dropped transfer kept a descriptor"
        assert await _xclip_bytes(s, "-selection", "clipboard", "-t", "application/octet-stream") == data


XRESTACK = (sys.executable, str(Path(__file__).parent / "clients" / "xrestack.py"))


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="needs xdotool")
async def test_x_programs_restack_their_windows_and_the_pixels_show_it(tmp_path: Path) -> None:
    """XRaiseWindow (xdotool windowraise), XLowerWindow and a restack relative to a sibling: the WM
    honours them (the scene's order and the pixels where the windows overlap), without moving the
    focus, and X's own stacking order (XQueryTree, what X programs see) agrees."""
    async with running_session(tmp_path, x11=True) as s:
        a_client, a = await _xwin(s, "A", "--size", "300x200")
        b_client, b = await _xwin(s, "B", "--size", "300x200", "--color", "00FF00")
        c_client, c = await _xwin(s, "C", "--size", "300x200", "--color", "0000FF")
        wid = {
            n: _lines(cl, "mapped")[0][0] for n, cl in (("A", a_client), ("B", b_client), ("C", c_client))
        }
        # A's top-left 32 px are its own; the next 32 px square is under B only; C covers the rest.
        under_b = (a.rect.x + 40, a.rect.y + 40)

        def order() -> list[str]:
            return [w.title for w in s.comp.windows()]

        def pixel(at: tuple[int, int]) -> int:
            return int(s.pixels()[at[1], at[0]])

        assert order() == ["A", "B", "C"] and pixel(under_b) == GREEN

        async def restack(*args: str) -> None:
            proc = await s.spawn(*XRESTACK, *args, name="xrestack")
            assert await s.wait_exit(proc) == 0, proc.output()

        async def x_order() -> list[str]:
            tree = await s.spawn(sys.executable, "-c", QUERY_TREE, name="xquerytree")
            assert await s.wait_exit(tree) == 0, tree.output()
            ids = tree.output().split()
            return [n for i in ids for n, w in wid.items() if w == i]

        proc = await s.spawn("xdotool", "windowraise", wid["A"], name="xdotool")
        assert await s.wait_exit(proc) == 0, proc.output()
        await s.wait_for(lambda: order() == ["B", "C", "A"], "A raised by XRaiseWindow")
        await s.wait_for(lambda: pixel(under_b) == RED, "A's pixels over B's")
        assert [w.title for w in s.comp.windows() if w.focused] == ["C"], "a raise request took the focus"
        assert await x_order() == ["B", "C", "A"]
        await restack(wid["A"], "Below")
        await s.wait_for(lambda: order() == ["A", "B", "C"], "A lowered by XLowerWindow")
        await s.wait_for(lambda: pixel(under_b) == GREEN, "B's pixels over A's again")
        # Above a sibling: A goes just above B, still under C.
        await restack(wid["A"], "Above", wid["B"])
        await s.wait_for(lambda: order() == ["B", "A", "C"], "A just above B")
        await s.wait_for(lambda: pixel(under_b) == RED, "A's pixels over B's")
        assert await x_order() == ["B", "A", "C"]
        # TopIf: C is occluded by nobody, so it stays; B is occluded (by A), so it goes on top.
        await restack(wid["C"], "TopIf")
        await restack(wid["B"], "TopIf")
        await s.wait_for(lambda: order() == ["A", "C", "B"], "B on top by TopIf, C left alone")
        # Opposite: B covers others and nothing covers it, so it goes to the bottom.
        await restack(wid["B"], "Opposite")
        await s.wait_for(lambda: order() == ["B", "A", "C"], "B at the bottom by Opposite")
        # BottomIf relative to a sibling: A covers nothing of C (it is under it) and stays; C covers
        # part of B, so it goes to the bottom.
        await restack(wid["A"], "BottomIf", wid["C"])
        await restack(wid["C"], "BottomIf", wid["B"])
        await s.wait_for(lambda: order() == ["C", "B", "A"], "C at the bottom, A left alone")
        assert await x_order() == ["C", "B", "A"]
        assert [w.title for w in s.comp.windows() if w.focused] == ["C"]


QUERY_TREE = """
import xcffib
import xcffib.xproto
conn = xcffib.connect()
root = conn.get_setup().roots[0].root
print(*conn.core.QueryTree(root).reply().children)
"""


KEY_F1, KEY_ESC = 59, 1


async def _widget_factory(s: Session, backend: str = "x11") -> WindowInfo:
    """gtk3-widget-factory forced onto X (or Wayland), its window drawn (at its minimum size, wider
    than the output: its layout does not depend on the output)."""
    await s.spawn("gtk3-widget-factory", env={"GDK_BACKEND": backend})
    win = await s.wait_window(lambda w: w.title == "gtk3-widget-factory", "the GTK window on X")
    r = win.rect

    def drawn() -> bool:
        body = s.pixels()[r.y : r.y2, r.x : r.x2]
        return np.count_nonzero(body == 0xF6F5F4) > body.size // 4

    await s.wait_for(drawn, "GTK's window background drawn")
    return win


async def _wait_shown(s: Session, phrase: str, box: tuple[int, int, int, int]) -> None:
    """Until OCR reads ``phrase`` in ``box``. OCR runs in a thread: the compositor's loop must go on
    (an Xwayland whose compositor stops reading for seconds dies: 'can't send file descriptor')."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not await asyncio.to_thread(shows, s.comp.screenshot_png(), phrase, box=box):
        assert loop.time() < end, f"{phrase!r} never read in {box}"
        await asyncio.sleep(0.2)


@pytest.mark.skipif(shutil.which("gtk3-widget-factory") is None, reason="needs gtk-3-examples")
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr")
@pytest.mark.parametrize("backend", ["x11", "wayland"])
async def test_a_gtk_dialog_stays_drawn_over_its_parent_when_the_parent_is_clicked(
    tmp_path: Path, backend: str
) -> None:
    """GTK's About dialog (F1; WM_TRANSIENT_FOR its window on X, xdg_toplevel.set_parent on Wayland)
    opens over the window, and a click on the window (focusing it) leaves the dialog on top, readable:
    a dialog hidden behind its window is lost to the user, and a modal one makes the program look
    hung."""
    async with running_session(tmp_path, x11=True) as s:
        parent = await _widget_factory(s, backend)
        await chord(s.comp, KEY_F1)
        about = await s.wait_window(lambda w: w.title == "About GTK Widget Factory", "the About dialog")
        r = about.rect
        box = (r.x, r.y, r.x2, r.y2)
        phrase = "Program to demonstrate GTK themes"
        await _wait_shown(s, phrase, box)
        assert [w.title for w in s.comp.windows()][-1] == "About GTK Widget Factory"
        # A click on the window, away from the dialog.
        at = (parent.rect.x + 60, parent.rect.y2 - 60)
        assert not r.contains(*at)
        await click(s.comp, *at)
        await s.wait_window(lambda w: w.title == "gtk3-widget-factory" and w.focused, "the window focused")
        assert [w.title for w in s.comp.windows()][-1] == "About GTK Widget Factory", "the dialog went under"
        await _wait_shown(s, phrase, box)  # (the dialog drawn over its window)


@pytest.mark.skipif(shutil.which("gtk3-widget-factory") is None, reason="needs gtk-3-examples")
async def test_a_gtk_dialog_on_x_with_its_own_header_bar_moves_when_dragged(tmp_path: Path) -> None:
    """GTK draws dialogs' title bars itself (client-side) and asks the WM to move the window when
    its header bar is dragged (_NET_WM_MOVERESIZE): the dialog follows the pointer, X is told where
    it is, and the program takes clicks afterwards (no button left held)."""
    async with running_session(tmp_path, x11=True) as s:
        parent = await _widget_factory(s)
        ox, oy = parent.rect.x, parent.rect.y
        await click(s.comp, ox + 803, oy + 26)  # the "Page 3" tab
        await asyncio.sleep(0.5)  # (GTK's page transition)
        await click(s.comp, ox + 803, oy + 83)  # its gear button: a "Settings" dialog
        dialog = await s.wait_window(lambda w: w.title == "Settings", "the Settings dialog")
        xwin = next(w for w in s.comp.core.wm.windows if w.title == "Settings")
        assert not xwin.server_decorated, "GTK draws this dialog's header bar"
        assert [w.title for w in s.comp.windows()][-1] == "Settings"
        r = dialog.rect
        start = (r.x + 60, r.y + 20)  # on its header bar, away from the title and the close button
        s.comp.pointer_motion(*start)
        s.comp.pointer_button(BTN_LEFT, True)
        for i in range(1, 21):
            s.comp.pointer_motion(start[0] - 8 * i, start[1] + 5 * i)
            await asyncio.sleep(0.02)
        await s.wait_for(lambda: s.comp.core.seat.grab.name == "MOVE", "the WM moving the dialog")
        s.comp.pointer_motion(start[0] - 160, start[1] + 100)
        s.comp.pointer_button(BTN_LEFT, False)
        moved = await s.wait_window(
            lambda w: w.title == "Settings" and (w.rect.x, w.rect.y) != (r.x, r.y), "the dialog moved"
        )
        assert abs(moved.rect.x - (r.x - 160)) <= 8 and abs(moved.rect.y - (r.y + 100)) <= 8, moved.rect
        await s.wait_for(lambda: (xwin.toplevel.x, xwin.toplevel.y) == (moved.rect.x, moved.rect.y),
                         "X told where the dialog is")  # fmt: skip
        # The program still takes clicks: its window comes to the front ... under its dialog.
        await click(s.comp, parent.rect.x + 60, parent.rect.y2 - 60)
        await s.wait_window(lambda w: w.title == "gtk3-widget-factory" and w.focused, "the window focused")
        assert [w.title for w in s.comp.windows()][-1] == "Settings"


@pytest.mark.parametrize(("direction", "moved", "grown"), [(8, (-40, 30), (0, 0)), (4, (0, 0), (50, 40))])
async def test_an_x_program_moves_or_resizes_its_window_through_net_wm_moveresize(
    tmp_path: Path, direction: int, moved: tuple[int, int], grown: tuple[int, int]
) -> None:
    """_NET_WM_MOVERESIZE (8: move, 4: the bottom-right corner) on a button press: the window follows
    the pointer while the button is held, and X hears the new place or size."""
    async with running_session(tmp_path, x11=True) as s:
        client, win = await _xwin(s, "Dragged", "--size", "300x200", "--moveresize", str(direction))
        r = win.rect
        start = (r.x + 100, r.y + 100)
        s.comp.pointer_motion(*start)
        s.comp.pointer_button(BTN_LEFT, True)
        await s.wait_for(lambda: s.comp.core.seat.grab.name in ("MOVE", "RESIZE"), "the WM's grab")
        dx, dy = moved if direction == 8 else grown
        s.comp.pointer_motion(start[0] + dx, start[1] + dy)
        s.comp.pointer_button(BTN_LEFT, False)
        want = (r.x + moved[0], r.y + moved[1], r.width + grown[0], r.height + grown[1])
        await s.wait_window(
            lambda w: w.title == "Dragged" and (w.rect.x, w.rect.y, w.rect.width, w.rect.height) == want,
            f"the window at {want}",
        )
        await s.wait_for(
            lambda: [str(want[2]), str(want[3]), str(want[0]), str(want[1])] in
            [c[1:] for c in _lines(client, "configure")],
            "X told the new place and size",
        )  # fmt: skip


MAGENTA = 0xFF00FF


async def test_xwayland_shell_v1_pairs_x_windows_by_serial_and_only_xwayland_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Protocol level (Debian 12's Xwayland does not speak xwayland_shell_v1): a stand-in started in
    Xwayland's place (clients/fake_xwayland.py) binds the global on Xwayland's connection and pairs
    each X window with a magenta surface of its own by serial. The windows show magenta where the WM
    put them, whichever of the serial's commit and its WL_SURFACE_SERIAL came first; an ordinary
    client does not see the global."""
    fake = tmp_path / "Xwayland"
    script = Path(__file__).parent / "clients" / "fake_xwayland.py"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(session_module, "find_xwayland", lambda: str(fake))
    async with running_session(tmp_path, x11=True) as s:
        for title, size in (("First", "200x150"), ("Second", "240x120")):
            _, win = await _xwin(s, title, "--size", size)  # (each on top when it comes)
            await s.wait_for(lambda w=win: _share(s.pixels(), w.rect, MAGENTA) > 0.99, f"{title} paired")
        assert s.comp.core.xwayland is not None and s.comp.core.xwayland.binary == str(fake)
        info = await s.spawn("wayland-info", name="wayland-info")
        assert await s.wait_exit(info) == 0, info.output()
        assert "wl_compositor" in info.output() and "xwayland_shell_v1" not in info.output()


@pytest.mark.parametrize(("check", "error"), [("role", "already has"), ("serial0", "serial 0")])
async def test_xwayland_shell_v1_protocol_errors_end_that_connection_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, check: str, error: str
) -> None:
    """A second xwayland_surface for one surface is the role error; the serial 0 is invalid_serial:
    the stand-in's connection is ended with the error logged, and Wayland clients carry on."""
    fake = tmp_path / "Xwayland"
    script = Path(__file__).parent / "clients" / "fake_xwayland.py"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(session_module, "find_xwayland", lambda: str(fake))
    monkeypatch.setenv("FAKE_XWAYLAND_CHECK", check)
    caplog.set_level(logging.INFO, logger="wayray.wayland.server")
    async with running_session(tmp_path, x11=True) as s:
        await s.spawn(*XWIN, "--title", "Never shown", name="xwin")  # (starts the stand-in)
        await s.wait_for(
            lambda: any(
                "protocol error" in r.getMessage() and error in r.getMessage() for r in caplog.records
            ),
            f"the {check} error",
        )
        await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot", "a Wayland window after it")


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="needs xdotool")
async def test_override_redirect_windows_are_drawn_in_xs_stacking_order(tmp_path: Path) -> None:
    """Two override-redirect windows overlapping (a menu and its submenu, a tooltip over a menu): the
    one X has on top is drawn on top, also after a program raises the other one (XRaiseWindow on an
    override-redirect window is X's alone: no request reaches the WM, only X's ConfigureNotify)."""
    async with running_session(tmp_path, x11=True) as s:
        _, under = await _xwin(s, "Under", "--size", "400x300")
        x, y = under.rect.x + 20, under.rect.y + 30
        menus = []
        for title, color, at in (("First", "00FF00", (x, y)), ("Second", "0000FF", (x + 50, y + 40))):
            menu = await s.spawn(
                *XWIN, "--title", title, "--size", "100x80", "--color", color,
                "--override-redirect", f"{at[0]},{at[1]}", name="xwin",
            )  # fmt: skip
            await s.wait_for(lambda m=menu: _lines(m, "mapped"), f"{title} mapped")
            menus.append(menu)
        overlap = np.s_[y + 40 : y + 80, x + 50 : x + 100]

        def on_top(color: int) -> bool:
            return bool(np.all(s.pixels()[overlap] == color))

        await s.wait_for(lambda: on_top(BLUE), "the second (mapped last, on top in X) drawn over the first")
        raised = await s.spawn("xdotool", "windowraise", _lines(menus[0], "mapped")[0][0], name="xdotool")
        assert await s.wait_exit(raised) == 0, raised.output()
        await s.wait_for(lambda: on_top(GREEN), "the first, raised in X, drawn over the second")


GTK3_POPUPS = Path(__file__).parents[1] / "e2e" / "clients" / "gtk3_popups.py"


@pytest.mark.skipif(not _has_gtk3_for_python(), reason="needs python3-gi and gir1.2-gtk-3.0")
@pytest.mark.parametrize("where", ["background", "wayland window"])
async def test_an_open_x_menu_closes_on_a_click_outside_every_x_window(tmp_path: Path, where: str) -> None:
    """A GTK 3 menu on X holds X's pointer grab: on an X server a click anywhere closes it. A click on
    the background, or on a Wayland window, is given to X while an X program holds the pointer, so
    the menu closes (the click is the grab's, as under X) instead of staying open above every
    window."""
    report = tmp_path / "report"
    async with running_session(tmp_path, x11=True) as s:
        if where == "wayland window":
            await s.spawn("weston-simple-shm")
            shm = await s.wait_window(
                lambda w: w.app_id != "" and w.title != "gtk3 popups", "weston-simple-shm"
            )
        await s.spawn("/usr/bin/python3", str(GTK3_POPUPS), str(report), env={"GDK_BACKEND": "x11"})
        win = await s.wait_window(
            lambda w: w.title == "gtk3 popups" and w.focused, "the GTK window, focused"
        )

        def placed() -> dict[str, int] | None:
            path = report / "window.json"
            if not path.exists():
                return None
            told = json.loads(path.read_text())
            return told if (told["x"], told["y"]) == (win.rect.x, win.rect.y) else None

        told = await s.wait_for(placed, "the program told where its window is")
        bx, by, bw, bh = told["menu"]
        await click(s.comp, win.rect.x + bx + bw // 2, win.rect.y + by + bh // 2)
        await s.wait_for(lambda: (report / "menu-shown-1.json").exists(), "the menu open")
        if where == "background":
            at = (5, 5)
        else:
            r = shm.rect
            at = next(
                (x, y) for x, y in ((r.x + 5, r.y + 5), (r.x2 - 5, r.y2 - 5)) if not win.rect.contains(x, y)
            )
        under, xwm = s.comp.core.surface_at(*at), s.comp.core.xwm
        assert xwm is not None and (under is None or under[0].client is not xwm.client), "not outside X"
        await click(s.comp, *at)
        await s.wait_for(
            lambda: (report / "menu-hidden-1").exists(), f"the menu closed by the click on the {where}"
        )
        await s.wait_for(lambda: not np.any(s.pixels() == 0x00C000), "the menu's pixels gone")
