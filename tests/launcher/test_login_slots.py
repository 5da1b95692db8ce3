"""wrsessd's login slots (``max_pending_logins``): a login holds one from ``create_session`` until it
is over, and gives it back however it ends — cancelled, refused by PAM, abandoned by its client, timed
out, started — and a greeter session holds one while it starts; so the limit never creeps down until
nobody can log in. The real wrsessd, real PAM (pam_unix), a throwaway user."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from tests.launcher.harness import Accounts, Daemon, wait_for
from wayray.launcher import protocol as p
from wayray.launcher.client import LauncherClient

pytestmark = [pytest.mark.root, pytest.mark.slow]

StartDaemon = Callable[..., Daemon]
_tokens = itertools.count()


def begin(c: LauncherClient, accounts: Accounts) -> p.Message:
    """Start a login (its first PAM message is pam_echo's notice: the login then waits on the client)."""
    return c.request(
        p.CreateSession(username=accounts.user, token=f"tok-{next(_tokens)}", token_kind="badge")
    )


def refused_for_the_limit(daemon: Daemon, accounts: Accounts) -> bool:
    with daemon.client() as c:
        answer = begin(c, accounts)
        if isinstance(answer, p.AuthMessage):
            c.request(p.CancelSession())
            return False
        assert isinstance(answer, p.Error) and answer.error_type is p.ErrorType.LIMIT, answer
        assert "too many logins in progress" in answer.description
        return True


def holder(daemon: Daemon, accounts: Accounts) -> LauncherClient:
    """A client whose login holds a slot (waits until one is free)."""

    def admitted() -> LauncherClient | None:
        c = daemon.client()
        answer = begin(c, accounts)
        if isinstance(answer, p.AuthMessage):
            return c
        assert isinstance(answer, p.Error) and answer.error_type is p.ErrorType.LIMIT, answer
        c.close()
        return None

    c: LauncherClient = wait_for(admitted, what="a free login slot")
    return c


def test_every_way_a_login_ends_gives_its_slot_back(start_daemon: StartDaemon, accounts: Accounts) -> None:
    daemon = start_daemon(max_pending_logins=2)
    first, second = holder(daemon, accounts), holder(daemon, accounts)
    assert refused_for_the_limit(daemon, accounts)

    # Cancelled.
    assert isinstance(first.request(p.CancelSession()), p.Success)
    first = holder(daemon, accounts)
    assert refused_for_the_limit(daemon, accounts)

    # Refused by PAM (a wrong password).
    assert isinstance(second.request(p.PostAuthMessageResponse()), p.AuthMessage)  # the password prompt
    wrong = second.request(p.PostAuthMessageResponse(response="not-the-password"))
    assert isinstance(wrong, p.Error) and wrong.error_type is p.ErrorType.AUTH_ERROR, wrong
    second = holder(daemon, accounts)
    assert refused_for_the_limit(daemon, accounts)

    # Abandoned: its client goes away in the middle of the conversation.
    first.close()
    first = holder(daemon, accounts)
    assert refused_for_the_limit(daemon, accounts)

    # Started: the login is over once its session runs.
    assert isinstance(first.request(p.PostAuthMessageResponse()), p.AuthMessage)
    assert isinstance(first.request(p.PostAuthMessageResponse(response=accounts.password)), p.Success)
    started = first.request(p.StartSession())
    assert isinstance(started, p.SessionStarted), started
    first = holder(daemon, accounts)
    assert refused_for_the_limit(daemon, accounts)

    # A greeter session takes a slot while it starts, and gives it back once it runs.
    with daemon.client() as control:
        full = control.request(p.CreateGreeterSession(token="tok-g", token_kind="badge"))
        assert isinstance(full, p.Error) and full.error_type is p.ErrorType.LIMIT, full
        assert "too many sessions starting" in full.description
        assert isinstance(first.request(p.CancelSession()), p.Success)
        greeter = control.request(p.CreateGreeterSession(token="tok-g", token_kind="badge"))
        assert isinstance(greeter, p.SessionStarted), greeter
    first = holder(daemon, accounts)
    assert refused_for_the_limit(daemon, accounts)
    first.close()
    second.close()


def test_a_login_that_times_out_gives_its_slot_back(start_daemon: StartDaemon, accounts: Accounts) -> None:
    daemon = start_daemon(max_pending_logins=1, login_timeout_s=3.0)
    slow = holder(daemon, accounts)
    assert refused_for_the_limit(daemon, accounts)
    after = holder(daemon, accounts)  # once the slow one's login_timeout_s has passed
    late = slow.request(p.PostAuthMessageResponse())
    assert isinstance(late, p.Error) and "timed out" in late.description, late
    assert refused_for_the_limit(daemon, accounts)
    slow.close()
    after.close()
