"""wrsessd closes connections that hold a slot and do nothing: an unfinished message after
``frame_timeout_s``, silence between requests after ``idle_timeout_s`` — but never a login whose
person takes their time over a prompt. The real wrsessd, real PAM, real uids (forked children that
became the greeter user)."""

from __future__ import annotations

import grp
import pwd
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.launcher.harness import Accounts, Daemon, Sandbox, answer_with, as_user, wait_for
from wayray.launcher import protocol as p

pytestmark = [pytest.mark.root, pytest.mark.slow]

StartDaemon = Callable[..., Daemon]
CAP = 3


def hold_then_connect(path: str, partial: int, silent: int) -> dict[str, object]:
    """As the greeter user: fill every slot with connections that send half a message (``partial``)
    or nothing at all (``silent``); wait until wrsessd has closed each of them; then ask again."""
    held = []
    for i in range(partial + silent):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        if i < partial:
            sock.sendall(struct.pack("=I", 100) + b'{"type"')
        held.append(sock)
    outcomes = []
    deadline = time.monotonic() + 20  # far beyond the daemon's timeouts: only a hang reaches it
    for sock in held:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
            outcomes.append(["closed", data.decode(errors="replace")])
        except TimeoutError:
            outcomes.append(["still open", ""])
        sock.close()
    fresh = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fresh.settimeout(30)
    fresh.connect(path)
    fresh.sendall(p.CancelSession().encode())
    decoder = p.FrameDecoder(p.MAX_MESSAGE_BYTES)
    answer: dict[str, object] = {}
    while not answer and (chunk := fresh.recv(65536)):
        if frames := decoder.feed(chunk):
            answer = frames[0]
    return {"outcomes": outcomes, "answer": answer}


def test_connections_that_hold_a_slot_without_a_whole_message_are_closed(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """L2: the greeter user filled all its slots with half-sent messages and idle connections and kept
    them for ever, so no kiosk's login screen could reach wrsessd."""
    daemon = start_daemon(max_connections_per_uid=CAP, frame_timeout_s=1.0, idle_timeout_s=2.0)
    greeter = accounts.greeter_uid
    gid = pwd.getpwuid(greeter).pw_gid
    groups = [grp.getgrnam(accounts.group).gr_gid]
    started = time.monotonic()
    result = as_user(greeter, gid, groups, lambda: hold_then_connect(str(sandbox.socket), 2, CAP - 2))["ok"]
    outcomes = result["outcomes"]
    assert [o[0] for o in outcomes] == ["closed"] * CAP, outcomes
    # A half-sent message is told why; a silent connection is just closed (nobody asked anything).
    for _, text in outcomes[:2]:
        assert "unfinished message" in text and "1 s" in text, text
    assert [text for _, text in outcomes[2:]] == [""] * (CAP - 2)
    assert result["answer"] == {"type": "success"}, result
    assert time.monotonic() - started < 60
    assert "nothing came for 2 s" in daemon.log()


def test_a_person_slow_to_answer_a_prompt_keeps_their_login(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    """While a login is in its conversation the connection is not idle, however long a person takes
    over the password (up to the login's own deadline); and half a message is no answer."""
    daemon = start_daemon(frame_timeout_s=1.0, idle_timeout_s=1.0)
    with daemon.client() as c:
        create = p.CreateSession(username=accounts.user, token="tok-slow", token_kind="badge")
        msg = c.request(create)
        while isinstance(msg, p.AuthMessage) and not msg.auth_message_type.is_prompt:
            msg = c.request(p.PostAuthMessageResponse())
        assert isinstance(msg, p.AuthMessage) and msg.auth_message_type is p.AuthMessageType.SECRET
        time.sleep(3.0)  # three idle timeouts: a person typing slowly
        answer = c.request(p.PostAuthMessageResponse(response=accounts.password))
        assert isinstance(answer, p.Success), answer
        c.request(p.CancelSession())
    # The daemon is fine and serves the next one.
    with daemon.client() as c:
        assert c.list_sessions() == ()
    wait_for(lambda: "authenticated" in daemon.log(), what="the login in the log")


def sleepers(seconds: int) -> list[int]:
    """Processes running ``sleep SECONDS`` (a PAM module's hang, with a duration no one else uses)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"/bin/sleep", str(seconds).encode()]:
                found.append(int(entry.name))
    return found


def stuck_stack(sandbox: Sandbox, *, auth: str = "", session: str = "") -> None:
    """The user PAM service with a module that never returns where asked."""
    (Path("/etc/pam.d") / sandbox.service).write_text(
        "# installed by a WayRay test; removed when it ends\n"
        "auth     optional pam_echo.so Welcome to WayRay (test)\n"
        f"{auth}"
        "auth     required pam_unix.so nodelay\n"
        "account  required pam_unix.so\n"
        f"{session}"
        "session  required pam_unix.so\n"
    )


def test_a_login_stuck_inside_pam_fails_with_a_reason_and_its_worker_is_killed(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """A PAM module that never returns (here pam_exec running a long sleep, as a directory server that
    does not answer would) used to hold the login until login_timeout_s and leave its worker behind."""
    stuck_stack(sandbox, auth="auth     required pam_exec.so /bin/sleep 3607\n")
    daemon = start_daemon(pam_timeout_s=2.0)
    with daemon.client() as c:
        create = p.CreateSession(username=accounts.user, token="tok-stuck", token_kind="badge")
        started = time.monotonic()
        result = c.login(create, answer_with(accounts.password))
        assert isinstance(result, p.Error) and result.error_type is p.ErrorType.ERROR, result
        assert "did not answer in 2 s" in result.description, result
        assert time.monotonic() - started < 60
    wait_for(lambda: sleepers(3607) == [], what="the stuck module's process to be gone")
    assert "did not answer in 2 s; a module is stuck? Killing its worker" in daemon.log()


def test_a_start_stuck_inside_pam_open_session_does_not_leave_its_worker_behind(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """wrsessd gives up on a start after compositor_start_timeout_s + stop_timeout_s + 30 and sends
    SIGTERM, which a worker inside pam_open_session cannot act on: it is killed after the teardown's
    grace, instead of lingering for ever."""
    stuck_stack(sandbox, session="session  required pam_exec.so type=open_session /bin/sleep 3613\n")
    daemon = start_daemon(compositor_start_timeout_s=1.0, stop_timeout_s=1.0)
    with daemon.client(timeout=120) as c:
        create = p.CreateSession(username=accounts.user, token="tok-stuck2", token_kind="badge")
        assert isinstance(c.login(create, answer_with(accounts.password)), p.Success)
        started = c.request(p.StartSession())
        assert isinstance(started, p.Error) and "did not start in 32 s" in started.description, started
    wait_for(lambda: sleepers(3613) == [], timeout=60, what="the stuck worker and its module to be killed")
    assert "did not stop 16 s after SIGTERM; stuck in a PAM call? Killing it" in daemon.log()
    with daemon.client() as c:
        assert c.list_sessions() == ()
