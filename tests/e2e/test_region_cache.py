"""The region cache end to end: letters typed again into foot reach a real wrclient as slots of its
region cache, over real QUIC through wrsrvd, and the viewer's picture is the compositor's, exactly."""

from __future__ import annotations

import json

import pytest

from tests.e2e.harness import Harness, differing_pixels, eventually, failure, png_pixels

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]
#: Letters that come back, as in any typed text.
TEXT = "echo the cat sat on the mat"


def test_letters_typed_again_go_as_cache_slots_and_the_picture_stays_exact(harness: Harness) -> None:
    srv = harness.server(FOOT)
    out = harness.home / "typed.txt"
    shot = harness.tmp / "viewer.png"
    stats = harness.tmp / "stats.json"
    # One key at a time, each echo shown before the next key (as a person types), then the rest.
    keys = "".join(f'type "{c}"\nsettle 150\n' for c in TEXT)
    script = harness.write_script(
        "type.txt", f'settle\n{keys}type " > {out}"\nkey Return\nsettle 700\nsnapshot {shot}\n'
    )
    result = harness.run_script(srv, script, "--stats", str(stats))
    assert result.returncode == 0, failure(result)
    assert out.read_text() == TEXT.removeprefix("echo ") + "\n"
    seen = json.loads(stats.read_text())
    # A letter typed again (t, h, e, a, the spaces...) was named by its slot, not sent again.
    assert seen["regions"].get("CACHED", 0) >= 8, seen["regions"]
    assert seen["keyframe_requests"] == 0
    session = eventually(lambda: (s := srv.session())["state"] == "detached" and s, "the session detached")
    assert differing_pixels(png_pixels(shot), srv.screenshot(session["id"])) == 0
