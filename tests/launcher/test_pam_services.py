"""The PAM services the package ships (packaging/debian/wayray.pam, wayray-greeter.pam), installed
as they are under a throwaway name and run through the real libpam with this host's common-* files;
and wrsessd's own refusal of root sessions, whatever the PAM stack says.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.launcher.harness import Accounts, Daemon, answer_with
from wayray.launcher import pam
from wayray.launcher import protocol as p
from wayray.launcher.worker_protocol import ROOT_REFUSED

pytestmark = [pytest.mark.root]

StartDaemon = Callable[..., Daemon]
SHIPPED = REPO / "packaging" / "debian"


@pytest.fixture
def shipped_services() -> Iterator[tuple[str, str]]:
    """wayray.pam and wayray-greeter.pam installed verbatim as /etc/pam.d/wayray-test-<tag>{,-greeter}."""
    tag = secrets.token_hex(3)
    user, greeter = f"wayray-test-{tag}", f"wayray-test-{tag}-greeter"
    paths = [Path("/etc/pam.d") / user, Path("/etc/pam.d") / greeter]
    paths[0].write_text((SHIPPED / "wayray.pam").read_text())
    paths[1].write_text((SHIPPED / "wayray-greeter.pam").read_text())
    try:
        yield user, greeter
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def converse(service: str, user: str | None, answers: dict[str, str]) -> tuple[list[pam.Message], str]:
    """pam_authenticate + pam_acct_mgmt; answers by prompt style; returns the messages and the outcome."""
    seen: list[pam.Message] = []

    def conv(msg: pam.Message) -> str | None:
        seen.append(msg)
        return answers.get(msg.style.name) if msg.is_prompt else None

    with pam.PamHandle(service, user, conv) as h:
        try:
            h.authenticate()
            h.acct_mgmt()
        except pam.PamError as err:
            return seen, err.status.value
    return seen, "success"


def test_the_shipped_user_service_refuses_root_before_asking_a_password(
    shipped_services: tuple[str, str], accounts: Accounts
) -> None:
    service, _ = shipped_services
    seen, outcome = converse(service, "root", {"PROMPT_ECHO_OFF": "anything"})
    assert outcome != "success"
    assert [m for m in seen if m.style is pam.MessageStyle.PROMPT_ECHO_OFF] == [], seen
    # Named through PAM's own prompt, too.
    seen, outcome = converse(service, None, {"PROMPT_ECHO_ON": "root", "PROMPT_ECHO_OFF": "anything"})
    assert outcome != "success"
    assert [m.style for m in seen if m.is_prompt] == [pam.MessageStyle.PROMPT_ECHO_ON], seen
    # Anyone else — an account or a name nobody has — is asked for the password as before.
    for name in (accounts.user, f"nobody{secrets.token_hex(3)}"):
        seen, _ = converse(service, name, {"PROMPT_ECHO_OFF": "wrong"})
        assert [m.style for m in seen if m.is_prompt] == [pam.MessageStyle.PROMPT_ECHO_OFF], (name, seen)
    seen, outcome = converse(service, accounts.user, {"PROMPT_ECHO_OFF": accounts.password})
    assert outcome == "success", seen


def test_the_shipped_greeter_service_admits_the_greeter_user_and_never_root(
    shipped_services: tuple[str, str], accounts: Accounts
) -> None:
    _, greeter = shipped_services
    # wrsessd runs only the account (and session) stacks for a login screen, as root.
    for user, expected in ((accounts.greeter, True), ("root", False)):
        with pam.PamHandle(greeter, user, lambda m: None) as h:
            try:
                h.acct_mgmt()
                ok = True
            except pam.PamError:
                ok = False
        assert ok is expected, user


NOLOGIN_PROBE = """
import json, sys
sys.path.insert(0, {repo!r})
from tests.launcher.test_pam_services import converse
seen, outcome = converse({service!r}, {user!r}, {{"PROMPT_ECHO_OFF": {password!r}}})
print(json.dumps({{"outcome": outcome, "seen": [[m.style.name, m.text] for m in seen]}}))
"""


def test_the_shipped_user_service_honours_nologin(
    shipped_services: tuple[str, str], accounts: Accounts
) -> None:
    """With /run/nologin present — in a mount namespace of this test's own, so that nothing else on
    the machine sees it — nobody logs in, the file's text is shown, and no password is asked."""
    service, _ = shipped_services
    probe = NOLOGIN_PROBE.format(
        repo=str(REPO), service=service, user=accounts.user, password=accounts.password
    )
    script = textwrap.dedent(
        """
        mount -t tmpfs -o size=1m,mode=0755 wayray-test /run
        echo 'WayRay maintenance until 18:00.' > /run/nologin
        exec "$0" -c "$1"
        """
    )
    res = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, sys.executable, probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["outcome"] != "success"
    assert any("WayRay maintenance until 18:00." in text for _, text in result["seen"]), result
    assert not any(style == "PROMPT_ECHO_OFF" for style, _ in result["seen"]), result


def test_wrsessd_refuses_root_whatever_the_pam_stack_says(
    start_daemon: StartDaemon, accounts: Accounts
) -> None:
    """The test stack (pam_unix only) would let any account with a password in, uid 0 included: wrsessd
    refuses it itself — an account of uid 0 under another name too — before any password is asked."""
    alias = f"{accounts.user}z"
    subprocess.run(
        ["useradd", "--non-unique", "--uid", "0", "--gid", "0", "--no-create-home", alias],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["chpasswd"], input=f"{alias}:{accounts.password}\n", text=True, check=True)
        daemon = start_daemon()
        with daemon.client() as c:
            for name in ("root", alias):
                seen: list[tuple[str, str]] = []
                create = p.CreateSession(
                    username=name, token="tok-root", token_kind="badge", rhost="kiosk-1"
                )
                result = c.login(create, answer_with(accounts.password, seen=seen))
                assert isinstance(result, p.Error), (name, result)
                assert (result.error_type, result.description) == (p.ErrorType.ACCOUNT_ERROR, ROOT_REFUSED)
                assert not [kind for kind, _ in seen if kind == "secret"], (name, seen)
                # Named through PAM's "login:" prompt: refused as soon as PAM has the name.
                seen = []
                unnamed = p.CreateSession(token="tok-root2", token_kind="badge", rhost="kiosk-1")
                result = c.login(unnamed, answer_with(name, accounts.password, seen=seen))
                assert isinstance(result, p.Error) and result.description == ROOT_REFUSED, (name, result)
                assert [kind for kind, _ in seen if kind in ("visible", "secret")] == ["visible"], seen
            assert [s for s in c.list_sessions() if s.uid == 0] == []
    finally:
        subprocess.run(["userdel", alias], capture_output=True)
