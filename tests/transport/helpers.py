"""Shared pieces of the transport tests: real QUIC on 127.0.0.1, certificates, deadlines."""

from __future__ import annotations

import asyncio
import datetime
import functools
import ipaddress
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wayray.transport import (
    ClientSettings,
    KnownHosts,
    ServerIdentity,
    ServerSettings,
    WireServer,
)
from wayray.transport.connection import QuicSettings
from wayray.wire import HelloParams, TokenKind, WireConfig

T = TypeVar("T")

#: Short keep-alive for the tests that wait for a vanished peer to be noticed (they pass it themselves;
#: their waits use generous deadlines).
FAST_WIRE = WireConfig(ping_interval=0.2, idle_timeout=1.5, handshake_timeout=5.0)
#: Everyone else's: frequent pings (round trips are measured early) but an idle timeout that a loaded
#: two-core machine cannot hit by stalling the test's event loop (client and server share it) for a
#: second or two. A healthy connection closed as IDLE_TIMEOUT would fail tests that have nothing to do
#: with keep-alive.
STEADY_WIRE = WireConfig(ping_interval=0.2, idle_timeout=30.0, handshake_timeout=30.0)


def run(coro_fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function in a fresh event loop."""

    @functools.wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(coro_fn(*args, **kwargs), 120))

    return wrapper


async def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``check()`` holds (polling); fail with ``what`` after a generous deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)


async def within(aw: Awaitable[T], timeout: float = 30.0) -> T:
    return await asyncio.wait_for(aw, timeout)


def hello(token: str = "badge-0011223344556677", **kw: Any) -> HelloParams:
    args: dict[str, Any] = dict(
        token=token, token_kind=TokenKind.BADGE, screen_width=1280, screen_height=720
    )
    args.update(kw)
    return HelloParams(**args)


def server_settings(identity: ServerIdentity, **kw: Any) -> ServerSettings:
    kw.setdefault("host", "127.0.0.1")
    kw.setdefault("port", 0)
    kw.setdefault("wire", STEADY_WIRE)
    return ServerSettings(identity=identity, **kw)


def client_settings(tmp: Path, **kw: Any) -> ClientSettings:
    kw.setdefault("trust", KnownHosts(tmp / "known_hosts"))
    kw.setdefault("wire", STEADY_WIRE)
    kw.setdefault("connect_timeout", 20.0)
    kw.setdefault("quic", QuicSettings())
    return ClientSettings(**kw)


async def start(identity: ServerIdentity, handler: Any, **kw: Any) -> WireServer:
    return await WireServer.start(server_settings(identity, **kw), handler)


# --- certificates for mutual TLS -----------------------------------------------------------------


@dataclass
class Issued:
    cert: Path
    key: Path
    subject: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class ThrowawayCA:
    """A throwaway certificate authority that issues client and server certificates into a directory.
    With ``issuer``, an intermediate CA signed by that one (``path`` then holds only its own
    certificate; ``chain_pem`` is it and its issuers, for a server's certificate file)."""

    def __init__(
        self, directory: Path, name: str = "WayRay test CA", issuer: ThrowawayCA | None = None
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.issuer = issuer
        now = datetime.datetime.now(datetime.UTC)
        self.cert: x509.Certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(issuer.cert.subject if issuer else _name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(issuer.key if issuer else self.key, hashes.SHA256())
        )
        self.path = self.dir / "ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        cn: str,
        *,
        usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
        days: float = 30,
        start_days_ago: float = 1,
        names: tuple[str, ...] = (),
        also: tuple[x509.ObjectIdentifier, ...] = (),
    ) -> Issued:
        """A certificate for ``cn``; ``names`` (host names and IP addresses) go in its
        subjectAltName. The certificate file holds the certificate, then the intermediate CAs above
        it (the root left out), as a server's ``tls.cert`` would."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=start_days_ago))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.ExtendedKeyUsage([usage, *also]), critical=False)
        )
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(n) for n in names]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        safe = cn.replace(":", "_").replace("/", "_")
        cert_path, key_path = self.dir / f"{safe}.crt", self.dir / f"{safe}.key"
        intermediates, ca = [], self
        while ca.issuer is not None:
            intermediates.append(ca.cert)
            ca = ca.issuer
        cert_path.write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *intermediates])
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)  # a server refuses a key others may read
        return Issued(cert_path, key_path, f"CN={cn}")
