"""Which server identities a viewer trusts: a configured fingerprint, trust on first use, or a CA.

The check runs on the certificate the server proved it holds the key for (TLS 1.3 CertificateVerify)
and before the viewer sends anything, so a server that fails it never sees the viewer's token.

- :class:`PinnedFingerprint` and :class:`KnownHosts` (a :class:`ServerTrust`): the fingerprint is the
  identity; host names and certificate authorities play no part.
- :class:`ServerCA` (client.toml's ``tls.ca``): the server's certificate must chain to a configured
  CA and name the host or address the viewer dialled, as TLS clients check it. With pins as well,
  both must hold; without them, the CA alone decides and no known-hosts file is written.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aioquic import tls
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from wayray.common.errors import WayRayError
from wayray.transport.errors import ServerIdentityError
from wayray.transport.identity import fingerprint, normalize_fingerprint

log = logging.getLogger("wayray.transport")


def host_key(host: str, port: int) -> str:
    """How an address is written in a known-hosts file: ``host:port``, ``[v6addr]:port``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ServerTrust(Protocol):
    def check(self, host: str, port: int, fingerprint: str) -> None:
        """Return if the server at ``host:port`` with this fingerprint is trusted; raise otherwise."""
        ...


@dataclass(frozen=True)
class PinnedFingerprint:
    """Trust exactly one identity (``--server-fingerprint``, or a fingerprint in the viewer's config)."""

    fingerprint: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", normalize_fingerprint(self.fingerprint))

    def check(self, host: str, port: int, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            raise ServerIdentityError(
                f"{host_key(host, port)} presented the identity {fingerprint}, "
                f"but the configured fingerprint is {self.fingerprint}",
                hint="if the server's identity was renewed on purpose, configure its new fingerprint "
                "(wrsrvd logs it at start-up); otherwise something is impersonating the server",
            )


@dataclass(frozen=True)
class KnownHosts:
    """Trust on first use, like ssh: the first identity seen for an address is recorded in ``path``
    (``host:port sha256:<hex>`` per line, ``#`` comments); a different one later is refused."""

    path: Path

    def entries(self) -> dict[str, tuple[str, int]]:
        """address → (fingerprint, line number)."""
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as err:
            raise ServerIdentityError(f"{self.path}: cannot read the known-hosts file: {err}") from None
        out: dict[str, tuple[str, int]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ServerIdentityError(
                    f"{self.path}:{n}: expected 'host:port sha256:<hex>', got {line!r}",
                    hint="fix or delete that line",
                )
            try:
                out[parts[0]] = (normalize_fingerprint(parts[1]), n)
            except Exception:
                raise ServerIdentityError(
                    f"{self.path}:{n}: {parts[1]!r} is not a sha256 fingerprint",
                    hint="fix or delete that line",
                ) from None
        return out

    def check(self, host: str, port: int, fingerprint: str) -> None:
        key = host_key(host, port)
        known = self.entries().get(key)
        if known is None:
            self._append(key, fingerprint)
            log.warning(
                "first connection to %s: trusting its identity %s (recorded in %s)",
                key,
                fingerprint,
                self.path,
            )
            return
        pinned, line = known
        if pinned != fingerprint:
            raise ServerIdentityError(
                f"the identity of {key} changed: {self.path}:{line} records {pinned}, "
                f"the server now presents {fingerprint}",
                hint=f"if the server's identity was renewed on purpose, delete line {line} of {self.path} "
                "and connect again; otherwise something is impersonating the server",
            )

    def _append(self, key: str, fingerprint: str) -> None:
        path = Path(self.path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(f"{key} {fingerprint}\n")
        except OSError as err:
            raise ServerIdentityError(
                f"cannot record the identity of {key} in {path}: {err.strerror}",
                hint="make the known-hosts file writable, or configure the server's fingerprint instead",
            ) from None


@dataclass(frozen=True)
class ServerCA:
    """Trust servers whose certificate is issued by a CA (PEM bundle, several CAs allowed) and names
    the host or IP address the viewer dialled (subjectAltName, as every TLS client checks it)."""

    pem: bytes
    path: Path

    @classmethod
    def load(cls, path: Path) -> ServerCA:
        try:
            pem = Path(path).read_bytes()
        except OSError as err:
            raise WayRayError(
                f"{path}: cannot read the CA bundle the server's certificate must chain to: {err.strerror}",
                hint="point client.toml's tls.ca (or --ca) at a readable PEM file with the CA certificate",
            ) from None
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError as err:
            raise WayRayError(
                f"{path}: not a PEM CA bundle ({err})",
                hint="client.toml's tls.ca (or --ca) takes PEM certificates "
                "(-----BEGIN CERTIFICATE----- blocks)",
            ) from None
        if not certs:  # pragma: no cover - cryptography raises ValueError for a file without any
            raise WayRayError(f"{path}: no certificate in the CA bundle")
        return cls(pem=pem, path=Path(path))

    def check(self, host: str, port: int, cert: x509.Certificate, chain: list[x509.Certificate]) -> None:
        """Return if ``cert`` (with the intermediates in ``chain``) is valid for ``host``; raise
        ServerIdentityError saying what is wrong otherwise."""
        where = host_key(host, port)
        subject = cert.subject.rfc4514_string() or "(no subject)"
        what = f"{where} presented the certificate '{subject}' ({fingerprint(cert)})"
        # Dates, then the chain, then the name, each with its own message: "not from your CA" is
        # the thing to say about a stranger's certificate, whatever names it carries.
        now = datetime.datetime.now(datetime.UTC)
        if now < cert.not_valid_before_utc:
            raise ServerIdentityError(
                f"{what}, which is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                hint="check the clocks of this client and of the server",
            )
        if now > cert.not_valid_after_utc:
            raise ServerIdentityError(
                f"{what}, which expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                hint="renew the server's certificate ([server.NAME.tls] cert in its servers.toml)",
            )
        try:
            tls.verify_certificate(cert, chain, cadata=self.pem)
        except tls.Alert as err:
            raise ServerIdentityError(
                f"{what}, which is not issued by the CA in {self.path} ({err})",
                hint="give the server a certificate issued by that CA ([server.NAME.tls] cert and key in "
                "its servers.toml), or set client.toml's tls.ca to the CA that issued it; if neither "
                "was changed, something is impersonating the server",
            ) from None
        try:
            tls.verify_certificate(cert, chain, server_name=host, cadata=self.pem)
        except tls.Alert as err:
            names = _names(cert)
            reason = f"it is for {names}" if "doesn't match" in str(err) else str(err)
            raise ServerIdentityError(
                f"{what}, issued by the CA in {self.path} but not for {host!r}: {reason}",
                hint=f"connect with a name the certificate lists ({names}), or issue the server a "
                f"certificate whose subjectAltName includes {host}",
            ) from None
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku:
            raise ServerIdentityError(
                f"{what}, which is not meant for servers (its extended key usage lacks serverAuth)",
                hint="issue the server a certificate with extendedKeyUsage serverAuth",
            )
        log.debug("%s: certificate '%s' verified against the CA in %s", where, subject, self.path)


def _names(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no name: it has no subjectAltName"
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return ", ".join(names) or "no name"
