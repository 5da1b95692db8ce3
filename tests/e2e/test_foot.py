"""foot in a session, seen and driven from a headless wrclient over real QUIC on loopback."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Harness, differing_pixels, eventually, failure, png_pixels

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def test_typed_command_runs_and_the_viewer_shows_exactly_the_compositors_picture(harness: Harness) -> None:
    srv = harness.server(FOOT)
    out = harness.home / "typed.txt"
    shot = harness.tmp / "viewer.png"
    script = harness.write_script(
        "type.txt",
        f"""# wait for foot, run a command in it, let the screen settle
settle
type echo typed through WayRay > {out}
key Return
settle 700
snapshot {shot}
""",
    )
    result = harness.run_script(srv, script)
    assert result.returncode == 0, failure(result)
    assert out.read_text() == "typed through WayRay\n"
    # The viewer has exited, but wrsrvd notices its connection close in its own time.
    session = eventually(lambda: (s := srv.session())["state"] == "detached" and s, "the session detached")
    assert session["linked"]
    # The lossless path: after the screen settled the viewer holds the compositor's picture exactly.
    assert differing_pixels(png_pixels(shot), srv.screenshot(session["id"])) == 0


def test_a_click_focuses_the_window_under_the_pointer(harness: Harness) -> None:
    work = harness.home
    dirs = [work / "one", work / "two"]
    for d in dirs:
        d.mkdir()
    # Two terminals: the one mapped last opens on top, cascaded 32 px right and down, with the focus.
    srv = harness.server(["sh", "-c", f"foot -W 80x24 -D {dirs[0]} sh & exec foot -W 80x24 -D {dirs[1]} sh"])
    script = harness.write_script(
        "start.txt", "settle 1000\ntype touch focused-at-start\nkey Return\nsettle\n"
    )
    first = harness.run_client(srv, "--script", str(script), "--size", "1280x720")
    assert first.returncode == 0, failure(first)
    top = eventually(
        lambda: next((d for d in dirs if (d / "focused-at-start").exists()), None),
        "a command in the top window",
    )
    bottom = dirs[1 - dirs.index(top)]
    # The window underneath shows a strip left of the top one: the leftmost column that is not
    # background on a row through both windows.
    pixels = srv.screenshot(srv.session()["id"])
    background = pixels[5, 5]
    row = pixels[400]
    left = int(next(x for x in range(row.shape[0]) if (row[x] != background).any()))
    click = harness.write_script(
        "click.txt", f"click {left + 10} 400\nsettle\ntype touch clicked\nkey Return\nsettle\n"
    )
    second = harness.run_client(srv, "--script", str(click))
    assert second.returncode == 0, failure(second)
    eventually(lambda: (bottom / "clicked").exists(), "the command in the clicked window")
    assert not (top / "clicked").exists()


def test_a_german_keymap_types_z_and_y_where_a_german_keyboard_has_them(harness: Harness) -> None:
    srv = harness.server(FOOT)
    out = harness.home / "zy.txt"
    script = harness.write_script("de.txt", f"settle\ntype echo zy > {out}\nkey Return\nsettle\n")
    # On a German keyboard z is the key a US one calls Y: if the session ignored the viewer's keymap,
    # foot would see "yz".
    result = harness.run_script(srv, script, "--keymap-layout", "de")
    assert result.returncode == 0, failure(result)
    assert out.read_text() == "zy\n"


def test_the_session_follows_the_viewers_screen_size(harness: Harness) -> None:
    srv = harness.server(FOOT)
    shot = harness.tmp / "resized.png"
    script = harness.write_script("resize.txt", f"settle\nresize 800x600\nsettle 700\nsnapshot {shot}\n")
    result = harness.run_client(srv, "--size", "1024x768", "--script", str(script))
    assert result.returncode == 0, failure(result)
    pixels = png_pixels(shot)
    assert pixels.shape == (600, 800, 3)
    session = srv.session()
    assert session["output"][:2] == [800, 600]
    assert differing_pixels(pixels, srv.screenshot(session["id"])) == 0
