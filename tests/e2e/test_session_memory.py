"""A detached session gives back what showing it takes (issue 15: fifty idle sessions on one host).

What an operator notices: a 1080p session nobody watches holds no framebuffer, frame snapshot or
encoder state — its compositor's own memory falls by well over a frame's size (8 MiB at 1080p)
once its viewer leaves — and what a user notices: the next viewer gets the very same picture. Real
wrsrvd (standalone, sessions forked from its session parent), real foot, real headless wrclient."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.e2e.harness import Harness, differing_pixels, eventually, failure, png_pixels

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]
WIDTH, HEIGHT = 1920, 1080
FRAME = WIDTH * HEIGHT * 4  # one XRGB framebuffer: 7.9 MiB


def private_bytes(pid: int) -> int:
    """Memory only this process holds (``Private_Dirty`` of /proc/PID/smaps_rollup), in bytes."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no Private_Dirty in /proc/{pid}/smaps_rollup")


def test_a_detached_session_lets_its_framebuffer_go_and_the_next_viewer_sees_the_same_picture(
    harness: Harness,
) -> None:
    srv = harness.server(FOOT, extra=["--size", f"{WIDTH}x{HEIGHT}"])
    marker, first, go = harness.home / "typed.txt", harness.tmp / "first.png", harness.tmp / "go"
    script = harness.write_script(
        "draw.txt",
        f"settle\ntype echo drawn > {marker}; printf 'density %.0s' $(seq 40)\nkey Return\n"
        f"settle 700\nsnapshot {first}\nwait-for {go}\n",
    )
    viewer = harness.start_script(srv, script, "--size", f"{WIDTH}x{HEIGHT}")
    # Watched, its picture complete at the viewer: the framebuffer, the viewer's frame snapshot and
    # the encoder's state are all there.
    eventually(lambda: first.exists() and first.stat().st_size > 0, "the viewer's snapshot")
    assert eventually(lambda: marker.exists() and marker.read_text(), "the typed command ran") == "drawn\n"
    session = srv.session()
    assert session["state"] == "active"
    compositor = psutil.Process(session["pid"])
    watched = private_bytes(compositor.pid)

    go.touch()  # the viewer leaves
    assert viewer.proc.wait(timeout=120) == 0, viewer.err.read_text()[-3000:]
    eventually(lambda: srv.session()["state"] == "detached", "the session detached")
    # Nobody watches: what showing it took is given back (two frames' worth, of three or more).
    eventually(
        lambda: private_bytes(compositor.pid) <= watched - 2 * FRAME,
        f"the detached compositor's private memory falling by two frames from {watched >> 20} MiB",
    )

    # The next viewer's first picture is the session as it was, pixel for pixel.
    again = harness.tmp / "again.png"
    result = harness.run_client(
        srv, "--snapshot", str(again), "--size", f"{WIDTH}x{HEIGHT}", "--settle", "700"
    )
    assert result.returncode == 0, failure(result)
    assert differing_pixels(png_pixels(first), png_pixels(again)) == 0
