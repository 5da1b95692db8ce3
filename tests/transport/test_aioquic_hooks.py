"""The private aioquic attributes WayRay relies on still mean what they meant (see _aioquic_private)."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import aioquic
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import HandshakeCompleted, StreamDataReceived

from tests.conftest import REPO
from wayray.transport import ServerIdentity
from wayray.transport import _aioquic_private as private
from wayray.transport.connection import ALPN


def test_aioquic_is_pinned_to_the_tested_version() -> None:
    assert aioquic.__version__ == private.TESTED_AIOQUIC
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(rf'"aioquic=={re.escape(private.TESTED_AIOQUIC)}"', pyproject)
    lock = (REPO / "requirements" / "lock.txt").read_text()
    assert f"aioquic=={private.TESTED_AIOQUIC}\n" in lock


def _pair(identity: ServerIdentity, *, request_cert: bool) -> tuple[QuicConnection, QuicConnection, float]:
    """A client and a server QuicConnection handing datagrams to each other in memory (no sockets)."""
    ccfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE)
    scfg = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    scfg.certificate, scfg.private_key = identity.certificate, identity.private_key
    client = QuicConnection(configuration=ccfg)
    server = QuicConnection(
        configuration=scfg, original_destination_connection_id=client.original_destination_connection_id
    )
    if request_cert:
        private.request_client_certificate(server)
    now = 0.0
    client.connect(("127.0.0.1", 1), now=now)
    return client, server, now


def _exchange(a: QuicConnection, b: QuicConnection, now: float) -> None:
    for _ in range(10):
        moved = False
        # a is the client at port 2, b the server at port 1 (where the client connected).
        for src, dst, addr in ((a, b, ("127.0.0.1", 2)), (b, a, ("127.0.0.1", 1))):
            for data, _addr in src.datagrams_to_send(now=now):
                dst.receive_datagram(data, addr, now=now)
                moved = True
        if not moved:
            return


def _handshake_done(conn: QuicConnection) -> bool:
    done = False
    while (ev := conn.next_event()) is not None:
        done = done or isinstance(ev, HandshakeCompleted)
    return done


def test_peer_certificate_and_client_certificate_request(identity: ServerIdentity, tmp_path: Path) -> None:
    client, server, now = _pair(identity, request_cert=True)
    # The client has no certificate: it answers the request with an empty one.
    _exchange(client, server, now)
    assert _handshake_done(client) and _handshake_done(server)
    cert, chain = private.peer_certificate(client)
    assert cert == identity.certificate and chain == []
    assert private.peer_certificate(server) == (None, [])
    assert server.tls._request_client_certificate is True
    assert client.tls._certificate_request is not None  # the request really went over the wire


def test_without_the_hook_no_certificate_is_requested(identity: ServerIdentity) -> None:
    client, server, now = _pair(identity, request_cert=False)
    _exchange(client, server, now)
    assert _handshake_done(server)
    assert server.tls._request_client_certificate is False
    assert client.tls._certificate_request is None


def test_unacked_stream_bytes_count_written_data_until_acknowledged(identity: ServerIdentity) -> None:
    client, server, now = _pair(identity, request_cert=False)
    _exchange(client, server, now)
    sid = client.get_next_available_stream_id(is_unidirectional=True)
    assert private.unacked_stream_bytes(client, sid) == 0
    client.send_stream_data(sid, b"x" * 100_000)
    assert private.unacked_stream_bytes(client, sid) == 100_000
    for _ in range(200):
        now += 0.01
        _exchange(client, server, now)
        for conn in (client, server):
            t = conn.get_timer()
            if t is not None and t <= now:
                conn.handle_timer(now)
        if private.unacked_stream_bytes(client, sid) == 0:
            break
    assert private.unacked_stream_bytes(client, sid) == 0


def test_a_delayed_acknowledgement_waits_and_can_be_made_due(identity: ServerIdentity) -> None:
    client, server, now = _pair(identity, request_cert=False)
    _exchange(client, server, now)
    _handshake_done(client)
    _handshake_done(server)
    for _ in range(5):  # let the handshake's own acknowledgements settle
        now += 0.05
        for conn in (client, server):
            if (t := conn.get_timer()) is not None and t <= now:
                conn.handle_timer(now)
        _exchange(client, server, now)
    private.delay_acks(server, 0.020)
    assert not private.ack_pending(server)
    sid = client.get_next_available_stream_id(is_unidirectional=True)
    client.send_stream_data(sid, b"frame ack")
    for data, _addr in client.datagrams_to_send(now=now):
        server.receive_datagram(data, ("127.0.0.1", 2), now=now)
    # The acknowledgement waits (aioquic alone would send it 1 ms later) ...
    assert private.ack_pending(server)
    assert server.get_timer() is not None and server.get_timer() >= now + 0.019  # type: ignore[operator]
    assert list(server.datagrams_to_send(now=now + 0.005)) == []
    # ... until it is made due: then it leaves in the next packet, and the client's data is acknowledged.
    private.ack_now(server, now + 0.005)
    sent = list(server.datagrams_to_send(now=now + 0.005))
    assert len(sent) == 1 and not private.ack_pending(server)
    client.receive_datagram(sent[0][0], ("127.0.0.1", 1), now=now + 0.006)
    assert private.unacked_stream_bytes(client, sid) == 0


def test_one_datagrams_input_stream_can_be_taken_before_the_others(identity: ServerIdentity) -> None:
    client, server, now = _pair(identity, request_cert=False)
    _exchange(client, server, now)
    _handshake_done(client)
    _handshake_done(server)
    display = client.get_next_available_stream_id(is_unidirectional=True)
    client.send_stream_data(display, b"\x01ack")
    _exchange(client, server, now)
    server.next_event()  # the display stream's first data
    key = client.get_next_available_stream_id(is_unidirectional=True)
    client.send_stream_data(display, b"ack again")
    client.send_stream_data(key, b"\x02key")
    now += 0.05  # past the pacer
    datagrams = list(client.datagrams_to_send(now=now))
    assert len(datagrams) == 1  # one datagram, the display stream's frame first (round robin)
    server.receive_datagram(datagrams[0][0], ("127.0.0.1", 2), now=now)
    waiting = list(server._events)
    order = [ev.stream_id for ev in waiting if isinstance(ev, StreamDataReceived)]
    assert order == [display, key]
    private.stream_data_first(server, lambda sid: sid == key)
    events = []
    while (ev := server.next_event()) is not None:
        events.append(ev)
    assert [ev.stream_id for ev in events if isinstance(ev, StreamDataReceived)] == [key, display]
    assert len(events) == len(waiting)  # nothing lost, nothing added
