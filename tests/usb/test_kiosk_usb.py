"""USB devices at a kiosk, end to end (docs/usb.md, section 3): a real wrclient whose USB devices are
umockdev devices (found through udev, plugged and unplugged with uevents) and a real `wrsrvd
--instance`, over QUIC on loopback. The kiosk judges with its own usb.toml what it offers; the server
judges again with its own, for the session's user, logs every decision with the device and the rule,
refuses what it denies, and takes changed rules on a reload; a device the kiosk denies never reaches
the server. This machine has no vhci_hcd (no loadable modules): a device both sides allow is refused
with that reason, which is what a server without the module must do."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, script
from tests.e2e.harness import eventually
from tests.ports import free_port
from tests.server.test_reload import Instance
from tests.supervisor.test_notify import NotifySocket
from tests.usb.lsusb import load
from tests.usb.usbmon import bulk_data
from wayray.usb.usbip import NOT_ISO, CmdSubmit, Direction, RetSubmit, UsbipReader, encode

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("umockdev-wrapper") is None or not Path("/usr/lib/python3/dist-packages/gi").is_dir(),
        reason="needs umockdev and python3-gi with gir1.2-umockdev-1.0 (tools/apt-packages.txt)",
    ),
]

SERVERS = """[server.lab]
listen = ["127.0.0.1"]
port = {port}
sessions = "command"
session_command = ["sleep", "3600"]

[server.lab.admission]
access_key_file = "{key}"
"""

SERVER_RULES = """[usb]
default = "deny"

[[usb.rule]]
vendor = 0x1050
action = "allow"
comment = "YubiKeys"

[[usb.rule]]
class = 0x08
action = "{storage}"
comment = "mass storage"
"""

#: The kiosk would offer sticks (the server says no) and keeps webcams to itself.
KIOSK_RULES = """[usb]
default = "deny"

[[usb.rule]]
vendor = 0x1050
action = "allow"

[[usb.rule]]
class = 0x08
action = "allow"
"""

NO_VHCI = "vhci_hcd is not loaded on this host"


class UsbKiosk:
    """``umockdev-wrapper python -m tests.usb.umockdev_kiosk`` running a headless wrclient with --usb."""

    def __init__(
        self,
        inst: Instance,
        plugged: tuple[str, ...],
        token: str,
        name: str = "a",
        extra_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        rules: str = KIOSK_RULES,
    ) -> None:
        root = inst.tmp / f"kiosk-{name}"
        (root / "etc" / "wayray").mkdir(parents=True)
        (root / "etc" / "wayray" / "usb.toml").write_text(rules)
        fingerprint = inst.status()["fingerprint"]
        plugs = [a for p in plugged for a in ("--plug", p)]
        # wrclient's main() runs inside the testbed's process: its arguments follow the plugs.
        wrclient = [f"127.0.0.1:{inst.port}", "--fingerprint", fingerprint, "--headless", "--token", token,
                    "--usb", "--root", str(root), "--access-key-file", str(inst.key), "-v",
                    *extra_args]  # fmt: skip
        argv = [sys.executable, "-m", "tests.usb.umockdev_kiosk", "--", *plugs, *wrclient]
        env = {k: v for k, v in inst.h.env.items() if not k.startswith(("WAYLAND_", "WAYRAY_"))}
        # Its own home: its own terminal identity (two kiosks are two machines).
        env.update(PYTHONPATH=str(REPO), LANG="C.UTF-8", HOME=str(root), XDG_STATE_HOME=str(root / "state"))
        env.update(extra_env or {})
        self.log = inst.tmp / f"kiosk-{name}.log"
        self.proc = subprocess.Popen(
            ["umockdev-wrapper", *argv], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.log, "wb"), text=True, start_new_session=True,  # noqa: SIM115
        )  # fmt: skip
        self.answers: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith('{"done"'):  # wrclient's own lines (a moved session's) go here too
                self.answers.append(json.loads(line))

    def do(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        n = len(self.answers)
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        eventually(lambda: len(self.answers) > n, f"the testbed to do {cmd}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Instance]:
    i = Instance(tmp_path)
    (i.etc / "servers.toml").write_text(SERVERS.format(port=i.port, key=i.key))
    (i.etc / "usb.toml").write_text(SERVER_RULES.format(storage="deny"))
    i.start()
    kiosks: list[UsbKiosk] = []
    i.kiosks = kiosks  # type: ignore[attr-defined]
    try:
        yield i
    finally:
        for k in kiosks:
            k.stop()
            print(f"--- {k.log.name} ---\n{k.log_text()}")  # shown when the test failed
        print(f"--- wrsrvd ---\n{server_log(i)}")
        i.stop()


def server_log(inst: Instance) -> str:
    return inst.log.read_text(errors="replace")


def wradm_usb(inst: Instance) -> list[dict[str, Any]]:
    done = inst.wradm("usb", "--instance", "lab", "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_offers_are_judged_on_both_ends_follow_hotplug_and_take_reloaded_rules(inst: Instance) -> None:
    kiosk = UsbKiosk(inst, ("yubikey:2",), "usb-kiosk-1")
    inst.kiosks.append(kiosk)  # type: ignore[attr-defined]
    # The YubiKey, plugged in before the kiosk started: offered, allowed by the server's rule 1, and
    # refused because this host cannot attach it (no vhci_hcd), saying so on both ends.
    allowed = eventually(
        lambda: [
            line for line in server_log(inst).splitlines() if "1050:0407" in line and "allowed by" in line
        ],
        "the server's verdict on the YubiKey",
    )
    assert (
        "usb: kiosk " in allowed[0]
        and '1050:0407 "YubiKey OTP+FIDO+CCID" at 1-2 (03/01/01, 03/00/00, 0b/00/00)' in allowed[0]
    )
    assert 'allowed by rule 1 ("YubiKeys") (user root)' in allowed[0]
    eventually(
        lambda: "cannot attach 1050:0407" in server_log(inst) and NO_VHCI in server_log(inst),
        "the vhci refusal",
    )
    eventually(lambda: "the server refused: allowed by rule 1" in kiosk.log_text(), "the kiosk to hear it")
    (row,) = eventually(lambda: wradm_usb(inst), "wradm usb to list the YubiKey")
    assert (row["device"], row["busid"], row["state"], row["user"]) == (
        "1050:0407",
        "1-2",
        "refused",
        "root",
    )
    assert NO_VHCI in row["reason"] and row["product"] == "YubiKey OTP+FIDO+CCID"

    # A stick the kiosk allows and the server denies: refused by the server's rule, logged.
    kiosk.do(plug="stick", port=3)
    eventually(
        lambda: 'denied by rule 2 ("mass storage")' in server_log(inst), "the server to deny the stick"
    )
    eventually(lambda: "the server refused: denied by rule 2" in kiosk.log_text(), "the kiosk to hear it")
    # A webcam the kiosk's own rules deny: never offered, so the server never hears of it.
    kiosk.do(plug="webcam", port=4)
    eventually(
        lambda: "usb: kiosk: 046d:0825" in kiosk.log_text() and "denied by the default" in kiosk.log_text(),
        "the kiosk's denial",
    )
    assert "046d:0825" not in server_log(inst)
    assert {r["device"] for r in wradm_usb(inst)} == {"1050:0407", "0781:5581"}

    # Unplugged: withdrawn, and gone from the server's list.
    kiosk.do(unplug="stick")
    eventually(
        lambda: (
            "0781:5581" in server_log(inst)
            and "withdrawn by the kiosk: unplugged at the kiosk" in server_log(inst)
        ),
        "the withdrawal",
    )
    eventually(
        lambda: {r["device"] for r in wradm_usb(inst)} == {"1050:0407"}, "the stick to leave the list"
    )

    # The server's rules change: a reload takes them; the stick plugged in again is judged by them.
    (inst.etc / "usb.toml").write_text(SERVER_RULES.format(storage="allow"))
    reloaded = inst.wradm("reload", "--instance", "lab")
    assert reloaded.returncode == 0, reloaded.stderr
    kiosk.do(plug="stick", port=3)
    eventually(
        lambda: 'allowed by rule 2 ("mass storage")' in server_log(inst),
        "the reloaded rule to allow the stick",
    )
    assert "046d:0825" not in server_log(inst)

    # Badge-out (the kiosk's connection ends): everything it offered is released.
    kiosk.stop()
    eventually(lambda: wradm_usb(inst) == [], "the kiosk's devices to be released")
    assert "released: the kiosk's connection ended" in server_log(inst)


def test_a_hot_desk_move_takes_the_old_kiosks_devices_away_and_brings_the_new_ones(inst: Instance) -> None:
    """The session follows its badge to another kiosk: the devices of the kiosk it left are released
    (they stay plugged in there), the devices at the kiosk it moved to are judged for it."""
    first = UsbKiosk(inst, ("yubikey:2",), "usb-hotdesk")
    inst.kiosks.append(first)  # type: ignore[attr-defined]
    (row,) = eventually(lambda: wradm_usb(inst), "the first kiosk's YubiKey")
    session = row["session"]
    second = UsbKiosk(inst, ("stick:3",), "usb-hotdesk", name="b")  # the same badge, another kiosk
    inst.kiosks.append(second)  # type: ignore[attr-defined]
    moved = eventually(
        lambda: [r for r in wradm_usb(inst) if r["device"] == "0781:5581"] and wradm_usb(inst),
        "the second kiosk's stick",
    )
    assert [(r["device"], r["session"]) for r in moved] == [("0781:5581", session)]
    assert moved[0]["kiosk"] != row["kiosk"]
    log = server_log(inst)
    assert "1050:0407" in log and "released: the kiosk's connection ended (SESSION_MOVED" in log
    eventually(lambda: first.proc.poll() is not None, "the first kiosk's viewer to end (session moved)")


class SocketsInstance(Instance):
    """`wrsrvd --instance lab --usb-sockets DIR`: accepted devices are served on Unix sockets, where
    this test plays vhci_hcd (this machine has none)."""

    def start(self) -> subprocess.Popen[bytes]:
        self.sockets = self.h.short / "usb"
        self.sockets.mkdir()
        self.notify = NotifySocket(str(self.tmp / "notify"))
        self.proc = subprocess.Popen(
            [script("wrsrvd"), "--instance", "lab", "--root", str(self.root),
             "--usb-sockets", str(self.sockets)],
            env={**self.h.env, "NOTIFY_SOCKET": str(self.tmp / "notify")}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), start_new_session=True,  # noqa: SIM115
        )  # fmt: skip
        assert self.notify.receive()[1].get("READY") == "1"
        return self.proc


class Driver:
    """A USB/IP peer on a device's socket, as vhci_hcd is after `usbip attach`."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(str(path))
        self.reader = UsbipReader(commands=False)

    def control_in(self, seqnum: int, setup: bytes, length: int) -> RetSubmit:
        return self.submit(CmdSubmit(seqnum, 0x10002, Direction.IN, 0, 0, length, 0, NOT_ISO, 0, setup))

    def submit(self, cmd: CmdSubmit) -> RetSubmit:
        self.reader.sent(cmd)
        self.sock.sendall(encode(cmd))
        while True:
            data = self.sock.recv(65536)
            assert data, "the server closed the device's socket"
            for message in self.reader.feed(data):
                assert isinstance(message, RetSubmit)
                return message


def test_descriptors_read_through_quic_are_the_recorded_bytes_and_garbage_ends_that_device(
    tmp_path: Path,
) -> None:
    """The data path without a kernel: the kiosk serves the YubiKey (libusb on a device umockdev replays
    from a usbmon recording), the server relays its stream and serves it on a socket, where a USB/IP
    driver reads its descriptors as vhci would. A driver that sends garbage ends that device only."""
    inst = SocketsInstance(tmp_path)
    (inst.etc / "servers.toml").write_text(SERVERS.format(port=inst.port, key=inst.key))
    (inst.etc / "usb.toml").write_text(SERVER_RULES.format(storage="allow"))
    inst.start()
    kiosk = UsbKiosk(inst, ("yubikey:2", "stick:3"), "usb-data")
    try:
        c = load("yubikey")
        sock = eventually(lambda: sorted(inst.sockets.glob("*-1-2.sock")), "the YubiKey's socket")[0]
        driver = Driver(sock)
        device = driver.control_in(1, bytes.fromhex("8006000100001200"), 18)
        assert (device.status, device.data) == (0, c.raw[:18])
        total = len(c.raw) - 18
        config = driver.control_in(2, bytes.fromhex("800600020000") + total.to_bytes(2, "little"), total)
        assert (config.status, config.data) == (0, c.raw[18:])

        driver.sock.sendall(bytes(range(48)))  # garbage, as no vhci would send
        eventually(lambda: "that device is detached, the rest goes on" in server_log(inst), "the fault")
        eventually(lambda: "the server detached it" in kiosk.log_text(), "the kiosk to hear it")
        assert "is not one vhci sends" in server_log(inst)
        rows = {r["device"]: r for r in wradm_usb(inst)}
        assert rows["1050:0407"]["reason"].startswith("detached:")
        assert rows["0781:5581"]["state"] == "attached"  # the other device goes on
        assert kiosk.proc.poll() is None and inst.status()["sessions"] == 1  # the connection goes on

        # The rules change while the stick is attached: the reload detaches it (its socket goes).
        (inst.etc / "usb.toml").write_text(SERVER_RULES.format(storage="deny"))
        assert inst.wradm("reload", "--instance", "lab").returncode == 0
        eventually(lambda: not list(inst.sockets.glob("*-1-3.sock")), "the stick's socket to go")
        stick = {r["device"]: r for r in wradm_usb(inst)}["0781:5581"]
        assert stick["state"] == "refused" and 'denied by rule 2 ("mass storage")' in stick["reason"]
        heard = "the server refused: denied by rule 2"
        eventually(lambda: heard in kiosk.log_text(), "the kiosk to hear the new verdict")
        assert "0781:5581" in server_log(
            inst
        ) and "detached: no longer allowed: denied by rule 2" in server_log(inst)
    finally:
        kiosk.stop()
        print(f"--- kiosk ---\n{kiosk.log_text()}\n--- wrsrvd ---\n{server_log(inst)}")
        inst.stop()


def test_bulk_transfers_cross_the_tunnel_whole_and_in_order(tmp_path: Path) -> None:
    """Bulk IN on the stick's endpoint 1, as a USB/IP driver on the server asks for it: the data the
    device sent (umockdev replays them to the kiosk's libusb from a usbmon recording) arrive whole,
    through QUIC and the server's relay, transfer after transfer."""
    inst = SocketsInstance(tmp_path)
    (inst.etc / "servers.toml").write_text(SERVERS.format(port=inst.port, key=inst.key))
    (inst.etc / "usb.toml").write_text(SERVER_RULES.format(storage="allow"))
    inst.start()
    size = 16384
    kiosk = UsbKiosk(inst, ("stick:3",), "usb-bulk", extra_env={"WAYRAY_USB_BENCH": f"0:3:{size}"})
    try:
        c = load("stick")
        sock = eventually(lambda: sorted(inst.sockets.glob("*-1-3.sock")), "the stick's socket")[0]
        driver = Driver(sock)
        assert driver.control_in(1, bytes.fromhex("8006000100001200"), 18).data == c.raw[:18]
        total = len(c.raw) - 18
        config = driver.control_in(2, bytes.fromhex("800600020000") + total.to_bytes(2, "little"), total)
        assert config.data == c.raw[18:]
        for seqnum in (3, 4, 5):
            cmd = CmdSubmit(seqnum, 0x10003, Direction.IN, 1, 0, size, 0, NOT_ISO, 0, bytes(8))
            ret = driver.submit(cmd)
            assert (ret.seqnum, ret.status, ret.actual_length) == (seqnum, 0, size)
            assert ret.data == bulk_data(size)
        assert {r["device"]: r["state"] for r in wradm_usb(inst)} == {"0781:5581": "attached"}
    finally:
        kiosk.stop()
        print(f"--- kiosk ---\n{kiosk.log_text()}\n--- wrsrvd ---\n{server_log(inst)}")
        inst.stop()


def free_tcp_port() -> int:
    return free_port()  # tests/ports.py: claimed, not merely free now


@pytest.mark.skipif(shutil.which("usbip") is None, reason="needs Debian's usbip (tools/apt-packages.txt)")
def test_debians_usbip_lists_what_the_kiosk_would_offer_and_an_import_is_refused(inst: Instance) -> None:
    """`wrclient --usb --usb-list-port PORT` answers USB/IP's device-list request as usbipd does, with
    the devices its own rules allow, read from the (umockdev) devices themselves: Debian's `usbip list
    -r` parses it. A USB/IP import is refused: devices go to the session, by the server's verdict."""
    port = free_tcp_port()
    kiosk = UsbKiosk(
        inst, ("yubikey:2", "stick:3", "webcam:4"), "usb-list", extra_args=("--usb-list-port", str(port))
    )
    inst.kiosks.append(kiosk)  # type: ignore[attr-defined]
    eventually(lambda: "answering usbip list -r" in kiosk.log_text(), "the kiosk's listing")

    listed = subprocess.run(["usbip", "--tcp-port", str(port), "list", "-r", "127.0.0.1"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    out = listed.stdout
    assert re.search(r"^\s+1-2: .*\(1050:0407\)$", out, re.M), out
    assert re.search(r"^\s+1-3: .*\(0781:5581\)$", out, re.M), out
    assert "046d:0825" not in out and "1-4:" not in out  # the webcam the kiosk's rules deny
    # The YubiKey's three interfaces and the stick's one, as their descriptors give them.
    for triple in ("(03/01/01)", "(03/00/00)", "(0b/00/00)", "(08/06/50)"):
        assert triple in out, (triple, out)

    # usbip attach needs vhci_hcd before it asks (none here): the import, as it would send it.
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(struct.pack(">HHI", 0x0111, 0x8003, 0) + b"1-2".ljust(32, b"\0"))
        answer = s.recv(64)
    assert struct.unpack(">HHI", answer[:8]) == (0x0111, 0x0003, 1)  # ST_NA, and no device record
    eventually(lambda: "refused a usbip import of '1-2'" in kiosk.log_text(), "the kiosk's log line")


def test_a_traced_control_transfer_is_stamped_at_every_hop_in_order(tmp_path: Path) -> None:
    """With WAYRAY_TRACE set (bench/usb_roundtrip.py --trace), every control transfer through the tunnel
    is stamped by wrsrvd and the kiosk at each hop of its way, on the machine's one clock: each hop
    comes after the one before it, and the files hold only times, hop names and URB numbers."""
    from bench.usb_roundtrip import HOPS, TUNNEL, read_trace

    traces = tmp_path / "traces"
    traces.mkdir()
    inst = SocketsInstance(tmp_path)
    inst.h.env["WAYRAY_TRACE"] = str(traces)
    (inst.etc / "servers.toml").write_text(SERVERS.format(port=inst.port, key=inst.key))
    (inst.etc / "usb.toml").write_text(SERVER_RULES.format(storage="allow"))
    inst.start()
    env = {"WAYRAY_USB_BENCH": "5:0:64", "WAYRAY_TRACE": str(traces)}
    kiosk = UsbKiosk(inst, ("stick:3",), "usb-trace", extra_env=env)
    try:
        c = load("stick")
        sock = eventually(lambda: sorted(inst.sockets.glob("*-1-3.sock")), "the stick's socket")[0]
        driver = Driver(sock)
        assert driver.control_in(1, bytes.fromhex("8006000100001200"), 18).data == c.raw[:18]
        total = len(c.raw) - 18
        driver.control_in(2, bytes.fromhex("800600020000") + total.to_bytes(2, "little"), total)
        stamps: dict[str, dict[str, int]] = {}
        for seqnum in range(10, 15):
            sent = time.monotonic_ns()
            assert driver.control_in(seqnum, bytes.fromhex("8006000100001200"), 18).data == c.raw[:18]
            stamps[f"u{seqnum}"] = {"host_send": sent, "host_recv": time.monotonic_ns()}
    finally:
        kiosk.stop()
        inst.stop()
    per_hop = read_trace(traces, stamps)
    # Every one of the five, at every hop, never before the hop ahead of it (the first entry is the
    # whole way, driver to driver).
    assert {hop: len(times) for hop, times in per_hop.items()} == {
        **{f"{w}:{h}": 5 for h, w, _ in HOPS},
        TUNNEL: 5,
    }
    assert all(t >= 0 for times in per_hop.values() for t in times), per_hop
    # All but the device's own time is less than the whole way, and more than nothing.
    whole = per_hop[f"{HOPS[0][1]}:{HOPS[0][0]}"]
    assert all(0 < t < w for t, w in zip(per_hop[TUNNEL], whole, strict=True)), per_hop
    files = sorted(traces.glob("*.trace"))
    assert files
    names = {h for h, _w, _ in HOPS}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        for line in f.read_text().splitlines():
            _ns, hop, ident, *extra = line.split()
            if hop.startswith(("usb_", "quic_")):
                assert hop in names and not extra, line
                assert ident == "d" or (ident[0] == "u" and ident[1:].isdigit()), line
