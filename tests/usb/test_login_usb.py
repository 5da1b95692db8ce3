"""USB devices at a kiosk in login mode (docs/usb.md, section 6), through every real process: a kiosk
(wrclient --kiosk --usb, its devices umockdev's) shows a login screen, wrsrvd in login mode, wrsessd
with real PAM and a throwaway user. A device offered while the login screen is up is given to no one;
when the user logs in on that connection, the server judges it again for that user (rules naming
users), and a device the user's rules allow reaches the server host (served on a --usb-sockets socket,
where this test reads its descriptors as vhci_hcd would: this machine has no vhci_hcd)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.e2e.kiosk import KioskProc
from tests.e2e.login import LoginRig, login_rig, until
from tests.launcher.harness import Accounts, throwaway_accounts
from tests.usb.lsusb import load
from tests.usb.test_kiosk_usb import KIOSK_RULES, Driver

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root: throwaway users, PAM, sessions as other users"
    ),
    pytest.mark.skipif(
        shutil.which("umockdev-wrapper") is None or not Path("/usr/lib/python3/dist-packages/gi").is_dir(),
        reason="needs umockdev and python3-gi with gir1.2-umockdev-1.0 (tools/apt-packages.txt)",
    ),
]

BADGE = "5B1D0C44E9"

#: The server's rules name users: the YubiKey is the test user's, sticks are root's only.
SERVER_RULES = """[usb]
default = "deny"

[[usb.rule]]
vendor = 0x1050
users = ["{user}"]
action = "allow"
comment = "YubiKeys, for {user}"

[[usb.rule]]
class = 0x08
users = ["root"]
action = "allow"
comment = "sticks, for root"
"""


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    with throwaway_accounts() as acc:
        yield acc


@pytest.fixture
def rig(accounts: Accounts, tmp_path: Path) -> Iterator[LoginRig]:
    with login_rig(accounts, tmp_path) as r:
        yield r


def offered(rig: LoginRig) -> dict[str, dict[str, Any]]:
    """What wradm usb lists: device ids -> row."""
    return {row["device"]: row for row in rig.admin("usb")["devices"]}


def test_a_device_offered_at_the_login_screen_is_judged_again_for_the_user_who_logs_in(
    rig: LoginRig, accounts: Accounts
) -> None:
    sockets = rig.short / "usb"
    sockets.mkdir(mode=0o700)
    os.chown(sockets, rig.service_uid, rig.service_gid)
    rig.server_args = ["--usb-sockets", str(sockets)]
    rig.configure(policy="reauth_on_reattach = false\n")
    rules = rig.root / "etc" / "wayray" / "usb.toml"
    rules.write_text(SERVER_RULES.format(user=accounts.user))
    rules.chmod(0o644)
    rig.start()

    client_root = rig.short / "kiosk-usb-root"
    (client_root / "etc" / "wayray").mkdir(parents=True)
    (client_root / "etc" / "wayray" / "usb.toml").write_text(KIOSK_RULES)
    wrapper = ("umockdev-wrapper", sys.executable, "-m", "tests.usb.umockdev_kiosk", "--",
               "--plug", "yubikey:2", "--plug", "stick:3")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYLAND_", "WAYRAY_", "NOTIFY_"))}
    env.update(PYTHONPATH=str(REPO), LANG="C.UTF-8", HOME=str(client_root),
               XDG_STATE_HOME=str(client_root / "state"))  # fmt: skip
    k = KioskProc(
        rig.short, "usb", f"127.0.0.1:{rig.port}", rig.fingerprint, env=env,
        extra=("--usb", "--root", str(client_root)), wrapper=wrapper,
    )  # fmt: skip
    rig.kiosks.append(k)
    k.dir = REPO  # the wrapper runs `python -m tests...` from the repository
    k.start()

    # The badge brings a login screen: both devices are offered to it, and it gets neither.
    k.insert(BADGE)
    greeter = k.wait_screen("greeter")
    rows = until(lambda: len(offered(rig)) == 2 and offered(rig), "the kiosk's two devices to be offered")
    for row in rows.values():
        assert row["state"] == "refused" and row["user"] is None, row
        assert "the kiosk shows a login screen" in row["reason"], row
        assert row["session"] == greeter["session_id"]
    assert not list(sockets.iterdir())

    # The user logs in on that connection: the devices are judged for them. Their YubiKey rule lets
    # theirs through, to this host; root's stick rule does not apply to them.
    sid = rig.log_in(k, accounts.user, accounts.password)["session_id"]
    rows = until(
        lambda: (r := offered(rig)) and r["1050:0407"]["state"] == "attached" and r,
        "the YubiKey to be attached for the user",
    )
    key, stick = rows["1050:0407"], rows["0781:5581"]
    assert key["user"] == accounts.user and key["session"] == sid
    assert f'allowed by rule 1 ("YubiKeys, for {accounts.user}")' in key["reason"]
    assert stick["state"] == "refused" and stick["user"] == accounts.user
    assert "denied by the default" in stick["reason"]
    until(lambda: "usb: 1050:0407" in k.log_text() and "is served to the session" in k.log_text(),
          "the kiosk to serve the YubiKey")  # fmt: skip

    # The device reaches the server host: its descriptors, read where vhci_hcd would read them, are
    # the YubiKey's own; the stick has no socket.
    [sock] = until(lambda: list(sockets.iterdir()), "the YubiKey's socket")
    assert sock.name.endswith("-1-2.sock")
    c = load("yubikey")
    device = Driver(sock).control_in(1, bytes.fromhex("8006000100001200"), 18)
    assert (device.status, device.data) == (0, c.raw[:18])
