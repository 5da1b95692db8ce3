"""Session policies as pure functions: sessions and the time go in, decisions come out.

Nothing here reads a clock or touches a socket (like aioquic's ``QuicConnection``): wrsrvd calls
:func:`due_actions` when the timer from :func:`next_deadline` fires and carries the actions out
(``kill_session`` on wrsessd, then :meth:`Registry.end`), and the registry asks :func:`needs_reauth`
before it shows a session on a kiosk. The values come from the configuration model's session policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from wayray.server.model import EndReason, Session, SessionState
from wayray.server.tokens import SessionTokenKind


@dataclass(frozen=True)
class SessionPolicy:
    #: A detached session ends after this long without a viewer; None: never.
    detached_timeout_s: float | None = 24 * 3600.0
    #: A session that never received input ends this long after its viewer left, and a greeter this
    #: long after its last input (or its start), shown or not; None: never.
    untouched_timeout_s: float | None = 600.0
    #: An attached session with no input for this long is logged out; None: never. (Detached
    #: sessions are governed by detached_timeout_s alone.)
    idle_timeout_s: float | None = None
    #: A greeter with no viewer (the badge left before logging in) ends after this long.
    greeter_timeout_s: float | None = 120.0
    #: Ask for the password before a detached session is shown again, or moved to another kiosk.
    reauth_on_reattach: bool = False
    #: ... except on the kiosk it was last shown on, within this long after it detached (network
    #: blips, a wrsrvd restart).
    reattach_grace_s: float = 60.0
    #: Most live user sessions per user; None: no limit (wrsessd enforces it when sessions start).
    max_sessions_per_user: int | None = None
    #: Token kinds that may get a session at all.
    accepted_token_kinds: frozenset[SessionTokenKind] = field(
        default_factory=lambda: frozenset(SessionTokenKind)
    )

    def __post_init__(self) -> None:
        for name in ("detached_timeout_s", "untouched_timeout_s", "idle_timeout_s", "greeter_timeout_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or unset for no limit)")
        if self.reattach_grace_s < 0:
            raise ValueError("reattach_grace_s must not be negative")
        if self.max_sessions_per_user is not None and self.max_sessions_per_user < 1:
            raise ValueError("max_sessions_per_user must be at least 1 (or unset)")


@dataclass(frozen=True)
class EndSession:
    """Action: end this session (wrsessd ``kill_session {reason: policy}``, then ``Registry.end``)."""

    session_id: str
    reason: EndReason
    #: The wrsessd session to kill, if one serves it.
    launcher_session: str | None


def _timers(session: Session, policy: SessionPolicy) -> list[tuple[float, EndReason]]:
    out: list[tuple[float, EndReason]] = []
    if session.state is SessionState.DETACHED:
        since = session.detached_at if session.detached_at is not None else session.changed_at
        if policy.detached_timeout_s is not None:
            out.append((since + policy.detached_timeout_s, EndReason.DETACHED_TIMEOUT))
        if session.touched_at is None and policy.untouched_timeout_s is not None:
            out.append((since + policy.untouched_timeout_s, EndReason.UNTOUCHED_TIMEOUT))
    if session.state is SessionState.GREETER and policy.untouched_timeout_s is not None:
        # Shown or not: a login screen kept open by an idle connection holds memory for nobody.
        out.append((session.last_input_at + policy.untouched_timeout_s, EndReason.UNTOUCHED_TIMEOUT))
    if session.state is SessionState.ACTIVE and policy.idle_timeout_s is not None:
        out.append((session.last_input_at + policy.idle_timeout_s, EndReason.IDLE_TIMEOUT))
    if (
        session.state is SessionState.GREETER
        and session.viewer is None
        and policy.greeter_timeout_s is not None
    ):
        out.append((session.changed_at + policy.greeter_timeout_s, EndReason.GREETER_TIMEOUT))
    return out


def due_actions(sessions: Iterable[Session], policy: SessionPolicy, now: float) -> list[EndSession]:
    """The sessions whose policy deadline has passed at ``now``, earliest deadline first."""
    due: list[tuple[float, EndSession]] = []
    for s in sessions:
        timers = [(at, why) for at, why in _timers(s, policy) if at <= now]
        if timers:
            at, why = min(timers, key=lambda t: t[0])
            due.append((at, EndSession(s.id, why, s.endpoint.launcher_session)))
    return [action for _, action in sorted(due, key=lambda d: d[0])]


def next_deadline(sessions: Iterable[Session], policy: SessionPolicy) -> float | None:
    """When :func:`due_actions` next has something to say (None: nothing pending)."""
    times = [at for s in sessions for at, _ in _timers(s, policy)]
    return min(times) if times else None


def token_accepted(kind: SessionTokenKind, policy: SessionPolicy) -> bool:
    return kind in policy.accepted_token_kinds


def needs_reauth(session: Session, kiosk: str | None, policy: SessionPolicy, now: float) -> bool:
    """Whether showing ``session`` on a viewer whose kiosk identity is ``kiosk`` needs its owner's
    password first.

    Kiosks are told apart by their identity (``Session.viewer_kiosk``: their terminal identity or
    client certificate), never by their address: behind NAT every kiosk of a site has the same one,
    and any program on a kiosk's host has its address too. A kiosk that reconnects (a network blip, a
    wrsrvd restart) comes back with a new connection and the same identity. So a session shown on a
    kiosk moves to another kiosk only with the password; a session detached because its connection
    was lost (or by a restart) goes back to the same kiosk within the grace without one; a session
    whose badge was taken out asks for it wherever it is presented next. A viewer without an identity
    is no kiosk: it always needs the password."""
    if not policy.reauth_on_reattach or session.user is None:
        return False  # a greeter has nothing to protect yet
    if kiosk is None:
        return True
    if session.state is SessionState.ACTIVE:
        return session.viewer is None or session.viewer_kiosk != kiosk
    if session.state is SessionState.DETACHED:
        recent = session.detached_at is not None and now - session.detached_at <= policy.reattach_grace_s
        return not (recent and session.reattach_from == kiosk)
    return False


def session_limit_reached(user: str, sessions: Iterable[Session], policy: SessionPolicy) -> bool:
    """True when ``user`` already has as many live user sessions as the policy allows."""
    if policy.max_sessions_per_user is None:
        return False
    count = sum(
        1 for s in sessions if s.user == user and s.state in (SessionState.ACTIVE, SessionState.DETACHED)
    )
    return count >= policy.max_sessions_per_user
