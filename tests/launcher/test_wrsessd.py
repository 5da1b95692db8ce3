"""wrsessd with real PAM (pam_unix, a throwaway user) and real processes.

The session compositor, the session components and the greeter are stand-ins (tests/launcher/standins)
until the real compositor and wrlogin are wired in; everything else is the real thing: the wrsessd
console script, its session workers, libpam with pam_unix/pam_exec/pam_echo, setuid'd children.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import script
from tests.launcher.harness import (
    Accounts,
    Daemon,
    Sandbox,
    answer_with,
    as_user,
    mode_of,
    user_pids,
    wait_for,
)
from wayray.launcher import protocol as p
from wayray.launcher.client import LauncherClient, LauncherError

pytestmark = [pytest.mark.root, pytest.mark.slow]

StartDaemon = Callable[..., Daemon]


def login(c: LauncherClient, acc: Accounts, password: str, *, token: str = "tok-a", user: str | None = None,
          seen: list[tuple[str, str]] | None = None) -> p.Message:  # fmt: skip
    create = p.CreateSession(username=user or acc.user, token=token, token_kind="badge", rhost="kiosk-1")
    return c.login(create, answer_with(password, seen=seen))


def start_user_session(c: LauncherClient, acc: Accounts, **kw: object) -> p.SessionInfo:
    assert isinstance(login(c, acc, acc.password, **kw), p.Success)  # type: ignore[arg-type]
    started = c.request(p.StartSession())
    assert isinstance(started, p.SessionStarted), started
    return started.session


# --- authentication --------------------------------------------------------------------------------


def test_wrong_password_is_refused_with_a_clear_message(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    daemon = start_daemon()
    seen: list[tuple[str, str]] = []
    with daemon.client() as c:
        result = login(c, accounts, "not-the-password", seen=seen)
        assert isinstance(result, p.Error)
        assert result.error_type is p.ErrorType.AUTH_ERROR
        assert result.description == "Login incorrect: wrong user name or password."
        # The conversation was relayed as PAM sent it: pam_echo's notice, then pam_unix's prompt.
        assert seen == [("info", "Welcome to WayRay (test)"), ("secret", "Password: ")]
        # A refused login leaves nothing behind, and start_session is refused.
        refused = c.request(p.StartSession())
        assert isinstance(refused, p.Error) and refused.error_type is p.ErrorType.BAD_REQUEST
        assert c.list_sessions() == ()
    assert user_pids(accounts.uid) == []
    assert "not-the-password" not in daemon.log()


def test_right_password_starts_a_session_as_the_user(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    daemon = start_daemon()
    pw = pwd.getpwnam(accounts.user)
    with daemon.client() as c:
        assert isinstance(login(c, accounts, accounts.password), p.Success)
        started = c.request(p.StartSession(env=["WAYRAY_LINK=/run/wayray/lab/link.sock"]))
        assert isinstance(started, p.SessionStarted) and not started.resumed
        info = started.session
        assert (info.user, info.uid, info.session_class) == (accounts.user, pw.pw_uid, p.SessionClass.USER)
        assert (info.token, info.token_kind, info.rhost) == ("tok-a", "badge", "kiosk-1")

        comp = sandbox.report(info.session_id, "compositor")
        expected_groups = sorted(os.getgrouplist(accounts.user, pw.pw_gid))
        for proc in (comp, sandbox.report(info.session_id, "wm"), sandbox.report(info.session_id, "panel")):
            assert (proc["uid"], proc["euid"]) == (pw.pw_uid, pw.pw_uid)
            assert (proc["gid"], proc["egid"]) == (pw.pw_gid, pw.pw_gid)
            assert proc["groups"] == expected_groups
            assert proc["cwd"] == pw.pw_dir
            assert proc["umask"] == 0o022
            # One fresh session (setsid'd worker), separate from the test's and the daemon's.
            assert proc["sid"] == info.worker_pid != os.getsid(0)
            env = proc["env"]
            assert env["HOME"] == pw.pw_dir
            assert env["USER"] == env["LOGNAME"] == accounts.user
            assert env["SHELL"] == "/bin/sh"
            assert env["PATH"].startswith("/usr/local/bin:/usr/bin:/bin")
            assert env["XDG_RUNTIME_DIR"] == info.runtime_dir
            assert env["XDG_SESSION_TYPE"] == "wayland"
            assert env["XDG_SESSION_CLASS"] == "user"
            assert env["WAYRAY_SESSION_ID"] == info.session_id
            assert env["WAYRAY_LINK"] == "/run/wayray/lab/link.sock"  # from start_session's env
            assert not any(k.startswith(("LISTEN_", "NOTIFY_SOCKET", "WAYRAY_LOGIN")) for k in env)
        # The compositor is told its socket name but is not pointed at a parent compositor.
        assert "WAYLAND_DISPLAY" not in comp["env"]
        assert comp["env"]["WAYRAY_WAYLAND_DISPLAY"] == info.wayland_display
        assert comp["socket"] == f"{info.runtime_dir}/{info.wayland_display}"
        # Components start after the compositor's socket exists, with WAYLAND_DISPLAY set.
        wm = sandbox.report(info.session_id, "wm")
        assert wm["env"]["WAYLAND_DISPLAY"] == info.wayland_display
        # ... and DISPLAY, the X display the compositor wrote next to its socket (docs/xwayland.md §8).
        assert wm["env"]["DISPLAY"] == ":42"
        assert "DISPLAY" not in comp["env"]
        assert wm["connected"] is True

        runtime = Path(info.runtime_dir)
        assert runtime == sandbox.runtime_base / str(pw.pw_uid)
        st = runtime.lstat()
        assert stat.S_ISDIR(st.st_mode) and (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
        assert mode_of(runtime) == 0o700

        assert sandbox.pam_events() == [f"open_session {sandbox.service} {accounts.user} rhost=kiosk-1"]
        assert [s.session_id for s in c.list_sessions()] == [info.session_id]

        c.kill_session(info.session_id, p.EndReason.LOGOUT)
        assert c.list_sessions() == ()
    assert sandbox.pam_events()[-1] == f"close_session {sandbox.service} {accounts.user} rhost=kiosk-1"
    assert not runtime.exists()  # WayRay made it, the user's last session is gone
    assert user_pids(accounts.uid) == []
    assert accounts.password not in daemon.log()


def test_the_runtime_dir_goes_with_the_mounts_in_it(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """Desktops mount FUSE file systems in XDG_RUNTIME_DIR (gvfs, the document portal), and a user
    may mount one whose server never answers. The last session's end detaches them without asking
    them anything and removes the directory all the same. (A tmpfs mounted by the test stands in for
    the user's FUSE mount: that needs fusermount and a FUSE server, not installed here.)"""
    daemon = start_daemon()
    with daemon.client() as c:
        info = start_user_session(c, accounts)
        runtime = Path(info.runtime_dir)
        mounted = runtime / "doc"
        mounted.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mounted)], check=True)
        try:
            (mounted / "theirs").write_text("a file in the user's own file system\n")
            c.kill_session(info.session_id, p.EndReason.LOGOUT)
            assert not runtime.exists()
            mounts = Path("/proc/self/mountinfo").read_text()
            assert str(sandbox.runtime_base) not in mounts
            assert list(sandbox.runtime_base.iterdir()) == []
        finally:
            subprocess.run(["umount", "--lazy", str(mounted)], capture_output=True)
    assert sandbox.pam_events()[-1].startswith(f"close_session {sandbox.service} {accounts.user}")


def test_a_session_still_starting_keeps_the_runtime_dir_when_the_users_other_session_ends(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """The user's sessions share XDG_RUNTIME_DIR and the last one to end removes it. A session whose
    compositor is not up yet counts: the user's other session ending meanwhile must leave it the
    directory. (Under load, a login screen starting while another one ended -- greeters are all one
    account -- failed with "the session compositor exited before creating its Wayland socket": the
    directory had been removed under it, and its kiosk was told the server was busy.)"""
    gate = sandbox.reports / "gate"
    gated = [*sandbox.settings()["user_session"]["compositor"][:2], "--gate", str(gate), "--report",
             str(sandbox.reports / "gated-compositor.json")]  # fmt: skip
    daemon = start_daemon(allow_custom_command=True)
    with daemon.client() as c, daemon.client() as c2:
        first = start_user_session(c, accounts)
        assert isinstance(login(c2, accounts, accounts.password, token="tok-b"), p.Success)
        answer: list[p.Message] = []
        second = threading.Thread(target=lambda: answer.append(c2.request(p.StartSession(cmd=gated))))
        second.start()
        try:
            wait_for(Path(f"{gate}.waiting").exists, what="the second session's compositor to start")
            c.kill_session(first.session_id, p.EndReason.LOGOUT)
            wait_for(lambda: not Path(f"/proc/{first.worker_pid}").exists(), what="the first session's end")
        finally:
            gate.touch()  # the second compositor creates its socket now
            second.join(60)
        started = answer[0]
        assert isinstance(started, p.SessionStarted), started
        runtime = Path(started.session.runtime_dir)
        assert runtime == Path(first.runtime_dir)
        assert stat.S_ISSOCK((runtime / started.session.wayland_display).lstat().st_mode)
        c.kill_session(started.session.session_id, p.EndReason.LOGOUT)
        wait_for(lambda: not runtime.exists(), what="the last session's end to remove the runtime dir")
    assert "exited before creating its Wayland socket" not in daemon.log()


def test_a_start_wrsessd_gives_up_on_still_closes_its_pam_session(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """A session module that takes its time (a hung logind, a slow home-directory mount): wrsessd
    answers the client once the start took too long, and the worker, stopped rather than killed,
    closes the PAM session it opened and leaves no process behind."""
    slow = sandbox.base / "slow-open"
    slow.touch()
    sandbox.hook.write_text(
        sandbox.hook.read_text() + f'if [ "$PAM_TYPE" = open_session ] && [ -e {slow} ]; then sleep 40; fi\n'
    )
    # wrsessd waits compositor_start_timeout_s + stop_timeout_s + 30 s for a start: 32 s here.
    daemon = start_daemon(compositor_start_timeout_s=1.0, stop_timeout_s=1.0)
    with daemon.client() as c:
        assert isinstance(login(c, accounts, accounts.password), p.Success)
        refused = c.request(p.StartSession())
        assert isinstance(refused, p.Error), refused
        assert "did not start in 32 s" in refused.description
        slow.unlink()
        wait_for(lambda: "close_session" in sandbox.pam_log.read_text(), 60, "the PAM session to close")
        assert c.list_sessions() == ()
    events = sandbox.pam_events()
    assert [e.split()[0] for e in events] == ["open_session", "close_session"], events
    wait_for(lambda: user_pids(accounts.uid) == [], 30, "no process of the user")
    assert list((sandbox.state / "sessions").glob("*.json")) == []


def test_locked_account_is_refused_even_with_the_right_password(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    name = accounts.add_user(f"{accounts.user}l", accounts.password)
    subprocess.run(["usermod", "--lock", name], check=True)
    daemon = start_daemon()
    with daemon.client() as c:
        result = login(c, accounts, accounts.password, user=name)
        assert isinstance(result, p.Error)
        assert result.error_type is p.ErrorType.AUTH_ERROR
        assert result.description.startswith("Login incorrect")
    assert user_pids(pwd.getpwnam(name).pw_uid) == []


def test_expired_account_is_refused_with_its_message(start_daemon: StartDaemon, accounts: Accounts) -> None:
    name = accounts.add_user(f"{accounts.user}e", accounts.password)
    subprocess.run(["usermod", "--expiredate", "1", name], check=True)
    daemon = start_daemon()
    seen: list[tuple[str, str]] = []
    with daemon.client() as c:
        result = login(c, accounts, accounts.password, user=name, seen=seen)
        assert isinstance(result, p.Error)
        assert result.error_type is p.ErrorType.ACCOUNT_ERROR
        message = "Your account has expired; please contact your system administrator."
        assert result.description == message
        assert ("error", message) in seen  # pam_unix's own error message, relayed as it came
        assert c.list_sessions() == ()


def test_a_long_conversation_is_relayed_prompt_by_prompt(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """No user name (PAM asks, echo on), a notice, the password, then an expired password's change.

    A real multi-prompt PAM stack: pam_echo (info), pam_unix asking for the name (visible) and the
    password (secret), pam_unix's account check (error: "You are required to change your
    password"), then pam_chauthtok's info and three secret prompts. Every PAM message style occurs.
    """
    name = accounts.add_user(f"{accounts.user}x", "Old-pass-1234")
    subprocess.run(["chage", "--lastday", "0", name], check=True)
    daemon = start_daemon()
    new = "N3w-pass-!-5678"
    seen: list[tuple[str, str]] = []
    with daemon.client() as c:
        create = p.CreateSession(token="tok-x", token_kind="badge")
        result = c.login(create, answer_with(name, "Old-pass-1234", "Old-pass-1234", new, new, seen=seen))
        assert isinstance(result, p.Success), result
        assert seen == [
            ("info", "Welcome to WayRay (test)"),
            ("visible", "login:"),
            ("secret", "Password: "),
            ("error", "You are required to change your password immediately (administrator enforced)."),
            ("info", f"Changing password for {name}."),
            ("secret", "Current password: "),
            ("secret", "New password: "),
            ("secret", "Retype new password: "),
        ]
        started = c.request(p.StartSession())
        assert isinstance(started, p.SessionStarted) and started.session.user == name
        c.kill_session(started.session.session_id)
        # The new password is the password now.
        assert isinstance(login(c, accounts, new, user=name), p.Success)
        c.request(p.CancelSession())
    assert new not in daemon.log() and "Old-pass-1234" not in daemon.log()


def test_failures_are_rate_limited_per_token_and_per_user(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    daemon = start_daemon()  # rate_limit: 3 failures, then 60 s doubling
    with daemon.client() as c:
        for _ in range(3):
            third_sent = time.monotonic()  # the block starts with the third failure, not before
            result = login(c, accounts, "wrong", token="tok-r")
            assert isinstance(result, p.Error) and result.error_type is p.ErrorType.AUTH_ERROR
        # Now even the right password is refused, with a message that says how long to wait: the
        # 60 s block less what has passed since it began (at most the time since the third try went).
        refused = login(c, accounts, accounts.password, token="tok-r")
        passed = time.monotonic() - third_sent
        assert isinstance(refused, p.Error) and refused.error_type is p.ErrorType.RATE_LIMITED
        assert refused.retry_after is not None and 59.95 - passed <= refused.retry_after <= 60, (
            refused.retry_after,
            passed,
        )  # (retry_after is given to a tenth of a second)
        said = re.fullmatch(r"Too many failed attempts; try again in (\d+) s\.", refused.description)
        assert said and abs(int(said[1]) - refused.retry_after) <= 1, refused.description
        # Another badge does not help for the same user ...
        other_token = login(c, accounts, accounts.password, token="tok-other")
        assert isinstance(other_token, p.Error) and other_token.error_type is p.ErrorType.RATE_LIMITED
        # ... not even when PAM asks for the name (checked once PAM has named the user).
        unnamed = c.login(
            p.CreateSession(token="tok-third", token_kind="badge"),
            answer_with(accounts.user, accounts.password),
        )
        assert isinstance(unnamed, p.Error) and unnamed.error_type is p.ErrorType.RATE_LIMITED
        # The blocked badge is blocked for other users too.
        name = accounts.add_user(f"{accounts.user}r", accounts.password)
        blocked_token = login(c, accounts, accounts.password, token="tok-r", user=name)
        assert isinstance(blocked_token, p.Error) and blocked_token.error_type is p.ErrorType.RATE_LIMITED
        # A different user with a fresh badge is not affected.
        assert isinstance(login(c, accounts, accounts.password, token="tok-fresh", user=name), p.Success)
        c.request(p.CancelSession())


# --- session lifetime ------------------------------------------------------------------------------


def test_kill_ends_the_whole_tree_and_closes_the_pam_session(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    settings = sandbox.settings()
    # The compositor double-forks a process that escapes it (setsid) and ignores SIGTERM.
    compositor = [*settings["user_session"]["compositor"], "--stubborn"]
    daemon = start_daemon(user_session={"compositor": compositor})
    with daemon.client() as c, daemon.client() as events:
        assert isinstance(events.request(p.Subscribe()), p.SessionList)
        info = start_user_session(c, accounts)
        comp = sandbox.report(info.session_id, "compositor")
        escaped = comp["escaped_pid"]
        assert escaped in user_pids(accounts.uid)
        assert comp["sid"] != _sid(escaped)  # it left the session's process session
        assert len(user_pids(accounts.uid)) >= 4  # compositor, escaped daemon, wm, panel
        c.kill_session(info.session_id, p.EndReason.LOGOUT)
        started = events.events(timeout=30)
        ended = events.events(timeout=30)
        assert isinstance(started, p.SessionEvent) and started.event is p.SessionEventKind.STARTED
        assert isinstance(ended, p.SessionEvent) and ended.event is p.SessionEventKind.ENDED
        assert ended.reason is p.EndReason.LOGOUT and ended.session.session_id == info.session_id
    assert user_pids(accounts.uid) == []
    assert sandbox.pam_events()[-1].startswith(f"close_session {sandbox.service} {accounts.user}")
    assert list((sandbox.state / "sessions").glob("*.json")) == []


def _sid(pid: int) -> int:
    return os.getsid(pid)


def test_the_session_ends_when_its_compositor_exits(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    daemon = start_daemon()
    with daemon.client() as c, daemon.client() as events:
        events.request(p.Subscribe())
        info = start_user_session(c, accounts)
        events.events(timeout=30)  # started
        os.kill(info.compositor_pid, 15)
        ended = events.events(timeout=30)
        assert isinstance(ended, p.SessionEvent) and ended.reason is p.EndReason.COMPOSITOR_EXITED
        assert c.list_sessions() == ()
    assert user_pids(accounts.uid) == []
    assert sandbox.pam_events()[-1].startswith("close_session")


def test_sessions_survive_a_wrsessd_restart_and_are_re_adopted(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    daemon = start_daemon()
    with daemon.client() as c:
        info = start_user_session(c, accounts)
        greeter = c.call(p.CreateGreeterSession(token="tok-g", token_kind="badge"))
        assert isinstance(greeter, p.SessionStarted)
    sandbox.report(greeter.session.session_id, "compositor")
    before = sorted(user_pids(accounts.uid))
    assert daemon.stop() == 0
    assert sorted(user_pids(accounts.uid)) == before  # nothing of the session died with the daemon
    record = json.loads((sandbox.state / "sessions" / f"{info.session_id}.json").read_text())
    assert record["info"]["worker_pid"] == info.worker_pid
    assert mode_of(sandbox.state) == 0o700 and mode_of(sandbox.state / "sessions") == 0o700

    daemon.start()
    with daemon.client() as c:
        by_class = {s.session_class: s for s in c.list_sessions()}
        again, g = by_class[p.SessionClass.USER], by_class[p.SessionClass.GREETER]
        assert again.adopted and again.session_id == info.session_id and again.user == accounts.user
        assert g.adopted and g.session_id == greeter.session.session_id
        # The greeter that was waiting still logs in with its ticket, now through the new daemon.
        sandbox.write_greeter_script(json.dumps({"username": accounts.user, "answers": [accounts.password]}))
        transcript = sandbox.report(g.session_id, "greeter")
        assert transcript["start"]["type"] == "session_started"
        for s in c.list_sessions():
            c.kill_session(s.session_id)
        assert c.list_sessions() == ()
    assert user_pids(accounts.uid) == []
    assert sandbox.pam_events()[-1].startswith(f"close_session {sandbox.service} {accounts.user}")


def test_max_sessions_per_user(start_daemon: StartDaemon, accounts: Accounts) -> None:
    daemon = start_daemon(max_sessions_per_user=1)
    with daemon.client() as c:
        first = start_user_session(c, accounts)
        assert isinstance(login(c, accounts, accounts.password, token="tok-b"), p.Success)
        refused = c.request(p.StartSession())
        assert isinstance(refused, p.Error) and refused.error_type is p.ErrorType.LIMIT
        assert f"{accounts.user} already has 1 session (the limit is 1)" in refused.description
        assert [s.session_id for s in c.list_sessions()] == [first.session_id]


def test_session_toml_and_the_users_own_file_read_as_the_user(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """session.toml's programs start after the launcher's components, with its environment; the
    user's own session.toml, read with the user's rights, overrides it key by key."""
    pw = pwd.getpwnam(accounts.user)
    config = Path(pw.pw_dir, ".config", "wayray")
    config.mkdir(parents=True, exist_ok=True)
    py = "/usr/bin/python3"
    component = str(Path(__file__).parent / "standins" / "fake_component.py")

    def command(what: str) -> str:
        return f'["{py}", "{component}", "--report", "{sandbox.reports}/{{session_id}}-{what}.json"]'

    sandbox.write_session_toml(
        f"[session]\nlauncher = {command('launcher')}\nnotifications = {command('notifications')}\n"
        f'environment = {{ FROM_SYSTEM = "1", SHARED = "system", HOME = "/evil" }}\n'
    )
    (config / "session.toml").write_text(
        f'[session]\nnotifications = ""\nautostart = [{command("auto")}]\n'
        'environment = { SHARED = "user" }\nno_such_key = 1\n'
    )
    subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(Path(pw.pw_dir, ".config"))], check=True)
    daemon = start_daemon()
    try:
        with daemon.client() as c:
            info = start_user_session(c, accounts)
            auto = sandbox.report(info.session_id, "auto")
            assert auto["uid"] == pw.pw_uid  # the user's autostart ran, as the user
            launcher = sandbox.report(info.session_id, "launcher")  # the system's launcher still runs
            assert launcher["env"]["FROM_SYSTEM"] == "1" and launcher["env"]["SHARED"] == "user"
            assert launcher["env"]["HOME"] == pw.pw_dir  # a name the launcher owns is not overridden
            sandbox.report(info.session_id, "wm")  # the settings' components come first, unchanged
            assert not (sandbox.reports / f"{info.session_id}-notifications.json").exists()  # disabled
            c.kill_session(info.session_id)
            log = daemon.log()
            assert "session.toml:5:1: error: session: unknown key 'no_such_key'" in log

            # A session file that is a link to a root-only file is read with the user's rights: it
            # cannot be read, so the system defaults apply (and nothing of it reaches the logs).
            (config / "session.toml").unlink()
            (config / "session.toml").symlink_to("/etc/shadow")
            # session.toml is read for every session: a change needs no restart of wrsessd.
            sandbox.write_session_toml(f"[session]\nnotifications = {command('notifications')}\n"
                                       f"autostart = [{command('added')}]\n")  # fmt: skip
            info = start_user_session(c, accounts)
            sandbox.report(info.session_id, "notifications")
            sandbox.report(info.session_id, "added")
            c.kill_session(info.session_id)

            # A FIFO nobody writes to (the user's own doing) neither hangs the login nor is waited on.
            (config / "session.toml").unlink()
            os.mkfifo(config / "session.toml", 0o600)
            os.chown(config / "session.toml", pw.pw_uid, pw.pw_gid)
            info = start_user_session(c, accounts)
            sandbox.report(info.session_id, "added")  # the system's session.toml applies
            c.kill_session(info.session_id)
            assert "ignoring" in daemon.log() and "not a regular file" in daemon.log()
        assert "Permission denied" in daemon.log()
        assert "root:" not in daemon.log()
    finally:
        subprocess.run(["rm", "-rf", str(Path(pw.pw_dir, ".config"))], check=True)


# --- greeter sessions ------------------------------------------------------------------------------


def test_greeter_session_logs_a_user_in_with_its_ticket(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    daemon = start_daemon(greeter_linger_s=1.0)
    with daemon.client() as c, daemon.client() as events:
        events.request(p.Subscribe())
        greeter = c.request(p.CreateGreeterSession(token="tok-g", token_kind="terminal", rhost="kiosk-2"))
        assert isinstance(greeter, p.SessionStarted), greeter
        g = greeter.session
        assert g.session_class is p.SessionClass.GREETER
        assert (g.user, g.uid) == (accounts.greeter, accounts.greeter_uid) and g.uid != 0
        comp = sandbox.report(g.session_id, "compositor")
        assert comp["uid"] == accounts.greeter_uid and comp["env"]["XDG_SESSION_CLASS"] == "greeter"
        assert "WAYRAY_LOGIN_TICKET" not in comp["env"]  # only the greeter gets the ticket

        sandbox.write_greeter_script(
            json.dumps(
                {
                    "answers": [accounts.user, accounts.password],
                    "reuse_ticket": 1,
                    "parallel_ticket": 1,
                    "start_env": ["XDG_CONFIG_HOME=/tmp/greeter-owned"],
                }
            )
        )
        transcript = sandbox.report(g.session_id, "greeter")
        assert transcript["identity"]["uid"] == accounts.greeter_uid
        assert transcript["identity"]["env"]["WAYRAY_SESSD_SOCK"] == str(sandbox.socket)
        assert "WAYRAY_UNLOCK_USER" not in transcript["identity"]["env"]  # not an unlock greeter
        assert transcript["messages"] == [
            ["info", "Welcome to WayRay (test)"],
            ["visible", "login:"],
            ["secret", "Password: "],
        ]
        assert transcript["login"] == {"type": "success"}
        # The greeter cannot pick the environment (XDG_CONFIG_HOME, PATH …) of the user's session.
        assert transcript["start_env"]["error_type"] == "forbidden", transcript["start_env"]
        user_session = transcript["start"]["session"]
        assert user_session["user"] == accounts.user and user_session["replaces"] == g.session_id
        # The token and kiosk come from the greeter's ticket, not from the greeter.
        assert (user_session["token"], user_session["rhost"]) == ("tok-g", "kiosk-2")
        # A ticket logs in once, and one login at a time: parallel logins would let a greeter try
        # many passwords before the rate limit sees the first failure.
        assert transcript["reuse"]["error_type"] == "forbidden"
        assert transcript["parallel"]["type"] == "error", transcript["parallel"]
        assert "already in progress" in transcript["parallel"]["description"]

        kinds = [(e.event, e.session.session_class, e.reason) for e in (events.events(30) for _ in range(3))]  # type: ignore[attr-defined]
        assert kinds == [
            (p.SessionEventKind.STARTED, p.SessionClass.GREETER, None),
            (p.SessionEventKind.STARTED, p.SessionClass.USER, None),
            (
                p.SessionEventKind.ENDED,
                p.SessionClass.GREETER,
                p.EndReason.REPLACED,
            ),  # after greeter_linger_s
        ]
        assert [s.session_class for s in c.list_sessions()] == [p.SessionClass.USER]
    assert user_pids(accounts.greeter_uid) == []
    events_log = sandbox.pam_events()
    assert f"open_session {sandbox.greeter_service} {accounts.greeter} rhost=kiosk-2" in events_log
    assert f"close_session {sandbox.greeter_service} {accounts.greeter} rhost=kiosk-2" in events_log


def test_session_env_of_a_greeter_reaches_the_user_session_it_starts_and_never_the_greeter(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """wrsrvd hands the link details of the user's compositor to the greeter session; the login
    through that greeter starts the user's session with them (also after a wrsessd restart), and the
    greeter never sees them, nor can it override them."""
    daemon = start_daemon()
    secret_entry = "WAYRAY_LINK_SECRET=user-compositor-secret"
    with daemon.client() as c:
        refused = c.request(
            p.CreateGreeterSession(token="tok-g", token_kind="badge", session_env=("HOME=/tmp",))
        )
        assert (
            isinstance(refused, p.Error) and "session_env: environment variable HOME" in refused.description
        )
        greeter = c.call(
            p.CreateGreeterSession(
                token="tok-g", token_kind="badge", env=("WAYRAY_LINK_SECRET=greeter-secret",),
                session_env=(secret_entry, "WAYRAY_LINK_SESSION=reg-1"),
            )
        )  # fmt: skip
        assert isinstance(greeter, p.SessionStarted)
    g = greeter.session.session_id
    comp = sandbox.report(g, "compositor")
    # The secret reaches the compositor alone, through a pipe: never an environment (/proc shows it).
    assert comp["link_secret"] == "greeter-secret" and "WAYRAY_LINK_SECRET" not in comp["env"]
    assert "reg-1" not in json.dumps(comp) and "user-compositor-secret" not in json.dumps(comp)
    record = (sandbox.state / "sessions" / f"{g}.json").read_text()
    assert secret_entry in record  # kept (root-only) for a restart
    assert daemon.stop() == 0
    daemon.start()
    sandbox.write_greeter_script(json.dumps({"username": accounts.user, "answers": [accounts.password]}))
    transcript = sandbox.report(g, "greeter")
    assert "user-compositor-secret" not in json.dumps(transcript["identity"])
    assert "greeter-secret" not in json.dumps(transcript["identity"])  # nor its compositor's
    user = transcript["start"]["session"]["session_id"]
    comp = sandbox.report(user, "compositor")
    assert comp["link_secret"] == "user-compositor-secret" and comp["env"]["WAYRAY_LINK_SESSION"] == "reg-1"
    assert "user-compositor-secret" not in json.dumps(comp["env"])
    assert "user-compositor-secret" not in (sandbox.state / "sessions" / f"{g}.json").read_text()

    # The asking server's policy limits the user's sessions through its greeters.
    with daemon.client() as c:
        second = c.call(p.CreateGreeterSession(token="tok-h", token_kind="badge", max_user_sessions=1))
        assert isinstance(second, p.SessionStarted)
        sandbox.write_greeter_script(json.dumps({"username": accounts.user, "answers": [accounts.password]}))
        transcript = sandbox.report(second.session.session_id, "greeter")
        assert transcript["start"]["error_type"] == "limit"
        assert "already has 1 session (the limit is 1)" in transcript["start"]["description"]
        for s in c.list_sessions():
            c.kill_session(s.session_id)


def test_unlock_greeter_re_authenticates_the_sessions_owner(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    daemon = start_daemon()
    with daemon.client() as c:
        info = start_user_session(c, accounts)
        other = accounts.add_user(f"{accounts.user}o", accounts.password)

        # Someone else's correct password does not unlock the session.
        greeter = c.request(
            p.CreateGreeterSession(token="tok-a", token_kind="badge", unlock_session=info.session_id)
        )
        assert isinstance(greeter, p.SessionStarted) and greeter.session.unlock_session == info.session_id
        sandbox.write_greeter_script(json.dumps({"username": other, "answers": [accounts.password]}))
        transcript = sandbox.report(greeter.session.session_id, "greeter")
        assert transcript["login"]["error_type"] == "bad_request"
        assert f"log in as {accounts.user}" in transcript["login"]["description"]
        c.kill_session(greeter.session.session_id)

        # The owner's password does, and nothing new starts.
        sandbox.greeter_script.unlink()
        greeter = c.request(
            p.CreateGreeterSession(token="tok-a", token_kind="badge", unlock_session=info.session_id)
        )
        assert isinstance(greeter, p.SessionStarted)
        sandbox.write_greeter_script(json.dumps({"answers": [accounts.password]}))
        transcript = sandbox.report(greeter.session.session_id, "greeter")
        assert transcript["messages"][-1] == [
            "secret",
            "Password: ",
        ]  # no "login:" prompt: the name is fixed
        assert transcript["identity"]["env"]["WAYRAY_UNLOCK_USER"] == accounts.user  # whose session
        assert transcript["start"]["resumed"] is True
        assert transcript["start"]["session"]["session_id"] == info.session_id
        # The used ticket is forgotten on disk too: a restarted wrsessd will not accept it again.
        record = json.loads((sandbox.state / "sessions" / f"{greeter.session.session_id}.json").read_text())
        assert record["ticket_sha256"] is None
        users = [s for s in c.list_sessions() if s.session_class is p.SessionClass.USER]
        assert [s.session_id for s in users] == [info.session_id]
    opened = [e for e in sandbox.pam_events() if e.startswith(f"open_session {sandbox.service} ")]
    assert len(opened) == 1  # the unlock opened no second PAM session


# --- the IPC itself --------------------------------------------------------------------------------


def _raw(body: str) -> bytes:
    """A frame holding ``body`` as it is (JSON that p.encode would never write)."""
    data = body.encode()
    return struct.pack("=I", len(data)) + data


@pytest.mark.parametrize(
    ("raw", "expect"),
    [
        (struct.pack("=I", 10_000_000), "exceeds"),
        (struct.pack("=I", 5) + b"{nope", "not valid JSON"),
        (struct.pack("=I", 2) + b"[]", "not a JSON object"),
        (struct.pack("=I", 60_000) + b"[" * 60_000, "nested too deeply"),
        (p.encode({"type": "launch_missiles"}), "unknown request type"),
        (p.encode({"type": "create_session", "username": 42}), "must be a string"),
        (
            p.encode({"type": "create_session", "username": "a\nb", "token": "t", "token_kind": "badge"}),
            "match",
        ),
        (p.encode({"type": "kill_session", "session_id": "x", "extra": 1}), "unknown field"),
        (p.encode({"type": "success"}), "unknown request type"),
        (_raw('{"type":"kill_session","session_id":"x","reason":' + "9" * 5000 + "}"), "5000 digits"),
    ],
)
def test_malformed_requests_close_only_their_connection(
    start_daemon: StartDaemon, accounts: Accounts, raw: bytes, expect: str
) -> None:
    daemon = start_daemon()
    with daemon.client() as bystander, daemon.client() as bad:
        # A login in progress on another connection is not disturbed.
        first = bystander.request(p.CreateSession(username=accounts.user, token="tok-a", token_kind="badge"))
        assert isinstance(first, p.AuthMessage)
        bad.send_raw(raw)
        reply = bad.recv()
        assert isinstance(reply, p.Error) and reply.error_type is p.ErrorType.BAD_REQUEST
        assert expect in reply.description
        assert bad._chan.recv(timeout=10) is None  # then the daemon closes that connection
        second = bystander.request(p.PostAuthMessageResponse())
        assert isinstance(second, p.AuthMessage) and second.auth_message_type is p.AuthMessageType.SECRET
        assert isinstance(
            bystander.request(p.PostAuthMessageResponse(response=accounts.password)), p.Success
        )
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_a_pam_answer_that_is_not_unicode_text_is_refused_and_the_daemon_carries_on(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    """JSON can escape half of a surrogate pair ("\\ud800"): a string no UTF-8 can hold, which PAM
    could never be given. It is a bad request, not an internal error with a traceback."""
    daemon = start_daemon()
    with daemon.client() as c:
        info = c.request(p.CreateSession(username=accounts.user, token="tok-s", token_kind="badge"))
        assert isinstance(info, p.AuthMessage) and info.auth_message_type is p.AuthMessageType.INFO
        prompt = c.request(p.PostAuthMessageResponse())
        assert isinstance(prompt, p.AuthMessage) and prompt.auth_message_type is p.AuthMessageType.SECRET
        c.send_raw(_raw('{"type":"post_auth_message_response","response":"pw\\ud800"}'))
        reply = c.recv()
        assert isinstance(reply, p.Error) and reply.error_type is p.ErrorType.BAD_REQUEST, reply
        assert "lone surrogate" in reply.description, reply
    with daemon.client() as c:  # the next login is served as ever
        assert isinstance(c.request(p.CreateSession(username=accounts.user, token="t2", token_kind="badge")),
                          p.AuthMessage)  # fmt: skip
    log = daemon.log()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]


def test_out_of_order_requests_get_an_error_and_the_connection_stays(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    daemon = start_daemon()
    with daemon.client() as c:
        for request in (p.PostAuthMessageResponse(response="x"), p.StartSession()):
            reply = c.request(request)
            assert isinstance(reply, p.Error) and reply.error_type is p.ErrorType.BAD_REQUEST
        assert isinstance(c.request(p.CancelSession()), p.Success)
        prompt = c.request(p.CreateSession(username=accounts.user, token="t", token_kind="badge"))
        assert isinstance(prompt, p.AuthMessage) and prompt.auth_message_type is p.AuthMessageType.INFO
        again = c.request(p.CreateSession(username=accounts.user, token="t", token_kind="badge"))
        assert isinstance(again, p.Error) and "already in progress" in again.description
        assert isinstance(c.request(p.PostAuthMessageResponse()), p.AuthMessage)  # the secret prompt
        no_answer = c.request(p.PostAuthMessageResponse())
        assert isinstance(no_answer, p.Error) and "needs a string response" in no_answer.description
        bad_env = c.request(p.KillSession(session_id="nope"))
        assert isinstance(bad_env, p.Error) and bad_env.error_type is p.ErrorType.NOT_FOUND
        assert isinstance(c.request(p.PostAuthMessageResponse(response=accounts.password)), p.Success)
        reserved = c.request(p.StartSession(env=["LD_PRELOAD=/tmp/x.so"]))
        assert isinstance(reserved, p.Error) and "LD_PRELOAD" in reserved.description
        custom = c.request(p.StartSession(cmd=["/bin/sh"]))
        assert isinstance(custom, p.Error) and custom.error_type is p.ErrorType.FORBIDDEN


def test_a_client_vanishing_mid_login_leaves_no_worker(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    daemon = start_daemon()
    c = daemon.client()
    assert isinstance(
        c.request(p.CreateSession(username=accounts.user, token="t", token_kind="badge")), p.AuthMessage
    )
    c.close()
    assert daemon.proc is not None

    def workers() -> list[int]:
        out = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if Path(entry.path, "comm").read_text().startswith("wrsessd-u-") and (
                        int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
                        == daemon.proc.pid  # type: ignore[union-attr]
                    ):
                        out.append(int(entry.name))
                except OSError:
                    pass
        return out

    wait_for(lambda: workers() == [], what="the abandoned login's worker to exit")
    with daemon.client() as c2:
        assert isinstance(login(c2, accounts, accounts.password), p.Success)


def test_socket_permissions_and_roles(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    daemon = start_daemon()
    st = sandbox.socket.lstat()
    assert stat.S_ISSOCK(st.st_mode) and mode_of(sandbox.socket) == 0o660
    assert (st.st_uid, st.st_gid) == (0, grp.getgrnam(accounts.group).gr_gid)

    def try_connect() -> str:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(sandbox.socket))
        except PermissionError:
            return "EACCES"
        s.close()
        with LauncherClient(sandbox.socket, timeout=10) as c:
            results = [c.request(p.ListSessions()).to_json()]
            results.append(
                c.request(p.CreateSession(username="root", token="t", token_kind="badge")).to_json()
            )
        return json.dumps(results)

    def refused_at_once() -> str:
        # wrsessd answers a stranger before any request and closes: read without sending anything.
        with LauncherClient(sandbox.socket, timeout=10) as c:
            first = c.recv().to_json()
            try:
                c.recv()
                return json.dumps([first, "still open"])
            except LauncherError as err:
                return json.dumps([first, str(err)])

    pw = pwd.getpwnam(accounts.user)
    # An ordinary user is not in the socket's group: the kernel refuses the connection.
    assert as_user(pw.pw_uid, pw.pw_gid, [pw.pw_gid], try_connect) == {"ok": "EACCES"}
    # In the group but neither root, a control user nor the greeter user: refused by wrsessd.
    sock_gid = grp.getgrnam(accounts.group).gr_gid
    refused = json.loads(as_user(pw.pw_uid, pw.pw_gid, [pw.pw_gid, sock_gid], refused_at_once)["ok"])
    assert refused[0]["error_type"] == "forbidden"
    assert refused[0]["description"] == f"uid {pw.pw_uid} may not use the session launcher"
    assert refused[1] == "wrsessd closed the connection"
    # The greeter user may not list sessions, nor log in without a ticket.
    g = pwd.getpwnam(accounts.greeter)
    greeter = json.loads(as_user(g.pw_uid, g.pw_gid, [g.pw_gid, sock_gid], try_connect)["ok"])
    assert greeter[0]["error_type"] == "forbidden"
    assert greeter[1]["error_type"] == "bad_request" and "ticket" in greeter[1]["description"]
    del daemon


def test_socket_activation_and_readiness(sandbox: Sandbox, accounts: Accounts) -> None:
    """Started the way systemd starts it: the socket on fd 3, LISTEN_PID/LISTEN_FDS, NOTIFY_SOCKET."""
    sandbox.write_settings(sandbox.settings(socket=str(sandbox.base / "unused.sock")))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sandbox.socket))
    listener.listen(8)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = sandbox.base / "notify.sock"
    notify.bind(str(notify_path))
    notify.settimeout(60)
    fd = listener.fileno()
    log = open(sandbox.base / "activated.log", "w")  # noqa: SIM115
    # Like systemd: the socket on fd 3 and LISTEN_PID naming the daemon's own pid (kept across exec).
    trampoline = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_PID'] = str(os.getpid()); "
        "os.environ['LISTEN_FDS'] = '1'; os.execv(sys.argv[2], sys.argv[2:])"
    )
    wrsessd = script("wrsessd")
    proc = subprocess.Popen(
        [sys.executable, "-c", trampoline, str(fd), wrsessd, "--settings", str(sandbox.settings_file)],
        pass_fds=(fd,),
        env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
        stdout=log,
        stderr=log,
    )
    try:
        messages = []
        while not any("READY=1" in m for m in messages):
            messages.append(notify.recv(4096).decode())
        assert any(m.startswith("STATUS=serving 0 user") for m in messages + [notify.recv(4096).decode()])
        listener.close()  # the daemon holds its own copy
        with LauncherClient(sandbox.socket, timeout=30) as c:
            assert c.list_sessions() == ()
        assert not (sandbox.base / "unused.sock").exists()
        proc.terminate()
        assert proc.wait(30) == 0
        assert "STOPPING=1" in notify.recv(4096).decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        notify.close()


def test_cli_check_and_errors(sandbox: Sandbox) -> None:
    from tests.conftest import script

    check = [script("wrsessd"), "--settings", str(sandbox.settings_file), "--check"]
    sandbox.write_settings(sandbox.settings())
    ok = subprocess.run(check, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    sandbox.settings_file.write_text('pam_servic = "x"\n')
    bad = subprocess.run(check, capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"{sandbox.settings_file}: unknown setting 'pam_servic'" in bad.stderr
    assert "hint: known:" in bad.stderr and "pam_service" in bad.stderr
    usage = subprocess.run([script("wrsessd"), "--bogus"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_cli_reads_host_and_session_toml_and_names_their_problems(tmp_path: Path) -> None:
    """Without --settings wrsessd takes everything from the configuration; a problem in host.toml or
    session.toml keeps it from starting (file:line:col), one in another file does not."""
    from tests.conftest import script

    etc = tmp_path / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "servers.toml").write_text('[server.x]\nport = "not a port"\n')  # not wrsessd's business
    check = [script("wrsessd"), "--root", str(tmp_path), "--check"]
    ok = subprocess.run(check, capture_output=True, text=True)
    assert ok.returncode == 0 and "settings are usable" in ok.stdout, ok.stderr
    (etc / "host.toml").write_text('[host]\ngreeter_user = "Greeter User"\n')
    bad = subprocess.run(check, capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"{etc}/host.toml:2:16: error: host.greeter_user" in bad.stderr
    (etc / "host.toml").write_text('[host]\ngreeter_user = "root"\n')
    root = subprocess.run(check, capture_output=True, text=True)
    assert root.returncode == 1 and "greeter_user must be an unprivileged account" in root.stderr


@pytest.mark.parametrize(
    ("compositor", "expect"),
    [
        (
            ["/nonexistent/compositor"],
            "cannot start the session compositor '/nonexistent/compositor': No such file",
        ),
        # How it ended is said (its output may have gone nowhere: a greeter's, without journald).
        (["/bin/false"], "the session compositor exited with status 1 before creating its Wayland socket"),
        (["/bin/sh", "-c", "kill -SEGV $$"], "the session compositor was killed by SIGSEGV before creating"),
    ],
)
def test_a_session_that_cannot_start_is_reported_and_cleaned_up(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox, compositor: list[str], expect: str
) -> None:
    daemon = start_daemon(user_session={"compositor": compositor})
    with daemon.client() as c:
        assert isinstance(login(c, accounts, accounts.password), p.Success)
        failed = c.request(p.StartSession())
        assert isinstance(failed, p.Error) and failed.error_type is p.ErrorType.ERROR
        assert expect in failed.description
        assert c.list_sessions() == ()
        # The connection is usable for the next attempt.
        assert isinstance(login(c, accounts, accounts.password), p.Success)
        c.request(p.CancelSession())
    assert [e.split()[0] for e in sandbox.pam_events()] == ["open_session", "close_session"]
    assert user_pids(accounts.uid) == []
    assert not (sandbox.runtime_base / str(accounts.uid)).exists()


def test_an_account_locked_by_failed_logins_is_refused_with_its_message(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """pam_faillock locks the account after two failures; its own notice reaches the greeter."""
    sandbox.install_faillock_pam(deny=2)
    # wrsessd's own rate limit out of the way, to see PAM's lock.
    daemon = start_daemon(rate_limit={"max_failures": 100})
    with daemon.client() as c:
        for _ in range(2):
            wrong = login(c, accounts, "wrong")
            assert isinstance(wrong, p.Error) and wrong.error_type is p.ErrorType.AUTH_ERROR
        seen: list[tuple[str, str]] = []
        locked = login(c, accounts, accounts.password, seen=seen)
        assert isinstance(locked, p.Error) and locked.error_type is p.ErrorType.AUTH_ERROR
        # pam_faillock (Linux-PAM 1.5.2) tells why as info messages before it asks for the password;
        # the greeter shows them as they come, and the final answer stays "Login incorrect".
        assert seen[1:3] == [
            ("info", "The account is locked due to 2 failed logins."),
            ("info", "(10 minutes left to unlock)"),
        ]
        assert locked.description.startswith("Login incorrect")
        assert c.list_sessions() == ()


def test_greeter_sessions_can_run_without_pam(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    daemon = start_daemon(greeter_pam_service="")
    with daemon.client() as c:
        greeter = c.call(p.CreateGreeterSession(token="tok-n", token_kind="terminal"))
        assert isinstance(greeter, p.SessionStarted) and greeter.session.uid == accounts.greeter_uid
        comp = sandbox.report(greeter.session.session_id, "compositor")
        assert comp["uid"] == accounts.greeter_uid and comp["env"]["XDG_SESSION_CLASS"] == "greeter"
        c.kill_session(greeter.session.session_id)
    assert sandbox.pam_events() == []  # no PAM session was opened or closed for it
    assert user_pids(accounts.greeter_uid) == []


def test_a_state_dir_others_could_change_is_refused(sandbox: Sandbox) -> None:
    shared = sandbox.base / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # not sticky: anyone could swap the record directory inside
    sandbox.write_settings(sandbox.settings(state_dir=str(shared / "state")))
    command = [script("wrsessd"), "--settings", str(sandbox.settings_file)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"wrsessd: error: {shared}: a directory above the session record directory may be changed by" in (
        result.stderr
    )
    assert "hint:" in result.stderr
    assert not sandbox.socket.exists()


def test_a_socket_directory_others_could_change_is_refused(sandbox: Sandbox, accounts: Accounts) -> None:
    """wrsessd sets its socket's owner and mode as root: in a directory a user owns, that user could
    swap the socket for a link to a file of their choice in between."""
    theirs = sandbox.base / "theirs"
    theirs.mkdir()
    os.chown(theirs, accounts.uid, -1)
    sandbox.write_settings(sandbox.settings(socket=str(theirs / "sessd.sock")))
    command = [script("wrsessd"), "--settings", str(sandbox.settings_file)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"wrsessd: error: {theirs}: a directory above the socket" in result.stderr
    assert f"(owner uid {accounts.uid}, mode 0755)" in result.stderr and "hint:" in result.stderr
    assert not (theirs / "sessd.sock").exists()


def test_custom_session_command_only_when_allowed(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    report = sandbox.reports / "custom-compositor.json"
    cmd = [
        "/usr/bin/python3",
        str(Path(__file__).parent / "standins" / "fake_compositor.py"),
        "--report",
        str(report),
    ]
    daemon = start_daemon(allow_custom_command=True)
    with daemon.client() as c:
        assert isinstance(login(c, accounts, accounts.password), p.Success)
        started = c.request(p.StartSession(cmd=cmd))
        assert isinstance(started, p.SessionStarted)
        wait_for(report.exists, what="the custom compositor's report")
        assert json.loads(report.read_text())["argv"] == cmd[1:]  # taken literally, and it ran
        c.kill_session(started.session.session_id)


def test_asyncio_client_for_wrsrvd(start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox) -> None:
    import asyncio

    from wayray.launcher.client import AsyncLauncherClient

    start_daemon()

    async def scenario() -> list[tuple[p.SessionEventKind, str]]:
        client = await AsyncLauncherClient.connect(sandbox.socket)
        snapshot, events = await client.subscribe()
        assert snapshot == ()
        control = await AsyncLauncherClient.connect(sandbox.socket)
        started = await control.request(p.CreateGreeterSession(token="tok-async", token_kind="terminal"))
        assert isinstance(started, p.SessionStarted)
        assert isinstance(
            await control.request(p.KillSession(session_id=started.session.session_id)), p.Success
        )
        seen = []
        async for event in events:
            seen.append((event.event, event.session.session_id))
            if len(seen) == 2:
                break
        await client.close()
        await control.close()
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [kind for kind, _ in seen] == [p.SessionEventKind.STARTED, p.SessionEventKind.ENDED]
    assert seen[0][1] == seen[1][1]
