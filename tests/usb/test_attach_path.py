"""An allowed device is attached to the host through the attach helper (docs/usb.md, section 5): a real
wrclient serving a umockdev YubiKey, a real `wrsrvd --instance` over QUIC, and a real `wrusbattach`
process (as root, on the instance's `<runtime_dir>/usb-attach.sock`) that receives the device's socket
from wrsrvd by SCM_RIGHTS and writes vhci_hcd's attach line.

This machine has no vhci_hcd, so the helper writes into a copy of its sysfs files (`--sysfs`, which
only the helper's command line can set), and this test plays the kernel: `attach` is a FIFO, and while
the helper is blocked opening it, the test takes the descriptor the line names out of the helper
(pidfd_getfd, as root), as the kernel's `sockfd_lookup` does, then speaks USB/IP on it as vhci_hcd
would. What is not run: the kernel itself (vhci_hcd's threads, the USB device it creates)."""

from __future__ import annotations

import ctypes
import os
import re
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import eventually
from tests.server.test_reload import Instance
from tests.usb.lsusb import load
from tests.usb.test_kiosk_usb import SERVER_RULES, SERVERS, UsbKiosk, server_log, wradm_usb
from wayray.usb.usbip import NOT_ISO, CmdSubmit, Direction, RetSubmit, UsbipReader, encode

pytestmark = pytest.mark.slow

STATUS = """hub port sta spd dev      sockfd local_busid
hs  0000 006 003 00010002 000005 1-2
hs  0001 004 000 00000000 000000 0-0
ss  0008 004 000 00000000 000000 0-0
"""

SYS_pidfd_getfd = 438


def take_fd(pid: int, fd: int) -> socket.socket:
    """The descriptor ``fd`` of process ``pid``, duplicated into this one (pidfd_getfd(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        ours = libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if ours < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
    finally:
        os.close(pidfd)
    return socket.socket(fileno=ours)


def sockets_of(pid: int) -> list[int]:
    out = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                out.append(int(name))
        except FileNotFoundError:
            continue
    return sorted(out)


class FakeVhci:
    """A copy of vhci_hcd.0's files whose `attach` is a FIFO this test reads as the kernel would."""

    def __init__(self, directory: Path, helper_pid: int) -> None:
        self.dir = directory
        self.helper_pid = helper_pid
        (directory / "status").write_text(STATUS)
        os.mkfifo(directory / "attach", 0o600)
        self.line = ""
        self.owner: str | None = None
        (directory / "usb5").mkdir()  # the high-speed root hub: port 1 is its root port 2 (5-2)
        (directory / "usb5" / "speed").write_text("480\n")
        self.sock: socket.socket | None = None
        self.error: BaseException | None = None
        threading.Thread(target=self._kernel, daemon=True).start()

    def _kernel(self) -> None:
        try:
            # The helper has the listener, the request's connection and the device's socket (received
            # last, so numbered highest) while it blocks opening `attach` (nobody reads it yet).
            deadline = time.monotonic() + 300
            while len(sockets_of(self.helper_pid)) != 3:
                assert time.monotonic() < deadline, "the helper never received a device's socket"
                time.sleep(0.05)
            fd = sockets_of(self.helper_pid)[-1]
            self.sock = take_fd(self.helper_pid, fd)
            with open(self.dir / "attach") as attach:
                self.line = attach.read()
            # What udev would read when the kernel adds the device, which follows this write.
            owner = self.dir.parent / "owners" / "5-2"
            self.owner = owner.read_text() if owner.exists() else None
            self.fd = fd
        except BaseException as err:  # shown by the test
            self.error = err


class Vhci:
    """USB/IP commands on the socket the kernel would hold, as vhci_hcd sends them."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(60)
        self.reader = UsbipReader(commands=False)

    def control_in(self, seqnum: int, setup: bytes, length: int) -> RetSubmit:
        cmd = CmdSubmit(seqnum, 0x10002, Direction.IN, 0, 0, length, 0, NOT_ISO, 0, setup)
        self.reader.sent(cmd)
        self.sock.sendall(encode(cmd))
        while True:
            data = self.sock.recv(65536)
            assert data, "wrsrvd closed the device's socket"
            for message in self.reader.feed(data):
                assert isinstance(message, RetSubmit)
                return message


def test_an_allowed_device_is_handed_to_vhci_through_the_helper_and_detached_when_unplugged(
    tmp_path: Path,
) -> None:
    inst = Instance(tmp_path)
    (inst.etc / "servers.toml").write_text(SERVERS.format(port=inst.port, key=inst.key))
    (inst.etc / "usb.toml").write_text(SERVER_RULES.format(storage="deny"))
    inst.run.mkdir(parents=True, exist_ok=True)
    os.chmod(inst.run, 0o755)
    sysfs = tmp_path / "vhci_hcd.0"
    sysfs.mkdir()
    helper_log = tmp_path / "wrusbattach.log"
    helper = subprocess.Popen(
        [script("wrusbattach"), "--user", "root", "--socket", str(inst.run / "usb-attach.sock"),
         "--sysfs", str(sysfs), "--owners", str(tmp_path / "owners")],
        env=inst.h.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(helper_log, "wb"), start_new_session=True,  # noqa: SIM115
    )  # fmt: skip
    kernel = FakeVhci(sysfs, helper.pid)
    kiosk = None
    try:
        eventually(lambda: (inst.run / "usb-attach.sock").exists(), "the helper's socket")
        mode = os.stat(inst.run / "usb-attach.sock")
        assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o600
        inst.start()
        kiosk = UsbKiosk(inst, ("yubikey:2",), "usb-attach")

        eventually(lambda: kernel.line or kernel.error, "the helper to write vhci_hcd's attach line")
        assert kernel.error is None, kernel.error
        m = re.fullmatch(r"1 (\d+) (\d+) (\d)", kernel.line)
        assert m, kernel.line  # port 1: the free high-speed port
        assert int(m.group(1)) == kernel.fd  # the descriptor it names is the device's socket
        assert int(m.group(2)) >> 16 == 1  # bus 1 of the kiosk (1-2)
        assert int(m.group(3)) == 3  # high speed: the testbed gives a USB 2.0 device speed 480
        # udev is told whose device it is before the kernel adds it: the session's user (here the
        # server's own, root, as sessions of an instance without logins run as wrsrvd's user).
        assert kernel.owner == f"WAYRAY_USB_UID={os.getuid()}\nWAYRAY_USB_PORT=1\n"

        row = eventually(
            lambda: [r for r in wradm_usb(inst) if r["state"] == "attached"], "the YubiKey to be attached"
        )[0]
        assert (row["device"], row["port"]) == ("1050:0407", 1)
        eventually(lambda: "accepted" in kiosk.log_text(), "the kiosk to hear the verdict")
        assert "is attached on vhci_hcd port 1" in server_log(inst)

        # The kernel's side of the socket reaches the device: its descriptors, through QUIC and libusb.
        assert kernel.sock is not None
        vhci = Vhci(kernel.sock)
        c = load("yubikey")
        device = vhci.control_in(1, bytes.fromhex("8006000100001200"), 18)
        assert (device.status, device.data) == (0, c.raw[:18])

        # Unplugged at the kiosk: the helper detaches port 1, then wrsrvd closes its end.
        kiosk.do(unplug="yubikey")
        eventually(lambda: (sysfs / "detach").exists() and (sysfs / "detach").read_text() == "1",
                   "the helper to detach port 1")  # fmt: skip
        eventually(lambda: kernel.sock.recv(65536) == b"", "wrsrvd to close the device's socket")
        assert not (tmp_path / "owners" / "5-2").exists()  # nobody's once detached
        log = server_log(inst)
        assert re.search(r'1050:0407 "YubiKey OTP\+FIDO\+CCID" at 1-2 detached: ', log), log
        assert "withdrawn by the kiosk: unplugged at the kiosk" in log
        assert helper.poll() is None and kiosk.proc.poll() is None
    finally:
        if kiosk is not None:
            kiosk.stop()
            print(f"--- kiosk ---\n{kiosk.log_text()}")
        print(f"--- wrsrvd ---\n{server_log(inst)}")
        inst.stop()
        helper.terminate()
        helper.wait(60)
        print(f"--- wrusbattach ---\n{helper_log.read_text()}")
