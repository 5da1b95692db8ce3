"""The server's TLS identity: a self-signed ECDSA P-256 certificate made on first start and kept.

Viewers pin its SHA-256 fingerprint (``sha256:<64 hex digits>``), so the identity must stay the same
across restarts. Two layouts on disk, both created atomically so that two processes starting at once
agree on one identity:

- :meth:`ServerIdentity.load_or_create_files`: a certificate file and a key file (mode 0600), the
  paths of the configuration's ``tls.cert`` and ``tls.key``; an operator may put a certificate chain
  of their own there instead (the leaf first);
- :meth:`ServerIdentity.load_or_create`: one PEM file (key, then certificate) in a state directory.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wayray.common.errors import UsageError, WayRayError
from wayray.common.files import write_atomic

log = logging.getLogger("wayray.transport")

IDENTITY_FILE = "tls-identity.pem"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


def fingerprint(cert: x509.Certificate) -> str:
    """``sha256:<hex>`` of the certificate's DER encoding."""
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def terminal_id_for(terminal_key: str, server_fingerprint: str) -> str:
    """What a viewer's Hello carries as its identity to the server whose certificate has
    ``server_fingerprint``: HMAC-SHA256 keyed with the viewer's terminal key (``client.identity``)
    over ``wayray terminal id v2``, a NUL and the fingerprint, in hex. The same kiosk gives each
    server a value of its own, so what one server (or an impostor the viewer trusted on first use)
    learns is worth nothing at another."""
    message = b"wayray terminal id v2\0" + server_fingerprint.encode()
    return hmac.new(terminal_key.encode(), message, hashlib.sha256).hexdigest()


def certificate_fingerprint(path: Path) -> str:
    """The fingerprint of the first certificate (the leaf) of a PEM file such as a server's cert.pem."""
    return fingerprint(_load_chain(path)[0])


def normalize_fingerprint(text: str) -> str:
    """Accept ``sha256:AB:CD...``, upper or lower case, with or without colons/spaces; return canonical."""
    t = re.sub(r"[\s:]", "", text.strip().lower())
    if t.startswith("sha256"):
        t = t[len("sha256") :]
    if not _HEX64.match(t):
        raise UsageError(
            f"{text!r} is not a SHA-256 fingerprint",
            hint="write it as sha256: followed by 64 hex digits, as wrsrvd logs it at start-up",
        )
    return "sha256:" + t


@dataclass(frozen=True)
class ServerIdentity:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    path: Path
    #: Intermediate certificates sent after the leaf (an operator's CA-issued chain); usually empty.
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)

    @classmethod
    def load_or_create(cls, state_dir: Path, *, name: str = "wayray") -> ServerIdentity:
        """The identity in ``state_dir``, made there first if there is none (directory made 0700)."""
        state_dir = Path(state_dir)
        path = state_dir / IDENTITY_FILE
        if not path.exists():
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if _create(path, name):
                ident = cls.load(path)
                log.info("created the server's TLS identity %s: %s", path, ident.fingerprint)
                return ident
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> ServerIdentity:
        try:
            st = path.stat()
            data = path.read_bytes()
        except OSError as err:
            raise WayRayError(f"{path}: cannot read the server's TLS identity: {err.strerror}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise WayRayError(
                f"{path}: the server's private key is readable by others "
                f"(mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"run: chmod 600 {path}",
            )
        try:
            key = serialization.load_pem_private_key(data, password=None)
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as err:
            raise WayRayError(
                f"{path}: not a valid TLS identity ({err})",
                hint="move the file away and restart to make a new identity; viewers that pinned the old "
                "one will refuse the new one until their known-hosts entry is removed",
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not certs:
            raise WayRayError(f"{path}: expected an EC private key and a certificate")
        cert = certs[0]
        if cert.public_key() != key.public_key():
            raise WayRayError(f"{path}: the certificate does not belong to the private key in the same file")
        return cls(certificate=cert, private_key=key, path=path)

    @classmethod
    def load_or_create_files(
        cls, cert_path: Path, key_path: Path, *, name: str = "wayray"
    ) -> ServerIdentity:
        """The identity in a certificate file and a key file, made first if neither exists.

        Directories are made 0700, the key 0600. A key without its certificate (a start that died
        between the two writes) gets a new self-signed certificate: nobody can have pinned the
        missing one. A certificate without its key is an error: only the operator can fix it.
        """
        cert_path, key_path = Path(cert_path), Path(key_path)
        if not key_path.exists():
            if cert_path.exists():
                raise WayRayError(
                    f"{key_path}: the private key of the server's certificate {cert_path} is missing",
                    hint=f"restore the key, or move {cert_path} away to make a new identity (viewers that "
                    "pinned the old one will then refuse the server until their entry is removed)",
                )
            key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(key_path, _key_pem(ec.generate_private_key(ec.SECP256R1())), exclusive=True)
        key = _load_private_key(key_path)
        if not cert_path.exists():
            cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            cert = _self_signed(key, name).public_bytes(serialization.Encoding.PEM)
            if write_atomic(cert_path, cert, exclusive=True):  # else another process was first
                created = _load_chain(cert_path)[0]
                log.info("created the server's TLS identity %s: %s", cert_path, fingerprint(created))
        certs = _load_chain(cert_path)
        if certs[0].public_key() != key.public_key():
            raise WayRayError(
                f"{cert_path}: the certificate does not belong to the private key {key_path}",
                hint="put the matching certificate and key in place (the leaf certificate first)",
            )
        return cls(certificate=certs[0], private_key=key, path=cert_path, chain=tuple(certs[1:]))


def generate_self_signed(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _self_signed(key, name)


def _self_signed(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"WayRay server {name}"[:64])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        # Viewers pin the certificate itself, so it must not expire under them (RFC 5280 4.1.2.5).
        .not_valid_after(datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("wayray")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as err:
        raise WayRayError(f"{path}: cannot read the server's private key: {err.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise WayRayError(
            f"{path}: the server's private key is readable by others (mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"run: chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise WayRayError(f"{path}: not a PEM private key without a passphrase ({err})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise WayRayError(f"{path}: expected an EC (ECDSA) private key, QUIC here signs with ECDSA")
    return key


def _load_chain(path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as err:
        raise WayRayError(f"{path}: cannot read the server's certificate: {err.strerror}") from None
    except ValueError as err:
        raise WayRayError(f"{path}: not a PEM certificate chain ({err})") from None
    return certs


def _create(path: Path, name: str) -> bool:
    """Write a new identity to ``path`` unless another process got there first (then False)."""
    key, cert = generate_self_signed(name)
    return write_atomic(path, _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM), exclusive=True)


@dataclass(frozen=True)
class ClientCertificate:
    """A viewer's certificate for servers that require mutual TLS: PEM files (chain allowed)."""

    cert_path: Path
    key_path: Path

    def load(self) -> tuple[x509.Certificate, list[x509.Certificate], PrivateKeyTypes]:
        try:
            certs = x509.load_pem_x509_certificates(Path(self.cert_path).read_bytes())
            key = serialization.load_pem_private_key(Path(self.key_path).read_bytes(), password=None)
        except (OSError, ValueError) as err:
            raise WayRayError(
                f"cannot load the client certificate {self.cert_path} / key {self.key_path}: {err}"
            ) from None
        if not certs:
            raise WayRayError(f"{self.cert_path}: no certificate in the file")
        if certs[0].public_key() != key.public_key():
            raise WayRayError(f"{self.cert_path}: the certificate does not match the key {self.key_path}")
        return certs[0], certs[1:], key
