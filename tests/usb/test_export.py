"""The kiosk's side of a forwarded device's data path, without a kernel (docs/usb.md, section 4):
libusb (through libusb1's usb1) talks to a device that umockdev emulates from a usbmon recording of
its answers; the kiosk's USB/IP server turns the CMD_SUBMITs vhci_hcd would write into transfers on
it and answers with RET_SUBMITs carrying the recorded bytes; garbage ends that device's stream with a
reason. Not here: the QUIC stream between kiosk and server, and vhci_hcd itself (no loadable
modules on this machine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(
    shutil.which("umockdev-wrapper") is None or not Path("/usr/lib/python3/dist-packages/gi").is_dir(),
    reason="needs umockdev and python3-gi with gir1.2-umockdev-1.0 (tools/apt-packages.txt)",
)


def test_descriptors_read_through_usbip_are_the_recorded_bytes() -> None:
    pytest.importorskip("usb1", reason="needs libusb1 (pyproject's usb extra) and libusb-1.0-0")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        ["umockdev-wrapper", sys.executable, "-m", "tests.usb.umockdev_export"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    device, config = result["expected"]
    assert result["returns"] == [
        {"seqnum": 1, "status": 0, "actual": 18, "data": device},
        {"seqnum": 2, "status": 0, "actual": len(config) // 2, "data": config},
        {"seqnum": 6, "status": 0, "actual": 0, "data": ""},  # CLEAR_HALT, through libusb's call
    ]
    assert result["claimed"] == [0, 1, 2]  # the whole device, as usbip-host binds it
    assert result["faults"] == ["command 0x10203 (seqnum 67438087) is not one vhci sends"]
    # The unanswered interrupt IN, unlinked: RET_UNLINK -ECONNRESET at once, no RET_SUBMIT for it, and
    # its read in libusb over within a slice (500 ms) and some slack for a loaded machine.
    assert result["unlinks"] == [[4, -104]]
    assert result["read_ended_s"] < 5
