"""Mutual TLS: the server checks a viewer's client certificate against a configured CA."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aioquic import tls
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from wayray.common.errors import WayRayError
from wayray.wire.errors import ErrorCode


@dataclass(frozen=True)
class ClientCertificateRejected(Exception):
    code: ErrorCode
    reason: str


@dataclass(frozen=True)
class ClientCA:
    """The certificate authority whose certificates viewers must present (PEM, several allowed)."""

    pem: bytes
    path: Path

    @classmethod
    def load(cls, path: Path) -> ClientCA:
        try:
            pem = Path(path).read_bytes()
            certs = x509.load_pem_x509_certificates(pem)
        except (OSError, ValueError) as err:
            raise WayRayError(
                f"{path}: cannot load the client CA for mutual TLS: {err}",
                hint="point the server's client CA setting at a PEM file with the CA certificate",
            ) from None
        if not certs:
            raise WayRayError(f"{path}: no certificate in the client CA file")
        return cls(pem=pem, path=Path(path))

    def verify(self, cert: x509.Certificate | None, chain: list[x509.Certificate]) -> str:
        """The verified subject of ``cert``; raises ClientCertificateRejected with a reason otherwise."""
        if cert is None:
            raise ClientCertificateRejected(
                ErrorCode.CLIENT_CERTIFICATE_REQUIRED,
                "this server requires a client certificate (mutual TLS); configure the viewer's "
                "certificate and key",
            )
        subject = cert.subject.rfc4514_string()
        try:
            tls.verify_certificate(cert, chain, cadata=self.pem)
        except tls.Alert as err:
            raise ClientCertificateRejected(
                ErrorCode.CLIENT_CERTIFICATE_REJECTED,
                f"client certificate '{subject}' is not valid for this server: {err}",
            ) from None
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            raise ClientCertificateRejected(
                ErrorCode.CLIENT_CERTIFICATE_REJECTED,
                f"client certificate '{subject}' is not meant for client authentication "
                "(its extended key usage lacks clientAuth)",
            )
        return subject
