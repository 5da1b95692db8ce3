"""The short-lived certificate WebTransport presents when there is no site certificate.

Browsers accept a certificate by its hash (WebTransport's ``serverCertificateHashes``) only if it is
ECDSA, X.509 v3 and valid for at most 14 days. :class:`RotatingCertificates` keeps two: the one
presented now and the next one; :meth:`~RotatingCertificates.rotate_if_due` makes the next one the
presented one every ``ROTATE_EVERY`` and makes a new next one. The page is given the hashes of both,
so a page that fetched them just before a rotation still connects. The keys live in memory only.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: How long a certificate is valid (browsers refuse more than 14 days for hashed certificates).
LIFETIME = datetime.timedelta(days=10)
#: How often the presented certificate is replaced by the next one (each is presented for this long,
#: after having been announced as "next" for as long: a certificate's use ends 8 days into its 10).
ROTATE_EVERY = datetime.timedelta(days=4)
#: Not-before lies this far in the past: a browser whose clock is a little behind still accepts it.
CLOCK_SKEW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class ShortLivedCertificate:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def sha256(self) -> bytes:
        """The hash a page gives ``serverCertificateHashes`` (SHA-256 of the DER certificate)."""
        return hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER)).digest()

    @classmethod
    def make(cls, name: str, now: datetime.datetime) -> ShortLivedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"wayray web {name}"[:64])])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now - CLOCK_SKEW + LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)


class RotatingCertificates:
    """The presented certificate and the next one; see the module docs."""

    def __init__(self, name: str, now: datetime.datetime | None = None) -> None:
        self.name = name
        now = now or datetime.datetime.now(datetime.UTC)
        self.current = ShortLivedCertificate.make(name, now)
        self.next = ShortLivedCertificate.make(name, now)
        self.rotated_at = now

    def hashes(self) -> list[bytes]:
        """What a page may pin: the presented certificate's hash, then the next one's."""
        return [self.current.sha256, self.next.sha256]

    def rotate_if_due(self, now: datetime.datetime | None = None) -> bool:
        """Make the next certificate the presented one once ``ROTATE_EVERY`` passed; True if it did."""
        now = now or datetime.datetime.now(datetime.UTC)
        if now - self.rotated_at < ROTATE_EVERY:
            return False
        self.current, self.next = self.next, ShortLivedCertificate.make(self.name, now)
        self.rotated_at = now
        return True
