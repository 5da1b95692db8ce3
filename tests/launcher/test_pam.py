"""The ctypes PAM binding against the real libpam and pam_unix (Linux-PAM; Sun PAM is untested here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launcher.conftest import needs_root
from tests.launcher.harness import Accounts, throwaway_accounts
from wayray.launcher import pam

pytestmark = [pytest.mark.root, needs_root]


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[Accounts, str]]:
    with throwaway_accounts() as acc:
        service = f"wayray-test-pam-{acc.user}"
        path = Path("/etc/pam.d") / service
        path.write_text(
            "auth     requisite pam_echo.so first notice\n"
            "auth     requisite pam_echo.so second notice\n"
            "auth     required  pam_unix.so nodelay\n"
            "account  required  pam_unix.so\n"
            "session  required  pam_unix.so\n"
            "session  optional  pam_env.so readenv=0 conffile=/dev/null\n"
        )
        try:
            yield acc, service
        finally:
            path.unlink()


def test_status_numbers_match_this_libpam() -> None:
    # pam_strerror's text for each number tells which status the number is on this system.
    assert pam.strerror(pam.Status.AUTH_ERR) == "Authentication failure"
    assert pam.strerror(pam.Status.ACCT_EXPIRED) == "User account has expired"
    assert pam.strerror(pam.Status.NEW_AUTHTOK_REQD).startswith("Authentication token is no longer valid")
    assert pam.strerror(pam.Status.CONV_ERR) == "Conversation error"
    assert pam.status_from_code(pam.code_of(pam.Status.USER_UNKNOWN)) is pam.Status.USER_UNKNOWN
    assert pam.status_from_code(9999) is pam.Status.UNKNOWN


def test_a_whole_conversation_is_relayed(env: tuple[Accounts, str]) -> None:
    acc, service = env
    seen: list[pam.Message] = []

    def conv(msg: pam.Message) -> str | None:
        seen.append(msg)
        if msg.style is pam.MessageStyle.PROMPT_ECHO_ON:
            return acc.user
        if msg.style is pam.MessageStyle.PROMPT_ECHO_OFF:
            return acc.password
        return None

    with pam.PamHandle(service, None, conv) as h:
        h.set_item(pam.Item.RHOST, "kiosk-9")
        h.authenticate()
        h.acct_mgmt()
        assert h.user == acc.user
        assert h.get_item(pam.Item.RHOST) == "kiosk-9"
        assert h.get_item(pam.Item.TTY) is None
    assert [(m.style, m.text) for m in seen] == [
        (pam.MessageStyle.TEXT_INFO, "first notice"),
        (pam.MessageStyle.TEXT_INFO, "second notice"),
        (pam.MessageStyle.PROMPT_ECHO_ON, "login:"),
        (pam.MessageStyle.PROMPT_ECHO_OFF, "Password: "),
    ]


def test_wrong_password_raises_with_the_status(env: tuple[Accounts, str]) -> None:
    acc, service = env
    with pam.PamHandle(service, acc.user, lambda m: "wrong" if m.is_prompt else None) as h:
        with pytest.raises(pam.PamError) as err:
            h.authenticate()
    assert err.value.status is pam.Status.AUTH_ERR and err.value.call == "pam_authenticate"


def test_an_exception_in_the_conversation_never_reads_as_success(env: tuple[Accounts, str]) -> None:
    """ctypes turns an exception in a callback into a 0 return, which PAM would read as success."""
    acc, service = env

    def conv(msg: pam.Message) -> str | None:
        if msg.is_prompt:
            raise RuntimeError("greeter vanished")
        return None

    with pam.PamHandle(service, acc.user, conv) as h:
        with pytest.raises(pam.PamError) as err:
            h.authenticate()
        assert isinstance(h.conversation_error, RuntimeError)
    # pam_unix reports a failed conversation as AUTHTOK_ERR; what matters is that it failed.
    assert err.value.status is not pam.Status.SUCCESS


def test_session_and_environment(env: tuple[Accounts, str]) -> None:
    acc, service = env
    with pam.PamHandle(service, acc.user, lambda m: acc.password if m.is_prompt else None) as h:
        h.authenticate()
        h.acct_mgmt()
        h.putenv("XDG_SESSION_CLASS=user")
        h.putenv("WAYRAY_X=1 2 3")
        h.setcred(pam.Flag.ESTABLISH_CRED)
        h.open_session()
        assert h.getenvlist() == {"XDG_SESSION_CLASS": "user", "WAYRAY_X": "1 2 3"}
        h.close_session()
        h.setcred(pam.Flag.DELETE_CRED)
        h.end()
        h.end()  # idempotent
        with pytest.raises(pam.PamError, match="already ended"):
            h.authenticate()
