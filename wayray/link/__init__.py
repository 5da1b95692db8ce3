"""The link: the Unix-socket conversation between wrsrvd and each session compositor, sans-IO.

wrsrvd never decodes pixels: a session compositor encodes its frames into finished wire frames
(``wayray.wire``) and sends them over its link; wrsrvd hands them to the attached viewer's QUIC
connection untouched. The other way, wrsrvd passes the viewer's input, acknowledgements and
requests, and tells the compositor when a viewer attaches or leaves. The messages and their rules
are in :mod:`wayray.link.protocol`; docs/link.md is the prose.
"""

from wayray.link.protocol import (
    LINK_VERSION,
    Attach,
    Attached,
    Close,
    CloseCode,
    Detach,
    End,
    Ended,
    LinkDecoder,
    LinkError,
    LinkMessage,
    LinkRole,
    OutputChanged,
    Ping,
    Pong,
    Register,
    Screenshot,
    ScreenshotFailed,
    ScreenshotResult,
    ToSession,
    ToViewer,
    Welcome,
    encode,
)

__all__ = [
    "LINK_VERSION",
    "Attach",
    "Attached",
    "Close",
    "CloseCode",
    "Detach",
    "End",
    "Ended",
    "LinkDecoder",
    "LinkError",
    "LinkMessage",
    "LinkRole",
    "OutputChanged",
    "Ping",
    "Pong",
    "Register",
    "Screenshot",
    "ScreenshotFailed",
    "ScreenshotResult",
    "ToSession",
    "ToViewer",
    "Welcome",
    "encode",
]
