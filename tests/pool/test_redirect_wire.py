"""The Redirect message (docs/protocol.md, control 96; docs/pools.md §4), sans-IO: a server answers a
viewer's Hello with where to go and which identity to accept there, then closes with REDIRECTED; only
a viewer that offered ``pools`` gets one, and only one that offered it accepts one."""

from __future__ import annotations

import pytest

from tests.wire.wirepair import drain, hello_params, pump
from wayray.wire import (
    IMPLEMENTED_CAPABILITIES,
    Capability,
    ConnectionClosed,
    ErrorCode,
    HelloReceived,
    Redirect,
    WireConfig,
    WireConnection,
    WireRole,
    WireUsageError,
)
from wayray.wire.protocol import REDIRECT, encode_message

FP = "sha256:" + "5e" * 32


def hello_pair(client: WireConfig | None = None) -> tuple[WireConnection, WireConnection]:
    srv = WireConnection(WireRole.SERVER, now=0)
    cli = WireConnection(WireRole.CLIENT, client, now=0)
    cli.send_hello(hello_params())
    pump(cli, srv, 0)
    assert [type(e) for e in drain(srv)] == [HelloReceived]
    return srv, cli


def test_a_viewer_that_offered_pools_learns_where_its_session_is_and_whom_to_trust_there() -> None:
    srv, cli = hello_pair()
    srv.redirect_to("10.1.2.3", 7100, FP, "6f1c0a9e3b2d4c15", "your session is on lab-a")
    pump(srv, cli, 0)
    assert cli.redirect == Redirect(
        host="10.1.2.3", port=7100, fingerprint=FP, server_id="6f1c0a9e3b2d4c15",
        reason="your session is on lab-a",
    )  # fmt: skip
    (ev,) = drain(cli)
    assert isinstance(ev, ConnectionClosed) and ev.code == ErrorCode.REDIRECTED and ev.by_peer
    assert cli.server_hello is None, "a redirected viewer never got a session here"


def test_a_viewer_that_did_not_offer_pools_is_never_redirected() -> None:
    old = WireConfig(capabilities=IMPLEMENTED_CAPABILITIES - {Capability.POOLS})
    srv, cli = hello_pair(old)
    with pytest.raises(WireUsageError, match="pools"):
        srv.redirect_to("10.1.2.3", 7100, FP, "6f1c0a9e3b2d4c15", "x")


def test_a_redirect_the_viewer_did_not_ask_for_closes_the_connection_with_a_reason() -> None:
    old = WireConfig(capabilities=IMPLEMENTED_CAPABILITIES - {Capability.POOLS})
    srv, cli = hello_pair(old)
    forged = Redirect(host="203.0.113.9", port=7100, fingerprint=FP, server_id="0" * 16, reason="x")
    assert REDIRECT.channel == 0
    cli.receive(0, encode_message(forged), 0)
    (ev,) = drain(cli)
    assert isinstance(ev, ConnectionClosed) and ev.code == ErrorCode.UNEXPECTED_MESSAGE
    assert "did not offer 'pools'" in ev.reason
    assert cli.redirect is None
