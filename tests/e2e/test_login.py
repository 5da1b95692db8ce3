"""Sessions that follow the badge, through every real process: headless kiosks (wrclient) → QUIC →
wrsrvd in login mode → wrsessd (root, real PAM with a throwaway user) → a login screen as the
greeter user → the user's own session (our compositor and foot, as the user) → the kiosk switched
over without reconnecting; hot-desking, detaching, re-authentication, restarts, policies."""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import differing_pixels
from tests.e2e.login import LoginRig, environ, login_rig, until
from tests.launcher.harness import Accounts, throwaway_accounts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root: throwaway users, PAM, sessions as other users"
    ),
]

BADGE = "04A2B9C1D7"


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    with throwaway_accounts() as acc:
        yield acc


@pytest.fixture
def rig(accounts: Accounts, tmp_path: Path) -> Iterator[LoginRig]:
    with login_rig(accounts, tmp_path) as r:
        yield r


def foot_of(rig: LoginRig) -> int:
    return until(lambda: rig.user_processes().named("foot"), "foot to run as the user")[0]  # type: ignore[no-any-return]


def test_badge_login_hot_desk_detach_and_back(rig: LoginRig, accounts: Accounts) -> None:
    rig.configure(policy="reauth_on_reattach = false\n")
    rig.start()
    a, b = rig.kiosk("a"), rig.kiosk("b")

    # Badge at A: a login screen (the greeter user's session), then the user's own desktop, on the
    # same connection.
    a.insert(BADGE)
    greeter = a.wait_screen("greeter")
    [listed] = rig.sessions()
    assert listed["state"] == "greeter" and listed["user"] is None and listed["id"] == greeter["session_id"]
    desktop = rig.log_in(a, accounts.user, accounts.password)
    assert desktop["session_id"] == greeter["session_id"]
    assert desktop["presented_at"] == greeter["presented_at"]  # no new connection, no new badge event
    [listed] = rig.sessions()
    assert (listed["state"], listed["user"]) == ("active", accounts.user)

    # foot runs as the user, with a login's environment; the login screen is gone.
    pw = pwd.getpwnam(accounts.user)
    foot = foot_of(rig)
    env = environ(foot)
    assert (env["USER"], env["HOME"], env["LOGNAME"]) == (accounts.user, pw.pw_dir, accounts.user)
    runtime = Path(env["XDG_RUNTIME_DIR"])
    st = runtime.stat()
    assert st.st_uid == pw.pw_uid and stat.S_IMODE(st.st_mode) == 0o700
    assert (runtime / env["WAYLAND_DISPLAY"]).is_socket()
    assert env["XDG_SESSION_CLASS"] == "user" and env["XDG_SESSION_TYPE"] == "wayland"
    until(lambda: not rig.user_processes(accounts.greeter).found, "the login screen's processes to end")

    # What is typed at the kiosk runs as the user.
    marker = Path(pw.pw_dir) / "typed-at-a"
    a.run("settle", f"type id -u > {marker}; echo done", "key Return", "settle 700")
    until(marker.exists, "the command typed at A")
    assert marker.read_text().strip() == str(pw.pw_uid) and marker.stat().st_uid == pw.pw_uid
    at_a = a.snapshot(rig.tmp / "a.png")

    # The same badge at B: the session moves there; A goes back to its idle screen.
    b.insert(BADGE)
    assert b.wait_session()["session_id"] == desktop["session_id"]
    assert "moved to another kiosk" in a.wait_idle()["detail"]
    assert differing_pixels(at_a, b.snapshot(rig.tmp / "b.png")) == 0

    # Pulled at B: detached; the user's programs keep running.
    ticks = Path(pw.pw_dir) / "ticks"
    b.run(
        f"type (for i in 1 2 3 4 5 6; do echo $i >> {ticks}; sleep 0.5; done) &", "key Return", "settle 700"
    )
    before = b.snapshot(rig.tmp / "before-out.png")
    b.remove()
    b.wait_idle()
    until(lambda: rig.sessions()[0]["state"] == "detached", "the session to be detached")
    until(lambda: ticks.exists() and len(ticks.read_text().split()) == 6, "the background job, detached")
    assert foot in rig.user_processes().named("foot")

    # Badge again (at B): the same session, as it was left.
    b.insert(BADGE)
    assert b.wait_session()["session_id"] == desktop["session_id"]
    assert differing_pixels(before, b.snapshot(rig.tmp / "back.png")) == 0

    # Nothing of the badge reached any log, the registry or wrsessd's records.
    for where, text in rig.logs().items():
        assert BADGE not in text, f"the badge appears in {where}"
