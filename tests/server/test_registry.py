"""wrsrvd's session registry core: tokens, lifecycle, hot-desk, persistence, policies (no I/O but SQLite)."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from wayray.common.errors import WayRayError
from wayray.server.model import AuditKind, Endpoint, EndReason, SessionState
from wayray.server.policy import EndSession, SessionPolicy, session_limit_reached
from wayray.server.registry import IllegalTransition, Outcome, Registry, RegistryError, UnknownSession
from wayray.server.tokens import SessionTokenKind, TokenHasher, TokenRef, load_or_create_secret

HASHER = TokenHasher(b"k" * 32)
T0 = 1_700_000_000.0


def badge(raw: str = "04:A2:19:7C") -> TokenRef:
    return HASHER.ref(SessionTokenKind.BADGE, raw)


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    r = Registry.open(tmp_path / "registry.sqlite", policy=SessionPolicy(), now=T0)
    yield r
    r.close()


def user_session(
    reg: Registry,
    raw: str,
    viewer: str | None,
    now: float = T0,
    user: str = "alice",
    kiosk: str | None = None,
) -> str:
    """A logged-in session shown on ``viewer``, whose kiosk identity is ``kiosk`` (default: the
    viewer's name, as in most tests a viewer stands for its kiosk)."""
    token = HASHER.ref(SessionTokenKind.BADGE, raw)
    kiosk = kiosk or viewer
    assert reg.present(token, viewer or "nowhere", now, kiosk=kiosk).outcome is Outcome.NEW_GREETER
    g = reg.create_greeter(
        token, viewer, Endpoint(launcher_session=f"g-{token.digest[:6]}"), now, kiosk=kiosk
    )
    return reg.logged_in(
        g.id, user, Endpoint(launcher_session=f"u-{token.digest[:6]}", compositor_pid=42), now
    ).id


# --- tokens ----------------------------------------------------------------------------------------


def test_token_refs_are_keyed_and_kind_separated() -> None:
    a = HASHER.ref(SessionTokenKind.BADGE, "1234")
    assert a == HASHER.ref(SessionTokenKind.BADGE, "1234")
    assert a != HASHER.ref(SessionTokenKind.TERMINAL, "1234")
    assert a != TokenHasher(b"x" * 32).ref(SessionTokenKind.BADGE, "1234")
    assert len(a.digest) == 64 and "1234" not in a.digest
    assert str(a) == a.short == f"badge:{a.digest[:8]}"
    assert HASHER.matches(a, SessionTokenKind.BADGE, "1234")
    assert not HASHER.matches(a, SessionTokenKind.BADGE, "1235")
    assert not HASHER.matches(a, SessionTokenKind.TERMINAL, "1234")
    with pytest.raises(ValueError, match="empty"):
        HASHER.ref(SessionTokenKind.BADGE, "")
    with pytest.raises(ValueError, match="longer than"):
        HASHER.ref(SessionTokenKind.BADGE, "x" * 2000)
    with pytest.raises(ValueError, match="at least 32"):
        TokenHasher(b"short")


def test_token_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    key = load_or_create_secret(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == key  # stable across restarts
    os.chmod(path, 0o644)
    with pytest.raises(WayRayError, match="readable by others") as err:
        load_or_create_secret(path)
    assert err.value.hint and "chmod 600" in err.value.hint
    os.chmod(path, 0o600)
    path.write_bytes(b"abc")
    with pytest.raises(WayRayError, match="truncated"):
        load_or_create_secret(path)


# --- lifecycle -------------------------------------------------------------------------------------


def test_lifecycle_greeter_active_detached_active_ended(reg: Registry) -> None:
    token = badge()
    first = reg.present(token, "kiosk-a", T0)
    assert first.outcome is Outcome.NEW_GREETER and first.session is None
    g = reg.create_greeter(token, "kiosk-a", Endpoint(launcher_session="g1"), T0)
    assert (g.state, g.user, g.viewer) == (SessionState.GREETER, None, "kiosk-a")
    assert reg.present(token, "kiosk-a", T0 + 1).outcome is Outcome.ALREADY_HERE

    s = reg.logged_in(g.id, "alice", Endpoint(launcher_session="u1", compositor_pid=7), T0 + 5)
    assert (s.state, s.user, s.viewer, s.endpoint.launcher_session) == (
        SessionState.ACTIVE,
        "alice",
        "kiosk-a",
        "u1",
    )
    assert s.id == g.id  # one registry session from greeter to logout

    d = reg.viewer_left("kiosk-a", T0 + 10)
    assert d is not None and (d.state, d.viewer, d.detached_at) == (SessionState.DETACHED, None, T0 + 10)
    assert reg.on_viewer("kiosk-a") is None

    back = reg.present(token, "kiosk-b", T0 + 20)
    assert back.outcome is Outcome.RESUMED and back.keyframe_first
    assert back.session is not None and (back.session.state, back.session.viewer) == (
        SessionState.ACTIVE,
        "kiosk-b",
    )

    ended = reg.end(s.id, EndReason.LOGOUT, T0 + 30)
    assert (ended.state, ended.end_reason, ended.viewer) == (SessionState.ENDED, EndReason.LOGOUT, None)
    assert reg.by_token(token) is None and reg.live_sessions() == [] and reg.on_viewer("kiosk-b") is None
    assert reg.present(token, "kiosk-b", T0 + 31).outcome is Outcome.NEW_GREETER  # a fresh start

    kinds = [e.kind for e in reg.audit(s.id)]
    assert kinds == [
        AuditKind.CREATED,
        AuditKind.LOGGED_IN,
        AuditKind.DETACHED,
        AuditKind.ATTACHED,
        AuditKind.ENDED,
    ]
    assert all(e.user in (None, "alice") and e.token == token.short for e in reg.audit(s.id))  # type: ignore[attr-defined]


def test_illegal_transitions_raise(reg: Registry) -> None:
    sid = user_session(reg, "t1", "kiosk-a")
    with pytest.raises(IllegalTransition, match="cannot log in to a active session"):
        reg.logged_in(sid, "bob", Endpoint(), T0)
    reg.detach(sid, T0 + 1)
    with pytest.raises(IllegalTransition, match="cannot detach a detached session"):
        reg.detach(sid, T0 + 2)
    with pytest.raises(RegistryError, match="already has session"):
        reg.create_greeter(HASHER.ref(SessionTokenKind.BADGE, "t1"), "kiosk-z", Endpoint(), T0)
    reg.end(sid, EndReason.OPERATOR, T0 + 3)
    with pytest.raises(UnknownSession):
        reg.end(sid, EndReason.OPERATOR, T0 + 4)  # ended sessions leave the live table
    with pytest.raises(UnknownSession):
        reg.attach("nope", "kiosk-a", T0)
    g = reg.create_greeter(HASHER.ref(SessionTokenKind.BADGE, "t2"), None, Endpoint(), T0)
    with pytest.raises(IllegalTransition, match="cannot detach a greeter"):
        reg.detach(g.id, T0)
    # Nothing of the refused calls reached the database.
    assert [e.kind for e in reg.audit(sid)][-1] is AuditKind.ENDED


def test_hot_desk_moves_the_session_and_frees_both_kiosks(reg: Registry) -> None:
    x = user_session(reg, "badge-x", "kiosk-a", user="alice")
    y = user_session(reg, "badge-y", "kiosk-b", user="bob")
    moved = reg.present(HASHER.ref(SessionTokenKind.BADGE, "badge-x"), "kiosk-b", T0 + 5)
    assert moved.outcome is Outcome.MOVED and moved.keyframe_first
    assert moved.displaced_viewer == "kiosk-a"  # A goes back to its idle screen
    assert moved.replaced_session == y  # bob's session no longer shows on B ...
    assert reg.get(y).state is SessionState.DETACHED  # ... and keeps running, detached
    assert reg.get(x).viewer == "kiosk-b" and reg.on_viewer("kiosk-b").id == x  # type: ignore[union-attr]
    assert reg.on_viewer("kiosk-a") is None
    event = reg.audit(x)[-1]
    assert event.kind is AuditKind.MOVED and event.detail == {"from": "kiosk-a", "to": "kiosk-b"}
    # The same badge again at B: nothing to do but a fresh keyframe.
    again = reg.present(HASHER.ref(SessionTokenKind.BADGE, "badge-x"), "kiosk-b", T0 + 6)
    assert again.outcome is Outcome.ALREADY_HERE and again.keyframe_first


def test_a_greeter_follows_its_badge_too(reg: Registry) -> None:
    token = badge("greeter-badge")
    g = reg.create_greeter(token, "kiosk-a", Endpoint(launcher_session="g"), T0)
    moved = reg.present(token, "kiosk-b", T0 + 1)
    assert moved.outcome is Outcome.MOVED and moved.displaced_viewer == "kiosk-a"
    assert reg.viewer_left("kiosk-b", T0 + 2).viewer is None  # type: ignore[union-attr]
    assert reg.get(g.id).state is SessionState.GREETER
    assert reg.present(token, "kiosk-c", T0 + 3).outcome is Outcome.RESUMED


def test_a_kiosk_shows_one_session_at_a_time(reg: Registry) -> None:
    a = user_session(reg, "a", "kiosk-1")
    g = reg.create_greeter(badge("new"), "kiosk-1", Endpoint(), T0 + 1)  # another badge at the same kiosk
    assert reg.get(a).state is SessionState.DETACHED
    assert reg.on_viewer("kiosk-1").id == g.id  # type: ignore[union-attr]


# --- persistence -----------------------------------------------------------------------------------


def test_reopened_registry_knows_every_live_session_and_they_are_attachable(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    reg = Registry.open(path, policy=SessionPolicy(), now=T0)
    active = user_session(reg, "active", "kiosk-a", user="alice")
    detached = user_session(reg, "detached", "kiosk-b", user="bob")
    reg.viewer_left("kiosk-b", T0 + 1)
    greeter = reg.create_greeter(badge("greeter"), "kiosk-c", Endpoint(launcher_session="g9"), T0 + 2).id
    gone = user_session(reg, "gone", "kiosk-d", user="carol")
    reg.end(gone, EndReason.LOGOUT, T0 + 3)
    reg.close()  # wrsrvd stops (or crashes: every commit is already in the WAL)

    again = Registry.open(path, policy=SessionPolicy(), now=T0 + 100)
    assert {s.id for s in again.live_sessions()} == {active, detached, greeter}
    a = again.get(active)
    assert (a.state, a.viewer, a.last_viewer, a.user) == (SessionState.DETACHED, None, "kiosk-a", "alice")
    digest = HASHER.ref(SessionTokenKind.BADGE, "active").digest
    assert a.endpoint == Endpoint(launcher_session=f"u-{digest[:6]}", compositor_pid=42)
    assert again.get(detached).detached_at == T0 + 1  # its detach clock keeps running
    assert again.get(greeter).viewer is None and again.get(greeter).state is SessionState.GREETER
    assert again.audit(active)[-1].kind is AuditKind.RESTORED
    assert again.audit(active)[-1].detail == {"was": "active", "viewer_was": "kiosk-a"}
    assert again.find(gone) is None
    # Attachable again, by their tokens, on any kiosk.
    for raw, kiosk in (("active", "kiosk-a"), ("detached", "kiosk-x"), ("greeter", "kiosk-c")):
        shown = again.present(HASHER.ref(SessionTokenKind.BADGE, raw), kiosk, T0 + 200)
        assert shown.outcome is Outcome.RESUMED and shown.keyframe_first and shown.session is not None
        assert shown.session.viewer == kiosk
    again.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_one_live_session_per_token_is_enforced_by_the_database(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "r.sqlite"
    reg = Registry.open(path, policy=SessionPolicy(), now=T0)
    user_session(reg, "dup", "k")
    reg.close()
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):
        columns = "token_kind, token_digest, state, user, viewer, last_viewer, created_at, changed_at, "
        columns += (
            "detached_at, last_input_at, endpoint, end_reason, reattach_from, viewer_kiosk, touched_at"
        )
        db.execute(f"INSERT INTO sessions SELECT 'other', {columns} FROM sessions")
    db.close()


def test_tokens_never_reach_the_database_or_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = "SECRET-BADGE-0xC0FFEE"
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "r.sqlite"
    reg = Registry.open(path, policy=SessionPolicy(reauth_on_reattach=True), now=T0)
    token = HASHER.ref(SessionTokenKind.BADGE, raw)
    sid = user_session(reg, raw, "kiosk-a")
    reg.viewer_left("kiosk-a", T0 + 1)
    reg.present(token, "kiosk-b", T0 + 500)  # reauth required: logged
    reg.attach(sid, "kiosk-b", T0 + 501, reauthenticated=True)
    reg.present(HASHER.ref(SessionTokenKind.BADGE, raw), "kiosk-c", T0 + 502)
    reg.end(sid, EndReason.LOGOUT, T0 + 503)
    reg.close()
    for f in tmp_path.iterdir():  # the database, its WAL and shared-memory files
        data = f.read_bytes()
        assert raw.encode() not in data and raw.encode("utf-16-le") not in data, f.name
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert raw not in text
    assert f"token={token.short}" in text and "reauthenticated" in text and "reauth_required" in text


def test_purge_ended(reg: Registry) -> None:
    sid = user_session(reg, "p", "k")
    reg.end(sid, EndReason.LOGOUT, T0 + 1)
    assert reg.purge_ended(before=T0 + 1) == 0
    assert reg.purge_ended(before=T0 + 2) == 1
    assert reg.audit(sid) == []


# --- policies --------------------------------------------------------------------------------------


def test_detached_timeout(tmp_path: Path) -> None:
    policy = SessionPolicy(detached_timeout_s=3600, greeter_timeout_s=None)
    reg = Registry.open(tmp_path / "r.sqlite", policy=policy, now=T0)
    sid = user_session(reg, "d", "kiosk-a")
    launcher_id = reg.get(sid).endpoint.launcher_session
    assert reg.next_deadline() is None  # attached: no timer
    reg.viewer_left("kiosk-a", T0 + 10)
    assert reg.next_deadline() == T0 + 3610
    assert reg.due_actions(T0 + 3609) == []
    assert reg.due_actions(T0 + 3610) == [EndSession(sid, EndReason.DETACHED_TIMEOUT, launcher_id)]
    # Re-attaching in time cancels it.
    reg.present(HASHER.ref(SessionTokenKind.BADGE, "d"), "kiosk-b", T0 + 3000)
    assert reg.due_actions(T0 + 10_000) == [] and reg.next_deadline() is None
    reg.close()


def test_idle_logout_counts_from_the_last_input(tmp_path: Path) -> None:
    policy = SessionPolicy(idle_timeout_s=600, detached_timeout_s=None)
    reg = Registry.open(tmp_path / "r.sqlite", policy=policy, now=T0)
    sid = user_session(reg, "i", "kiosk-a")
    assert reg.next_deadline() == T0 + 600
    reg.note_input(sid, T0 + 500)
    assert reg.due_actions(T0 + 700) == []
    assert reg.due_actions(T0 + 1100) == [
        EndSession(sid, EndReason.IDLE_TIMEOUT, reg.get(sid).endpoint.launcher_session)
    ]
    reg.viewer_left("kiosk-a", T0 + 1200)  # detached sessions are not idle-logged-out
    assert reg.due_actions(T0 + 100_000) == []
    reg.close()


def test_greeter_timeout_only_without_a_viewer(tmp_path: Path) -> None:
    policy = SessionPolicy(greeter_timeout_s=60, untouched_timeout_s=None)
    reg = Registry.open(tmp_path / "r.sqlite", policy=policy, now=T0)
    g = reg.create_greeter(badge("g"), "kiosk-a", Endpoint(launcher_session="lg"), T0)
    assert reg.due_actions(T0 + 10_000) == []  # a kiosk showing its login screen is fine
    reg.viewer_left("kiosk-a", T0 + 100)
    assert reg.due_actions(T0 + 159) == []
    assert reg.due_actions(T0 + 160) == [EndSession(g.id, EndReason.GREETER_TIMEOUT, "lg")]
    reg.close()


def test_actions_come_earliest_first(tmp_path: Path) -> None:
    reg = Registry.open(tmp_path / "r.sqlite", policy=SessionPolicy(detached_timeout_s=100), now=T0)
    late = user_session(reg, "late", "k1")
    early = user_session(reg, "early", "k2")
    reg.viewer_left("k1", T0 + 50)
    reg.viewer_left("k2", T0 + 10)
    assert [a.session_id for a in reg.due_actions(T0 + 1000)] == [early, late]
    reg.close()


def test_reauth_on_reattach(tmp_path: Path) -> None:
    policy = SessionPolicy(reauth_on_reattach=True, reattach_grace_s=60)
    reg = Registry.open(tmp_path / "r.sqlite", policy=policy, now=T0)
    token = HASHER.ref(SessionTokenKind.BADGE, "r")
    sid = user_session(reg, "r", "kiosk-a")
    # Moving an attached session to another kiosk asks for the password; nothing changes meanwhile.
    asked = reg.present(token, "kiosk-b", T0 + 1, kiosk="kiosk-b")
    assert asked.outcome is Outcome.REAUTH_REQUIRED and reg.get(sid).viewer == "kiosk-a"
    reg.viewer_left("kiosk-a", T0 + 2)
    # Back at the same kiosk within the grace (a network blip): no password.
    assert reg.present(token, "kiosk-a", T0 + 30, kiosk="kiosk-a").outcome is Outcome.RESUMED
    reg.viewer_left("kiosk-a", T0 + 40)
    # Elsewhere, or later: the password first, then the unlock greeter's success attaches it.
    assert reg.present(token, "kiosk-b", T0 + 50, kiosk="kiosk-b").outcome is Outcome.REAUTH_REQUIRED
    assert reg.present(token, "kiosk-a", T0 + 200, kiosk="kiosk-a").outcome is Outcome.REAUTH_REQUIRED
    assert reg.attach(sid, "kiosk-b", T0 + 210, kiosk="kiosk-b").outcome is Outcome.REAUTH_REQUIRED
    done = reg.attach(sid, "kiosk-b", T0 + 220, kiosk="kiosk-b", reauthenticated=True)
    assert done.outcome is Outcome.RESUMED and reg.get(sid).viewer == "kiosk-b"
    kinds = [e.kind for e in reg.audit(sid)]
    assert kinds.count(AuditKind.REAUTH_REQUIRED) == 3 and AuditKind.REAUTHENTICATED in kinds
    reg.close()
    # After a wrsrvd restart the same kiosk gets its session back without a password (within grace).
    again = Registry.open(tmp_path / "r.sqlite", policy=policy, now=T0 + 1000)
    assert again.present(token, "kiosk-b", T0 + 1010, kiosk="kiosk-b").outcome is Outcome.RESUMED
    again.close()


def test_reauth_tells_kiosks_apart_by_identity_not_by_address(tmp_path: Path) -> None:
    """Kiosks are their identities (terminal identity or certificate): behind NAT they share one
    address. A connection that was lost (a network blip) may come back from the same kiosk within the
    grace without a password; another kiosk at the same address may not; a badge taken out (the kiosk
    closed on purpose) asks for it again, at that kiosk too; a viewer without identity always asks."""
    policy = SessionPolicy(reauth_on_reattach=True, reattach_grace_s=60)
    reg = Registry.open(tmp_path / "r.sqlite", policy=policy, now=T0)
    token = HASHER.ref(SessionTokenKind.BADGE, "k")
    sid = user_session(reg, "k", "10.0.0.7:50001#1", kiosk="kiosk:A")
    # The same kiosk over a new connection: no password. Another kiosk behind the same NAT address: one.
    assert reg.present(token, "10.0.0.7:50002#2", T0 + 1, kiosk="kiosk:A").outcome is Outcome.MOVED
    assert reg.present(token, "10.0.0.7:50003#3", T0 + 2, kiosk="kiosk:B").outcome is Outcome.REAUTH_REQUIRED
    assert reg.present(token, "10.0.0.7:50009#9", T0 + 2).outcome is Outcome.REAUTH_REQUIRED  # no identity
    reg.viewer_left("10.0.0.7:50002#2", T0 + 3, lost=True)
    assert reg.get(sid).reattach_from == "kiosk:A"
    assert reg.present(token, "10.0.0.7:50004#4", T0 + 4, kiosk="kiosk:B").outcome is Outcome.REAUTH_REQUIRED
    assert reg.present(token, "10.0.0.8:50004#4", T0 + 4, kiosk="kiosk:A").outcome is Outcome.RESUMED
    reg.viewer_left("10.0.0.8:50004#4", T0 + 5, lost=False)  # the badge was taken out
    assert reg.get(sid).reattach_from is None
    assert reg.present(token, "10.0.0.8:50005#5", T0 + 6, kiosk="kiosk:A").outcome is Outcome.REAUTH_REQUIRED
    reg.close()


def test_a_registry_of_the_previous_schema_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "r.sqlite"
    reg = Registry.open(path, policy=SessionPolicy(), now=T0)
    sid = user_session(reg, "m", "k")
    reg.close()
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE s2 AS SELECT * FROM sessions; DROP TABLE sessions; "
        "ALTER TABLE s2 DROP COLUMN reattach_from; ALTER TABLE s2 DROP COLUMN viewer_kiosk; "
        "ALTER TABLE s2 DROP COLUMN touched_at; ALTER TABLE s2 RENAME TO sessions; PRAGMA user_version=1;"
    )
    db.close()
    again = Registry.open(path, policy=SessionPolicy(), now=T0 + 10)
    s = again.get(sid)
    # Version 2 knew kiosks by their address: nothing of that is trusted; sessions of before count as used.
    assert s.state is SessionState.DETACHED and s.reattach_from is None and s.touched_at is not None
    again.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_accepted_token_kinds(tmp_path: Path) -> None:
    badges_only = SessionPolicy(accepted_token_kinds=frozenset({SessionTokenKind.BADGE}))
    reg = Registry.open(tmp_path / "r.sqlite", policy=badges_only, now=T0)
    refused = reg.present(HASHER.ref(SessionTokenKind.TERMINAL, "kiosk-7-id"), "kiosk-7", T0)
    assert refused.outcome is Outcome.REFUSED and refused.reason == "terminal tokens are not accepted here"
    assert reg.audit()[-1].kind is AuditKind.REFUSED
    assert reg.present(HASHER.ref(SessionTokenKind.BADGE, "b"), "kiosk-7", T0).outcome is Outcome.NEW_GREETER
    reg.close()


def test_session_limit(reg: Registry) -> None:
    policy = SessionPolicy(max_sessions_per_user=2)
    user_session(reg, "l1", "k1", user="dave")
    assert not session_limit_reached("dave", reg.live_sessions(), policy)
    user_session(reg, "l2", "k2", user="dave")
    assert session_limit_reached("dave", reg.live_sessions(), policy)
    assert not session_limit_reached("erin", reg.live_sessions(), policy)


def test_policy_values_are_checked() -> None:
    with pytest.raises(ValueError, match="detached_timeout_s must be positive"):
        SessionPolicy(detached_timeout_s=0)
    with pytest.raises(ValueError, match="max_sessions_per_user"):
        SessionPolicy(max_sessions_per_user=0)


# --- invariants under any sequence of operations ---------------------------------------------------


class RegistryMachine(RuleBasedStateMachine):
    """Random badge-ins, logins, departures, endings and restarts keep the registry consistent."""

    tokens = st.sampled_from(["t1", "t2", "t3", "t4"])
    viewers = st.sampled_from(["k1", "k2", "k3"])

    @initialize()
    def open(self) -> None:
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.path = Path(self.dir, "r.sqlite")
        self.now = T0
        self.policy = SessionPolicy(reauth_on_reattach=False)
        self.reg = Registry.open(self.path, policy=self.policy, now=self.now)

    def tick(self) -> float:
        self.now += 1
        return self.now

    @rule(raw=tokens, viewer=viewers)
    def badge_in(self, raw: str, viewer: str) -> None:
        token = HASHER.ref(SessionTokenKind.BADGE, raw)
        p = self.reg.present(token, viewer, self.tick())
        if p.outcome is Outcome.NEW_GREETER:
            self.reg.create_greeter(token, viewer, Endpoint(launcher_session=f"g-{raw}"), self.now)
        assert self.reg.on_viewer(viewer).token == token  # type: ignore[union-attr]

    @rule(raw=tokens)
    def log_in(self, raw: str) -> None:
        s = self.reg.by_token(HASHER.ref(SessionTokenKind.BADGE, raw))
        if s is not None and s.state is SessionState.GREETER:
            self.reg.logged_in(s.id, f"user-{raw}", Endpoint(launcher_session=f"u-{raw}"), self.tick())

    @rule(viewer=viewers)
    def leave(self, viewer: str) -> None:
        self.reg.viewer_left(viewer, self.tick())
        assert self.reg.on_viewer(viewer) is None

    @rule(raw=tokens)
    def end(self, raw: str) -> None:
        s = self.reg.by_token(HASHER.ref(SessionTokenKind.BADGE, raw))
        if s is not None:
            self.reg.end(s.id, EndReason.LOGOUT, self.tick())

    @precondition(lambda self: hasattr(self, "reg"))
    @rule()
    def restart(self) -> None:
        before = {s.id: (s.state, s.user, s.token) for s in self.reg.live_sessions()}
        self.reg.close()
        self.reg = Registry.open(self.path, policy=self.policy, now=self.tick())
        after = {s.id: (s.state, s.user, s.token) for s in self.reg.live_sessions()}
        assert after.keys() == before.keys()
        for sid, (state, user, token) in before.items():
            expected = SessionState.DETACHED if state is SessionState.ACTIVE else state
            assert after[sid] == (expected, user, token)

    @invariant()
    def consistent(self) -> None:
        live = self.reg.live_sessions()
        viewers = [s.viewer for s in live if s.viewer is not None]
        assert len(viewers) == len(set(viewers))  # a kiosk shows at most one session
        assert len({s.token for s in live}) == len(live)  # a token owns at most one live session
        for s in live:
            assert self.reg.by_token(s.token) == s
            assert (s.state is SessionState.ACTIVE) == (s.user is not None and s.viewer is not None)
            if s.viewer is not None:
                assert self.reg.on_viewer(s.viewer) == s

    def teardown(self) -> None:
        import shutil

        if hasattr(self, "reg"):
            self.reg.close()
            shutil.rmtree(self.dir, ignore_errors=True)


TestRegistryMachine = RegistryMachine.TestCase
TestRegistryMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


# --- standalone sessions (no greeter) --------------------------------------------------------------


def test_standalone_session_starts_active_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    reg = Registry.open(path, policy=SessionPolicy(), now=T0)
    token = HASHER.ref(SessionTokenKind.BADGE, "software-token-1")
    assert reg.present(token, "viewer-1", T0).outcome is Outcome.NEW_GREETER
    endpoint = Endpoint(compositor_pid=99, link="/run/x/link.sock", link_secret_sha256="ab" * 32)
    s = reg.create_session(token, "viewer-1", "alice", endpoint, T0, session_id="s-fixed")
    assert (s.id, s.state, s.user, s.viewer) == ("s-fixed", SessionState.ACTIVE, "alice", "viewer-1")
    with pytest.raises(RegistryError, match="already has session"):
        reg.create_session(token, "viewer-2", "alice", Endpoint(), T0)
    assert [e.kind for e in reg.audit(s.id)] == [AuditKind.CREATED]
    reg.close()
    again = Registry.open(path, policy=SessionPolicy(), now=T0 + 5)
    restored = again.get("s-fixed")
    assert restored.state is SessionState.DETACHED and restored.endpoint == endpoint
    p = again.present(token, "viewer-3", T0 + 6)
    assert p.outcome is Outcome.RESUMED and p.session is not None and p.session.id == "s-fixed"
    ended = again.end("s-fixed", EndReason.COMMAND_EXITED, T0 + 7)
    assert ended.end_reason is EndReason.COMMAND_EXITED
    again.close()


def test_standalone_session_without_a_viewer_starts_detached(reg: Registry) -> None:
    token = HASHER.ref(SessionTokenKind.TERMINAL, "kiosk-7")
    s = reg.create_session(token, None, "bob", Endpoint(), T0)
    assert s.state is SessionState.DETACHED and s.detached_at == T0


@pytest.mark.root
def test_a_full_disk_is_a_registry_error_and_changes_nothing(tmp_path: Path) -> None:
    """A real file system that fills up (a 512 KiB tmpfs): the write fails with a message that says
    so, and the registry in memory stays what the file says."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], check=True)
    try:
        reg = Registry.open(mnt / "registry.sqlite", policy=SessionPolicy(), now=T0)
        try:
            kept = user_session(reg, "kept", "kiosk-a")
            with open(mnt / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)
            with pytest.raises(RegistryError, match="cannot be written: database or disk is full"):
                for i in range(200):  # the WAL may still have a page or two free
                    reg.present(badge(f"more-{i}"), f"kiosk-{i}", T0 + 1)
                    reg.create_greeter(badge(f"more-{i}"), f"kiosk-{i}", Endpoint(), T0 + 1)
            assert reg.find(kept) is not None and reg.by_token(badge(f"more-{i}")) is None
        finally:
            reg.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_a_registry_from_a_newer_wayray_is_refused_with_what_to_do(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "registry.sqlite"
    Registry.open(path, policy=SessionPolicy(), now=T0).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(WayRayError, match="registry schema 99 is newer than this wrsrvd") as info:
        Registry.open(path, policy=SessionPolicy(), now=T0)
    assert "move the file aside" in (info.value.hint or "")


def test_unused_sessions_and_idle_login_screens_end_early(tmp_path: Path) -> None:
    """Security review M1: a stranger's sessions must not hold their slots for the detached timeout.
    A session nobody ever gave input ends untouched_timeout after its viewer left; a login screen
    after that long without input, shown or not; a session in use keeps the detached timeout, also
    across a restart (its first input is on disk at once)."""
    policy = SessionPolicy(detached_timeout_s=86_400, untouched_timeout_s=600, greeter_timeout_s=120)
    path = tmp_path / "r.sqlite"
    reg = Registry.open(path, policy=policy, now=T0)
    unused = reg.create_session(badge("u"), "v1", "me", Endpoint(), T0)
    used = reg.create_session(badge("w"), "v2", "me", Endpoint(), T0)
    reg.note_input(used.id, T0 + 5)
    greeter = reg.create_greeter(badge("g"), "v3", Endpoint(launcher_session="lg"), T0)
    reg.viewer_left("v1", T0 + 10)
    reg.viewer_left("v2", T0 + 10)
    assert reg.due_actions(T0 + 599) == []
    assert reg.due_actions(T0 + 600) == [EndSession(greeter.id, EndReason.UNTOUCHED_TIMEOUT, "lg")]
    reg.note_input(greeter.id, T0 + 500)  # typing at the login screen keeps it
    assert reg.due_actions(T0 + 609) == []
    assert reg.due_actions(T0 + 610) == [EndSession(unused.id, EndReason.UNTOUCHED_TIMEOUT, None)]
    reg.close()
    again = Registry.open(path, policy=policy, now=T0 + 20)
    assert again.get(used.id).touched_at == T0 + 5 and again.get(unused.id).touched_at is None
    assert {a.session_id for a in again.due_actions(T0 + 86_000)} == {unused.id, greeter.id}
    again.close()
