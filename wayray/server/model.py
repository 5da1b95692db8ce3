"""The session registry's values: states and their transitions, sessions, endpoints, audit events.

Frozen dataclasses: the registry hands out snapshots, and a transition makes a new one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from wayray.server.tokens import TokenRef


class SessionState(enum.StrEnum):
    GREETER = "greeter"  # a greeter runs for the token; nobody has logged in yet
    ACTIVE = "active"  # a user session, shown on a viewer (kiosk)
    DETACHED = "detached"  # a user session, shown nowhere; it keeps running
    ENDED = "ended"  # gone (kept for the audit trail until purged)


#: The legal transitions. ACTIVE → ACTIVE on another viewer is a *move*, not a state change.
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.GREETER: frozenset({SessionState.ACTIVE, SessionState.DETACHED, SessionState.ENDED}),
    SessionState.ACTIVE: frozenset({SessionState.DETACHED, SessionState.ENDED}),
    SessionState.DETACHED: frozenset({SessionState.ACTIVE, SessionState.ENDED}),
    SessionState.ENDED: frozenset(),
}


class EndReason(enum.StrEnum):
    """Why a registry session ended (audit log, ``wradm``)."""

    LOGOUT = "logout"  # the user logged out
    OPERATOR = "operator"  # killed by an operator
    DETACHED_TIMEOUT = "detached_timeout"  # detached longer than the policy allows
    IDLE_TIMEOUT = "idle_timeout"  # attached but without input longer than the policy allows
    GREETER_TIMEOUT = "greeter_timeout"  # a greeter nobody looked at
    UNTOUCHED_TIMEOUT = "untouched_timeout"  # never used (no input), and no viewer or no login for long
    LAUNCHER_ENDED = "launcher_ended"  # wrsessd reported the session gone (compositor exited, crash)
    LOGIN_FAILED = "login_failed"  # the greeter gave up / the session could not start
    COMMAND_EXITED = "command_exited"  # standalone: the session's command exited (the user quit it)
    COMPOSITOR_LOST = "compositor_lost"  # the session compositor died or never came back to wrsrvd
    START_FAILED = "start_failed"  # the session compositor could not be started
    SHUTDOWN = "shutdown"  # the machine shut down or restarted while it ran

    @property
    def by_policy(self) -> bool:
        return self in (
            EndReason.DETACHED_TIMEOUT,
            EndReason.IDLE_TIMEOUT,
            EndReason.GREETER_TIMEOUT,
            EndReason.UNTOUCHED_TIMEOUT,
        )


@dataclass(frozen=True)
class Endpoint:
    """How wrsrvd reaches the compositor that currently serves a session."""

    #: wrsessd's id of the running (greeter or user) session: what ``kill_session`` takes.
    launcher_session: str | None = None
    compositor_pid: int | None = None
    wayland_display: str | None = None
    #: The link between wrsrvd and the compositor (e.g. a Unix socket path), set by wrsrvd's link code.
    link: str | None = None
    #: SHA-256 (hex) of the secret the compositor presents when it registers on the link. The secret
    #: itself is only in the compositor's environment.
    link_secret_sha256: str | None = None
    #: The uid the compositor runs as (login mode: the greeter user, then the user); a link
    #: registration from another uid is refused even with the right secret.
    uid: int | None = None
    #: A greeter's: SHA-256 of the secret handed (through wrsessd) to the user's compositor its login
    #: will start, so that compositor is known when it registers, even before wrsessd's event.
    next_link_secret_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Endpoint:
        return cls(**{k: obj.get(k) for k in _ENDPOINT_FIELDS})


_ENDPOINT_FIELDS = (
    "launcher_session",
    "compositor_pid",
    "wayland_display",
    "link",
    "link_secret_sha256",
    "uid",
    "next_link_secret_sha256",
)


@dataclass(frozen=True)
class Session:
    id: str
    token: TokenRef
    state: SessionState
    #: The account once logged in; None while a greeter runs.
    user: str | None
    #: The viewer (kiosk connection) showing it now, if any.
    viewer: str | None
    #: The viewer that showed it last (for the re-attach grace of the re-authentication policy).
    last_viewer: str | None
    created_at: float
    changed_at: float
    detached_at: float | None
    last_input_at: float
    endpoint: Endpoint = field(default_factory=Endpoint)
    end_reason: EndReason | None = None
    #: DETACHED because its viewer's connection was lost (not closed on purpose: a badge taken out),
    #: or by a wrsrvd restart: the kiosk (its identity, see ``viewer_kiosk``) that may take it back
    #: without a password within the policy's re-attach grace. None: re-attaching asks for the password
    #: (with reauth_on_reattach).
    reattach_from: str | None = None
    #: The identity of the kiosk that shows it: a keyed digest of the viewer's terminal identity (its
    #: Hello's ``terminal_id``) or of its client certificate. Never its address: behind NAT every kiosk
    #: of a site has the same one. None: the viewer has none (an old client), so it is no kiosk's.
    viewer_kiosk: str | None = None
    #: When it first received input (or its user logged in); None: never used. Sessions never used
    #: end sooner (the policy's untouched_timeout) and count against their source (admission).
    touched_at: float | None = None

    @property
    def live(self) -> bool:
        return self.state is not SessionState.ENDED


class AuditKind(enum.StrEnum):
    CREATED = "created"  # a greeter session for a token
    LOGGED_IN = "logged_in"  # greeter → user session
    ATTACHED = "attached"  # shown on a viewer (resume after detach)
    MOVED = "moved"  # hot-desk: from one viewer to another
    DETACHED = "detached"
    REAUTH_REQUIRED = "reauth_required"
    REAUTHENTICATED = "reauthenticated"
    ENDPOINT = "endpoint"  # the serving compositor changed
    RESTORED = "restored"  # loaded after a wrsrvd restart
    ENDED = "ended"
    REFUSED = "refused"  # a token the policy does not accept


def kiosk_of(viewer: str) -> str:
    """The host of a viewer key (``host:port#n``, or a bare name in tests), for operators (``wradm
    sessions``' KIOSK column). Not an identity: behind NAT many kiosks share one host (the registry
    tells kiosks apart by ``Session.viewer_kiosk``)."""
    address = viewer.rpartition("#")[0] or viewer
    if address.startswith("["):
        return address[1:].partition("]")[0]
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() else address


@dataclass(frozen=True)
class AuditEvent:
    at: float
    kind: AuditKind
    session_id: str | None
    user: str | None
    token: str  # TokenRef.short, never the token
    viewer: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.detail.items()))
        return (
            f"{self.kind.value} session={self.session_id or '-'} user={self.user or '-'} token={self.token} "
            f"viewer={self.viewer or '-'}" + (f" {extra}" if extra else "")
        )
