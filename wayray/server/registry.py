"""wrsrvd's session registry: which token owns which session, where it is shown, and its history.

A sans-IO core with durable state: every method takes the time as an argument and returns what
happened (a :class:`Presentation`, a :class:`Session` snapshot, policy actions); nothing here talks
to kiosks or to wrsessd — wrsrvd carries the decisions out. Each transition is explicit (an illegal
one raises :class:`IllegalTransition`), written to SQLite together with its audit event in one
transaction before the method returns, and logged on the ``wayray.audit`` logger. Tokens appear only
as keyed digests (:class:`~wayray.server.tokens.TokenRef`): neither the database nor the log ever
holds a token.

Life of a session::

    create_greeter ─► GREETER ─logged_in─► ACTIVE ◄─attach/present─► DETACHED
                         │  create_session ─►│  ▲ present elsewhere:     │
                         └───────────────────┴──┴── MOVED (hot-desk) ────┴─► end ─► ENDED

(``create_session`` is standalone mode's way in: no greeter, the session is its server's user's.)

**Persistence.** SQLite in WAL mode with ``synchronous=NORMAL``: a commit is in the WAL before the
call returns, so a crash or restart of wrsrvd (the case that matters: the session compositors keep
running) loses nothing; only an OS crash or power cut can lose the last commits, and those take the
compositors down with them, so ``FULL``'s fsync on every commit would buy nothing but latency on the
badge-in path. The file is created 0600.

**Restart.** :meth:`Registry.open` loads every live session. Sessions that were ACTIVE are DETACHED
(their viewers' connections died with the old process; the kiosks reconnect and re-attach), greeters
lose their viewer; all are attachable again, and the re-authentication grace (same kiosk, shortly
after) spares users a password prompt after a mere restart.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import secrets
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wayray.common.errors import WayRayError
from wayray.server import policy as pol
from wayray.server.model import (
    TRANSITIONS,
    AuditEvent,
    AuditKind,
    Endpoint,
    EndReason,
    Session,
    SessionState,
)
from wayray.server.policy import EndSession, SessionPolicy
from wayray.server.tokens import SessionTokenKind, TokenRef

audit_log = logging.getLogger("wayray.audit")

SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    token_kind    TEXT NOT NULL,
    token_digest  TEXT NOT NULL,
    state         TEXT NOT NULL,
    user          TEXT,
    viewer        TEXT,
    last_viewer   TEXT,
    created_at    REAL NOT NULL,
    changed_at    REAL NOT NULL,
    detached_at   REAL,
    last_input_at REAL NOT NULL,
    endpoint      TEXT NOT NULL,
    end_reason    TEXT,
    reattach_from TEXT,
    viewer_kiosk  TEXT,
    touched_at    REAL
);
-- One live session per token; ended ones stay for the audit trail until purged.
CREATE UNIQUE INDEX sessions_live_token ON sessions (token_digest) WHERE state != 'ended';
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         REAL NOT NULL,
    event      TEXT NOT NULL,
    session_id TEXT,
    user       TEXT,
    token      TEXT NOT NULL,
    viewer     TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_session ON audit (session_id);
"""


_COLUMNS = (
    "id", "token_kind", "token_digest", "state", "user", "viewer", "last_viewer", "created_at", "changed_at",
    "detached_at", "last_input_at", "endpoint", "end_reason", "reattach_from", "viewer_kiosk", "touched_at",
)  # fmt: skip
#: Schema migrations: from version N (the key) to N + 1. Version 3 tells kiosks apart by identity, not
#: address (a session detached before the upgrade asks for its password once), and knows whether a
#: session was ever used: those of before the upgrade count as used (none ends sooner for it).
_MIGRATIONS = {
    1: "ALTER TABLE sessions ADD COLUMN reattach_from TEXT;",
    2: "ALTER TABLE sessions ADD COLUMN viewer_kiosk TEXT;\n"
    "ALTER TABLE sessions ADD COLUMN touched_at REAL;\n"
    "UPDATE sessions SET reattach_from = NULL;\n"
    "UPDATE sessions SET touched_at = changed_at WHERE state != 'greeter';",
}
_UPSERT_SESSION = (
    f"INSERT OR REPLACE INTO sessions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_INSERT_AUDIT = (
    "INSERT INTO audit (at, event, session_id, user, token, viewer, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class RegistryError(Exception):
    pass


class UnknownSession(RegistryError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session {session_id}")
        self.session_id = session_id


class IllegalTransition(RegistryError):
    def __init__(self, session: Session, to: SessionState, action: str) -> None:
        super().__init__(
            f"session {session.id}: cannot {action} a {session.state.value} session (→ {to.value})"
        )
        self.session = session
        self.to = to


class Outcome(enum.StrEnum):
    """What presenting a token at a viewer leads to."""

    NEW_GREETER = "new_greeter"  # no session: start a greeter, then call create_greeter
    RESUMED = "resumed"  # a detached session is shown here now
    MOVED = "moved"  # hot-desk: the session left ``displaced_viewer`` for this viewer
    ALREADY_HERE = "already_here"  # it is shown here already (e.g. the kiosk reconnected)
    REAUTH_REQUIRED = "reauth_required"  # show an unlock greeter first, then attach(reauthenticated=True)
    REFUSED = "refused"  # the policy does not accept this kind of token


@dataclass(frozen=True)
class Presentation:
    outcome: Outcome
    #: The token's session after the decision (None for NEW_GREETER and REFUSED).
    session: Session | None
    #: MOVED: the viewer that showed the session until now; it goes back to its idle screen.
    displaced_viewer: str | None = None
    #: The session this viewer showed before and no longer shows (now detached), if any.
    replaced_session: str | None = None
    #: Send a complete frame (keyframe) before anything else: the viewer has nothing of it yet.
    keyframe_first: bool = False
    reason: str | None = None


def new_session_id() -> str:
    return secrets.token_hex(8)


class Registry:
    def __init__(self, db: sqlite3.Connection, policy: SessionPolicy, path: str = ":memory:") -> None:
        self._db = db
        self._path = path
        self.policy = policy
        self._sessions: dict[str, Session] = {}
        self._by_token: dict[str, str] = {}
        self._by_viewer: dict[str, str] = {}
        #: Why the file could not be written when it was opened (a full disk), else None: the live
        #: sessions are known all the same (read-only), and writing works again once there is room.
        self.unwritable: str | None = None

    # --- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, policy: SessionPolicy, now: float) -> Registry:
        """Open (or create) the registry at ``path`` and restore its live sessions (see module doc)."""
        if str(path) != ":memory:":
            p = Path(path)
            try:
                fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError as err:
                raise WayRayError(f"{path}: cannot open the session registry: {err.strerror}") from None
            os.close(fd)
        db = sqlite3.connect(str(path))
        try:
            return cls._open(db, path, policy=policy, now=now)
        except sqlite3.DatabaseError as err:
            db.close()
            raise WayRayError(
                f"{path}: the session registry cannot be used: {err}",
                hint="if the disk is full, free space; if the file is damaged, stop wrsrvd, move it "
                "aside and start again (the sessions it knew are then forgotten)",
            ) from None

    @classmethod
    def _open(
        cls, db: sqlite3.Connection, path: Path | str, *, policy: SessionPolicy, now: float
    ) -> Registry:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with db:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        while version in _MIGRATIONS:
            with db:
                db.executescript(_MIGRATIONS[version])
                version += 1
                db.execute(f"PRAGMA user_version={version}")
        if version not in (0, SCHEMA_VERSION):
            db.close()
            raise WayRayError(
                f"{path}: registry schema {version} is newer than this wrsrvd ({SCHEMA_VERSION})",
                hint="a newer WayRay wrote it: install that version again, or move the file aside "
                "(the sessions it knew are then forgotten)",
            )
        registry = cls(db, policy, str(path))
        registry._restore(now)
        return registry

    def close(self) -> None:
        self._db.close()

    def _restore(self, now: float) -> None:
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM sessions WHERE state != 'ended'"
        ).fetchall()
        for row in rows:
            s = _from_row(row)
            self._index(s)
            if s.state is SessionState.ACTIVE:
                restored = replace(
                    s, state=SessionState.DETACHED, viewer=None, detached_at=now, changed_at=now,
                    reattach_from=s.viewer_kiosk, viewer_kiosk=None,
                )  # fmt: skip
            elif s.state is SessionState.GREETER:
                # Its last input was kept in memory only: it starts over, so no login is cut short.
                restored = replace(s, viewer=None, viewer_kiosk=None, changed_at=now, last_input_at=now)
            else:
                restored = s
            try:
                self._commit(
                    restored, AuditKind.RESTORED, now, {"was": s.state.value, "viewer_was": s.viewer or "-"}
                )
            except RegistryError as err:
                # A full disk: the session is still there, as before the restart. It is served read-only
                # (wrsrvd says so); its record is written with its next change once there is room.
                self.unwritable = str(err)
                self._index(restored)

    # --- queries ----------------------------------------------------------------------------------

    def find(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def get(self, session_id: str) -> Session:
        s = self._sessions.get(session_id)
        if s is None:
            raise UnknownSession(session_id)
        return s

    def by_token(self, token: TokenRef) -> Session | None:
        sid = self._by_token.get(token.digest)
        return self._sessions[sid] if sid is not None else None

    def by_launcher_session(self, launcher_session: str) -> Session | None:
        """The live session whose compositor is wrsessd's session ``launcher_session``."""
        for s in self._sessions.values():
            if s.endpoint.launcher_session == launcher_session:
                return s
        return None

    def on_viewer(self, viewer: str) -> Session | None:
        sid = self._by_viewer.get(viewer)
        return self._sessions[sid] if sid is not None else None

    def live_sessions(self) -> list[Session]:
        return sorted(self._sessions.values(), key=lambda s: s.created_at)

    def user_sessions(self, user: str) -> list[Session]:
        return [s for s in self.live_sessions() if s.user == user]

    def audit(self, session_id: str | None = None) -> list[AuditEvent]:
        sql = "SELECT at, event, session_id, user, token, viewer, detail FROM audit"
        args: tuple[Any, ...] = ()
        if session_id is not None:
            sql += " WHERE session_id = ?"
            args = (session_id,)
        return [
            AuditEvent(at, AuditKind(event), sid, user, token, viewer, json.loads(detail))
            for at, event, sid, user, token, viewer, detail in self._db.execute(sql + " ORDER BY seq", args)
        ]

    # --- the badge-in path ------------------------------------------------------------------------

    def present(self, token: TokenRef, viewer: str, now: float, *, kiosk: str | None = None) -> Presentation:
        """A kiosk (``viewer``, whose identity is ``kiosk``: see ``Session.viewer_kiosk``) presents
        ``token``: decide, and carry out what needs no one else.

        RESUMED, MOVED and ALREADY_HERE are done when this returns (the caller switches the display,
        keyframe first, and tells ``displaced_viewer`` to show its idle screen). NEW_GREETER and
        REAUTH_REQUIRED change nothing yet: the caller starts a greeter (unlock greeter) and calls
        :meth:`create_greeter` (:meth:`attach` with ``reauthenticated=True``) when it runs.
        """
        if not pol.token_accepted(token.kind, self.policy):
            self._log(
                AuditEvent(
                    now, AuditKind.REFUSED, None, None, token.short, viewer, {"kind": token.kind.value}
                )
            )
            return Presentation(
                Outcome.REFUSED, None, reason=f"{token.kind.value} tokens are not accepted here"
            )
        s = self.by_token(token)
        if s is None:
            return Presentation(Outcome.NEW_GREETER, None)
        if s.state is SessionState.GREETER:
            if s.viewer == viewer:
                return Presentation(Outcome.ALREADY_HERE, s, keyframe_first=True)
            return self._show(s, viewer, kiosk, now)
        if pol.needs_reauth(s, kiosk, self.policy, now):
            self._log(AuditEvent(now, AuditKind.REAUTH_REQUIRED, s.id, s.user, token.short, viewer, {}))
            return Presentation(Outcome.REAUTH_REQUIRED, s)
        return self._show(s, viewer, kiosk, now)

    def attach(
        self,
        session_id: str,
        viewer: str,
        now: float,
        *,
        kiosk: str | None = None,
        reauthenticated: bool = False,
    ) -> Presentation:
        """Show a session on ``viewer`` (after an unlock greeter succeeded, or to attach explicitly)."""
        s = self.get(session_id)
        if s.state is SessionState.ENDED:
            raise IllegalTransition(s, SessionState.ACTIVE, "attach")
        if reauthenticated:
            self._log(AuditEvent(now, AuditKind.REAUTHENTICATED, s.id, s.user, s.token.short, viewer, {}))
        elif pol.needs_reauth(s, kiosk, self.policy, now):
            return Presentation(Outcome.REAUTH_REQUIRED, s)
        return self._show(s, viewer, kiosk, now)

    def _show(self, s: Session, viewer: str, kiosk: str | None, now: float) -> Presentation:
        if s.viewer == viewer and s.state is not SessionState.DETACHED:
            return Presentation(Outcome.ALREADY_HERE, s, keyframe_first=True)
        replaced = self._clear_viewer(viewer, now, keep=s.id)
        if s.state is SessionState.DETACHED:
            new = replace(
                s, state=SessionState.ACTIVE, viewer=viewer, last_viewer=viewer, detached_at=None,
                last_input_at=now, changed_at=now, viewer_kiosk=kiosk,
            )  # fmt: skip
            self._commit(new, AuditKind.ATTACHED, now, {})
            return Presentation(Outcome.RESUMED, new, replaced_session=replaced, keyframe_first=True)
        # ACTIVE or GREETER: the session follows the badge (a greeter shown nowhere is simply shown).
        displaced = s.viewer
        new = replace(s, viewer=viewer, last_viewer=viewer, changed_at=now, viewer_kiosk=kiosk)
        if displaced is None:
            self._commit(new, AuditKind.ATTACHED, now, {})
            return Presentation(Outcome.RESUMED, new, replaced_session=replaced, keyframe_first=True)
        self._commit(new, AuditKind.MOVED, now, {"from": displaced, "to": viewer})
        return Presentation(
            Outcome.MOVED, new, displaced_viewer=displaced, replaced_session=replaced, keyframe_first=True
        )

    def _clear_viewer(self, viewer: str, now: float, *, keep: str | None = None) -> str | None:
        """Whatever else ``viewer`` shows stops being shown there; returns that session's id."""
        other = self.on_viewer(viewer)
        if other is None or other.id == keep:
            return None
        self.detach(other.id, now)
        return other.id

    def viewer_left(self, viewer: str, now: float, *, lost: bool = True) -> Session | None:
        """The kiosk's badge was pulled (``lost`` False: the kiosk closed on purpose) or its connection
        was lost: detach what it showed. Only after a loss may that kiosk take the session back
        without a password (within the re-attach grace)."""
        s = self.on_viewer(viewer)
        if s is None:
            return None
        return self.detach(s.id, now, reattach_from=s.viewer_kiosk if lost else None)

    # --- explicit transitions ---------------------------------------------------------------------

    def create_greeter(
        self,
        token: TokenRef,
        viewer: str | None,
        endpoint: Endpoint,
        now: float,
        *,
        session_id: str | None = None,
        kiosk: str | None = None,
    ) -> Session:
        """Record the greeter session wrsessd started for ``token`` (after NEW_GREETER). ``session_id``
        lets the caller hand the id to the greeter's compositor before the session is recorded."""
        sid = self._new_session(token, viewer, now, session_id)
        s = Session(
            id=sid, token=token, state=SessionState.GREETER, user=None, viewer=viewer,
            last_viewer=viewer, created_at=now, changed_at=now, detached_at=None, last_input_at=now,
            endpoint=endpoint, viewer_kiosk=kiosk if viewer is not None else None,
        )  # fmt: skip
        self._commit(s, AuditKind.CREATED, now, {"launcher_session": endpoint.launcher_session or "-"})
        return s

    def create_session(
        self,
        token: TokenRef,
        viewer: str | None,
        user: str,
        endpoint: Endpoint,
        now: float,
        *,
        session_id: str | None = None,
        kiosk: str | None = None,
    ) -> Session:
        """Record a user session that starts without a greeter (standalone mode: no login, the
        server's own user): ACTIVE on ``viewer``, or DETACHED without one. ``session_id`` lets the
        caller hand the id to the process it starts before the session is recorded."""
        sid = self._new_session(token, viewer, now, session_id)
        state = SessionState.ACTIVE if viewer is not None else SessionState.DETACHED
        s = Session(
            id=sid, token=token, state=state, user=user, viewer=viewer, last_viewer=viewer, created_at=now,
            changed_at=now, detached_at=None if viewer is not None else now, last_input_at=now,
            endpoint=endpoint, viewer_kiosk=kiosk if viewer is not None else None,
        )  # fmt: skip
        self._commit(s, AuditKind.CREATED, now, {"greeter": False})
        return s

    def _new_session(self, token: TokenRef, viewer: str | None, now: float, session_id: str | None) -> str:
        """The id of a session about to be created for ``token`` on ``viewer``: refused while the token
        has one or the id is taken; the viewer is taken off whatever it showed."""
        existing = self.by_token(token)
        if existing is not None:
            raise RegistryError(
                f"token {token.short} already has session {existing.id} ({existing.state.value})"
            )
        sid = session_id or new_session_id()
        if sid in self._sessions:
            raise RegistryError(f"session id {sid} is in use")
        if viewer is not None:
            self._clear_viewer(viewer, now)
        return sid

    def logged_in(self, session_id: str, user: str, endpoint: Endpoint, now: float) -> Session:
        """The greeter's login started ``user``'s session, served by ``endpoint`` from now on."""
        s = self.get(session_id)
        to = SessionState.ACTIVE if s.viewer is not None else SessionState.DETACHED
        if s.state is not SessionState.GREETER:
            raise IllegalTransition(s, to, "log in to")
        new = replace(
            s, state=to, user=user, endpoint=endpoint, changed_at=now, last_input_at=now,
            detached_at=now if to is SessionState.DETACHED else None, touched_at=s.touched_at or now,
        )  # fmt: skip
        self._commit(new, AuditKind.LOGGED_IN, now, {"launcher_session": endpoint.launcher_session or "-"})
        return new

    def detach(self, session_id: str, now: float, *, reattach_from: str | None = None) -> Session:
        s = self.get(session_id)
        if s.state is SessionState.GREETER:
            if s.viewer is None:
                raise IllegalTransition(s, SessionState.GREETER, "detach")
            new = replace(s, viewer=None, viewer_kiosk=None, changed_at=now)
        else:
            self._check(s, SessionState.DETACHED, "detach")
            new = replace(
                s, state=SessionState.DETACHED, viewer=None, detached_at=now, changed_at=now,
                reattach_from=reattach_from, viewer_kiosk=None,
            )  # fmt: skip
        self._commit(new, AuditKind.DETACHED, now, {"viewer_was": s.viewer or "-"})
        return new

    def end(self, session_id: str, reason: EndReason, now: float) -> Session:
        s = self.get(session_id)
        self._check(s, SessionState.ENDED, "end")
        new = replace(
            s, state=SessionState.ENDED, viewer=None, viewer_kiosk=None, changed_at=now, end_reason=reason
        )
        try:
            self._commit(new, AuditKind.ENDED, now, {"reason": reason.value})
        except RegistryError:
            # Over is over, recorded or not (a full disk): it is not live any more here, and a restart
            # with room finds its compositor gone and records the end then.
            self._index(new)
            raise
        return new

    def set_endpoint(self, session_id: str, endpoint: Endpoint, now: float) -> Session:
        s = self.get(session_id)
        if s.state is SessionState.ENDED:
            raise IllegalTransition(s, s.state, "change the endpoint of")
        new = replace(s, endpoint=endpoint, changed_at=now)
        detail = {
            k: v
            for k, v in endpoint.to_json().items()
            if k not in ("link_secret_sha256", "next_link_secret_sha256")
        }
        self._commit(new, AuditKind.ENDPOINT, now, detail)
        return new

    def note_input(self, session_id: str, now: float) -> None:
        """The user typed or moved the pointer (idle policy). Kept in memory: it changes constantly;
        it is written with the next transition, and a restart only ever makes sessions look younger.
        The first input is written at once: a session in use must never look unused after a restart
        (the policy ends unused ones sooner)."""
        s = self._sessions.get(session_id)
        if s is None or now <= s.last_input_at:
            return
        if s.touched_at is None and s.state is not SessionState.GREETER:
            new = replace(s, last_input_at=now, touched_at=now)
            try:
                with self._db:
                    self._db.execute(_UPSERT_SESSION, _to_row(new))
            except sqlite3.DatabaseError as err:
                raise RegistryError(f"the session registry {self._path} cannot be written: {err}") from None
            self._index(new)
            return
        self._sessions[session_id] = replace(s, last_input_at=now)

    # --- policies ---------------------------------------------------------------------------------

    def due_actions(self, now: float) -> list[EndSession]:
        return pol.due_actions(self._sessions.values(), self.policy, now)

    def next_deadline(self) -> float | None:
        return pol.next_deadline(self._sessions.values(), self.policy)

    def purge_ended(self, before: float) -> int:
        """Forget ended sessions and audit events older than ``before``; returns sessions removed."""
        with self._db:
            n = self._db.execute(
                "DELETE FROM sessions WHERE state = 'ended' AND changed_at < ?", (before,)
            ).rowcount
            self._db.execute("DELETE FROM audit WHERE at < ?", (before,))
        return int(n)

    # --- internals --------------------------------------------------------------------------------

    @staticmethod
    def _check(s: Session, to: SessionState, action: str) -> None:
        if to not in TRANSITIONS[s.state]:
            raise IllegalTransition(s, to, action)

    def _index(self, s: Session) -> None:
        old = self._sessions.get(s.id)
        if old is not None and old.viewer is not None and self._by_viewer.get(old.viewer) == s.id:
            del self._by_viewer[old.viewer]
        if s.live:
            self._sessions[s.id] = s
            self._by_token[s.token.digest] = s.id
            if s.viewer is not None:
                self._by_viewer[s.viewer] = s.id
        else:
            self._sessions.pop(s.id, None)
            if self._by_token.get(s.token.digest) == s.id:
                del self._by_token[s.token.digest]

    def _commit(self, s: Session, kind: AuditKind, now: float, detail: dict[str, Any]) -> None:
        event = AuditEvent(now, kind, s.id, s.user, s.token.short, s.viewer or s.last_viewer, detail)
        try:
            with self._db:
                self._db.execute(_UPSERT_SESSION, _to_row(s))
                self._insert_audit(event)
        except sqlite3.DatabaseError as err:  # disk full, file damaged: nothing changed, in memory either
            raise RegistryError(f"the session registry {self._path} cannot be written: {err}") from None
        self._index(s)
        audit_log.info("%s", event.describe())

    def _insert_audit(self, event: AuditEvent) -> None:
        self._db.execute(
            _INSERT_AUDIT,
            (
                event.at,
                event.kind.value,
                event.session_id,
                event.user,
                event.token,
                event.viewer,
                json.dumps(event.detail, sort_keys=True),
            ),
        )

    def _log(self, event: AuditEvent) -> None:
        """An audit event that changes no session."""
        try:
            with self._db:
                self._insert_audit(event)
        except sqlite3.DatabaseError as err:
            raise RegistryError(f"the session registry {self._path} cannot be written: {err}") from None
        audit_log.info("%s", event.describe())


def _to_row(s: Session) -> tuple[Any, ...]:
    return (
        s.id, s.token.kind.value, s.token.digest, s.state.value, s.user, s.viewer, s.last_viewer,
        s.created_at, s.changed_at, s.detached_at, s.last_input_at, json.dumps(s.endpoint.to_json()),
        s.end_reason.value if s.end_reason else None, s.reattach_from, s.viewer_kiosk, s.touched_at,
    )  # fmt: skip


def _from_row(row: tuple[Any, ...]) -> Session:
    (sid, kind, digest, state, user, viewer, last_viewer, created, changed, detached, last_input, endpoint,
     end_reason, reattach_from, viewer_kiosk, touched_at) = row  # fmt: skip
    return Session(
        id=sid,
        token=TokenRef(SessionTokenKind(kind), digest),
        state=SessionState(state),
        user=user,
        viewer=viewer,
        last_viewer=last_viewer,
        created_at=created,
        changed_at=changed,
        detached_at=detached,
        last_input_at=last_input,
        endpoint=Endpoint.from_json(json.loads(endpoint)),
        end_reason=EndReason(end_reason) if end_reason else None,
        reattach_from=reattach_from,
        viewer_kiosk=viewer_kiosk,
        touched_at=touched_at,
    )
