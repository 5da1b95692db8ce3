"""The udev rule that gives a forwarded device's nodes to the session's user (docs/usb.md, section 5),
exercised by udev's own rule engine: ``udevadm test`` over a umockdev testbed (this machine has no
vhci_hcd and no udevd), in a private mount namespace where the shipped rule is the only file in
/etc/udev/rules.d (the package installs it in /lib/udev/rules.d; udev reads both the same way) and
/run is a tmpfs holding the owner file wrusbattach writes (tests/usb/test_attach_helper.py shows it
writing that file). udevadm test prints the RUN commands without running them: the ACL command is
then run here on a file, as udev would run it on the node."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

RULE = REPO / "packaging" / "udev" / "70-wayray-usb.rules"
VHCI = "/devices/platform/vhci_hcd.0/usb3"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "umockdev-wrapper", "udevadm")),
    reason="needs root (a mount namespace), umockdev-wrapper and udevadm",
)

SETUP = """set -e
mount -t tmpfs -o mode=0755 wayray-test-run /run
mount -t tmpfs -o mode=0755 wayray-test-rules /etc/udev/rules.d
cp "$1" /etc/udev/rules.d/
mkdir -m 0755 /run/wayray-usb
printf 'WAYRAY_USB_UID=4242\\nWAYRAY_USB_PORT=0\\n' > /run/wayray-usb/3-1
printf 'WAYRAY_USB_UID=4343\\nWAYRAY_USB_PORT=1\\n' > /run/wayray-usb/1-2
shift
exec "$@"
"""


def run_udev() -> dict[str, str]:
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", SETUP, "sh", str(RULE),
         "umockdev-wrapper", sys.executable, "-m", "tests.usb.udev_testbed"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for devpath, result in out.items():
        assert result["rc"] == 0, f"udevadm test {devpath}:\n{result['out']}"
    return {devpath: result["out"] for devpath, result in out.items()}


def ours(text: str) -> tuple[dict[str, str], list[str]]:
    """The WAYRAY_USB_* properties udevadm printed, and the RUN commands of the rule."""
    props = dict(re.findall(r"^(WAYRAY_USB_\w+)=(.*)$", text, re.M))
    runs = re.findall(r"^run: '(/usr/bin/setfacl [^']*)'$", text, re.M)
    return props, runs


def test_the_rule_gives_the_forwarded_devices_nodes_to_the_sessions_user(tmp_path: Path) -> None:
    out = run_udev()
    for text in out.values():  # udev parsed the rule (it says which line it could not)
        assert "70-wayray-usb.rules" in text
        bad = [line for line in text.splitlines() if "70-wayray-usb.rules" in line and "Reading" not in line
               and re.search(r"invalid|error|fail|ignor|unknown", line, re.I)]  # fmt: skip
        assert not bad, bad

    # The device on vhci's root port 3-1: the owner file's user gets its node, and every device
    # below it inherits the owner; the ones with a node (hidraw0) get the ACL entry too.
    assert ours(out[f"{VHCI}/3-1"]) == (
        {"WAYRAY_USB_UID": "4242", "WAYRAY_USB_PORT": "0"},
        ["/usr/bin/setfacl -m u:4242:rw /dev/bus/usb/003/002"],
    )
    for below in ("3-1/3-1:1.0", "3-1/3-1:1.0/0003:1050:0407.0001"):
        assert ours(out[f"{VHCI}/{below}"]) == ({"WAYRAY_USB_UID": "4242", "WAYRAY_USB_PORT": "0"}, [])
    assert ours(out[f"{VHCI}/3-1/3-1:1.0/0003:1050:0407.0001/hidraw/hidraw0"])[1] == [
        "/usr/bin/setfacl -m u:4242:rw /dev/hidraw0"
    ]
    # Nobody's: vhci's root hub itself, a port with no owner file, and a device of the host's own
    # controller even when a file of that bus id exists (only vhci_hcd.0's devices are looked at).
    for devpath in (VHCI, f"{VHCI}/3-2", "/devices/pci0000:00/0000:00:14.0/usb1/1-2"):
        assert ours(out[devpath]) == ({}, []), devpath

    # The command udev runs, on a file standing for the node: that user may read and write it.
    node = tmp_path / "node"
    node.write_bytes(b"")
    node.chmod(0o600)
    command = ours(out[f"{VHCI}/3-1"])[1][0].split()
    subprocess.run([*command[:-1], str(node)], check=True, timeout=60)
    acl = subprocess.run(["getfacl", "-n", str(node)], capture_output=True, text=True, check=True).stdout
    assert "user:4242:rw-" in acl.splitlines() and "mask::rw-" in acl.splitlines(), acl
