"""A kiosk told to forward USB devices on a machine without libusb-1.0 (the .deb only recommends it:
installed with --no-install-recommends it is missing) says so when it starts, with what to install,
instead of offering devices it could not serve. The library is hidden from a real wrclient by
mounting /dev/null over it in a mount namespace of its own (the file is there, and cannot be
loaded, as with a broken or absent package)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import script

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a mount namespace"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)"),
]

LIBUSB = Path("/usr/lib/x86_64-linux-gnu/libusb-1.0.so.0")


@pytest.mark.skipif(not LIBUSB.exists(), reason="needs libusb-1.0-0 to hide it")
def test_a_kiosk_forwarding_usb_without_libusb_says_what_to_install(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "usb.toml").write_text('[usb]\ndefault = "deny"\n')
    wrclient = [script("wrclient"), "127.0.0.1:9", "--fingerprint", "sha256:" + "0" * 64, "--headless",
                "--token", "libusb-check", "--usb", "--root", str(tmp_path), "--timeout", "5"]  # fmt: skip
    hidden = LIBUSB.resolve()
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount --bind /dev/null "{hidden}" && exec "$@"', "sh", *wrclient],
        capture_output=True, text=True, timeout=120, env={**os.environ, "LANG": "C.UTF-8"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("wrclient: ")]
    assert errors[0].startswith("wrclient: error: USB forwarding needs libusb-1.0"), done.stderr[-3000:]
    assert errors[1] == (
        "wrclient: hint: install it (Debian: apt install libusb-1.0-0), or turn USB forwarding off "
        "(usb = false in client.toml)"
    )
    assert "Traceback" not in done.stderr
