"""Kiosk mode of wrclient against a standalone wrsrvd: badges in and out, hot-desking between two
kiosks, an operator's detach and kill. (The same with logins, PAM and wrsessd: test_login.py.)"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, WrServer, differing_pixels, eventually
from tests.e2e.kiosk import KioskProc

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def kiosk(harness: Harness, srv: WrServer, name: str) -> KioskProc:
    k = KioskProc(harness.short, name, f"127.0.0.1:{srv.port}", srv.fingerprint, env=harness.env)
    harness_kiosks(harness).append(k)
    return k.start()


def harness_kiosks(harness: Harness) -> list[KioskProc]:
    if not hasattr(harness, "kiosks"):
        harness.kiosks = []  # type: ignore[attr-defined]
    kiosks: list[KioskProc] = harness.kiosks  # type: ignore[attr-defined]
    return kiosks


@pytest.fixture
def stop_kiosks(harness: Harness):  # type: ignore[no-untyped-def]
    yield
    for k in harness_kiosks(harness):
        k.stop()


def test_a_badge_follows_its_session_from_kiosk_to_kiosk(harness: Harness, stop_kiosks: None) -> None:
    srv = harness.server(FOOT)
    a, b = kiosk(harness, srv, "a"), kiosk(harness, srv, "b")
    a.insert("badge-0042")
    shown = a.wait_session()
    sid = shown["session_id"]
    assert shown["badge"].startswith("#") and "0042" not in str(shown) and "10 chars" not in str(shown)
    listing = subprocess.run(
        [script("wradm"), "sessions", "--admin-socket", str(srv.runtime / "admin.sock")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split() == ["ID", "USER", "STATE", "KIOSK", "SINCE", "CPU", "MEMORY", "SENT"]
    assert row.split()[:3] == [sid, pwd.getpwuid(os.geteuid()).pw_name, "active"]
    assert row.split()[3] == "127.0.0.1" and "badge-0042" not in listing.stdout
    a.wait_window()
    a.run("settle", "type echo typed at kiosk A", "key Return", "settle 700")
    at_a = a.snapshot(harness.tmp / "a.png")

    # The same badge at B: the session moves there, A goes back to its idle screen.
    b.insert("badge-0042")
    assert b.wait_session()["session_id"] == sid
    idle = a.wait_idle()
    assert "moved to another kiosk" in idle["detail"]
    assert differing_pixels(at_a, b.snapshot(harness.tmp / "b.png")) == 0  # as it was left
    assert [s["id"] for s in srv.sessions()] == [sid]

    # Taken out at B: detached, still running.
    b.remove()
    b.wait_idle()
    eventually(lambda: srv.session()["state"] == "detached", "the session to be detached")

    # Presented at A again (A had let go of the badge when the session moved away): back, as it was.
    a.insert("badge-0042")
    assert a.wait_session()["session_id"] == sid
    assert differing_pixels(at_a, a.snapshot(harness.tmp / "a2.png")) == 0

    # An operator detaches it: A shows the idle screen and does not simply reconnect.
    wradm = [script("wradm"), "session", "detach", sid, "--admin-socket", str(srv.runtime / "admin.sock")]
    r = subprocess.run(wradm, capture_output=True, text=True, timeout=60, env=harness.env)
    assert r.returncode == 0, r.stderr
    assert "operator detached" in a.wait_idle()["detail"]
    eventually(lambda: srv.session()["state"] == "detached", "the session to be detached")

    # The badge again, then an operator ends the session: with the badge still in, the kiosk starts
    # over with a new session (standalone: no login screen, a fresh one).
    a.insert("badge-0042")
    assert a.wait_session()["session_id"] == sid
    r = subprocess.run([*wradm[:2], "kill", *wradm[3:]], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    fresh = a.wait(lambda s: s["state"] == "session" and s["session_id"] not in (None, sid), "a new session")
    assert fresh["session_id"] != sid


def test_a_different_badge_switches_and_an_unreachable_server_keeps_the_kiosk_trying(
    harness: Harness, stop_kiosks: None
) -> None:
    srv = harness.server(FOOT)
    a = kiosk(harness, srv, "a")
    a.insert("badge-one")
    first = a.wait_session()["session_id"]
    a.insert("badge-two")  # a second badge while one is in: the first comes out, the second goes in
    second = a.wait(lambda s: s["state"] == "session" and s["session_id"] not in (None, first), "badge-two")
    # The kiosk closed its first connection before it opened the second; wrsrvd notices the close in
    # its own time.
    eventually(
        lambda: (
            {s["id"]: s["state"] for s in srv.sessions()}
            == {first: "detached", second["session_id"]: "active"}
        ),
        "the first badge's session detached, the second's shown",
    )

    # The server goes away: the kiosk keeps trying (no exit, no desktop behind it) and comes back.
    srv.signal(15)  # SIGTERM: the front door stops, the sessions keep running
    srv.wait()
    a.wait(lambda s: s["state"] == "reconnecting", "the kiosk to reconnect")
    again = harness.server(FOOT)
    assert again.fingerprint == srv.fingerprint
    assert a.wait_session()["session_id"] == second["session_id"]
    assert a.proc is not None and a.proc.poll() is None


def test_a_kiosk_without_a_badge_source_presents_its_own_identity(
    harness: Harness, stop_kiosks: None
) -> None:
    """No reader, file or socket: the kiosk's own identity is its token, so it gets a session of its
    own at once (as a Sun Ray did), and the same one after the kiosk restarts."""
    srv = harness.server(FOOT)
    root = harness.short / "no-badges"
    (root / "etc" / "wayray").mkdir(parents=True)
    state = harness.short / "kiosk-state"  # as a unit's StateDirectory= (root's default is /var/lib)
    state.mkdir(mode=0o700)
    k = KioskProc(
        harness.short, "plain", f"127.0.0.1:{srv.port}", srv.fingerprint,
        env={**harness.env, "STATE_DIRECTORY": str(state)}, extra=("--root", str(root)), badge_socket=False,
    )  # fmt: skip
    harness_kiosks(harness).append(k)
    first = k.start(idle=False).wait_session()
    identity = state / "terminal-token"
    assert identity.stat().st_mode & 0o777 == 0o600
    assert [s["state"] for s in srv.sessions()] == ["active"]
    k.stop()
    eventually(lambda: srv.session()["state"] == "detached", "the session to be detached")
    assert k.start(idle=False).wait_session()["session_id"] == first["session_id"]


def test_a_kiosk_shows_present_your_badge_only_once_it_hears_badges(
    harness: Harness, stop_kiosks: None
) -> None:
    """The idle screen (and "idle" in the state file) says a badge may be presented: the badge socket
    listens by then. A sound server that takes its time (here one that never answers: the kiosk's
    sound check gives up on it after 10 s) does not come between, nor between a badge and its session:
    the kiosk waits 2 s for its answer and goes on."""
    srv = harness.server(FOOT)
    pulse = harness.short / "silent-pulse"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(pulse))
        silent.listen()
        env = {**harness.env, "PULSE_SERVER": f"unix:{pulse}"}
        k = KioskProc(harness.short, "p", f"127.0.0.1:{srv.port}", srv.fingerprint, env=env)
        harness_kiosks(harness).append(k)
        k.start()  # until it shows "Present your badge"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as reader:
            reader.connect(str(k.badge_socket))  # at once: no retry, as a badge reader's first try
        k.insert("badge-at-once")
        assert k.wait_session()["state"] == "session"
        assert "has not answered within 2 s; the kiosk goes on without waiting" in k.log_text()
