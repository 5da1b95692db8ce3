"""Noticing a session compositor that hangs without closing its link, sans-IO.

A compositor that crashes closes its socket and wrsrvd ends its session. One that is stopped
(``kill -STOP``), swapping, or stuck in a loop keeps its socket open and simply answers nothing: its
viewer's picture freezes. wrsrvd therefore pings each link (:class:`~wayray.link.protocol.Ping`)
and counts the compositor's Pongs, as the wire's keep-alive does between viewer and server
(``wayray.wire.connection``). Unlike the wire, silence does not close anything: the compositor may
have been stopped on purpose, and its session, with its user's unsaved work, is worth waiting for.
It is only *not responding* until its next Pong.

:class:`LinkKeepAlive` takes the time as a parameter and does no I/O: its owner calls
:meth:`~LinkKeepAlive.tick` at :meth:`~LinkKeepAlive.deadline` (sending the Ping it returns) and
:meth:`~LinkKeepAlive.answered` for every Pong, and acts on the :class:`Change` either returns.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wayray.link.protocol import LinkError, Ping, Pong

#: A Ping this often.
PING_INTERVAL = 2.0
#: No Pong for this long: the compositor is not responding.
RESPONSE_TIMEOUT = 6.0


class Change(enum.Enum):
    """What the owner must act on."""

    #: No Pong for the response timeout: warn, tell the viewer and operators.
    NOT_RESPONDING = "not responding"
    #: A Pong after a spell of not responding: the session works again.
    RESPONDING = "responding"


@dataclass(frozen=True)
class KeepAliveSettings:
    interval: float = PING_INTERVAL
    timeout: float = RESPONSE_TIMEOUT

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= self.interval:
            raise ValueError("the response timeout must be longer than the ping interval, and both positive")


class LinkKeepAlive:
    def __init__(self, now: float, settings: KeepAliveSettings | None = None) -> None:
        self.settings = settings or KeepAliveSettings()
        #: Since when the compositor has answered nothing (or since the link was registered).
        self.silent_since = now
        #: When the compositor stopped responding (None while it responds).
        self.not_responding_since: float | None = None
        #: The last measured round trip (Ping → Pong), in seconds.
        self.rtt: float | None = None
        self._nonce = 0
        self._sent: dict[int, float] = {}
        self._next_ping = now
        self._last_tick = now

    @property
    def responding(self) -> bool:
        return self.not_responding_since is None

    def deadline(self) -> float:
        """When :meth:`tick` must be called next."""
        if self.responding:
            return min(self._next_ping, self.silent_since + self.settings.timeout)
        return self._next_ping

    def tick(self, now: float) -> tuple[Ping | None, Change | None]:
        """The Ping to send now (if one is due), and whether the compositor just stopped responding."""
        s = self.settings
        if now - self._last_tick > s.interval + s.timeout / 2:
            # This process itself did not run for a while (a stall, a suspended machine): the Pongs of
            # that time may be unread in the socket. Judge only what could be watched from now on.
            self.silent_since = max(self.silent_since, now - s.interval)
        self._last_tick = now
        change = None
        if self.responding and now - self.silent_since >= s.timeout:
            self.not_responding_since = now
            change = Change.NOT_RESPONDING
        ping = None
        if now >= self._next_ping:
            self._nonce += 1
            self._sent[self._nonce] = now
            # Only recent Pings matter for the round trip; forget those whose Pong never came.
            for old in [n for n in self._sent if n <= self._nonce - 8]:
                del self._sent[old]
            ping = Ping(nonce=self._nonce)
            self._next_ping = now + s.interval
        return ping, change

    def answered(self, pong: Pong, now: float) -> Change | None:
        """A Pong arrived: :data:`Change.RESPONDING` when it ends a spell of not responding.
        :class:`~wayray.link.protocol.LinkError` for a Pong to a Ping never sent."""
        if not 1 <= pong.nonce <= self._nonce:
            raise LinkError(f"Pong {pong.nonce} answers no Ping (the last one sent was {self._nonce})")
        sent = self._sent.pop(pong.nonce, None)
        if sent is not None:
            self.rtt = now - sent
        # Even a late answer (to a Ping before the newest) shows the compositor runs and reads now.
        self.silent_since = now
        if self.not_responding_since is None:
            return None
        self.not_responding_since = None
        return Change.RESPONDING
