"""Two sans-IO WireConnections wired back to back, for tests: no sockets, a hand-driven clock."""

from __future__ import annotations

from typing import Any

from wayray.wire import (
    HandshakeCompleted,
    HelloParams,
    HelloReceived,
    TokenKind,
    WireConfig,
    WireConnection,
    WireEvent,
    WireRole,
)


def pump(src: WireConnection, dst: WireConnection, now: float) -> int:
    """Move everything ``src`` has queued into ``dst``; returns the bytes moved."""
    moved = 0
    for channel, data in src.data_to_send():
        dst.receive(channel, data, now)
        moved += len(data)
    return moved


def drain(conn: WireConnection) -> list[WireEvent]:
    out = []
    while (ev := conn.next_event()) is not None:
        out.append(ev)
    return out


def hello_params(**changes: Any) -> HelloParams:
    kw: dict[str, Any] = dict(
        token="badge-0123456789abcdef",
        token_kind=TokenKind.BADGE,
        screen_width=1920,
        screen_height=1080,
        keymap="xkb_keymap { };",
    )
    kw.update(changes)
    return HelloParams(**kw)


def connected_pair(
    server: WireConfig | None = None, client: WireConfig | None = None, now: float = 0.0
) -> tuple[WireConnection, WireConnection]:
    srv = WireConnection(WireRole.SERVER, server, now=now)
    cli = WireConnection(WireRole.CLIENT, client, now=now)
    cli.send_hello(hello_params())
    pump(cli, srv, now)
    (ev,) = drain(srv)
    assert isinstance(ev, HelloReceived), ev
    srv.accept(session_id="s-1", output_width=1920, output_height=1080, now=now)
    pump(srv, cli, now)
    assert [type(e) for e in drain(srv)] == [HandshakeCompleted]
    assert [type(e) for e in drain(cli)] == [HandshakeCompleted]
    return srv, cli
