"""The server's TLS identity on disk, and the viewer's trust in it (fingerprints, known hosts)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from wayray.common.errors import UsageError, WayRayError
from wayray.transport import (
    KnownHosts,
    PinnedFingerprint,
    ServerIdentity,
    ServerIdentityError,
    normalize_fingerprint,
)
from wayray.transport.identity import IDENTITY_FILE


def test_created_on_first_start_private_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "var" / "lib" / "wayray" / "lab"
    first = ServerIdentity.load_or_create(state, name="lab")
    path = state / IDENTITY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert first.fingerprint.startswith("sha256:") and len(first.fingerprint) == 7 + 64
    again = ServerIdentity.load_or_create(state, name="lab")
    assert again.fingerprint == first.fingerprint
    assert first.certificate.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert "WayRay server lab" in first.certificate.subject.rfc4514_string()


def test_two_processes_starting_at_once_agree_on_one_identity(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from wayray.transport import ServerIdentity; "
        "print(ServerIdentity.load_or_create(Path(sys.argv[1])).fingerprint)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "s")], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        for _ in range(4)
    ]
    prints = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(prints) == 1 and prints == {ServerIdentity.load(tmp_path / "s" / IDENTITY_FILE).fingerprint}
    assert [f.name for f in (tmp_path / "s").iterdir()] == [IDENTITY_FILE]  # no temp files left


def test_a_temporary_file_left_by_a_crashed_first_start_does_not_block_the_next(tmp_path: Path) -> None:
    # Power lost while the first start wrote the identity: its temporary file stays. In a container
    # the next start often has the same pid, and must still make the identity.
    state = tmp_path / "s"
    state.mkdir(mode=0o700)
    (state / f".{IDENTITY_FILE}.{os.getpid()}.tmp").write_bytes(b"half a key")
    ident = ServerIdentity.load_or_create(state)
    assert ident.fingerprint == ServerIdentity.load(state / IDENTITY_FILE).fingerprint
    cert, key = tmp_path / "f" / "cert.pem", tmp_path / "f" / "key.pem"
    cert.parent.mkdir()
    for target in (cert, key):
        (cert.parent / f".{target.name}.{os.getpid()}.tmp").write_bytes(b"half a file")
    assert ServerIdentity.load_or_create_files(cert, key).fingerprint


def test_a_key_readable_by_others_is_refused_with_a_fix(tmp_path: Path) -> None:
    ServerIdentity.load_or_create(tmp_path)
    os.chmod(tmp_path / IDENTITY_FILE, 0o644)
    with pytest.raises(WayRayError) as info:
        ServerIdentity.load_or_create(tmp_path)
    assert "readable by others (mode 0644)" in info.value.message
    assert info.value.hint == f"run: chmod 600 {tmp_path / IDENTITY_FILE}"


def test_a_damaged_identity_file_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE
    path.write_text("not a key")
    os.chmod(path, 0o600)
    with pytest.raises(WayRayError, match="not a valid TLS identity") as info:
        ServerIdentity.load_or_create(tmp_path)
    assert info.value.hint and "move the file away" in info.value.hint
    assert path.read_text() == "not a key"


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + "ab" * 32,
        "SHA256:" + "AB" * 32,
        ":".join(["AB"] * 32),
        "  sha256:" + " ".join(["ab"] * 32) + "\n",
    ],
)
def test_fingerprints_are_normalized(text: str) -> None:
    assert normalize_fingerprint(text) == "sha256:" + "ab" * 32


@pytest.mark.parametrize("text", ["", "sha256:abc", "md5:" + "ab" * 16, "sha256:" + "zz" * 32])
def test_bad_fingerprints_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="is not a SHA-256 fingerprint"):
        normalize_fingerprint(text)


def test_known_hosts_records_first_use_and_refuses_a_change(tmp_path: Path) -> None:
    kh = KnownHosts(tmp_path / "cfg" / "known_hosts")
    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    kh.check("srv.example", 4433, a)
    kh.check("::1", 4433, b)
    text = kh.path.read_text()
    assert text == f"srv.example:4433 {a}\n[::1]:4433 {b}\n"
    assert stat.S_IMODE(kh.path.stat().st_mode) == 0o600
    kh.check("srv.example", 4433, a)  # known and the same: fine
    kh.check("srv.example", 4434, b)  # another port is another server
    with pytest.raises(ServerIdentityError) as info:
        kh.check("srv.example", 4433, b)
    err = info.value
    assert f"{kh.path}:1 records {a}" in err.message and f"now presents {b}" in err.message
    assert err.hint and f"delete line 1 of {kh.path}" in err.hint


def test_known_hosts_comments_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("# lab servers\n\nsrv:4433 sha256:" + "a" * 64 + "  # the old one\nbroken line here\n")
    kh = KnownHosts(path)
    with pytest.raises(ServerIdentityError, match=f"{path}:4: expected 'host:port sha256:<hex>'"):
        kh.check("srv", 4433, "sha256:" + "a" * 64)


def test_pinned_fingerprint_mismatch_names_both(tmp_path: Path) -> None:
    pin = PinnedFingerprint("sha256:" + "A" * 64)
    pin.check("h", 1, "sha256:" + "a" * 64)
    with pytest.raises(ServerIdentityError) as info:
        pin.check("h", 1, "sha256:" + "b" * 64)
    assert "a" * 64 in info.value.message and "b" * 64 in info.value.message


def test_an_unwritable_known_hosts_file_is_a_clear_error(tmp_path: Path) -> None:
    # sysfs refuses new files even to root: a place where recording must fail.
    kh = KnownHosts(Path("/sys/wayray-test-known_hosts"))
    with pytest.raises(ServerIdentityError, match="cannot record the identity of h:1 in /sys/") as info:
        kh.check("h", 1, "sha256:" + "a" * 64)
    assert info.value.hint and "fingerprint" in info.value.hint
    unreadable = tmp_path / "known_hosts"
    unreadable.mkdir()  # a directory where the file should be
    with pytest.raises(ServerIdentityError, match="cannot read the known-hosts file"):
        KnownHosts(unreadable).check("h", 1, "sha256:" + "a" * 64)


def test_cert_and_key_files_made_once_and_reused(tmp_path: Path) -> None:
    cert, key = tmp_path / "lab" / "tls" / "cert.pem", tmp_path / "lab" / "tls" / "key.pem"
    first = ServerIdentity.load_or_create_files(cert, key, name="lab")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert ServerIdentity.load_or_create_files(cert, key).fingerprint == first.fingerprint
    assert sorted(f.name for f in key.parent.iterdir()) == ["cert.pem", "key.pem"]  # no temp files


def test_a_key_left_without_its_certificate_gets_one(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = ServerIdentity.load_or_create_files(cert, key)
    cert.unlink()  # a start that died between writing the key and the certificate
    second = ServerIdentity.load_or_create_files(cert, key)
    assert second.private_key.private_numbers() == first.private_key.private_numbers()


def test_a_certificate_without_its_key_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ServerIdentity.load_or_create_files(cert, key)
    key.unlink()
    with pytest.raises(WayRayError) as info:
        ServerIdentity.load_or_create_files(cert, key)
    assert "private key of the server's certificate" in info.value.message
    assert info.value.hint is not None and "move" in info.value.hint


def test_operator_chain_with_a_mismatched_key_is_refused(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ServerIdentity.load_or_create_files(cert, key)
    other = ServerIdentity.load_or_create_files(tmp_path / "o.pem", tmp_path / "o.key")
    cert.write_bytes((tmp_path / "o.pem").read_bytes())
    with pytest.raises(WayRayError, match="does not belong to the private key"):
        ServerIdentity.load_or_create_files(cert, key)
    assert other.chain == ()


def test_transport_default_port_is_the_configuration_default() -> None:
    from wayray.config import DEFAULT_PORT as CONFIG_PORT
    from wayray.transport import DEFAULT_PORT

    assert DEFAULT_PORT == CONFIG_PORT
