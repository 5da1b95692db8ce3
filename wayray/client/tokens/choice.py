"""Which token source a kiosk uses, from wrclient's options and ``client.toml``.

One source at a time, first that applies:

1. a token given on the command line (``StaticToken``);
2. a token file, or 3. a token socket, that a badge-reader program writes to;
4. the USB keyboard-wedge reader of ``[client] badge.vendor`` / ``badge.product`` (``UdevBadgeReader``);
5. none of these: the kiosk's own identity (``TerminalIdentity``), so it still gets a session.

Sources 1–3 are chosen by whoever starts wrclient, so they override the reader from the configuration;
giving more than one of them is a usage error. ``badge.vendor = "*"`` (the default) means "no USB badge
reader": matching every vendor would grab the kiosk's own keyboard.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from wayray.client.tokens.events import InvalidToken, TokenKind
from wayray.client.tokens.file_source import FileTokenSource
from wayray.client.tokens.socket_source import SocketTokenSource
from wayray.client.tokens.source import TokenSource
from wayray.client.tokens.static import StaticToken
from wayray.client.tokens.terminal import TerminalIdentity
from wayray.client.tokens.udev_reader import ReaderMatch, UdevBadgeReader
from wayray.common.errors import UsageError
from wayray.config import BadgeReaderSettings


class SourceKind(enum.StrEnum):
    STATIC = "static"
    FILE = "file"
    SOCKET = "socket"
    READER = "reader"
    TERMINAL = "terminal"

    @property
    def follows_badge(self) -> bool:
        """Whether a badge can come and go (so an idle "insert badge" screen makes sense)."""
        return self in (SourceKind.FILE, SourceKind.SOCKET, SourceKind.READER)


@dataclass(frozen=True)
class TokenSourceSettings:
    """Everything that decides the kiosk's token source. Build it with :meth:`from_config`."""

    #: A fixed token (wrclient's command line). A secret: never in a repr.
    token: str | None = field(default=None, repr=False)
    #: Kind sent with that fixed token (the wire's SOFTWARE: "given on the command line or in a file").
    token_kind: TokenKind = TokenKind.SOFTWARE
    #: A file a badge-reader program writes the inserted badge to (kind BADGE).
    token_file: Path | None = None
    #: A Unix socket a badge-reader program sends ``insert``/``remove`` lines to (kind BADGE).
    token_socket: Path | None = None
    #: The USB keyboard-wedge reader (from ``client.toml``); None: no such reader.
    reader: ReaderMatch | None = None
    #: What the reader types when a card is taken out (None: the reader cannot tell).
    removal_sequence: str | None = None
    #: Presenting the same badge again removes it (tap-style readers).
    repeat_removes: bool = False
    #: Where the kiosk's own identity is kept (None: the default state directory).
    terminal_token: Path | None = None

    @classmethod
    def from_config(
        cls,
        badge: BadgeReaderSettings,
        *,
        token: str | None = None,
        token_kind: TokenKind = TokenKind.SOFTWARE,
        token_file: Path | None = None,
        token_socket: Path | None = None,
        removal_sequence: str | None = None,
        repeat_removes: bool | None = None,
        terminal_token: Path | None = None,
    ) -> TokenSourceSettings:
        """Settings from ``[client] badge.*`` (``client.toml``) plus wrclient's options, which win: a
        token, token file or token socket given to wrclient replaces the configured file or socket."""
        reader = ReaderMatch(badge.vendor, badge.product) if badge.vendor is not None else None
        if token is None and token_file is None and token_socket is None:
            token_file = Path(str(badge.file)) if badge.file is not None else None
            token_socket = Path(str(badge.socket)) if badge.socket is not None else None
        return cls(
            token=token,
            token_kind=token_kind,
            token_file=token_file,
            token_socket=token_socket,
            reader=reader,
            removal_sequence=removal_sequence
            if removal_sequence is not None
            else badge.removal_sequence or None,
            repeat_removes=repeat_removes if repeat_removes is not None else badge.repeat_removes,
            terminal_token=terminal_token,
        )

    def choice(self) -> SourceKind:
        given = [
            name
            for name, value in (
                ("a token", self.token),
                ("a token file", self.token_file),
                ("a token socket", self.token_socket),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise UsageError(f"give only one token source, not {' and '.join(given)}")
        if self.token is not None:
            return SourceKind.STATIC
        if self.token_file is not None:
            return SourceKind.FILE
        if self.token_socket is not None:
            return SourceKind.SOCKET
        if self.reader is not None:
            return SourceKind.READER
        return SourceKind.TERMINAL


def open_token_source(settings: TokenSourceSettings) -> TokenSource:
    """The token source ``settings`` call for (not started yet: iterate it, or ``await start()``)."""
    kind = settings.choice()
    if kind is SourceKind.STATIC:
        assert settings.token is not None
        try:
            return StaticToken(settings.token, settings.token_kind)
        except InvalidToken as err:
            raise UsageError(f"the token given on the command line is unusable: {err}") from None
    if kind is SourceKind.FILE:
        assert settings.token_file is not None
        return FileTokenSource(settings.token_file)
    if kind is SourceKind.SOCKET:
        assert settings.token_socket is not None
        return SocketTokenSource(settings.token_socket)
    if kind is SourceKind.READER:
        assert settings.reader is not None
        return UdevBadgeReader(
            settings.reader,
            removal_sequence=settings.removal_sequence,
            repeat_removes=settings.repeat_removes,
        )
    return TerminalIdentity(settings.terminal_token)
