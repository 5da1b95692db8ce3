"""``wradm session screenshot``: an operator (root, on the server) sees a session's screen as its user
does, in a private file, and wrsrvd's log says a screenshot was taken."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from typing import Any

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, differing_pixels, eventually, png_pixels

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=60x15", "sh"]


def wradm(srv_admin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("wradm"), "session", *args, "--admin-socket", srv_admin],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_wradm_writes_the_screen_the_viewer_showed_into_a_private_file(harness: Harness) -> None:
    srv = harness.server(FOOT)
    admin = str(srv.runtime / "admin.sock")
    shot = harness.tmp / "viewer.png"
    typing = f"type echo shown-to-the-operator\nkey Return\nsettle 700\nsnapshot {shot}\n"
    run = harness.run_script(srv, harness.write_script("type.txt", typing))
    assert run.returncode == 0, run.stderr[-3000:]
    sid = srv.session()["id"]

    out = harness.tmp / "operator" / "seen.png"
    out.parent.mkdir()
    done = wradm(admin, "screenshot", sid, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"session {sid}: screenshot written to {out}" in done.stdout
    # What the viewer showed, to the pixel (nothing has changed in the session since).
    assert differing_pixels(png_pixels(out), png_pixels(shot)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # the user's screen: root's eyes only
    said = re.compile(rf"session {sid} of \S+: a screenshot was taken through the admin socket")
    eventually(lambda: said.search(srv.log_text()), "the log line")

    # Without -o: ID.png in the current directory.
    here = harness.tmp / "here"
    here.mkdir()
    again = subprocess.run(
        [script("wradm"), "session", "screenshot", sid, "--admin-socket", admin],
        capture_output=True, text=True, timeout=120, cwd=here,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert differing_pixels(png_pixels(here / f"{sid}.png"), png_pixels(shot)) == 0

    # Errors an operator can act on, and nothing written.
    missing = wradm(admin, "screenshot", "0123456789abcdef", "-o", str(harness.tmp / "none.png"))
    assert missing.returncode == 1 and "no live session '0123456789abcdef'" in missing.stderr
    assert not (harness.tmp / "none.png").exists()
    unwritable = wradm(admin, "screenshot", sid, "-o", str(harness.tmp / "no-such-dir" / "x.png"))
    assert unwritable.returncode == 1 and "cannot write the screenshot" in unwritable.stderr
    misused = wradm(admin, "kill", sid, "-o", str(out))
    assert misused.returncode == 2 and "-o/--output and --cursor are for screenshot" in misused.stderr
    assert srv.session()["id"] == sid  # the misused kill ended nothing


def sessions_json(admin: str) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [script("wradm"), "sessions", "--json", "--admin-socket", admin],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {row["id"]: row for row in json.loads(done.stdout)}


def test_wradm_sessions_says_what_each_session_costs(harness: Harness) -> None:
    """A session whose shell runs a busy loop shows more CPU time than an idle one, each shows the
    memory its processes hold, and both the bytes sent to their viewers; the table has the columns."""
    srv = harness.server(FOOT)
    admin = str(srv.runtime / "admin.sock")
    busy_script = harness.write_script("busy.txt", "type while :; do :; done &\nkey Return\nsettle 700\n")
    run = harness.run_script(srv, busy_script, token="busy-token-0001")
    assert run.returncode == 0, run.stderr[-3000:]
    idle = harness.run_client(srv, "--snapshot", str(harness.tmp / "idle.png"), token="idle-token-0002")
    assert idle.returncode == 0, idle.stderr[-3000:]
    rows = sessions_json(admin)
    assert len(rows) == 2
    busy_id, idle_id = sorted(rows, key=lambda sid: rows[sid]["created_at"])  # the busy one came first

    def busier() -> bool:
        now = sessions_json(admin)
        return now[busy_id]["cpu_s"] > now[idle_id]["cpu_s"] + 2.0

    eventually(busier, "the busy session's CPU time to grow past the idle one's")
    rows = sessions_json(admin)
    for row in rows.values():
        assert row["measured_by"] in ("processes", "cgroup")
        assert row["memory_bytes"] > 4 * 2**20, row  # a compositor and foot hold more than that
        assert row["sent_bytes"] > 0 and row["received_bytes"] > 0, row  # its pictures, its input
    table = subprocess.run(
        [script("wradm"), "sessions", "--admin-socket", admin], capture_output=True, text=True, timeout=120
    )
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["ID", "USER", "STATE", "KIOSK", "SINCE", "CPU", "MEMORY", "SENT"]
    assert any(line.startswith(busy_id) and "MiB" in line for line in lines), table.stdout
