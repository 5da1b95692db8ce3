"""Value types: what they accept, and the messages for what they do not."""

from __future__ import annotations

import shlex
import sys
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayray.config.types import (
    Bitrate,
    Command,
    Duration,
    Fingerprint,
    Integer,
    Invalid,
    Percent,
    Principal,
    ServerAddress,
    Size,
    UsbId,
    UserName,
    format_duration,
    split_command,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15min", 900),
        ("24h", 86400),
        ("1h 30min", 5400),
        ("2d", 172800),
        ("1.5h", 5400),
        ("0", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert Duration().parse(text) == timedelta(seconds=seconds)


def test_duration_messages_say_what_to_write() -> None:
    with pytest.raises(Invalid, match=r'unknown time unit "mins" in "30mins" \(did you mean "min"\?\)'):
        Duration().parse("30mins")
    with pytest.raises(Invalid, match=r'got integer 30 \(write "30s" for seconds\)'):
        Duration().parse(30)
    with pytest.raises(Invalid, match="finite duration"):
        Duration().parse("never")
    assert Duration(allow_never=True).parse("never") is None
    with pytest.raises(Invalid, match="too short"):
        Duration(minimum=60).parse("10s")


def test_durations_round_trip_through_their_display_form() -> None:
    for text in ("1d", "2h 5min", "45s", "1d 1h 1min 1s"):
        value = Duration().parse(text)
        assert value is not None
        assert Duration().parse(format_duration(value)) == value


def test_sizes_percentages_and_rates() -> None:
    assert Size().parse("512M") == 512 * 1024**2
    assert Size().parse("4G") == 4 * 1024**3
    assert Size().parse("infinity") is None
    assert Size().to_toml(16 * 1024**3) == "16G"
    with pytest.raises(Invalid, match="size"):
        Size().parse("lots")
    assert Percent().parse("200%") == 200
    with pytest.raises(Invalid, match=r'write "200%"'):
        Percent().parse(200)
    assert Bitrate().parse("8M") == 8_000_000
    assert Bitrate().parse("800k") == 800_000
    with pytest.raises(Invalid, match="too low"):
        Bitrate().parse(100)


def test_integers_name_their_range_and_spot_quoted_numbers() -> None:
    with pytest.raises(Invalid, match="expected integer from 1 to 65535, got 70000"):
        Integer(1, 65535).parse(70000)
    with pytest.raises(Invalid, match=r"write 7100 without quotes"):
        Integer(1, 65535).parse("7100")
    with pytest.raises(Invalid, match="got boolean true"):
        Integer().parse(True)


def test_usb_ids_accept_what_lsusb_prints() -> None:
    assert UsbId(16).parse("046d") == 0x046D
    assert UsbId(16).parse("0x046D") == 0x046D
    assert UsbId(16).parse(0x046D) == 0x046D
    assert UsbId(8).parse("*") is None
    with pytest.raises(Invalid, match="does not fit in 8 bits"):
        UsbId(8).parse(0x1FF)
    with pytest.raises(Invalid, match="16-bit USB id"):
        UsbId(16).parse("logitech")


def test_commands_split_like_a_shell_without_expanding() -> None:
    assert Command().parse("foot --title 'my term' $HOME") == ("foot", "--title", "my term", "$HOME")
    assert Command().parse(["foot", "-e", "top"]) == ("foot", "-e", "top")
    assert Command().parse("") == ()
    with pytest.raises(Invalid, match="cannot split"):
        Command().parse("foot 'unterminated")


@pytest.mark.parametrize("name", ["alice", "wayray-greeter", "_apt", "svc.web", "a" * 32])
def test_valid_user_names(name: str) -> None:
    assert UserName().parse(name) == name


@pytest.mark.parametrize("name", ["Alice Smith", "-alice", "1000", "a" * 33, "al:ice", "", ".."])
def test_user_names_that_cannot_exist(name: str) -> None:
    with pytest.raises(Invalid, match="not a valid user name"):
        UserName().parse(name)


def test_principals_are_users_or_groups() -> None:
    assert Principal().parse("@staff") == "@staff"
    with pytest.raises(Invalid, match="not a valid group name"):
        Principal().parse("@my staff")


def test_fingerprints_are_normalised() -> None:
    digest = "AB:" * 31 + "CD"
    assert Fingerprint().parse(f"SHA256:{digest}") == "sha256:" + ("ab" * 31) + "cd"
    with pytest.raises(Invalid, match="fingerprint"):
        Fingerprint().parse("md5:abcd")


@pytest.mark.parametrize(
    "addr", ["srv1", "srv1.example.org:7101", "[2001:db8::1]:7100", "192.0.2.1", "2001:db8::1"]
)
def test_server_addresses(addr: str) -> None:
    assert ServerAddress().parse(addr) == addr


@pytest.mark.parametrize("addr", ["srv1:http", "[nope]:1", "-bad-", "srv:70000"])
def test_bad_server_addresses(addr: str) -> None:
    with pytest.raises(Invalid):
        ServerAddress().parse(addr)


# --- hostile values: an Invalid with a message, never another exception (review L3) -----------------


@pytest.mark.parametrize(
    ("vtype", "raw"),
    [
        (Size(), "1" * 400 + "G"),  # float() gives inf: was OverflowError
        (Size(), 2**70),
        (Size(), "9" * 40),
        (Bitrate(), "9" * 400 + "M"),  # was OverflowError
        (Duration(), "1" * 400 + "s"),  # was OverflowError in timedelta
        (Duration(), "99999999999999 weeks"),
        (Percent(), "²%"),  # str.isdigit() is true for "²", int() refuses it: was ValueError
        (Percent(), "1" * 5000 + "%"),  # int() refuses 5,000 digits: was ValueError
        (ServerAddress(), "srv:" + "7" * 5000),  # was ValueError
        (ServerAddress(), "srv:٣"),
        (UsbId(16), "f" * 5000),
        (UsbId(8), 2**5000),
    ],
)
def test_hostile_values_are_invalid_with_a_short_message(vtype: object, raw: object) -> None:
    with pytest.raises(Invalid) as err:
        vtype.parse(raw)  # type: ignore[attr-defined]
    assert len(str(err.value)) < 300, str(err.value)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=" \t\r\n\x0b'\"\\ab#$*é\u2028", max_size=30))
def test_commands_split_exactly_as_shlex_does(text: str) -> None:
    try:
        expected: list[str] | str = shlex.split(text)
    except ValueError as err:
        expected = str(err)
    try:
        got: list[str] | str = split_command(text)
    except ValueError as err:
        got = str(err)
    assert got == expected


def test_a_long_command_word_splits_in_linear_work() -> None:
    # shlex.split takes most of a minute for a 1 MB word (it adds one character at a time); the
    # splitter reads it in a few regular-expression matches.
    calls = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        calls += event == "c_call"

    sys.setprofile(profile)
    try:
        words = split_command("foot " + "x" * 1_000_000)
    finally:
        sys.setprofile(None)
    assert [len(w) for w in words] == [4, 1_000_000]
    assert calls < 50
