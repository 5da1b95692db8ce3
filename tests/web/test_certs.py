"""The short-lived certificate browsers pin by hash (docs/web-kiosk.md, section 3)."""

from __future__ import annotations

import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from wayray.web.certs import ROTATE_EVERY, RotatingCertificates

T0 = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


def test_the_certificate_is_one_a_browser_accepts_by_hash() -> None:
    certs = RotatingCertificates("lab", T0)
    for c in (certs.current, certs.next):
        cert = c.certificate
        assert cert.version.name == "v3"
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        # WebTransport: at most 14 days of validity, and valid now.
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(days=14)
        assert cert.not_valid_before_utc <= T0 < cert.not_valid_after_utc


def test_rotation_keeps_a_page_that_fetched_the_hashes_before_it_connecting() -> None:
    certs = RotatingCertificates("lab", T0)
    before = certs.hashes()
    assert len(set(before)) == 2
    assert not certs.rotate_if_due(T0 + ROTATE_EVERY / 2)
    assert certs.hashes() == before
    assert certs.rotate_if_due(T0 + ROTATE_EVERY)
    after = certs.hashes()
    # The certificate presented now was the "next" one a page fetched before the rotation.
    assert after[0] == before[1] and after[1] not in before
    # Every certificate is still valid for as long as it is presented and announced.
    for _ in range(5):
        now = certs.rotated_at + ROTATE_EVERY
        assert certs.rotate_if_due(now)
        for c in (certs.current, certs.next):
            assert c.certificate.not_valid_after_utc > now + ROTATE_EVERY
