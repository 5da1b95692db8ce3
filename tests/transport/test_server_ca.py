"""A viewer that trusts a CA (client.toml's ``tls.ca``): the server's certificate must chain to it and
name the host dialled; pins, when given too, must hold as well; without pins no known-hosts file is
written. Real QUIC on loopback, real certificates from a throwaway CA."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.transport.helpers import ThrowawayCA, client_settings, hello, run, start
from wayray.common.errors import WayRayError
from wayray.transport import (
    KnownHosts,
    PinnedFingerprint,
    ServerCA,
    ServerConnection,
    ServerIdentity,
    ServerIdentityError,
    connect,
)

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


def accepting(hellos: list[str]):  # type: ignore[no-untyped-def]
    async def handle(conn: ServerConnection) -> None:
        hellos.append(conn.hello.token)
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()

    return handle


def served_identity(ca: ThrowawayCA, *names: str, **kw: object) -> ServerIdentity:
    issued = ca.issue("wayray lab server", usage=kw.pop("usage", SERVER_AUTH), names=names, **kw)  # type: ignore[arg-type]
    return ServerIdentity.load_or_create_files(issued.cert, issued.key)


@run
async def test_a_certificate_from_the_ca_for_the_address_dialled_is_trusted_without_a_known_hosts_file(
    tmp_path: Path,
) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    identity = served_identity(ca, "127.0.0.1", "lab.example")
    hellos: list[str] = []
    server = await start(identity, accepting(hellos))
    try:
        settings = client_settings(tmp_path, trust=None, server_ca=ServerCA.load(ca.path))
        conn = await connect("127.0.0.1", server.port, settings, hello())
        assert conn.server_hello is not None and conn.server_fingerprint == identity.fingerprint
        await conn.aclose()
        assert len(hellos) == 1
        assert not (tmp_path / "known_hosts").exists()  # the CA decided: nothing recorded
    finally:
        await server.close()


@run
async def test_an_intermediate_ca_sent_by_the_server_completes_the_chain(tmp_path: Path) -> None:
    root = ThrowawayCA(tmp_path / "root", name="Site root CA")
    issuing = ThrowawayCA(tmp_path / "issuing", name="Site issuing CA", issuer=root)
    identity = served_identity(issuing, "127.0.0.1")
    assert len(identity.chain) == 1  # the server's certificate file: leaf, then the intermediate
    server = await start(identity, accepting([]))
    try:
        settings = client_settings(tmp_path, trust=None, server_ca=ServerCA.load(root.path))
        conn = await connect("127.0.0.1", server.port, settings, hello())
        await conn.aclose()
    finally:
        await server.close()


@pytest.mark.parametrize(
    "kind", ["self-signed", "other CA", "not yet valid", "expired", "client certificate"]
)
@run
async def test_certificates_the_ca_does_not_vouch_for_are_refused_before_the_token_is_sent(
    kind: str, identity: ServerIdentity, tmp_path: Path
) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    if kind == "self-signed":
        served, expected = identity, f"which is not issued by the CA in {ca.path}"
    elif kind == "other CA":
        rogue = ThrowawayCA(tmp_path / "rogue", name="Rogue CA")
        served, expected = served_identity(rogue, "127.0.0.1"), f"which is not issued by the CA in {ca.path}"
    elif kind == "not yet valid":
        served = served_identity(ca, "127.0.0.1", days=30, start_days_ago=-2)
        expected = "which is not valid before "
    elif kind == "expired":
        served = served_identity(ca, "127.0.0.1", days=-1, start_days_ago=10)
        expected = "which expired on "
    else:
        served = served_identity(ca, "127.0.0.1", usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        expected = "extended key usage lacks serverAuth"
    hellos: list[str] = []
    server = await start(served, accepting(hellos))
    try:
        settings = client_settings(tmp_path, trust=None, server_ca=ServerCA.load(ca.path))
        with pytest.raises(ServerIdentityError) as info:
            await connect("127.0.0.1", server.port, settings, hello())
        message = info.value.message
        assert expected in message
        assert f"127.0.0.1:{server.port} presented the certificate" in message  # which server
        assert served.fingerprint in message
        assert info.value.hint
        assert hellos == []  # the server never saw a Hello, so never the token
    finally:
        await server.close()


@run
async def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    server = await start(served_identity(ca, "lab.example", "10.1.2.3"), accepting([]))
    try:
        settings = client_settings(tmp_path, trust=None, server_ca=ServerCA.load(ca.path))
        with pytest.raises(ServerIdentityError) as info:
            await connect("127.0.0.1", server.port, settings, hello())
        assert f"issued by the CA in {ca.path} but not for '127.0.0.1'" in info.value.message
        assert info.value.message.endswith("not for '127.0.0.1': it is for lab.example, 10.1.2.3")
        # "localhost" is the same address, but not a name the certificate carries either.
        with pytest.raises(ServerIdentityError, match="but not for 'localhost'"):
            await connect("localhost", server.port, settings, hello())
    finally:
        await server.close()


@run
async def test_with_pins_as_well_both_must_hold(tmp_path: Path, other_identity: ServerIdentity) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    identity = served_identity(ca, "127.0.0.1")
    server = await start(identity, accepting([]))
    server_ca = ServerCA.load(ca.path)
    try:
        both = client_settings(tmp_path, trust=PinnedFingerprint(identity.fingerprint), server_ca=server_ca)
        conn = await connect("127.0.0.1", server.port, both, hello())
        await conn.aclose()
        wrong_pin = client_settings(
            tmp_path, trust=PinnedFingerprint(other_identity.fingerprint), server_ca=server_ca
        )
        with pytest.raises(ServerIdentityError, match="configured fingerprint is"):
            await connect("127.0.0.1", server.port, wrong_pin, hello())
    finally:
        await server.close()
    # A pinned self-signed server is refused when a CA is configured too.
    pinned = await start(other_identity, accepting([]))
    try:
        settings = client_settings(
            tmp_path, trust=PinnedFingerprint(other_identity.fingerprint), server_ca=server_ca
        )
        with pytest.raises(ServerIdentityError, match="not issued by the CA"):
            await connect("127.0.0.1", pinned.port, settings, hello())
    finally:
        await pinned.close()


@run
async def test_trust_on_first_use_beside_a_ca_records_only_what_the_ca_accepted(
    tmp_path: Path, identity: ServerIdentity
) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    known = tmp_path / "known_hosts"
    server = await start(identity, accepting([]))  # self-signed: the CA refuses it
    try:
        settings = client_settings(tmp_path, trust=KnownHosts(known), server_ca=ServerCA.load(ca.path))
        with pytest.raises(ServerIdentityError, match="not issued by the CA"):
            await connect("127.0.0.1", server.port, settings, hello())
        assert not known.exists()
    finally:
        await server.close()


def test_a_bad_ca_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(WayRayError, match="cannot read the CA bundle"):
        ServerCA.load(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(WayRayError, match=f"{junk}: not a PEM CA bundle"):
        ServerCA.load(junk)


def test_settings_need_some_way_to_trust_the_server(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs trust, server_ca, or both"):
        client_settings(tmp_path, trust=None)
