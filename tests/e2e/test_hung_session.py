"""A session compositor that hangs without dying (``kill -STOP``): wrsrvd notices it on its link,
operators see it in ``wradm``, its kiosk shows a notice over the frozen picture, the badge elsewhere
gets a clear refusal, other sessions carry on; ``kill -CONT`` brings it back as it was, and
``wradm session kill`` ends a stopped one for sure. Real wrsrvd, real foot, real headless kiosks.

The keep-alive's own timings (a Ping every 2 s, "not responding" after 6 s) are the shipped ones:
the test waits for conditions, never for a time."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, WrServer, eventually
from tests.e2e.kiosk import KioskProc
from tests.e2e.test_kiosk import kiosk, stop_kiosks  # noqa: F401 - the fixture is used by name
from tests.ocr import ocr, shows

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def wradm(srv: WrServer, *args: str) -> str:
    r = subprocess.run(
        [script("wradm"), *args, "--admin-socket", str(srv.runtime / "admin.sock")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout


def row_of(srv: WrServer, sid: str) -> list[str]:
    """The session's row in `wradm sessions`, split into words."""
    rows = [line.split() for line in wradm(srv, "sessions").splitlines()[1:]]
    found = [r for r in rows if r[0] == sid]
    return found[0] if found else []


def snapshot_png(k: KioskProc, path: Path) -> bytes:
    k.run(f"snapshot {path}")
    return path.read_bytes()


def test_a_stopped_compositor_is_noticed_shown_and_comes_back_and_others_carry_on(
    harness: Harness,
    stop_kiosks: None,  # noqa: F811
) -> None:
    srv = harness.server(FOOT)
    a, b = kiosk(harness, srv, "a"), kiosk(harness, srv, "b")
    a.insert("badge-hangs")
    sid = a.wait_session()["session_id"]
    b.insert("badge-other")
    other = b.wait_session()["session_id"]
    b.wait_window()
    assert other != sid
    a.wait_window()
    a.run("settle", "type echo before the hang", "key Return", "settle 500")
    pid = next(s["pid"] for s in srv.sessions() if s["id"] == sid)
    user = pwd.getpwuid(os.geteuid()).pw_name

    os.kill(pid, signal.SIGSTOP)
    try:
        # wrsrvd notices, and says which session, whose, and which process.
        eventually(lambda: "NOT-RESPONDING" in " ".join(row_of(srv, sid)), "wradm sessions to show it")
        assert f"session {sid} of {user} (compositor pid {pid}) is not responding" in srv.log_text()
        assert f"NOT RESPONDING: {sid}" in wradm(srv, "status")
        assert "NOT-RESPONDING" not in " ".join(row_of(srv, other))

        # Its kiosk shows a notice over the frozen picture.
        shown = a.wait(lambda s: s["state"] == "not-responding", "the not-responding notice")
        assert shown["session_id"] == sid and "waiting for it" in shown["detail"]
        png = snapshot_png(a, harness.tmp / "hung.png")
        assert shows(png, "The session is not responding"), ocr(png)
        assert "the session is not responding" in a.log_text()

        # The other session carries on.
        b.run("settle", "type echo still here", "key Return", "settle 500")
        png = snapshot_png(b, harness.tmp / "other.png")
        assert shows(png, "still here"), ocr(png)
        assert b.state()["state"] == "session"

        # The hung session's badge at another kiosk: a clear refusal there, retried; no hang anywhere.
        b.remove()
        b.wait_idle()
        b.insert("badge-hangs")
        b.wait(
            lambda s: s["state"] == "reconnecting" and "not responding" in s["detail"],
            "the refusal at kiosk B",
        )
        status = wradm(srv, "status")  # wrsrvd answers its admin socket all along
        assert f"NOT RESPONDING: {sid}" in status, status
        b.remove()
        b.wait_idle()
    finally:
        os.kill(pid, signal.SIGCONT)

    # Back: the notice goes, the log says so, and the session works as before.
    a.wait(lambda s: s["state"] == "session" and s["session_id"] == sid, "the session's picture again")
    eventually(lambda: f"session {sid} of {user} (compositor pid {pid}) responds again" in srv.log_text(),
               "the log to say it responds again")  # fmt: skip
    eventually(lambda: row_of(srv, sid)[2:3] == ["active"], "wradm sessions to show it active again")
    a.run("type echo after the hang", "key Return", "settle 700")
    png = snapshot_png(a, harness.tmp / "after.png")
    assert shows(png, "after the hang"), ocr(png)
    assert not shows(png, "not responding"), ocr(png)

    # Stopped again, then killed by an operator: it ends for sure (SIGTERM alone would wait for ever).
    os.kill(pid, signal.SIGSTOP)
    eventually(lambda: "NOT-RESPONDING" in " ".join(row_of(srv, sid)), "wradm sessions to show it again")
    wradm(srv, "session", "kill", sid)
    eventually(lambda: not Path(f"/proc/{pid}").exists(), "the stopped compositor to be gone")
    assert not row_of(srv, sid)
    assert row_of(srv, other)[2:3] == ["detached"]  # the other session is untouched


def test_a_stopped_compositor_that_misses_a_restart_is_kept_and_comes_back_when_continued(
    harness: Harness,
) -> None:
    """A restarted wrsrvd waits 30 s for its sessions to come back to their links. A compositor that
    cannot (it is stopped) is not responding, as on a link: it is left running, shown, and relinks
    when it runs again (review M2: a live compositor's session is never ended for being slow)."""
    srv = harness.server(FOOT)
    token = "badge-stopped-over-restart"
    mark = harness.write_script(
        "mark.txt", "settle\ntype echo kept over the restart\nkey Return\nsettle 700\n"
    )
    result = harness.run_script(srv, mark, token=token)
    assert result.returncode == 0, result.stderr
    session = srv.session()
    sid, pid = session["id"], session["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        eventually(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T",
                   "the compositor stopped")  # fmt: skip
        srv.signal(signal.SIGKILL)
        srv.wait()
        again = harness.server(FOOT)
        verdict = eventually(
            lambda: next(
                (line for line in again.log_text().splitlines()
                 if sid in line and ("has not come back" in line or "ended" in line)),
                None,
            ),
            "wrsrvd's verdict on the session that did not come back",
        )  # fmt: skip
        assert "is not responding" in verdict and "left running" in verdict, verdict
        assert "NOT-RESPONDING" in " ".join(row_of(again, sid))
        assert f"NOT RESPONDING: {sid}" in wradm(again, "status")
    finally:
        os.kill(pid, signal.SIGCONT)
    relinked = again.wait_linked()
    assert (relinked["id"], relinked["pid"]) == (sid, pid)
    eventually(lambda: row_of(again, sid)[2:3] == ["detached"], "wradm sessions to show it back")
    shot = harness.tmp / "after.png"
    back = harness.run_client(again, "--snapshot", str(shot), "--settle", "700", token=token)
    assert back.returncode == 0 and "resumed session" in back.stderr, back.stderr
    png = shot.read_bytes()
    assert shows(png, "kept over the restart"), ocr(png)
