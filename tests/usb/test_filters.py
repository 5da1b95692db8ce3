"""usb.toml's rules acting on real descriptor bytes (docs/usb.md, section 2): lsusb captures of a
keyboard, a YubiKey (HID keyboard + FIDO HID + CCID), a USB stick, a webcam (video and audio behind
interface associations) and a hub, judged by the rules shipped in etc/wayray/usb.toml (loaded by the
real loader) and by edge cases: composite devices, serials, users on the kiosk and the server, and
descriptors that do not parse. Every decision is logged with the device and the deciding rule."""

from __future__ import annotations

import logging
import re
import struct
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.usb.lsusb import Capture, load
from wayray.config import load_report
from wayray.config.model.usb import UsbAction, UsbConfig, UsbRule
from wayray.usb.descriptors import MAX_DESCRIPTORS, DescriptorError, parse
from wayray.usb.filters import DeviceIdentity, Judgement, judge

SHIPPED = REPO / "etc" / "wayray" / "usb.toml"
A, D = UsbAction.ALLOW, UsbAction.DENY
STAFF = frozenset({"staff"})


def shipped_rules(tmp_path: Path) -> UsbConfig:
    """etc/wayray/usb.toml with its example uncommented, read by the loader as wrsrvd reads it."""
    text = SHIPPED.read_text()
    start = text.index("# [usb]")
    example = text[:start] + re.sub(r"^# ?", "", text[start:], flags=re.MULTILINE)
    etc = tmp_path / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "usb.toml").write_text(example)
    result = load_report(tmp_path)
    errors = [d.format() for d in result.diagnostics if d.severity.value == "error"]
    assert not errors, errors
    assert len(result.config.usb.rules) == 3, "the shipped example has three rules"
    return result.config.usb


def identity(c: Capture, where: str = "1-2") -> DeviceIdentity:
    return DeviceIdentity(c.vendor, c.product, c.manufacturer, c.product_name, c.serial, where)


# (capture, user (None: the kiosk), groups, allowed, the reason's words)
SHIPPED_TABLE = [
    ("keyboard", "alice", frozenset(), False, "denied by the default (deny) for its function 03/01/01"),
    ("yubikey", "alice", frozenset(), True, 'allowed by rule 1 ("YubiKey security keys, for everyone")'),
    ("yubikey", None, frozenset(), True, "allowed by rule 1"),
    ("stick", "alice", frozenset(), False, "denied by the default (deny) (user alice)"),
    ("stick", "bob", STAFF, True, 'allowed by rule 2 ("USB sticks, staff only") (user bob)'),
    # The kiosk does not know who will use the stick: a rule for some users lets it offer.
    ("stick", None, frozenset(), True, "allowed by rule 2"),
    ("webcam", "bob", STAFF, False, "denied by the default (deny) for its function 0e/01/00"),
    ("hub", "bob", STAFF, False, "denied: hubs are never forwarded"),
]


@pytest.mark.parametrize(("name", "user", "groups", "allowed", "reason"), SHIPPED_TABLE)
def test_the_shipped_rules_on_real_descriptors(
    tmp_path: Path, name: str, user: str | None, groups: frozenset[str], allowed: bool, reason: str
) -> None:
    config = shipped_rules(tmp_path)
    c = load(name)
    j = judge(config, c.raw, identity(c), user=user, groups=groups)
    assert (j.allowed, reason in j.reason) == (allowed, True), j.reason


def test_every_interface_counts_and_the_first_matching_rule_decides_each() -> None:
    yubikey, stick, keyboard, webcam = (load(n) for n in ("yubikey", "stick", "keyboard", "webcam"))
    hid_only = UsbConfig(rules=(UsbRule(action=A, class_=0x03, comment="HID"),))
    # A rule for one class lets through only devices whose every function is of that class.
    assert judge(hid_only, keyboard.raw, identity(keyboard), user="a").allowed
    j = judge(hid_only, yubikey.raw, identity(yubikey), user="a")
    assert not j.allowed and "for its function 0b/00/00" in j.reason
    # A YubiKey-like composite that also has a mass-storage interface is mass storage.
    composite = with_extra_interface(yubikey, (0x08, 0x06, 0x50))
    rules = UsbConfig(
        rules=(
            UsbRule(action=D, class_=0x08, comment="no mass storage"),
            UsbRule(action=A, vendor=0x1050, comment="YubiKeys"),
        )
    )
    assert judge(rules, yubikey.raw, identity(yubikey), user="a").allowed
    j = judge(rules, composite, identity(yubikey), user="a")
    assert not j.allowed
    assert j.reason == 'denied by rule 1 ("no mass storage") for its function 08/06/50 (user a)'
    # Order matters: the vendor rule first allows every function of the device, storage included.
    swapped = UsbConfig(rules=rules.rules[::-1])
    assert judge(swapped, composite, identity(yubikey), user="a").allowed
    # Subclass and protocol narrow a class: boot keyboards only, so the keyboard's second HID
    # interface (03/00/00) is left to the default.
    boot = UsbConfig(rules=(UsbRule(action=A, class_=3, subclass=1, protocol=1),))
    assert "for its function 03/00/00" in judge(boot, keyboard.raw, identity(keyboard), user="a").reason
    # A default of allow with one class denied: the webcam's audio interfaces keep it out.
    no_audio = UsbConfig(default=A, rules=(UsbRule(action=D, class_=0x01, comment="no audio"),))
    assert not judge(no_audio, webcam.raw, identity(webcam), user="a").allowed
    assert judge(no_audio, stick.raw, identity(stick), user="a").allowed


def test_serials_and_users() -> None:
    stick = load("stick")
    one = UsbConfig(rules=(UsbRule(action=A, vendor=0x0781, product=0x5581, serial=stick.serial),))
    assert judge(one, stick.raw, identity(stick), user="a").allowed
    other = DeviceIdentity(stick.vendor, stick.product, serial="0401ffffffffffffffff")
    assert not judge(one, stick.raw, other, user="a").allowed
    # A deny for some users: the kiosk (no user known) passes over it; the server applies it.
    rules = UsbConfig(
        rules=(UsbRule(action=D, class_=8, users=("@interns",)), UsbRule(action=A, class_=8)),
    )
    assert judge(rules, stick.raw, identity(stick), user=None).allowed
    assert not judge(rules, stick.raw, identity(stick), user="ian", groups=frozenset({"interns"})).allowed
    assert judge(rules, stick.raw, identity(stick), user="bob", groups=STAFF).allowed


def with_extra_interface(c: Capture, function: tuple[int, int, int]) -> bytes:
    """The capture with one more interface (no endpoints) at the end of its configuration."""
    raw = bytearray(c.raw)
    interface = bytes([9, 4, 7, 0, 0, *function, 0])
    total = struct.unpack_from("<H", raw, 18 + 2)[0]
    struct.pack_into("<HB", raw, 18 + 2, total + 9, raw[18 + 4] + 1)
    return bytes(raw) + interface


def _broken() -> list[tuple[str, bytes, str]]:
    raw = load("yubikey").raw
    zero_length = bytearray(raw)
    zero_length[18 + 9] = 0  # the first interface descriptor's bLength
    overrun = bytearray(raw)
    struct.pack_into("<H", overrun, 18 + 2, len(raw))  # wTotalLength past the end
    no_intf = bytearray(raw[:18] + raw[18:27])
    struct.pack_into("<H", no_intf, 18 + 2, 9)
    return [
        ("empty", b"", "too short for a device descriptor"),
        ("device only", raw[:18], "no configuration descriptor follows"),
        ("cut inside the configuration", raw[:-5], "overruns"),
        ("a zero bLength", bytes(zero_length), "bLength 0, which is too small"),
        ("wTotalLength past the end", bytes(overrun), "overruns"),
        ("trailing bytes", raw + b"\x00" * 7, "after the last configuration"),
        ("not a device descriptor", bytes([18, 2]) + raw[2:], "not a device descriptor"),
        ("no interface", bytes(no_intf), "has no interface"),
        ("too big", raw + bytes(MAX_DESCRIPTORS), f"more than {MAX_DESCRIPTORS}"),
    ]


@pytest.mark.parametrize(("what", "data", "message"), _broken(), ids=[b[0] for b in _broken()])
def test_descriptors_that_do_not_parse_are_denied_saying_why(what: str, data: bytes, message: str) -> None:
    with pytest.raises(DescriptorError, match=re.escape(message)):
        parse(data)
    allow_all = UsbConfig(default=A)
    j = judge(allow_all, data, DeviceIdentity(0x1050, 0x0407), user="a")
    assert not j.allowed and j.reason.startswith("denied: its descriptors do not parse")
    assert message in j.reason


def test_descriptors_that_name_another_device_are_denied() -> None:
    yubikey = load("yubikey")
    allow_yubikeys = UsbConfig(rules=(UsbRule(action=A, vendor=0x1050),))
    stick = load("stick")
    posing = DeviceIdentity(0x1050, 0x0407, name="YubiKey")  # what an offer says, the stick's bytes
    j: Judgement = judge(allow_yubikeys, stick.raw, posing, user="a")
    assert not j.allowed and "its descriptors say 0781:5581, not 1050:0407" in j.reason
    assert judge(allow_yubikeys, yubikey.raw, identity(yubikey), user="a").allowed


def test_every_decision_is_logged_with_the_device_and_the_rule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = shipped_rules(tmp_path)
    caplog.set_level(logging.INFO, logger="wayray.usb")
    for name, user in (("yubikey", "alice"), ("stick", "alice"), ("hub", "alice")):
        c = load(name)
        judge(config, c.raw, identity(c, "1-4"), user=user, side="kiosk k7, session s1")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        'usb: kiosk k7, session s1: 1050:0407 "YubiKey OTP+FIDO+CCID" at 1-4 '
        '(03/01/01, 03/00/00, 0b/00/00): allowed by rule 1 ("YubiKey security keys, for everyone") '
        "(user alice)",
        'usb: kiosk k7, session s1: 0781:5581 "SanDisk 3.2Gen1" serial 0401a1b2c3d4e5f6a7b8 at 1-4 '
        "(08/06/50): denied by the default (deny) (user alice)",
        'usb: kiosk k7, session s1: 2109:2813 "USB2.0 Hub" at 1-4 (09/00/02, 09/00/01): '
        "denied: hubs are never forwarded",
    ]


def test_what_a_device_says_of_itself_cannot_break_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wayray.usb")
    c = load("yubikey")
    liar = DeviceIdentity(c.vendor, c.product, name='Key\nusb: 1-9: allowed "x"', serial="a b\x1b[2J",
                          where="1-2\nusb: forged")  # fmt: skip
    judge(UsbConfig(), c.raw, liar, user="a")
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "\x1b" not in line
    assert (
        '"Key?usb: 1-9: allowed ?x?"' in line
        and 'serial "a b?[2J"' in line
        and 'at "1-2?usb: forged"' in line
    )
