"""A video-like client goes through the H.264 path; once it stops, the picture is exact again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import Harness, differing_pixels, failure, png_pixels

pytestmark = pytest.mark.slow

VIDEO = str(Path(__file__).parent / "clients" / "video.py")


def test_animation_goes_as_h264_and_text_goes_back_to_lossless_when_it_stops(harness: Harness) -> None:
    # 6 s of animation: even at a few frames per second on a loaded machine, well over 10 go as H.264
    still = harness.tmp / "still.txt"
    harness.env["VIDEO_STILL_FILE"] = str(still)
    srv = harness.server([sys.executable, VIDEO, "6", "480", "360"])
    shot = harness.tmp / "still.png"
    stats = harness.tmp / "stats.json"
    script = harness.write_script(
        "video.txt",
        f"""# the animation stops after 6 s (the client says so with its last frame); the encoder then
# ends its video stream and resends the rectangle losslessly, which settle waits for
wait-for {still}
settle 1000
snapshot {shot}
""",
    )
    result = harness.run_client(srv, "--script", str(script), "--stats", str(stats), "--timeout", "60")
    assert result.returncode == 0, failure(result)
    counters = json.loads(stats.read_text())
    assert counters["regions"].get("H264", 0) >= 10, counters
    assert counters["keyframe_requests"] == 0, counters  # the checksums held all along
    assert differing_pixels(png_pixels(shot), srv.screenshot(srv.session()["id"])) == 0


def test_a_viewer_that_scales_video_up_gets_half_size_pictures_and_ends_exact(harness: Harness) -> None:
    """encoder.video_scaling = always (wrsrvd --video-scaling): wrclient took ``video-scaled``, so the
    video goes at half size and the viewer scales it up; once it stops, the picture is exact."""
    still = harness.tmp / "still.txt"
    harness.env["VIDEO_STILL_FILE"] = str(still)
    srv = harness.server([sys.executable, VIDEO, "6", "800", "480"], extra=["--video-scaling", "always"])
    shot = harness.tmp / "still.png"
    stats = harness.tmp / "stats.json"
    script = harness.write_script("video.txt", f"wait-for {still}\nsettle 1000\nsnapshot {shot}\n")
    result = harness.run_client(srv, "--script", str(script), "--stats", str(stats), "--timeout", "60")
    assert result.returncode == 0, failure(result)
    counters = json.loads(stats.read_text())
    assert counters["regions"].get("H264", 0) >= 10, counters
    assert counters["scaled_pictures"] >= 10, counters  # half-size pictures, scaled up by the viewer
    assert counters["keyframe_requests"] == 0, counters  # the checksums held all along
    assert differing_pixels(png_pixels(shot), srv.screenshot(srv.session()["id"])) == 0


def test_with_video_scaling_never_the_viewer_gets_full_size_pictures(harness: Harness) -> None:
    still = harness.tmp / "still.txt"
    harness.env["VIDEO_STILL_FILE"] = str(still)
    srv = harness.server([sys.executable, VIDEO, "6", "800", "480"], extra=["--video-scaling", "never"])
    stats = harness.tmp / "stats.json"
    script = harness.write_script("video.txt", f"wait-for {still}\nsettle 1000\n")
    result = harness.run_client(srv, "--script", str(script), "--stats", str(stats), "--timeout", "60")
    assert result.returncode == 0, failure(result)
    counters = json.loads(stats.read_text())
    assert counters["regions"].get("H264", 0) >= 1, counters
    assert counters["scaled_pictures"] == 0, counters
    assert counters["keyframe_requests"] == 0, counters
