"""wrlogin, the greeter, with real PAM (pam_unix, a throwaway user), the real wrsessd, and our compositor.

wrsessd starts a real greeter session (its compositor is the launcher tests' stand-in; its greeter
component a stand-in that hands the session's one-use ticket to the test). The test then runs the
real ``wrlogin`` console script as a real Wayland client inside an in-process SessionCompositor —
as root with that ticket, not as the greeter user, because the full spawn path (wrsessd starting our
compositor and wrlogin) is the front door's end-to-end test. Keys go in through the compositor's
input API; what the greeter shows is read from the compositor's screenshots with tesseract.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.compositor.harness import Client, Session, running_session
from tests.conftest import script
from tests.launcher.harness import SYSTEM_PYTHON, Accounts, Daemon, Sandbox, wait_for
from tests.ocr import contains, normalize, ocr
from wayray.compositor.testing import type_text
from wayray.launcher import protocol as p

pytestmark = [pytest.mark.root, pytest.mark.slow]

StartDaemon = Callable[..., Daemon]
STANDIN = Path(__file__).resolve().parent / "standins" / "hand_over_ticket.py"
KEY_ESC, KEY_TAB = 1, 15
DEADLINE = 90.0


def greeter_settings(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    argv = [SYSTEM_PYTHON, str(STANDIN), f"{sandbox.reports}/{{session_id}}-ticket.json"]
    return {"greeter_session": {"components": [{"name": "greeter", "argv": argv}]}, **overrides}


def greeter_ticket(daemon: Daemon, sandbox: Sandbox, **request: Any) -> tuple[p.SessionInfo, dict[str, str]]:
    """A real greeter session from wrsessd, and the environment its greeter component got."""
    with daemon.client() as c:
        started = c.request(
            p.CreateGreeterSession(token="tok-kiosk", token_kind="badge", rhost="kiosk-7", **request)
        )
    assert isinstance(started, p.SessionStarted), started
    return started.session, sandbox.report(started.session.session_id, "ticket")


async def run_wrlogin(s: Session, env: dict[str, str]) -> Client:
    client = await s.spawn(script("wrlogin"), "-v", env=env, name="wrlogin")
    await s.wait_window(lambda w: w.app_id == "org.wayray.wrlogin", "the greeter's window")
    return client


async def screen_text(s: Session) -> str:
    await s.settle(quiet=0.2)
    return await asyncio.to_thread(ocr, s.comp.screenshot_png())


async def see(s: Session, *phrases: str, absent: tuple[str, ...] = (), timeout: float = DEADLINE) -> str:
    """Wait until every phrase can be read on screen (and none of ``absent``); returns what was read."""
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        text = await screen_text(s)
        if all(contains(text, ph) for ph in phrases) and not any(contains(text, a, edits=0) for a in absent):
            return text
        await asyncio.sleep(0.3)
    logs = "\n".join(c.output()[-3000:] for c in s.clients)
    shot = s.save("never-saw")
    raise AssertionError(
        f"{shot}: never saw {phrases} (absent: {absent}) on screen; last read:\n{text}\n{logs}"
    )


async def press(s: Session, code: int) -> None:
    s.comp.key(code, True)
    s.comp.key(code, False)


def user_sessions(daemon: Daemon) -> list[p.SessionInfo]:
    with daemon.client() as c:
        return [x for x in c.list_sessions() if x.session_class is p.SessionClass.USER]


async def test_wrong_password_is_shown_then_the_right_one_starts_the_session(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox, tmp_path: Path
) -> None:
    daemon = start_daemon(**greeter_settings(sandbox))
    greeter, env = greeter_ticket(daemon, sandbox)
    async with running_session(tmp_path, size=(1280, 720)) as s:
        wrlogin = await run_wrlogin(s, env)
        await see(s, "Log in", "User name")
        # Escape starts over: the name typed and the password prompt are gone.
        await type_text(s.comp, f"{accounts.user}\n")
        await see(s, "Password", "Welcome to WayRay (test)")
        await press(s, KEY_ESC)
        await see(s, "User name", absent=("Password", accounts.user))
        # A wrong password: the person reads why, and the next password prompt is already there.
        await type_text(s.comp, f"{accounts.user}\n")
        await see(s, "Password")
        await type_text(s.comp, "not-the-password\n")
        text = await see(s, "Login incorrect", "wrong user name or password", "Password")
        s.save("wrong-password")
        assert "not-the-password" not in text
        assert user_sessions(daemon) == []
        # The right password: wrsessd starts the user's session, replacing this greeter; wrlogin exits.
        await type_text(s.comp, f"{accounts.password}\n")
        assert await s.wait_exit(wrlogin) == 0, wrlogin.output()
        sessions = user_sessions(daemon)
        assert [(x.user, x.replaces, x.token, x.rhost) for x in sessions] == [
            (accounts.user, greeter.session_id, "tok-kiosk", "kiosk-7")
        ]
        assert accounts.password not in wrlogin.output() and accounts.password not in daemon.log()


async def test_a_locked_account_is_refused_with_its_message(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox, tmp_path: Path
) -> None:
    """pam_faillock locks the account after two failures; the greeter shows PAM's own words."""
    sandbox.install_faillock_pam(deny=2)
    daemon = start_daemon(**greeter_settings(sandbox, rate_limit={"max_failures": 100}))
    _greeter, env = greeter_ticket(daemon, sandbox)
    async with running_session(tmp_path, size=(1280, 720)) as s:
        wrlogin = await run_wrlogin(s, env)
        await see(s, "User name")
        await type_text(s.comp, f"{accounts.user}\n")
        for _ in range(2):
            await see(s, "Password")
            await type_text(s.comp, "wrong\n")
            await see(s, "Login incorrect")
        # Locked now: PAM says so as soon as the name is known, and even the right password fails.
        await see(s, "account is locked", "failed logins", "minutes left to unlock")
        await type_text(s.comp, f"{accounts.password}\n")
        await see(s, "Login incorrect", "account is locked")
        s.save("locked")
        assert user_sessions(daemon) == []
        assert wrlogin.proc.returncode is None  # the greeter stays for someone else


async def test_too_many_attempts_show_the_time_to_wait(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox, tmp_path: Path
) -> None:
    daemon = start_daemon(**greeter_settings(sandbox))  # rate_limit: 3 failures, then 60 s
    _greeter, env = greeter_ticket(daemon, sandbox)
    async with running_session(tmp_path, size=(1024, 768)) as s:
        await run_wrlogin(s, env)
        await see(s, "User name")
        await type_text(s.comp, f"{accounts.user}\n")
        for attempt in range(3):
            await see(s, "Password")
            await type_text(s.comp, "wrong\n")
            if attempt < 2:
                await see(s, "Login incorrect")
        # The third failure blocks this user and badge: the screen says for how long, counting down.
        text = await see(s, "Too many failed attempts", "Try again in", absent=("Password",))
        s.save("rate-limited")
        wait = re.search(r"try again in (\d+) ?s", normalize(text))
        assert wait is not None and 1 <= int(wait.group(1)) <= 60, text
        # The right password is refused too while the wait lasts.
        await type_text(s.comp, f"{accounts.password}\n")
        await see(s, "Too many failed attempts")
        assert user_sessions(daemon) == []


async def test_a_password_change_is_walked_through_prompt_by_prompt(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox, tmp_path: Path
) -> None:
    """An expired password: PAM's error, its info line, and three more secret prompts, in order."""
    name = accounts.add_user(f"{accounts.user}x", "Old-pass-1234")
    subprocess.run(["chage", "--lastday", "0", name], check=True)
    daemon = start_daemon(**greeter_settings(sandbox))
    _greeter, env = greeter_ticket(daemon, sandbox)
    new = "N3w-pass-!-5678"
    async with running_session(tmp_path, size=(1920, 1080)) as s:
        wrlogin = await run_wrlogin(s, env)
        await see(s, "User name")
        await type_text(s.comp, f"{name}\n")
        await see(s, "Password")
        await type_text(s.comp, "Old-pass-1234\n")
        await see(s, "required to change your password", f"Changing password for {name}", "Current password")
        await type_text(s.comp, "Old-pass-1234\n")
        await see(s, "New password")
        await type_text(s.comp, f"{new}\n")
        await see(s, "Retype new password")
        s.save("password-change")
        await type_text(s.comp, f"{new}\n")
        assert await s.wait_exit(wrlogin) == 0, wrlogin.output()
        assert [x.user for x in user_sessions(daemon)] == [name]
    log = daemon.log()
    assert new not in log and "Old-pass-1234" not in log


async def test_unlock_mode_asks_only_for_the_owners_password(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox, tmp_path: Path
) -> None:
    daemon = start_daemon(**greeter_settings(sandbox))
    with daemon.client() as c:
        assert isinstance(
            c.login(
                p.CreateSession(username=accounts.user, token="tok-kiosk", token_kind="badge"),
                lambda m: accounts.password if m.auth_message_type.is_prompt else None,
            ),
            p.Success,
        )
        session = c.request(p.StartSession())
        assert isinstance(session, p.SessionStarted)
    _greeter, env = greeter_ticket(daemon, sandbox, unlock_session=session.session.session_id)
    assert env["WAYRAY_UNLOCK_USER"] == accounts.user
    with daemon.client() as events:
        events.request(p.Subscribe())
        async with running_session(tmp_path, size=(1280, 720)) as s:
            wrlogin = await run_wrlogin(s, env)
            # No user name field: the name is fixed, the password prompt comes by itself.
            text = await see(s, "Unlock session", accounts.user, "Password", absent=("User name",))
            s.save("unlock")
            assert "is locked" in normalize(text)
            await type_text(s.comp, "wrong\n")
            # Only the password can be wrong here: the screen says just that.
            text = await see(s, "Wrong password", "Password")
            assert "user name" not in normalize(text)
            await type_text(s.comp, f"{accounts.password}\n")
            assert await s.wait_exit(wrlogin) == 0, wrlogin.output()

        def unlocked() -> p.SessionEvent | None:
            e = events.events(30)
            return e if isinstance(e, p.SessionEvent) and e.event is p.SessionEventKind.UNLOCKED else None

        event = wait_for(unlocked, what="the unlocked event")
        assert event.session.session_id == session.session.session_id
    assert [x.session_id for x in user_sessions(daemon)] == [session.session.session_id]


def test_wrlogin_without_a_ticket_says_what_is_wrong(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "WAYLAND_DISPLAY": "wayland-x", "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run([script("wrlogin")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "WAYRAY_LOGIN_TICKET is not set" in done.stderr and "hint:" in done.stderr
    done = subprocess.run([script("wrlogin"), "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert (
        done.returncode == 0 and "WAYRAY_LOGIN_TICKET" in done.stdout and "WAYRAY_UNLOCK_USER" in done.stdout
    )
    done = subprocess.run([script("wrlogin"), "--size", "big"], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "WIDTHxHEIGHT" in done.stderr


async def test_a_login_screen_left_alone_past_the_idle_timeout_still_logs_in(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox, tmp_path: Path
) -> None:
    """wrsessd closes connections that stay idle (L2); the login screen's, opened when it came up,
    is one of them while nobody is at the kiosk. The next person's login goes on a new connection."""
    daemon = start_daemon(**greeter_settings(sandbox, idle_timeout_s=1.0))
    _greeter, env = greeter_ticket(daemon, sandbox)
    async with running_session(tmp_path, size=(1280, 720)) as s:
        wrlogin = await run_wrlogin(s, env)
        await see(s, "User name")
        # wrlogin's connection, opened when it came up, has been closed for idling.
        await s.wait_for(
            lambda: (
                f"connection from pid {wrlogin.pid} " in daemon.log()
                and "nothing came for 1 s" in daemon.log()
            ),
            "wrsessd to close the idle connection",
        )
        await type_text(s.comp, f"{accounts.user}\n")
        await see(s, "Password")
        await type_text(s.comp, f"{accounts.password}\n")
        assert await s.wait_exit(wrlogin) == 0, wrlogin.output()
        assert [x.user for x in user_sessions(daemon)] == [accounts.user]
        assert "login service is not available" not in wrlogin.output()
