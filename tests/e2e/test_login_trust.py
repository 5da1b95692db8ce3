"""Who may open what at a login server, through every real process (the login rig: kiosks, wrsrvd in
login mode, wrsessd with real PAM and a throwaway user): "the same kiosk" is the same kiosk identity,
not the same address (security review M3); one address cannot fill the server with login screens,
and login screens nobody uses end (M1); a login screen is no larger than 3840x2160 worth of pixels
(H2); `wradm sessions` shows an unlock screen for what it is; no log or state file holds a badge (L7)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.login import LoginRig, login_rig, until
from tests.launcher.harness import Accounts, throwaway_accounts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root: throwaway users, PAM, sessions as other users"
    ),
]

BADGE = "Q7Z-0424-5311"


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    with throwaway_accounts() as acc:
        yield acc


@pytest.fixture
def rig(accounts: Accounts, tmp_path: Path) -> Iterator[LoginRig]:
    with login_rig(accounts, tmp_path) as r:
        yield r


def wradm(rig: LoginRig, *args: str) -> str:
    out = subprocess.run(
        [script("wradm"), *args, "--admin-socket", str(rig.admin_socket)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def no_badge_in(logs: dict[str, str], *badges: str) -> None:
    """Nothing of a badge in any log or state file: not the badge, not its first 4 characters."""
    for where, text in logs.items():
        for badge in badges:
            assert badge not in text, f"{where} holds the badge {badge!r}"
            assert badge[:4] not in text, f"{where} holds the start of the badge {badge!r}"
            assert f"<{len(badge)} chars" not in text, f"{where} holds the length of a badge"


def test_another_kiosk_at_the_same_address_needs_the_password(rig: LoginRig, accounts: Accounts) -> None:
    rig.configure(policy="reauth_on_reattach = true\n")
    rig.start()
    a = rig.kiosk("a")
    a.insert(BADGE)
    sid = rig.log_in(a, accounts.user, accounts.password)["session_id"]

    # Another kiosk behind the same address (NAT, or any program on A's host): the unlock screen,
    # not the session; A keeps it.
    b = rig.kiosk("b")
    b.insert(BADGE)
    assert b.wait_screen("greeter")["session_id"] == sid
    rig.shows(b, "Unlock")
    assert a.state()["state"] == "session" and a.state()["screen"] == "desktop"
    b.remove()
    b.wait_idle()

    # A loses its power and comes back (the same machine: its identity): the session, no password.
    a.kill()
    a = rig.kiosk("a")
    a.insert(BADGE)
    assert a.wait_screen("desktop")["session_id"] == sid

    # A dies again; within the grace another kiosk at A's address presents the badge: the password.
    a.kill()
    until(lambda: rig.sessions()[0]["state"] == "detached", "wrsrvd to notice A is gone")
    d = rig.kiosk("d")
    d.insert(BADGE)
    assert d.wait_screen("greeter")["session_id"] == sid
    rig.shows(d, "Unlock")

    # What wradm shows meanwhile: the session is being unlocked at D's address (not "detached -").
    [listed] = rig.sessions()
    assert (listed["state"], listed["kiosk"]) == ("unlocking", "127.0.0.1"), listed
    line = next(row for row in wradm(rig, "sessions").splitlines() if row.startswith(sid))
    assert re.search(r"\bunlocking\s+127\.0\.0\.1\b", line), line
    status = json.loads(wradm(rig, "status", "--json"))
    assert status["by_state"] == {"unlocking": 1} and status["viewers"] == 1, status
    assert "1 unlocking" in wradm(rig, "status")

    rig.type_login(d, None, accounts.password)
    assert d.wait_screen("desktop")["session_id"] == sid
    no_badge_in(rig.logs(), BADGE)


def test_one_address_cannot_fill_the_server_with_login_screens(rig: LoginRig) -> None:
    rig.configure(
        policy='untouched_timeout = "8s"\n',
        server="[server.lab.admission]\nunused_sessions_per_source = 2\n",
    )
    rig.start()
    k1, k2, k3 = rig.kiosk("k1"), rig.kiosk("k2"), rig.kiosk("k3")
    k1.insert("K1Q9-ONE-111")
    first = k1.wait_screen("greeter")["session_id"]
    k2.insert("K2Q9-TWO-222")
    k2.wait_screen("greeter")
    # A third login screen from 127.0.0.1: refused while the two are up; the kiosk keeps trying.
    k3.insert("K3Q9-THREE-333")
    refused = k3.wait(lambda s: "login screens" in (s.get("detail") or ""), "the refusal at k3")
    assert refused["state"] in ("reconnecting", "connecting"), refused
    assert len(rig.sessions()) == 2
    # Another address is another source: it gets one, and no larger than 3840x2160 worth of pixels.
    big = rig.kiosk("big", "[::1]", size="7680x4320")
    big.insert("K4Q9-FOUR-444")
    shown = big.wait_screen("greeter")
    [listed] = [s for s in rig.sessions() if s["id"] == shown["session_id"]]
    assert listed["output"][:2] == [3840, 2160], listed
    # Nobody types at k1's login screen: it ends after untouched_timeout, though shown (the badge is
    # still in, so the kiosk gets a fresh one).
    until(lambda: k1.state()["session_id"] not in (None, first), "k1's idle login screen to be replaced")
    assert "untouched_timeout" in rig.server_text()
    assert rig.server_text().count("no new login screen") == 1  # refusals are not logged one by one
    no_badge_in(rig.logs(), "K1Q9-ONE-111", "K2Q9-TWO-222", "K3Q9-THREE-333", "K4Q9-FOUR-444")
