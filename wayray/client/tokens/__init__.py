"""The kiosk's token sources: where the token wrclient presents to the server comes from.

A token is a badge ID (from a USB keyboard-wedge reader, or from a badge-reader program through a file
or a socket), a token given on the command line, or, with no badge source, the kiosk's own identity.
Every source is a :class:`TokenSource`: an async iterator of :class:`BadgeInserted` /
:class:`BadgeRemoved` events with ``start()`` and ``close()`` (see :mod:`.source` for its promises);
:func:`open_token_source` picks one from wrclient's options and ``client.toml``. docs/kiosk.md, "Token
sources", is the operator's side of this.

Nothing here imports pyudev until a USB reader starts, so the package imports on illumos too.
"""

from wayray.client.tokens.choice import SourceKind, TokenSourceSettings, open_token_source
from wayray.client.tokens.events import (
    MAX_TOKEN_BYTES,
    BadgeInserted,
    BadgeRemoved,
    InvalidToken,
    TokenEvent,
    TokenKind,
    redact,
    validate_token,
)
from wayray.client.tokens.file_source import FileTokenSource, FileWatch
from wayray.client.tokens.socket_source import SocketTokenSource
from wayray.client.tokens.source import TokenSource
from wayray.client.tokens.static import StaticToken
from wayray.client.tokens.terminal import (
    TerminalIdentity,
    default_state_dir,
    default_terminal_token_path,
    load_or_create_terminal_token,
)
from wayray.client.tokens.udev_reader import ReaderMatch, UdevBadgeReader

__all__ = [
    "MAX_TOKEN_BYTES",
    "BadgeInserted",
    "BadgeRemoved",
    "FileTokenSource",
    "FileWatch",
    "InvalidToken",
    "ReaderMatch",
    "SocketTokenSource",
    "SourceKind",
    "StaticToken",
    "TerminalIdentity",
    "TokenEvent",
    "TokenKind",
    "TokenSource",
    "TokenSourceSettings",
    "UdevBadgeReader",
    "default_state_dir",
    "default_terminal_token_path",
    "load_or_create_terminal_token",
    "open_token_source",
    "redact",
    "validate_token",
]
