"""Sessions that follow the badge, through every real process: headless kiosks (wrclient) → QUIC →
wrsrvd in login mode → wrsessd (root, real PAM with a throwaway user) → a login screen as the
greeter user → the user's own session (our compositor and foot, as the user) → the kiosk switched
over without reconnecting; hot-desking, detaching, re-authentication, restarts, policies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, script
from tests.e2e.harness import differing_pixels
from tests.e2e.kiosk import KioskProc
from tests.e2e.login import PYTHONPATH, LoginRig, environ, login_rig, run_as, until
from tests.launcher.harness import SYSTEM_PYTHON, Accounts, throwaway_accounts
from wayray.transport import (
    ClientConnection,
    ClientSettings,
    ConnectionClosedError,
    PinnedFingerprint,
    connect,
)
from wayray.wire import ErrorCode, HelloParams, TokenKind

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root: throwaway users, PAM, sessions as other users"
    ),
]

BADGE = "04A2B9C1D7"
#: A second kiosk host (kiosks are told apart by their own identity; this one also has another address).
OTHER_HOST = "[::1]"


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
    a, b = rig.kiosk("a"), rig.kiosk("b", OTHER_HOST)

    # Badge at A: a login screen (the greeter user's session), then the user's own desktop, on the
    # same connection.
    a.insert(BADGE)
    greeter = a.wait_screen("greeter")
    [listed] = rig.sessions()
    assert listed["state"] == "greeter" and listed["user"] is None and listed["id"] == greeter["session_id"]
    # The login screen runs as the unprivileged greeter user: its compositor and wrlogin.
    assert len(rig.user_processes(accounts.greeter).named("python3")) >= 2
    assert not rig.user_processes().found
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
    rig.wait_no_processes_of(accounts.greeter, "the login screen's processes to end")

    # What is typed at the kiosk runs as the user.
    marker = Path(pw.pw_dir) / "typed-at-a"
    a.run("settle", f"type id -u > {marker}; echo done", "key Return", "settle 700")
    # (The shell creates the file before `id` writes to it: wait for the line.)
    until(lambda: marker.exists() and marker.read_text().endswith("\n"), "the command typed at A")
    assert marker.read_text().strip() == str(pw.pw_uid) and marker.stat().st_uid == pw.pw_uid
    at_a = a.snapshot(rig.tmp / "a.png")

    # The same badge at B: the session moves there; A goes back to its idle screen.
    b.insert(BADGE)
    assert b.wait_session()["session_id"] == desktop["session_id"]
    assert "moved to another kiosk" in a.wait_idle()["detail"]
    assert differing_pixels(at_a, b.snapshot(rig.tmp / "b.png")) == 0
    rig.shows(a, "Present your badge")  # what a person at A sees now

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


def test_per_session_limits_go_with_every_login_screen_and_session(
    rig: LoginRig, accounts: Accounts
) -> None:
    """limits.session_memory_max / session_cpu_quota of the instance reach wrsessd for the login
    screen and for the session its login starts. This host has no systemd to set them on a scope
    (tests/launcher/test_booted_scopes.py shows that), so wrsessd says, for each, that it cannot."""
    rig.configure(server='[server.lab.limits]\nsession_memory_max = "3G"\nsession_cpu_quota = "150%"\n')
    rig.start()
    a = rig.kiosk("a")
    a.insert(BADGE)
    a.wait_screen("greeter")
    rig.log_in(a, accounts.user, accounts.password)
    assert rig.daemon is not None
    wanted = "its limits (MemoryMax=3221225472, CPUQuota=150%) are not applied: there is no systemd here"
    said = [line for line in rig.daemon.log().splitlines() if wanted in line]
    assert [any(f" of {who}: " in line for line in said) for who in (accounts.greeter, accounts.user)] == [
        True,
        True,
    ], said


def test_the_greeter_refuses_a_wrong_password_and_a_locked_account_visibly(
    rig: LoginRig, accounts: Accounts
) -> None:
    # Locked by expiry (usermod --expiredate 1): PAM's account stack refuses it with its own message.
    # (A locked password, usermod --lock, already fails authentication: "Login incorrect".)
    locked = accounts.add_user(f"{accounts.user}x", accounts.password)
    subprocess.run(["usermod", "--expiredate", "1", locked], check=True)
    rig.configure(policy="reauth_on_reattach = false\n")
    rig.start()
    a = rig.kiosk("a")
    a.insert(BADGE)
    greeter = a.wait_screen("greeter")
    rig.type_login(a, accounts.user, "not-the-password")
    rig.shows(a, "Login incorrect")
    assert a.state()["screen"] == "greeter" and rig.sessions()[0]["state"] == "greeter"
    assert not rig.user_processes().found  # nothing started for the user

    a.run("key Escape")  # start over, with the locked account
    rig.type_login(a, locked, accounts.password)
    rig.shows(a, "account has expired")
    assert not rig.user_processes(locked).found

    a.run("key Escape")
    rig.type_login(a, accounts.user, accounts.password)
    assert a.wait_screen("desktop")["session_id"] == greeter["session_id"]
    foot_of(rig)


def test_re_authentication_asks_for_the_password_before_the_session_is_shown(
    rig: LoginRig, accounts: Accounts
) -> None:
    rig.configure(policy="reauth_on_reattach = true\n")
    rig.start()
    a, b = rig.kiosk("a"), rig.kiosk("b", OTHER_HOST)
    a.insert(BADGE)
    sid = rig.log_in(a, accounts.user, accounts.password)["session_id"]
    foot_of(rig)
    a.run("settle", "type echo secret work at A", "key Return", "settle 700")
    at_a = a.snapshot(rig.tmp / "a.png")

    # Presented at B while it is shown at A: B asks for the owner's password; A keeps the session.
    b.insert(BADGE)
    unlock = b.wait_screen("greeter")
    assert unlock["session_id"] == sid  # the session's unlock screen, not the session itself:
    rig.shows(b, "Unlock")
    assert a.state()["state"] == "session" and a.state()["session_id"] == sid
    rig.type_login(b, None, "not-the-password")
    rig.shows(b, "Wrong password")
    assert a.state()["session_id"] == sid and b.state()["screen"] == "greeter"
    rig.type_login(b, None, accounts.password)
    shown = b.wait_screen("desktop")
    assert shown["session_id"] == sid
    assert "moved to another kiosk" in a.wait_idle()["detail"]
    assert differing_pixels(at_a, b.snapshot(rig.tmp / "b.png")) == 0  # keyframe first, as it was

    # Pulled, then presented at A (not where it was shown last): the password again.
    b.remove()
    until(lambda: rig.sessions()[0]["state"] == "detached", "the session to be detached")
    a.insert(BADGE)
    a.wait_screen("greeter")
    rig.type_login(a, None, accounts.password)
    assert a.wait_screen("desktop")["session_id"] == sid
    rig.wait_no_processes_of(accounts.greeter, "the unlock screens to end")


def test_wrsrvd_restarted_with_sessions_attached_and_detached_loses_none(
    rig: LoginRig, accounts: Accounts
) -> None:
    second = accounts.add_user(f"{accounts.user}b", accounts.password)
    rig.configure(policy="reauth_on_reattach = true\n")
    rig.start()
    a, b = rig.kiosk("a"), rig.kiosk("b", OTHER_HOST)
    a.insert(BADGE)
    first = rig.log_in(a, accounts.user, accounts.password)["session_id"]
    b.insert("B2-BADGE-77")
    other = rig.log_in(b, second, accounts.password)["session_id"]
    b.run("settle", "type echo left behind", "key Return", "settle 700")
    before = b.snapshot(rig.tmp / "before.png")
    b.remove()
    until(
        lambda: {s["id"]: s["state"] for s in rig.sessions()} == {first: "active", other: "detached"},
        "states",
    )
    pids = {name: rig.user_processes(name).named("foot") for name in (accounts.user, second)}

    rig.stop_server()
    rig.start_server()
    # Nothing of either session died, both are known again, and A comes back by itself to its
    # session without a password (the same kiosk, just now: the re-attach grace).
    assert {name: rig.user_processes(name).named("foot") for name in (accounts.user, second)} == pids
    assert {s["id"] for s in rig.sessions()} == {first, other}
    a.wait(lambda s: s["state"] == "session" and s["session_id"] == first and s["screen"] != "greeter", "A")
    a.run("settle", "type echo after the restart", "key Return", "settle 700")

    # The detached one, at another kiosk: password, then as it was left.
    a2 = rig.kiosk("c", OTHER_HOST)
    a2.insert("B2-BADGE-77")
    a2.wait_screen("greeter")
    rig.type_login(a2, None, accounts.password)
    assert a2.wait_screen("desktop")["session_id"] == other
    assert differing_pixels(before, a2.snapshot(rig.tmp / "after.png")) == 0


def test_policy_timeout_and_operator_kill_end_sessions_through_wrsessd(
    rig: LoginRig, accounts: Accounts
) -> None:
    rig.configure(policy='detached_timeout = "2s"\nreauth_on_reattach = false\n')
    rig.start()
    a = rig.kiosk("a")
    a.insert(BADGE)
    sid = rig.log_in(a, accounts.user, accounts.password)["session_id"]
    foot = foot_of(rig)
    a.remove()
    # Detached longer than the policy allows: ended, its processes gone, its PAM session closed.
    until(lambda: not rig.sessions(), "the detached timeout to end the session")
    until(lambda: not rig.user_processes().found, "the user's processes to end")
    assert not Path(f"/proc/{foot}").exists()
    user_closes = f"close_session {rig.sandbox.service} {accounts.user} "
    # wrsessd closes the PAM session once the session's processes are gone: just after, not with them.
    until(
        lambda: [e for e in rig.sandbox.pam_events() if e.startswith(user_closes)],
        "wrsessd to close the user's PAM session",
    )
    closes = [e for e in rig.sandbox.pam_events() if e.startswith(user_closes)]
    assert len(closes) == 1
    audit = rig.server_text()
    assert f"ended session={sid} user={accounts.user}" in audit and "reason=detached_timeout" in audit

    # An operator's kill (wradm) ends a session that is shown: PAM closed, the kiosk starts over.
    a.insert(BADGE)
    sid2 = rig.log_in(a, accounts.user, accounts.password)["session_id"]
    r = subprocess.run(
        [script("wradm"), "session", "kill", sid2, "--root", str(rig.root)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"session {sid2}: ended" in r.stdout
    status = subprocess.run(
        [script("wradm"), "status", "--root", str(rig.root)], capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stderr
    assert f"login screens through wrsessd ({rig.sandbox.socket}: connected)" in status.stdout
    assert "detached timeout 2 s" in status.stdout
    assert "viewers need a login (no access key, no client certificate" in status.stdout, status.stdout
    until(lambda: not rig.user_processes().found, "the user's processes to end")
    # As above: the PAM session is closed just after the processes are gone, not with them.
    until(
        lambda: len([e for e in rig.sandbox.pam_events() if e.startswith(user_closes)]) >= 2,
        "wrsessd to close the second session's PAM session",
    )
    assert len([e for e in rig.sandbox.pam_events() if e.startswith(user_closes)]) == 2
    fresh = a.wait_screen("greeter")  # the badge is still in: a new login screen
    assert fresh["session_id"] not in (sid, sid2)


def test_idle_logout_spares_a_session_in_use_and_ends_one_left_alone(
    rig: LoginRig, accounts: Accounts
) -> None:
    """The policy's idle logout (60 s, its least) counts the person's input at the kiosk: typing
    keeps the session past the limit; a minute without input ends it and closes its PAM session."""
    rig.configure(policy='idle_logout = "60s"\nreauth_on_reattach = false\n')
    rig.start()
    a = rig.kiosk("a")
    a.insert(BADGE)
    sid = rig.log_in(a, accounts.user, accounts.password)["session_id"]
    foot_of(rig)
    # The idle clock starts at the login, as wrsrvd recorded it ("since"), not when the test has seen
    # the desktop and foot: on a loaded machine that can take a good part of the minute.
    [listed] = rig.sessions()
    logged_in = time.monotonic() - max(0.0, time.time() - listed["since"])
    time.sleep(max(0.0, logged_in + 35 - time.monotonic()))
    typing = time.monotonic()  # before the keys reach wrsrvd (after them would be a bound that can fail)
    a.run("type echo still here", "key Return", "settle 300")
    time.sleep(max(0.0, logged_in + 70 - time.monotonic()))
    # Without that input it would be gone by now (60 s after the login's own typing).
    assert [(s["id"], s["state"]) for s in rig.sessions()] == [(sid, "active")]
    assert a.state()["session_id"] == sid and a.state()["screen"] == "desktop"

    until(lambda: not rig.sessions(), "the idle logout to end the session", 90)
    assert time.monotonic() - typing > 55  # a minute after the last key, not after the login
    until(lambda: not rig.user_processes().found, "the user's processes to end")
    user_closes = f"close_session {rig.sandbox.service} {accounts.user} "
    # wrsessd closes the PAM session once the session's processes are gone: just after, not with them.
    until(
        lambda: [e for e in rig.sandbox.pam_events() if e.startswith(user_closes)],
        "wrsessd to close the user's PAM session",
    )
    assert len([e for e in rig.sandbox.pam_events() if e.startswith(user_closes)]) == 1
    audit = rig.server_text()
    assert f"ended session={sid} user={accounts.user}" in audit and "reason=idle_timeout" in audit
    assert a.wait_screen("greeter")["session_id"] != sid  # the badge is still in: a new login screen


def test_a_users_compositor_stopped_over_a_wrsrvd_restart_is_kept_and_comes_back(
    rig: LoginRig, accounts: Accounts
) -> None:
    """A restarted wrsrvd waits 30 s for each session to come back to its link. A user's compositor
    that cannot (it is stopped) runs as the user, whose environment wrsrvd may not read: it is still
    recognised as the session's (its uid), kept as not responding, and relinks when continued."""
    rig.configure(policy="reauth_on_reattach = false\n")
    rig.start()
    a = rig.kiosk("a")
    a.insert(BADGE)
    sid = rig.log_in(a, accounts.user, accounts.password)["session_id"]
    [session] = rig.sessions()
    pid = session["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        until(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T", "stopped")
        rig.stop_server(signal.SIGKILL)
        rig.start_server()
        verdict = until(
            lambda: next(
                (line for line in rig.server_text().splitlines()
                 if sid in line and ("has not come back" in line or " ended " in line)),
                None,
            ),
            "wrsrvd's verdict on the session that did not come back",
        )  # fmt: skip
        assert "is not responding" in verdict and "left running" in verdict, verdict
        assert [s["id"] for s in rig.sessions()] == [sid]
    finally:
        os.kill(pid, signal.SIGCONT)
    until(lambda: [s["linked"] for s in rig.sessions()] == [True], "the session back on its link")
    a.wait(lambda st: st["state"] == "session" and st["session_id"] == sid, "the kiosk shows it again")


def test_another_local_user_cannot_take_over_a_sessions_link(rig: LoginRig, accounts: Accounts) -> None:
    """The link socket is open to every local user (sessions run as their users); the per-session
    secret from the session's own uid is what lets a compositor in. Another user guessing, or even
    holding a leaked secret, is refused, and the session carries on undisturbed."""
    intruder = accounts.add_user(f"{accounts.user}i", accounts.password)
    rig.configure(policy="reauth_on_reattach = false\n")
    rig.start()
    a = rig.kiosk("a")
    a.insert(BADGE)
    a.wait_screen("greeter")
    # As root, standing in for a leak: the user compositor's secret, from wrsessd's root-only record
    # of the login screen (kept there so that a restarted wrsessd can still start the session).
    [record] = [json.loads(p.read_text()) for p in (rig.sandbox.state / "sessions").glob("*.json")]
    [leaked] = [e.split("=", 1)[1] for e in record["session_env"] if e.startswith("WAYRAY_LINK_SECRET=")]
    sid = rig.log_in(a, accounts.user, accounts.password)["session_id"]
    link = rig.run / "lab" / "link.sock"
    assert stat.S_IMODE(link.stat().st_mode) == 0o666 and stat.S_IMODE(link.parent.stat().st_mode) == 0o711
    assert stat.S_IMODE(rig.admin_socket.stat().st_mode) == 0o600
    [compositor] = [p for p in rig.user_processes().named("python3") if "WAYRAY_LINK_SESSION" in environ(p)]
    # The secret is in no process's environment (/proc/PID/environ): wrsessd hands it over in a pipe.
    for pid in rig.user_processes().found:
        with contextlib.suppress(OSError):  # one that exited meanwhile
            assert leaked not in json.dumps(environ(pid)), pid

    tried = run_as(
        intruder,
        ["/usr/bin/env", f"PYTHONPATH={PYTHONPATH}", SYSTEM_PYTHON, "-m", "tests.e2e.link_intruder",
         str(link), sid, "a-guess", leaked],
        cwd=str(REPO),
    )  # fmt: skip
    assert tried.returncode == 0, tried.stderr
    answers = [json.loads(line)["answer"] for line in tried.stdout.splitlines()]
    assert answers == ["bad_secret", "bad_secret"]
    assert "registered for session" in rig.server_text() and "refused" in rig.server_text()

    # The session's own compositor is still on its link, and the kiosk still drives it.
    [listed] = rig.sessions()
    assert listed["linked"] and listed["pid"] == compositor
    marker = Path(pwd.getpwnam(accounts.user).pw_dir) / "still-mine"
    a.run("settle", f"type touch {marker}", "key Return")
    until(marker.exists, "the command typed after the attempts")


@pytest.mark.skipif(
    shutil.which("umockdev-wrapper") is None or not Path("/usr/lib/python3/dist-packages/gi").is_dir(),
    reason="needs umockdev and python3-gi with gir1.2-umockdev-1.0 (tools/apt-packages.txt)",
)
def test_a_usb_badge_reader_found_through_udev_logs_in_and_out(rig: LoginRig, accounts: Accounts) -> None:
    """The kiosk's badge reader is a keyboard-wedge USB device (umockdev), configured in client.toml by
    its ids: what it types is the badge; its card-removed line takes the badge out."""
    from tests.client.tokens.umockdev_devices import READER

    rig.configure(policy="reauth_on_reattach = false\n")
    rig.start()
    client_root = rig.short / "kiosk-root"
    etc = client_root / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "client.toml").write_text(
        f"[client]\nkiosk = true\nbadge.vendor = {READER[0]:#06x}\nbadge.product = {READER[1]:#06x}\n"
        'badge.removal_sequence = "CARD-OUT"\n'
    )
    wrapper = ("umockdev-wrapper", sys.executable, "-m", "tests.e2e.umockdev_kiosk",
               f"{READER[0]:04x}", f"{READER[1]:04x}", "--")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYLAND_", "WAYRAY_", "NOTIFY_"))}
    env.update(PYTHONPATH=str(REPO), LANG="C.UTF-8")
    k = KioskProc(
        rig.short, "usb", f"127.0.0.1:{rig.port}", rig.fingerprint, env=env,
        extra=("--root", str(client_root)), badge_socket=False, wrapper=wrapper,
    )  # fmt: skip
    rig.kiosks.append(k)
    k.dir = REPO  # the wrapper runs `python -m tests...` from the repository
    k.start()  # the idle screen is up before the token source has started: wait for the reader
    until(lambda: "kiosk ready: badge reader 076b:5427" in k.log_text(), "the kiosk to find its reader")

    k.send({"type": f"{BADGE}\n"})
    sid = rig.log_in(k, accounts.user, accounts.password)["session_id"]
    foot_of(rig)
    k.send({"type": "CARD-OUT\n"})
    assert k.wait_idle()["detail"] == "Present your badge"
    until(lambda: rig.sessions()[0]["state"] == "detached", "the session to be detached")
    k.send({"type": f"{BADGE}\n"})
    assert k.wait_screen("desktop")["session_id"] == sid
    for where, text in rig.logs().items():
        assert BADGE not in text, f"the badge appears in {where}"


def test_a_badge_the_policy_does_not_accept_is_refused_at_the_kiosk(rig: LoginRig) -> None:
    rig.configure(policy='tokens = ["terminal"]\n')
    rig.start()
    a = rig.kiosk("a")
    a.insert(BADGE)
    refused = a.wait(lambda s: s["state"] == "failed", "the refusal")
    assert "badge tokens are not accepted here" in refused["detail"]
    assert rig.sessions() == []
    # The kiosk let go of the refused badge: presenting it again is a new attempt (refused again).
    a.insert(BADGE)
    again = a.wait(lambda s: s["state"] == "failed" and s["serial"] > refused["serial"], "a second refusal")
    assert "not accepted" in again["detail"]


def test_kiosks_arriving_at_once_get_no_more_login_screens_than_max_sessions(rig: LoginRig) -> None:
    """Login screens are sessions too (a compositor, the greeter, a PAM session): kiosks arriving
    together, before any of their login screens is up, still get no more than ``max_sessions``."""
    rig.configure()
    servers = rig.root / "etc" / "wayray" / "servers.toml"
    servers.write_text(
        servers.read_text().replace('policy = "test"\n', 'policy = "test"\nmax_sessions = 2\n')
    )
    rig.start()
    settings = ClientSettings(trust=PinnedFingerprint(rig.fingerprint), connect_timeout=120)

    async def arrive(i: int) -> ClientConnection | str:
        hello = HelloParams(
            token=f"crowd-{i}", token_kind=TokenKind.SOFTWARE, screen_width=640, screen_height=480
        )
        try:
            return await connect("127.0.0.1", rig.port, settings, hello)
        except ConnectionClosedError as err:
            return f"{ErrorCode(err.code).name}: {err.reason}"

    async def crowd() -> list[str]:
        arrived = await asyncio.gather(*(arrive(i) for i in range(5)))
        for conn in arrived:
            if not isinstance(conn, str):
                conn.close()
                await conn.wait_closed()
        return [a if isinstance(a, str) else "shown" for a in arrived]

    outcomes = asyncio.run(crowd())
    assert outcomes.count("shown") == 2, outcomes
    assert sorted(outcomes)[:3] == ["SERVER_BUSY: this server hosts its limit of 2 sessions; try another "
                                    "server or later"] * 3, outcomes  # fmt: skip
    assert len(rig.sessions()) <= 2
