"""The one ``WIDTHxHEIGHT`` parser: what it takes, and the words each command gives for what it does
not (the same as each said with a parser of its own)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from wayray.common.sizes import parse_size, size_argument


@pytest.mark.parametrize(
    "text,size",
    [("1280x720", (1280, 720)), ("1920X1080", (1920, 1080)), (" 800 x 600 ", (800, 600)), ("0x0", (0, 0))],
)
def test_sizes_it_takes(text: str, size: tuple[int, int]) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "1280", "1280x", "x720", "big", "1280x720x2", "-5x720", "1e3x720", "12 80x720"]
)
def test_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="is not WIDTHxHEIGHT"):
        parse_size(text)


def _parsers() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    from wayray.client.cli import parser as wrclient
    from wayray.compositor.cli import parser as compositor
    from wayray.greeter.cli import parser as wrlogin
    from wayray.server.cli import parser as wrsrvd
    from wayray.session.cli import parser as session

    return {"wrsrvd": wrsrvd, "wrsrvd session": session, "wrsrvd compositor": compositor, "wrlogin": wrlogin,
            "wrclient": wrclient}  # fmt: skip


@pytest.mark.parametrize(
    "program,given,message",
    [
        ("wrsrvd", "big", "argument --size: 'big' is not WIDTHxHEIGHT, e.g. 1920x1080"),
        ("wrsrvd session", "1280x", "argument --size: '1280x' is not WIDTHxHEIGHT, e.g. 1920x1080"),
        ("wrsrvd compositor", "big", "argument --size: 'big' is not WIDTHxHEIGHT, e.g. 1920x1080"),
        ("wrlogin", "big", "argument --size: 'big' is not WIDTHxHEIGHT"),
        ("wrlogin", "32x600", "argument --size: '32x600': each side must be 64 to 16384"),
        ("wrlogin", "800x20000", "argument --size: '800x20000': each side must be 64 to 16384"),
        ("wrclient", "big", "argument --size: 'big' is not WIDTHxHEIGHT (16..16384), e.g. 1280x720"),
        ("wrclient", "8x8", "argument --size: '8x8' is not WIDTHxHEIGHT (16..16384), e.g. 1280x720"),
    ],
)
def test_each_command_says_what_it_said_before(
    program: str, given: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        _parsers()[program]().parse_args(["--size", given])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: {message}")


def test_sides_in_range_are_taken() -> None:
    parse = size_argument(sides=(64, 16384))
    assert parse("64x16384") == (64, 16384)


def test_a_script_resize_that_is_not_a_size() -> None:
    from wayray.client.script import ScriptError, parse

    with pytest.raises(ScriptError) as info:
        parse("resize 1280 by 720\n", "s.txt")
    assert info.value.message == "s.txt:1: resize: needs WIDTHxHEIGHT, e.g. 1280x720"
    assert parse("resize 1280x720\n").commands[0].size == (1280, 720)
