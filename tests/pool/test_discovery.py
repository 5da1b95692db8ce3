"""Discovery (docs/pools.md §1): a kiosk configured with nothing but a pool name finds the pool's
server over real mDNS between network namespaces, and trusts it only through the pool's trust: a
forger on the LAN that advertises in the pool (with the member's own fingerprint in its TXT record
and the most room of all) is passed over and never sees the badge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, eventually
from tests.pool.netns import Lan
from tests.pool.rig import member, start_client

pytestmark = pytest.mark.slow

BADGE = "pool-badge-7731"
REPO = Path(__file__).resolve().parent.parent.parent


def test_a_kiosk_that_knows_only_the_pool_finds_its_server_and_a_forger_gets_no_badge(
    harness: Harness, net: Lan
) -> None:
    srva, rogue, kiosk = net.add("srva"), net.add("rogue"), net.add("kiosk")
    a = member(harness, srva)
    trusted = a.fingerprint
    a.stop()  # it comes back below; first the kiosk meets only the forger
    forger = member(harness, rogue, pool="")  # a real QUIC server, with a certificate of its own
    responder = subprocess.Popen(
        rogue.command(
            [
                sys.executable,
                "-m",
                "tests.pool.rogue_responder",
                "lab",
                rogue.address,
                str(forger.port),
                trusted,
            ]
        ),  # fmt: skip
        env=harness.env | {"PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert responder.stdout is not None
        assert responder.stdout.readline().strip() == "advertising", responder.stdout.read()
        shot = harness.tmp / "pool.png"
        client = start_client(
            harness, kiosk, "--pool", "lab", "--fingerprint", trusted, "--token", BADGE,
            "--snapshot", str(shot), "--timeout", "120",
        )  # fmt: skip
        # The kiosk found the forger by multicast, dialled it, and passed over it at the handshake.
        eventually(lambda: "passing over" in client.stderr() and rogue.address in client.stderr(),
                   "the kiosk to pass over the forger")  # fmt: skip
        assert "presents token" not in forger.log_text(), forger.log_text()
        assert forger.sessions() == []
        a.start()  # the pool's member announces itself again
        assert client.wait() == 0, client.stderr()
        assert shot.exists()
        assert a.session()["state"] in ("attached", "detached")
        assert "presents token" not in forger.log_text(), "the forger saw the badge"
        assert forger.sessions() == []
        assert "advertises itself in pool lab" in client.stderr()
    finally:
        responder.kill()
        responder.wait(10)


def test_a_member_announces_a_material_change_of_its_load(harness: Harness, net: Lan) -> None:
    """One session of four moves the load bucket: a new announcement follows (within the 10 s
    rate limit); nothing else announces (the status counts the announcements)."""
    srva, kiosk = net.add("srva"), net.add("kiosk")
    a = member(harness, srva, extra=["--max-sessions", "4"])
    assert a.admin("status")["pool"]["announcements"] == 1
    client = start_client(harness, kiosk, "--pool", "lab", "--fingerprint", a.fingerprint,
                          "--token", BADGE, "--snapshot", str(harness.tmp / "s.png"))  # fmt: skip
    assert client.wait() == 0, client.stderr()
    eventually(lambda: a.admin("status")["pool"]["announcements"] == 2, "the load to be announced")
    assert "1 of 4 sessions" in a.log_text()


@pytest.mark.parametrize("trust", [[], ["--known-hosts", "/nonexistent/known_hosts"]])
def test_a_pool_without_the_pools_trust_is_refused(harness: Harness, trust: list[str]) -> None:
    result = subprocess.run(
        [script("wrclient"), "--pool", "lab", "--headless", "--token", BADGE, *trust],
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert "pool lab: no trust for its servers" in result.stderr
    assert "--fingerprint" in result.stderr
