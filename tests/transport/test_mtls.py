"""Optional mutual TLS: the server asks for a client certificate and checks it against its CA.

aioquic has no public switch for this; wayray.transport._aioquic_private holds the hook, and these
tests are what tells us it still works with the pinned aioquic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.transport.helpers import ThrowawayCA, client_settings, hello, run, start
from wayray.transport import (
    ClientCertificate,
    ConnectionClosedError,
    ServerConnection,
    ServerIdentity,
    connect,
)
from wayray.wire import ErrorCode


def handler(seen: list[str | None]):  # type: ignore[no-untyped-def]
    async def handle(conn: ServerConnection) -> None:
        seen.append(conn.client_subject)
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()

    return handle


@run
async def test_a_client_with_a_good_certificate_is_accepted_and_named(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    kiosk = ca.issue("thinclient-00:11:22:33:44:55")
    seen: list[str | None] = []
    server = await start(identity, handler(seen), client_ca=ca.path)
    try:
        settings = client_settings(tmp_path, client_certificate=ClientCertificate(kiosk.cert, kiosk.key))
        conn = await connect("127.0.0.1", server.port, settings, hello())
        assert seen == ["CN=thinclient-00:11:22:33:44:55"]
        assert conn.server_hello is not None
        (sconn,) = server.connections
        assert sconn.peer_certificate is not None and sconn.client_subject == seen[0]
        await conn.aclose()
    finally:
        await server.close()


@run
async def test_without_a_certificate_the_viewer_is_told_one_is_required(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    seen: list[str | None] = []
    server = await start(identity, handler(seen), client_ca=ca.path)
    try:
        with pytest.raises(ConnectionClosedError) as info:
            await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        assert info.value.code == ErrorCode.CLIENT_CERTIFICATE_REQUIRED
        assert "requires a client certificate" in info.value.reason
        assert seen == []  # no Hello reached the application
    finally:
        await server.close()


@pytest.mark.parametrize("kind", ["other CA", "wrong usage", "expired"])
@run
async def test_untrusted_certificates_are_rejected_with_a_reason(
    kind: str, identity: ServerIdentity, tmp_path: Path
) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    if kind == "other CA":
        cert = ThrowawayCA(tmp_path / "rogue", name="Rogue CA").issue("thinclient-rogue")
        expected = "unable to get local issuer certificate"
    elif kind == "wrong usage":
        cert = ca.issue("a-server-cert", usage=ExtendedKeyUsageOID.SERVER_AUTH)
        expected = "not meant for client authentication"
    else:
        cert = ca.issue("thinclient-old", days=-1, start_days_ago=10)
        expected = "no longer valid"
    seen: list[str | None] = []
    server = await start(identity, handler(seen), client_ca=ca.path)
    try:
        settings = client_settings(tmp_path, client_certificate=ClientCertificate(cert.cert, cert.key))
        with pytest.raises(ConnectionClosedError) as info:
            await connect("127.0.0.1", server.port, settings, hello())
        assert info.value.code == ErrorCode.CLIENT_CERTIFICATE_REJECTED
        assert expected in info.value.reason, info.value.reason
        assert seen == []
    finally:
        await server.close()


@run
async def test_without_client_ca_no_certificate_is_asked(identity: ServerIdentity, tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    kiosk = ca.issue("thinclient-1")
    seen: list[str | None] = []
    server = await start(identity, handler(seen))
    try:
        settings = client_settings(tmp_path, client_certificate=ClientCertificate(kiosk.cert, kiosk.key))
        conn = await connect("127.0.0.1", server.port, settings, hello())
        assert seen == [None]
        (sconn,) = server.connections
        assert sconn.peer_certificate is None  # never requested, so never sent
        await conn.aclose()
    finally:
        await server.close()
