"""No byte of a token, an access key or a kiosk's identity in any log or state file of a real run, on
either side (security review L7: logs showed the first 4 characters and the length of every token),
and no per-connection chatter from QUIC in wrsrvd's log (operator's trial, item 13)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.harness import Harness, failure
from tests.e2e.kiosk import KioskProc

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]
SOFTWARE_TOKEN = "LX7Q-software-991"
BADGE = "LX9W40424242"


def files_under(*roots: Path) -> dict[str, bytes]:
    out = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                out[str(path)] = path.read_bytes()
    return out


def test_no_secret_reaches_a_log_or_a_state_file(harness: Harness) -> None:
    srv = harness.server(FOOT, listen=("::",))  # on every address: with its access key
    key = re.search(r"access key\s+(\S+)", srv.banner)[1]  # type: ignore[index]
    key_file = harness.tmp / "viewer-access-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)

    viewer = harness.run_client(
        srv,
        "--access-key-file",
        str(key_file),
        "--snapshot",
        str(harness.tmp / "v.png"),
        token=SOFTWARE_TOKEN,
    )
    assert viewer.returncode == 0, failure(viewer)
    (harness.tmp / "viewer.out").write_text(viewer.stdout + viewer.stderr)

    kiosk = KioskProc(
        harness.short, "k", f"127.0.0.1:{srv.port}", srv.fingerprint, env=harness.env,
        extra=("--access-key-file", str(key_file)),
    ).start()  # fmt: skip
    try:
        kiosk.insert(BADGE)
        kiosk.wait_session()
        kiosk.remove()
        kiosk.wait_idle()
    finally:
        kiosk.stop()
    terminal_token = (harness.tmp / "state-home" / "wayray" / "terminal-token").read_text().strip()

    logs = files_under(harness.tmp, harness.short)
    logs["wrsrvd (its log)"] = srv.log_text().encode()
    assert len(logs) > 5
    secrets = {
        "the software token": SOFTWARE_TOKEN,
        "the badge": BADGE,
        "the access key": key,
        "the kiosk's terminal token": terminal_token,
    }
    for where, data in logs.items():
        if where.endswith(("terminal-token", "access.key", "viewer-access-key", "token.key")):
            continue  # where these secrets are kept, mode 0600
        text = data.decode("latin-1")
        for what, secret in secrets.items():
            assert secret not in text, f"{where} holds {what}"
        for what, secret in (("the software token", SOFTWARE_TOKEN), ("the badge", BADGE)):
            assert secret[:4] not in text, f"{where} holds the first characters of {what}"
            assert f"<{len(secret)} chars" not in text, f"{where} holds the length of {what}"
    # What the logs show instead: keyed digests (the server's like its audit lines).
    log = srv.log_text()
    assert re.search(r"presents token badge:[0-9a-f]{8} from kiosk:[0-9a-f]{8}", log), log[-3000:]
    # QUIC's own lines for every connection stay out of the log (wrsrvd -v shows them).
    assert "Negotiated protocol version" not in log and "ALPN negotiated" not in log
