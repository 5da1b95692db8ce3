"""Real Debian clients in the session compositor: what they draw and what they receive."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.compositor.harness import BACKGROUND_RGB, running_session
from tests.conftest import script
from wayray.compositor.geometry import Rect
from wayray.compositor.globals import GLOBAL_VERSIONS
from wayray.compositor.positioner import place
from wayray.compositor.testing import (
    BTN_LEFT,
    BTN_RIGHT,
    KEY_LEFTALT,
    KEY_LEFTCTRL,
    KEY_LEFTSHIFT,
    chord,
    click,
    type_text,
)
from wayray.compositor.xdg_popup import PopupRole

KEY_C, KEY_D, KEY_V, KEY_TAB, KEY_F4 = 46, 32, 47, 15, 62
FOOT = ("foot", "-o", "font=monospace:size=11", "sh")
pytestmark = pytest.mark.slow


def _foot_surface_count(session, pid: int) -> int:  # type: ignore[no-untyped-def]
    wm = session.comp.core.wm
    for w in wm.windows:
        if w.toplevel.client.pid == pid and w.surface is not None:
            return sum(1 for c in w.surface.children if c is not w.surface and c.mapped_content)
    return 0


async def test_wayland_info_lists_every_global_with_its_version(tmp_path: Path) -> None:
    async with running_session(tmp_path) as s:
        info = await s.spawn("wayland-info")
        assert await s.wait_exit(info) == 0
        found = dict(re.findall(r"interface: '(\w+)',\s+version:\s+(\d+)", info.output()))
    expected = {name: str(v) for name, v in GLOBAL_VERSIONS.items()}
    expected["wl_shm"] = "2"  # libwayland's own wl_shm (the libwayland pywayland bundles)
    del expected["wayray_wm_manager_v1"]  # hidden from every client but the session's window manager
    assert found == expected
    assert "zwp_linux_dmabuf_v1" not in info.output()  # shared memory only: GL clients use llvmpipe on shm


async def test_simple_shm_animates_only_inside_its_window_with_exact_damage(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(800, 600)) as s:
        frames = s.comp.consumer()
        replica = np.zeros((600, 800), dtype=np.uint32)
        await s.spawn("weston-simple-shm")
        win = await s.wait_window(lambda w: w.title == "simple-shm", "the simple-shm window")
        shots = []
        damage_boxes: list[Rect] = []
        for _ in range(4):
            frame = await asyncio.wait_for(frames.next_frame(), 30)
            for r in frame.damage:
                replica[r.y : r.y2, r.x : r.x2] = frame.pixels[r.y : r.y2, r.x : r.x2]
            if not frame.full:
                damage_boxes.extend(frame.damage)
            shots.append(s.pixels())
            await asyncio.sleep(0.15)
        s.save("simple-shm")
        # The replica built only from damaged rectangles equals the compositor's framebuffer.
        frame = frames.take_frame()
        for r in frame.damage:
            replica[r.y : r.y2, r.x : r.x2] = frame.pixels[r.y : r.y2, r.x : r.x2]
        assert np.array_equal(replica, np.asarray(s.comp.framebuffer))
    r = win.rect
    inside = np.zeros(shots[0].shape, dtype=bool)
    inside[r.y : r.y2, r.x : r.x2] = True
    changed = np.zeros(shots[0].shape, dtype=bool)
    for a, b in zip(shots, shots[1:], strict=False):
        changed |= a != b
    assert changed.any(), "the animation did not change the picture"
    assert not (changed & ~inside).any(), "pixels outside the window changed"
    assert (shots[-1][~inside] == BACKGROUND_RGB).all()
    # Damage came from the client's own damage: within its window, not the whole output.
    assert damage_boxes and all(
        b.x >= r.x and b.y >= r.y and b.x2 <= r.x2 and b.y2 <= r.y2 for b in damage_boxes
    )


async def test_foot_runs_a_typed_command_and_draws_csd_with_subsurfaces(tmp_path: Path) -> None:
    async with running_session(tmp_path) as s:
        foot = await s.spawn(*FOOT)
        win = await s.wait_window(lambda w: w.app_id == "foot", "the foot window")
        await s.wait_for(lambda: _foot_surface_count(s, foot.pid) > 0, "foot's decoration subsurfaces")
        await s.settle()
        await type_text(s.comp, 'echo "Typed: A-Z & 42!" > typed.txt\n')
        typed = s.workdir / "typed.txt"
        await s.wait_for(typed.exists, "the file the typed command creates")
        await s.wait_for(lambda: typed.read_text() == "Typed: A-Z & 42!\n", "the typed text in the file")
        await s.settle()
        pixels = s.pixels()
        s.save("foot")
        surface = s.comp.core.wm.focused.surface
        ox, oy = s.comp.core.wm.focused.surface_origin()
    assert win.focused
    # The title bar is a subsurface above the terminal surface: its rows differ from the background.
    title = pixels[win.rect.y : oy, win.rect.x : win.rect.x2]
    assert oy > win.rect.y and title.size and (title != BACKGROUND_RGB).mean() > 0.9
    assert surface is not None


async def test_eventdemo_logs_the_injected_keys_modifiers_motion_and_buttons(tmp_path: Path) -> None:
    async with running_session(tmp_path) as s:
        demo = await s.spawn(
            "stdbuf",
            "-oL",
            "weston-eventdemo",
            "--log-key",
            "--log-button",
            "--log-motion",
            "--log-axis",
            name="eventdemo",
        )
        win = await s.wait_window(lambda w: w.title == "EventDemo", "the eventdemo window")
        await s.settle()
        x, y = win.rect.x + 100, win.rect.y + 80
        s.comp.pointer_motion(x, y)
        s.comp.pointer_motion(x + 20, y + 10)
        await click(s.comp, x + 20, y + 10)
        await type_text(s.comp, "aB")
        s.comp.pointer_axis(0, 15.0, 1)
        await s.wait_for(lambda: "axis time" in demo.output(), "eventdemo's axis line")
        log = demo.output()
    # eventdemo reports coordinates relative to its toytoolkit frame, which starts 32 px before the
    # window geometry (the shadow); the compositor sends surface-relative motion.
    assert re.search(r"motion time: \d+, x: 152\.0+, y: 122\.0+", log), log
    assert re.search(r"button: 272, state: pressed", log) and re.search(r"button: 272, state: released", log)
    assert "key: 30, unicode: 97, state: pressed, modifiers: 0x0" in log
    assert "key: 42, unicode: 65505, state: pressed" in log  # left shift
    assert "key: 48, unicode: 66, state: pressed, modifiers: 0x1" in log  # B with shift held
    assert "key: 48, unicode: 66, state: released" in log
    assert "axis discrete axis: 0 value: 1" in log and "axis: vertical, value: 15.0" in log


async def test_input_at_the_limits_of_what_a_viewer_can_send_never_fails(tmp_path: Path) -> None:
    # The wire carries u32 key and button codes, i32 wheel value120s and any finite f64: the input
    # API takes all of them (wl_fixed values saturate) and the session's input keeps working.
    async with running_session(tmp_path) as s:
        demo = await s.spawn(
            "stdbuf", "-oL", "weston-eventdemo", "--log-key", "--log-axis", name="eventdemo"
        )
        win = await s.wait_window(lambda w: w.title == "EventDemo", "the eventdemo window")
        await s.settle()
        x, y = win.rect.x + 100, win.rect.y + 80
        s.comp.pointer_motion(x, y)
        s.comp.key(2**32 - 1, True)
        s.comp.key(2**32 - 1, False)
        s.comp.pointer_button(2**32 - 1, True)
        s.comp.pointer_button(2**32 - 1, False)
        s.comp.pointer_axis(0, 1e300, None)
        s.comp.pointer_axis(0, -1e300, -(2**31) // 120)
        s.comp.pointer_motion(1e300, -1e300)
        s.comp.pointer_motion(x, y)
        await type_text(s.comp, "a")
        await s.wait_for(lambda: "key: 30, unicode: 97, state: released" in demo.output(), "the key a")
        log = demo.output()
    assert re.search(r"axis: vertical, value: 8388607\.99", log), log
    assert re.search(r"axis: vertical, value: -8388608\.0", log), log


async def test_two_clients_click_to_focus_and_raise_then_copy_paste_between_them(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1024, 768)) as s:
        first = await s.spawn(*FOOT, "-c", "clear; yes wayraysel42 | head -60; exec sh", name="foot-a")
        a = await s.wait_window(lambda w: w.pid == first.pid, "the first foot window")
        await s.settle()
        second = await s.spawn(*FOOT, name="foot-b")
        b = await s.wait_window(
            lambda w: w.pid == second.pid and w.focused, "the second foot window, focused"
        )
        await s.settle()
        assert [w.pid for w in s.comp.windows()] == [first.pid, second.pid]
        # b was cascaded over a: a point of a that b does not cover.
        px, py = a.rect.x + 10, a.rect.y + 60
        assert not b.rect.x <= px < b.rect.x2 or not b.rect.y <= py < b.rect.y2
        # Where b's title bar lies over a: b's title bar colour now, a's terminal after the raise.
        band = (slice(b.rect.y + 4, b.rect.y + 20), slice(b.rect.x, a.rect.x2))
        title_colour = int(s.pixels()[b.rect.y + 2, b.rect.x + 2])
        before = s.pixels()[band].copy()
        # Triple-click selects a whole line of "wayraysel42" in a, which also focuses and raises it.
        # (The three clicks at once: foot counts a triple click only within its multi-click time,
        # which a loaded machine's pauses between awaited clicks could exceed.)
        s.comp.pointer_motion(px, py)
        for _ in range(3):
            s.comp.pointer_button(BTN_LEFT, True)
            s.comp.pointer_button(BTN_LEFT, False)
        await s.wait_window(
            lambda w: w.pid == first.pid and w.focused, "the first window focused by the click"
        )
        assert [w.pid for w in s.comp.windows()] == [second.pid, first.pid]
        await s.settle()
        after = s.pixels()[band]
        assert (before == title_colour).mean() > 0.7
        assert (after == title_colour).mean() < 0.2, "the raised window did not come to the front"
        s.save("raised")
        # Ctrl+Shift+C copies the selection; the clipboard now offers foot's text.
        await chord(s.comp, KEY_LEFTCTRL, KEY_LEFTSHIFT, KEY_C)
        await s.wait_for(lambda: s.comp.selection_mime_types(), "foot's selection on the clipboard")
        copied = await s.comp.get_selection("text/plain;charset=utf-8")
        assert copied is not None and b"wayraysel42" in copied
        # Alt+Tab goes back to b; paste there into a file.
        await chord(s.comp, KEY_LEFTALT, KEY_TAB)
        await s.wait_window(lambda w: w.pid == second.pid and w.focused, "Alt+Tab back to the second window")
        await type_text(s.comp, "cat > pasted.txt\n")
        await asyncio.sleep(0.2)
        await chord(s.comp, KEY_LEFTCTRL, KEY_LEFTSHIFT, KEY_V)
        await type_text(s.comp, "\n")
        await asyncio.sleep(0.2)
        await chord(s.comp, KEY_LEFTCTRL, KEY_D)
        pasted = s.workdir / "pasted.txt"
        await s.wait_for(lambda: pasted.exists() and "wayraysel42" in pasted.read_text(), "the pasted text")


async def test_selection_set_from_outside_is_pasted_and_client_selection_is_reported(tmp_path: Path) -> None:
    heard: list[tuple[str, list[str] | None]] = []
    async with running_session(tmp_path, on_selection=lambda kind, mimes: heard.append((kind, mimes))) as s:
        await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot", "the foot window")
        await s.settle()
        s.comp.set_selection(
            {"text/plain;charset=utf-8": b"from-the-viewer", "text/plain": b"from-the-viewer"}
        )
        await type_text(s.comp, "cat > remote.txt\n")
        await asyncio.sleep(0.2)
        await chord(s.comp, KEY_LEFTCTRL, KEY_LEFTSHIFT, KEY_V)
        await type_text(s.comp, "\n")
        await asyncio.sleep(0.2)
        await chord(s.comp, KEY_LEFTCTRL, KEY_D)
        out = s.workdir / "remote.txt"
        await s.wait_for(
            lambda: out.exists() and "from-the-viewer" in out.read_text(), "the pasted remote text"
        )
        # A client setting the selection is reported with its mime types.
        await type_text(s.comp, "printf client-owned | wl-copy\n")
        await s.wait_for(
            lambda: any(m and "text/plain" in m for _k, m in heard), "the client's new selection"
        )
        data = await s.comp.get_selection("text/plain")
        assert data == b"client-owned"


async def test_gtk_menu_popup_maps_where_the_positioner_puts_it(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1280, 900)) as s:
        await s.spawn("gtk3-widget-factory", env={"GDK_BACKEND": "wayland", "GSK_RENDERER": "cairo"})
        win = await s.wait_window(lambda w: w.app_id == "gtk3-widget-factory", "the GTK window")
        await asyncio.sleep(1.0)  # its spinners never stop animating: settle() would not return
        before = s.pixels()
        # Right-click in the first entry: GTK opens its context menu as an xdg_popup at the pointer.
        cx, cy = win.rect.x + 150, win.rect.y + 73
        await click(s.comp, cx, cy, BTN_RIGHT)

        def mapped_popups() -> list[PopupRole]:
            return [
                r for r in s.comp.core.display.objects() if isinstance(r, PopupRole) and r.xdg_surface.mapped
            ]

        popups = await s.wait_for(mapped_popups, "the GTK menu popup")
        popup = popups[0]

        def menu_drawn() -> bool:  # GTK may draw the menu's content a frame after mapping it
            ox, oy = popup.origin()
            w, h = popup.geometry.width, popup.geometry.height
            now = s.pixels()[oy : oy + h, ox : ox + w]
            return bool((now != before[oy : oy + h, ox : ox + w]).mean() > 0.3)

        await s.wait_for(menu_drawn, "the menu drawn at the popup's place")
        after = s.pixels()
        s.save("gtk-menu")
        out = s.comp.core.output.logical
        expected = place(popup.rules, out.translate(-win.rect.x, -win.rect.y))
        ox, oy = popup.origin()
        region = after[oy : oy + popup.geometry.height, ox : ox + popup.geometry.width]
        was = before[oy : oy + popup.geometry.height, ox : ox + popup.geometry.width]
        # Escape-free dismissal: a click outside the client's surfaces dismisses the popup.
        await click(s.comp, 5, 5)
        await s.wait_for(lambda: not mapped_popups(), "the popup dismissed by a click outside")
    assert popup.geometry == expected
    assert popup.rules.anchor_rect is not None and popup.rules.anchor_rect.contains(
        cx - win.rect.x, cy - win.rect.y
    )
    assert (ox, oy) == (win.rect.x + expected.x, win.rect.y + expected.y)
    assert (region != was).mean() > 0.3, "no menu was drawn at the popup's place"


async def test_output_resize_reconfigures_a_maximized_toplevel(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1024, 768)) as s:
        foot = await s.spawn("foot", "--maximized", "sh")
        await s.wait_window(
            lambda w: w.pid == foot.pid and w.maximized and w.rect == Rect(0, 0, 1024, 768), "foot maximized"
        )
        frames = s.comp.consumer()
        s.comp.resize_output(1280, 800)
        win = await s.wait_window(
            lambda w: w.pid == foot.pid and w.rect == Rect(0, 0, 1280, 800), "foot re-configured to 1280x800"
        )
        await s.settle()
        frame = frames.take_frame()
        pixels = s.pixels()
        s.save("resized")
    assert win.maximized
    assert frame.width == 1280 and frame.height == 800 and frame.full
    assert (pixels == BACKGROUND_RGB).mean() < 0.01, "foot does not cover the resized output"


async def test_misbehaving_clients_are_disconnected_and_others_carry_on(tmp_path: Path) -> None:
    script = Path(__file__).parent / "clients" / "misbehave.py"
    expected = {
        "wrong_serial": r"xdg_surface#\d+: error 4: ",
        "buffer_before_configure": r"xdg_surface#\d+: error 3: ",
        "destroyed_parent_popup": r"xdg_wm_base#\d+: error 2: ",
        "incomplete_positioner_popup": r"xdg_wm_base#\d+: error 5: the positioner lacks a size",
        "roleless_popup_parent": r"xdg_wm_base#\d+: error 3: the popup's parent has no role",
        "xdg_surface_before_role": r"error 6: xdg_surface destroyed before its toplevel",
        "short_stride": r"wl_surface#\d+: error 2: .*stride",
        # libwayland's SIGBUS guard around our read: the pool shrank under the buffer.
        "truncated_pool": r"wl_buffer#\d+: error 2: error accessing SHM buffer",
    }
    async with running_session(tmp_path, size=(640, 480)) as s:
        shm = await s.spawn("weston-simple-shm")
        await s.wait_window(lambda w: w.title == "simple-shm", "simple-shm")
        for scenario, pattern in expected.items():
            bad = await s.spawn(sys.executable, str(script), scenario, name=scenario)
            assert await s.wait_exit(bad) == 3, bad.output()
            assert re.search(pattern, bad.output()), bad.output()
            # The compositor carries on: simple-shm still animates, and a new client still works.
            seq = s.comp.frame_seq
            await s.wait_for(lambda seq=seq: s.comp.frame_seq > seq + 2, "simple-shm still animating")
        good = await s.spawn(sys.executable, str(script), "well_behaved", name="well_behaved")
        assert await s.wait_exit(good) == 0, good.output()
        assert shm.proc.returncode is None
        assert [w.title for w in s.comp.windows()] == ["simple-shm"]


async def test_extreme_but_legal_requests_keep_the_client_and_the_display_going(tmp_path: Path) -> None:
    # Coordinates and scales far beyond any screen are legal: the client stays connected, and
    # compositing goes on for everyone (a failure there would freeze the whole session's display).
    script = Path(__file__).parent / "clients" / "misbehave.py"
    async with running_session(tmp_path, size=(640, 480)) as s:
        await s.spawn("weston-simple-shm")
        await s.wait_window(lambda w: w.title == "simple-shm", "simple-shm")
        for scenario in ("huge_buffer_scale", "far_subsurface", "far_popup"):
            client = await s.spawn(sys.executable, str(script), scenario, "--stay", name=scenario)
            await s.wait_for(
                lambda c=client: "no error, staying" in c.output() or c.proc.returncode is not None,
                f"{scenario} done",
            )
            assert "no error, staying" in client.output(), client.output()
            seq = s.comp.frame_seq
            await s.wait_for(
                lambda seq=seq: s.comp.frame_seq > seq + 2, f"simple-shm animating beside {scenario}"
            )
            assert any(w.pid == client.pid for w in s.comp.windows()), f"{scenario}'s window is gone"
            assert client.proc.returncode is None, client.output()


async def test_a_client_that_never_reads_the_selection_cannot_pile_up_pipes(tmp_path: Path) -> None:
    # The compositor writes a selection set from outside into each reader's pipe; a client that asks
    # again and again through a pipe it never reads must not make it hold a descriptor per request.
    script = Path(__file__).parent / "clients" / "misbehave.py"
    async with running_session(tmp_path, size=(640, 480)) as s:
        s.comp.set_selection({"text/plain": b"x" * (1 << 20)})  # more than a pipe holds
        fds_before = len(os.listdir("/proc/self/fd"))
        hoarder = await s.spawn(sys.executable, str(script), "hoard_selection_pipes", "--stay")
        await s.wait_for(
            lambda: "no error" in hoarder.output() or hoarder.proc.returncode is not None, "the client"
        )
        assert "no error, staying" in hoarder.output(), hoarder.output()
        held = len(os.listdir("/proc/self/fd")) - fds_before
    assert held <= 24, f"the compositor holds {held} more descriptors for one client's 200 requests"


def test_wrsrvd_compositor_exits_with_its_command(runtime_dir: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(runtime_dir), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    res = subprocess.run(
        [
            script("wrsrvd"),
            "compositor",
            "--",
            "sh",
            "-c",
            'test -S "$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY" && exit 7',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 7, res.stderr
    assert list(runtime_dir.iterdir()) == [], "the socket was not cleaned up"
    usage = subprocess.run([script("wrsrvd"), "compositor"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "no COMMAND" in usage.stderr


def test_wrsrvd_compositor_writes_a_screenshot_on_sigusr1(tmp_path: Path, runtime_dir: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    env = {"XDG_RUNTIME_DIR": str(runtime_dir), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    proc = subprocess.Popen(
        [
            script("wrsrvd"),
            "compositor",
            "--size",
            "640x480",
            "--screenshot",
            str(shot),
            "--",
            "weston-simple-shm",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    colours = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p.is_socket() for p in runtime_dir.iterdir()):
            time.sleep(0.05)
        while time.monotonic() < deadline and colours <= 20:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            if shot.exists():
                img = Image.open(shot)
                assert img.size == (640, 480)
                px = np.asarray(img.convert("RGB")).reshape(-1, 3)
                colours = len({tuple(p) for p in px[::97]})
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert colours > 20, "the screenshot never showed simple-shm"
    assert proc.returncode == 128 + signal.SIGTERM, err  # simple-shm was stopped with SIGTERM
    assert list(runtime_dir.iterdir()) == [], "the socket was not cleaned up"
