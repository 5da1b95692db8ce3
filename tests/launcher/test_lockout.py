"""wrsessd's failed-login lockout against a real PAM stack (pam_unix, throwaway users): it cannot be
used to tell a right password from a wrong one, and it cannot be made to forget a block.

The harness' PAM service names the user itself when the login does not (pam_unix asks "login:").
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import pytest

from tests.launcher.harness import Accounts, Daemon, answer_with
from wayray.launcher import protocol as p
from wayray.launcher.client import LauncherClient

pytestmark = [pytest.mark.root, pytest.mark.slow]

StartDaemon = Callable[..., Daemon]


def named_login(c: LauncherClient, user: str, password: str, token: str) -> p.Message:
    create = p.CreateSession(username=user, token=token, token_kind="badge", rhost="kiosk-1")
    return c.login(create, answer_with(password))


def unnamed_login(c: LauncherClient, user: str, password: str, seen: list[tuple[str, str]]) -> p.Message:
    """A login that leaves the name to PAM's ``login:`` prompt, with a fresh token every time."""
    create = p.CreateSession(token=f"tok-{secrets.token_hex(4)}", token_kind="badge", rhost="kiosk-2")
    return c.login(create, answer_with(user, password, seen=seen))


def _without_seconds(answer: tuple[p.ErrorType, str]) -> tuple[p.ErrorType, str]:
    return answer[0], re.sub(r"\bin \d+ s\b", "in N s", answer[1])


def _seconds(answer: tuple[p.ErrorType, str]) -> int:
    found = re.search(r"\bin (\d+) s\b", answer[1])
    assert found, answer
    return int(found[1])


def block(c: LauncherClient, acc: Accounts) -> None:
    for _ in range(3):  # the harness' rate_limit: 3 failures, then 60 s
        result = named_login(c, acc.user, "wrong", token="tok-block")
        assert isinstance(result, p.Error) and result.error_type is p.ErrorType.AUTH_ERROR, result


def test_a_blocked_user_named_by_pam_is_refused_before_the_password_is_asked(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    """M4: once PAM has the name of a blocked user, the login ends there: the password is never asked,
    so the answer cannot depend on it (it used to be auth_error for a wrong password and
    rate_limited for the right one)."""
    daemon = start_daemon()
    with daemon.client() as c:
        block(c, accounts)
        answers = {}
        for password in ("wrong", accounts.password):
            seen: list[tuple[str, str]] = []
            result = unnamed_login(c, accounts.user, password, seen)
            assert isinstance(result, p.Error), result
            answers[password] = (result.error_type, result.description)
            # The name was asked; the password never was.
            assert [kind for kind, _ in seen if kind in ("visible", "secret")] == ["visible"], seen
        # The same answer, but for the seconds left, which count down between the two logins (on a
        # loaded machine a second may pass between them).
        assert _without_seconds(answers["wrong"]) == _without_seconds(answers[accounts.password])
        assert answers["wrong"][0] is p.ErrorType.RATE_LIMITED
        assert 0 < _seconds(answers[accounts.password]) <= _seconds(answers["wrong"]) <= 60, answers
        # A user who is not blocked is asked for the password as before and logs in.
        other = accounts.add_user(f"{accounts.user}m", accounts.password)
        seen = []
        assert isinstance(unnamed_login(c, other, accounts.password, seen), p.Success), seen
        assert [kind for kind, _ in seen if kind in ("visible", "secret")] == ["visible", "secret"]
        c.request(p.CancelSession())
    assert "refused before the password: rate limited" in daemon.log()


def test_a_block_is_not_forgotten_when_other_failures_fill_the_table(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    """L1: failures with made-up names past max_keys evict other failure-only keys, not the block."""
    daemon = start_daemon(rate_limit={"max_keys": 6})
    with daemon.client() as c:
        block(c, accounts)
        for _ in range(8):  # 16 keys (token and user of each), well past max_keys
            sprayed = named_login(
                c, f"nobody{secrets.token_hex(3)}", "wrong", token=f"tok-{secrets.token_hex(4)}"
            )
            assert isinstance(sprayed, p.Error) and sprayed.error_type is p.ErrorType.AUTH_ERROR
        still = named_login(c, accounts.user, accounts.password, token="tok-fresh")
        assert isinstance(still, p.Error) and still.error_type is p.ErrorType.RATE_LIMITED, still


def test_a_wrong_password_at_an_unlock_says_wrong_password(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    """The unlock screen's user name is fixed (the session's owner): "wrong user name or password"
    pointed at something the person cannot have got wrong."""
    daemon = start_daemon()
    with daemon.client() as c:
        assert isinstance(named_login(c, accounts.user, accounts.password, token="tok-u"), p.Success)
        started = c.request(p.StartSession())
        assert isinstance(started, p.SessionStarted), started
        unlock = p.CreateSession(
            token="tok-u", token_kind="badge", unlock_session=started.session.session_id
        )
        wrong = c.login(unlock, answer_with("not-it"))
        assert isinstance(wrong, p.Error) and wrong.error_type is p.ErrorType.AUTH_ERROR, wrong
        assert wrong.description == "Wrong password."
        # A login whose name was typed keeps saying which two things may be wrong.
        other = named_login(c, accounts.user, "not-it", token="tok-v")
        assert (
            isinstance(other, p.Error)
            and other.description == "Login incorrect: wrong user name or password."
        )
        c.kill_session(started.session.session_id)
