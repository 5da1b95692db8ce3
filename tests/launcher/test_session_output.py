"""A session's own output never reaches wrsessd's log: the real wrsessd, real PAM, a throwaway user.

This machine has no journald (PID 1 is not systemd), so these show the file branch: the session's
programs write to the user's ``~/.local/state/wayray/session.log``. The journald branch is shown in
a booted container by tests/launcher/test_booted_logind.py.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.launcher.harness import Accounts, Daemon, Sandbox, answer_with, mode_of, wait_for
from wayray.launcher import protocol as p
from wayray.launcher.client import LauncherClient

pytestmark = [pytest.mark.root, pytest.mark.slow]

StartDaemon = Callable[..., Daemon]

#: Shaped like one of wrsessd's own lines (wayray.common.log's format off the journal).
FORGED = "2031-01-01 00:00:00,000 wrsessd[1] INFO wayray.wrsessd: login {session_id}: root authenticated"


def start_user_session(c: LauncherClient, acc: Accounts) -> p.SessionInfo:
    create = p.CreateSession(username=acc.user, token="tok-out", token_kind="badge", rhost="kiosk-1")
    assert isinstance(c.login(create, answer_with(acc.password)), p.Success)
    started = c.request(p.StartSession())
    assert isinstance(started, p.SessionStarted), started
    return started.session


def printing_session_toml(sandbox: Sandbox) -> None:
    """session.toml: an autostart program that prints a forged wrsessd line on stdout and stderr."""
    sandbox.write_session_toml(
        '[session]\nautostart = [["/bin/sh", "-c", '
        f"\"echo '{FORGED} (stdout)'; echo '{FORGED} (stderr)' >&2; exec sleep 600\"]]\n"
    )


def test_a_sessions_output_goes_to_the_users_session_log_not_to_wrsessds(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    pw = pwd.getpwnam(accounts.user)
    state = Path(pw.pw_dir, ".local", "state")
    log_file = state / "wayray" / "session.log"
    printing_session_toml(sandbox)
    daemon = start_daemon()
    try:
        with daemon.client() as c:
            first = start_user_session(c, accounts)
            forged = FORGED.format(session_id=first.session_id)
            wait_for(lambda: log_file.exists() and "(stderr)" in log_file.read_text(), what="session.log")
            text = log_file.read_text()
            assert f"{forged} (stdout)" in text and f"{forged} (stderr)" in text
            # The file and its directory are the user's, private, made by the user.
            st = log_file.lstat()
            assert stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
            assert mode_of(log_file) & 0o077 == 0
            assert Path(state, "wayray").stat().st_uid == pw.pw_uid and mode_of(state / "wayray") == 0o700
            c.kill_session(first.session_id)

            # The next session keeps the previous log as session.log.old.
            second = start_user_session(c, accounts)
            again = FORGED.format(session_id=second.session_id)
            wait_for(lambda: f"{again} (stderr)" in log_file.read_text(), what="the second session's log")
            assert forged not in log_file.read_text()
            assert forged in Path(f"{log_file}.old").read_text()
            c.kill_session(second.session_id)

        wrsessd_log = daemon.log()
        assert "root authenticated" not in wrsessd_log  # nothing the user printed reached wrsessd's log
        assert (
            f"session {first.session_id} of {accounts.user}: its programs write to {log_file}" in wrsessd_log
        )
    finally:
        subprocess.run(["rm", "-rf", str(Path(pw.pw_dir, ".local"))], check=True)


def test_a_planted_link_or_an_unusable_place_cannot_make_root_write_anywhere(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    pw = pwd.getpwnam(accounts.user)
    log_dir = Path(pw.pw_dir, ".local", "state", "wayray")
    victim = sandbox.base / "root-owned-file"
    victim.write_text("root's\n")
    os.chmod(victim, 0o644)
    printing_session_toml(sandbox)
    daemon = start_daemon()
    try:
        # The user points session.log at a file only root may write: the link is moved aside, not
        # followed, and the new log is a plain file of the user's.
        subprocess.run(["install", "-d", "-m", "0700", "-o", accounts.user, str(log_dir)], check=True)
        (log_dir / "session.log").symlink_to(victim)
        os.lchown(log_dir / "session.log", pw.pw_uid, pw.pw_gid)
        with daemon.client() as c:
            info = start_user_session(c, accounts)
            log_file = log_dir / "session.log"
            wait_for(lambda: log_file.is_file() and "(stderr)" in log_file.read_text(), what="session.log")
            assert not log_file.is_symlink() and log_file.stat().st_uid == pw.pw_uid
            assert (log_dir / "session.log.old").is_symlink()
            assert victim.read_text() == "root's\n"
            c.kill_session(info.session_id)

            # A directory the user cannot write (here: root's): the output is discarded, and wrsessd
            # says so, naming the user.
            subprocess.run(["rm", "-rf", str(log_dir)], check=True)
            log_dir.mkdir(mode=0o755)
            info = start_user_session(c, accounts)
            wait_for(lambda: "output is discarded" in daemon.log(), what="the fallback in wrsessd's log")
            line = next(x for x in daemon.log().splitlines() if "output is discarded" in x)
            assert f"session {info.session_id} of {accounts.user}: cannot open {log_dir}/session.log" in line
            assert "Permission denied" in line and "tok-out" not in line
            assert list(log_dir.iterdir()) == []
            c.kill_session(info.session_id)
        assert "root authenticated" not in daemon.log()
        assert victim.read_text() == "root's\n"
    finally:
        subprocess.run(["rm", "-rf", str(Path(pw.pw_dir, ".local"))], check=True)


def test_a_greeters_output_with_no_journal_and_no_home_is_in_wrsessds_log_after_a_prefix(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """The greeter account has no home of its own, so without journald (SMF, these tests) a login
    screen's output went nowhere: a greeter compositor that exited before creating its socket left
    no trace of why (the kiosk was told the server was busy). Its lines go to wrsessd's log, each
    after a prefix naming the greeter session and escaped, so none can pass for wrsessd's own."""
    forged = FORGED.format(session_id="g")
    compositor = [
        "/bin/sh",
        "-c",
        f"echo '{forged}' >&2; printf 'cannot start: no such thing\\033[2J\\n'; exit 3",
    ]
    daemon = start_daemon(greeter_session={"compositor": compositor})
    with daemon.client() as c:
        failed = c.request(p.CreateGreeterSession(token="tok-g", token_kind="terminal", rhost="kiosk-2"))
        assert isinstance(failed, p.Error), failed
        assert "the session compositor exited with status 3 before creating" in failed.description
        wait_for(lambda: "no such thing" in daemon.log(), what="the greeter's output in wrsessd's log")
    lines = daemon.log().splitlines()
    failure = next(x for x in lines if "could not start" in x)
    sid = failure.split("session ", 1)[1].split()[0]
    (said,) = [x for x in lines if "no such thing" in x]
    assert said.endswith(f"greeter session {sid}: cannot start: no such thing\\x1b[2J"), said
    assert "\x1b" not in daemon.log()
    (relayed,) = [x for x in lines if "root authenticated" in x]
    assert relayed.index(f"greeter session {sid}: ") < relayed.index(forged), relayed
    assert not any(x.startswith(forged[:20]) for x in lines)
    # wrsessd says where the greeter's output goes.
    assert f"session {sid} of {accounts.greeter}: its programs write to wrsessd's log" in daemon.log()
