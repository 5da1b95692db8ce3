"""The registry driving the real wrsessd: a badge's whole life, a policy timeout, a wrsrvd restart.

This is the sequence wrsrvd's front door will run (it is not written yet): registry decisions in,
launcher IPC out. Real PAM and processes as in tests/launcher; the compositor and the greeter are the
stand-ins from tests/launcher/standins until the real ones are wired in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.launcher.harness import Accounts, Daemon, Sandbox, answer_with, user_pids
from wayray.launcher import protocol as p
from wayray.server.model import Endpoint, EndReason, SessionState
from wayray.server.policy import SessionPolicy
from wayray.server.registry import Outcome, Registry
from wayray.server.tokens import SessionTokenKind, TokenHasher

pytestmark = [pytest.mark.root, pytest.mark.slow]


def endpoint_of(info: p.SessionInfo) -> Endpoint:
    return Endpoint(
        launcher_session=info.session_id,
        compositor_pid=info.compositor_pid,
        wayland_display=info.wayland_display,
    )


def test_policy_timeout_ends_a_detached_session_and_closes_its_pam_session(
    start_daemon: Callable[..., Daemon], accounts: Accounts, sandbox: Sandbox, tmp_path: Path
) -> None:
    daemon = start_daemon()
    hasher = TokenHasher.load_or_create(tmp_path / "token.key")
    policy = SessionPolicy(detached_timeout_s=3600)
    registry_path = tmp_path / "registry.sqlite"
    reg = Registry.open(registry_path, policy=policy, now=time.time())
    raw_badge = "04:7B:AA:19:C2:55:80"
    token = hasher.ref(SessionTokenKind.BADGE, raw_badge)

    with daemon.client() as c, daemon.client() as events:
        events.request(p.Subscribe())
        # Badge-in at kiosk A: no session yet → a greeter for the token.
        decision = reg.present(token, "kiosk-a", time.time())
        assert decision.outcome is Outcome.NEW_GREETER
        greeter = c.call(
            p.CreateGreeterSession(token=token.launcher_ref, token_kind="badge", rhost="kiosk-a")
        )
        assert isinstance(greeter, p.SessionStarted)
        session = reg.create_greeter(token, "kiosk-a", endpoint_of(greeter.session), time.time())

        # The user logs in at the greeter; wrsessd announces the user session that replaces it.
        sandbox.write_greeter_script(json.dumps({"username": accounts.user, "answers": [accounts.password]}))
        started = events.events(timeout=60)
        while not (
            isinstance(started, p.SessionEvent) and started.session.session_class is p.SessionClass.USER
        ):
            started = events.events(timeout=60)
        assert started.greeter_session == greeter.session.session_id
        assert started.session.token == token.launcher_ref  # wrsessd only ever saw the digest
        session = reg.logged_in(session.id, started.session.user, endpoint_of(started.session), time.time())
        assert session.state is SessionState.ACTIVE and session.user == accounts.user
        c.kill_session(greeter.session.session_id, p.EndReason.REPLACED)

        # Badge out: detached. Nothing is due until the policy's hour has passed.
        detached_at = time.time()
        reg.viewer_left("kiosk-a", detached_at)
        assert reg.due_actions(detached_at + 3599) == []
        (action,) = reg.due_actions(detached_at + 3600)  # time is passed in: no waiting for an hour
        assert action.reason is EndReason.DETACHED_TIMEOUT
        assert action.launcher_session == started.session.session_id

        # Carry it out as wrsrvd will: end it in wrsessd (PAM session closed), then in the registry.
        c.kill_session(action.launcher_session, p.EndReason.POLICY)
        reg.end(action.session_id, action.reason, detached_at + 3600)
        ended = events.events(timeout=30)
        while not (
            isinstance(ended, p.SessionEvent) and ended.session.session_id == action.launcher_session
        ):
            ended = events.events(timeout=30)
        assert ended.event is p.SessionEventKind.ENDED and ended.reason is p.EndReason.POLICY
    assert user_pids(accounts.uid) == []
    assert f"close_session {sandbox.service} {accounts.user} rhost=kiosk-a" in sandbox.pam_events()
    assert reg.by_token(token) is None
    reg.close()
    for f in tmp_path.iterdir():
        assert raw_badge.encode() not in f.read_bytes() or f.name == "token.key"


def test_a_restarted_wrsrvd_finds_every_session_attachable(
    start_daemon: Callable[..., Daemon], accounts: Accounts, sandbox: Sandbox, tmp_path: Path
) -> None:
    """wrsrvd restarts while one session is attached and one detached; wrsessd and the sessions stay."""
    daemon = start_daemon()
    hasher = TokenHasher.load_or_create(tmp_path / "token.key")
    path = tmp_path / "registry.sqlite"
    reg = Registry.open(path, policy=SessionPolicy(), now=time.time())
    sessions = {}
    with daemon.client() as c:
        for raw, kiosk in (("badge-1", "kiosk-a"), ("badge-2", "kiosk-b")):
            token = hasher.ref(SessionTokenKind.BADGE, raw)
            assert reg.present(token, kiosk, time.time()).outcome is Outcome.NEW_GREETER
            create = p.CreateSession(
                username=accounts.user, token=token.launcher_ref, token_kind="badge", rhost=kiosk
            )
            assert isinstance(c.login(create, answer_with(accounts.password)), p.Success)
            info = c.call(p.StartSession())
            assert isinstance(info, p.SessionStarted)
            g = reg.create_greeter(token, kiosk, Endpoint(), time.time())
            sessions[raw] = reg.logged_in(g.id, accounts.user, endpoint_of(info.session), time.time())
        reg.viewer_left("kiosk-b", time.time())
    reg.close()  # wrsrvd goes away (restart, crash)

    # The new wrsrvd: hasher key and registry from disk; wrsessd still runs the sessions.
    hasher = TokenHasher.load_or_create(tmp_path / "token.key")
    reg = Registry.open(path, policy=SessionPolicy(), now=time.time())
    with daemon.client() as c:
        running = {s.session_id for s in c.list_sessions()}
        for raw, kiosk in (("badge-1", "kiosk-a"), ("badge-2", "kiosk-c")):
            known = reg.by_token(hasher.ref(SessionTokenKind.BADGE, raw))
            assert (
                known is not None and known.id == sessions[raw].id and known.state is SessionState.DETACHED
            )
            assert known.endpoint.launcher_session in running  # its compositor is still there to attach to
            shown = reg.present(hasher.ref(SessionTokenKind.BADGE, raw), kiosk, time.time())
            assert shown.outcome is Outcome.RESUMED and shown.keyframe_first
    reg.close()
