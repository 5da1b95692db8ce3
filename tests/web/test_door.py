"""wrsrvd refuses to serve the browser kiosk where it could not tell who connects."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import ssl
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.transport.helpers import ThrowawayCA
from tests.web.wtclient import WTClient
from wayray.common.errors import WayRayError
from wayray.config import PolicyConfig, ServerConfig
from wayray.server.frontdoor import FrontDoor
from wayray.server.settings import WebSettings, standalone_settings
from wayray.transport import _aioquic_private as private


def test_no_browser_kiosk_without_a_login_or_an_access_key(tmp_path: Path) -> None:
    # Sessions without a login, and no access key (a configuration that counts on client
    # certificates, which browsers do not present to WebTransport): wrsrvd does not start.
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    server = ServerConfig(name="standalone", session_command=("true",), listen=("127.0.0.1",), port=0)
    settings = standalone_settings(
        server,
        PolicyConfig(name="default"),
        state_dir=tmp_path / "state",
        runtime_dir=run,
        environ=dict(os.environ),
    )
    settings = dataclasses.replace(settings, access_key_file=None, web=WebSettings(enabled=True, port=0))
    with pytest.raises(WayRayError, match="needs an access key"):
        asyncio.run(FrontDoor.start(settings))
    # Nothing left listening or locked: the same state starts again (here without the web endpoint).
    settings = dataclasses.replace(settings, web=WebSettings())

    async def start_and_stop() -> None:
        door = await FrontDoor.start(settings)
        await door.stop()

    asyncio.run(start_and_stop())


def test_with_a_site_certificate_the_page_and_webtransport_present_it_and_no_hashes(tmp_path: Path) -> None:
    # The deployment that "just works": a certificate from a CA the browsers trust, naming the host.

    ca = ThrowawayCA(tmp_path / "ca")
    site = ca.issue("kiosk.example", usage=ExtendedKeyUsageOID.SERVER_AUTH, names=("127.0.0.1",))
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    server = ServerConfig(name="standalone", session_command=("true",), listen=("127.0.0.1",), port=0)
    settings = standalone_settings(
        server,
        PolicyConfig(name="default"),
        state_dir=tmp_path / "state",
        runtime_dir=run,
        environ=dict(os.environ),
    )
    settings = dataclasses.replace(
        settings, web=WebSettings(enabled=True, port=0, cert=site.cert, key=site.key)
    )
    site_der = x509.load_pem_x509_certificates(site.cert.read_bytes())[0].public_bytes(
        serialization.Encoding.DER
    )

    def get(url: str) -> tuple[int, bytes]:
        # As a browser that trusts the CA: the chain and the host name checked.
        ctx = ssl.create_default_context(cafile=str(ca.path))
        with urllib.request.urlopen(url, context=ctx, timeout=30) as res:  # noqa: S310 - https only
            return res.status, res.read()

    async def run_it() -> None:
        door = await FrontDoor.start(settings)
        try:
            port = door.web.port
            status, body = await asyncio.to_thread(get, f"https://127.0.0.1:{port}/web.json")
            assert status == 200
            info = json.loads(body)
            assert info["hashes"] == []  # nothing to pin: the CA vouches for the certificate
            client = WTClient(port)
            assert await client.open([], path=f"/wayray?build={info['build']}") == 200
            cert, _ = private.peer_certificate(client.proto._quic)
            assert cert is not None and cert.public_bytes(serialization.Encoding.DER) == site_der
            await client.aclose()
        finally:
            await door.stop()

    asyncio.run(run_it())
