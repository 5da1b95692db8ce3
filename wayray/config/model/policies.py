"""``policies.toml``: the named session policies a server applies."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from wayray.config.schema import ListRule, setting
from wayray.config.types import Bool, Choice, Duration, Integer, ListOf


class ClipboardDirection(enum.StrEnum):
    BOTH = "both"
    TO_CLIENT = "to-client"
    TO_SERVER = "to-server"
    NONE = "none"

    @property
    def to_client(self) -> bool:
        """May text copied in the session be pasted on the client side?"""
        return self in (ClipboardDirection.BOTH, ClipboardDirection.TO_CLIENT)

    @property
    def to_server(self) -> bool:
        """May text copied on the client side be pasted into the session?"""
        return self in (ClipboardDirection.BOTH, ClipboardDirection.TO_SERVER)


class AudioPolicy(enum.StrEnum):
    OFF = "off"
    PLAYBACK = "playback"
    PLAYBACK_MICROPHONE = "playback+microphone"

    @property
    def playback(self) -> bool:
        return self is not AudioPolicy.OFF

    @property
    def microphone(self) -> bool:
        return self is AudioPolicy.PLAYBACK_MICROPHONE


class SessionTokenKind(enum.StrEnum):
    #: A badge or smart card identifies the person; the session follows it from kiosk to kiosk.
    BADGE = "badge"
    #: No badge: the kiosk itself is the token, so its session stays with that kiosk.
    TERMINAL = "terminal"


@dataclass(frozen=True)
class PolicyConfig:
    """One ``[policy.<name>]`` table. A policy named ``default`` always exists."""

    detached_timeout: timedelta | None = setting(
        timedelta(hours=24),
        Duration(allow_never=True),
        "How long a session with no client attached is kept before it is logged out.",
    )
    untouched_timeout: timedelta | None = setting(
        timedelta(minutes=10),
        Duration(allow_never=True, minimum=1),
        "A session that never received input (no key, click or scroll since it started: typically "
        "opened by a stranger or a script) ends this long after its viewer left, instead of after "
        "`detached_timeout`; a login screen nobody typed into ends this long after it started, even "
        "while shown. A login makes a session count as used.",
    )
    idle_logout: timedelta | None = setting(
        None,
        Duration(allow_never=True, minimum=60),
        "Log out a session that had no input for this long, attached or not.",
    )
    reauth_on_reattach: bool = setting(
        True,
        Bool(),
        "Ask for the password again when a session is re-attached at another client (badge moved).",
    )
    max_sessions_per_user: int = setting(
        1, Integer(0, 1000), "Most sessions one user may have on a server; 0 = no limit."
    )
    clipboard: ClipboardDirection = setting(
        ClipboardDirection.BOTH,
        Choice(ClipboardDirection),
        "Which way the clipboard may flow between session and client.",
    )
    audio: AudioPolicy = setting(
        AudioPolicy.PLAYBACK,
        Choice(AudioPolicy, booleans={True: AudioPolicy.PLAYBACK, False: AudioPolicy.OFF}),
        'Session audio (docs/audio.md): "off" (no sound server in the session, no audio channel), '
        '"playback" (the session\'s sound plays at the kiosk), "playback+microphone" (and the kiosk\'s '
        'microphone records into the session). Read when a session starts ("off" starts no sound '
        "server) and at every attach (what the viewer is offered). true and false from earlier files "
        'mean "playback" and "off".',
    )
    audio_bitrate: int = setting(
        96,
        Integer(16, 256),
        "Opus bit rate of a session's sound, in kbit/s (stereo, 48 kHz); read at each attach.",
    )
    x11: bool = setting(
        True,
        Bool(),
        "X11 programs in the session: an X display (`DISPLAY`) served by Xwayland, started when the first "
        "X program connects (docs/xwayland.md). Off: no X display, no X sockets, Xwayland never runs.",
    )
    tokens: tuple[SessionTokenKind, ...] = setting(
        (SessionTokenKind.BADGE, SessionTokenKind.TERMINAL),
        ListOf(Choice(SessionTokenKind), min_items=1),
        'Token kinds accepted for sessions: "badge" (the session follows the badge) and "terminal" '
        "(no badge: the session belongs to the kiosk).",
        list_rule=ListRule.REPLACE,
    )
    name: str = ""
