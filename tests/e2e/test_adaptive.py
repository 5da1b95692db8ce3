"""Over a slow link (a throttling relay: 2 Mbit/s, 50 ms round trip), a session with adaptation on
keeps its viewer's picture moving, lowers its video bit rate, and the picture ends exact once the
motion stops. States only: nothing here times anything."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.throttle import ThrottledRelay
from tests.e2e.harness import Harness, differing_pixels, failure, png_pixels

pytestmark = pytest.mark.slow

VIDEO = str(Path(__file__).parent / "clients" / "video.py")
RATE = re.compile(r"the viewer's link carries about [\d.]+ Mbit/s .*: video at ([\d.]+) Mbit/s")


def test_a_slow_link_gets_a_lower_video_rate_and_an_exact_picture_after_the_motion(harness: Harness) -> None:
    # 8 s of a panning photo-like picture filling the whole 640x360 output, then still.
    srv = harness.server([sys.executable, VIDEO, "8", "640", "360"])
    relay = ThrottledRelay(srv.port, rate_bps=2_000_000, rtt_s=0.05)
    relay.start()
    try:
        shot = harness.tmp / "still.png"
        stats = harness.tmp / "stats.json"
        # After the motion the encoder resends the picture losslessly (about half a megabyte: two
        # seconds on this link); "settle" waits until nothing changed for 8 s.
        script = harness.write_script("video.txt", f"wait 1500\nsettle 8000\nsnapshot {shot}\n")
        argv = harness.client_argv(srv, "--size", "640x360", "--script", str(script), "--stats", str(stats))
        argv[1] = f"127.0.0.1:{relay.port}"
        argv += ["--timeout", "170"]
        result = subprocess.run(argv, env=harness.env, capture_output=True, text=True, timeout=200)
        assert result.returncode == 0, failure(result)
    finally:
        relay.stop()
    counters = json.loads(stats.read_text())
    # The viewer kept receiving frames while the video played, and much of it went as H.264 ...
    assert counters["frames"] >= 10, counters
    assert counters["regions"].get("H264", 0) >= 5, counters
    assert counters["keyframe_requests"] == 0, counters  # the checksums held all along
    # ... the picture is exact after the motion ...
    assert differing_pixels(png_pixels(shot), srv.screenshot(srv.session()["id"])) == 0
    # ... and the session chose a video rate below the configured 8 Mbit/s, for a 2 Mbit/s link.
    logs = "".join(p.read_text(errors="replace") for p in (srv.state / "sessions").glob("*"))
    rates = [float(m[1]) for m in RATE.finditer(logs)]
    assert rates and min(rates) < 2.0, logs[-3000:]
    assert relay.down.sent_bytes > 0
