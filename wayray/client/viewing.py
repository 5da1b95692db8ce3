"""What a viewer is given (:class:`ViewerOptions`), what it counts (:class:`ViewerStats`) and how it
ends (:class:`Ending`); :mod:`wayray.client.viewer` does the viewing."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wayray.transport import ClientSettings
from wayray.wire import TokenKind


class Ending(enum.StrEnum):
    """Why a viewer stopped."""

    #: Stopped on purpose (a script finished, Ctrl-C, the window closed).
    STOPPED = "stopped"
    #: The session ended (its user quit it, an operator or a policy ended it).
    SESSION_ENDED = "session-ended"
    #: Another viewer presented the same token: the session is shown there now.
    SESSION_MOVED = "session-moved"
    #: The server refused: token, identity, version, client certificate.
    REFUSED = "refused"
    #: The connection was lost and reconnecting is off.
    LOST = "lost"
    #: The server detached this viewer on purpose (an operator); the session keeps running.
    DETACHED = "detached"


@dataclass(frozen=True)
class ViewerOptions:
    host: str
    port: int
    client: ClientSettings
    #: A secret: never in a repr (so never in a log line or a traceback that shows one).
    token: str = field(repr=False)
    token_kind: TokenKind
    reconnect: bool = True
    backoff_first: float = 0.25
    backoff_longest: float = 5.0
    client_name: str = "wrclient"
    client_version: str = ""
    #: Further servers (host, port), tried in order when the one before does not answer
    #: (client.toml's ``servers`` after the first).
    fallbacks: tuple[tuple[str, int], ...] = ()
    #: The access key of servers that require one ("": none); a secret, like the token.
    access_key: str = field(default="", repr=False)
    #: This viewer's terminal key (``identity.terminal_key``), "" for none: each server it reaches gets
    #: the identity derived from it for that server.
    terminal_key: str = field(default="", repr=False)
    #: A pool's members as discovery finds them now (``wayray.pool.mdns.PoolBrowser.addresses``),
    #: tried before ``host`` and the fallbacks; each is trusted through the pool's trust only.
    discover: Callable[[], tuple[tuple[str, int], ...]] | None = None
    #: The pool's name, for messages ("" without one).
    pool: str = ""
    #: Tells discovery that a server did not answer (it is dialled last for a while).
    unanswered: Callable[[tuple[str, int]], None] | None = None

    @property
    def servers(self) -> tuple[tuple[str, int], ...]:
        found = self.discover() if self.discover is not None else ()
        configured = ((self.host, self.port),) if self.host else ()
        return tuple(dict.fromkeys((*found, *configured, *self.fallbacks)))

    def discovered(self, server: tuple[str, int]) -> bool:
        return self.discover is not None and server in self.discover()


@dataclass
class ViewerStats:
    connects: int = 0
    #: Redirects followed to another member of a pool.
    redirects: int = 0
    #: Of those, the ones that found the member's handshake made already (dialled ahead).
    redirects_dialled_ahead: int = 0
    frames: int = 0
    keyframes: int = 0
    frame_bytes: int = 0
    regions: Counter[str] = field(default_factory=Counter)
    region_bytes: Counter[str] = field(default_factory=Counter)
    keyframe_requests: int = 0
    #: Video pictures that came at half size (the ``video-scaled`` capability).
    scaled_pictures: int = 0
    decode_seconds: float = 0.0
    cursor_messages: int = 0
    #: Key press sent → the next frame that changed pixels was shown, in milliseconds.
    key_to_pixels_ms: list[float] = field(default_factory=list)
    last_close: str | None = None
    #: When each script command started: (line, command, CLOCK_MONOTONIC seconds), for benchmarks
    #: that line the viewer's actions up with what they measured elsewhere on the same machine.
    script_marks: list[tuple[int, str, float]] = field(default_factory=list)
    #: When each frame that changed pixels was shown (CLOCK_MONOTONIC seconds; the last 100,000).
    shown_at: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "connects": self.connects,
            "redirects": self.redirects,
            "redirects_dialled_ahead": self.redirects_dialled_ahead,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "frame_bytes": self.frame_bytes,
            "regions": dict(self.regions),
            "region_bytes": dict(self.region_bytes),
            "keyframe_requests": self.keyframe_requests,
            "scaled_pictures": self.scaled_pictures,
            "decode_seconds": round(self.decode_seconds, 4),
            "cursor_messages": self.cursor_messages,
            "key_to_pixels_ms": [round(x, 3) for x in self.key_to_pixels_ms],
            "last_close": self.last_close,
            "script_marks": [{"line": n, "command": c, "monotonic": t} for n, c, t in self.script_marks],
            "shown_at": [round(t, 4) for t in self.shown_at],
        }
