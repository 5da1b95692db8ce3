"""What wrsrvd holds at run time for each viewer and each session (the registry holds what persists).

:class:`Viewer` is one viewer's connection; :class:`ServedSession` one session as the front door
serves it: its compositor's link and its viewer (wrsessd keeps its own, other record of the sessions it
runs, in ``wayray.launcher.daemon``). The front door's parts share them through
:class:`~wayray.server.table.SessionTable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from dataclasses import dataclass, field

from wayray.link import LINK_VERSION, Attached, Detach, LinkError
from wayray.link.keepalive import LinkKeepAlive
from wayray.link.stream import LinkStream
from wayray.server.admission import Kind
from wayray.server.spawn import SessionProcess
from wayray.transport import ConnectionClosedError, ServerConnection
from wayray.wire import SCALE_ONE, ErrorCode, SessionEvent, SessionEventKind, WireUsageError


@dataclass(eq=False)
class Viewer:
    """One viewer's connection and which session it shows."""

    conn: ServerConnection
    #: The registry's name for this viewer (unique per connection).
    key: str
    session: ServedSession | None = None
    attach_id: int = 0
    last_input: float = 0.0
    #: The token found a running session (ServerHello.resumed).
    resumed: bool = False
    #: Its kiosk's identity (``TokenHasher.kiosk``), None when it has none.
    kiosk: str | None = None
    #: Whom what it starts counts against (``admission.source_of``).
    source: str = ""

    def tell(self, kind: SessionEventKind, detail: str) -> None:
        """A SessionEvent for the viewer (a kiosk shows it on its status); one that went is not told."""
        with contextlib.suppress(ConnectionClosedError, WireUsageError):
            self.conn.send(SessionEvent(kind=kind, detail=detail[:1000]))

    def tell_and_close(self, kind: SessionEventKind, code: ErrorCode, detail: str) -> None:
        """Say why the viewer loses its session (when it was greeted: a SessionEvent comes only after
        the ServerHello), then close its connection with ``code`` and the same reason."""
        if self.conn.server_hello is not None:
            self.tell(kind, detail)
        self.conn.close(code, detail)


@dataclass(eq=False)
class ServedSession:
    """What wrsrvd knows at run time about a session in its registry (or an unlock screen, which is
    in no registry): its compositor, that compositor's link, and the viewer that shows it."""

    id: str
    link: LinkStream | None = None
    linked: asyncio.Event = field(default_factory=asyncio.Event)
    process: SessionProcess | None = None
    pid: int | None = None
    wayland_display: str = ""
    output: tuple[int, int, int] = (0, 0, SCALE_ONE)
    viewer: Viewer | None = None
    attach_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    attaching: dict[int, asyncio.Future[Attached]] = field(default_factory=dict)
    screenshots: dict[int, asyncio.Future[bytes]] = field(default_factory=dict)
    ended: bool = False
    #: When a session restored from the registry must be back on its link (else it is gone).
    relink_by: float | None = None
    #: Login mode: wrsessd's id of the session whose compositor serves this one now, and the systemd
    #: scope it runs in (wrsessd says; wradm sessions reads its cgroup's counters).
    launcher_session: str | None = None
    unit: str | None = None
    #: Unlock greeters (not in the registry): the secret's digest and uid their compositor registers
    #: with, and the registry session they unlock.
    transient_secret_sha256: str | None = None
    uid: int | None = None
    unlocks: str | None = None
    #: Set when the greeter's login has been switched over to the user's compositor.
    login_done: asyncio.Event = field(default_factory=asyncio.Event)
    #: The link version its compositor registered with.
    link_version: int = LINK_VERSION
    #: Pings its link (compositors of link version 2 on); None before it registers and for older ones.
    keepalive: LinkKeepAlive | None = None
    #: Wall-clock time since when its compositor answers nothing (None while it responds).
    not_responding_at: float | None = None
    #: For admission: the source that started it, what it is, and its estimated memory.
    source: str = ""
    kind: Kind = Kind.SESSION
    memory: int = 0
    #: Bytes relayed to its viewers and from them (since this wrsrvd started), for wradm sessions.
    sent_bytes: int = 0
    received_bytes: int = 0

    @property
    def responding(self) -> bool:
        return self.not_responding_at is None

    def send_detach(self, viewer: Viewer, reason: str) -> None:
        """Tell the compositor that ``viewer`` no longer shows it, if it was attached there. One whose
        link does not read is not waited for (the next Ping finds it out)."""
        if self.link is not None and viewer.attach_id:
            with contextlib.suppress(LinkError):
                self.link.send(Detach(attach_id=viewer.attach_id, reason=reason[:1000]))


class SessionNotResponding(Exception):
    """The session's compositor answers nothing: what waited for its answer gives up."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sha256_hex(secret: str) -> str:
    """What the registry keeps of a link secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def host_of(address: str) -> str:
    """The host part of a peer address ("10.0.0.7:50123", "[2001:db8::7]:50123"): the kiosk's address
    for PAM_RHOST."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    return address.rpartition(":")[0] or address
