"""Error codes and the exceptions of the wire protocol.

Every way a peer can get the protocol wrong has an :class:`ErrorCode`; the code travels in the
``Close`` message and, over QUIC, as the application error code of the CONNECTION_CLOSE frame, with a
reason a person can read. Codes below ``0x100`` are about the wire itself; ``0x100`` and up are about
sessions, identity and the transport, decided by the layers above.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Why a connection ends. Numbers are part of the protocol (docs/protocol.md, "Error codes")."""

    #: A normal close: the viewer detaches, the server shuts a connection down on purpose.
    NO_ERROR = 0x00
    #: The peer broke a rule not covered by a more precise code.
    PROTOCOL_VIOLATION = 0x01
    #: A message body does not decode: truncated, trailing bytes, a value out of range, bad UTF-8.
    MALFORMED_MESSAGE = 0x02
    #: A frame's length exceeds the limit for its channel and direction.
    FRAME_TOO_LARGE = 0x03
    #: A message type number that this channel does not define.
    UNKNOWN_MESSAGE = 0x04
    #: A known message in the wrong direction or state (for example anything before ``Hello``).
    UNEXPECTED_MESSAGE = 0x05
    #: The peers' major protocol versions differ.
    UNSUPPORTED_VERSION = 0x06
    #: A message that belongs to a capability the two peers did not negotiate.
    CAPABILITY_NOT_NEGOTIATED = 0x07
    #: The frame credit window was overrun, or an acknowledgement names a frame never sent.
    FLOW_CONTROL_ERROR = 0x08
    #: The peer answered no Ping for the idle timeout (it vanished, or it does not read).
    IDLE_TIMEOUT = 0x09
    #: The handshake (``Hello`` / ``ServerHello``) did not finish in time.
    HANDSHAKE_TIMEOUT = 0x0A
    #: The peer does not read: more data is queued for it than the send limit allows.
    SEND_BUFFER_FULL = 0x0B
    #: A stream names a channel number this protocol does not define.
    UNKNOWN_CHANNEL = 0x0C
    #: This side's application did not keep up: more received messages waited than the limit allows.
    RECEIVE_BUFFER_FULL = 0x0D
    #: The peer's token was refused (unknown badge, revoked, malformed).
    TOKEN_REJECTED = 0x100
    #: The session is now shown on another viewer (the badge was used elsewhere).
    SESSION_MOVED = 0x101
    #: The session ended (the user logged out, or an operator ended it).
    SESSION_ENDED = 0x102
    #: The server is shutting down or restarting.
    SERVER_SHUTDOWN = 0x103
    #: The server cannot take another connection or session now.
    SERVER_BUSY = 0x104
    #: Mutual TLS is required and the viewer presented no certificate.
    CLIENT_CERTIFICATE_REQUIRED = 0x105
    #: The viewer's certificate does not verify against the configured CA.
    CLIENT_CERTIFICATE_REJECTED = 0x106
    #: The viewer refused the server's identity (pinned fingerprint mismatch).
    SERVER_IDENTITY_REJECTED = 0x107
    #: The QUIC or TLS layer ended the connection (handshake failure, QUIC idle timeout, ...).
    TRANSPORT_ERROR = 0x108
    #: Since 1.2: the server requires an access key (a shared secret, in the Hello) and the viewer
    #: presented none, or the wrong one.
    ACCESS_DENIED = 0x109
    #: The viewer is sent to another member of the pool (a Redirect came just before).
    REDIRECTED = 0x160
    #: A bug on the side that closes: the reason says what failed.
    INTERNAL_ERROR = 0x1FF

    @classmethod
    def describe(cls, code: int) -> str:
        """``NAME (0x..)`` for a known code, ``unknown (0x..)`` for a code from a newer peer."""
        try:
            return f"{cls(code).name} (0x{code:02x})"
        except ValueError:
            return f"unknown (0x{code:02x})"


class WireProtocolError(Exception):
    """The peer sent something the protocol does not allow; the connection must close with ``code``.

    Raised by every decoder and by the framer. Nothing else escapes them for bad input.
    """

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code.name}: {reason}")
        self.code = code
        self.reason = reason


class EncodeError(ValueError):
    """A message built locally does not fit its declared layout (a bug in the caller, not the peer)."""


class WireUsageError(RuntimeError):
    """The local side used a connection wrongly (sent before the handshake, a frame without credit)."""
