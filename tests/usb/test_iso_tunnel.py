"""Isochronous URBs end to end without a kernel (docs/usb.md, sections 4 and 7): a real wrclient
serves a webcam whose usbfs ioctls tests/usb/usbfs_iso.py plays under umockdev (a microphone and a
speaker; umockdev's own recordings cannot report an isochronous packet's actual length), a real
`wrsrvd --instance --usb-sockets` relays its stream over QUIC on loopback, checking every packet
descriptor, and serves it on a socket, where this test plays vhci_hcd: an isochronous IN comes back
with what each packet got, packed in packet order; an isochronous OUT reaches the device with
exactly its packets' bytes; a submit whose packets lie outside its buffer ends that device only."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import eventually
from tests.usb.test_kiosk_usb import SERVERS, Driver, SocketsInstance, UsbKiosk, server_log, wradm_usb
from tests.usb.test_kiosk_usb import pytestmark as kiosk_marks
from tests.usb.umockdev_iso import IN_PACKETS, ISO_ASAP, OUT_BUFFER, OUT_PACKETS, SPEAKER
from tests.usb.usbfs_iso import fill
from wayray.usb.usbip import CmdSubmit, Direction, encode

pytestmark = kiosk_marks

#: Both ends allow the webcam (Logitech) and the YubiKey.
RULES = """[usb]
default = "deny"

[[usb.rule]]
vendor = 0x046d
action = "allow"
comment = "webcams"

[[usb.rule]]
vendor = 0x1050
action = "allow"
comment = "YubiKeys"
"""
EPROTO = -71
DEVID = 0x10002


def test_isochronous_urbs_cross_the_tunnel_and_bad_packet_descriptors_end_only_that_device(
    tmp_path: Path,
) -> None:
    inst = SocketsInstance(tmp_path)
    (inst.etc / "servers.toml").write_text(SERVERS.format(port=inst.port, key=inst.key))
    (inst.etc / "usb.toml").write_text(RULES)
    inst.start()
    kiosk = UsbKiosk(inst, ("webcam:2", "yubikey:3"), "usb-iso", rules=RULES,
                     extra_env={"WAYRAY_USB_IOCTL": "webcam=emulated"})  # fmt: skip
    try:
        sock = eventually(lambda: sorted(inst.sockets.glob("*-1-2.sock")), "the webcam's socket")[0]
        driver = Driver(sock)
        # The microphone: 192 bytes, 100 bytes and a missed frame, packed, with each packet's length.
        microphone = driver.submit(CmdSubmit(1, DEVID, Direction.IN, 1, ISO_ASAP, 576, 0, 3, 1, bytes(8),
                                             b"", IN_PACKETS))  # fmt: skip
        assert (microphone.status, microphone.actual_length, microphone.error_count) == (0, 292, 1)
        assert microphone.data == fill(192, 0) + fill(100, 1)
        assert microphone.iso == ((0, 192, 192, 0), (192, 192, 100, 0), (384, 192, 0, EPROTO))
        # The speaker's packets, 8 bytes apart in the URB's buffer: the device gets them end to end.
        speaker = driver.submit(CmdSubmit(2, DEVID, Direction.OUT, 2, ISO_ASAP, len(OUT_BUFFER), 0, 2, 1,
                                          bytes(8), OUT_BUFFER, OUT_PACKETS))  # fmt: skip
        assert (speaker.status, speaker.actual_length, speaker.packets) == (0, 192, 2)
        assert speaker.iso == ((0, 96, 96, 0), (104, 96, 96, 0))
        kiosk.do(received="webcam")
        assert kiosk.answers[-1]["received"] == [[SPEAKER[:96].hex(), SPEAKER[96:].hex()]]

        # A submit whose last packet ends past its buffer: wrsrvd refuses it before the kiosk sees it.
        bad = CmdSubmit(3, DEVID, Direction.IN, 1, ISO_ASAP, 576, 0, 3, 1, bytes(8), b"",
                        ((0, 192, 0, 0), (192, 192, 0, 0), (400, 192, 0, 0)))  # fmt: skip
        driver.sock.sendall(encode(bad))
        eventually(lambda: "that device is detached, the rest goes on" in server_log(inst), "the fault")
        assert "CMD_SUBMIT 3: packet 2 at offset 400 of 192 bytes ends past the buffer of 576" in server_log(
            inst
        )
        eventually(lambda: "the server detached it" in kiosk.log_text(), "the kiosk to hear it")
        rows = {r["device"]: r for r in wradm_usb(inst)}
        assert rows["046d:0825"]["reason"].startswith("detached:")
        assert rows["1050:0407"]["state"] == "attached"  # the other device goes on
        assert kiosk.proc.poll() is None and inst.status()["sessions"] == 1  # and the connection
    finally:
        kiosk.stop()
        print(f"--- kiosk ---\n{kiosk.log_text()}\n--- wrsrvd ---\n{server_log(inst)}")
        inst.stop()
