"""What a token source reports, and the rules every token follows.

A token is a secret: whoever presents it gets the session it names. So an event's ``repr``/``str`` never
contain it, and :func:`redact` is the only form of a token that goes into logs.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from wayray.wire import TokenKind
from wayray.wire.protocol import MAX_TOKEN

__all__ = [
    "MAX_TOKEN_BYTES",
    "BadgeInserted",
    "BadgeRemoved",
    "InvalidToken",
    "TokenEvent",
    "TokenKind",
    "redact",
    "validate_token",
]

#: Longest token in UTF-8 bytes: what the wire's Hello carries.
MAX_TOKEN_BYTES = MAX_TOKEN

#: Key for log fingerprints, new in every process: the same badge shows the same fingerprint within one
#: run (so "inserted #3f9a1c … removed" lines can be matched up), yet a fingerprint in a log says
#: nothing about the badge, even for short numeric badge IDs that a plain hash would give away.
_LOG_KEY = secrets.token_bytes(16)


def redact(token: str) -> str:
    """The form of a token fit for logs: a per-process fingerprint, ``#3f9a1c``. Nothing of the token,
    not even its length (a short numeric badge ID would be half given away by it)."""
    digest = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), key=_LOG_KEY, digest_size=3)
    return f"#{digest.hexdigest()}"


class InvalidToken(ValueError):
    """A token that breaks the rules of :func:`validate_token`. The message never contains the token."""


def validate_token(text: str) -> str:
    """``text`` without surrounding whitespace, if it is a usable token; else :class:`InvalidToken`.

    Tokens are 1 to 1024 UTF-8 bytes of printable characters without whitespace, so the same badge ID
    reads the same whichever way it arrives (a line in a file, a socket command, keystrokes).
    """
    token = text.strip()
    if not token:
        raise InvalidToken("the token is empty")
    try:
        size = len(token.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidToken("the token is not valid UTF-8") from None
    if size > MAX_TOKEN_BYTES:
        raise InvalidToken(f"the token is {size} bytes long; at most {MAX_TOKEN_BYTES} are allowed")
    for ch in token:
        if ch.isspace():
            raise InvalidToken("the token contains whitespace")
        if not ch.isprintable():
            raise InvalidToken(f"the token contains a control character (U+{ord(ch):04X})")
    return token


@dataclass(frozen=True, slots=True)
class BadgeInserted:
    """A token is presented: a badge went in, a reader program wrote one, or the kiosk's own identity.

    ``source`` says where it came from, for logs (for example ``udev reader /dev/input/event5``).
    """

    token: str = field(repr=False)
    kind: TokenKind
    source: str = ""

    def __repr__(self) -> str:
        return f"BadgeInserted(token={redact(self.token)}, kind={self.kind.name}, source={self.source!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class BadgeRemoved:
    """The presented token is gone (badge pulled, reader unplugged, file deleted): detach the session.

    ``reason`` is for logs and the idle screen, e.g. "card removed" or "badge reader unplugged".
    """

    reason: str = ""


TokenEvent = BadgeInserted | BadgeRemoved
