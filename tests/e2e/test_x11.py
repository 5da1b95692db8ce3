"""X11 programs in a real session (wrsrvd, its session process, Xwayland on demand), seen, typed into
and copied from through a headless wrclient over real QUIC on loopback (docs/xwayland.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import script
from tests.e2e.harness import (
    Harness,
    WrServer,
    admin_status,
    differing_pixels,
    eventually,
    failure,
    free_udp_port,
    kill_sessions,
    png_pixels,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("Xwayland") is None or shutil.which("xterm") is None or shutil.which("xclip") is None,
        reason="needs Xwayland, xterm and xclip (apt: xwayland xterm xclip)",
    ),
]

XTERM = ["xterm", "-T", "x-in-wayray", "-bg", "white", "-fg", "black", "-e", "sh"]


def _start_and_wait_for_xterm(harness: Harness, srv: WrServer) -> None:
    """A first viewer starts the session; its xterm shows once Xwayland has started on demand."""
    result = harness.run_client(srv, "--script", str(harness.write_script("start.txt", "settle\n")))
    assert result.returncode == 0, failure(result)
    eventually(
        lambda: np.all(srv.screenshot(srv.session()["id"]) == 255, axis=-1).sum() > 100_000,
        "the xterm drawn in the session",
    )


def test_an_xterm_session_is_typed_into_and_seen_exactly_by_the_viewer(harness: Harness) -> None:
    srv = harness.server(XTERM)
    _start_and_wait_for_xterm(harness, srv)
    out = harness.home / "typed.txt"
    shot = harness.tmp / "viewer.png"
    script = harness.write_script(
        "type.txt",
        f"""settle
type echo typed into X through WayRay $DISPLAY > {out}
key Return
settle 700
snapshot {shot}
""",
    )
    result = harness.run_client(srv, "--script", str(script))
    assert result.returncode == 0, failure(result)
    eventually(lambda: out.exists() and out.read_text(), "xterm's shell running the typed command")
    words = out.read_text().split()
    assert words[:5] == ["typed", "into", "X", "through", "WayRay"]
    assert words[5].startswith(":"), "the session's program had no DISPLAY"
    session = eventually(lambda: (s := srv.session())["state"] == "detached" and s, "the session detached")
    viewer = png_pixels(shot)
    assert differing_pixels(viewer, srv.screenshot(session["id"])) == 0
    white = np.all(viewer == 255, axis=-1)
    assert white.sum() > 100_000, "no white xterm in the viewer's picture"
    # Hot-desk: the badge (token) at the next kiosk brings the session with its X window as it was.
    again = harness.tmp / "next-kiosk.png"
    moved = harness.write_script("again.txt", f"settle\nsnapshot {again}\n")
    result = harness.run_client(srv, "--script", str(moved))
    assert result.returncode == 0, failure(result)
    assert srv.session()["id"] == session["id"]
    assert differing_pixels(png_pixels(again), viewer) == 0, "the X window changed between the kiosks"


def test_the_viewers_clipboard_reaches_x_programs_and_theirs_the_viewer(harness: Harness) -> None:
    srv = harness.server(XTERM)
    _start_and_wait_for_xterm(harness, srv)
    pasted = harness.home / "pasted.txt"
    script = harness.write_script(
        "clip.txt",
        f"""settle
# an X program copies: the viewer's clipboard gets the text
type printf from-x | xclip -selection clipboard
key Return
expect-clipboard from-x
# the viewer copies: X programs can paste it
copy from the viewer
wait 200
type xclip -o -selection clipboard > {pasted}
key Return
settle
""",
    )
    result = harness.run_client(srv, "--script", str(script))
    assert result.returncode == 0, failure(result)
    eventually(lambda: pasted.exists() and pasted.read_text(), "xclip's output in the session")
    assert pasted.read_text() == "from the viewer"


@pytest.mark.parametrize("x11", [False, True])
def test_policy_x11_off_gives_the_sessions_programs_no_display(tmp_path: Path, x11: bool) -> None:
    """A configured instance (servers.toml, policies.toml with `x11 = false`): its session's program
    finds no DISPLAY and no X socket of its compositor; the same instance with the default has one."""
    h = Harness(tmp_path)
    root, run = h.tmp / "root", h.short / "run"
    port, key = free_udp_port(), h.tmp / "state" / "demo" / "access.key"
    seen = h.tmp / "display.txt"
    etc = root / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "host.toml").write_text(f'[host]\nstate_dir = "{h.tmp / "state"}"\nruntime_dir = "{run}"\n')
    command = ["sh", "-c", f'echo "[$DISPLAY]" > {seen}; exec sleep 600']
    (etc / "servers.toml").write_text(
        f'[server.demo]\nlisten = ["127.0.0.1"]\nport = {port}\nsessions = "command"\n'
        f"session_command = {json.dumps(command)}\n"  # JSON strings are TOML basic strings
        + f'[server.demo.admission]\naccess_key_file = "{key}"\n'
    )
    (etc / "policies.toml").write_text(f"[policy.default]\nx11 = {str(x11).lower()}\n")
    proc = subprocess.Popen(
        [script("wrsrvd"), "--instance", "demo", "--root", str(root)], env=h.env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(h.tmp / "wrsrvd.log").open("wb"),
        start_new_session=True,
    )  # fmt: skip
    try:
        fingerprint = admin_status(proc, run / "demo" / "admin.sock")["fingerprint"]
        viewer = subprocess.run(
            [script("wrclient"), f"127.0.0.1:{port}", "--fingerprint", fingerprint, "--headless",
             "--token", "x11-policy-token", "--no-reconnect", "--access-key-file", str(key),
             "--script", str(h.write_script("s.txt", "settle\n"))],
            env=h.env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert viewer.returncode == 0, failure(viewer)
        eventually(lambda: seen.exists() and seen.read_text().strip(), "the session's program ran")
        display = seen.read_text().strip()
        if x11:
            assert display.startswith("[:") and display.endswith("]"), display
        else:
            assert display == "[]", f"X11 is off by policy but the program saw DISPLAY {display}"
            assert "X display" not in (h.tmp / "wrsrvd.log").read_text(errors="replace")
    finally:
        proc.terminate()
        proc.wait(30)
        kill_sessions(run / "demo" / "link.sock")
        h.cleanup()


GTK3_POPUPS = Path(__file__).parent / "clients" / "gtk3_popups.py"
WINDOW, MENU_BUTTON, POPOVER_BUTTON = (0x30, 0x50, 0xA0), (0xFF, 0xFF, 0x00), (0x00, 0xFF, 0xFF)
MENU, SUBMENU, POPOVER = (0x00, 0xC0, 0x00), (0xC0, 0x00, 0x00), (0xC0, 0x00, 0xC0)
Box = tuple[int, int, int, int]  # x, y, x2, y2 (x2, y2 outside)
Check = Callable[[np.ndarray], "str | None"]  # None: the picture is as it should be; else what is wrong


def _has_gtk3_for_python() -> bool:
    probe = "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk"
    return subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True).returncode == 0


def _box_of(px: np.ndarray, rgb: tuple[int, int, int]) -> Box | None:
    """The smallest box around every pixel of this colour (None: not on the screen)."""
    ys, xs = np.nonzero(np.all(px == rgb, axis=-1))
    return None if xs.size == 0 else (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _share_of(px: np.ndarray, box: Box, rgb: tuple[int, int, int]) -> float:
    part = px[box[1] : box[3], box[0] : box[2]]
    return float(np.all(part == rgb, axis=-1).mean()) if part.size else 0.0


def _inside(box: Box, outer: Box) -> bool:
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


class PopupProgram:
    """gtk3_popups.py in a session, and what it says (its report directory)."""

    def __init__(self, harness: Harness) -> None:
        self.report = harness.tmp / "report"
        self.srv = harness.server(
            ["env", "GDK_BACKEND=x11", "/usr/bin/python3", str(GTK3_POPUPS), str(self.report)]
        )
        result = harness.run_client(self.srv, "--script", str(harness.write_script("start.txt", "settle\n")))
        assert result.returncode == 0, failure(result)
        self.session_id = self.srv.session()["id"]
        found = eventually(self._drawn, "the GTK window drawn where X has it")
        self.before, self.window, self.menu_button, self.popover_button = found

    def screenshot(self) -> np.ndarray:
        return self.srv.screenshot(self.session_id)

    def placed(self, name: str) -> Box:
        """Where the program says X has its popup ``name`` (``menu-shown-1``...), root coordinates."""
        p = json.loads((self.report / f"{name}.json").read_text())
        return p["x"], p["y"], p["x"] + p["width"], p["y"] + p["height"]

    def _drawn(self) -> tuple[np.ndarray, Box, Box, Box] | None:
        """The window and its buttons, drawn where the program says X has them (X was told where the
        WM put the window)."""
        px = self.screenshot()
        win, mb, pb = (_box_of(px, c) for c in (WINDOW, MENU_BUTTON, POPOVER_BUTTON))
        if win is None or mb is None or pb is None or not (self.report / "window.json").exists():
            return None
        x = json.loads((self.report / "window.json").read_text())
        told = [(x["x"] + b[0], x["y"] + b[1], x["x"] + b[0] + b[2], x["y"] + b[1] + b[3])
                for b in (x["menu"], x["popover"])]  # fmt: skip
        if (x["x"], x["y"], x["x"] + x["width"], x["y"] + x["height"]) != win or told != [mb, pb]:
            return None
        return px, win, mb, pb

    def as_before(self, px: np.ndarray) -> str | None:
        """No popup left: the window is as it was before any opened."""
        left = [name for name, c in (("menu", MENU), ("submenu", SUBMENU), ("popover", POPOVER))
                if _box_of(px, c) is not None]  # fmt: skip
        if left:
            return f"still drawn: {left}"
        x, y, x2, y2 = self.window
        n = differing_pixels(px[y:y2, x:x2], self.before[y:y2, x:x2])
        return None if n == 0 else f"{n} pixels of the window differ from before"


@pytest.mark.skipif(not _has_gtk3_for_python(), reason="needs python3-gi and gir1.2-gtk-3.0")
def test_gtk3_menus_and_popovers_on_x_open_over_their_window_and_go(harness: Harness) -> None:
    """A GTK 3 program forced onto X (tests/e2e/clients/gtk3_popups.py: every part a colour of its
    own), driven from a headless viewer as a person would: its menu (an override-redirect X window)
    opens under its button, its submenu beside the item, both drawn over the window where X put them;
    Escape closes them, and so does a click elsewhere in the window; its popover (GTK 3 draws it
    inside the window on X) opens under its button and goes the same two ways. Each picture is
    checked in the session, then in the viewer's snapshot taken at that step."""
    shots, gates = harness.tmp / "shots", harness.tmp / "gates"
    shots.mkdir()
    gates.mkdir()
    prog = PopupProgram(harness)
    win, mb, pb, report = prog.window, prog.menu_button, prog.popover_button, prog.report
    menu_at = ((mb[0] + mb[2]) // 2, (mb[1] + mb[3]) // 2)
    popover_at = ((pb[0] + pb[2]) // 2, (pb[1] + pb[3]) // 2)
    away = (win[0] + 20, win[3] - 20)  # the window, away from the buttons and where popups open
    more = (mb[0] + 40, mb[3] + 78)  # the menu's third item ("More": its submenu)
    # Each step's picture is taken once the test has seen it in the session (its gate file).
    snap = {s: f"wait-for {gates / s}\nsettle\nsnapshot {shots / s}.png"
            for s in ("menu", "submenu", "menu-escaped", "menu-clicked-away", "popover", "popover-escaped",
                      "popover-clicked-away")}  # fmt: skip
    script = f"""settle
click {menu_at[0]} {menu_at[1]}
{snap["menu"]}
move {more[0]} {more[1]}
{snap["submenu"]}
key Escape
{snap["menu-escaped"]}
click {menu_at[0]} {menu_at[1]}
wait-for {report / "menu-shown-2.json"}
settle
click {away[0]} {away[1]}
{snap["menu-clicked-away"]}
click {popover_at[0]} {popover_at[1]}
{snap["popover"]}
key Escape
{snap["popover-escaped"]}
click {popover_at[0]} {popover_at[1]}
wait-for {report / "popover-shown-2.json"}
settle
click {away[0]} {away[1]}
{snap["popover-clicked-away"]}
"""
    viewer = harness.start_client(
        prog.srv, "--timeout", "120", "--script", str(harness.write_script("p.txt", script))
    )

    def step(name: str, marker: str, check: Check) -> None:
        """Once the program says ``marker``: ``check`` holds in the session's picture, then in the
        viewer's snapshot of this step."""
        eventually(lambda: (report / marker).exists() or viewer.proc.poll() is not None, marker)
        assert viewer.proc.poll() is None, f"the viewer ended before {marker}:\n{viewer.stderr()[-3000:]}"
        wrong: list[str | None] = [None]

        def right() -> bool:
            wrong[0] = check(prog.screenshot())
            return wrong[0] is None

        try:
            eventually(right, f"{name} as it should be")
        except AssertionError:
            raise AssertionError(f"{name}: {wrong[0]}") from None
        (gates / name).touch()
        shot = shots / f"{name}.png"
        eventually(lambda: shot.exists() or viewer.proc.poll() is not None, f"the viewer's picture: {name}")
        assert shot.exists(), viewer.stderr()[-3000:]
        assert (wrong := check(png_pixels(shot))) is None, f"{name}, in the viewer's snapshot: {wrong}"

    def menu_open(px: np.ndarray) -> str | None:
        m = prog.placed("menu-shown-1")
        if (m[0], m[1]) != (mb[0], mb[3]) or not _inside(m, win):
            return f"X has the menu at {m}, not under its button {mb} over the window {win}"
        if _share_of(px, m, MENU) < 0.9:
            return f"the menu is not drawn where X has it ({m}): found {_box_of(px, MENU)}"
        return None

    def submenu_open(px: np.ndarray) -> str | None:
        m, s = prog.placed("menu-shown-1"), prog.placed("submenu-shown-1")
        if not (abs(s[0] - m[2]) <= 8 and m[1] < s[1] <= more[1] <= s[3] and _inside(s, win)):
            return f"X has the submenu at {s}, not beside the menu's item ({m}, item at {more})"
        if _share_of(px, s, SUBMENU) < 0.9:
            return f"the submenu is not drawn where X has it ({s}): found {_box_of(px, SUBMENU)}"
        return menu_open(px)

    def popover_open(px: np.ndarray) -> str | None:
        p = prog.placed("popover-shown-1")
        centre, button_centre = (p[0] + p[2]) / 2, (pb[0] + pb[2]) / 2
        if not (abs(centre - button_centre) <= 2 and pb[3] < p[1] <= pb[3] + 40 and _inside(p, win)):
            return f"the popover's content is at {p}, not under its button {pb} in the window {win}"
        if _share_of(px, p, POPOVER) < 0.9:
            return f"the popover is not drawn where GTK has it ({p}): found {_box_of(px, POPOVER)}"
        return None

    step("menu", "menu-shown-1.json", menu_open)
    step("submenu", "submenu-shown-1.json", submenu_open)
    step("menu-escaped", "menu-hidden-1", prog.as_before)
    step("menu-clicked-away", "menu-hidden-2", prog.as_before)
    step("popover", "popover-shown-1.json", popover_open)
    step("popover-escaped", "popover-hidden-1", prog.as_before)
    step("popover-clicked-away", "popover-hidden-2", prog.as_before)
    assert viewer.wait() == 0, viewer.stderr()[-3000:]
