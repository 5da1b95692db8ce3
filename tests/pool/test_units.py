"""The rendered units let a pool instance do its multicast (docs/pools.md §10): python-zeroconf inside
wrsrvd needs AF_INET/AF_INET6 datagram sockets joined to 224.0.0.251 / ff02::fb and the interface
list (ifaddr: netlink), so the sandbox keeps those families and denies no address; the instance waits
for the network (its addresses are announced); nothing depends on avahi; and the real
`systemd-analyze verify` still prints nothing for a configuration with a pool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.config.helpers import write
from tests.supervisor.test_systemd_units import render, stub_exec_paths, verify

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")

POOL = """\
[server.lab]
listen = ["192.0.2.10"]
pool = "lab"
[server.lab.peers]
fingerprints = ["sha256:{a}", "sha256:{b}"]
token_key_file = "/etc/wayray/pool-lab.key"
""".format(a="ab" * 32, b="cd" * 32)


def directives(unit_dir: Path, unit: str) -> list[tuple[str, str]]:
    """Every ``Key=value`` of the template and the instance's drop-ins, in the order systemd reads."""
    files = [unit_dir / "wrsrvd@.service", *sorted((unit_dir / f"{unit}.d").glob("*.conf"))]
    out = []
    for f in files:
        for line in f.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith(("#", ";")):
                key, value = line.split("=", 1)
                out.append((key.strip(), value.strip()))
    return out


def test_a_pool_instance_may_multicast_and_waits_for_the_network(tmp_path: Path) -> None:
    root = write(tmp_path / "root", {"etc/wayray/servers.toml": POOL})
    out = render(root, tmp_path / "units")
    found = directives(out, "wrsrvd@lab.service")
    families = [v for k, v in found if k == "RestrictAddressFamilies"]
    assert families and {"AF_INET", "AF_INET6", "AF_NETLINK"} <= set(families[-1].split()), families
    assert not [v for k, v in found if k == "IPAddressDeny"], "an IPAddressDeny= would drop mDNS"
    assert not [v for k, v in found if k == "PrivateNetwork" and v == "yes"]
    after = " ".join(v for k, v in found if k == "After").split()
    wants = " ".join(v for k, v in found if k == "Wants").split()
    assert "network-online.target" in after and "network-online.target" in wants
    text = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "avahi" not in text
    stub_exec_paths(out)
    res = verify(out, "wrsrvd@lab.service", "wayray.target")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
